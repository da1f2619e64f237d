//! The merged view, in memory: every object version, the latest-version index,
//! conflicts, provenance, secondary indexes (type, origin, `date_added`), the
//! observable index and the per-level digests.
//!
//! It is a pure function of the sequence of [`EnvelopeRecord`]s applied to it, and its
//! latest versions and digests are a function of the *set* of envelopes: any arrival
//! order gives the same result. At start it is rebuilt from the index engine's records
//! (packed, no JSON parsing), so it never needs a per-object row in the engine.
//!
//! Versions are numbered in `date_added` order (the order this node first saw them);
//! the number is a version's handle everywhere (`u32`: four billion versions).

use super::digest::{ViewDigest, contribution};
use super::log::LogPos;
use super::record::{EnvelopeRecord, ObjectEntry};
use crate::envelope::Kind;
use crate::stix::tlp::{ALL_LEVELS, TlpLevel};
use std::collections::{HashMap, HashSet};

mod retract;
pub use retract::{RetractionMeta, TOMBSTONE_AFTER_US, tombstone_hash};
use std::hash::{DefaultHasher, Hash, Hasher};

/// An accepted envelope's metadata.
#[derive(Debug, Clone)]
pub struct EnvMeta {
    /// Local order (log ordinal).
    pub ordinal: u64,
    /// SHA-256 envelope id.
    pub id: [u8; 32],
    /// Origin member (index into [`View::origin_name`]).
    pub origin: u16,
    /// Signing key.
    pub key_id: String,
    /// Origin sequence number.
    pub seq: u64,
    /// `signed_at` (µs).
    pub signed_at: i64,
    /// Envelope TLP.
    pub tlp: TlpLevel,
    /// Red recipients.
    pub recipients: Vec<String>,
    /// Peer it came from.
    pub received_from: String,
    /// Receipt time (µs).
    pub received_at: i64,
    /// Envelope bytes in the log.
    pub pos: LogPos,
    /// Number of objects inside.
    pub object_count: u32,
    /// A bundle or a retraction.
    pub kind: Kind,
    /// The handles of the versions this envelope added lie in this range (with
    /// others' among them: tombstones made meanwhile).
    versions_added: (u32, u32),
}

/// Version flag: the object is revoked in this version.
pub const REVOKED: u8 = 1;
/// Version flag: this is the latest version of its object.
pub const LATEST: u8 = 2;
/// Version flag: another version has the same `(id, modified)` and different content.
pub const CONFLICT: u8 = 4;
/// Version flag: `spec_version` 2.1.
pub const SPEC21: u8 = 8;
/// Version flag: a tombstone, the revoked version the node shows in place of
/// versions whose deliveries were all retracted (see `view::retract`). Its body is
/// the retracted version's, served with `revoked: true` and its own `modified`.
pub const RETRACTED: u8 = 16;

/// One object version. Kept to 72 bytes: a node holds millions of them.
#[derive(Debug, Clone)]
pub struct Version {
    /// UUID part of the id (as two halves: 8-byte alignment keeps the struct small).
    uuid: [u64; 2],
    /// `modified` (µs), `i64::MIN` when absent.
    pub modified: i64,
    /// TAXII `date_added` on this node (µs), unique and increasing with the handle.
    pub date_added: i64,
    /// Content hash.
    pub hash: [u8; 16],
    /// Range of the canonical body within the first delivering envelope's bytes.
    pub body_off: u32,
    /// Length of the body.
    pub body_len: u32,
    /// First envelope that delivered it (index into the envelope table).
    pub envelope: u32,
    /// Next version of the same object id (`NONE` at the end of the chain).
    next_same_id: u32,
    /// Type (index into [`View::type_name`]).
    pub type_ix: u32,
    /// Effective TLP: the least restrictive level it was delivered at, a delivery's
    /// level being its envelope's (or the object's own marking, if stricter).
    pub tlp: TlpLevel,
    /// [`REVOKED`], [`LATEST`], [`CONFLICT`], [`SPEC21`].
    pub flags: u8,
}

// The size the memory figures in docs/benchmarks.md assume.
const _: () = assert!(std::mem::size_of::<Version>() == 72);

const NONE: u32 = u32::MAX;

fn halves(u: u128) -> [u64; 2] {
    [(u >> 64) as u64, u as u64]
}

impl Version {
    /// Whether a flag is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The UUID part of the id.
    pub fn uuid(&self) -> u128 {
        (u128::from(self.uuid[0]) << 64) | u128::from(self.uuid[1])
    }
}

/// Where an object version's canonical bytes are in the evidence log.
#[derive(Debug, Clone, Copy)]
pub struct BodyLocation {
    /// Segment.
    pub segment: u32,
    /// Byte offset in the segment.
    pub offset: u64,
    /// Length.
    pub len: u32,
}

/// The versions of one object id: head of the chain through `next_same_id`, the
/// latest, and the envelope that makes its origin the object's owner.
#[derive(Debug, Clone, Copy)]
struct IdEntry {
    head: u32,
    latest: u32,
    /// The earliest delivery of any version of the object, by (`signed_at`, origin
    /// name): its origin published the object first and alone may supersede it
    /// (see [`View::owner_of`]).
    owner_env: u32,
    /// At clear and green: the earliest delivery in an envelope at that level or
    /// below (`NONE` when none), the object's owner as a node holding only those
    /// envelopes would see it.
    shared_owner: [u32; 2],
    /// At clear and green: the latest version among those deliveries (`NONE` when
    /// none), what the shared digests hold of the object.
    shared: [u32; 2],
}

type IdKey = (u32, [u64; 2]);

/// Observable key hash → version handle, or (high bit set) an index into the
/// overflow lists: most observables are named by one object.
const OVERFLOW: u32 = 1 << 31;

/// What applying one envelope changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Object versions seen for the first time.
    pub new_versions: u32,
    /// Objects that were already held (another delivery of a known version).
    pub known_versions: u32,
    /// New versions conflicting with a held one (same id and modified).
    pub conflicts: u32,
}

impl ApplyOutcome {
    /// Counts one delivery; its version's handle and object.
    fn count(&mut self, d: Delivery) -> (u32, IdKey) {
        match d {
            Delivery::New {
                conflict,
                handle,
                key,
            } => {
                self.new_versions += 1;
                self.conflicts += u32::from(conflict);
                (handle, key)
            }
            Delivery::Known { handle, key } => {
                self.known_versions += 1;
                (handle, key)
            }
        }
    }
}

/// Hash of a normalised observable key. 64 bits: a collision only adds a candidate,
/// which lookups discard after checking the object really names the key.
pub fn observable_hash(key: &str) -> u64 {
    let mut a = DefaultHasher::new();
    key.hash(&mut a);
    a.finish()
}

/// The levels every peer may hold, whose digests peers compare.
pub const SHARED_LEVELS: [TlpLevel; 2] = [TlpLevel::Clear, TlpLevel::Green];

fn level_ix(t: TlpLevel) -> usize {
    ALL_LEVELS.iter().position(|l| *l == t).unwrap_or(4)
}

/// The in-memory merged view.
#[derive(Debug, Default)]
pub struct View {
    types: Vec<String>,
    type_ix: HashMap<String, u32>,
    origins: Vec<String>,
    origin_ix: HashMap<String, u16>,
    envelopes: Vec<EnvMeta>,
    env_by_id: HashMap<[u8; 32], u32>,
    versions: Vec<Version>,
    by_id: HashMap<IdKey, IdEntry>,
    by_type: Vec<Vec<u32>>,
    by_origin: Vec<Vec<u32>>,
    extra_deliveries: HashMap<u32, Vec<u32>>,
    observables: HashMap<u64, u32>,
    observable_overflow: Vec<Vec<u32>>,
    /// Every IPv4 address and network named by an object, as `base << 8 | prefix`,
    /// in address order: range lookups (`203.0.113.0/24`) scan it. The hash index
    /// above answers point lookups only.
    ipv4_blocks: std::collections::BTreeSet<u64>,
    /// The same for IPv6, as (base, prefix).
    ipv6_blocks: std::collections::BTreeSet<(u128, u8)>,
    digests: [ViewDigest; 5],
    /// Over every object, [`View::latest_visible`] at clear and at green: what peers
    /// compare (see [`View::shared_digest`]).
    shared: [ViewDigest; 2],
    last_date_added: i64,
    origin_seq: HashMap<u16, u64>,
    /// Retraction envelopes held, by envelope index.
    retractions: HashMap<u32, RetractionMeta>,
    /// Envelope id named by retractions → those retractions (held or not yet).
    env_targets: HashMap<[u8; 32], Vec<u32>>,
    /// Object named by retractions → those retractions, with the version named.
    obj_targets: HashMap<IdKey, Vec<(u32, Option<i64>)>>,
    /// Retracted deliveries: (version, envelope) → the first retraction that took it.
    retracted: HashMap<(u32, u32), u32>,
    /// Objects a retraction ever touched: their latest versions are chosen by
    /// [`View::recompute`], not incrementally.
    touched: HashSet<IdKey>,
    /// Object → its tombstones in force and the versions they stand for.
    tombstones: HashMap<IdKey, Vec<(u32, u32)>>,
    /// Object a retraction touched → what each level sees as its latest (`NONE`:
    /// nothing), as [`View::recompute`] chose it.
    touched_latest: HashMap<IdKey, [u32; 5]>,
}

impl View {
    /// An empty view.
    pub fn new() -> View {
        View::default()
    }

    /// The index of a type name, added if new. A `u32` (the handle's width): a view
    /// holds fewer than 2^32 versions, so it cannot see more types than that, and no
    /// index is ever reused for another type (an index of 16 bits was, past 65,536
    /// custom types, merging objects of different types that share a UUID).
    fn intern_type(&mut self, t: &str) -> u32 {
        if let Some(&i) = self.type_ix.get(t) {
            return i;
        }
        let i = u32::try_from(self.types.len()).unwrap_or(u32::MAX);
        self.types.push(t.to_string());
        self.type_ix.insert(t.to_string(), i);
        self.by_type.push(Vec::new());
        i
    }

    fn intern_origin(&mut self, o: &str) -> u16 {
        if let Some(&i) = self.origin_ix.get(o) {
            return i;
        }
        let i = self.origins.len() as u16;
        self.origins.push(o.to_string());
        self.origin_ix.insert(o.to_string(), i);
        self.by_origin.push(Vec::new());
        i
    }

    /// Whether an envelope id is held.
    pub fn has_envelope(&self, id: &[u8; 32]) -> bool {
        self.env_by_id.contains_key(id)
    }

    /// The latest `date_added` assigned (µs).
    pub fn last_date_added(&self) -> i64 {
        self.last_date_added
    }

    /// Applies one envelope record (records must come in log order).
    pub fn apply(&mut self, rec: &EnvelopeRecord) -> ApplyOutcome {
        let mut out = ApplyOutcome::default();
        if self.env_by_id.contains_key(&rec.id) {
            return out;
        }
        let origin = self.intern_origin(&rec.origin);
        let env_ix = self.envelopes.len() as u32;
        let first_version = self.versions.len() as u32;
        self.envelopes.push(EnvMeta {
            ordinal: rec.ordinal,
            id: rec.id,
            origin,
            key_id: rec.key_id.clone(),
            seq: rec.seq,
            signed_at: rec.signed_at,
            tlp: rec.tlp,
            recipients: rec.recipients.clone(),
            received_from: rec.received_from.clone(),
            received_at: rec.received_at,
            pos: rec.pos,
            object_count: rec.objects.len() as u32,
            kind: if rec.retraction.is_some() {
                Kind::Retraction
            } else {
                Kind::Bundle
            },
            versions_added: (first_version, first_version),
        });
        self.env_by_id.insert(rec.id, env_ix);
        let s = self.origin_seq.entry(origin).or_insert(0);
        *s = (*s).max(rec.seq);
        let mut next_da = rec.date_added_base.max(self.last_date_added + 1);
        if let Some(r) = &rec.retraction {
            self.apply_retraction(env_ix, r, &mut next_da);
            return out;
        }
        // Retractions that arrived before this envelope and name it.
        let env_retracted_by = self.envelope_retracted_by(&rec.id, origin);
        // Without any retraction held, no object is looked up twice on this path.
        let retractions_held = !self.retractions.is_empty();
        for obj in &rec.objects {
            if retractions_held {
                let type_ix = self.intern_type(&obj.type_name);
                let key = (type_ix, halves(obj.uuid));
                let by = env_retracted_by
                    .or_else(|| self.object_retracted_by(key, obj.modified, origin));
                if by.is_some() || self.touched.contains(&key) {
                    self.deliver_touched(obj, env_ix, origin, by, &mut next_da, &mut out);
                    continue;
                }
            }
            let delivery = self.deliver(obj, env_ix, origin, &mut next_da, true);
            let (handle, key) = out.count(delivery);
            self.deliver_shared(key, handle, env_ix);
        }
        self.envelopes[env_ix as usize].versions_added.1 = self.versions.len() as u32;
        out
    }

    /// Adds a delivery of `obj` in envelope `env_ix`: a new version, or another
    /// delivery of a held one. With `settle`, the object's owner and latest versions
    /// follow incrementally; without, the caller chooses them again
    /// ([`View::recompute`]).
    fn deliver(
        &mut self,
        obj: &ObjectEntry,
        env_ix: u32,
        origin: u16,
        next_da: &mut i64,
        settle: bool,
    ) -> Delivery {
        // A delivery shares the object at its envelope's level, or the object's own
        // when that is more restrictive: a reader who may not see the envelope learns
        // nothing from this delivery.
        let level = obj.tlp.max(self.envelopes[env_ix as usize].tlp);
        let type_ix = self.intern_type(&obj.type_name);
        let key = (type_ix, halves(obj.uuid));
        let mut conflict = false;
        let existing = self.by_id.get(&key).copied();
        if let Some(entry) = existing {
            let mut v = entry.head;
            while v != NONE {
                let ver = &self.versions[v as usize];
                let next = ver.next_same_id;
                if ver.modified == obj.modified {
                    if ver.hash == obj.hash {
                        self.add_delivery(v, env_ix, origin, level, settle);
                        return Delivery::Known { handle: v, key };
                    }
                    conflict = true;
                }
                v = next;
            }
        }
        let handle = self.versions.len() as u32;
        let date_added = *next_da;
        *next_da += 1;
        self.last_date_added = date_added;
        let mut flags = 0;
        if obj.revoked {
            flags |= REVOKED;
        }
        if obj.spec_21 {
            flags |= SPEC21;
        }
        if conflict {
            flags |= CONFLICT;
            let mut v = existing.map_or(NONE, |e| e.head);
            while v != NONE {
                let ver = &mut self.versions[v as usize];
                if ver.modified == obj.modified {
                    ver.flags |= CONFLICT;
                }
                v = ver.next_same_id;
            }
        }
        self.versions.push(Version {
            uuid: halves(obj.uuid),
            modified: obj.modified,
            date_added,
            hash: obj.hash,
            body_off: obj.body_off,
            body_len: obj.body_len,
            envelope: env_ix,
            next_same_id: existing.map_or(NONE, |e| e.head),
            type_ix,
            tlp: level,
            flags,
        });
        self.by_type[type_ix as usize].push(handle);
        self.by_origin[origin as usize].push(handle);
        for k in &obj.obs_keys {
            self.index_observable(observable_hash(k), handle);
            match crate::stix::observable::IpBlock::of_key(k) {
                Some(crate::stix::observable::IpBlock::V4 { base, len }) => {
                    self.ipv4_blocks
                        .insert(u64::from(base) << 8 | u64::from(len));
                }
                Some(crate::stix::observable::IpBlock::V6 { base, len }) => {
                    self.ipv6_blocks.insert((base, len));
                }
                None => {}
            }
        }
        match existing {
            None if !settle => {
                self.by_id.insert(
                    key,
                    IdEntry {
                        head: handle,
                        latest: NONE,
                        owner_env: env_ix,
                        shared_owner: [NONE; 2],
                        shared: [NONE; 2],
                    },
                );
            }
            Some(e) if !settle => {
                self.by_id.insert(key, IdEntry { head: handle, ..e });
            }
            None => {
                self.by_id.insert(
                    key,
                    IdEntry {
                        head: handle,
                        latest: handle,
                        owner_env: env_ix,
                        shared_owner: [NONE; 2],
                        shared: [NONE; 2],
                    },
                );
                self.set_latest(handle, true);
            }
            Some(e) => {
                let owner_changes = self.earlier_delivery(env_ix, e.owner_env);
                let entry = IdEntry {
                    head: handle,
                    owner_env: if owner_changes { env_ix } else { e.owner_env },
                    ..e
                };
                self.by_id.insert(key, entry);
                if owner_changes {
                    self.settle_latest(key);
                } else if self.envelopes[e.owner_env as usize].origin == origin {
                    self.offer_latest(key, handle);
                }
            }
        }
        Delivery::New {
            conflict,
            handle,
            key,
        }
    }

    /// Brings the shared digests up to date with a delivery of version `v` in
    /// envelope `env_ix`: at each shared level the envelope is visible at, the
    /// object's owner and latest among the visible deliveries move as the view's own
    /// do ([`View::deliver`], [`View::add_delivery`]): an earlier delivery makes its
    /// origin the owner (the latest is chosen again), a delivery by the owner offers
    /// its version. O(1) but for a change of owner.
    fn deliver_shared(&mut self, key: IdKey, v: u32, env_ix: u32) {
        let env_tlp = self.envelopes[env_ix as usize].tlp;
        if env_tlp > TlpLevel::Green {
            return;
        }
        let env_origin = self.envelopes[env_ix as usize].origin;
        let Some(mut entry) = self.by_id.get(&key).copied() else {
            return;
        };
        let mut changed = false;
        // Computed at most once: both levels often take the same version.
        let mut added: Option<(u32, [u64; 4])> = None;
        for (i, level) in SHARED_LEVELS.iter().enumerate() {
            if env_tlp > *level {
                continue;
            }
            let owner = entry.shared_owner[i];
            let now = if owner == NONE {
                // The first visible delivery: its version is the only one its
                // origin delivered visibly.
                entry.shared_owner[i] = env_ix;
                changed = true;
                v
            } else if self.earlier_delivery(env_ix, owner) {
                entry.shared_owner[i] = env_ix;
                changed = true;
                self.best_delivered(entry.head, env_origin, *level)
            } else if self.envelopes[owner as usize].origin == env_origin
                && (entry.shared[i] == NONE || self.beats(v, entry.shared[i]))
            {
                v
            } else {
                continue;
            };
            let before = entry.shared[i];
            if now == before {
                continue;
            }
            if before != NONE {
                let c = self.contribution_of(before);
                self.shared[i].remove(&c);
            }
            if now != NONE {
                let c = match added {
                    Some((h, c)) if h == now => c,
                    _ => {
                        let c = self.contribution_of(now);
                        added = Some((now, c));
                        c
                    }
                };
                self.shared[i].add(&c);
            }
            entry.shared[i] = now;
            changed = true;
        }
        if changed && let Some(e) = self.by_id.get_mut(&key) {
            e.shared_owner = entry.shared_owner;
            e.shared = entry.shared;
        }
    }

    /// The best version, from the chain starting at `head`, that `origin` delivered
    /// in an envelope at `level` or below (`NONE` if none).
    fn best_delivered(&self, head: u32, origin: u16, level: TlpLevel) -> u32 {
        let mut best = NONE;
        let mut c = head;
        while c != NONE {
            let delivered = self.delivery_envs(c).any(|e| {
                let env = &self.envelopes[e as usize];
                env.origin == origin && env.tlp <= level
            });
            if delivered && (best == NONE || self.beats(c, best)) {
                best = c;
            }
            c = self.versions[c as usize].next_same_id;
        }
        best
    }

    /// Whether envelope `a` was signed before envelope `b`: by `signed_at`, then by
    /// origin name, then by envelope id — the same answer on every node.
    fn earlier_delivery(&self, a: u32, b: u32) -> bool {
        let (ea, eb) = (&self.envelopes[a as usize], &self.envelopes[b as usize]);
        (ea.signed_at, self.origin_name(ea.origin), ea.id)
            < (eb.signed_at, self.origin_name(eb.origin), eb.id)
    }

    /// Chooses the latest version of an object again: the best version (by
    /// [`View::beats`]) among those its owner delivered. Versions another member
    /// signed are held and listed, but never become the latest: a member cannot
    /// supersede what another member published (security finding 3).
    fn settle_latest(&mut self, key: IdKey) {
        let Some(entry) = self.by_id.get(&key).copied() else {
            return;
        };
        let owner = self.envelopes[entry.owner_env as usize].origin;
        let mut best = NONE;
        let mut v = entry.head;
        while v != NONE {
            if self.delivered_by(v, owner) && (best == NONE || self.beats(v, best)) {
                best = v;
            }
            v = self.versions[v as usize].next_same_id;
        }
        if best == NONE || best == entry.latest {
            return;
        }
        self.set_latest(entry.latest, false);
        self.set_latest(best, true);
        if let Some(e) = self.by_id.get_mut(&key) {
            e.latest = best;
        }
    }

    /// Makes `v`, a version the owner delivered, the latest if it beats the current
    /// one (the owner is unchanged, so no other version became eligible).
    fn offer_latest(&mut self, key: IdKey, v: u32) {
        let Some(entry) = self.by_id.get(&key).copied() else {
            return;
        };
        if v == entry.latest || !self.beats(v, entry.latest) {
            return;
        }
        self.set_latest(entry.latest, false);
        self.set_latest(v, true);
        if let Some(e) = self.by_id.get_mut(&key) {
            e.latest = v;
        }
    }

    /// Whether `origin` delivered version `v`.
    fn delivered_by(&self, v: u32, origin: u16) -> bool {
        self.delivery_envs(v)
            .any(|e| self.envelopes[e as usize].origin == origin)
    }

    /// Whether version `a` wins over `b` as the latest: greater `modified`; for equal
    /// `modified` (a conflict), the smaller content hash — arbitrary but the same on
    /// every node.
    fn beats(&self, a: u32, b: u32) -> bool {
        let (va, vb) = (&self.versions[a as usize], &self.versions[b as usize]);
        (va.modified, std::cmp::Reverse(va.hash)) > (vb.modified, std::cmp::Reverse(vb.hash))
    }

    fn index_observable(&mut self, h: u64, handle: u32) {
        match self.observables.get(&h).copied() {
            None => {
                self.observables.insert(h, handle);
            }
            Some(v) if v & OVERFLOW != 0 => {
                self.observable_overflow[(v & !OVERFLOW) as usize].push(handle);
            }
            Some(v) => {
                let ix = self.observable_overflow.len() as u32;
                self.observable_overflow.push(vec![v, handle]);
                self.observables.insert(h, ix | OVERFLOW);
            }
        }
    }

    fn contribution_of(&self, v: u32) -> [u64; 4] {
        let ver = &self.versions[v as usize];
        contribution(
            &self.types[ver.type_ix as usize],
            ver.uuid(),
            ver.modified,
            &ver.hash,
        )
    }

    fn set_latest(&mut self, v: u32, latest: bool) {
        let c = self.contribution_of(v);
        let ver = &mut self.versions[v as usize];
        let d = &mut self.digests[level_ix(ver.tlp)];
        if latest {
            ver.flags |= LATEST;
            d.add(&c);
        } else {
            ver.flags &= !LATEST;
            d.remove(&c);
        }
    }

    fn add_delivery(&mut self, v: u32, env_ix: u32, origin: u16, tlp: TlpLevel, settle: bool) {
        let first_env = self.versions[v as usize].envelope;
        let extra = self.extra_deliveries.entry(v).or_default();
        if first_env == env_ix || extra.contains(&env_ix) {
            return;
        }
        let origin_known = std::iter::once(first_env)
            .chain(extra.iter().copied())
            .any(|e| self.envelopes[e as usize].origin == origin);
        extra.push(env_ix);
        if !origin_known {
            let list = &mut self.by_origin[origin as usize];
            let at = list.partition_point(|&h| h < v);
            list.insert(at, v);
        }
        if !settle {
            return;
        }
        // A delivery can make its origin the owner (signed earlier than any other),
        // or give the owner a version it had not delivered: choose the latest again.
        let ver = &self.versions[v as usize];
        let key = (ver.type_ix, ver.uuid);
        if let Some(entry) = self.by_id.get(&key).copied() {
            let owner = self.envelopes[entry.owner_env as usize].origin;
            if self.earlier_delivery(env_ix, entry.owner_env) {
                if let Some(e) = self.by_id.get_mut(&key) {
                    e.owner_env = env_ix;
                }
                self.settle_latest(key);
            } else if origin == owner && !origin_known {
                self.offer_latest(key, v);
            }
        }
        // The version is shared at the least restrictive level any origin used.
        let cur = self.versions[v as usize].tlp;
        if tlp < cur {
            let latest = self.versions[v as usize].has(LATEST);
            if latest {
                self.set_latest(v, false);
            }
            self.versions[v as usize].tlp = tlp;
            if latest {
                self.set_latest(v, true);
            }
        }
    }

    // ----- reads -----

    /// Number of envelopes held.
    pub fn envelope_count(&self) -> usize {
        self.envelopes.len()
    }

    /// Gives back spare capacity (after the start-up load, where growth by doubling
    /// leaves up to half of each table unused).
    pub fn shrink_to_fit(&mut self) {
        self.versions.shrink_to_fit();
        self.by_id.shrink_to_fit();
        self.observables.shrink_to_fit();
        for v in self.by_type.iter_mut().chain(self.by_origin.iter_mut()) {
            v.shrink_to_fit();
        }
        self.envelopes.shrink_to_fit();
    }

    /// Approximate heap bytes of each part of the view (capacities, not lengths: what
    /// the allocator holds). For memory reports and the store benchmark.
    pub fn heap_bytes(&self) -> Vec<(&'static str, usize)> {
        use std::mem::size_of;
        // A std HashMap bucket is the entry plus one control byte.
        fn map<K, V>(m: &HashMap<K, V>) -> usize {
            m.capacity() * (size_of::<(K, V)>() + 1)
        }
        let nested = |v: &Vec<Vec<u32>>| {
            v.capacity() * size_of::<Vec<u32>>() + v.iter().map(|x| x.capacity() * 4).sum::<usize>()
        };
        vec![
            ("versions", self.versions.capacity() * size_of::<Version>()),
            ("by_id", map(&self.by_id)),
            ("observables", map(&self.observables)),
            ("observable_overflow", nested(&self.observable_overflow)),
            // A B-tree holds up to 11 keys per node of about 2 key sizes each.
            (
                "ip_blocks",
                self.ipv4_blocks.len() * 16 + self.ipv6_blocks.len() * 48,
            ),
            ("by_type", nested(&self.by_type)),
            ("by_origin", nested(&self.by_origin)),
            (
                "extra_deliveries",
                map(&self.extra_deliveries)
                    + self
                        .extra_deliveries
                        .values()
                        .map(|v| v.capacity() * 4)
                        .sum::<usize>(),
            ),
            (
                "envelopes",
                self.envelopes.capacity() * size_of::<EnvMeta>() + map(&self.env_by_id),
            ),
        ]
    }

    /// Number of object versions held.
    pub fn version_count(&self) -> usize {
        self.versions.len()
    }

    /// Number of distinct objects (ids).
    pub fn object_count(&self) -> usize {
        self.by_id.len()
    }

    /// The digest of latest versions at a level.
    pub fn digest(&self, level: TlpLevel) -> ViewDigest {
        self.digests[level_ix(level)]
    }

    /// The digest peers compare for a shared level (clear or green): over every
    /// object, its latest version among the deliveries at that level or below
    /// ([`View::latest_visible`]). Two nodes holding the same clear and green
    /// envelopes agree on it whatever amber or red each holds: a green version
    /// superseded by an amber one still counts at green on both. `None` for amber and
    /// red, which not every peer may hold.
    pub fn shared_digest(&self, level: TlpLevel) -> Option<ViewDigest> {
        SHARED_LEVELS
            .iter()
            .position(|l| *l == level)
            .map(|i| self.shared[i])
    }

    /// A version by handle.
    pub fn version(&self, h: u32) -> Option<&Version> {
        self.versions.get(h as usize)
    }

    /// All versions, in `date_added` order.
    pub fn versions(&self) -> &[Version] {
        &self.versions
    }

    /// An envelope by index.
    pub fn envelope(&self, ix: u32) -> Option<&EnvMeta> {
        self.envelopes.get(ix as usize)
    }

    /// All envelopes, in log order.
    pub fn envelopes(&self) -> &[EnvMeta] {
        &self.envelopes
    }

    /// Index of an envelope by id.
    pub fn envelope_by_id(&self, id: &[u8; 32]) -> Option<u32> {
        self.env_by_id.get(id).copied()
    }

    /// Type name of an index.
    pub fn type_name(&self, ix: u32) -> &str {
        self.types.get(ix as usize).map_or("", String::as_str)
    }

    /// Index of a type name.
    pub fn type_index(&self, t: &str) -> Option<u32> {
        self.type_ix.get(t).copied()
    }

    /// Origin name of an index.
    pub fn origin_name(&self, ix: u16) -> &str {
        self.origins.get(ix as usize).map_or("", String::as_str)
    }

    /// Index of an origin name.
    pub fn origin_index(&self, o: &str) -> Option<u16> {
        self.origin_ix.get(o).copied()
    }

    /// Every origin seen, with the greatest sequence number held from it.
    pub fn origin_seqs(&self) -> Vec<(String, u64)> {
        let mut v: Vec<_> = self
            .origin_seq
            .iter()
            .map(|(o, s)| (self.origin_name(*o).to_string(), *s))
            .collect();
        v.sort();
        v
    }

    /// Version handles of an object id (`type--uuid`), oldest `modified` first (ties
    /// in arrival order).
    pub fn versions_of(&self, type_name: &str, uuid: u128) -> Vec<u32> {
        let Some(t) = self.type_index(type_name) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let key = (t, halves(uuid));
        let mut v = self.by_id.get(&key).map_or(NONE, |e| e.head);
        while v != NONE {
            out.push(v);
            v = self.versions[v as usize].next_same_id;
        }
        out.reverse();
        if let Some(ts) = self.tombstones.get(&key) {
            out.extend(ts.iter().map(|&(tomb, _)| tomb));
        }
        out.sort_by_key(|&h| self.versions[h as usize].modified);
        out
    }

    /// Version handles of the same object as version `h`, oldest first.
    pub fn siblings(&self, h: u32) -> Vec<u32> {
        match self.versions.get(h as usize) {
            Some(v) => self.versions_of(self.type_name(v.type_ix), v.uuid()),
            None => Vec::new(),
        }
    }

    /// The latest version handle of an object id.
    pub fn latest_of(&self, type_name: &str, uuid: u128) -> Option<u32> {
        let t = self.type_index(type_name)?;
        self.by_id
            .get(&(t, halves(uuid)))
            .map(|e| e.latest)
            .filter(|&l| l != NONE)
    }

    /// Where a version's canonical body is in the log.
    pub fn body_location(&self, h: u32) -> Option<BodyLocation> {
        let v = self.versions.get(h as usize)?;
        let e = self.envelopes.get(v.envelope as usize)?;
        Some(BodyLocation {
            segment: e.pos.segment,
            offset: e.pos.offset + u64::from(v.body_off),
            len: v.body_len,
        })
    }

    /// Version handles of a type, in `date_added` order.
    pub fn by_type(&self, type_ix: u32) -> &[u32] {
        self.by_type
            .get(type_ix as usize)
            .map_or(&[], Vec::as_slice)
    }

    /// Version handles delivered by an origin, in `date_added` order.
    pub fn by_origin(&self, origin_ix: u16) -> &[u32] {
        self.by_origin
            .get(origin_ix as usize)
            .map_or(&[], Vec::as_slice)
    }

    /// The addresses and networks objects name that lie inside `block` (itself
    /// included), in address order, at most `limit` of them; whether there were more.
    pub fn ip_blocks_within(
        &self,
        block: crate::stix::observable::IpBlock,
        limit: usize,
    ) -> (Vec<crate::stix::observable::IpBlock>, bool) {
        use crate::stix::observable::IpBlock;
        let last = block.last();
        let min_len = block.prefix_len();
        let found: Vec<IpBlock> = match block {
            IpBlock::V4 { base, .. } => {
                let hi = u64::try_from(last).unwrap_or(u64::from(u32::MAX));
                self.ipv4_blocks
                    .range(u64::from(base) << 8..=hi << 8 | 0xff)
                    .map(|v| IpBlock::V4 {
                        base: (v >> 8) as u32,
                        len: (v & 0xff) as u8,
                    })
                    .filter(|b| b.prefix_len() >= min_len)
                    .take(limit + 1)
                    .collect()
            }
            IpBlock::V6 { base, .. } => self
                .ipv6_blocks
                .range((base, 0)..=(last, u8::MAX))
                .map(|&(base, len)| IpBlock::V6 { base, len })
                .filter(|b| b.prefix_len() >= min_len)
                .take(limit + 1)
                .collect(),
        };
        let more = found.len() > limit;
        (found.into_iter().take(limit).collect(), more)
    }

    /// Candidate version handles naming an observable key (a hash collision can add
    /// an unrelated one: check the object).
    pub fn by_observable(&self, key: &str) -> Vec<u32> {
        match self.observables.get(&observable_hash(key)).copied() {
            None => Vec::new(),
            Some(v) if v & OVERFLOW != 0 => self
                .observable_overflow
                .get((v & !OVERFLOW) as usize)
                .cloned()
                .unwrap_or_default(),
            Some(v) => vec![v],
        }
    }

    /// Every envelope that delivered a version and whose delivery is not retracted,
    /// first delivery first.
    pub fn deliveries(&self, v: u32) -> Vec<&EnvMeta> {
        self.delivery_envs(v)
            .filter_map(|e| self.envelopes.get(e as usize))
            .collect()
    }

    /// The deliveries of a version that a reader cleared up to `max_tlp` may know of:
    /// those in envelopes at `max_tlp` or below. Everything a reader is told about who
    /// reported what (provenance, origins, corroboration, per-member collections) is
    /// derived from these, so that a green reader learns nothing of an amber or red
    /// delivery, not even that it exists (security finding 2).
    pub fn deliveries_at(&self, v: u32, max_tlp: TlpLevel) -> Vec<&EnvMeta> {
        let mut d = self.deliveries(v);
        d.retain(|e| e.tlp <= max_tlp);
        d
    }

    /// Distinct origins that delivered a version in envelopes at `max_tlp` or below.
    pub fn origins_at(&self, v: u32, max_tlp: TlpLevel) -> Vec<&str> {
        let mut o: Vec<&str> = self
            .deliveries_at(v, max_tlp)
            .iter()
            .map(|e| self.origin_name(e.origin))
            .collect();
        o.sort_unstable();
        o.dedup();
        o
    }

    /// Whether `origin` delivered version `v` in an envelope at `max_tlp` or below.
    pub fn delivered_at(&self, v: u32, origin: u16, max_tlp: TlpLevel) -> bool {
        self.deliveries(v)
            .iter()
            .any(|e| e.origin == origin && e.tlp <= max_tlp)
    }

    /// The latest version of `h`'s object that a reader cleared up to `max_tlp` sees:
    /// the latest version a node holding only the envelopes at `max_tlp` or below
    /// would show — the owner and the latest chosen among those deliveries alone. A
    /// reader is never shown that a newer version exists above its clearance, and the
    /// shared digests ([`View::shared_digest`]) are made of these, so nodes that hold
    /// the same clear and green envelopes agree whatever amber or red they hold.
    pub fn latest_visible(&self, h: u32, max_tlp: TlpLevel) -> Option<u32> {
        let v = self.versions.get(h as usize)?;
        let key = (v.type_ix, v.uuid);
        let entry = self.by_id.get(&key)?;
        self.latest_at(key, entry, max_tlp)
    }

    /// [`View::latest_visible`] of an object entry.
    fn latest_at(&self, key: IdKey, entry: &IdEntry, max_tlp: TlpLevel) -> Option<u32> {
        if max_tlp == TlpLevel::Red {
            return (entry.latest != NONE).then_some(entry.latest);
        }
        if let Some(i) = SHARED_LEVELS.iter().position(|l| *l == max_tlp) {
            return (entry.shared[i] != NONE).then_some(entry.shared[i]);
        }
        if self.touched.contains(&key) {
            return self.latest_touched_at(key, max_tlp);
        }
        // The common case: the earliest delivery and a delivery of the latest version
        // by its owner are both visible.
        let owner_env = &self.envelopes[entry.owner_env as usize];
        if owner_env.tlp <= max_tlp
            && self.delivery_envs(entry.latest).any(|e| {
                self.envelopes[e as usize].origin == owner_env.origin
                    && self.envelopes[e as usize].tlp <= max_tlp
            })
        {
            return Some(entry.latest);
        }
        // Otherwise the owner among the visible deliveries, then its best version.
        self.owner_and_best(entry.head, max_tlp).1
    }

    /// Among the deliveries (not retracted) of the versions chained from `head` in
    /// envelopes at `level` or below: the earliest, whose origin owns the object, and
    /// the best version that origin delivered — the owner and latest of protocol §5
    /// from those deliveries alone.
    fn owner_and_best(&self, head: u32, level: TlpLevel) -> (Option<u32>, Option<u32>) {
        let mut owner: Option<u32> = None;
        let mut c = head;
        while c != NONE {
            for e in self.delivery_envs(c) {
                if self.envelopes[e as usize].tlp <= level
                    && owner.is_none_or(|o| self.earlier_delivery(e, o))
                {
                    owner = Some(e);
                }
            }
            c = self.versions[c as usize].next_same_id;
        }
        let Some(o) = owner else {
            return (None, None);
        };
        let best = self.best_delivered(head, self.envelopes[o as usize].origin, level);
        (Some(o), (best != NONE).then_some(best))
    }

    /// The envelopes that delivered version `v` (indexes) and whose delivery is not
    /// retracted, without allocating.
    fn delivery_envs(&self, v: u32) -> impl Iterator<Item = u32> + '_ {
        self.all_delivery_envs(v)
            .filter(move |&e| !self.is_retracted(v, e))
    }

    /// Every envelope that delivered version `v`, retracted deliveries included.
    fn all_delivery_envs(&self, v: u32) -> impl Iterator<Item = u32> + '_ {
        let first = self.versions.get(v as usize).map(|x| x.envelope);
        first
            .into_iter()
            .chain(self.extra_deliveries.get(&v).into_iter().flatten().copied())
    }

    /// The member that owns the object of version `h`: the origin of its earliest
    /// signed delivery, the only member whose versions can become the latest.
    pub fn owner_of(&self, h: u32) -> Option<&str> {
        let v = self.versions.get(h as usize)?;
        let entry = self.by_id.get(&(v.type_ix, v.uuid))?;
        let env = self.envelopes.get(entry.owner_env as usize)?;
        Some(self.origin_name(env.origin))
    }

    /// The `date_added`-ordered position of the first version added after `t` (µs).
    pub fn first_after(&self, t: i64) -> usize {
        self.versions.partition_point(|v| v.date_added <= t)
    }
}

enum Delivery {
    New {
        conflict: bool,
        handle: u32,
        key: IdKey,
    },
    Known {
        handle: u32,
        key: IdKey,
    },
}

#[cfg(test)]
mod tests;
