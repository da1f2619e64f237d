//! Envelopes through what a node does with one a peer sends: parse, then verify
//! against a fixed roster (the published test-vector roster, plus a revoked key and a
//! second member), one at a time and in a batch.
//!
//! Three modes, chosen by the first input byte:
//! - raw: the rest of the input is the envelope's bytes;
//! - mutate: a validly signed envelope (one of a few templates) is serialised, then
//!   edited byte by byte as the input says (flip, insert, delete, truncate);
//! - re-sign: the rest of the input is a bundle, signed with a roster key, so the
//!   content checks behind a valid signature see arbitrary bundles.
//!
//! Checks that nothing panics; that single and batch verification give the same
//! result; that an accepted envelope's canonical form (what nodes store and forward)
//! parses and verifies again with the same id; and, in the mutate mode, that an
//! accepted edit is the signed envelope itself (same id, same canonical bytes): no
//! accepted envelope differs in anything the signature covers, nor in the signature.
#![no_main]

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::OnceLock;
use synergia::envelope::{Envelope, EnvelopeMeta, Signer, VerifyOptions, verify_batch};
use synergia::roster::{Member, Roster, RosterDocument, RosterKey, encode_public_key};
use synergia::stix::timestamp::Timestamp;
use synergia::stix::tlp::{ALL_LEVELS, TlpLevel};
use synergia::workload::{GenOptions, bundle};

const VECTOR_ROSTER: &str = include_str!("../../../docs/test-vectors/envelope-v1/roster.json");
const VECTOR_ENVELOPE: &[u8] =
    include_bytes!("../../../docs/test-vectors/envelope-v1/envelope.json");
/// The test-vector signing key (`seed.hex`).
const VECTOR_SEED: [u8; 32] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    26, 27, 28, 29, 30, 31,
];
const INTERPOL_IDENTITY: &str = "identity--0b0a0f36-5b0e-4d8a-9f0a-0d6f8c3a1b2c";

struct Fixture {
    roster: Roster,
    opts: VerifyOptions,
    /// kaspersky's current key, kaspersky's revoked key, interpol's key.
    signers: Vec<Signer>,
    /// Validly signed envelopes (one signed after its key's revocation).
    templates: Vec<Envelope>,
}

fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).expect("fixed timestamp")
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut doc: RosterDocument = serde_json::from_str(VECTOR_ROSTER).expect("vector roster");
        let kaspersky_identity = doc.members[0].identity.clone();
        let signer = |origin: &str, identity: &str, key_id: &str, seed: [u8; 32]| Signer {
            origin: origin.into(),
            origin_identity: identity.into(),
            key_id: key_id.into(),
            key: SigningKey::from_bytes(&seed),
        };
        let signers = vec![
            signer(
                "kaspersky",
                &kaspersky_identity,
                "kaspersky-2026a",
                VECTOR_SEED,
            ),
            signer(
                "kaspersky",
                &kaspersky_identity,
                "kaspersky-2026r",
                [0x42; 32],
            ),
            signer("interpol", INTERPOL_IDENTITY, "interpol-2026a", [0x17; 32]),
        ];
        let key = |s: &Signer, revoked_at: Option<&str>| RosterKey {
            key_id: s.key_id.clone(),
            public_key: encode_public_key(&s.key.verifying_key()),
            not_before: "2026-01-01T00:00:00.000Z".into(),
            not_after: "2036-01-01T00:00:00.000Z".into(),
            revoked_at: revoked_at.map(str::to_string),
        };
        doc.members[0]
            .keys
            .push(key(&signers[1], Some("2026-10-01T00:00:00.000Z")));
        doc.members.push(Member {
            name: "interpol".into(),
            identity: INTERPOL_IDENTITY.into(),
            node_url: "https://127.0.0.1:7105".into(),
            tls_san: "synergia://member/interpol".into(),
            keys: vec![key(&signers[2], None)],
        });
        let roster = Roster::from_document(doc).expect("fuzz roster");
        let gen_bundle = |origin: &str, identity: &str, count, tlp| {
            bundle(&GenOptions {
                count,
                seed: 7,
                origin: origin.into(),
                identity: Some(identity.into()),
                overlap: 0.5,
                tlp: Some(tlp),
            })
        };
        let sign = |b: Value, s: &Signer, seq, at: &str, tlp, recipients: &[&str]| {
            let meta = EnvelopeMeta {
                seq,
                signed_at: ts(at),
                tlp,
                recipients: recipients.iter().map(|r| r.to_string()).collect(),
            };
            Envelope::sign(b, s, meta).expect("template signs")
        };
        let templates = vec![
            Envelope::from_slice(VECTOR_ENVELOPE).expect("vector envelope"),
            sign(
                gen_bundle("kaspersky", &kaspersky_identity, 3, TlpLevel::Amber),
                &signers[0],
                18,
                "2026-11-27T03:50:00.000Z",
                TlpLevel::Amber,
                &[],
            ),
            sign(
                gen_bundle("kaspersky", &kaspersky_identity, 2, TlpLevel::Red),
                &signers[0],
                19,
                "2026-11-27T03:51:00.000Z",
                TlpLevel::Red,
                &["interpol"],
            ),
            sign(
                gen_bundle("kaspersky", &kaspersky_identity, 1, TlpLevel::Green),
                &signers[1],
                20,
                "2026-11-20T00:00:00.000Z",
                TlpLevel::Green,
                &[],
            ),
            sign(
                gen_bundle("interpol", INTERPOL_IDENTITY, 2, TlpLevel::Clear),
                &signers[2],
                1,
                "2026-11-27T03:52:00.000Z",
                TlpLevel::Clear,
                &[],
            ),
        ];
        let opts = VerifyOptions {
            now: ts("2026-11-27T04:00:00.000Z"),
            max_future_skew_secs: 300,
        };
        Fixture {
            roster,
            opts,
            signers,
            templates,
        }
    })
}

/// Parses and verifies; checks single against batch verification and that an accepted
/// envelope survives its canonical form. Returns the envelope when it is accepted.
fn check(fx: &Fixture, bytes: &[u8]) -> Option<Envelope> {
    let env = Envelope::from_slice(bytes).ok()?;
    let single = env.verify(&fx.roster, &fx.opts);
    // A batch with a good envelope beside it: the batch equation fails whenever this
    // signature is bad, so the per-envelope fallback runs too.
    let batch = verify_batch(
        &[env.clone(), fx.templates[0].clone()],
        &fx.roster,
        &fx.opts,
    );
    assert_eq!(batch[0], single, "batch and single verification disagree");
    assert_eq!(batch[1], Ok(()), "a good envelope refused in a batch");
    if single.is_err() {
        return None;
    }
    let again = Envelope::from_slice(&env.to_canonical_bytes())
        .expect("the canonical form of an accepted envelope parses");
    assert_eq!(again.id(), env.id());
    assert_eq!(again.verify(&fx.roster, &fx.opts), Ok(()));
    Some(env)
}

/// Edits `bytes` as `ops` says, three bytes per edit: kind, position, value.
fn mutate(bytes: &mut Vec<u8>, ops: &[u8]) {
    for op in ops.chunks_exact(3).take(8) {
        let pos = (usize::from(op[1]) << 8 | usize::from(op[2])) % (bytes.len() + 1);
        let value = op[2];
        match op[0] % 5 {
            0 if pos < bytes.len() => bytes[pos] ^= 1 << (value % 8),
            1 => bytes.insert(pos, value),
            2 if pos < bytes.len() => {
                bytes.remove(pos);
            }
            3 => bytes.insert(pos, b' '),
            4 => bytes.truncate(pos),
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let fx = fixture();
    match mode % 3 {
        0 => {
            check(fx, rest);
        }
        1 => {
            let Some((&pick, ops)) = rest.split_first() else {
                return;
            };
            let template = &fx.templates[usize::from(pick) % fx.templates.len()];
            let mut bytes = if pick & 0x80 != 0 {
                serde_json::to_vec_pretty(template.as_json()).expect("serialises")
            } else {
                template.to_canonical_bytes()
            };
            mutate(&mut bytes, ops);
            if let Some(env) = check(fx, &bytes) {
                assert_eq!(env.id(), template.id(), "an edited envelope verified");
                assert_eq!(
                    env.to_canonical_bytes(),
                    template.to_canonical_bytes(),
                    "an envelope with an edited signature verified"
                );
            }
        }
        _ => {
            let Some((&pick, bundle_bytes)) = rest.split_first() else {
                return;
            };
            let Ok(bundle) = synergia::json::from_slice_strict(bundle_bytes) else {
                return;
            };
            let signer = &fx.signers[usize::from(pick % 3)];
            let tlp = ALL_LEVELS[usize::from(pick >> 2) % ALL_LEVELS.len()];
            let recipients = if pick & 0x80 != 0 {
                vec!["interpol".to_string()]
            } else {
                vec![]
            };
            let meta = EnvelopeMeta {
                seq: 1 + u64::from(pick),
                signed_at: ts("2026-11-27T03:59:00.000Z"),
                tlp,
                recipients,
            };
            let Ok(env) = Envelope::sign(bundle, signer, meta) else {
                return;
            };
            check(fx, &env.to_canonical_bytes());
        }
    }
});
