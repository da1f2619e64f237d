//! Store tests with real signed envelopes, real files and real sled.

use super::*;
use crate::envelope::{EnvelopeMeta, Signer};
use crate::roster::{Member, Roster, RosterDocument, RosterKey, encode_public_key};
use crate::workload::{GenOptions, bundle};
use serde_json::{Value, json};

const MEMBERS: [&str; 3] = ["groupib", "kaspersky", "interpol"];

fn identity(name: &str) -> String {
    format!(
        "identity--{}",
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes())
    )
}

fn signer(name: &str) -> Signer {
    let seed = MEMBERS.iter().position(|m| *m == name).unwrap() as u8 + 1;
    Signer {
        origin: name.into(),
        origin_identity: identity(name),
        key_id: format!("{name}-k1"),
        key: ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
    }
}

fn roster_with(revoked: Option<&str>) -> Roster {
    Roster::from_document(RosterDocument {
        former: Vec::new(),
        kind: "synergia-roster".into(),
        federation: "t".into(),
        members: MEMBERS
            .iter()
            .map(|m| Member {
                name: m.to_string(),
                identity: identity(m),
                node_url: "https://127.0.0.1:1".into(),
                tls_san: format!("synergia://member/{m}"),
                keys: vec![RosterKey {
                    key_id: format!("{m}-k1"),
                    public_key: encode_public_key(&signer(m).key.verifying_key()),
                    not_before: "2020-01-01T00:00:00Z".into(),
                    not_after: "2099-01-01T00:00:00Z".into(),
                    revoked_at: (revoked == Some(*m)).then(|| "2021-01-01T00:00:00Z".into()),
                }],
            })
            .collect(),
    })
    .unwrap()
}

fn sign(origin: &str, seq: u64, objects: Vec<Value>) -> Envelope {
    let b = json!({"type": "bundle", "id": format!("bundle--{}", uuid::Uuid::new_v4()), "objects": objects});
    Envelope::sign(
        b,
        &signer(origin),
        EnvelopeMeta {
            seq,
            signed_at: Timestamp::now(),
            tlp: TlpLevel::Amber,
            recipients: vec![],
        },
    )
    .unwrap()
}

/// `gen` objects of an origin, cut into envelopes of `per` objects.
fn envelopes(origin: &str, count: u64, per: usize) -> Vec<Envelope> {
    let b = bundle(&GenOptions {
        count,
        seed: 9,
        origin: origin.into(),
        identity: Some(identity(origin)),
        overlap: 0.5,
        tlp: None,
    });
    b["objects"]
        .as_array()
        .unwrap()
        .chunks(per)
        .enumerate()
        .map(|(i, c)| sign(origin, i as u64 + 1, c.to_vec()))
        .collect()
}

/// A store on the in-memory index engine (the log is still real files in `dir`).
pub(crate) fn memory_store(dir: &std::path::Path) -> Store {
    let opts = StoreOptions {
        engine: EngineKind::Memory,
        ..StoreOptions::default()
    };
    Store::open(dir, &opts).unwrap()
}

/// Stores `n` signed envelopes of three `gen` objects each (origin `groupib`) and
/// returns their bytes as stored, in order: for tests elsewhere that need a store
/// holding real envelopes.
pub(crate) fn ingest_signed(store: &Store, n: u64) -> Vec<Vec<u8>> {
    let envs: Vec<Envelope> = envelopes("groupib", n * 3, 3)
        .into_iter()
        .take(n as usize)
        .collect();
    assert_eq!(envs.len() as u64, n);
    store.ingest(&envs, "local").unwrap();
    envs.iter().map(Envelope::to_canonical_bytes).collect()
}

/// The keys validation notes from patterns are the keys the store finds by parsing
/// the patterns again, object by object: for the gen workload (addresses, domains,
/// URLs, hashes) and for compound, set, subnet and keyless patterns.
#[test]
fn keys_noted_by_validation_are_the_keys_found_again() {
    let indicator = |i: usize, pattern: &str| {
        json!({
            "type": "indicator", "spec_version": "2.1",
            "id": format!("indicator--{}", uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, pattern.as_bytes())),
            "created": "2026-01-01T00:00:00.000Z", "modified": format!("2026-01-01T00:00:0{i}.000Z"),
            "valid_from": "2026-01-01T00:00:00Z", "pattern_type": "stix", "pattern": pattern
        })
    };
    let patterns = [
        "[ipv4-addr:value = '198.51.100.7' OR domain-name:value = 'Bad.Example.']",
        "[file:hashes.MD5 = '79054025255fb1a26e4bc422aef54eb4' AND file:name = 'a.exe']",
        "[network-traffic:dst_port = 443]",
        "[ipv4-addr:value ISSUBSET '203.0.113.0/24']",
        "[email-addr:value IN ('a@b.example', 'c@d.example')] FOLLOWEDBY [url:value = 'http://x.example/p']",
        "[ipv4-addr:value != '192.0.2.1']",
    ];
    let objects: Vec<Value> = patterns
        .iter()
        .enumerate()
        .map(|(i, p)| indicator(i, p))
        .collect();
    let mut all = envelopes("groupib", 400, 1000);
    all.push(sign("groupib", 99, objects));
    let mut with_keys = 0;
    for env in all {
        let found = super::prepare::prepare(&env).unwrap();
        let (keys, _) = crate::stix::check_bundle_noting(env.bundle()).unwrap();
        with_keys += keys.iter().flatten().filter(|k| !k.is_empty()).count();
        env.note_pattern_keys(keys);
        assert!(env.pattern_keys().is_some());
        let noted = super::prepare::prepare(&env).unwrap();
        assert_eq!(noted.bytes, found.bytes);
        for (a, b) in noted.objects.iter().zip(&found.objects) {
            assert_eq!(a.obs_keys, b.obs_keys);
        }
    }
    assert!(with_keys >= 400, "{with_keys} indicators with keys");
}

/// The levels the content check notes on receipt are the levels the store finds by
/// resolving every object's markings itself: for the gen workload (clear, green and
/// amber objects and unmarked ones in an amber envelope) and for an object marked by
/// a TLP statement marking defined in its own bundle.
#[test]
fn levels_noted_by_the_content_check_are_the_levels_found_again() {
    let roster = roster_with(None);
    let opts = crate::envelope::VerifyOptions::default();
    let statement = "marking-definition--3b8c0f4e-8c1a-4a43-9a55-2d0f7c1e9b11";
    let marked = vec![
        json!({"type": "marking-definition", "spec_version": "2.1", "id": statement,
               "created": "2026-01-01T00:00:00.000Z", "name": "TLP:AMBER",
               "definition_type": "statement", "definition": {"statement": "TLP:AMBER"}}),
        json!({"type": "ipv4-addr", "spec_version": "2.1",
               "id": "ipv4-addr--0b6a4e47-8d5d-5b40-9d88-6b4a8f1a3c21", "value": "198.51.100.9",
               "object_marking_refs": [statement]}),
    ];
    let mut all = envelopes("kaspersky", 300, 100);
    all.push(sign("kaspersky", 50, marked));
    let mut seen = std::collections::BTreeSet::new();
    for env in all {
        let found = super::prepare::prepare(&env).unwrap();
        assert!(env.object_levels().is_none());
        env.verify(&roster, &opts).unwrap();
        let noted = env
            .object_levels()
            .expect("noted by the content check")
            .to_vec();
        let again: Vec<TlpLevel> = found.objects.iter().map(|o| o.tlp).collect();
        assert_eq!(noted, again);
        let with_noted = super::prepare::prepare(&env).unwrap();
        assert_eq!(
            with_noted.objects.iter().map(|o| o.tlp).collect::<Vec<_>>(),
            again
        );
        seen.extend(again);
    }
    assert!(seen.len() >= 3, "levels seen: {seen:?}");
}

fn digests(s: &Store) -> Vec<ViewDigest> {
    crate::stix::tlp::ALL_LEVELS
        .iter()
        .map(|l| s.digest(*l))
        .collect()
}

fn sled() -> StoreOptions {
    StoreOptions::default()
}

#[test]
fn ingest_is_durable_idempotent_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let envs = envelopes("kaspersky", 120, 50);
    let before;
    {
        let s = Store::open(dir.path(), &sled()).unwrap();
        let out = s.ingest(&envs, "local").unwrap();
        assert!(
            out.iter()
                .all(|o| matches!(o, IngestOutcome::Accepted { .. }))
        );
        let again = s.ingest(&envs, "groupib").unwrap();
        assert!(again.iter().all(|o| *o == IngestOutcome::Duplicate));
        // Duplicates inside one batch are caught too.
        let twice = vec![envs[0].clone(), envs[0].clone()];
        assert!(
            s.ingest(&twice, "x")
                .unwrap()
                .iter()
                .all(|o| *o == IngestOutcome::Duplicate)
        );
        before = digests(&s);
        let v = s.read();
        assert_eq!(v.envelope_count(), envs.len());
        let objects: usize = envs.iter().map(|e| e.objects().len()).sum();
        assert_eq!(v.version_count(), objects);
        // Bodies come back byte-exact from the log.
        let body = s.object_body(v.body_location(0).unwrap()).unwrap();
        assert_eq!(
            body,
            crate::envelope::canonical::canonical_bytes(&envs[0].objects()[0]).unwrap()
        );
        s.flush().unwrap();
    }
    let s = Store::open(dir.path(), &sled()).unwrap();
    assert_eq!(digests(&s), before);
    assert_eq!(s.read().envelope_count(), envs.len());
    // New envelopes continue the ordinals and date_added.
    let more = envelopes("groupib", 10, 10);
    let last_da = s.read().last_date_added();
    match s.ingest(&more, "groupib").unwrap()[0] {
        IngestOutcome::Accepted { ordinal, .. } => assert_eq!(ordinal, envs.len() as u64),
        o => panic!("{o:?}"),
    }
    assert!(s.read().versions().last().unwrap().date_added > last_da);
}

#[test]
fn lost_index_is_rebuilt_from_the_log_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let envs = envelopes("groupib", 60, 20);
    let before = {
        let s = Store::open(dir.path(), &sled()).unwrap();
        s.ingest(&envs, "local").unwrap();
        digests(&s)
    };
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let s = Store::open(dir.path(), &sled()).unwrap();
    assert_eq!(digests(&s), before);
}

#[test]
fn corrupted_index_says_rebuild_and_rebuild_restores_the_digest() {
    let dir = tempfile::tempdir().unwrap();
    let mut envs = envelopes("groupib", 80, 20);
    envs.extend(envelopes("kaspersky", 80, 40));
    let before = {
        let s = Store::open(dir.path(), &sled()).unwrap();
        s.ingest(&envs, "local").unwrap();
        s.flush().unwrap();
        digests(&s)
    };
    // Damage every file of the index.
    fn scribble(p: &std::path::Path) {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            if e.path().is_dir() {
                scribble(&e.path());
            } else {
                std::fs::write(e.path(), b"\xde\xad\xbe\xef garbage").unwrap();
            }
        }
    }
    scribble(&dir.path().join("index"));
    let err = Store::open(dir.path(), &sled()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::IndexUnavailable { .. } | StoreError::Corrupt(_)
        ),
        "{err}"
    );
    let report = Store::rebuild(dir.path(), &sled(), &roster_with(None)).unwrap();
    assert_eq!(report.envelopes, envs.len() as u64);
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    let after: Vec<ViewDigest> = report.digests.iter().map(|(_, d)| *d).collect();
    assert_eq!(after, before);
    let s = Store::open(dir.path(), &sled()).unwrap();
    assert_eq!(digests(&s), before);
}

#[test]
fn rebuild_reverifies_against_the_current_roster() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path(), &sled()).unwrap();
        s.ingest(&envelopes("groupib", 20, 10), "local").unwrap();
        s.ingest(&envelopes("kaspersky", 20, 10), "local").unwrap();
    }
    let report = Store::rebuild(dir.path(), &sled(), &roster_with(Some("kaspersky"))).unwrap();
    assert_eq!(report.envelopes, 4 + 2);
    assert_eq!(report.rejected.len(), 3, "{:?}", report.rejected);
    assert!(
        report
            .rejected
            .iter()
            .all(|(_, r)| r.contains("key-revoked"))
    );
    let s = Store::open(dir.path(), &sled()).unwrap();
    assert!(s.read().origin_index("kaspersky").is_none());
}

#[test]
fn torn_log_tail_is_cut_and_the_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    let envs = envelopes("groupib", 30, 10);
    {
        let s = Store::open(dir.path(), &sled()).unwrap();
        s.ingest(&envs, "local").unwrap();
    }
    let seg = std::fs::read_dir(dir.path().join("log"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, b"SYNR\xff\xff\x00\x00partial").unwrap();
    let s = Store::open(dir.path(), &sled()).unwrap();
    assert_eq!(s.read().envelope_count(), envs.len());
    s.ingest(&envelopes("kaspersky", 5, 5), "local").unwrap();
}

#[test]
fn lookup_counts_corroboration_and_matches_cidrs() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), &sled()).unwrap();
    let ind = |n: u32, pattern: &str| {
        json!({
            "type": "indicator", "spec_version": "2.1",
            "id": format!("indicator--{n:08x}-0000-4000-8000-000000000000"),
            "created": "2026-03-01T00:00:00.000Z", "modified": "2026-03-01T00:00:00.000Z",
            "pattern": pattern, "pattern_type": "stix", "valid_from": "2026-03-01T00:00:00Z",
            "confidence": 70 + n
        })
    };
    s.ingest(
        &[sign(
            "groupib",
            1,
            vec![ind(1, "[ipv4-addr:value = '203.0.113.7']")],
        )],
        "groupib",
    )
    .unwrap();
    s.ingest(
        &[sign(
            "kaspersky",
            1,
            vec![ind(2, "[ipv4-addr:value = '203.0.113.7']")],
        )],
        "kaspersky",
    )
    .unwrap();
    s.ingest(
        &[sign(
            "interpol",
            1,
            vec![ind(3, "[ipv4-addr:value ISSUBSET '203.0.113.0/24']")],
        )],
        "local",
    )
    .unwrap();
    let r = s
        .lookup(
            &[
                "203.0.113.7".into(),
                "198.51.100.1".into(),
                "not a thing!".into(),
            ],
            TlpLevel::Red,
        )
        .unwrap();
    assert_eq!(r[0].key.as_deref(), Some("ipv4-addr:203.0.113.7"));
    assert_eq!(r[0].hits.len(), 3, "{:?}", r[0].hits);
    assert_eq!(r[0].corroboration, 3);
    assert!(
        r[0].hits
            .iter()
            .any(|h| h.matched == "ipv4-addr:203.0.113.0/24")
    );
    let g = r[0]
        .hits
        .iter()
        .find(|h| h.origins == vec!["groupib".to_string()])
        .unwrap();
    assert_eq!(g.confidence, Some(71));
    assert_eq!(g.provenance[0].received_from, "groupib");
    assert!(g.provenance[0].envelope_id.starts_with("sha256:"));
    assert!(r[1].hits.is_empty());
    assert!(r[2].error.is_some());
    // TLP ceiling: these envelopes are amber (objects unmarked).
    assert!(
        s.lookup(&["203.0.113.7".into()], TlpLevel::Green).unwrap()[0]
            .hits
            .is_empty()
    );
}

#[test]
fn a_network_lookup_finds_the_addresses_and_networks_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), &sled()).unwrap();
    let ind = |n: u32, pattern: &str| {
        json!({
            "type": "indicator", "spec_version": "2.1",
            "id": format!("indicator--{n:08x}-0000-4000-8000-000000000000"),
            "created": "2026-03-01T00:00:00.000Z", "modified": "2026-03-01T00:00:00.000Z",
            "pattern": pattern, "pattern_type": "stix", "valid_from": "2026-03-01T00:00:00Z"
        })
    };
    let objects = vec![
        ind(1, "[ipv4-addr:value = '203.0.113.7']"),
        ind(2, "[ipv4-addr:value = '203.0.113.255']"),
        ind(3, "[ipv4-addr:value = '203.0.114.0']"),
        ind(4, "[ipv4-addr:value ISSUBSET '203.0.113.128/25']"),
        ind(5, "[ipv4-addr:value ISSUBSET '203.0.0.0/16']"),
        ind(6, "[ipv6-addr:value = '2001:db8::1']"),
        ind(7, "[ipv6-addr:value = '2001:db9::1']"),
        json!({"type": "ipv4-addr", "spec_version": "2.1",
               "id": "ipv4-addr--00000008-0000-4000-8000-000000000000", "value": "203.0.113.9"}),
    ];
    s.ingest(&[sign("groupib", 1, objects)], "groupib").unwrap();
    let ids = |r: &super::lookup::LookupResult| -> Vec<String> {
        let mut v: Vec<String> = r.hits.iter().map(|h| h.id[..20].to_string()).collect();
        v.sort();
        v
    };
    let r = s
        .lookup(
            &[
                "203.0.113.0/24".into(),
                "2001:db8::/32".into(),
                "203.0.113.128/25".into(),
                "10.0.0.0/8".into(),
            ],
            TlpLevel::Red,
        )
        .unwrap();
    // Inside /24: .7, .255, the /25 and the SCO .9; containing it: the /16. Not
    // 203.0.114.0.
    assert_eq!(
        ids(&r[0]),
        vec![
            "indicator--00000001-",
            "indicator--00000002-",
            "indicator--00000004-",
            "indicator--00000005-",
            "ipv4-addr--00000008-"
        ],
        "{:?}",
        r[0].hits
    );
    assert!(!r[0].truncated);
    assert!(
        r[0].hits
            .iter()
            .any(|h| h.matched == "ipv4-addr:203.0.113.7")
    );
    assert_eq!(ids(&r[1]), vec!["indicator--00000006-"], "{:?}", r[1].hits);
    // The /25 finds itself, .255 and the /16 containing it; not .7 or .9.
    assert_eq!(
        ids(&r[2]),
        vec![
            "indicator--00000002-",
            "indicator--00000004-",
            "indicator--00000005-"
        ]
    );
    assert!(r[3].hits.is_empty());
}

#[test]
fn a_range_lookup_stops_at_its_limit_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), &sled()).unwrap();
    let n = super::lookup::RANGE_LIMIT as u32 + 5;
    let objects: Vec<Value> = (0..n)
        .map(|i| {
            json!({"type": "ipv4-addr", "spec_version": "2.1",
                   "id": format!("ipv4-addr--{i:08x}-0000-4000-8000-000000000000"),
                   "value": std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string()})
        })
        .collect();
    s.ingest(&[sign("groupib", 1, objects)], "groupib").unwrap();
    let r = s.lookup(&["10.0.0.0/8".into()], TlpLevel::Red).unwrap();
    assert!(r[0].truncated);
    assert_eq!(r[0].hits.len(), super::lookup::RANGE_LIMIT);
    let r = s.lookup(&["10.0.0.0/30".into()], TlpLevel::Red).unwrap();
    assert!(!r[0].truncated);
    assert_eq!(r[0].hits.len(), 4);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// Random sets of real envelopes (overlapping ids across origins through shared
        /// SCO-free indicators, repeated versions, conflicts and revocations), applied in
        /// random orders with duplicates, give identical digests and latest versions.
        #[test]
        fn arrival_order_does_not_matter(
            picks in proptest::collection::vec((0usize..3, 0u8..6, 0u8..3, 0u8..2, any::<bool>()), 1..14),
            shuffle in any::<u64>(),
        ) {
            let envs: Vec<Envelope> = picks
                .iter()
                .enumerate()
                .map(|(i, &(m, id, modified, content, revoked))| {
                    let mut o = json!({
                        "type": "malware", "spec_version": "2.1",
                        "id": format!("malware--{id:08x}-0000-4000-8000-000000000000"),
                        "created": "2026-01-01T00:00:00.000Z",
                        "modified": format!("2026-01-0{}T00:00:00.000Z", modified + 1),
                        "name": format!("family {content}"), "is_family": true
                    });
                    if revoked {
                        o["revoked"] = json!(true);
                    }
                    sign(MEMBERS[m], i as u64 + 1, vec![o])
                })
                .collect();
            let mem = StoreOptions { engine: EngineKind::Memory, ..StoreOptions::default() };
            let d1 = tempfile::tempdir().unwrap();
            let a = Store::open(d1.path(), &mem).unwrap();
            for e in &envs {
                a.ingest(std::slice::from_ref(e), "x").unwrap();
            }
            let mut order: Vec<usize> = (0..envs.len()).chain(0..envs.len() / 2).collect();
            let mut r = shuffle;
            for i in (1..order.len()).rev() {
                r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (r >> 33) as usize % (i + 1));
            }
            let d2 = tempfile::tempdir().unwrap();
            let b = Store::open(d2.path(), &mem).unwrap();
            for i in order {
                b.ingest(std::slice::from_ref(&envs[i]), "y").unwrap();
            }
            prop_assert_eq!(digests(&a), digests(&b));
            let latest = |s: &Store| {
                let v = s.read();
                let mut l: Vec<_> = v.versions().iter().filter(|x| x.has(view::LATEST)).map(|x| (x.uuid(), x.modified, x.hash)).collect();
                l.sort();
                l
            };
            prop_assert_eq!(latest(&a), latest(&b));
        }
    }
}

/// Failing writes and `fsync`s of the evidence log (`EIO`, injected into its I/O):
/// nothing is acknowledged that was not made durable. A full disk (`ENOSPC`) is
/// refused and the next ingest works; after an I/O error or a failed `fsync` the log
/// takes nothing more (never a second `fsync` as if the data were safe) and says so,
/// and reopened it holds exactly what was acknowledged.
#[test]
fn failed_writes_and_fsyncs_acknowledge_nothing_and_stop_the_log() {
    use super::log::Fault;
    for fault in [Fault::Write, Fault::Sync] {
        let dir = tempfile::tempdir().unwrap();
        let envs: Vec<Envelope> = envelopes("kaspersky", 40, 5).into_iter().take(8).collect();
        assert_eq!(envs.len(), 8);
        let acknowledged = {
            let s = Store::open(dir.path(), &sled()).unwrap();
            s.ingest(&envs[..2], "local").unwrap();
            // A full disk: refused, nothing taken, and the log goes on.
            s.log.faults.lock().unwrap().push(Fault::DiskFull);
            let e = s.ingest(&envs[2..3], "local").unwrap_err();
            assert!(e.is_storage_full(), "{e}");
            assert!(!s.contains(envs[2].id()));
            s.ingest(&envs[2..4], "local").unwrap();
            // An I/O error: refused, and every later ingest too, with the reason.
            s.log.faults.lock().unwrap().push(fault);
            let e = s.ingest(&envs[4..6], "local").unwrap_err();
            assert!(matches!(e, StoreError::LogUnsafe { .. }), "{fault:?}: {e}");
            assert!(!s.contains(envs[4].id()) && !s.contains(envs[5].id()));
            let e = s.ingest(&envs[6..7], "local").unwrap_err();
            assert!(
                e.to_string().contains("until the node restarts"),
                "{fault:?}: {e}"
            );
            assert!(!s.contains(envs[6].id()));
            digests(&s)
        };
        // Reopened: what was acknowledged, nothing of the failed batches, and the log
        // takes envelopes again.
        let s = Store::open(dir.path(), &sled()).unwrap();
        assert_eq!(digests(&s), acknowledged, "{fault:?}");
        assert_eq!(s.read().envelope_count(), 4, "{fault:?}");
        assert!(envs[..4].iter().all(|e| s.contains(e.id())));
        s.ingest(&envs[4..], "local").unwrap();
        assert_eq!(s.read().envelope_count(), 8);
    }
}

/// A new data directory is readable by its user only (0700), its log segments 0600;
/// one that others may read is closed to them when the store opens.
#[test]
fn the_data_directory_is_private_and_a_loose_one_is_closed() {
    use std::os::unix::fs::PermissionsExt as _;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data").join("alpha");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    {
        let s = Store::open(&dir, &sled()).unwrap();
        s.ingest(&envelopes("kaspersky", 10, 5), "local").unwrap();
    }
    assert_eq!(mode(&dir), 0o700);
    let segments: Vec<_> = std::fs::read_dir(dir.join("log"))
        .unwrap()
        .flatten()
        .collect();
    assert!(!segments.is_empty());
    for s in &segments {
        assert_eq!(mode(&s.path()), 0o600, "{:?}", s.path());
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    Store::open(&dir, &sled()).unwrap();
    assert_eq!(mode(&dir), 0o700);
}
