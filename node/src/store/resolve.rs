//! The rules that choose what the merged view shows of one object, from that object's
//! deliveries alone (protocol §5 and §11), as a pure function.
//!
//! The embedded view keeps every object in memory and follows these rules
//! incrementally; a backend that keeps nothing per object in memory (PostgreSQL)
//! loads one object's versions and deliveries, calls [`resolve`], and writes back
//! what changed. The result depends only on the set of deliveries, never on the
//! order they arrived in.
//!
//! - A version's level is the least restrictive level of its deliveries that stand
//!   (not retracted), or of all its deliveries when every one is retracted.
//! - At each reader level L, over the standing deliveries in envelopes at L or below:
//!   the earliest (by `signed_at`, then origin name, then envelope id) makes its origin
//!   the owner; the latest is the best version (greater `modified`, then the smaller
//!   content hash) the owner delivered at L or below. Versions only other members
//!   delivered are held but never become the latest (security finding 3).
//! - A tombstone stands in for an object that a level saw and sees no more: a level
//!   with no standing delivery but a retracted one at that level or below shows the
//!   tombstone of the best version (with a `modified`) retracted at that level or
//!   below. Each level's tombstone is made from what that level could see, so a reader
//!   never gets a tombstone carrying a body above its level, and two nodes holding the
//!   same clear and green envelopes make the same clear and green tombstones whatever
//!   else they hold. An object has a tombstone per distinct version so chosen (at most
//!   one per level), shared at the least restrictive level that shows it.

use crate::stix::tlp::{ALL_LEVELS, TlpLevel};

/// One delivery of a version: what the rules need of the envelope that carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFacts {
    /// The envelope's origin member.
    pub origin: String,
    /// The envelope's `signed_at` (µs).
    pub signed_at: i64,
    /// The envelope id.
    pub envelope: [u8; 32],
    /// The envelope's level.
    pub tlp: TlpLevel,
    /// Whether a retraction of its origin took the delivery back.
    pub retracted: bool,
}

/// One version of the object (tombstones excluded) and its deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionFacts {
    /// `modified` (µs), `i64::MIN` when the object has none.
    pub modified: i64,
    /// Content hash.
    pub hash: [u8; 16],
    /// Every delivery, retracted ones included.
    pub deliveries: Vec<DeliveryFacts>,
}

/// What a level shows of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The version at this index of the input.
    Version(usize),
    /// The tombstone at this index of [`Resolution::tombstones`].
    Tombstone(usize),
}

/// The object's state, chosen from its deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Each version's level, in input order.
    pub version_tlp: Vec<TlpLevel>,
    /// Whether another version has the same `modified` and other content.
    pub conflict: Vec<bool>,
    /// The tombstones wanted: the index of the version each stands for, and its level
    /// (the least restrictive level that shows it), least restrictive first.
    pub tombstones: Vec<(usize, TlpLevel)>,
    /// What each reader level sees as the latest, in [`ALL_LEVELS`] order.
    pub latest: [Option<Pick>; 5],
}

/// Whether `a` wins over `b` as the latest: greater `modified`, then the smaller
/// content hash (arbitrary, but the same on every node).
pub fn beats(a: &VersionFacts, b: &VersionFacts) -> bool {
    (a.modified, std::cmp::Reverse(a.hash)) > (b.modified, std::cmp::Reverse(b.hash))
}

/// Whether delivery `a` was signed before `b`.
fn earlier(a: &DeliveryFacts, b: &DeliveryFacts) -> bool {
    (a.signed_at, a.origin.as_str(), a.envelope) < (b.signed_at, b.origin.as_str(), b.envelope)
}

fn min_level(a: Option<TlpLevel>, b: TlpLevel) -> Option<TlpLevel> {
    Some(a.map_or(b, |a| a.min(b)))
}

/// Chooses the object's state (see the module documentation).
pub fn resolve(versions: &[VersionFacts]) -> Resolution {
    let mut version_tlp = Vec::with_capacity(versions.len());
    for v in versions {
        let mut standing: Option<TlpLevel> = None;
        let mut any: Option<TlpLevel> = None;
        for d in &v.deliveries {
            any = min_level(any, d.tlp);
            if !d.retracted {
                standing = min_level(standing, d.tlp);
            }
        }
        version_tlp.push(standing.or(any).unwrap_or(TlpLevel::Red));
    }
    let conflict = versions
        .iter()
        .map(|v| {
            versions
                .iter()
                .any(|w| w.modified == v.modified && w.hash != v.hash)
        })
        .collect();
    let mut tombstones: Vec<(usize, TlpLevel)> = Vec::new();
    let mut latest = [None; 5];
    for (slot, level) in latest.iter_mut().zip(ALL_LEVELS) {
        *slot = match latest_at(versions, level) {
            Some(v) => Some(Pick::Version(v)),
            None => retracted_best(versions, level).map(|base| {
                let k = tombstones
                    .iter()
                    .position(|(b, _)| *b == base)
                    .unwrap_or_else(|| {
                        tombstones.push((base, level));
                        tombstones.len() - 1
                    });
                Pick::Tombstone(k)
            }),
        };
    }
    Resolution {
        version_tlp,
        conflict,
        tombstones,
        latest,
    }
}

/// The best version with a `modified` that has a retracted delivery at `level` or
/// below: what a reader at that level saw and must learn is gone.
fn retracted_best(versions: &[VersionFacts], level: TlpLevel) -> Option<usize> {
    versions
        .iter()
        .enumerate()
        .filter(|(_, v)| {
            v.modified != i64::MIN && v.deliveries.iter().any(|d| d.retracted && d.tlp <= level)
        })
        .fold(None, |best: Option<usize>, (i, v)| match best {
            Some(b) if !beats(v, &versions[b]) => Some(b),
            _ => Some(i),
        })
}

/// The owner and latest among the standing deliveries at `level` or below.
fn latest_at(versions: &[VersionFacts], level: TlpLevel) -> Option<usize> {
    let visible = |d: &&DeliveryFacts| !d.retracted && d.tlp <= level;
    let owner = versions
        .iter()
        .flat_map(|v| v.deliveries.iter().filter(visible))
        .fold(None, |o: Option<&DeliveryFacts>, d| match o {
            Some(o) if !earlier(d, o) => Some(o),
            _ => Some(d),
        })?;
    versions
        .iter()
        .enumerate()
        .filter(|(_, v)| {
            v.deliveries
                .iter()
                .filter(visible)
                .any(|d| d.origin == owner.origin)
        })
        .fold(None, |best: Option<usize>, (i, v)| match best {
            Some(b) if !beats(v, &versions[b]) => Some(b),
            _ => Some(i),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(origin: &str, signed_at: i64, tlp: TlpLevel, retracted: bool) -> DeliveryFacts {
        DeliveryFacts {
            origin: origin.into(),
            signed_at,
            envelope: [signed_at as u8; 32],
            tlp,
            retracted,
        }
    }

    fn v(modified: i64, hash: u8, deliveries: Vec<DeliveryFacts>) -> VersionFacts {
        VersionFacts {
            modified,
            hash: [hash; 16],
            deliveries,
        }
    }

    #[test]
    fn only_the_owner_supersedes_and_levels_see_their_own_owner() {
        use TlpLevel::*;
        // acme published first (green); evil later signed a newer version; acme's own
        // newer version is amber.
        let vs = vec![
            v(10, 1, vec![d("acme", 100, Green, false)]),
            v(20, 2, vec![d("evil", 200, Clear, false)]),
            v(30, 3, vec![d("acme", 300, Amber, false)]),
        ];
        let r = resolve(&vs);
        assert_eq!(r.latest[4], Some(Pick::Version(2)), "red: acme's newest");
        assert_eq!(r.latest[2], Some(Pick::Version(2)));
        assert_eq!(
            r.latest[1],
            Some(Pick::Version(0)),
            "green: acme's green one"
        );
        assert_eq!(
            r.latest[0],
            Some(Pick::Version(1)),
            "clear: only evil's delivery is visible, so evil owns it there"
        );
        assert_eq!(r.version_tlp, vec![Green, Clear, Amber]);
        assert!(r.tombstones.is_empty());
    }

    #[test]
    fn conflicts_go_to_the_smaller_hash_and_are_flagged_on_both() {
        let vs = vec![
            v(10, 9, vec![d("acme", 100, TlpLevel::Green, false)]),
            v(10, 3, vec![d("acme", 101, TlpLevel::Green, false)]),
        ];
        let r = resolve(&vs);
        assert_eq!(r.latest[4], Some(Pick::Version(1)));
        assert_eq!(r.conflict, vec![true, true]);
    }

    #[test]
    fn a_retracted_object_becomes_a_tombstone_where_it_was_seen() {
        use TlpLevel::*;
        let vs = vec![v(10, 1, vec![d("acme", 100, Green, true)])];
        let r = resolve(&vs);
        assert_eq!(r.tombstones, vec![(0, Green)]);
        assert_eq!(r.latest[0], None, "clear never saw it");
        assert_eq!(r.latest[1], Some(Pick::Tombstone(0)));
        assert_eq!(r.latest[4], Some(Pick::Tombstone(0)));
        assert_eq!(r.version_tlp, vec![Green]);
        // An amber delivery still stands: green and clear readers saw the green one
        // go; amber readers still see the object.
        let vs = vec![v(
            10,
            1,
            vec![d("acme", 100, Green, true), d("acme", 101, Amber, false)],
        )];
        let r = resolve(&vs);
        assert_eq!(r.tombstones, vec![(0, Green)]);
        assert_eq!(r.latest[1], Some(Pick::Tombstone(0)));
        assert_eq!(r.latest[2], Some(Pick::Version(0)));
        assert_eq!(r.version_tlp, vec![Amber]);
        // No tombstone for an object without `modified`.
        let r = resolve(&[v(i64::MIN, 1, vec![d("acme", 100, Green, true)])]);
        assert!(r.tombstones.is_empty());
        assert_eq!(r.latest, [None; 5]);
    }

    #[test]
    fn each_level_gets_the_tombstone_of_what_it_could_see() {
        use TlpLevel::*;
        // v1 shared at clear, v2 at red; the origin takes the whole object back. A
        // clear reader saw v1 only: its tombstone must stand for v1, never carry v2's
        // red body; a red reader saw v2 and gets v2's tombstone.
        let vs = vec![
            v(10, 1, vec![d("acme", 100, Clear, true)]),
            v(20, 2, vec![d("acme", 200, Red, true)]),
        ];
        let r = resolve(&vs);
        assert_eq!(r.tombstones, vec![(0, Clear), (1, Red)]);
        for level in 0..4 {
            assert_eq!(r.latest[level], Some(Pick::Tombstone(0)), "level {level}");
        }
        assert_eq!(r.latest[4], Some(Pick::Tombstone(1)));
        // A node holding only the clear envelope chooses the same clear tombstone.
        let clear_only = resolve(&vs[..1]);
        assert_eq!(clear_only.tombstones, vec![(0, Clear)]);
        assert_eq!(clear_only.latest[0], Some(Pick::Tombstone(0)));
    }
}
