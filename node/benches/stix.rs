//! Throughput of the STIX hot paths every ingested bundle goes through: strict JSON
//! parsing plus validation, pattern parsing, and observable key extraction.
//!
//! Run with `cargo bench --bench stix`; `docs/benchmarks.md` records the figures and
//! the target (parse + validate at least 150,000 objects/s on one core).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;
use std::hint::black_box;
use std::time::Duration;
use synergia::stix::{observable, pattern, validate};
use synergia::workload::{GenOptions, write_bundle};

// The node's allocator, tuned as the node tunes it, so the figures are the node's.
synergia::use_node_allocator!();

fn opts(count: u64) -> GenOptions {
    GenOptions {
        count,
        seed: 7,
        origin: "kaspersky".into(),
        identity: None,
        overlap: 0.3,
        tlp: None,
    }
}

/// A generated bundle as bytes, with its object count.
fn bundle_bytes(count: u64) -> (Vec<u8>, u64) {
    let mut buf = Vec::new();
    let n = write_bundle(&opts(count), &mut buf).expect("writing to memory cannot fail");
    (buf, n)
}

fn parse_and_validate(c: &mut Criterion) {
    let (bytes, objects) = bundle_bytes(100_000);
    let mut g = c.benchmark_group("stix-parse-validate");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(objects));
    g.bench_function(BenchmarkId::new("bundle", "100k-indicators"), |b| {
        b.iter(|| {
            let doc = synergia::json::from_slice_strict(black_box(&bytes)).expect("parses");
            let report = validate::validate_bundle(&doc);
            assert!(report.is_valid());
            report
        })
    });
    g.bench_function(BenchmarkId::new("parse-only", "100k-indicators"), |b| {
        b.iter(|| synergia::json::from_slice_strict(black_box(&bytes)).expect("parses"))
    });
    // The same strict parse through serde alone: the baseline of the direct parser.
    g.bench_function(
        BenchmarkId::new("parse-only-serde", "100k-indicators"),
        |b| b.iter(|| synergia::json::from_slice_strict_serde(black_box(&bytes)).expect("parses")),
    );
    g.bench_function(BenchmarkId::new("parse-parallel", "100k-indicators"), |b| {
        b.iter(|| synergia::json::from_slice_strict_parallel(black_box(&bytes)).expect("parses"))
    });
    let doc = synergia::json::from_slice_strict(&bytes).expect("parses");
    g.bench_function(BenchmarkId::new("validate-only", "100k-indicators"), |b| {
        b.iter(|| validate::validate_bundle(black_box(&doc)))
    });
    g.finish();
}

/// The indicators' patterns and the objects of a 10,000-indicator bundle.
fn sample_objects() -> Vec<Value> {
    let (bytes, _) = bundle_bytes(10_000);
    let doc = synergia::json::from_slice_strict(&bytes).expect("parses");
    match doc.get("objects") {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    }
}

fn patterns(c: &mut Criterion) {
    let objects = sample_objects();
    let mut pats: Vec<String> = objects
        .iter()
        .filter_map(|o| o.get("pattern").and_then(Value::as_str).map(String::from))
        .collect();
    // A few compound patterns so the benchmark is not only single comparisons.
    pats.extend([
        "[file:hashes.'SHA-256' = 'aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f' AND file:size > 1024] FOLLOWEDBY [network-traffic:dst_ref.value = '198.51.100.3'] WITHIN 300 SECONDS".to_string(),
        "([ipv4-addr:value ISSUBSET '203.0.113.0/24'] OR [domain-name:value MATCHES '^evil\\\\.']) REPEATS 3 TIMES".to_string(),
        "[email-message:from_ref.value = 'a@example.com' AND email-message:body_multipart[*].body_raw_ref.name LIKE 'inv%.exe'] START t'2026-01-01T00:00:00Z' STOP t'2026-02-01T00:00:00Z'".to_string(),
    ]);
    let mut g = c.benchmark_group("stix-pattern");
    g.throughput(Throughput::Elements(pats.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| {
            for p in &pats {
                black_box(pattern::parse(black_box(p)).expect("generated patterns parse"));
            }
        })
    });
    g.finish();
}

fn observables(c: &mut Criterion) {
    let objects = sample_objects();
    let mut g = c.benchmark_group("stix-observable");
    g.throughput(Throughput::Elements(objects.len() as u64));
    g.bench_function("keys_from_object", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for o in &objects {
                n += observable::keys_from_object(black_box(o)).len();
            }
            n
        })
    });
    let parsed: Vec<pattern::Pattern> = objects
        .iter()
        .filter_map(|o| o.get("pattern").and_then(Value::as_str))
        .filter_map(|p| pattern::parse(p).ok())
        .collect();
    g.throughput(Throughput::Elements(parsed.len() as u64));
    g.bench_function("keys_from_pattern", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for p in &parsed {
                n += observable::keys_from_pattern(black_box(p)).len();
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, parse_and_validate, patterns, observables);
criterion_main!(benches);
