//! Splitting a bundle too large for one request into smaller bundles.
//!
//! A node refuses a request body over its `limits.max_body_bytes` (64 MiB by default),
//! and a pipeline's export can be far larger. The bundle is cut between objects, never
//! inside one, into parts whose text stays under a size; the objects keep their order.
//! Every marking definition of the bundle goes into every part, first: an object's TLP
//! level may come from a custom marking definition, and a part that lacked it would be
//! published at another level (or refused). The node holds a repeated marking
//! definition once. Each part has an id derived from the bundle's and the part's
//! number, so splitting the same bundle again gives the same parts.
//!
//! The bundle's text is not parsed into values: each object is kept as the slice of
//! the input it was, so splitting takes little more memory than the input itself.

use serde::Deserialize;
use serde_json::value::RawValue;

/// Why a bundle cannot be split.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SplitError {
    /// The text is not a JSON bundle.
    #[error("not a STIX bundle: {0}")]
    NotABundle(String),
    /// One object alone (with the marking definitions) is larger than a part may be.
    #[error(
        "object {index} ({id}) takes {bytes} bytes with the bundle's marking definitions, more than the {limit} a part may take"
    )]
    ObjectTooLarge {
        /// Its position in `objects`.
        index: usize,
        /// Its `id`, when it has one.
        id: String,
        /// Its size with the marking definitions.
        bytes: usize,
        /// The part size.
        limit: usize,
    },
}

#[derive(Deserialize)]
struct Bundle<'a> {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(borrow)]
    objects: Vec<&'a RawValue>,
}

/// The two properties of an object the split looks at.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    id: String,
}

/// The parts of a bundle, in order.
#[derive(Debug)]
pub struct Parts {
    /// Each part's text.
    pub parts: Vec<Vec<u8>>,
    /// Objects in the bundle.
    pub objects: usize,
}

/// Bytes of a part besides its objects: `{"type":"bundle","id":"bundle--<uuid>","objects":[]}`.
const FRAME: usize = 80;

/// Splits `text` (a bundle) into bundles of at most `max_bytes` each. A bundle that
/// fits is returned as it is, whole.
pub fn split(text: &[u8], max_bytes: usize) -> Result<Parts, SplitError> {
    let bundle: Bundle<'_> =
        serde_json::from_slice(text).map_err(|e| SplitError::NotABundle(e.to_string()))?;
    if bundle.kind != "bundle" {
        return Err(SplitError::NotABundle(format!(
            "type is {:?}, not \"bundle\"",
            bundle.kind
        )));
    }
    let objects = bundle.objects.len();
    if text.len() <= max_bytes {
        return Ok(Parts {
            parts: vec![text.to_vec()],
            objects,
        });
    }
    let mut markings: Vec<&RawValue> = Vec::new();
    let mut others: Vec<(usize, &RawValue, String)> = Vec::new();
    for (i, o) in bundle.objects.iter().enumerate() {
        let head: Head = serde_json::from_str(o.get()).unwrap_or(Head {
            kind: String::new(),
            id: String::new(),
        });
        if head.kind == "marking-definition" {
            markings.push(o);
        } else {
            others.push((i, o, head.id));
        }
    }
    let marking_bytes: usize = markings.iter().map(|m| m.get().len() + 1).sum();
    let namespace = uuid::Uuid::from_u128(0x5e1f_0000_0000_4000_8000_0000_0000_0b0d);
    let base = bundle.id.unwrap_or_default();
    let mut parts = Vec::new();
    let mut current: Vec<&RawValue> = Vec::new();
    let mut size = FRAME + marking_bytes;
    let close = |current: &mut Vec<&RawValue>, parts: &mut Vec<Vec<u8>>| {
        let mut out = Vec::new();
        let id = uuid::Uuid::new_v5(&namespace, format!("{base}#{}", parts.len()).as_bytes());
        out.extend_from_slice(
            format!("{{\"type\":\"bundle\",\"id\":\"bundle--{id}\",\"objects\":[").as_bytes(),
        );
        for (j, o) in markings.iter().chain(current.iter()).enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.extend_from_slice(o.get().as_bytes());
        }
        out.extend_from_slice(b"]}");
        parts.push(out);
        current.clear();
    };
    for (index, o, id) in others {
        let bytes = o.get().len() + 1;
        if FRAME + marking_bytes + bytes > max_bytes {
            return Err(SplitError::ObjectTooLarge {
                index,
                id,
                bytes: FRAME + marking_bytes + bytes,
                limit: max_bytes,
            });
        }
        if size + bytes > max_bytes && !current.is_empty() {
            close(&mut current, &mut parts);
            size = FRAME + marking_bytes;
        }
        current.push(o);
        size += bytes;
    }
    if !current.is_empty() || parts.is_empty() {
        close(&mut current, &mut parts);
    }
    Ok(Parts { parts, objects })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const MARKING: &str = "marking-definition--0a0a0a0a-0000-4000-8000-000000000001";

    fn bundle(n: usize) -> Value {
        let mut objects = vec![json!({
            "type": "marking-definition", "spec_version": "2.1", "id": MARKING,
            "created": "2026-01-01T00:00:00Z", "name": "custom",
            "extensions": {"extension-definition--x": {"extension_type": "property-extension"}}
        })];
        for i in 0..n {
            objects.push(json!({
                "type": "ipv4-addr", "spec_version": "2.1",
                "id": format!("ipv4-addr--00000000-0000-4000-8000-{i:012}"),
                "value": format!("10.0.{}.{}", i / 256, i % 256),
                "object_marking_refs": [MARKING],
            }));
        }
        json!({"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000", "objects": objects})
    }

    #[test]
    fn parts_keep_every_object_once_in_order_with_the_markings_in_each() {
        let b = bundle(500);
        let text = serde_json::to_vec(&b).unwrap();
        let limit = 4096;
        let p = split(&text, limit).unwrap();
        assert_eq!(p.objects, 501);
        assert!(p.parts.len() > 5, "{}", p.parts.len());
        let mut ids = Vec::new();
        for part in &p.parts {
            assert!(part.len() <= limit, "{}", part.len());
            let v: Value = serde_json::from_slice(part).unwrap();
            assert_eq!(v["type"], "bundle");
            let objs = v["objects"].as_array().unwrap();
            assert_eq!(objs[0]["id"], MARKING);
            for o in &objs[1..] {
                ids.push(o["id"].as_str().unwrap().to_string());
            }
        }
        let want: Vec<String> = b["objects"].as_array().unwrap()[1..]
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, want);
        // The same bundle splits the same way (stable part ids).
        assert_eq!(split(&text, limit).unwrap().parts, p.parts);
    }

    #[test]
    fn a_bundle_that_fits_is_sent_whole_and_bad_input_is_refused() {
        let text = serde_json::to_vec(&bundle(3)).unwrap();
        assert_eq!(split(&text, 1 << 20).unwrap().parts, vec![text.clone()]);
        assert!(matches!(
            split(b"{\"type\":\"indicator\",\"objects\":[]}", 10),
            Err(SplitError::NotABundle(_))
        ));
        assert!(matches!(
            split(b"[1,2]", 10),
            Err(SplitError::NotABundle(_))
        ));
        assert!(matches!(
            split(b"{\"type\":\"bundle\"", 10),
            Err(SplitError::NotABundle(_))
        ));
        match split(&text, 500) {
            Err(SplitError::ObjectTooLarge { index, .. }) => assert_eq!(index, 1),
            other => panic!("{other:?}"),
        }
    }
}
