//! Faults against real `synergia serve` processes:
//!
//! - a peer SIGKILLed again and again while a node pulls a large feed from it: after it
//!   restarts, the node catches up with nothing lost and nothing twice;
//! - the pulling node itself SIGKILLed again and again during that sync: it resumes
//!   from its persisted cursor, with nothing lost and nothing logged twice;
//! - the disk filling up during ingest (the process's file-size limit lowered at run
//!   time, so every write past it fails with `EFBIG` like `ENOSPC`): publishes and
//!   pushes get 507 `insufficient-storage`, nothing acknowledged is lost, nothing
//!   half-written shows, and once space returns the node publishes again and restarts
//!   with exactly the acknowledged set;
//! - the disk filling up while a node pulls a feed in pipelined pages: it stalls
//!   without moving its cursor past what failed, and takes the rest, each envelope
//!   once, when space returns;
//! - no private key or bearer token in any log line (debug level) or answer of a full
//!   run of three nodes.
//!
//! Each test prints a `FAULT kind=… injected=… survived=… acked_lost=…` or `LEAKS …`
//! line; `docs/reliability.md` is made from them.

#[path = "common/mod.rs"]
mod common;

use base64::Engine as _;
use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use synergia::envelope::{Envelope, EnvelopeId, Signer};
use synergia::stix::timestamp::Timestamp;
use synergia::stix::tlp::TlpLevel;

const GREEN: &str = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";

/// Extra rounds a kill test may take, each with a fresh batch for the puller, when no
/// kill has yet landed part-way through a feed.
const TOP_UPS: usize = 4;

/// Waits until `held` grows (unless all `total` are there; 30 s at most), then a
/// random further moment of up to 150 ms: somewhere inside the next pages.
fn pause_during_progress(held: impl Fn() -> u64, total: u64, rng: &mut u64) {
    let before = held();
    let t = Instant::now();
    while held() <= before && before < total && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    std::thread::sleep(Duration::from_millis(*rng % 150));
}

/// Signs envelopes `from..from + n` of `signer` (bundles of 8 addresses tagged `tag`)
/// and pushes them to the node at `url` as `peer`, checking every one is accepted.
fn push_signed(
    rt: &tokio::runtime::Runtime,
    peer: &reqwest::Client,
    url: &str,
    signer: &Signer,
    tag: &str,
    from: u64,
    n: u64,
) -> Vec<Value> {
    let batch: Vec<Value> = (from..from + n)
        .map(|i| signed(signer, bundle(tag, i, 8), i))
        .collect();
    rt.block_on(async {
        for chunk in batch.chunks(1000) {
            let r: Value = peer
                .post(format!("{url}/federation/v1/envelopes"))
                .json(&json!({"envelopes": chunk}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let ok = r["results"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["status"] == "accepted")
                .count();
            assert_eq!(ok, chunk.len(), "{}", r["results"][0]);
        }
    });
    batch
}

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_synergia"))
}

fn url_of(fed: &Federation, m: &str) -> String {
    format!("https://{}", fed.config(m).listen.address)
}

/// A green bundle of `n` IPv4 addresses, distinct per `tag` and `i`.
fn bundle(tag: &str, i: u64, n: u64) -> Value {
    let ns = uuid::Uuid::from_u128(0xfa17_0000_0000_4000_8000_0000_0000_0002);
    let objects: Vec<Value> = (0..n)
        .map(|j| {
            let value = format!("10.{}.{}.{}", i % 250, (i / 250) % 250, j % 250);
            json!({
                "type": "ipv4-addr",
                "spec_version": "2.1",
                "id": format!("ipv4-addr--{}", uuid::Uuid::new_v5(&ns, format!("{tag}-{value}").as_bytes())),
                "value": value,
                "object_marking_refs": [GREEN],
            })
        })
        .collect();
    json!({
        "type": "bundle",
        "id": format!("bundle--{}", uuid::Uuid::new_v5(&ns, format!("{tag}-b{i}").as_bytes())),
        "objects": objects,
    })
}

fn signed(s: &Signer, b: Value, seq: u64) -> Value {
    signed_envelope(s, b, seq, TlpLevel::Green, Timestamp::now())
}

async fn stats(client: &reqwest::Client, url: &str) -> Option<Value> {
    client
        .get(format!("{url}/api/v1/stats"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// A peer killed mid-feed, several times: the puller loses nothing and takes nothing
/// twice.
#[test]
fn a_peer_killed_while_serving_its_feed_is_caught_up_with_after_restart() {
    const ENVELOPES: u64 = 3000;
    const KILLS: usize = 3;
    let started = Instant::now();
    // gamma never runs: its envelopes reach beta by push and alpha through beta's feed.
    let fed = Federation::new(&["alpha", "beta", "gamma"], &[]);
    let (alpha_url, beta_url) = (url_of(&fed, "alpha"), url_of(&fed, "beta"));
    let beta_log = fed.dir.path().join("beta.log");
    let start_beta = || {
        NodeProcess::spawn(
            bin(),
            "beta",
            &fed.config_path("beta"),
            &beta_url,
            &fed.ca_path(),
            &beta_log,
        )
    };
    let mut beta = start_beta();
    let rt = rt();
    let gamma_peer = https_client(&fed.ca_path(), Some(&fed.node_identity("gamma")));
    let gamma = fed.signer("gamma");
    let push_to_beta =
        |from: u64, n: u64| push_signed(&rt, &gamma_peer, &beta_url, &gamma, "gamma", from, n);
    let mut envelopes = push_to_beta(1, ENVELOPES);
    let beta_admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("beta")));

    let alpha = NodeProcess::spawn(
        bin(),
        "alpha",
        &fed.config_path("alpha"),
        &alpha_url,
        &fed.ca_path(),
        &fed.dir.path().join("alpha.log"),
    );
    let alpha_admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("alpha")));
    let held = |rt: &tokio::runtime::Runtime| {
        rt.block_on(stats(&alpha_admin, &alpha_url))
            .and_then(|s| s["envelopes"].as_u64())
            .unwrap_or(0)
    };
    let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ u64::from(std::process::id());
    let mut kills_mid_feed = 0;
    let mut k = 0;
    while k < KILLS || (kills_mid_feed == 0 && k < KILLS + TOP_UPS) {
        // Wait until alpha is part-way through what beta has, then kill beta at a
        // random moment of the next pages.
        let total = envelopes.len() as u64;
        pause_during_progress(|| held(&rt), total, &mut rng);
        beta.kill();
        let at_kill = held(&rt);
        if at_kill > 0 && at_kill < total {
            kills_mid_feed += 1;
        }
        eprintln!("kill {k}: alpha held {at_kill} of {total} when beta was killed");
        std::thread::sleep(Duration::from_millis(300));
        beta = start_beta();
        if kills_mid_feed == 0 && at_kill == total {
            // Alpha was through before the kill (a slow moment of the machine):
            // give it more to take.
            envelopes.extend(push_to_beta(total + 1, ENVELOPES));
        }
        k += 1;
    }
    let total = envelopes.len() as u64;
    // After the last restart alpha catches up.
    let t = Instant::now();
    while held(&rt) < total {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "alpha holds {} of {total} a minute after beta's last restart",
            held(&rt)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let beta_stats = rt.block_on(stats(&beta_admin, &beta_url)).unwrap();
    // The counters move just after the store: wait until the pull has recorded its
    // last page (cursor at beta's head).
    let beta_status = || peer_status(&rt, &alpha_admin, &alpha_url, "beta");
    let t = Instant::now();
    let mut from_beta = beta_status();
    while from_beta["lag_envelopes"] != 0 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "alpha's pull never caught up with beta: {from_beta}"
        );
        std::thread::sleep(Duration::from_millis(50));
        from_beta = beta_status();
    }
    let alpha_stats = rt.block_on(stats(&alpha_admin, &alpha_url)).unwrap();
    drop(alpha);
    drop(beta);
    // Nothing lost, nothing twice: the same envelopes and the same view as beta, and
    // each envelope accepted from beta exactly once.
    assert_eq!(alpha_stats["envelopes"], total);
    assert_eq!(alpha_stats["digests"], beta_stats["digests"]);
    assert_eq!(alpha_stats["origins"], beta_stats["origins"]);
    assert_eq!(from_beta["envelopes_received"], total, "{from_beta}");
    let alpha_cfg = fed.config("alpha");
    let store = synergia::store::Store::open(
        &alpha_cfg.data_dir,
        &synergia::store::StoreOptions::default(),
    )
    .unwrap();
    let missing = envelopes
        .iter()
        .filter(|e| !store.contains(Envelope::from_value((*e).clone()).unwrap().id()))
        .count();
    assert_eq!(missing, 0);
    assert!(
        kills_mid_feed >= 1,
        "beta was never killed while alpha was part-way through its feed"
    );
    eprintln!(
        "FAULT kind=peer-killed-mid-feed injected={k} survived={k} mid_feed={kills_mid_feed} envelopes={total} acked_lost={missing} duplicates={} in {:?}",
        from_beta["envelopes_received"].as_u64().unwrap_or(0) - total,
        started.elapsed()
    );
}

/// The pulling node SIGKILLed again and again while it takes a large feed: after each
/// restart it resumes from its persisted cursor; in the end it holds every envelope,
/// each once (its evidence log is exactly as long as its envelope count).
#[test]
fn a_node_killed_during_sync_resumes_with_nothing_lost_and_nothing_twice() {
    const ENVELOPES: u64 = 3000;
    const KILLS: usize = 3;
    let started = Instant::now();
    let fed = Federation::new(&["alpha", "beta", "gamma"], &[]);
    let (alpha_url, beta_url) = (url_of(&fed, "alpha"), url_of(&fed, "beta"));
    let beta = spawn_logged(&fed, "beta");
    let rt = rt();
    let gamma_peer = https_client(&fed.ca_path(), Some(&fed.node_identity("gamma")));
    let gamma = fed.signer("gamma");
    let push_to_beta =
        |from: u64, n: u64| push_signed(&rt, &gamma_peer, &beta_url, &gamma, "gamma-sync", from, n);
    let mut envelopes = push_to_beta(1, ENVELOPES);
    let beta_admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("beta")));
    assert_eq!(
        rt.block_on(stats(&beta_admin, &beta_url)).unwrap()["envelopes"],
        ENVELOPES
    );

    let alpha_log = fed.dir.path().join("alpha.log");
    let start_alpha = || {
        NodeProcess::spawn(
            bin(),
            "alpha",
            &fed.config_path("alpha"),
            &alpha_url,
            &fed.ca_path(),
            &alpha_log,
        )
    };
    let alpha_admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("alpha")));
    let held = |rt: &tokio::runtime::Runtime| {
        rt.block_on(stats(&alpha_admin, &alpha_url))
            .and_then(|s| s["envelopes"].as_u64())
            .unwrap_or(0)
    };
    let mut alpha = start_alpha();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    let mut kills_mid_sync = 0;
    let mut k = 0;
    while k < KILLS || (kills_mid_sync == 0 && k < KILLS + TOP_UPS) {
        let total = envelopes.len() as u64;
        pause_during_progress(|| held(&rt), total, &mut rng);
        let at_kill = held(&rt);
        alpha.kill();
        if at_kill > 0 && at_kill < total {
            kills_mid_sync += 1;
        }
        eprintln!("kill {k}: alpha held {at_kill} of {total} when it was killed");
        if kills_mid_sync == 0 && at_kill == total {
            // Alpha was through before the kill (a slow moment of the machine):
            // give it more to take.
            envelopes.extend(push_to_beta(total + 1, ENVELOPES));
        }
        alpha = start_alpha();
        k += 1;
    }
    let total = envelopes.len() as u64;
    let t = Instant::now();
    while held(&rt) < total {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "alpha holds {} of {total} a minute after its last restart",
            held(&rt)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let beta_stats = rt.block_on(stats(&beta_admin, &beta_url)).unwrap();
    let alpha_stats = rt.block_on(stats(&alpha_admin, &alpha_url)).unwrap();
    drop(alpha);
    drop(beta);
    assert_eq!(alpha_stats["digests"], beta_stats["digests"]);
    let (missing, logged_twice) = lost_and_logged_twice(&fed.config("alpha").data_dir, &envelopes);
    assert_eq!(missing, 0);
    assert_eq!(logged_twice, 0, "an envelope was logged twice");
    assert!(
        kills_mid_sync >= 1,
        "alpha was never killed part-way through the feed"
    );
    eprintln!(
        "FAULT kind=node-killed-during-sync injected={k} survived={k} mid_sync={kills_mid_sync} envelopes={total} acked_lost={missing} duplicates={logged_twice} in {:?}",
        started.elapsed()
    );
}

/// The puller's disk fills part-way through a feed it takes in pipelined pages (one
/// page stored while the next is checked and the one after is on its way): what was
/// made durable stays, the cursor passes neither the page whose store failed nor the
/// pages checked and fetched behind it, and once space returns the node takes the
/// rest, with nothing lost and nothing logged twice.
#[test]
fn a_puller_whose_disk_fills_mid_feed_takes_the_rest_once_space_returns() {
    const ENVELOPES: u64 = 3000;
    let started = Instant::now();
    let fed = Federation::new(&["alpha", "beta", "gamma"], &[]);
    let (alpha_url, beta_url) = (url_of(&fed, "alpha"), url_of(&fed, "beta"));
    let beta = spawn_logged(&fed, "beta");
    let (mut alpha, alpha_logs) = spawn_captured(&fed, "alpha", "info");
    let rt = rt();
    let alpha_admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("alpha")));
    let held = || {
        rt.block_on(stats(&alpha_admin, &alpha_url))
            .and_then(|s| s["envelopes"].as_u64())
    };
    let t = Instant::now();
    while held().is_none() {
        assert!(t.elapsed() < Duration::from_secs(30), "alpha did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Alpha runs, with nothing to take yet. Its disk fills after about a third of
    // what beta is about to serve (beta's feed pages hold 500 of these envelopes).
    let gamma = fed.signer("gamma");
    let per_envelope = signed(&gamma, bundle("gamma-fill", 1, 8), 1)
        .to_string()
        .len() as u64;
    let data_dir = fed.config("alpha").data_dir;
    let largest = log_files(&data_dir)
        .iter()
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(0);
    let pid = alpha.pid().unwrap();
    set_file_size_limit(pid, Some(largest + per_envelope * ENVELOPES / 3));
    let gamma_peer = https_client(&fed.ca_path(), Some(&fed.node_identity("gamma")));
    let envelopes = push_signed(
        &rt,
        &gamma_peer,
        &beta_url,
        &gamma,
        "gamma-fill",
        1,
        ENVELOPES,
    );

    // Alpha takes what fits, then stalls: its stores fail, the pull backs off.
    let t = Instant::now();
    let mut last = (0u64, Instant::now());
    loop {
        let h = held().unwrap_or(last.0);
        assert!(
            h < ENVELOPES,
            "alpha took every envelope past its disk limit"
        );
        if h != last.0 {
            last = (h, Instant::now());
        }
        if h > 0 && last.1.elapsed() > Duration::from_secs(3) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "alpha neither took nor stalled in a minute (holds {h})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let stalled_at = last.0;
    let beta_status = peer_status(&rt, &alpha_admin, &alpha_url, "beta");
    assert!(
        beta_status["failures"]["disk-full"].as_u64().unwrap_or(0) >= 1
            && beta_status["last_error"]
                .as_str()
                .is_some_and(|e| e.starts_with("the disk is full")),
        "the failed stores are not shown in beta's peer status: {beta_status}"
    );

    // Space returns: alpha takes the rest without a restart.
    set_file_size_limit(pid, None);
    let t = Instant::now();
    while held().unwrap_or(0) < ENVELOPES {
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "alpha holds {:?} of {ENVELOPES} after space returned",
            held()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let recovered_in = t.elapsed();
    alpha.kill();
    drop(beta);
    let logs = String::from_utf8_lossy(&alpha_logs.lock().unwrap()).into_owned();
    assert!(
        logs.lines()
            .any(|l| l.contains("sync with peer failed") && l.contains("the disk is full")),
        "alpha's log does not say the disk is full"
    );
    let (missing, logged_twice) = lost_and_logged_twice(&data_dir, &envelopes);
    assert_eq!(missing, 0, "envelopes lost");
    assert_eq!(logged_twice, 0, "an envelope was logged twice");
    eprintln!(
        "FAULT kind=disk-full-during-pull injected=1 survived=1 stalled_at={stalled_at} envelopes={ENVELOPES} acked_lost={missing} duplicates={logged_twice} recovered_in_ms={} in {:?}",
        recovered_in.as_millis(),
        started.elapsed()
    );
}

/// What the node at `url` shows about `peer` in `GET /api/v1/peers`.
fn peer_status(
    rt: &tokio::runtime::Runtime,
    admin: &reqwest::Client,
    url: &str,
    peer: &str,
) -> Value {
    let peers: Value = rt.block_on(async {
        admin
            .get(format!("{url}/api/v1/peers"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    peers["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer"] == peer)
        .cloned()
        .unwrap_or_else(|| panic!("no peer {peer} in {peers}"))
}

/// Starts `member`'s node, its log (at `level`) kept in memory.
fn spawn_captured(
    fed: &Federation,
    member: &str,
    level: &str,
) -> (NodeProcess, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    NodeProcess::spawn_captured(
        bin(),
        member,
        &fed.config_path(member),
        &url_of(fed, member),
        &fed.ca_path(),
        level,
    )
}

/// Starts `member`'s node, its log in the federation's directory.
fn spawn_logged(fed: &Federation, member: &str) -> NodeProcess {
    NodeProcess::spawn(
        bin(),
        member,
        &fed.config_path(member),
        &url_of(fed, member),
        &fed.ca_path(),
        &fed.dir.path().join(format!("{member}.log")),
    )
}

/// Of `envelopes`, how many the store in `data_dir` lacks, and how many records its
/// evidence log holds beyond one per envelope (an envelope logged twice).
fn lost_and_logged_twice(data_dir: &Path, envelopes: &[Value]) -> (usize, u64) {
    let store =
        synergia::store::Store::open(data_dir, &synergia::store::StoreOptions::default()).unwrap();
    let missing = envelopes
        .iter()
        .filter(|e| !store.contains(Envelope::from_value((*e).clone()).unwrap().id()))
        .count();
    (missing, store.head() - store.read().envelope_count() as u64)
}

/// Sets the file-size limit of a process (`RLIMIT_FSIZE`): writes past it fail.
fn set_file_size_limit(pid: u32, bytes: Option<u64>) {
    let lim = libc::rlimit {
        rlim_cur: bytes.unwrap_or(libc::RLIM_INFINITY),
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit reads `lim` and writes nothing (old limit pointer is null).
    let r = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &lim,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(r, 0, "prlimit: {}", std::io::Error::last_os_error());
}

fn dir_files(dir: &Path, out: &mut Vec<(std::path::PathBuf, u64)>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            dir_files(&p, out);
        } else if let Ok(m) = p.metadata() {
            out.push((p, m.len()));
        }
    }
}

/// The evidence log's files under a node's data directory, with their sizes.
fn log_files(data_dir: &Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut files = Vec::new();
    dir_files(&data_dir.join("log"), &mut files);
    files
}

/// Publishes `bundle` through the node API: the status and the JSON answer (null when
/// the body is not JSON).
fn publish_bundle(
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    url: &str,
    bundle: &Value,
) -> (u16, Value) {
    rt.block_on(async {
        let r = client
            .post(format!("{url}/api/v1/bundles"))
            .json(bundle)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    })
}

/// The disk fills during ingest: clear errors, nothing acknowledged lost, recovery.
#[test]
fn a_full_disk_refuses_ingest_cleanly_and_the_node_recovers() {
    let started = Instant::now();
    let fed = Federation::new(&["alpha", "beta"], &[]);
    let cfg = fed.config("alpha");
    let url = url_of(&fed, "alpha");
    let (mut node, logs) = spawn_captured(&fed, "alpha", "info");
    let pid = node.pid().unwrap();
    let rt = rt();
    let admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("alpha")));
    let beta_peer = https_client(&fed.ca_path(), Some(&fed.node_identity("beta")));
    let beta = fed.signer("beta");
    let mut acked: Vec<EnvelopeId> = Vec::new();
    let publish = |i: u64| publish_bundle(&rt, &admin, &url, &bundle("alpha", i, 20));
    let ids = |v: &Value| -> Vec<EnvelopeId> {
        v["envelopes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| EnvelopeId::parse(e["id"].as_str().unwrap()).unwrap())
            .collect()
    };
    for i in 0..20 {
        let (status, v) = publish(i);
        assert_eq!(status, 200, "{v}");
        acked.extend(ids(&v));
    }
    let held_before = rt.block_on(stats(&admin, &url)).unwrap();

    // The disk is full: no file of the node may grow past its current size.
    let files = log_files(&cfg.data_dir);
    let log_bytes: u64 = files.iter().map(|(_, n)| n).sum();
    let largest_log = files.iter().map(|(_, n)| *n).max().unwrap();
    set_file_size_limit(pid, Some(largest_log));
    let mut refused = 0;
    let mut injected = 0;
    for i in 100..110 {
        injected += 1;
        let (status, v) = publish(i);
        assert_eq!(status, 507, "publish on a full disk: {status} {v}");
        assert_eq!(v["error"], "insufficient-storage", "{v}");
        refused += 1;
    }
    // A peer's push is refused the same way.
    let pushed: Vec<Value> = (1..=5)
        .map(|i| signed(&beta, bundle("beta", i, 5), i))
        .collect();
    let (status, v) = rt.block_on(async {
        let r = beta_peer
            .post(format!("{url}/federation/v1/envelopes"))
            .json(&json!({"envelopes": pushed}))
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<Value>().await.unwrap_or(Value::Null),
        )
    });
    injected += 1;
    assert_eq!(status, 507, "push on a full disk: {v}");
    assert_eq!(v["error"], "insufficient-storage");
    refused += 1;
    // The node still answers, and nothing half-written shows: the same envelopes, the
    // same digests, and the log not one byte longer.
    let during = rt
        .block_on(stats(&admin, &url))
        .expect("the node stopped answering");
    assert_eq!(during["envelopes"], held_before["envelopes"]);
    assert_eq!(during["digests"], held_before["digests"]);
    let files = log_files(&cfg.data_dir);
    assert_eq!(files.iter().map(|(_, n)| n).sum::<u64>(), log_bytes);

    // Long enough for the index engine's background flush (every second) to meet the
    // full disk too, then once more.
    std::thread::sleep(Duration::from_millis(1500));
    let (status, v) = publish(150);
    injected += 1;
    assert_eq!(status, 507, "publish on a full disk: {status} {v}");
    refused += 1;
    // Space returns: publishing and pushes work again without a restart.
    set_file_size_limit(pid, None);
    let mut recovered_after = None;
    let t = Instant::now();
    for i in 200..210 {
        let (status, v) = publish(i);
        if status == 200 {
            recovered_after.get_or_insert(t.elapsed());
            acked.extend(ids(&v));
        } else {
            eprintln!("after space returned: {status} {v}");
        }
    }
    if recovered_after.is_none() {
        node.kill();
        eprintln!("{}", String::from_utf8_lossy(&logs.lock().unwrap()));
        panic!("publishing did not work again once space returned");
    }
    let r: Value = rt.block_on(async {
        beta_peer
            .post(format!("{url}/federation/v1/envelopes"))
            .json(&json!({"envelopes": pushed}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert!(
        r["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["status"] == "accepted"),
        "{r}"
    );
    acked.extend(
        pushed
            .iter()
            .map(|e| Envelope::from_value(e.clone()).unwrap().id().clone()),
    );
    let after = rt.block_on(stats(&admin, &url)).unwrap();
    assert_eq!(after["envelopes"], acked.len());
    node.kill();
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    if std::env::var_os("SYNERGIA_SHOW_LOGS").is_some() {
        eprintln!("{logs}");
    }
    assert!(
        logs.contains("disk is full"),
        "the node's log does not say the disk is full"
    );

    // Restart: exactly the acknowledged envelopes, the same view.
    let store =
        synergia::store::Store::open(&cfg.data_dir, &synergia::store::StoreOptions::default())
            .unwrap();
    let lost = acked.iter().filter(|id| !store.contains(id)).count();
    assert_eq!(lost, 0, "acknowledged envelopes lost");
    assert_eq!(store.read().envelope_count(), acked.len());
    drop(store);
    let _node = NodeProcess::spawn(
        bin(),
        "alpha",
        &fed.config_path("alpha"),
        &url,
        &fed.ca_path(),
        &fed.dir.path().join("alpha.log"),
    );
    let admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("alpha")));
    let restarted = rt.block_on(stats(&admin, &url)).unwrap();
    assert_eq!(restarted["envelopes"], after["envelopes"]);
    assert_eq!(restarted["digests"], after["digests"]);
    assert_eq!(restarted["index_needs_restart"], false);
    eprintln!(
        "FAULT kind=disk-full-during-ingest injected={injected} survived={injected} refused_507={refused} acked={} acked_lost={lost} recovered_without_restart_ms={} index_needed_restart={} in {:?}",
        acked.len(),
        recovered_after.unwrap_or_default().as_millis(),
        after["index_needs_restart"],
        started.elapsed()
    );
}

/// A large bundle: `n` distinct objects (`n` at most 62,500).
fn large_bundle(i: u64, n: u64) -> Value {
    let ns = uuid::Uuid::from_u128(0xfa17_0000_0000_4000_8000_0000_0000_0003);
    let objects: Vec<Value> = (0..n)
        .map(|j| {
            let value = format!("172.{}.{}.{}", 16 + i % 16, j / 250, j % 250);
            json!({
                "type": "ipv4-addr",
                "spec_version": "2.1",
                "id": format!("ipv4-addr--{}", uuid::Uuid::new_v5(&ns, value.as_bytes())),
                "value": value,
                "object_marking_refs": [GREEN],
            })
        })
        .collect();
    json!({"type": "bundle", "id": format!("bundle--{}", uuid::Uuid::new_v5(&ns, format!("b{i}").as_bytes())), "objects": objects})
}

/// The disk fills while a publish of many envelopes is being stored (in batches, each
/// made durable before the next): the publish gets 507, the batches already durable
/// stay (with their sequence numbers) and count as published, nothing half-written
/// shows, and the same publish once space returns stores only the rest. Likewise for
/// a publish larger than a window, stored a window at a time.
#[test]
fn a_disk_filling_during_a_large_publish_keeps_the_batches_made_durable() {
    let fed = Federation::new(&["alpha"], &[]);
    let cfg = fed.config("alpha");
    let url = url_of(&fed, "alpha");
    let (mut node, _logs) = spawn_captured(&fed, "alpha", "info");
    let pid = node.pid().unwrap();
    let rt = rt();
    let admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("alpha")));
    let publish = |b: &Value| publish_bundle(&rt, &admin, &url, b);
    let seqs = |v: &Value| -> Vec<u64> {
        v["envelopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    };
    let log_bytes = || log_files(&cfg.data_dir).iter().map(|(_, n)| n).sum::<u64>();
    let get_metrics = || {
        rt.block_on(async {
            admin
                .get(format!("{url}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    let metric = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    };
    let n = 10_000;

    // A first publish of the same shape says how many bytes an envelope takes.
    let before = log_bytes();
    let (status, first) = publish(&large_bundle(1, n));
    assert_eq!(status, 200, "{first}");
    let first_seqs = seqs(&first);
    let envelopes = first_seqs.len() as u64;
    assert!(envelopes >= 4, "{envelopes} envelopes");
    let per_envelope = (log_bytes() - before) / envelopes;
    let stats_before = rt.block_on(stats(&admin, &url)).unwrap();

    // Room for all envelopes but the last (and half an envelope more): the batch that
    // holds the last envelope fails, the batches stored before it stay.
    let largest = log_files(&cfg.data_dir)
        .iter()
        .map(|(_, n)| *n)
        .max()
        .unwrap();
    let room = per_envelope * (envelopes - 1) + per_envelope / 2;
    set_file_size_limit(pid, Some(largest + room));
    let big = large_bundle(2, n);
    let (status, v) = publish(&big);
    assert_eq!(status, 507, "publish on a filling disk: {v}");
    assert_eq!(v["error"], "insufficient-storage", "{v}");
    let during = rt.block_on(stats(&admin, &url)).unwrap();
    let kept = during["envelopes"].as_u64().unwrap() - stats_before["envelopes"].as_u64().unwrap();
    assert!(
        (1..envelopes).contains(&kept),
        "{kept} of {envelopes} envelopes kept: the batches before the failed one stay, the failed one does not"
    );
    // The kept envelopes count as published.
    let m = get_metrics();
    assert_eq!(
        metric(&m, "synergia_published_envelopes_total"),
        envelopes + kept
    );
    assert_eq!(
        metric(&m, "synergia_published_objects_total"),
        n + kept * n.div_ceil(envelopes)
    );
    // The kept envelopes' records and nothing of the failed batch (envelopes differ
    // by a few bytes from the average).
    let grown = log_bytes() - before;
    let expected = (envelopes + kept) * per_envelope;
    assert!(
        grown.abs_diff(expected) < per_envelope / 4,
        "the log grew by {grown} bytes, {expected} expected: a half-written batch stayed"
    );

    // Space returns: the same publish stores the rest, numbered after the batch kept.
    set_file_size_limit(pid, None);
    let (status, again) = publish(&big);
    assert_eq!(status, 200, "{again}");
    let kept_objects: u64 = n.div_ceil(envelopes) * kept;
    assert_eq!(again["held"], kept_objects, "{}", again["held"]);
    assert_eq!(again["published"], n - kept_objects);
    let again_seqs = seqs(&again);
    let last_first = *first_seqs.iter().max().unwrap();
    assert_eq!(
        again_seqs.iter().min().copied(),
        Some(last_first + kept + 1),
        "sequence numbers of the kept batches reused or skipped"
    );
    let after = rt.block_on(stats(&admin, &url)).unwrap();
    assert_eq!(
        after["envelopes"].as_u64().unwrap(),
        stats_before["envelopes"].as_u64().unwrap() + kept + again_seqs.len() as u64
    );

    // A publish larger than a window (20,000 objects by default) is stored a window
    // at a time: with room for the first window's 20 envelopes only, the second
    // window fails and the first stays, published and counted.
    let metrics_before = (
        metric(&get_metrics(), "synergia_published_envelopes_total"),
        metric(&get_metrics(), "synergia_published_objects_total"),
    );
    let largest = log_files(&cfg.data_dir)
        .iter()
        .map(|(_, n)| *n)
        .max()
        .unwrap();
    set_file_size_limit(pid, Some(largest + per_envelope * 20 + per_envelope / 2));
    let (status, v) = publish(&large_bundle(3, 25_000));
    assert_eq!(status, 507, "windowed publish on a filling disk: {v}");
    set_file_size_limit(pid, None);
    let after = rt.block_on(stats(&admin, &url)).unwrap();
    assert_eq!(
        after["envelopes"].as_u64().unwrap(),
        stats_before["envelopes"].as_u64().unwrap() + kept + again_seqs.len() as u64 + 20,
        "the first window's 20 envelopes kept"
    );
    let m = get_metrics();
    assert_eq!(
        metric(&m, "synergia_published_envelopes_total"),
        metrics_before.0 + 20
    );
    assert_eq!(
        metric(&m, "synergia_published_objects_total"),
        metrics_before.1 + 20_000
    );
    node.kill();

    // Restart: the same envelopes and view.
    let store =
        synergia::store::Store::open(&cfg.data_dir, &synergia::store::StoreOptions::default())
            .unwrap();
    assert_eq!(
        store.read().envelope_count() as u64,
        after["envelopes"].as_u64().unwrap()
    );
    drop(store);
    eprintln!(
        "FAULT kind=disk-full-during-large-publish injected=1 survived=1 envelopes={envelopes} kept={kept} retried_published={} held={}",
        again["published"], again["held"]
    );
}

/// Every secret of a federation's key directory, in the forms it could leak in: each
/// private key's PEM body lines and whole base64, the key bytes in hex and base64url,
/// and the bearer tokens.
fn secrets(fed: &Federation) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut files = Vec::new();
    dir_files(&fed.dir.path().join("keys"), &mut files);
    for (path, _) in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if name == "admin-token" {
            out.push((path.display().to_string(), text.trim().to_string()));
            continue;
        }
        if !text.contains("PRIVATE KEY") {
            continue;
        }
        let body: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("-----") && !l.trim().is_empty())
            .collect();
        for l in &body {
            // Lines shorter than this are too short to be a meaningful match.
            if l.len() >= 16 {
                out.push((path.display().to_string(), l.to_string()));
            }
        }
        let b64 = body.concat();
        out.push((path.display().to_string(), b64.clone()));
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(&b64) {
            // The raw key (the tail of the PKCS#8 document) in other encodings.
            let tail = &der[der.len().saturating_sub(32)..];
            let hex: String = tail.iter().map(|b| format!("{b:02x}")).collect();
            out.push((path.display().to_string(), hex));
            out.push((
                path.display().to_string(),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tail),
            ));
            out.push((
                path.display().to_string(),
                base64::engine::general_purpose::STANDARD.encode(tail),
            ));
        }
    }
    for (m, t) in &fed.tokens {
        out.push((format!("token of {m}"), t.clone()));
    }
    out
}

/// A full run of three nodes at debug level — publishes by certificate and by token,
/// sync, TAXII, lookups, status, wrong tokens, wrong certificates, a refused start
/// with a world-readable key — and not one secret in any log line or answer.
#[test]
fn no_private_key_or_token_appears_in_any_log_or_answer() {
    let started = Instant::now();
    let fed = Federation::new(&["alpha", "beta", "gamma"], &[]);
    let members = ["alpha", "beta", "gamma"];
    let mut nodes = Vec::new();
    let mut logs = Vec::new();
    for m in members {
        let (p, l) = spawn_captured(&fed, m, "debug,synergia=debug");
        nodes.push(p);
        logs.push(l);
    }
    let rt = rt();
    let mut answers: Vec<String> = Vec::new();
    let tokens: Vec<(String, String)> = fed.tokens.clone();
    rt.block_on(async {
        let mut record = |status: reqwest::StatusCode, body: String| {
            answers.push(format!("{status} {body}"));
        };
        for (i, m) in members.iter().enumerate() {
            let url = url_of(&fed, m);
            let admin = https_client(&fed.ca_path(), Some(&fed.admin_identity(m)));
            let anon = https_client(&fed.ca_path(), None);
            let token = &tokens.iter().find(|(n, _)| n == m).unwrap().1;
            // Publish by certificate and by token.
            for (j, by_token) in [false, true].into_iter().enumerate() {
                let req = if by_token {
                    anon.post(format!("{url}/api/v1/bundles"))
                        .bearer_auth(token)
                } else {
                    admin.post(format!("{url}/api/v1/bundles"))
                };
                let r = req
                    .json(&bundle(m, (i * 10 + j) as u64, 5))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                record(r.status(), r.text().await.unwrap());
            }
            // Wrong tokens: another member's, a truncated one, one with a changed
            // character, garbage in the header.
            let other = &tokens[(i + 1) % tokens.len()].1;
            let mut changed = token.clone().into_bytes();
            changed[0] = if changed[0] == b'a' { b'b' } else { b'a' };
            for bad in [
                other.clone(),
                token[..token.len() / 2].to_string(),
                String::from_utf8(changed).unwrap(),
            ] {
                let r = anon
                    .get(format!("{url}/api/v1/stats"))
                    .bearer_auth(&bad)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 401);
                record(r.status(), r.text().await.unwrap());
            }
            let r = anon
                .get(format!("{url}/api/v1/peers"))
                .header("authorization", format!("Token {token}"))
                .send()
                .await
                .unwrap();
            record(r.status(), r.text().await.unwrap());
            // A certificate of a member that is not configured as a client.
            let stranger = https_client(
                &fed.ca_path(),
                Some(
                    &fed.client_cert("stranger", synergia::keys::tls::Validity::years_from_now(1)),
                ),
            );
            let r = stranger
                .get(format!("{url}/api/v1/stats"))
                .send()
                .await
                .unwrap();
            record(r.status(), r.text().await.unwrap());
            // Bad input that is echoed in errors: a private key pasted as a bundle.
            let key_pem = std::fs::read_to_string(fed.config(m).tls.key).unwrap();
            let r = admin
                .post(format!("{url}/api/v1/bundles"))
                .body(key_pem)
                .send()
                .await
                .unwrap();
            record(r.status(), r.text().await.unwrap());
        }
        // Sync converges; then reads of every kind.
        let t = Instant::now();
        loop {
            let mut counts = Vec::new();
            for m in members {
                let admin = https_client(&fed.ca_path(), Some(&fed.admin_identity(m)));
                counts.push(
                    stats(&admin, &url_of(&fed, m))
                        .await
                        .map(|s| s["envelopes"].clone()),
                );
            }
            if counts.iter().all(|c| c == &Some(json!(6))) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no convergence: {counts:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for m in members {
            let url = url_of(&fed, m);
            let admin = https_client(&fed.ca_path(), Some(&fed.admin_identity(m)));
            for path in [
                "/api/v1/peers",
                "/api/v1/stats",
                "/metrics",
                "/api/v1/lookup?value=10.0.0.1",
                "/taxii2/",
                "/taxii2/synergia/collections/",
                "/taxii2/synergia/collections/consolidated/objects/",
                "/taxii2/synergia/collections/nope/objects/",
                "/federation/v1/feed",
            ] {
                let r = admin
                    .get(format!("{url}{path}"))
                    .header(
                        "accept",
                        if path.starts_with("/taxii2") {
                            TAXII
                        } else {
                            "application/json"
                        },
                    )
                    .send()
                    .await
                    .unwrap();
                record(r.status(), r.text().await.unwrap());
            }
        }
    });
    // A node refusing to start because its key is readable by others.
    use std::os::unix::fs::PermissionsExt as _;
    let key = fed.config("gamma").tls.key;
    nodes.pop().unwrap().kill();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = std::process::Command::new(bin())
        .args(["serve", "--config"])
        .arg(fed.config_path("gamma"))
        .env("SYNERGIA_LOG", "debug,synergia=debug")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let refusal = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(refusal.contains("chmod 600"), "{refusal}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    for n in &mut nodes {
        n.kill();
    }

    let mut text: Vec<(String, String)> = members
        .iter()
        .zip(&logs)
        .map(|(m, l)| {
            (
                format!("log of {m}"),
                String::from_utf8_lossy(&l.lock().unwrap()).into_owned(),
            )
        })
        .collect();
    text.push(("refused start".into(), refusal));
    text.push(("answers".into(), answers.join("\n")));
    let log_lines: usize = text[..members.len()]
        .iter()
        .map(|(_, t)| t.lines().count())
        .sum();
    assert!(
        log_lines > 100,
        "too few log lines ({log_lines}) to mean anything"
    );
    let secrets = secrets(&fed);
    assert!(
        secrets.len() > 30,
        "too few secrets found: {}",
        secrets.len()
    );
    let mut leaks = Vec::new();
    for (source, t) in &text {
        for (whose, s) in &secrets {
            if t.contains(s.as_str()) {
                leaks.push(format!("{whose} in {source}"));
            }
        }
    }
    eprintln!(
        "LEAKS secrets={} log_lines={log_lines} answers={} leaks={} in {:?}",
        secrets.len(),
        answers.len(),
        leaks.len(),
        started.elapsed()
    );
    assert!(leaks.is_empty(), "secrets leaked: {leaks:?}");
}

/// Overwrites every file under `dir` with garbage.
fn scribble(dir: &Path) {
    let mut files = Vec::new();
    dir_files(dir, &mut files);
    for (p, _) in files {
        std::fs::write(&p, b"\xde\xad\xbe\xef not an index").unwrap();
    }
}

/// A node whose index store is corrupted refuses to start with the fix in its message;
/// `synergia rebuild` (and `store.auto_rebuild`) restore the same view from the
/// evidence log, digests and all.
#[test]
fn a_corrupted_index_is_rebuilt_from_the_evidence_log_with_the_same_digests() {
    let started = Instant::now();
    let fed = Federation::new(&["alpha", "beta"], &[]);
    let cfg = fed.config("alpha");
    let url = url_of(&fed, "alpha");
    let log = fed.dir.path().join("alpha.log");
    let start = || {
        NodeProcess::spawn(
            bin(),
            "alpha",
            &fed.config_path("alpha"),
            &url,
            &fed.ca_path(),
            &log,
        )
    };
    let rt = rt();
    let mut node = start();
    let admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("alpha")));
    for i in 0..15 {
        let r = rt.block_on(async {
            admin
                .post(format!("{url}/api/v1/bundles"))
                .json(&bundle("alpha", i, 10))
                .send()
                .await
                .unwrap()
                .status()
        });
        assert_eq!(r, 200);
    }
    let before = rt.block_on(stats(&admin, &url)).unwrap();
    let mut injected = 0;
    // Killed, index scribbled over: the node refuses to start and says what to do.
    node.kill();
    scribble(&cfg.data_dir.join("index"));
    injected += 1;
    let o = std::process::Command::new(bin())
        .args(["serve", "--config"])
        .arg(fed.config_path("alpha"))
        .output()
        .unwrap();
    let msg = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{msg}");
    assert!(msg.contains("synergia rebuild"), "{msg}");
    let o = std::process::Command::new(bin())
        .args(["rebuild", "--config"])
        .arg(fed.config_path("alpha"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("alpha")));
    let mut node = start();
    let rebuilt = rt.block_on(stats(&admin, &url)).unwrap();
    assert_eq!(rebuilt["envelopes"], before["envelopes"]);
    assert_eq!(rebuilt["digests"], before["digests"]);
    // Again, with store.auto_rebuild: the node rebuilds at start by itself.
    node.kill();
    scribble(&cfg.data_dir.join("index"));
    injected += 1;
    let text = std::fs::read_to_string(fed.config_path("alpha")).unwrap();
    std::fs::write(
        fed.config_path("alpha"),
        format!("{text}\n[store]\nauto_rebuild = true\n"),
    )
    .unwrap();
    let admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("alpha")));
    let _node = start();
    let auto = rt.block_on(stats(&admin, &url)).unwrap();
    assert_eq!(auto["envelopes"], before["envelopes"]);
    assert_eq!(auto["digests"], before["digests"]);
    eprintln!(
        "FAULT kind=corrupted-index injected={injected} survived={injected} envelopes={} acked_lost=0 digests_equal=true in {:?}",
        before["envelopes"],
        started.elapsed()
    );
}

/// A second `serve` and a `rebuild` on the data directory of a running node are both
/// refused within a second, naming the process that holds it, and change nothing: the
/// node keeps its index and answers as before. (Before, the second `serve` waited 10 s
/// and advised `synergia rebuild`, which deleted the live node's index.)
#[test]
fn a_second_serve_and_a_rebuild_on_a_live_data_directory_are_refused() {
    let fed = Federation::new(&["alpha", "beta"], &[]);
    let cfg = fed.config("alpha");
    let url = url_of(&fed, "alpha");
    let node = spawn_logged(&fed, "alpha");
    let pid = node.pid().unwrap();
    let rt = rt();
    let admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("alpha")));
    let r = rt.block_on(async {
        admin
            .post(format!("{url}/api/v1/bundles"))
            .json(&bundle("alpha", 1, 10))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(r, 200);
    let before = rt.block_on(stats(&admin, &url)).unwrap();
    for command in ["serve", "rebuild"] {
        let started = Instant::now();
        let o = std::process::Command::new(bin())
            .args([command, "--config"])
            .arg(fed.config_path("alpha"))
            .output()
            .unwrap();
        let took = started.elapsed();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{command}: {err}");
        assert!(
            err.contains(&format!("in use by process {pid}")),
            "{command}: {err}"
        );
        assert!(!err.contains("synergia rebuild"), "{command}: {err}");
        assert!(took < Duration::from_secs(1), "{command} took {took:?}");
    }
    assert!(cfg.data_dir.join("index").exists());
    // Readable by the node's user only.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&cfg.data_dir)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "{}", cfg.data_dir.display());
    let after = rt.block_on(stats(&admin, &url)).unwrap();
    assert_eq!(after["envelopes"], before["envelopes"]);
    assert_eq!(after["digests"], before["digests"]);
    drop(node);
    // Once the node is gone, the directory is free again.
    let o = std::process::Command::new(bin())
        .args(["rebuild", "--config"])
        .arg(fed.config_path("alpha"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
