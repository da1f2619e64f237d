//! The published envelope test vectors (docs/test-vectors/envelope-v1/) are what this
//! implementation produces, byte for byte. Another implementation checks itself
//! against the same files.
//!
//! Regenerate (only when the format changes, together with docs/protocol.md):
//! `SYNERGIA_WRITE_VECTORS=1 cargo test --test conformance test_vectors`.

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{EncodePrivateKey as _, spki::der::pem::LineEnding};
use serde_json::{Value, json};
use synergia::envelope::retraction::ObjectTarget;
use synergia::envelope::{Envelope, EnvelopeMeta, Reason, Retraction, Signer, VerifyOptions};
use synergia::roster::{Member, Roster, RosterDocument, RosterKey, encode_public_key};
use synergia::stix::timestamp::Timestamp;
use synergia::stix::tlp::TlpLevel;

fn seed() -> [u8; 32] {
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = i as u8;
    }
    s
}

fn bundle() -> Value {
    json!({
        "type": "bundle",
        "id": "bundle--0d3c6a8e-3b44-4a7f-9d55-5a0c7b2d1e10",
        "objects": [{
            "type": "indicator",
            "spec_version": "2.1",
            "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
            "created": "2026-11-27T03:40:00.000Z",
            "modified": "2026-11-27T03:40:00.000Z",
            "name": "C2 server 203.0.113.7",
            "indicator_types": ["malicious-activity"],
            "pattern": "[ipv4-addr:value = '203.0.113.7']",
            "pattern_type": "stix",
            "pattern_version": "2.1",
            "valid_from": "2026-11-27T03:40:00Z",
            "confidence": 85,
            "object_marking_refs": ["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"]
        }]
    })
}

const IDENTITY: &str = "identity--b8a6d1f0-4b5a-4c3e-9a57-2f0e0b6c1d2e";

fn roster(key: &SigningKey) -> RosterDocument {
    RosterDocument {
        former: Vec::new(),
        kind: "synergia-roster".into(),
        federation: "test-vectors".into(),
        members: vec![Member {
            name: "kaspersky".into(),
            identity: IDENTITY.into(),
            node_url: "https://127.0.0.1:7103".into(),
            tls_san: "synergia://member/kaspersky".into(),
            keys: vec![RosterKey {
                key_id: "kaspersky-2026a".into(),
                public_key: encode_public_key(&key.verifying_key()),
                not_before: "2026-01-01T00:00:00.000Z".into(),
                not_after: "2036-01-01T00:00:00.000Z".into(),
                revoked_at: None,
            }],
        }],
    }
}

#[test]
fn published_vectors_match() {
    let dir = crate::common::workspace().join("docs/test-vectors/envelope-v1");
    let key = SigningKey::from_bytes(&seed());
    let signer = Signer {
        origin: "kaspersky".into(),
        origin_identity: IDENTITY.into(),
        key_id: "kaspersky-2026a".into(),
        key: key.clone(),
    };
    let meta = EnvelopeMeta {
        seq: 17,
        signed_at: Timestamp::parse("2026-11-27T03:44:23.123Z").unwrap(),
        tlp: TlpLevel::Green,
        recipients: vec![],
    };
    let env = Envelope::sign(bundle(), &signer, meta).unwrap();
    let mut files = vector_files(&key, &env, "envelope");
    files.push((
        "signing-key.pem".into(),
        key.to_pkcs8_pem(LineEnding::LF)
            .unwrap()
            .as_bytes()
            .to_vec(),
    ));
    check_files(&dir, &files);
    // The published envelope verifies against the published roster.
    let r = Roster::from_document(roster(&key)).unwrap();
    let published =
        Envelope::from_slice(&std::fs::read(dir.join("envelope.json")).unwrap()).unwrap();
    let opts = VerifyOptions {
        now: Timestamp::parse("2026-11-27T04:00:00Z").unwrap(),
        ..Default::default()
    };
    published.verify(&r, &opts).unwrap();
    assert_eq!(
        published.id().as_str(),
        std::str::from_utf8(&std::fs::read(dir.join("envelope-id.txt")).unwrap()).unwrap()
    );
}

/// The files of a vector signed with `key`: the key, the roster, the signed document
/// (`<kind>.json`, pretty), its signed form, canonical form, id and signature.
fn vector_files(key: &SigningKey, env: &Envelope, kind: &str) -> Vec<(String, Vec<u8>)> {
    let seed: String = seed().iter().map(|b| format!("{b:02x}")).collect();
    vec![
        ("seed.hex".into(), seed.into_bytes()),
        (
            "public-key.txt".into(),
            encode_public_key(&key.verifying_key()).into_bytes(),
        ),
        (
            "roster.json".into(),
            serde_json::to_vec_pretty(&roster(key)).unwrap(),
        ),
        (
            format!("{kind}.json"),
            serde_json::to_vec_pretty(&Value::Object(env.as_json().clone())).unwrap(),
        ),
        ("signed-canonical.json".into(), env.signed_bytes().to_vec()),
        (format!("{kind}-canonical.json"), env.to_canonical_bytes()),
        (
            format!("{kind}-id.txt"),
            env.id().as_str().as_bytes().to_vec(),
        ),
        (
            "signature.txt".into(),
            env.as_json()["signature"]
                .as_str()
                .unwrap()
                .as_bytes()
                .to_vec(),
        ),
    ]
}

/// Writes (with `SYNERGIA_WRITE_VECTORS`) or compares the files of one vector.
fn check_files(dir: &std::path::Path, files: &[(String, Vec<u8>)]) {
    if std::env::var_os("SYNERGIA_WRITE_VECTORS").is_some() {
        std::fs::create_dir_all(dir).unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    for (name, bytes) in files {
        let published = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            &published, bytes,
            "{name} differs from the published vector"
        );
    }
}

/// docs/test-vectors/retraction-v1/: the same member takes back the envelope of
/// envelope-v1 (and names its indicator's version), protocol §11.
#[test]
fn published_retraction_vectors_match() {
    let root = crate::common::workspace().join("docs/test-vectors");
    let dir = root.join("retraction-v1");
    let key = SigningKey::from_bytes(&seed());
    let signer = Signer {
        origin: "kaspersky".into(),
        origin_identity: IDENTITY.into(),
        key_id: "kaspersky-2026a".into(),
        key: key.clone(),
    };
    let envelope_id = std::fs::read_to_string(root.join("envelope-v1/envelope-id.txt")).unwrap();
    let retraction = Retraction {
        envelopes: vec![synergia::envelope::EnvelopeId::parse(&envelope_id).unwrap()],
        objects: vec![
            ObjectTarget::parse_cli(
                "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f@2026-11-27T03:40:00.000Z",
            )
            .unwrap(),
        ],
        reason: Reason::FalsePositive,
        note: "203.0.113.7 is a CDN edge, not a C2 server".into(),
    };
    let meta = EnvelopeMeta {
        seq: 18,
        signed_at: Timestamp::parse("2026-11-28T09:00:00.000Z").unwrap(),
        tlp: TlpLevel::Green,
        recipients: vec![],
    };
    let env = Envelope::sign_retraction(retraction, &signer, meta).unwrap();
    let files = vector_files(&key, &env, "retraction");
    check_files(&dir, &files);
    let r = Roster::from_document(roster(&key)).unwrap();
    let published =
        Envelope::from_slice(&std::fs::read(dir.join("retraction.json")).unwrap()).unwrap();
    let opts = VerifyOptions {
        now: Timestamp::parse("2026-11-28T09:30:00Z").unwrap(),
        ..Default::default()
    };
    published.verify(&r, &opts).unwrap();
    assert_eq!(
        published.retraction().unwrap().reason,
        Reason::FalsePositive
    );
    // Any change to what it names breaks the signature.
    let mut tampered: Value =
        serde_json::from_slice(&std::fs::read(dir.join("retraction.json")).unwrap()).unwrap();
    tampered["retraction"]["reason"] = "test-data".into();
    let e = Envelope::from_value(tampered)
        .unwrap()
        .verify(&r, &opts)
        .unwrap_err();
    assert_eq!(e.code(), "bad-signature");
}

#[test]
fn an_independent_implementation_agrees() {
    let py = crate::common::reference_python();
    let root = crate::common::workspace();
    for vector in ["envelope-v1", "retraction-v1"] {
        let out = std::process::Command::new(&py)
            .arg(root.join("tests/py/check_vectors.py"))
            .arg(root.join("docs/test-vectors").join(vector))
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stdout == b"ok\n",
            "{vector}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
