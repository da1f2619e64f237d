//! End-to-end store benchmark (docs/benchmarks.md, "Store"):
//!
//! ```sh
//! cargo run --release --example store_bench -- --count 1000000
//! ```
//!
//! 1. generates `--count` indicators with `synergia gen`'s generator (or reads the bundle
//!    `synergia gen` wrote, `--bundle FILE`, generated with seed 7 and origin
//!    `kaspersky` so lookups find its observables) and signs them in envelopes of
//!    `--per-envelope` objects (written to a file, not timed);
//! 2. reads them back and ingests them durably, `--batch` envelopes per fsync, timing
//!    parse + verify and the store's ingest separately;
//! 3. measures RSS, disk (evidence log + index) against the raw JSON size, reopen time
//!    and observable lookup latency (p50/p99 over 10,000 lookups);
//! 4. inserts the same objects into plain sled (id → canonical body, batches of 1,000,
//!    flushed) as a baseline, in the same run (`--no-baseline` skips it).
//!
//! With `--postgres URL` (password in `SYNERGIA_STORE_PASSWORD`), steps 2 and 3 run
//! against that PostgreSQL database instead (it must be empty): durable ingest through
//! the PostgreSQL store, database size, this process's RSS, store open time, and the
//! index query of a lookup (p50/p99).
//!
//! Prints a table and one JSON line (`RESULT {...}`) for scripts.

use serde_json::{Value, json};
use std::io::{BufRead, BufWriter, Write};
use std::time::{Duration, Instant};
use synergia::envelope::canonical::canonical_bytes;
use synergia::envelope::{Envelope, EnvelopeMeta, Signer, VerifyOptions, verify_batch};
use synergia::roster::{Member, Roster, RosterDocument, RosterKey, encode_public_key};
use synergia::stix::timestamp::Timestamp;
use synergia::stix::tlp::TlpLevel;
use synergia::store::{Store, StoreOptions};
use synergia::workload::{GenOptions, for_each_bundle_object, for_each_object, observable_value};

// The node's allocator, tuned as the node tunes it, so the figures are the node's.
synergia::use_node_allocator!();

struct Args {
    count: u64,
    per_envelope: usize,
    batch: usize,
    dir: Option<std::path::PathBuf>,
    bundle: Option<std::path::PathBuf>,
    baseline: bool,
    postgres: Option<String>,
}

/// The benchmark's objects: from the `--bundle` file when given, else generated.
fn each_object(a: &Args, workload: &GenOptions, f: impl FnMut(Value)) {
    match &a.bundle {
        Some(path) => {
            let file = std::fs::File::open(path).expect("--bundle file");
            for_each_bundle_object(file, f).expect("--bundle: a STIX bundle");
        }
        None => for_each_object(workload, f),
    }
}

fn args() -> Args {
    let mut a = Args {
        count: 100_000,
        per_envelope: 1000,
        batch: 10,
        dir: None,
        bundle: None,
        baseline: true,
        postgres: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--no-baseline" {
            a.baseline = false;
            continue;
        }
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--bundle" => a.bundle = Some(v.into()),
            "--count" => a.count = v.parse().expect("--count N"),
            "--per-envelope" => a.per_envelope = v.parse().expect("--per-envelope N"),
            "--batch" => a.batch = v.parse().expect("--batch N"),
            "--dir" => a.dir = Some(v.into()),
            "--postgres" => a.postgres = Some(v),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn rss_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `--reopen DIR`: open the store in DIR in this fresh process and report its RSS, so
/// the steady-state memory of a node holding the data is measured without the
/// ingesting process's history.
fn reopen_only() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let Some(i) = args.iter().position(|a| a == "--reopen") else {
        return false;
    };
    let dir = std::path::PathBuf::from(&args[i + 1]);
    let t = Instant::now();
    let store = Store::open(&dir, &StoreOptions::default()).expect("reopen");
    let took = t.elapsed();
    // As `synergia serve` does after opening its store.
    // SAFETY: no preconditions (walks the allocator's own free lists).
    unsafe { libmimalloc_sys::mi_collect(true) };
    for (part, bytes) in store.read().heap_bytes() {
        eprintln!("view {part:<20} {:>6} MB", bytes >> 20);
    }
    println!(
        "REOPEN rss_kb={} hwm_kb={} versions={} secs={:.2}",
        rss_kb("VmRSS:"),
        rss_kb("VmHWM:"),
        store.read().version_count(),
        took.as_secs_f64()
    );
    true
}

fn main() {
    if reopen_only() {
        return;
    }
    let a = args();
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = a.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let identity = "identity--6b0a0f36-5b0e-4d8a-9f0a-0d6f8c3a1b2c";
    let signer = Signer {
        origin: "kaspersky".into(),
        origin_identity: identity.into(),
        key_id: "kaspersky-bench".into(),
        key: ed25519_dalek::SigningKey::from_bytes(&[42; 32]),
    };
    let roster = Roster::from_document(RosterDocument {
        former: Vec::new(),
        kind: "synergia-roster".into(),
        federation: "bench".into(),
        members: vec![Member {
            name: "kaspersky".into(),
            identity: identity.into(),
            node_url: "https://127.0.0.1:1".into(),
            tls_san: "synergia://member/kaspersky".into(),
            keys: vec![RosterKey {
                key_id: "kaspersky-bench".into(),
                public_key: encode_public_key(&signer.key.verifying_key()),
                not_before: "2020-01-01T00:00:00Z".into(),
                not_after: "2099-01-01T00:00:00Z".into(),
                revoked_at: None,
            }],
        }],
    })
    .expect("roster");
    let workload = GenOptions {
        count: a.count,
        seed: 7,
        origin: "kaspersky".into(),
        identity: Some(identity.into()),
        overlap: 0.3,
        tlp: Some(TlpLevel::Green),
    };

    // 1. Workload: signed envelopes, one canonical envelope per line.
    eprintln!("generating and signing {} indicators ...", a.count);
    let envs_path = base.join("envelopes.jsonl");
    let mut raw_json_bytes = 0u64;
    let mut objects = 0u64;
    {
        let mut w = BufWriter::new(std::fs::File::create(&envs_path).expect("create"));
        let mut chunk: Vec<Value> = Vec::with_capacity(a.per_envelope);
        let mut seq = 0u64;
        let mut flush = |chunk: &mut Vec<Value>, w: &mut BufWriter<std::fs::File>| {
            if chunk.is_empty() {
                return;
            }
            seq += 1;
            let b = json!({"type": "bundle", "id": format!("bundle--{}", uuid::Uuid::new_v4()), "objects": std::mem::take(chunk)});
            let e = Envelope::sign(
                b,
                &signer,
                EnvelopeMeta {
                    seq,
                    signed_at: Timestamp::now(),
                    tlp: TlpLevel::Green,
                    recipients: vec![],
                },
            )
            .expect("sign");
            w.write_all(&e.to_canonical_bytes()).expect("write");
            w.write_all(b"\n").expect("write");
        };
        each_object(&a, &workload, |o| {
            raw_json_bytes += serde_json::to_vec(&o)
                .map(|v| v.len() as u64 + 1)
                .unwrap_or(0);
            objects += 1;
            chunk.push(o);
            if chunk.len() == a.per_envelope {
                flush(&mut chunk, &mut w);
            }
        });
        flush(&mut chunk, &mut w);
        w.flush().expect("flush");
    }

    if let Some(url) = &a.postgres {
        postgres_run(
            &a,
            url,
            &workload,
            &envs_path,
            &roster,
            objects,
            raw_json_bytes,
        );
        return;
    }

    // 2. Durable ingest.
    eprintln!("ingesting {objects} objects ...");
    let store_dir = base.join("store");
    let rss_before = rss_kb("VmRSS:");
    let store = Store::open(&store_dir, &StoreOptions::default()).expect("open store");
    let reader =
        std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&envs_path).expect("open"));
    let mut t_parse = Duration::ZERO;
    let mut t_verify = Duration::ZERO;
    let mut t_ingest = Duration::ZERO;
    let mut batch = Vec::with_capacity(a.batch);
    let vopts = VerifyOptions::default();
    let mut lines = reader.lines();
    loop {
        batch.clear();
        let t = Instant::now();
        for line in lines.by_ref().take(a.batch) {
            batch.push(Envelope::from_slice(line.expect("line").as_bytes()).expect("parse"));
        }
        t_parse += t.elapsed();
        if batch.is_empty() {
            break;
        }
        let t = Instant::now();
        for r in verify_batch(&batch, &roster, &vopts) {
            r.expect("verify");
        }
        t_verify += t.elapsed();
        let t = Instant::now();
        store.ingest(&batch, "local").expect("ingest");
        t_ingest += t.elapsed();
    }
    drop(batch);
    store.flush().expect("flush");
    let rss_after_ingest = rss_kb("VmRSS:");
    let (log_bytes, index_bytes) = store.disk_bytes();
    drop(store);

    // 3. Reopen, lookups.
    let t = Instant::now();
    let store = Store::open(&store_dir, &StoreOptions::default()).expect("reopen");
    let t_reopen = t.elapsed();
    let rss_reopened = rss_kb("VmRSS:");
    let lat = lookup_latencies(a.count, &workload, |value| {
        !store.lookup(&[value], TlpLevel::Red).expect("lookup")[0]
            .hits
            .is_empty()
    });
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    drop(store);

    // 3b. A fresh process holding the same store.
    let out = std::process::Command::new(std::env::current_exe().expect("exe"))
        .arg("--reopen")
        .arg(&store_dir)
        .output()
        .expect("reopen process");
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fresh_rss = field("rss_kb=");
    let fresh_hwm = field("hwm_kb=");

    // 4. Baseline: plain sled, one row per object (id -> canonical body).
    let (t_sled, sled_bytes) = if a.baseline {
        plain_sled(&a, &workload, &base.join("plain-sled"))
    } else {
        (Duration::ZERO, 0)
    };

    let per_s = |d: Duration| objects as f64 / d.as_secs_f64();
    let result = json!({
        "objects": objects,
        "raw_json_bytes": raw_json_bytes,
        "ingest_store_objects_per_s": per_s(t_ingest),
        "ingest_parse_verify_store_objects_per_s": per_s(t_parse + t_verify + t_ingest),
        "parse_s": t_parse.as_secs_f64(),
        "verify_s": t_verify.as_secs_f64(),
        "store_s": t_ingest.as_secs_f64(),
        "plain_sled_objects_per_s": a.baseline.then(|| per_s(t_sled)),
        "store_vs_plain_sled": a.baseline.then(|| t_sled.as_secs_f64() / t_ingest.as_secs_f64()),
        "log_bytes": log_bytes,
        "index_bytes": index_bytes,
        "disk_vs_raw_json": (log_bytes + index_bytes) as f64 / raw_json_bytes as f64,
        "plain_sled_bytes": a.baseline.then_some(sled_bytes),
        "rss_kb_before": rss_before,
        "rss_kb_after_ingest": rss_after_ingest,
        "rss_kb_reopened": rss_reopened,
        "rss_kb_fresh_process": fresh_rss,
        "rss_kb_fresh_process_peak": fresh_hwm,
        "reopen_s": t_reopen.as_secs_f64(),
        "lookup_p50_us": p(0.5).as_secs_f64() * 1e6,
        "lookup_p99_us": p(0.99).as_secs_f64() * 1e6,
    });
    println!("objects                         {objects}");
    println!(
        "durable ingest (store)          {:.0} objects/s",
        per_s(t_ingest)
    );
    println!(
        "parse + verify + ingest         {:.0} objects/s",
        per_s(t_parse + t_verify + t_ingest)
    );
    println!(
        "plain sled insert (baseline)    {:.0} objects/s  (store is {:.1}x)",
        per_s(t_sled),
        t_sled.as_secs_f64() / t_ingest.as_secs_f64()
    );
    println!(
        "disk: log {} MB + index {} MB = {:.2}x raw JSON ({} MB); plain sled {} MB",
        log_bytes >> 20,
        index_bytes >> 20,
        (log_bytes + index_bytes) as f64 / raw_json_bytes as f64,
        raw_json_bytes >> 20,
        sled_bytes >> 20
    );
    println!(
        "RSS: {} MB after ingest, {} MB after reopen; fresh process holding the store: {} MB (peak {} MB)",
        rss_after_ingest >> 10,
        rss_reopened >> 10,
        fresh_rss >> 10,
        fresh_hwm >> 10
    );
    println!(
        "reopen {:.2} s; lookup p50 {:.1} us, p99 {:.1} us",
        t_reopen.as_secs_f64(),
        p(0.5).as_secs_f64() * 1e6,
        p(0.99).as_secs_f64() * 1e6
    );
    println!("RESULT {result}");
}

/// Inserts the objects into plain sled, one row per object (id -> canonical body), in
/// batches of 1,000, flushed: what a store without the evidence log's packing costs.
fn plain_sled(a: &Args, workload: &GenOptions, sled_dir: &std::path::Path) -> (Duration, u64) {
    eprintln!("baseline: plain sled insert of the same objects ...");
    let db = sled::Config::new()
        .path(sled_dir)
        .cache_capacity(32 << 20)
        .open()
        .expect("sled");
    let t = Instant::now();
    let mut b = sled::Batch::default();
    let mut n = 0;
    each_object(a, workload, |o| {
        let id = o["id"].as_str().unwrap_or_default().to_string();
        b.insert(id.as_bytes(), canonical_bytes(&o).expect("canonical"));
        n += 1;
        if n % 1000 == 0 {
            db.apply_batch(std::mem::take(&mut b)).expect("batch");
        }
    });
    db.apply_batch(b).expect("batch");
    db.flush().expect("flush");
    let took = t.elapsed();
    let bytes = synergia::store::sled_engine::dir_size(sled_dir);
    (took, bytes)
}

/// Steps 2 and 3 against PostgreSQL.
fn postgres_run(
    a: &Args,
    url: &str,
    workload: &GenOptions,
    envs_path: &std::path::Path,
    roster: &Roster,
    objects: u64,
    raw_json_bytes: u64,
) {
    use synergia::store::postgres::settings::{DbConfig, DbSettings};
    use synergia::store::postgres::{Incoming, PgStore};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let settings = DbSettings::resolve(&DbConfig {
        url: Some(url.to_string()),
        password_file: None,
        ca: std::path::PathBuf::from("/nonexistent"),
        pool_size: 4,
    })
    .expect("--postgres URL");
    let rss_before = rss_kb("VmRSS:");
    let store = rt
        .block_on(PgStore::open(&settings))
        .expect("open database");
    assert_eq!(
        rt.block_on(store.head()).expect("head"),
        0,
        "--postgres: the database must be empty"
    );
    eprintln!("ingesting {objects} objects into PostgreSQL ...");
    let reader =
        std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(envs_path).expect("open"));
    let mut t_parse = Duration::ZERO;
    let mut t_verify = Duration::ZERO;
    let mut t_ingest = Duration::ZERO;
    let vopts = VerifyOptions::default();
    let mut lines = reader.lines();
    let mut peak_rss = 0;
    loop {
        let t = Instant::now();
        let batch: Vec<Envelope> = lines
            .by_ref()
            .take(a.batch)
            .map(|l| Envelope::from_slice(l.expect("line").as_bytes()).expect("parse"))
            .collect();
        t_parse += t.elapsed();
        if batch.is_empty() {
            break;
        }
        let t = Instant::now();
        for r in verify_batch(&batch, roster, &vopts) {
            r.expect("verify");
        }
        t_verify += t.elapsed();
        let t = Instant::now();
        let incoming: Vec<Incoming> = batch
            .iter()
            .map(|e| Incoming::new(e, synergia::store::prepare::prepare(e).expect("prepare")))
            .collect();
        rt.block_on(store.ingest(&incoming, "local"))
            .expect("ingest");
        t_ingest += t.elapsed();
        peak_rss = peak_rss.max(rss_kb("VmRSS:"));
    }
    let rss_after_ingest = rss_kb("VmRSS:");
    let db_bytes = rt.block_on(store.disk_bytes()).expect("size");
    drop(store);
    let t = Instant::now();
    let store = rt.block_on(PgStore::open(&settings)).expect("reopen");
    let t_open = t.elapsed();
    let lat = lookup_latencies(a.count, workload, |value| {
        let key = synergia::stix::observable::ObservableKey::from_user_input(&value).expect("key");
        !rt.block_on(store.latest_naming(key.as_str(), TlpLevel::Red))
            .expect("lookup")
            .is_empty()
    });
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    let per_s = |d: Duration| objects as f64 / d.as_secs_f64();
    let result = json!({
        "backend": "postgres",
        "objects": objects,
        "raw_json_bytes": raw_json_bytes,
        "ingest_store_objects_per_s": per_s(t_ingest),
        "ingest_parse_verify_store_objects_per_s": per_s(t_parse + t_verify + t_ingest),
        "parse_s": t_parse.as_secs_f64(),
        "verify_s": t_verify.as_secs_f64(),
        "store_s": t_ingest.as_secs_f64(),
        "database_bytes": db_bytes,
        "database_bytes_per_object": db_bytes as f64 / objects as f64,
        "disk_vs_raw_json": db_bytes as f64 / raw_json_bytes as f64,
        "rss_kb_before": rss_before,
        "rss_kb_after_ingest": rss_after_ingest,
        "rss_kb_peak_during_ingest": peak_rss,
        "open_s": t_open.as_secs_f64(),
        "lookup_index_p50_us": p(0.5).as_secs_f64() * 1e6,
        "lookup_index_p99_us": p(0.99).as_secs_f64() * 1e6,
    });
    println!("objects                         {objects}");
    println!(
        "durable ingest (postgres)       {:.0} objects/s",
        per_s(t_ingest)
    );
    println!(
        "parse + verify + ingest         {:.0} objects/s",
        per_s(t_parse + t_verify + t_ingest)
    );
    println!(
        "database {} MB = {:.0} bytes/object, {:.2}x raw JSON ({} MB)",
        db_bytes >> 20,
        db_bytes as f64 / objects as f64,
        db_bytes as f64 / raw_json_bytes as f64,
        raw_json_bytes >> 20
    );
    println!(
        "RSS: {} MB before, {} MB after ingest (peak {} MB)",
        rss_before >> 10,
        rss_after_ingest >> 10,
        peak_rss >> 10
    );
    println!(
        "open {:.3} s; lookup index query p50 {:.1} us, p99 {:.1} us",
        t_open.as_secs_f64(),
        p(0.5).as_secs_f64() * 1e6,
        p(0.99).as_secs_f64() * 1e6
    );
    println!("RESULT {result}");
}

/// Times 10,000 lookups of observables of the workload chosen at random (the same ones
/// in every run), sorted; `lookup` answers whether the value was found, which every
/// one must be.
fn lookup_latencies(
    count: u64,
    workload: &GenOptions,
    mut lookup: impl FnMut(String) -> bool,
) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(10_000);
    let mut found = 0usize;
    let mut r = 12345u64;
    for _ in 0..10_000 {
        r = r
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let (_, value) = observable_value(workload, (r >> 33) % count);
        let t = Instant::now();
        let hit = lookup(value);
        lat.push(t.elapsed());
        found += usize::from(hit);
    }
    lat.sort();
    assert_eq!(found, 10_000, "every generated observable must be found");
    lat
}
