//! Turns a verified envelope into what the log and the index keep: the envelope's
//! canonical bytes and, per object, its byte range within them, content hash, TLP and
//! observable keys.
//!
//! RFC 8785 is compositional: the canonical form of an object or array is built from
//! the canonical forms of its members. So the envelope's canonical bytes are its signed
//! form with the `signature` member spliced in, and each object's canonical form is a
//! byte range of them (noted while the signed form was written). Object bodies are
//! stored once, inside the stored envelope.

use super::StoreError;
use super::record::{ObjectEntry, RetractedObject, RetractionEntry};
use crate::envelope::Envelope;
use crate::envelope::canonical::SignedForm;
use crate::stix::observable::keys_from_object;
use crate::stix::timestamp::Timestamp;
use crate::stix::tlp::{TlpResolver, references_unknown_marking};
use bytes::Bytes;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// An envelope ready to be logged and indexed.
#[derive(Debug)]
pub struct Prepared {
    /// RFC 8785 bytes of the whole envelope.
    pub bytes: Bytes,
    /// Its objects, with ranges into `bytes`.
    pub objects: Vec<ObjectEntry>,
    /// For a retraction: what it takes back.
    pub retraction: Option<RetractionEntry>,
}

/// Splits `type--uuid` into the type and the UUID as a number.
pub fn split_id(id: &str) -> Option<(&str, u128)> {
    let (t, u) = crate::stix::validate::split_identifier(id)?;
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
    let member = signature_member(signature);
    let ranges = object_ranges(env.signed_form(), member.len())
        .ok_or_else(|| corrupt("signed form is not a canonical envelope"))?;
    // An envelope received in its RFC 8785 form is stored as received: those bytes
    // are the signed form with the signature member in place, which is what the
    // splice would write out again.
    let bytes = match env.received_canonical() {
        Some(b) if b.len() == env.signed_form().bytes.len() + member.len() + 1 => b.clone(),
        _ => Bytes::from(
            with_signature(env.signed_form(), &member)
                .ok_or_else(|| corrupt("signed form is not a canonical envelope"))?,
        ),
    };
    let objects = env.objects();
    if ranges.len() != objects.len() {
        return Err(corrupt(
            "object count differs between value and signed form",
        ));
    }
    // Validation found the keys of the objects' patterns, when it ran on this
    // envelope (receipt, publish); otherwise (the log read at start-up) they are
    // found here.
    let known_keys = env.pattern_keys();
    // Likewise the objects' levels, found by the content check on receipt or noted
    // by the publish that signed the envelope.
    let known_levels = env.object_levels().filter(|l| l.len() == objects.len());
    let well_known = TlpResolver::new();
    let mut with_definitions: Option<TlpResolver> = None;
    let envelope_tlp = env.header().tlp;
    let mut entries = Vec::with_capacity(objects.len());
    for (i, (obj, &(off, len))) in objects.iter().zip(&ranges).enumerate() {
        let body = &bytes[off..off + len];
        let fields = Fields::of(obj);
        let id = fields.id.ok_or_else(|| corrupt("object without id"))?;
        let (type_name, uuid) = split_id(id)
            .ok_or_else(|| corrupt(format!("object id {id:?} is not <type>--<uuid>")))?;
        // Objects without a timestamp `modified` (cyber-observables, for which it is
        // an ordinary custom property if present) have one version.
        let modified = fields
            .modified
            .and_then(|m| Timestamp::parse(m).ok())
            .map_or(i64::MIN, |m| m.as_micros());
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
            tlp: if let Some(levels) = known_levels {
                levels[i]
            } else if references_unknown_marking(obj) {
                with_definitions
                    .get_or_insert_with(|| TlpResolver::for_objects(objects))
                    .effective_level(obj, envelope_tlp)
            } else {
                well_known.effective_level(obj, envelope_tlp)
            },
            revoked: fields.revoked,
            spec_21: fields.spec_version.is_none_or(|v| v == "2.1"),
            obs_keys: match known_keys.and_then(|k| k.get(i)).and_then(Option::as_ref) {
                // Copied as they are (not through `Display`, which grows each string).
                Some(keys) => keys.iter().map(|k| k.as_str().to_owned()).collect(),
                None => keys_from_object(obj)
                    .into_iter()
                    .map(String::from)
                    .collect(),
            },
        });
    }
    let retraction = env.retraction().map(|r| RetractionEntry {
        reason: r.reason,
        note: r.note.clone(),
        envelopes: r.envelopes.iter().map(|e| e.digest_bytes()).collect(),
        objects: r
            .objects
            .iter()
            .filter_map(|o| {
                let (t, uuid) = split_id(&o.id)?;
                Some(RetractedObject {
                    type_name: t.to_string(),
                    uuid,
                    modified: o.modified.map(|m| m.as_micros()),
                })
            })
            .collect(),
    });
    Ok(Prepared {
        bytes,
        objects: entries,
        retraction,
    })
}

/// The members of an object the index keeps, found in one walk over its members.
///
/// Four lookups by name cost a string comparison per tree level each, on a map last
/// touched when the object was checked (out of cache by now); this runs for every
/// stored object.
#[derive(Debug, Default)]
struct Fields<'a> {
    /// `id`, when a string.
    id: Option<&'a str>,
    /// `modified`, when a string.
    modified: Option<&'a str>,
    /// `revoked` is `true`.
    revoked: bool,
    /// `spec_version`, when a string.
    spec_version: Option<&'a str>,
}

impl<'a> Fields<'a> {
    fn of(obj: &'a Value) -> Fields<'a> {
        let mut f = Fields::default();
        let Value::Object(m) = obj else {
            return f;
        };
        for (k, v) in m {
            match k.as_str() {
                "id" => f.id = v.as_str(),
                "modified" => f.modified = v.as_str(),
                "revoked" => f.revoked = v.as_bool() == Some(true),
                "spec_version" => f.spec_version = v.as_str(),
                _ => {}
            }
        }
        f
    }
}

/// `(offset, length)` of an object's bytes.
type ByteRange = (usize, usize);

/// The `signature` member as RFC 8785 writes it (a base64url signature needs no
/// escape).
fn signature_member(signature: &str) -> String {
    format!("\"signature\":\"{signature}\"")
}

/// Where the `signature` member goes in the signed form, and whether it goes last
/// (before the closing brace); `None` if the signed form does not say so plainly.
fn splice_point(signed: &SignedForm) -> Option<(usize, bool)> {
    let bytes = &signed.bytes;
    let at = signed.signature_at;
    let closing = at + 1 == bytes.len();
    if at >= bytes.len() || (!closing && bytes.get(at) != Some(&b'"')) {
        return None;
    }
    Some((at, closing))
}

/// The canonical form of the whole envelope: the signed form with the `signature`
/// member (as [`signature_member`] writes it) spliced in where its key sorts (RFC 8785
/// is compositional).
fn with_signature(signed: &SignedForm, member: &str) -> Option<Vec<u8>> {
    let (at, closing) = splice_point(signed)?;
    let bytes = &signed.bytes;
    let mut out = Vec::with_capacity(bytes.len() + member.len() + 1);
    out.extend_from_slice(&bytes[..at]);
    if closing {
        if bytes.len() > 2 {
            out.push(b',');
        }
        out.extend_from_slice(member.as_bytes());
    } else {
        out.extend_from_slice(member.as_bytes());
        out.push(b',');
    }
    out.extend_from_slice(&bytes[at..]);
    Some(out)
}

/// The byte range of every object of the bundle in the whole envelope: the ranges
/// noted when the signed form was written, moved by the length of the `signature`
/// member (and its comma) for those after it.
fn object_ranges(signed: &SignedForm, member_len: usize) -> Option<Vec<ByteRange>> {
    let (at, _) = splice_point(signed)?;
    let shift = member_len + 1;
    Some(
        signed
            .objects
            .iter()
            .map(|&(off, len)| {
                if off >= at {
                    (off + shift, len)
                } else {
                    (off, len)
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::canonical::canonical_bytes;
    use crate::envelope::{EnvelopeMeta, Signer};
    use crate::stix::tlp::TlpLevel;
    use crate::workload::{GenOptions, bundle};

    /// The one-walk read finds what lookups by name find, and ignores members of
    /// the wrong type as they did.
    #[test]
    fn fields_are_what_lookups_by_name_find() {
        let cases = [
            serde_json::json!({"type": "indicator", "id": "indicator--1", "modified": "m",
                "revoked": true, "spec_version": "2.1", "name": "n"}),
            serde_json::json!({"id": "x--2", "revoked": false, "spec_version": "2.0"}),
            serde_json::json!({"id": 3, "modified": 4, "revoked": "true", "spec_version": null}),
            serde_json::json!({}),
            serde_json::json!(["id", "indicator--1"]),
        ];
        for obj in &cases {
            let f = Fields::of(obj);
            assert_eq!(f.id, obj.get("id").and_then(Value::as_str), "{obj}");
            assert_eq!(
                f.modified,
                obj.get("modified").and_then(Value::as_str),
                "{obj}"
            );
            assert_eq!(
                f.revoked,
                obj.get("revoked").and_then(Value::as_bool) == Some(true),
                "{obj}"
            );
            assert_eq!(
                f.spec_version,
                obj.get("spec_version").and_then(Value::as_str),
                "{obj}"
            );
        }
        assert!(Fields::of(&cases[0]).revoked);
        assert_eq!(Fields::of(&cases[0]).id, Some("indicator--1"));
        assert_eq!(
            split_id("attack-pattern--00000000-0000-4000-8000-000000000001").map(|(t, _)| t),
            Some("attack-pattern")
        );
        assert_eq!(
            split_id("attack-pattern-00000000-0000-4000-8000-000000000001"),
            None
        );
    }

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

        // Received in its canonical form, the envelope is stored as received: the same
        // bytes (shared, not copied) and the same ranges as the splice gives.
        let received = Envelope::from_bytes(p.bytes.clone()).unwrap();
        let shared = received.received_canonical().expect("canonical bytes kept");
        assert_eq!(shared.as_ptr(), p.bytes.as_ptr());
        let q = prepare(&received).unwrap();
        assert_eq!(q.bytes.as_ptr(), p.bytes.as_ptr(), "not copied");
        assert_eq!(q.objects, p.objects);
        // Bytes that are valid but not canonical (whitespace) are not kept: the
        // splice writes the canonical form.
        let mut spaced = b" ".to_vec();
        spaced.extend_from_slice(&p.bytes);
        let spaced = Envelope::from_bytes(spaced.into()).unwrap();
        assert!(spaced.received_canonical().is_none());
        let r = prepare(&spaced).unwrap();
        assert_eq!(r.bytes, p.bytes);
        assert_eq!(r.objects, p.objects);
    }
}
