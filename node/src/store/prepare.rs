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
use crate::envelope::canonical::canonical_bytes;
use crate::stix::observable::keys_from_object;
use crate::stix::timestamp::Timestamp;
use crate::stix::tlp::TlpResolver;
use serde_json::{Map, Value};
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
    let objects = env.objects();
    let resolver = TlpResolver::for_objects(objects);
    let envelope_tlp = env.header().tlp;
    let mut entries = Vec::with_capacity(objects.len());
    let mut bodies = Vec::with_capacity(objects.len());
    for obj in objects {
        let body = canonical_bytes(obj).map_err(|e| corrupt(e.to_string()))?;
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
        let digest = Sha256::digest(&body);
        let mut hash = [0u8; 16];
        hash.copy_from_slice(&digest[..16]);
        entries.push(ObjectEntry {
            type_name: type_name.to_string(),
            uuid,
            modified,
            hash,
            body_off: 0,
            body_len: body.len() as u32,
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
        bodies.push(body);
    }

    // The envelope with a placeholder instead of its objects.
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| StoreError::Engine(format!("no randomness: {e}")))?;
    let placeholder: String = std::iter::once("synergia-objects-".to_string())
        .chain(nonce.iter().map(|b| format!("{b:02x}")))
        .collect();
    let mut shell = Map::new();
    for (k, v) in env.as_json() {
        if k == "bundle" {
            let mut b = Map::new();
            if let Value::Object(bm) = v {
                for (bk, bv) in bm {
                    if bk != "objects" {
                        b.insert(bk.clone(), bv.clone());
                    }
                }
            }
            b.insert(
                "objects".into(),
                Value::Array(vec![Value::String(placeholder.clone())]),
            );
            shell.insert(k.clone(), Value::Object(b));
        } else {
            shell.insert(k.clone(), v.clone());
        }
    }
    let shell = canonical_bytes(&shell).map_err(|e| corrupt(e.to_string()))?;
    let quoted = format!("\"{placeholder}\"");
    let at = find(&shell, quoted.as_bytes()).ok_or_else(|| corrupt("placeholder not found"))?;
    let total: usize = bodies.iter().map(|b| b.len() + 1).sum();
    let mut bytes = Vec::with_capacity(shell.len() + total);
    bytes.extend_from_slice(&shell[..at]);
    for (i, (body, entry)) in bodies.iter().zip(entries.iter_mut()).enumerate() {
        if i > 0 {
            bytes.push(b',');
        }
        entry.body_off = bytes.len() as u32;
        bytes.extend_from_slice(body);
    }
    bytes.extend_from_slice(&shell[at + quoted.len()..]);
    Ok(Prepared {
        bytes,
        objects: entries,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
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
