//! Retractions in the view (protocol §11).
//!
//! A retraction takes back *deliveries*: an object version carried by an envelope of
//! the retraction's origin, named by the envelope's id or by the object's id (and
//! version). Nothing is removed: the versions and envelopes stay, and the view
//! chooses owners, latest versions, levels and digests from the deliveries that are
//! not retracted, exactly as if the retracted ones had never arrived. That depends
//! only on the set of envelopes and retractions held, so any arrival order gives the
//! same view: a retraction that arrives before what it names is kept and applies
//! when the envelope comes.
//!
//! Where a reader had been shown an object that no delivery it may see supports any
//! more, the view shows a **tombstone** instead: a version of the object with
//! `revoked: true`, one millisecond after the retracted version it stands for, so
//! that TAXII clients that paged the object drop it as STIX versioning expects. Its
//! content hash is derived from the retracted version's, so every node makes the same
//! tombstone and the digests agree. Each level's tombstone stands for the newest
//! version retracted at that level or below, so none carries a body above the level
//! it is shown at; an object may have one per level ([`crate::store::resolve`]).
//!
//! Objects a retraction touched leave the incremental path: each change to them
//! chooses everything again from their deliveries ([`View::recompute`]). Retractions
//! are rare and name few objects, so this costs nothing on the ingest hot path, where
//! one hash-set lookup per object says whether an object was touched.

use super::{
    EnvMeta, IdKey, NONE, RETRACTED, REVOKED, SHARED_LEVELS, SPEC21, Version, View, halves,
};
use crate::envelope::{Kind, Reason};
use crate::stix::tlp::TlpLevel;
use crate::store::record::{ObjectEntry, RetractionEntry};
use crate::store::resolve::{DeliveryFacts, Pick, VersionFacts, resolve};
use sha2::{Digest, Sha256};

/// What the view keeps of a retraction besides its envelope's metadata.
#[derive(Debug, Clone)]
pub struct RetractionMeta {
    /// Why.
    pub reason: Reason,
    /// The origin's note.
    pub note: String,
    /// Envelopes and objects it names.
    pub targets: usize,
}

/// How much later than the version it stands for a tombstone is (µs).
pub const TOMBSTONE_AFTER_US: i64 = 1000;

/// The content hash of the tombstone of a version with content hash `hash`: the
/// first 16 bytes of SHA-256(`"synergia-retracted:"` ‖ hash).
pub fn tombstone_hash(hash: &[u8; 16]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"synergia-retracted:");
    h.update(hash);
    let d = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

impl View {
    /// Applies a retraction held at envelope index `env_ix`: notes what it names (for
    /// envelopes that come later) and takes back the deliveries of its origin that
    /// are held.
    pub(super) fn apply_retraction(&mut self, env_ix: u32, r: &RetractionEntry, next_da: &mut i64) {
        let origin = self.envelopes[env_ix as usize].origin;
        self.retractions.insert(
            env_ix,
            RetractionMeta {
                reason: r.reason,
                note: r.note.clone(),
                targets: r.envelopes.len() + r.objects.len(),
            },
        );
        let mut keys: Vec<IdKey> = Vec::new();
        for id in &r.envelopes {
            self.env_targets.entry(*id).or_default().push(env_ix);
            let Some(&target) = self.env_by_id.get(id) else {
                continue;
            };
            let t = &self.envelopes[target as usize];
            if t.origin != origin || t.kind != Kind::Bundle {
                continue;
            }
            for v in self.versions_of_envelope(target) {
                self.retracted.entry((v, target)).or_insert(env_ix);
                let ver = &self.versions[v as usize];
                keys.push((ver.type_ix, ver.uuid));
            }
        }
        for o in &r.objects {
            let type_ix = self.intern_type(&o.type_name);
            let key = (type_ix, halves(o.uuid));
            self.obj_targets
                .entry(key)
                .or_default()
                .push((env_ix, o.modified));
            let mut v = self.by_id.get(&key).map_or(NONE, |e| e.head);
            while v != NONE {
                let ver = &self.versions[v as usize];
                let next = ver.next_same_id;
                if o.modified.is_none_or(|m| m == ver.modified) {
                    let from_origin: Vec<u32> = self
                        .all_delivery_envs(v)
                        .filter(|&e| self.envelopes[e as usize].origin == origin)
                        .collect();
                    for e in from_origin {
                        self.retracted.entry((v, e)).or_insert(env_ix);
                        keys.push(key);
                    }
                }
                v = next;
            }
        }
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            self.touched.insert(key);
            self.recompute(key, next_da);
        }
    }

    /// Every version envelope `env_ix` delivered (new or known before).
    fn versions_of_envelope(&self, env_ix: u32) -> Vec<u32> {
        let (a, b) = self.envelopes[env_ix as usize].versions_added;
        let mut out: Vec<u32> = (a..b)
            .filter(|&v| {
                let ver = &self.versions[v as usize];
                ver.envelope == env_ix && !ver.has(RETRACTED)
            })
            .collect();
        // Versions it delivered again: rare (the same version in two envelopes), and
        // a retraction is a rare event.
        out.extend(
            self.extra_deliveries
                .iter()
                .filter(|(_, envs)| envs.contains(&env_ix))
                .map(|(&v, _)| v),
        );
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The retraction (of `origin`) held that names envelope `id`, if any.
    pub(super) fn envelope_retracted_by(&self, id: &[u8; 32], origin: u16) -> Option<u32> {
        self.env_targets.get(id).and_then(|rs| {
            rs.iter()
                .copied()
                .find(|&r| self.envelopes[r as usize].origin == origin)
        })
    }

    /// The retraction (of `origin`) held that names this object version, if any.
    pub(super) fn object_retracted_by(
        &self,
        key: IdKey,
        modified: i64,
        origin: u16,
    ) -> Option<u32> {
        if self.obj_targets.is_empty() {
            return None;
        }
        self.obj_targets.get(&key).and_then(|rs| {
            rs.iter()
                .find(|(r, m)| {
                    self.envelopes[*r as usize].origin == origin && m.is_none_or(|m| m == modified)
                })
                .map(|(r, _)| *r)
        })
    }

    /// Delivers an object a retraction touched (or whose delivery is retracted,
    /// `by`), then chooses its latest versions again.
    pub(super) fn deliver_touched(
        &mut self,
        obj: &ObjectEntry,
        env_ix: u32,
        origin: u16,
        by: Option<u32>,
        next_da: &mut i64,
        out: &mut super::ApplyOutcome,
    ) {
        let delivery = self.deliver(obj, env_ix, origin, next_da, false);
        let (handle, key) = out.count(delivery);
        if let Some(r) = by {
            self.retracted.entry((handle, env_ix)).or_insert(r);
        }
        self.touched.insert(key);
        self.recompute(key, next_da);
    }

    /// Whether the delivery of version `v` in envelope `e` is retracted.
    pub(super) fn is_retracted(&self, v: u32, e: u32) -> bool {
        !self.retracted.is_empty() && self.retracted.contains_key(&(v, e))
    }

    /// The versions of an object, newest first (the chain order).
    fn chain(&self, head: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut v = head;
        while v != NONE {
            out.push(v);
            v = self.versions[v as usize].next_same_id;
        }
        out
    }

    /// [`View::latest_visible`] of a touched object at a level other than clear,
    /// green and red (which [`View::recompute`] keeps in the object's entry).
    pub(super) fn latest_touched_at(&self, key: IdKey, level: TlpLevel) -> Option<u32> {
        self.touched_latest
            .get(&key)
            .map(|picks| picks[super::level_ix(level)])
            .filter(|&v| v != NONE)
    }

    /// Chooses everything about a touched object again from its deliveries, by the
    /// rules of [`crate::store::resolve`]: each version's level, the latest version at
    /// every level, the tombstones; and moves the digests from what the object counted
    /// for before to what it counts for now.
    pub(super) fn recompute(&mut self, key: IdKey, next_da: &mut i64) {
        let Some(mut entry) = self.by_id.get(&key).copied() else {
            return;
        };
        // 1. Out of the digests.
        if entry.latest != NONE && self.versions[entry.latest as usize].has(super::LATEST) {
            self.set_latest(entry.latest, false);
        }
        for i in 0..SHARED_LEVELS.len() {
            if entry.shared[i] != NONE {
                let c = self.contribution_of(entry.shared[i]);
                self.shared[i].remove(&c);
            }
        }
        // 2. The rules, over the object's versions and every delivery of each.
        let chain = self.chain(entry.head);
        let mut earliest_any: Option<u32> = None;
        let mut facts = Vec::with_capacity(chain.len());
        for &v in &chain {
            let envs: Vec<u32> = self.all_delivery_envs(v).collect();
            let mut deliveries = Vec::with_capacity(envs.len());
            for e in envs {
                if earliest_any.is_none_or(|o| self.earlier_delivery(e, o)) {
                    earliest_any = Some(e);
                }
                let env = &self.envelopes[e as usize];
                deliveries.push(DeliveryFacts {
                    origin: self.origin_name(env.origin).to_string(),
                    signed_at: env.signed_at,
                    envelope: env.id,
                    tlp: env.tlp,
                    retracted: self.is_retracted(v, e),
                });
            }
            let ver = &self.versions[v as usize];
            facts.push(VersionFacts {
                modified: ver.modified,
                hash: ver.hash,
                deliveries,
            });
        }
        let r = resolve(&facts);
        for (k, &v) in chain.iter().enumerate() {
            self.versions[v as usize].tlp = r.version_tlp[k];
        }
        // 3. The tombstones: those standing for the same versions are kept.
        let before = self.tombstones.remove(&key).unwrap_or_default();
        let mut made: Vec<(u32, u32)> = Vec::with_capacity(r.tombstones.len());
        for &(b, level) in &r.tombstones {
            let base = chain[b];
            let t = match before.iter().find(|(_, tb)| *tb == base) {
                Some(&(t, _)) => {
                    self.versions[t as usize].tlp = level;
                    t
                }
                None => self.tombstone(base, level, next_da),
            };
            made.push((t, base));
        }
        let pick = |p: Option<Pick>| match p {
            Some(Pick::Version(k)) => chain[k],
            Some(Pick::Tombstone(k)) => made[k].0,
            None => NONE,
        };
        let picks: [u32; 5] = r.latest.map(pick);
        if !made.is_empty() {
            self.tombstones.insert(key, made);
        }
        // 4. Owner and latest, at every level.
        let (owner, _) = self.owner_and_best(entry.head, TlpLevel::Red);
        entry.owner_env = owner.or(earliest_any).unwrap_or(entry.owner_env);
        entry.latest = picks[4];
        for (i, level) in SHARED_LEVELS.iter().enumerate() {
            entry.shared[i] = picks[super::level_ix(*level)];
        }
        self.touched_latest.insert(key, picks);
        // 5. Into the digests.
        if entry.latest != NONE {
            self.set_latest(entry.latest, true);
        }
        for i in 0..SHARED_LEVELS.len() {
            if entry.shared[i] != NONE {
                let c = self.contribution_of(entry.shared[i]);
                self.shared[i].add(&c);
            }
        }
        self.by_id.insert(key, entry);
    }

    /// A new tombstone standing for version `base`, shared at `level` (a new
    /// `date_added`, so TAXII clients that paged past an older one get it).
    fn tombstone(&mut self, base: u32, level: TlpLevel, next_da: &mut i64) -> u32 {
        let b = self.versions[base as usize].clone();
        let handle = self.versions.len() as u32;
        let date_added = *next_da;
        *next_da += 1;
        self.last_date_added = date_added;
        self.versions.push(Version {
            uuid: b.uuid,
            modified: b.modified.saturating_add(TOMBSTONE_AFTER_US),
            date_added,
            hash: tombstone_hash(&b.hash),
            body_off: b.body_off,
            body_len: b.body_len,
            envelope: b.envelope,
            next_same_id: NONE,
            type_ix: b.type_ix,
            tlp: level,
            flags: REVOKED | RETRACTED | (b.flags & SPEC21),
        });
        self.by_type[b.type_ix as usize].push(handle);
        let origin = self.envelopes[b.envelope as usize].origin;
        self.by_origin[origin as usize].push(handle);
        handle
    }

    // ----- reads -----

    /// The retraction held at envelope index `env_ix`.
    pub fn retraction(&self, env_ix: u32) -> Option<&RetractionMeta> {
        self.retractions.get(&env_ix)
    }

    /// Number of retractions held.
    pub fn retraction_count(&self) -> usize {
        self.retractions.len()
    }

    /// The retracted deliveries of version `v`: each delivering envelope with the
    /// retraction that took it back.
    pub fn retracted_deliveries(&self, v: u32) -> Vec<(&EnvMeta, &EnvMeta)> {
        if self.retracted.is_empty() {
            return Vec::new();
        }
        self.all_delivery_envs(v)
            .filter_map(|e| {
                let r = *self.retracted.get(&(v, e))?;
                Some((
                    self.envelopes.get(e as usize)?,
                    self.envelopes.get(r as usize)?,
                ))
            })
            .collect()
    }

    /// For a tombstone, the version it stands for.
    pub fn tombstone_of(&self, h: u32) -> Option<u32> {
        let v = self.versions.get(h as usize)?;
        if !v.has(RETRACTED) {
            return None;
        }
        self.tombstones
            .get(&(v.type_ix, v.uuid))?
            .iter()
            .find(|(t, _)| *t == h)
            .map(|&(_, b)| b)
    }
}
