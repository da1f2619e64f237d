//! Turns a verified envelope into what the log and the index keep: the envelope's
//! canonical bytes and, per object, its byte range within them, content hash, TLP and
//! observable keys.
//!
//! RFC 8785 is compositional: the canonical form of an array is `[` + the canonical
//! forms of its elements joined by `,` + `]`. So the envelope's canonical bytes are
//! built from the canonical form of the envelope with a random placeholder in place of
//! the objects, with each object's own canonical form spliced in. Every object's body
//! is then a byte range of the stored envelope: object bodies are stored once.

use super::StoreError;
use super::record::ObjectEntry;
use crate::envelope::Envelope;
use crate::stix::observable::keys_from_object;
use crate::stix::timestamp::Timestamp;
use crate::stix::tlp::TlpResolver;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// An envelope ready to be logged and indexed.
#[derive(Debug)]
pub struct Prepared {
    /// RFC 8785 bytes of the whole envelope.
    pub bytes: Vec<u8>,
    /// Its objects, with ranges into `bytes`.
    pub objects: Vec<ObjectEntry>,
}

/// Splits `type--uuid` into the type and the UUID as a number.
pub fn split_id(id: &str) -> Option<(&str, u128)> {
    let (t, u) = id.split_once("--")?;
    let u = uuid::Uuid::parse_str(u).ok()?;
    Some((t, u.as_u128()))
}

fn corrupt(msg: impl Into<String>) -> StoreError {
    StoreError::Rejected(msg.into())
}

/// Prepares a (verified) envelope.
pub fn prepare(env: &Envelope) -> Result<Prepared, StoreError> {
    let signature = env
        .as_json()
        .get("signature")
        .and_then(Value::as_str)
        .ok_or_else(|| corrupt("envelope without signature"))?;
    let (bytes, ranges) = canonical_with_object_ranges(env.signed_bytes(), signature)
        .ok_or_else(|| corrupt("signed form is not a canonical envelope"))?;
    let objects = env.objects();
    if ranges.len() != objects.len() {
        return Err(corrupt(
            "object count differs between value and signed form",
        ));
    }
    let resolver = TlpResolver::for_objects(objects);
    let envelope_tlp = env.header().tlp;
    let mut entries = Vec::with_capacity(objects.len());
    for (obj, &(off, len)) in objects.iter().zip(&ranges) {
        let body = &bytes[off..off + len];
        let id = obj
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| corrupt("object without id"))?;
        let (type_name, uuid) = split_id(id)
            .ok_or_else(|| corrupt(format!("object id {id:?} is not <type>--<uuid>")))?;
        let modified = match obj.get("modified").and_then(Value::as_str) {
            Some(m) => Timestamp::parse(m)
                .map_err(|e| corrupt(format!("{id}: modified: {e}")))?
                .as_micros(),
            None => i64::MIN,
        };
        let digest = Sha256::digest(body);
        let mut hash = [0u8; 16];
        hash.copy_from_slice(&digest[..16]);
        entries.push(ObjectEntry {
            type_name: type_name.to_string(),
            uuid,
            modified,
            hash,
            body_off: off as u32,
            body_len: len as u32,
            tlp: resolver.effective_level(obj, envelope_tlp),
            revoked: obj.get("revoked").and_then(Value::as_bool) == Some(true),
            spec_21: obj
                .get("spec_version")
                .and_then(Value::as_str)
                .is_none_or(|v| v == "2.1"),
            obs_keys: keys_from_object(obj)
                .iter()
                .map(|k| k.to_string())
                .collect(),
        });
    }
    Ok(Prepared {
        bytes,
        objects: entries,
    })
}

// ---- A scanner for canonical (whitespace-free, valid) JSON ----
//
// The signed form already holds every object's canonical bytes; re-canonicalising
// each object would double the most expensive step of ingest. These helpers walk the
// signed bytes structurally instead.

fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    i += 1;
    loop {
        match *b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

fn skip_value(b: &[u8], mut i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match *b.get(i)? {
                    b'"' => {
                        i = skip_string(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            while !matches!(*b.get(i)?, b',' | b'}' | b']') {
                i += 1;
            }
            Some(i)
        }
    }
}

/// `(offset, length)` of an object's bytes.
type ByteRange = (usize, usize);

/// One member of a canonical JSON object.
struct MemberAt<'a> {
    /// Index of the key's opening quote.
    start: usize,
    /// The key, without quotes.
    key: &'a [u8],
    /// Index of the value's first byte.
    value: usize,
}

/// Members of the object starting at `i`.
fn members(b: &[u8], mut i: usize) -> Option<Vec<MemberAt<'_>>> {
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut out = Vec::new();
    if b.get(i) == Some(&b'}') {
        return Some(out);
    }
    loop {
        let k_end = skip_string(b, i)?;
        let key = b.get(i + 1..k_end - 1)?;
        if b.get(k_end) != Some(&b':') {
            return None;
        }
        let v_start = k_end + 1;
        let v_end = skip_value(b, v_start)?;
        out.push(MemberAt {
            start: i,
            key,
            value: v_start,
        });
        match *b.get(v_end)? {
            b',' => i = v_end + 1,
            b'}' => return Some(out),
            _ => return None,
        }
    }
}

/// From the signed canonical form (envelope without `signature`) and the signature,
/// the canonical form of the whole envelope and the byte range of every object of its
/// bundle.
fn canonical_with_object_ranges(
    signed: &[u8],
    signature: &str,
) -> Option<(Vec<u8>, Vec<ByteRange>)> {
    let top = members(signed, 0)?;
    // `signature` goes before the first member that sorts after it (keys are ASCII
    // here, so byte order is RFC 8785's UTF-16 order), or before the closing brace.
    let after = top.iter().find(|m| m.key > b"signature".as_slice());
    let insert_at = after.map_or(signed.len() - 1, |m| m.start);
    let member = format!("\"signature\":\"{signature}\"");
    let mut out = Vec::with_capacity(signed.len() + member.len() + 1);
    out.extend_from_slice(&signed[..insert_at]);
    if after.is_some() {
        out.extend_from_slice(member.as_bytes());
        out.push(b',');
    } else {
        out.push(b',');
        out.extend_from_slice(member.as_bytes());
    }
    out.extend_from_slice(&signed[insert_at..]);
    let shift = member.len() + 1;

    let bundle_at = top.iter().find(|m| m.key == b"bundle")?.value;
    let objects_at = members(signed, bundle_at)?
        .into_iter()
        .find(|m| m.key == b"objects")?
        .value;
    if signed.get(objects_at) != Some(&b'[') {
        return None;
    }
    let mut ranges = Vec::new();
    let mut i = objects_at + 1;
    if signed.get(i) != Some(&b']') {
        loop {
            let end = skip_value(signed, i)?;
            ranges.push((i, end - i));
            match *signed.get(end)? {
                b',' => i = end + 1,
                b']' => break,
                _ => return None,
            }
        }
    }
    // Byte ranges are in `out`: shifted when the signature went in before them.
    if insert_at <= objects_at {
        for r in &mut ranges {
            r.0 += shift;
        }
    }
    Some((out, ranges))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::canonical::canonical_bytes;
    use crate::envelope::{EnvelopeMeta, Signer};
    use crate::stix::tlp::TlpLevel;
    use crate::workload::{GenOptions, bundle};

    #[test]
    fn spliced_bytes_are_the_canonical_envelope_and_ranges_are_objects() {
        let b = bundle(&GenOptions {
            count: 150,
            seed: 3,
            origin: "kaspersky".into(),
            identity: None,
            overlap: 0.3,
            tlp: None,
        });
        let signer = Signer {
            origin: "kaspersky".into(),
            origin_identity: "identity--6b0a0f36-5b0e-4d8a-9f0a-0d6f8c3a1b2c".into(),
            key_id: "k".into(),
            key: ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
        };
        let env = Envelope::sign(
            b,
            &signer,
            EnvelopeMeta {
                seq: 1,
                signed_at: Timestamp::now(),
                tlp: TlpLevel::Amber,
                recipients: vec![],
            },
        )
        .unwrap();
        let p = prepare(&env).unwrap();
        assert_eq!(p.bytes, env.to_canonical_bytes());
        for (e, o) in p.objects.iter().zip(env.objects()) {
            let range = &p.bytes[e.body_off as usize..(e.body_off + e.body_len) as usize];
            assert_eq!(range, canonical_bytes(o).unwrap().as_slice());
        }
        let ind = p
            .objects
            .iter()
            .find(|o| o.type_name == "indicator")
            .unwrap();
        assert_eq!(ind.obs_keys.len(), 1, "{:?}", ind.obs_keys);
        // Re-parsing the stored bytes gives the same envelope.
        assert_eq!(Envelope::from_slice(&p.bytes).unwrap().id(), env.id());
    }
}
