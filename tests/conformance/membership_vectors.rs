//! The published membership-log vectors (docs/test-vectors/membership-v1/) are what
//! this implementation produces, byte for byte, and an independent Python
//! implementation (`tests/py/check_membership.py`) agrees on the log's head and on the
//! code of every refused proposal.
//!
//! Regenerate (only when the format changes, together with docs/protocol.md §12):
//! `SYNERGIA_WRITE_VECTORS=1 cargo test --test conformance membership`.

use ed25519_dalek::SigningKey;
use synergia::membership::{Change, Entry, Log};
use synergia::roster::{Member, RosterDocument, RosterKey, encode_public_key};
use synergia::stix::timestamp::Timestamp;

const NAMES: [&str; 4] = ["groupib", "kaspersky", "interpol", "trendmicro"];
/// The verifier's clock for every check of the vectors.
const NOW: &str = "2026-12-01T00:00:00Z";

fn key(i: usize) -> SigningKey {
    let mut seed = [0u8; 32];
    for (j, b) in seed.iter_mut().enumerate() {
        *b = (i * 32 + j) as u8;
    }
    SigningKey::from_bytes(&seed)
}

fn member(i: usize) -> Member {
    Member {
        name: NAMES[i].into(),
        identity: format!("identity--5a0c7b2d-1e10-4d3c-8a8e-3b44a7f9d5{i:02x}"),
        node_url: format!("https://127.0.0.1:{}", 7101 + i),
        tls_san: format!("synergia://member/{}", NAMES[i]),
        keys: vec![RosterKey {
            key_id: format!("{}-2026a", NAMES[i]),
            public_key: encode_public_key(&key(i).verifying_key()),
            not_before: "2026-01-01T00:00:00.000Z".into(),
            not_after: "2028-01-01T00:00:00.000Z".into(),
            revoked_at: None,
        }],
    }
}

fn t(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

fn entry(log: &Log, change: Change, by: &[usize], at: &str) -> Entry {
    let mut e = Entry::propose(&log.state(), t(at), change);
    for &i in by {
        e.approve(NAMES[i], &format!("{}-2026a", NAMES[i]), &key(i));
    }
    e
}

#[test]
fn published_membership_vectors_match_and_python_agrees() {
    let dir = crate::common::workspace().join("docs/test-vectors/membership-v1");
    let now = t(NOW);
    let roster = RosterDocument {
        former: Vec::new(),
        kind: "synergia-roster".into(),
        federation: "test-vectors".into(),
        members: (0..3).map(member).collect(),
    };
    // Genesis of three members, threshold 2; trendmicro joins; kaspersky's node moves;
    // kaspersky gets a second key valid from 2026-11-20; the threshold becomes 3;
    // groupib leaves (three approvals).
    let mut log = Log::genesis(&roster, 2, t("2026-11-01T00:00:00.000Z")).unwrap();
    let steps: Vec<(Change, &[usize], &str)> = vec![
        (
            Change::AddMember { member: member(3) },
            &[0, 2],
            "2026-11-02T00:00:00.000Z",
        ),
        (
            Change::SetUrl {
                member: "kaspersky".into(),
                node_url: "https://kaspersky.example:7443".into(),
            },
            &[1, 3],
            "2026-11-03T00:00:00.000Z",
        ),
        (
            Change::AddKey {
                member: "kaspersky".into(),
                key: RosterKey {
                    key_id: "kaspersky-2026b".into(),
                    public_key: encode_public_key(&key(10).verifying_key()),
                    not_before: "2026-11-20T00:00:00.000Z".into(),
                    not_after: "2028-01-01T00:00:00.000Z".into(),
                    revoked_at: None,
                },
            },
            &[0, 2],
            "2026-11-03T12:00:00.000Z",
        ),
        (
            Change::SetThreshold { threshold: 3 },
            &[0, 1],
            "2026-11-04T00:00:00.000Z",
        ),
        (
            Change::RemoveMember {
                name: "groupib".into(),
            },
            &[1, 2, 3],
            "2026-11-05T00:00:00.000Z",
        ),
    ];
    for (change, by, at) in steps {
        let e = entry(&log, change, by, at);
        log.append(e, now).unwrap();
    }
    // Proposals every implementation must refuse after the log, by code.
    let next = "2026-11-06T00:00:00.000Z";
    let threshold_2 = || Change::SetThreshold { threshold: 2 };
    let mut refused: Vec<(&str, Entry)> = vec![
        (
            "too-few-signatures",
            entry(&log, threshold_2(), &[1, 2], next),
        ),
        // groupib was removed: its approval does not count.
        (
            "unknown-signer",
            entry(&log, threshold_2(), &[0, 1, 2], next),
        ),
        (
            "invalid-change",
            entry(
                &log,
                Change::RemoveMember {
                    name: "interpol".into(),
                },
                &[1, 2, 3],
                next,
            ),
        ),
        (
            "time-goes-back",
            entry(&log, threshold_2(), &[1, 2, 3], "2026-11-04T12:00:00.000Z"),
        ),
    ];
    // kaspersky's second key is not valid before 2026-11-20.
    let mut early = entry(&log, threshold_2(), &[], next);
    early.approve("kaspersky", "kaspersky-2026b", &key(10));
    for i in [2, 3] {
        early.approve(NAMES[i], &format!("{}-2026a", NAMES[i]), &key(i));
    }
    refused.push(("signer-key-not-valid", early));
    let mut dup = entry(&log, threshold_2(), &[1, 2], next);
    let again = dup.signatures[0].clone();
    dup.signatures.push(again);
    refused.push(("duplicate-signer", dup));
    let mut forged = entry(&log, threshold_2(), &[1, 2], next);
    forged.approve("trendmicro", "trendmicro-2026a", &key(1));
    refused.push(("bad-signature", forged));
    let mut wrong_prev = entry(&log, threshold_2(), &[], next);
    wrong_prev.prev = log.entries()[1].prev.clone();
    for i in [1, 2, 3] {
        wrong_prev.approve(NAMES[i], &format!("{}-2026a", NAMES[i]), &key(i));
    }
    refused.push(("wrong-previous-hash", wrong_prev));
    // Another entry at a held index, not itself valid there: stale (a valid one would
    // be a fork).
    let mut stale = log.entries()[5].clone();
    stale.at = "2026-11-05T06:00:00.000Z".into();
    stale.signatures.clear();
    refused.push(("stale-index", stale));
    let mut gap = entry(&log, threshold_2(), &[], next);
    gap.index += 1;
    refused.push(("index-gap", gap));

    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("log.jsonl".into(), log.to_text().into_bytes()),
        ("head.txt".into(), log.head().unwrap().hash.into_bytes()),
        ("now.txt".into(), NOW.as_bytes().to_vec()),
    ];
    for (file, k) in (0..NAMES.len())
        .map(|i| (format!("{}-2026a", NAMES[i]), key(i)))
        .chain([("kaspersky-2026b".to_string(), key(10))])
    {
        let seed: String = k.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
        files.push((format!("keys/{file}.seed.hex"), seed.into_bytes()));
    }
    for (code, e) in &refused {
        // Each is refused by this implementation with its code …
        let err = log.clone().append(e.clone(), now).unwrap_err();
        assert_eq!(err.code(), *code, "{err}");
        files.push((
            format!("refused/{code}.json"),
            serde_json::to_vec_pretty(e).unwrap(),
        ));
    }
    if std::env::var_os("SYNERGIA_WRITE_VECTORS").is_some() {
        for (name, bytes) in &files {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
    }
    for (name, bytes) in &files {
        let published = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            &published, bytes,
            "{name} differs from the published vector"
        );
    }
    // … and by the independent implementation.
    let py = crate::common::reference_python();
    let out = std::process::Command::new(py)
        .arg(crate::common::workspace().join("tests/py/check_membership.py"))
        .arg(dir.join("log.jsonl"))
        .arg(NOW)
        .arg(dir.join("refused"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout.starts_with(&format!("ok 6 {}", log.head().unwrap().hash))
            && stdout.contains(&format!("refused {} as expected", refused.len())),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The example federation's membership log gives exactly its roster.
#[test]
fn the_example_membership_log_gives_the_example_roster() {
    let root = crate::common::workspace().join("keys-example");
    let log = Log::load(&root.join("membership.jsonl"), Timestamp::now()).unwrap();
    let roster: RosterDocument =
        serde_json::from_slice(&std::fs::read(root.join("roster.json")).unwrap()).unwrap();
    assert_eq!(log.state().roster, roster);
    assert_eq!(log.state().threshold, 3);
}
