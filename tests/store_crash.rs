//! Crash safety with real processes: a writer process publishes into the store in a
//! loop and prints each acknowledgement; the test kills it with SIGKILL at random
//! moments, reopens the store, and checks that everything acknowledged is there.
//!
//! The writer is this same test executable, re-run with `--ignored --exact
//! crash_writer` and `SYNERGIA_CRASH_DIR` set. `SYNERGIA_CRASH_KILLS` sets the number
//! of kills (default 20; the soak in docs/reliability.md uses more).

use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use synergia::envelope::{Envelope, EnvelopeMeta, Signer};
use synergia::stix::timestamp::Timestamp;
use synergia::stix::tlp::TlpLevel;
use synergia::store::{Store, StoreOptions};

fn signer() -> Signer {
    Signer {
        origin: "kaspersky".into(),
        origin_identity: "identity--6b0a0f36-5b0e-4d8a-9f0a-0d6f8c3a1b2c".into(),
        key_id: "kaspersky-k1".into(),
        key: ed25519_dalek::SigningKey::from_bytes(&[5; 32]),
    }
}

fn envelope(n: u64) -> Envelope {
    let objects: Vec<_> = (0..20)
        .map(|k| {
            json!({
                "type": "indicator", "spec_version": "2.1",
                "id": format!("indicator--{:08x}-{:04x}-4000-8000-{:012x}", n, k, std::process::id()),
                "created": "2026-03-01T00:00:00.000Z", "modified": "2026-03-01T00:00:00.000Z",
                "pattern": format!("[ipv4-addr:value = '10.{}.{}.{}']", (n >> 8) & 255, n & 255, k),
                "pattern_type": "stix", "valid_from": "2026-03-01T00:00:00Z"
            })
        })
        .collect();
    Envelope::sign(
        json!({"type": "bundle", "id": format!("bundle--{}", uuid::Uuid::new_v4()), "objects": objects}),
        &signer(),
        EnvelopeMeta { seq: n + 1, signed_at: Timestamp::now(), tlp: TlpLevel::Green, recipients: vec![] },
    )
    .unwrap()
}

/// The writer process (only runs when the crash test starts it).
#[test]
#[ignore = "child process of crash_safety_under_sigkill"]
fn crash_writer() {
    let Some(dir) = std::env::var_os("SYNERGIA_CRASH_DIR") else {
        return;
    };
    let store = Store::open(std::path::Path::new(&dir), &StoreOptions::default()).unwrap();
    println!("READY");
    for n in 0.. {
        let e = envelope(n);
        store.ingest(std::slice::from_ref(&e), "local").unwrap();
        // Acknowledged: the log is fsynced.
        println!("ACK {}", e.id());
    }
}

#[test]
fn crash_safety_under_sigkill() {
    let kills: usize = std::env::var("SYNERGIA_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<String> = Vec::new();
    let mut rng = 0x2545F4914F6CDD1Du64 ^ u64::from(std::process::id());
    for round in 0..kills {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SYNERGIA_CRASH_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let run_for = Duration::from_millis(30 + rng % 250);
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until the writer has opened the store, then let it run a random time.
        let started = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(l) if l.ends_with("READY") => break,
                Ok(_) => {}
                Err(e) => panic!("round {round}: writer did not start: {e}"),
            }
            assert!(started.elapsed() < Duration::from_secs(30));
        }
        std::thread::sleep(run_for);
        // SIGKILL: no destructors, no flush.
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let before = acked.len();
        acked.extend(
            rx.try_iter()
                .filter_map(|l| l.strip_prefix("ACK ").map(str::to_string)),
        );
        // Reopen (in this process) and check every acknowledged envelope is there.
        let store = Store::open(dir.path(), &StoreOptions::default())
            .unwrap_or_else(|e| panic!("round {round}: store does not open after SIGKILL: {e}"));
        let view = store.read();
        let missing: Vec<&String> = acked
            .iter()
            .filter(|id| {
                let id = synergia::envelope::EnvelopeId::parse(id).unwrap();
                !view.has_envelope(&id.digest_bytes())
            })
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} acknowledged envelopes lost: {missing:?}",
            missing.len()
        );
        assert!(view.envelope_count() >= acked.len());
        eprintln!(
            "round {round}: killed after {run_for:?}, {} new acks, {} held",
            acked.len() - before,
            view.envelope_count()
        );
    }
    assert!(
        acked.len() > kills,
        "the writer made too little progress to test anything"
    );
}
