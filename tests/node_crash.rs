//! Crash safety of the running node: a `synergia serve` process is killed with SIGKILL
//! at random moments while a client publishes to it; after each kill the node restarts,
//! and every publish it acknowledged (HTTP 200 with envelope ids) must be in its store.
//! `SYNERGIA_CRASH_KILLS` sets the number of kills (default 20).

#[path = "common/mod.rs"]
mod common;

use common::*;
use std::time::{Duration, Instant};
use synergia::workload::{GenOptions, bundle};

#[test]
fn acknowledged_publishes_survive_sigkill_of_the_node() {
    let kills: usize = std::env::var("SYNERGIA_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let fed = Federation::new(&["alpha", "beta"], &[]);
    let cfg = fed.config("alpha");
    let url = format!("https://{}", cfg.listen.address);
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_synergia"));
    let log = fed.dir.path().join("alpha.log");
    let admin = fed.admin_identity("alpha");
    let mut acked: Vec<String> = Vec::new();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    let mut seed = 0u64;
    for round in 0..kills {
        let mut node = NodeProcess::spawn(
            bin,
            "alpha",
            &fed.config_path("alpha"),
            &url,
            &fed.ca_path(),
            &log,
        );
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let run_for = Duration::from_millis(50 + rng % 400);
        let pid = node.pid().unwrap();
        // Kill from another thread at a random moment while publishes are in flight.
        let killer = std::thread::spawn(move || {
            std::thread::sleep(run_for);
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        });
        let client = https_client(&fed.ca_path(), Some(&admin));
        let started = Instant::now();
        let new_acks: Vec<String> = rt().block_on(async {
            let mut out = Vec::new();
            while started.elapsed() < run_for + Duration::from_millis(500) {
                seed += 1;
                let b = bundle(&GenOptions {
                    count: 30,
                    seed,
                    origin: "alpha".into(),
                    identity: None,
                    overlap: 0.0,
                    tlp: None,
                });
                match client
                    .post(format!("{url}/api/v1/bundles"))
                    .json(&b)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {
                        if let Ok(v) = r.json::<serde_json::Value>().await {
                            for e in v["envelopes"].as_array().into_iter().flatten() {
                                out.push(e["id"].as_str().unwrap_or_default().to_string());
                            }
                        }
                    }
                    _ => break,
                }
            }
            out
        });
        killer.join().unwrap();
        node.kill();
        acked.extend(new_acks);
        // The store opens after SIGKILL and holds everything acknowledged.
        let store =
            synergia::store::Store::open(&cfg.data_dir, &synergia::store::StoreOptions::default())
                .unwrap_or_else(|e| {
                    panic!("round {round}: store does not open after SIGKILL: {e}")
                });
        let view = store.read();
        let missing: Vec<&String> = acked
            .iter()
            .filter(|id| {
                !view.has_envelope(
                    &synergia::envelope::EnvelopeId::parse(id)
                        .unwrap()
                        .digest_bytes(),
                )
            })
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} acknowledged envelopes lost: {missing:?}",
            missing.len()
        );
        drop(view);
        drop(store);
    }
    assert!(
        acked.len() > kills,
        "too few acknowledged publishes ({}) to test anything",
        acked.len()
    );
    // And the node starts and serves after the last kill.
    let _node = NodeProcess::spawn(
        bin,
        "alpha",
        &fed.config_path("alpha"),
        &url,
        &fed.ca_path(),
        &log,
    );
}
