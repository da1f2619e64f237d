//! The view is a function of the set of envelopes: property tests over random records.

use super::*;
use proptest::prelude::*;

/// A compact description of an object version for generating records.
#[derive(Debug, Clone)]
struct Obj {
    id: u8,
    modified: u8,
    content: u8,
    tlp: u8,
    revoked: bool,
}

fn entry(o: &Obj) -> ObjectEntry {
    let mut hash = [0u8; 16];
    hash[0] = o.id;
    hash[1] = o.modified;
    hash[2] = o.content;
    hash[3] = u8::from(o.revoked);
    ObjectEntry {
        type_name: if o.id.is_multiple_of(2) {
            "indicator".into()
        } else {
            "malware".into()
        },
        uuid: u128::from(o.id),
        modified: i64::from(o.modified) * 1000,
        hash,
        body_off: 0,
        body_len: 0,
        tlp: ALL_LEVELS[(o.tlp % 5) as usize],
        revoked: o.revoked,
        spec_21: true,
        obs_keys: vec![format!("domain-name:d{}.example", o.id % 7)],
    }
}

fn record(env: u8, objs: &[Obj], ordinal: u64) -> EnvelopeRecord {
    let mut id = [0u8; 32];
    id[0] = env;
    EnvelopeRecord {
        ordinal,
        id,
        origin: format!("origin{}", env % 3),
        key_id: "k".into(),
        seq: u64::from(env),
        signed_at: 0,
        tlp: TlpLevel::Red,
        recipients: vec![],
        received_from: "peer".into(),
        received_at: 0,
        date_added_base: 1_000_000 + ordinal as i64 * 1000,
        pos: LogPos {
            segment: 0,
            offset: 0,
            len: 0,
        },
        objects: objs.iter().map(entry).collect(),
    }
}

fn arb_obj() -> impl Strategy<Value = Obj> {
    (
        0u8..6,
        0u8..4,
        0u8..2,
        0u8..5,
        proptest::bool::weighted(0.1),
    )
        .prop_map(|(id, modified, content, tlp, revoked)| Obj {
            id,
            modified,
            content,
            tlp,
            revoked,
        })
}

/// Latest (id, modified, hash, revoked) per object, and digests.
type Latest = Vec<(String, u128, i64, [u8; 16], bool)>;

fn summary(v: &View) -> (Latest, Vec<ViewDigest>) {
    let mut latest: Vec<_> = v
        .versions()
        .iter()
        .filter(|x| x.has(LATEST))
        .map(|x| {
            (
                v.type_name(x.type_ix).to_string(),
                x.uuid(),
                x.modified,
                x.hash,
                x.has(REVOKED),
            )
        })
        .collect();
    latest.sort();
    (latest, ALL_LEVELS.iter().map(|l| v.digest(*l)).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_order_with_duplicates_gives_the_same_view(
        envs in proptest::collection::vec(proptest::collection::vec(arb_obj(), 1..6), 1..8),
        order in any::<proptest::sample::Index>(),
        dups in proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
    ) {
        // Reference: envelopes in generated order.
        let mut a = View::new();
        for (i, objs) in envs.iter().enumerate() {
            a.apply(&record(i as u8, objs, i as u64));
        }
        // Another node: a rotation of the order, with some envelopes delivered twice.
        let n = envs.len();
        let shift = order.index(n);
        let mut seq: Vec<usize> = (0..n).map(|i| (i + shift) % n).collect();
        seq.reverse();
        for d in &dups {
            let at = d.index(seq.len());
            seq.insert(at, seq[at]);
        }
        let mut b = View::new();
        for (ord, &i) in seq.iter().enumerate() {
            b.apply(&record(i as u8, &envs[i], ord as u64));
        }
        prop_assert_eq!(summary(&a), summary(&b));
        prop_assert_eq!(a.envelope_count(), n);
        prop_assert_eq!(b.envelope_count(), n);
        // date_added is unique and increasing with the handle.
        for w in b.versions().windows(2) {
            prop_assert!(w[0].date_added < w[1].date_added);
        }
        // Exactly one latest version per object.
        prop_assert_eq!(b.versions().iter().filter(|x| x.has(LATEST)).count(), b.object_count());
    }
}

#[test]
fn conflicts_are_kept_flagged_and_resolved_deterministically() {
    let o1 = Obj {
        id: 2,
        modified: 1,
        content: 0,
        tlp: 1,
        revoked: false,
    };
    let o2 = Obj {
        content: 1,
        ..o1.clone()
    };
    let mut a = View::new();
    a.apply(&record(1, std::slice::from_ref(&o1), 0));
    let out = a.apply(&record(2, std::slice::from_ref(&o2), 1));
    assert_eq!(out.conflicts, 1);
    assert_eq!(a.version_count(), 2);
    assert!(a.versions().iter().all(|v| v.has(CONFLICT)));
    let mut b = View::new();
    b.apply(&record(2, &[o2], 0));
    b.apply(&record(1, &[o1], 1));
    assert_eq!(summary(&a), summary(&b));
}

#[test]
fn newer_version_supersedes_and_revocation_is_visible() {
    let v1 = Obj {
        id: 4,
        modified: 1,
        content: 0,
        tlp: 1,
        revoked: false,
    };
    let v2 = Obj {
        modified: 2,
        revoked: true,
        ..v1.clone()
    };
    let mut a = View::new();
    a.apply(&record(1, std::slice::from_ref(&v2), 0));
    a.apply(&record(2, &[v1], 1));
    let latest = a.latest_of("indicator", 4).unwrap();
    let ver = a.version(latest).unwrap();
    assert_eq!(ver.modified, 2000);
    assert!(ver.has(REVOKED));
    assert_eq!(a.versions_of("indicator", 4).len(), 2);
    assert_eq!(a.digest(TlpLevel::Green).count, 1);
}

#[test]
fn second_delivery_is_provenance_not_a_new_version() {
    let o = Obj {
        id: 2,
        modified: 1,
        content: 0,
        tlp: 2,
        revoked: false,
    };
    let mut v = View::new();
    v.apply(&record(1, std::slice::from_ref(&o), 0));
    let out = v.apply(&record(5, &[Obj { tlp: 1, ..o }], 1));
    assert_eq!(out.known_versions, 1);
    assert_eq!(v.version_count(), 1);
    assert_eq!(v.deliveries(0).len(), 2);
    assert_eq!(v.origins_of(0), vec!["origin1", "origin2"]);
    // Shared at the least restrictive level delivered.
    assert_eq!(v.version(0).unwrap().tlp, TlpLevel::Green);
    assert_eq!(v.digest(TlpLevel::Green).count, 1);
    assert_eq!(v.digest(TlpLevel::Amber).count, 0);
    assert_eq!(v.by_observable("domain-name:d2.example"), vec![0]);
}
