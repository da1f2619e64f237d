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
        // Varied, so that which origin signed an object first (its owner) differs
        // between objects and from the order of application.
        signed_at: i64::from(env.wrapping_mul(37) % 11),
        // An envelope is at least as restrictive as its objects (protocol §5).
        tlp: objs
            .iter()
            .map(|o| ALL_LEVELS[(o.tlp % 5) as usize])
            .max()
            .unwrap_or(TlpLevel::Clear),
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
        retraction: None,
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
    let mut digests: Vec<ViewDigest> = ALL_LEVELS.iter().map(|l| v.digest(*l)).collect();
    digests.extend(SHARED_LEVELS.iter().filter_map(|l| v.shared_digest(*l)));
    (latest, digests)
}

/// The latest version of an object among the deliveries at `level` or below, chosen
/// from scratch: the owner is the earliest visible delivery, then its best version.
fn reference_shared(v: &View, entry: &IdEntry, level: TlpLevel) -> u32 {
    let mut owner: Option<u32> = None;
    let mut c = entry.head;
    while c != NONE {
        for e in v.delivery_envs(c) {
            if v.envelopes[e as usize].tlp <= level
                && owner.is_none_or(|o| v.earlier_delivery(e, o))
            {
                owner = Some(e);
            }
        }
        c = v.versions[c as usize].next_same_id;
    }
    match owner {
        Some(o) => v.best_delivered(entry.head, v.envelopes[o as usize].origin, level),
        None => NONE,
    }
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
        // The shared latest versions, kept up to date delivery by delivery, are what
        // choosing them again from every visible delivery gives.
        for v in [&a, &b] {
            for entry in v.by_id.values() {
                for (i, level) in SHARED_LEVELS.iter().enumerate() {
                    prop_assert_eq!(entry.shared[i], reference_shared(v, entry, *level));
                }
            }
        }
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
    assert_eq!(v.origins_at(0, TlpLevel::Red), vec!["origin1", "origin2"]);
    // Shared at the least restrictive level delivered.
    assert_eq!(v.version(0).unwrap().tlp, TlpLevel::Green);
    assert_eq!(v.digest(TlpLevel::Green).count, 1);
    assert_eq!(v.digest(TlpLevel::Amber).count, 0);
    assert_eq!(v.by_observable("domain-name:d2.example"), vec![0]);
}

/// An envelope of `origin`, signed at `signed_at`, with one version of indicator 9.
fn signed_by(env: u8, origin: &str, signed_at: i64, modified: u8, revoked: bool) -> EnvelopeRecord {
    let mut r = record(
        env,
        &[Obj {
            id: 8,
            modified,
            content: env,
            tlp: 1,
            revoked,
        }],
        u64::from(env),
    );
    r.origin = origin.into();
    r.signed_at = signed_at;
    r
}

#[test]
fn only_the_member_that_first_published_an_object_supersedes_it() {
    // groupib publishes the object; kaspersky signs a later, revoked version of it
    // (security finding 3): it is held, listed, but never the latest, in any order.
    let original = signed_by(1, "groupib", 100, 1, false);
    let hostile = signed_by(2, "kaspersky", 200, 250, true);
    let update = signed_by(3, "groupib", 300, 2, false);
    let mut views = Vec::new();
    for order in [[0, 1, 2], [1, 0, 2], [2, 1, 0], [1, 2, 0]] {
        let recs = [&original, &hostile, &update];
        let mut v = View::new();
        for (ord, &i) in order.iter().enumerate() {
            let mut r = recs[i].clone();
            r.ordinal = ord as u64;
            v.apply(&r);
        }
        let latest = v.latest_of("indicator", 8).unwrap();
        let ver = v.version(latest).unwrap();
        assert_eq!(ver.modified, 2000, "order {order:?}");
        assert!(!ver.has(REVOKED));
        assert_eq!(v.versions_of("indicator", 8).len(), 3);
        assert_eq!(v.owner_of(latest), Some("groupib"));
        views.push(summary(&v));
    }
    assert!(views.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn an_earlier_signature_makes_its_origin_the_owner_whatever_the_arrival_order() {
    // Two members version the same object; the one that signed first owns it.
    let first = signed_by(1, "trendmicro", 50, 1, false);
    let later = signed_by(2, "groupib", 60, 3, false);
    let mut a = View::new();
    a.apply(&later);
    let only = a.latest_of("indicator", 8).unwrap();
    assert_eq!(a.version(only).unwrap().modified, 3000);
    let mut f = first.clone();
    f.ordinal = 5;
    a.apply(&f);
    let latest = a.latest_of("indicator", 8).unwrap();
    assert_eq!(a.version(latest).unwrap().modified, 1000);
    assert_eq!(a.owner_of(latest), Some("trendmicro"));
    let mut b = View::new();
    b.apply(&first);
    let mut l = later.clone();
    l.ordinal = 5;
    b.apply(&l);
    assert_eq!(summary(&a), summary(&b));
}

#[test]
fn readers_see_only_deliveries_their_clearance_covers() {
    // The same object delivered red by one member and green by another: a green
    // reader learns nothing of the red delivery (security finding 2).
    let o = Obj {
        id: 2,
        modified: 1,
        content: 0,
        tlp: 1,
        revoked: false,
    };
    let mut red = record(1, std::slice::from_ref(&o), 0);
    red.tlp = TlpLevel::Red;
    let green = record(5, &[o], 1);
    let mut v = View::new();
    v.apply(&red);
    v.apply(&green);
    assert_eq!(v.version(0).unwrap().tlp, TlpLevel::Green);
    assert_eq!(v.deliveries_at(0, TlpLevel::Green).len(), 1);
    assert_eq!(v.origins_at(0, TlpLevel::Green), vec!["origin2"]);
    assert_eq!(v.origins_at(0, TlpLevel::Red), vec!["origin1", "origin2"]);
    let o1 = v.origin_index("origin1").unwrap();
    assert!(!v.delivered_at(0, o1, TlpLevel::Amber));
    assert!(v.delivered_at(0, o1, TlpLevel::Red));
}

#[test]
fn more_than_65536_types_never_share_an_index() {
    // Objects of 70,000 custom types, all with the same UUID: each is its own object
    // (a 16-bit type index wrapped at 65,536 and merged them), in any order.
    let rec = |t: u32, ordinal: u64| {
        let mut r = record(1, &[], ordinal);
        r.id[1..5].copy_from_slice(&t.to_be_bytes());
        let mut hash = [0u8; 16];
        hash[..4].copy_from_slice(&t.to_be_bytes());
        r.objects = vec![ObjectEntry {
            type_name: format!("x-type-{t}"),
            uuid: 7,
            modified: 1000,
            hash,
            body_off: 0,
            body_len: 0,
            tlp: TlpLevel::Green,
            revoked: false,
            spec_21: true,
            obs_keys: vec![],
        }];
        r.tlp = TlpLevel::Green;
        r
    };
    let n = 70_000u32;
    let mut a = View::new();
    for t in 0..n {
        a.apply(&rec(t, u64::from(t)));
    }
    let mut b = View::new();
    for t in (0..n).rev() {
        b.apply(&rec(t, u64::from(n - t)));
    }
    assert_eq!(a.object_count(), n as usize);
    assert_eq!(b.object_count(), n as usize);
    assert_eq!(a.digest(TlpLevel::Green), b.digest(TlpLevel::Green));
    assert_eq!(a.versions_of("x-type-65536", 7).len(), 1);
    assert_eq!(a.versions_of("x-type-0", 7).len(), 1);
}

#[test]
fn shared_digests_agree_whatever_amber_each_node_holds() {
    // Audit finding (sync) 3: a green version superseded by an amber one. A node that
    // holds the amber version and one that may not hold it hold the same green data;
    // their shared green digests agree (their per-level green digests do not: at the
    // first the object's latest is amber).
    let mut v1 = signed_by(1, "groupib", 100, 1, false);
    v1.tlp = TlpLevel::Green;
    v1.objects[0].tlp = TlpLevel::Green;
    let mut v2 = signed_by(2, "groupib", 200, 2, false);
    v2.tlp = TlpLevel::Amber;
    v2.objects[0].tlp = TlpLevel::Amber;
    let mut amber_node = View::new();
    amber_node.apply(&v1);
    amber_node.apply(&v2);
    let mut green_node = View::new();
    green_node.apply(&v1);
    for l in SHARED_LEVELS {
        assert_eq!(
            amber_node.shared_digest(l),
            green_node.shared_digest(l),
            "{l}"
        );
    }
    assert_ne!(
        amber_node.digest(TlpLevel::Green),
        green_node.digest(TlpLevel::Green)
    );
    assert_eq!(green_node.shared_digest(TlpLevel::Green).unwrap().count, 1);
    // The amber version arriving first changes nothing.
    let mut other = View::new();
    let mut first = v2.clone();
    first.ordinal = 0;
    other.apply(&first);
    let mut second = v1.clone();
    second.ordinal = 1;
    other.apply(&second);
    for l in SHARED_LEVELS {
        assert_eq!(other.shared_digest(l), green_node.shared_digest(l), "{l}");
    }
    assert_eq!(amber_node.shared_digest(TlpLevel::Amber), None);
}

// ----- retractions -----

use crate::envelope::Reason;
use crate::store::record::{RetractedObject, RetractionEntry};

/// A retraction by `origin{origin}` naming envelopes (as made by [`record`]) and
/// objects (id, version).
fn retraction(
    n: u8,
    origin: u8,
    envelopes: &[u8],
    objects: &[(u8, Option<u8>)],
    ordinal: u64,
) -> EnvelopeRecord {
    let mut id = [0u8; 32];
    id[0] = n;
    id[1] = 0xee;
    let mut r = record(0, &[], ordinal);
    r.id = id;
    r.origin = format!("origin{origin}");
    r.seq = 1000 + u64::from(n);
    r.signed_at = 50 + i64::from(n);
    r.retraction = Some(RetractionEntry {
        reason: Reason::FalsePositive,
        note: String::new(),
        envelopes: envelopes
            .iter()
            .map(|&e| {
                let mut t = [0u8; 32];
                t[0] = e;
                t
            })
            .collect(),
        objects: objects
            .iter()
            .map(|&(o, m)| RetractedObject {
                type_name: if o.is_multiple_of(2) {
                    "indicator".into()
                } else {
                    "malware".into()
                },
                uuid: u128::from(o),
                modified: m.map(|m| i64::from(m) * 1000),
            })
            .collect(),
    });
    r
}

fn obj(id: u8, modified: u8, tlp: u8) -> Obj {
    Obj {
        id,
        modified,
        content: 0,
        tlp,
        revoked: false,
    }
}

#[test]
fn a_retracted_envelope_leaves_the_view_as_a_revoked_tombstone() {
    let mut v = View::new();
    // Envelope 3 is origin0's (3 % 3); its object is indicator 4.
    v.apply(&record(3, &[obj(4, 1, 1)], 0));
    let before = v.digest(TlpLevel::Green);
    let shared_before = v.shared_digest(TlpLevel::Green).unwrap();
    v.apply(&retraction(1, 0, &[3], &[], 1));
    let latest = v.latest_of("indicator", 4).unwrap();
    let t = v.version(latest).unwrap();
    assert!(t.has(REVOKED) && t.has(RETRACTED));
    assert_eq!(
        t.modified,
        1000 + 1000,
        "one millisecond after the retracted version"
    );
    assert_eq!(v.tombstone_of(latest), Some(0));
    // The original version stays, with no standing delivery and one retracted.
    assert!(v.deliveries(0).is_empty());
    assert_eq!(v.retracted_deliveries(0).len(), 1);
    assert_eq!(v.latest_visible(0, TlpLevel::Red), Some(latest));
    // Both the node's and the shared digests moved.
    assert_ne!(v.digest(TlpLevel::Green), before);
    assert_ne!(v.shared_digest(TlpLevel::Green).unwrap(), shared_before);
    assert_eq!(v.digest(TlpLevel::Green).count, 1);
    assert_eq!(v.retraction_count(), 1);
}

#[test]
fn a_retraction_that_arrives_first_applies_when_its_envelope_comes() {
    let env = record(3, &[obj(4, 1, 1), obj(6, 1, 1)], 0);
    let r = retraction(1, 0, &[3], &[], 1);
    let mut a = View::new();
    a.apply(&env);
    a.apply(&r);
    let mut b = View::new();
    let mut r0 = r.clone();
    r0.ordinal = 0;
    b.apply(&r0);
    let mut e1 = env.clone();
    e1.ordinal = 1;
    b.apply(&e1);
    assert_eq!(summary(&a), summary(&b));
    let latest = b.latest_of("indicator", 4).unwrap();
    assert!(b.version(latest).unwrap().has(RETRACTED));
}

#[test]
fn a_retraction_takes_back_only_its_own_origins_deliveries() {
    let mut v = View::new();
    v.apply(&record(3, &[obj(4, 1, 1)], 0)); // origin0
    let before = summary(&v);
    // origin1 names origin0's envelope and object: nothing changes.
    v.apply(&retraction(1, 1, &[3], &[(4, None)], 1));
    assert_eq!(summary(&v), before);
    assert_eq!(v.deliveries(0).len(), 1);
}

#[test]
fn an_object_retraction_of_one_version_leaves_the_others() {
    let mut v = View::new();
    v.apply(&record(3, &[obj(4, 1, 1)], 0));
    v.apply(&record(6, &[obj(4, 2, 1)], 1)); // origin0 too: version 2 is the latest
    assert_eq!(
        v.version(v.latest_of("indicator", 4).unwrap())
            .unwrap()
            .modified,
        2000
    );
    v.apply(&retraction(1, 0, &[], &[(4, Some(2))], 2));
    let latest = v.latest_of("indicator", 4).unwrap();
    assert_eq!(v.version(latest).unwrap().modified, 1000);
    assert!(!v.version(latest).unwrap().has(REVOKED));
    // Every version this time.
    v.apply(&retraction(2, 0, &[], &[(4, None)], 3));
    let latest = v.latest_of("indicator", 4).unwrap();
    let t = v.version(latest).unwrap();
    assert!(t.has(RETRACTED));
    assert_eq!(
        t.modified, 3000,
        "the tombstone stands for the newest version"
    );
}

#[test]
fn corroboration_loses_only_the_retracted_origin() {
    let mut v = View::new();
    v.apply(&record(3, &[obj(4, 1, 1)], 0)); // origin0
    v.apply(&record(4, &[obj(4, 1, 1)], 1)); // origin1, same version
    assert_eq!(v.origins_at(0, TlpLevel::Red), vec!["origin0", "origin1"]);
    v.apply(&retraction(1, 1, &[4], &[], 2));
    assert_eq!(v.origins_at(0, TlpLevel::Red), vec!["origin0"]);
    assert_eq!(v.latest_of("indicator", 4), Some(0));
    // The owner takes its delivery back too: origin1's earlier retraction still holds.
    v.apply(&retraction(2, 0, &[3], &[], 3));
    assert!(v.origins_at(0, TlpLevel::Red).is_empty());
    assert!(
        v.version(v.latest_of("indicator", 4).unwrap())
            .unwrap()
            .has(RETRACTED)
    );
}

#[test]
fn a_wrong_tlp_retraction_lets_the_origin_republish_at_the_right_level() {
    let mut v = View::new();
    // origin0 publishes indicator 4 at green (envelope 3), retracts it, and publishes
    // the same version again at amber (envelope 6).
    v.apply(&record(3, &[obj(4, 1, 1)], 0));
    v.apply(&retraction(1, 0, &[3], &[], 1));
    v.apply(&record(6, &[obj(4, 1, 2)], 2));
    // Amber and red readers see the version, at amber; green readers the tombstone.
    assert_eq!(v.version(0).unwrap().tlp, TlpLevel::Amber);
    assert_eq!(v.latest_visible(0, TlpLevel::Red), Some(0));
    assert_eq!(v.latest_visible(0, TlpLevel::Amber), Some(0));
    let green = v.latest_visible(0, TlpLevel::Green).unwrap();
    assert!(v.version(green).unwrap().has(RETRACTED));
    assert_eq!(v.version(green).unwrap().tlp, TlpLevel::Green);
    assert_eq!(v.digest(TlpLevel::Amber).count, 1);
    assert_eq!(v.digest(TlpLevel::Green).count, 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Protocol §11: for any interleaving of envelopes and retractions (a retraction
    /// before or after what it names, any origin), every node ends with the same view
    /// and digests.
    #[test]
    fn any_interleaving_of_envelopes_and_retractions_gives_the_same_view(
        envs in proptest::collection::vec(proptest::collection::vec(arb_obj(), 1..5), 1..7),
        retractions in proptest::collection::vec(
            (0u8..3, proptest::collection::vec(0u8..8, 0..3),
             proptest::collection::vec((0u8..6, proptest::option::of(0u8..4)), 0..3)),
            1..4),
        order_a in any::<proptest::sample::Index>(),
        order_b in any::<proptest::sample::Index>(),
        perm in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
    ) {
        let mut recs: Vec<EnvelopeRecord> = envs
            .iter()
            .enumerate()
            .map(|(i, objs)| record(i as u8, objs, 0))
            .collect();
        for (n, (origin, es, os)) in retractions.iter().enumerate() {
            recs.push(retraction(n as u8, *origin, es, os, 0));
        }
        let run = |order: &[usize]| {
            let mut v = View::new();
            for (ord, &i) in order.iter().enumerate() {
                let mut r = recs[i].clone();
                r.ordinal = ord as u64;
                v.apply(&r);
            }
            v
        };
        let n = recs.len();
        let natural: Vec<usize> = (0..n).collect();
        let mut shuffled = natural.clone();
        let s = order_a.index(n);
        shuffled.rotate_left(s);
        for p in &perm {
            let i = p.index(n);
            let j = order_b.index(n);
            shuffled.swap(i, j);
        }
        let a = run(&natural);
        let b = run(&shuffled);
        let mut reversed = natural.clone();
        reversed.reverse();
        let c = run(&reversed);
        prop_assert_eq!(summary(&a), summary(&b));
        prop_assert_eq!(summary(&a), summary(&c));
        for v in [&a, &b, &c] {
            // Exactly one latest version per object that has one; date_added increasing.
            let latest = v.versions().iter().filter(|x| x.has(LATEST)).count();
            let with_latest = v.by_id.values().filter(|e| e.latest != NONE).count();
            prop_assert_eq!(latest, with_latest);
            for w in v.versions().windows(2) {
                prop_assert!(w[0].date_added < w[1].date_added);
            }
            // What is shown at every level is what choosing again gives.
            for l in ALL_LEVELS {
                for h in 0..v.version_count() as u32 {
                    if let Some(x) = v.latest_visible(h, l) {
                        prop_assert!(v.version(x).unwrap().uuid() == v.version(h).unwrap().uuid());
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Two nodes that hold the same clear and green envelopes and retractions agree on
    /// the shared digests whatever amber and red the one holds besides (peers compare
    /// them), and no level is ever shown a tombstone made from a version it could not
    /// see (a red body behind a clear tombstone).
    #[test]
    fn tombstones_and_shared_digests_depend_only_on_what_a_level_could_see(
        envs in proptest::collection::vec(proptest::collection::vec(arb_obj(), 1..5), 1..7),
        retractions in proptest::collection::vec(
            (0u8..3, proptest::collection::vec(0u8..8, 0..3),
             proptest::collection::vec((0u8..6, proptest::option::of(0u8..4)), 0..3)),
            1..4),
    ) {
        let mut recs: Vec<EnvelopeRecord> = envs
            .iter()
            .enumerate()
            .map(|(i, objs)| record(i as u8, objs, 0))
            .collect();
        for (n, (origin, es, os)) in retractions.iter().enumerate() {
            recs.push(retraction(n as u8, *origin, es, os, 0));
        }
        let run = |keep: &dyn Fn(&EnvelopeRecord) -> bool| {
            let mut v = View::new();
            for (ord, r) in recs.iter().filter(|r| keep(r)).enumerate() {
                let mut r = r.clone();
                r.ordinal = ord as u64;
                v.apply(&r);
            }
            v
        };
        let full = run(&|_| true);
        let shared_only = run(&|r| r.tlp <= TlpLevel::Green);
        for l in SHARED_LEVELS {
            prop_assert_eq!(full.shared_digest(l), shared_only.shared_digest(l), "at {:?}", l);
        }
        for v in [&full, &shared_only] {
            for l in ALL_LEVELS {
                for h in 0..v.version_count() as u32 {
                    let Some(x) = v.latest_visible(h, l) else { continue };
                    let Some(base) = v.tombstone_of(x) else { continue };
                    prop_assert!(
                        v.deliveries(base).iter().any(|e| e.tlp <= l)
                            || v.retracted_deliveries(base).iter().any(|(e, _)| e.tlp <= l),
                        "a tombstone at {:?} stands for a version never delivered at {:?} or below",
                        l, l
                    );
                }
            }
        }
    }
}
