//! Envelope signing and verification cost (`cargo bench --bench envelope`).
//!
//! Figures go to docs/benchmarks.md ("Envelopes"). Verification is measured three
//! ways because the totals hide where time goes: full verification (authority,
//! signature, STIX validation of every object, TLP consistency), the ed25519 check
//! alone, and parsing (strict JSON plus the RFC 8785 signed form) of received bytes.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use std::hint::black_box;
use synergia::envelope::canonical::{canonical_bytes, canonical_value};
use synergia::envelope::{Envelope, EnvelopeMeta, Signer, VerifyOptions, verify_batch};
use synergia::roster::{Member, Roster, RosterDocument, RosterKey, encode_public_key};
use synergia::stix::timestamp::Timestamp;
use synergia::stix::tlp::TlpLevel;
use synergia::workload::{self, GenOptions};

// The node's allocator, tuned as the node tunes it, so the figures are the node's.
synergia::use_node_allocator!();

const ORIGIN: &str = "kaspersky";
const KEY_ID: &str = "kaspersky-2026a";

fn gen_options(count: u64) -> GenOptions {
    GenOptions {
        count,
        seed: 7,
        origin: ORIGIN.into(),
        identity: None,
        overlap: 0.3,
        // One level keeps every envelope consistent with its `tlp`.
        tlp: Some(TlpLevel::Green),
    }
}

/// A bundle of exactly `n` synthetic objects (indicators, malware, relationships...).
/// With `n == 1` the single object is an indicator, the common unit of sharing.
fn bundle_of(n: usize) -> Value {
    let opts = gen_options(n as u64 + 1);
    let b = workload::bundle(&opts);
    let all = b["objects"].as_array().cloned().unwrap_or_default();
    let objects: Vec<Value> = if n == 1 {
        all.into_iter()
            .filter(|o| o["type"] == "indicator")
            .take(1)
            .collect()
    } else {
        all.into_iter().take(n).collect()
    };
    assert_eq!(objects.len(), n, "workload produced too few objects");
    json!({"type": "bundle", "id": b["id"], "objects": objects})
}

struct Fixture {
    signer: Signer,
    roster: Roster,
    opts: VerifyOptions,
}

fn fixture() -> Fixture {
    let key = SigningKey::from_bytes(&[42u8; 32]);
    let identity = workload::identity_of(&gen_options(1));
    let roster = Roster::from_document(RosterDocument {
        former: Vec::new(),
        kind: "synergia-roster".into(),
        federation: "bench".into(),
        members: vec![Member {
            name: ORIGIN.into(),
            identity: identity.clone(),
            node_url: "https://127.0.0.1:7103".into(),
            tls_san: format!("synergia://member/{ORIGIN}"),
            keys: vec![RosterKey {
                key_id: KEY_ID.into(),
                public_key: encode_public_key(&key.verifying_key()),
                not_before: "2026-01-01T00:00:00.000Z".into(),
                not_after: "2036-01-01T00:00:00.000Z".into(),
                revoked_at: None,
            }],
        }],
    })
    .expect("bench roster is valid");
    Fixture {
        signer: Signer {
            origin: ORIGIN.into(),
            origin_identity: identity,
            key_id: KEY_ID.into(),
            key,
        },
        roster,
        opts: VerifyOptions {
            now: Timestamp::parse("2026-11-27T04:00:00Z").expect("timestamp"),
            max_future_skew_secs: 300,
        },
    }
}

fn meta(seq: u64) -> EnvelopeMeta {
    EnvelopeMeta {
        seq,
        signed_at: Timestamp::parse("2026-11-27T03:44:23.123Z").expect("timestamp"),
        tlp: TlpLevel::Green,
        recipients: vec![],
    }
}

fn sign_and_verify(c: &mut Criterion) {
    let f = fixture();
    let mut g = c.benchmark_group("envelope");
    for n in [1usize, 1000] {
        let bundle = bundle_of(n);
        let env = Envelope::sign(bundle.clone(), &f.signer, meta(1)).expect("sign");
        env.verify(&f.roster, &f.opts)
            .expect("bench envelope verifies");
        let wire = serde_json::to_vec(&Value::Object(env.as_json().clone())).expect("encode");
        let key = f
            .roster
            .key(ORIGIN, KEY_ID)
            .expect("roster key")
            .verifying_key;
        let sig = {
            use base64::Engine as _;
            let text = env.as_json()["signature"].as_str().expect("signature");
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text)
                .expect("base64");
            ed25519_dalek::Signature::from_slice(&raw).expect("64 bytes")
        };
        g.throughput(Throughput::Elements(1));
        // Signing includes the RFC 8785 form of the bundle; the clone is the
        // caller's (sign takes ownership of the bundle it wraps).
        g.bench_with_input(BenchmarkId::new("sign", n), &bundle, |b, bundle| {
            b.iter(|| Envelope::sign(black_box(bundle.clone()), &f.signer, meta(1)))
        });
        g.bench_with_input(BenchmarkId::new("verify", n), &env, |b, env| {
            b.iter(|| black_box(env).verify(&f.roster, &f.opts))
        });
        g.bench_with_input(
            BenchmarkId::new("verify-signature-only", n),
            &env,
            |b, env| b.iter(|| key.verify_strict(black_box(env.signed_bytes()), &sig)),
        );
        g.bench_with_input(BenchmarkId::new("parse", n), &wire, |b, wire| {
            b.iter(|| Envelope::from_slice(black_box(wire)))
        });
        g.bench_with_input(BenchmarkId::new("parse-and-verify", n), &wire, |b, wire| {
            b.iter(|| {
                Envelope::from_slice(black_box(wire)).and_then(|e| e.verify(&f.roster, &f.opts))
            })
        });
    }
    g.finish();
}

fn batch(c: &mut Criterion) {
    let f = fixture();
    let bundle = bundle_of(1);
    let envs: Vec<Envelope> = (1..=64)
        .map(|seq| Envelope::sign(bundle.clone(), &f.signer, meta(seq)).expect("sign"))
        .collect();
    assert!(
        verify_batch(&envs, &f.roster, &f.opts)
            .iter()
            .all(Result::is_ok)
    );
    let mut g = c.benchmark_group("envelope-batch");
    g.throughput(Throughput::Elements(envs.len() as u64));
    g.bench_function("verify_batch/64", |b| {
        b.iter(|| verify_batch(black_box(&envs), &f.roster, &f.opts))
    });
    g.bench_function("verify-each/64", |b| {
        b.iter(|| {
            black_box(&envs)
                .iter()
                .map(|e| e.verify(&f.roster, &f.opts))
                .collect::<Vec<_>>()
        })
    });
    g.finish();
}

fn canonicalisation(c: &mut Criterion) {
    // The objects array of a 10,000-indicator bundle (about 13,000 objects).
    let objects = workload::bundle(&gen_options(10_000))["objects"].clone();
    let bytes = canonical_value(&objects).expect("canonical");
    assert_eq!(bytes, canonical_bytes(&objects).expect("canonical"));
    let size = bytes.len();
    let mut g = c.benchmark_group("rfc8785");
    g.throughput(Throughput::Bytes(size as u64));
    g.sample_size(20);
    // What the envelope code uses: written directly from the JSON tree.
    g.bench_function(format!("objects/{size}B"), |b| {
        b.iter(|| canonical_value(black_box(&objects)))
    });
    // The general serde serializer, for comparison (same bytes).
    g.bench_function(format!("objects-serde-serializer/{size}B"), |b| {
        b.iter(|| canonical_bytes(black_box(&objects)))
    });
    g.finish();
}

criterion_group!(benches, sign_and_verify, batch, canonicalisation);
criterion_main!(benches);
