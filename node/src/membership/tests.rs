//! The log rules, one by one, and as properties over random logs.

use super::*;
use crate::roster::{Member, RosterKey, encode_public_key};
use proptest::prelude::*;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn member(name: &str, n: u8) -> Member {
    Member {
        name: name.into(),
        identity: format!("identity--00000000-0000-4000-8000-0000000000{n:02x}"),
        node_url: format!("https://127.0.0.1:{}", 7100 + u16::from(n)),
        tls_san: format!("synergia://member/{name}"),
        keys: vec![RosterKey {
            key_id: format!("{name}-a"),
            public_key: encode_public_key(&key(n).verifying_key()),
            not_before: "2026-01-01T00:00:00.000Z".into(),
            not_after: "2030-01-01T00:00:00.000Z".into(),
            revoked_at: None,
        }],
    }
}

const NAMES: [&str; 6] = ["alpha", "beta", "gamma", "delta", "eps", "zeta"];

fn t(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

fn now() -> Timestamp {
    t("2026-06-01T00:00:00Z")
}

/// A five-member log with threshold 3.
fn genesis() -> Log {
    let members = (0..5).map(|i| member(NAMES[i], i as u8 + 1)).collect();
    let mut e = Entry::propose(
        &State::empty(),
        t("2026-02-01T00:00:00Z"),
        Change::Genesis {
            threshold: 3,
            members,
        },
    );
    e.federation = "test".into();
    Log::from_entries(vec![e], now()).unwrap()
}

/// Adds the approvals of members `by` (indexes into [`NAMES`]).
fn approve_by(e: &mut Entry, by: &[usize]) {
    for &i in by {
        e.approve(NAMES[i], &format!("{}-a", NAMES[i]), &key(i as u8 + 1));
    }
}

fn signed(log: &Log, change: Change, by: &[usize], at: &str) -> Entry {
    let mut e = Entry::propose(&log.state(), t(at), change);
    approve_by(&mut e, by);
    e
}

#[test]
fn an_entry_needs_the_threshold_of_distinct_members_with_keys_valid_then() {
    let mut log = genesis();
    let add = Change::AddMember {
        member: member("zeta", 6),
    };
    // Two approvals of three needed.
    let e = signed(&log, add.clone(), &[0, 1], "2026-03-01T00:00:00Z");
    assert_eq!(
        log.append(e, now()).unwrap_err().code(),
        "too-few-signatures"
    );
    // One member twice.
    let mut e = signed(&log, add.clone(), &[0, 1], "2026-03-01T00:00:00Z");
    let again = e.signatures[0].clone();
    e.signatures.push(again);
    assert_eq!(log.append(e, now()).unwrap_err().code(), "duplicate-signer");
    // A stranger's approval.
    let mut e = signed(&log, add.clone(), &[0, 1], "2026-03-01T00:00:00Z");
    e.approve("zeta", "zeta-a", &key(6));
    assert_eq!(log.append(e, now()).unwrap_err().code(), "unknown-signer");
    // A forged approval: gamma's name, beta's key.
    let mut e = signed(&log, add.clone(), &[0, 1], "2026-03-01T00:00:00Z");
    e.approve("gamma", "gamma-a", &key(2));
    assert_eq!(log.append(e, now()).unwrap_err().code(), "bad-signature");
    // Keys not valid at the entry's time.
    let e = signed(&log, add.clone(), &[0, 1, 2], "2031-01-01T00:00:00Z");
    assert_eq!(
        log.append(e, t("2031-01-01T00:00:00Z")).unwrap_err().code(),
        "signer-key-not-valid"
    );
    // Ahead of the clock.
    let e = signed(&log, add.clone(), &[0, 1, 2], "2026-07-01T00:00:00Z");
    assert_eq!(log.append(e, now()).unwrap_err().code(), "signed-in-future");
    // Three: taken, and zeta is a member.
    let e = signed(&log, add, &[0, 1, 2], "2026-03-01T00:00:00Z");
    assert!(log.append(e.clone(), now()).unwrap());
    assert!(
        log.state()
            .checked_roster()
            .unwrap()
            .member("zeta")
            .is_some()
    );
    // The same entry again: a no-op.
    assert!(!log.append(e, now()).unwrap());
}

#[test]
fn the_chain_refuses_stale_gapped_reordered_and_foreign_entries() {
    let mut log = genesis();
    let a = signed(
        &log,
        Change::SetThreshold { threshold: 2 },
        &[0, 1, 2],
        "2026-03-01T00:00:00Z",
    );
    let mut gap = a.clone();
    gap.index = 5;
    assert_eq!(log.append(gap, now()).unwrap_err().code(), "index-gap");
    let mut wrong = signed(
        &log,
        Change::SetThreshold { threshold: 2 },
        &[],
        "2026-03-01T00:00:00Z",
    );
    wrong.prev = Some(format!("sha256:{}", "0".repeat(64)));
    approve_by(&mut wrong, &[0, 1, 2]);
    assert_eq!(
        log.append(wrong, now()).unwrap_err().code(),
        "wrong-previous-hash"
    );
    let mut other = signed(
        &log,
        Change::SetThreshold { threshold: 2 },
        &[],
        "2026-03-01T00:00:00Z",
    );
    other.federation = "elsewhere".into();
    approve_by(&mut other, &[0, 1, 2]);
    assert_eq!(
        log.append(other, now()).unwrap_err().code(),
        "wrong-federation"
    );
    log.append(a, now()).unwrap();
    let back = signed(
        &log,
        Change::SetThreshold { threshold: 3 },
        &[0, 1, 2],
        "2026-02-15T00:00:00Z",
    );
    assert_eq!(
        log.append(back, now()).unwrap_err().code(),
        "time-goes-back"
    );
    // A replay of the genesis: the same is a no-op, another one a fork of index 0 …
    let genesis = log.entries()[0].clone();
    assert!(!log.append(genesis.clone(), now()).unwrap());
    // … and an approval added to a held entry changes nothing it approves.
    let mut more = log.entries()[1].clone();
    more.approve("delta", "delta-a", &key(4));
    assert!(!log.append(more, now()).unwrap());
}

#[test]
fn two_valid_entries_at_one_index_are_a_fork() {
    let mut log = genesis();
    let a = signed(
        &log,
        Change::SetUrl {
            member: "alpha".into(),
            node_url: "https://a.example:7000".into(),
        },
        &[0, 1, 2],
        "2026-03-01T00:00:00Z",
    );
    let b = signed(
        &log,
        Change::SetUrl {
            member: "alpha".into(),
            node_url: "https://b.example:7000".into(),
        },
        &[2, 3, 4],
        "2026-03-01T00:00:00Z",
    );
    log.append(a.clone(), now()).unwrap();
    match log.append(b, now()).unwrap_err() {
        LogError::Fork { index, held } => {
            assert_eq!(index, 1);
            assert_eq!(held, a.hash());
        }
        e => panic!("{e}"),
    }
    // An invalid entry at a held index is merely stale.
    let c = signed(
        &genesis(),
        Change::SetThreshold { threshold: 2 },
        &[0],
        "2026-03-01T00:00:00Z",
    );
    assert_eq!(log.append(c, now()).unwrap_err().code(), "stale-index");
    // Another genesis (it needs no approvals: anyone can make one) is no fork.
    let mut other = Entry::propose(
        &State::empty(),
        t("2026-02-01T00:00:00Z"),
        Change::Genesis {
            threshold: 1,
            members: vec![member("mallory", 9)],
        },
    );
    other.federation = "test".into();
    assert_eq!(log.append(other, now()).unwrap_err().code(), "stale-index");
}

/// A rival entry at an old index counts as a fork only if its approvers are still
/// in good standing: members removed since, or keys revoked since, approve no fork.
#[test]
fn a_rival_approved_by_members_removed_since_is_no_fork() {
    let mut log = genesis();
    let remove = signed(
        &log,
        Change::RemoveMember {
            name: "delta".into(),
        },
        &[0, 1, 2],
        "2026-03-01T00:00:00Z",
    );
    let prefix = log.clone();
    log.append(remove, now()).unwrap();
    // delta (removed since), eps and alpha: valid on the prefix, but only two of its
    // approvers are members now.
    let rival = signed(
        &prefix,
        Change::SetThreshold { threshold: 2 },
        &[3, 4, 0],
        "2026-03-01T00:00:00Z",
    );
    assert!(prefix.clone().append(rival.clone(), now()).is_ok());
    assert_eq!(log.append(rival, now()).unwrap_err().code(), "stale-index");
    // Three members in good standing: a fork.
    let rival = signed(
        &prefix,
        Change::SetThreshold { threshold: 2 },
        &[2, 4, 0],
        "2026-03-01T00:00:00Z",
    );
    assert_eq!(log.append(rival, now()).unwrap_err().code(), "fork");
}

#[test]
fn every_change_kind_applies_and_a_removed_member_cannot_approve() {
    let mut log = genesis();
    let steps: Vec<(Change, &[usize])> = vec![
        (
            Change::AddMember {
                member: member("zeta", 6),
            },
            &[0, 1, 2],
        ),
        (
            Change::AddKey {
                member: "alpha".into(),
                key: RosterKey {
                    key_id: "alpha-b".into(),
                    public_key: encode_public_key(&key(11).verifying_key()),
                    not_before: "2026-04-01T00:00:00.000Z".into(),
                    not_after: "2031-01-01T00:00:00.000Z".into(),
                    revoked_at: None,
                },
            },
            &[0, 1, 5],
        ),
        (
            Change::RevokeKey {
                member: "beta".into(),
                key_id: "beta-a".into(),
                revoked_at: "2026-03-02T00:00:00.000Z".into(),
            },
            &[0, 2, 3],
        ),
        (
            Change::RevokeCertificate {
                serial: Some("1f2e".into()),
                fingerprint: None,
            },
            &[0, 2, 3],
        ),
        (
            Change::SetUrl {
                member: "gamma".into(),
                node_url: "https://gamma.example:7443".into(),
            },
            &[0, 2, 3],
        ),
        (Change::SetThreshold { threshold: 4 }, &[0, 2, 3]),
        (
            Change::RemoveMember {
                name: "delta".into(),
            },
            &[0, 2, 4, 5],
        ),
    ];
    for (i, (change, by)) in steps.into_iter().enumerate() {
        let at = format!("2026-03-{:02}T00:00:00Z", i + 2);
        let e = signed(&log, change.clone(), by, &at);
        log.append(e, now())
            .unwrap_or_else(|e| panic!("{}: {e}", change.describe()));
    }
    let s = log.state();
    let r = s.checked_roster().unwrap();
    assert!(r.member("zeta").is_some() && r.member("delta").is_none());
    assert!(r.key("alpha", "alpha-b").is_some());
    assert!(r.key("beta", "beta-a").unwrap().revoked_at.is_some());
    assert_eq!(s.revoked.serials, vec!["1f2e".to_string()]);
    assert_eq!(
        r.member("gamma").unwrap().node_url,
        "https://gamma.example:7443"
    );
    assert_eq!(s.threshold, 4);
    // delta was removed: its approval no longer counts (it is no member).
    let e = signed(
        &log,
        Change::SetThreshold { threshold: 3 },
        &[0, 2, 3, 5],
        "2026-03-20T00:00:00Z",
    );
    assert_eq!(log.append(e, now()).unwrap_err().code(), "unknown-signer");
    // delta stays known as a former member: its keys end at the removal, its name
    // is never given again.
    let r = log.state().checked_roster().unwrap();
    let (_, removed_at) = r.former_member("delta").unwrap();
    assert!(r.member("delta").is_none());
    assert!(
        r.key("delta", "delta-a")
            .unwrap()
            .revoked_at
            .is_some_and(|at| at <= removed_at)
    );
    let e = signed(
        &log,
        Change::AddMember {
            member: member("delta", 9),
        },
        &[0, 2, 4, 5],
        "2026-03-20T00:00:00Z",
    );
    let err = log.append(e, now()).unwrap_err();
    assert_eq!(err.code(), "invalid-change", "{err}");
    assert!(err.to_string().contains("never used again"), "{err}");
    // beta's key was revoked before this entry: it cannot approve.
    let e = signed(
        &log,
        Change::SetThreshold { threshold: 3 },
        &[0, 1, 2, 4],
        "2026-03-20T00:00:00Z",
    );
    assert_eq!(
        log.append(e, now()).unwrap_err().code(),
        "signer-key-not-valid"
    );
    // Invalid changes, each named.
    for change in [
        Change::AddMember {
            member: member("zeta", 6),
        },
        Change::RemoveMember {
            name: "nobody".into(),
        },
        Change::SetThreshold { threshold: 9 },
        Change::SetUrl {
            member: "alpha".into(),
            node_url: "http://plain".into(),
        },
        Change::RevokeCertificate {
            serial: None,
            fingerprint: None,
        },
        Change::AddKey {
            member: "alpha".into(),
            key: RosterKey {
                key_id: "gamma-a".into(),
                public_key: encode_public_key(&key(12).verifying_key()),
                not_before: "2026-04-01T00:00:00.000Z".into(),
                not_after: "2031-01-01T00:00:00.000Z".into(),
                revoked_at: None,
            },
        },
    ] {
        let e = signed(&log, change.clone(), &[0, 2, 4, 5], "2026-03-20T00:00:00Z");
        assert_eq!(
            log.append(e, now()).unwrap_err().code(),
            "invalid-change",
            "{}",
            change.describe()
        );
    }
}

#[test]
fn a_log_file_round_trips_and_names_the_line_at_fault() {
    let mut log = genesis();
    let e = signed(
        &log,
        Change::SetThreshold { threshold: 2 },
        &[0, 1, 2],
        "2026-03-01T00:00:00Z",
    );
    log.append(e, now()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("membership.jsonl");
    log.save(&path).unwrap();
    let back = Log::load(&path, now()).unwrap();
    assert_eq!(back.entries(), log.entries());
    assert_eq!(back.head(), log.head());
    // One approval removed from line 2: the file is refused, naming it.
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut second = Entry::from_slice(lines[1].as_bytes()).unwrap();
    second.signatures.pop();
    lines[1] = second.to_line();
    std::fs::write(&path, lines.join("\n")).unwrap();
    let err = Log::load(&path, now()).unwrap_err().to_string();
    assert!(
        err.contains("line 2") && err.contains("[too-few-signatures]"),
        "{err}"
    );
    std::fs::write(&path, "{\"type\": 1}\n").unwrap();
    let err = Log::load(&path, now()).unwrap_err().to_string();
    assert!(
        err.contains("line 1") && err.contains("[malformed]"),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any sequence of proposals signed by random subsets: an entry is taken exactly
    /// when its distinct signers that are members with valid keys reach the
    /// threshold of the state before it and its change applies; reading the same
    /// entries again (or in another order) gives the same head or refuses.
    #[test]
    fn the_log_takes_exactly_the_approved_entries(
        steps in proptest::collection::vec(
            (0u8..4, proptest::collection::vec(0usize..6, 0..6)), 1..8),
        order in any::<proptest::sample::Index>(),
    ) {
        let mut log = genesis();
        let mut taken = Vec::new();
        for (n, (kind, signers)) in steps.iter().enumerate() {
            let state = log.state();
            let change = match kind {
                0 => Change::SetThreshold { threshold: 2 + (n as u32 % 3) },
                1 => Change::AddMember { member: member(NAMES[5], 6) },
                2 => Change::RemoveMember { name: NAMES[n % 6].into() },
                _ => Change::SetUrl { member: NAMES[n % 5].into(), node_url: format!("https://n{n}.example") },
            };
            let at = format!("2026-03-{:02}T00:00:00Z", n + 1);
            let e = signed(&log, change, signers, &at);
            // A member approving again replaces its approval: it counts once.
            let mut distinct: Vec<usize> = signers.clone();
            distinct.sort_unstable();
            distinct.dedup();
            prop_assert_eq!(e.signatures.len(), distinct.len());
            let members = distinct.iter().filter(|&&i| state.roster.members.iter().any(|m| m.name == NAMES[i])).count();
            let outcome = log.append(e.clone(), now());
            if let Ok(true) = outcome {
                taken.push(e);
                prop_assert!(members == distinct.len() && members >= state.threshold as usize);
            } else if members == distinct.len() && members >= state.threshold as usize {
                // Enough approvals: only the change itself may be at fault.
                prop_assert_eq!(outcome.unwrap_err().code(), "invalid-change");
            }
        }
        // The same entries from the start give the same head.
        let mut all = vec![log.entries()[0].clone()];
        all.extend(taken.iter().cloned());
        let again = Log::from_entries(all.clone(), now()).unwrap();
        prop_assert_eq!(again.head(), log.head());
        // Out of order, an entry after the genesis is refused until its turn.
        if all.len() > 2 {
            let i = 2 + order.index(all.len() - 2);
            let mut shuffled = all.clone();
            shuffled.swap(1, i);
            prop_assert!(Log::from_entries(shuffled, now()).is_err());
        }
    }
}
