//! Storing envelopes in PostgreSQL: one transaction per batch, acknowledged only once
//! it commits.
//!
//! The transaction first locks the feed head, which serialises every transaction that
//! adds envelopes: ordinals and `date_added` values are taken from it, so they commit
//! in the order they were given and a reader paging by either never passes a position
//! that commits later. Then, per object the batch touches, it loads that object's
//! versions, deliveries and tombstone (nothing per object is kept in memory between
//! batches), applies the batch's deliveries and retractions in order, chooses the
//! object's state again with [`resolve`], and writes back what changed, with the
//! digests moved by the difference.

use super::PgError;
use crate::stix::observable::IpBlock;
use crate::stix::tlp::{ALL_LEVELS, TlpLevel};
use crate::store::digest::{ViewDigest, contribution};
use crate::store::prepare::Prepared;
use crate::store::record::RetractionEntry;
use crate::store::resolve::{DeliveryFacts, Pick, VersionFacts, resolve};
use crate::store::view::{
    ApplyOutcome, CONFLICT, RETRACTED, REVOKED, SPEC21, TOMBSTONE_AFTER_US, tombstone_hash,
};
use crate::store::{IngestOutcome, Storable};
use std::collections::{BTreeMap, HashMap, HashSet};
use tokio_postgres::Transaction;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

/// An envelope to store: what the log and the view need of it.
#[derive(Debug)]
pub struct Incoming {
    /// The envelope id.
    pub id: [u8; 32],
    /// Origin member.
    pub origin: String,
    /// Signing key.
    pub key_id: String,
    /// Origin sequence number.
    pub seq: u64,
    /// `signed_at` (µs).
    pub signed_at: i64,
    /// Envelope level.
    pub tlp: TlpLevel,
    /// Red recipients.
    pub recipients: Vec<String>,
    /// Its canonical bytes, objects and retraction.
    pub prepared: Prepared,
    /// When it was received before, on another store (moving a node): from whom, when,
    /// and its first `date_added`, kept so that TAXII clients' `added_after` cursors
    /// stay true. `None` for an envelope received now.
    pub recorded: Option<Recorded>,
}

/// How an envelope was received, as another store recorded it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The peer it came from (`local` for own publishes).
    pub received_from: String,
    /// Receipt time (µs).
    pub received_at: i64,
    /// First `date_added` its new versions took; `None` takes a new one past every
    /// value handed out (an envelope given back by a rebuild: TAXII clients whose
    /// `added_after` passed its old values must see it).
    pub date_added_base: Option<i64>,
    /// Its feed position, kept when the view is rebuilt in place (peers' cursors
    /// into this node's feed stay true); `None` takes the next one.
    pub ordinal: Option<u64>,
}

impl Incoming {
    /// From a verified envelope and what [`crate::store::prepare::prepare`] made of it.
    pub fn new(env: &impl Storable, prepared: Prepared) -> Incoming {
        let h = env.header();
        Incoming {
            id: env.id().digest_bytes(),
            origin: h.origin.clone(),
            key_id: h.key_id.clone(),
            seq: h.seq,
            signed_at: h.signed_at_ts.as_micros(),
            tlp: h.tlp,
            recipients: h.recipients.clone(),
            prepared,
            recorded: None,
        }
    }
}

/// Level as stored (its position in [`ALL_LEVELS`]).
pub fn level_code(t: TlpLevel) -> i16 {
    ALL_LEVELS.iter().position(|l| *l == t).unwrap_or(4) as i16
}

/// The level a stored code names (red for anything unknown: the most restrictive).
pub fn level_of(code: i16) -> TlpLevel {
    usize::try_from(code)
        .ok()
        .and_then(|i| ALL_LEVELS.get(i).copied())
        .unwrap_or(TlpLevel::Red)
}

/// Digest rows: levels 0..4, then the shared clear and green ones.
const SHARED_ROWS: [i16; 2] = [10, 11];

type Key = (String, u128);

#[derive(Debug, Clone)]
struct Row {
    modified: i64,
    hash: [u8; 16],
    date_added: i64,
    tlp: TlpLevel,
    flags: i16,
    latest: i16,
    origin: String,
    envelope: [u8; 32],
    /// As loaded (`None` for rows this batch adds).
    stored: Option<(TlpLevel, i16, i16, i64)>,
    /// The body, for rows this batch adds (a tombstone's is copied from its base).
    body: Option<bytes::Bytes>,
}

impl Row {
    fn tombstone(&self) -> bool {
        self.flags & i16::from(RETRACTED) != 0
    }
}

#[derive(Debug, Clone)]
struct Del {
    version: usize,
    facts: DeliveryFacts,
    retracted_by: Option<[u8; 32]>,
    /// As loaded: its retraction (`None` for deliveries this batch adds).
    stored: Option<Option<[u8; 32]>>,
}

#[derive(Debug, Clone, Default)]
struct Object {
    rows: Vec<Row>,
    deliveries: Vec<Del>,
    /// Row indexes of the tombstones in force and of the versions they stand for.
    tombstones: Vec<(usize, usize)>,
    stored_tombstones: Vec<(usize, usize)>,
    /// Retractions held that name the object: (retraction, origin, version named).
    named_by: Vec<([u8; 32], String, Option<i64>)>,
    /// Whether this batch changed it.
    dirty: bool,
}

impl Object {
    fn row(&self, modified: i64, hash: &[u8; 16]) -> Option<usize> {
        self.rows
            .iter()
            .position(|r| !r.tombstone() && r.modified == modified && r.hash == *hash)
    }

    /// Whether retractions are involved: its state is then chosen after each
    /// delivery, so tombstones are made at the same moments on every backend.
    fn retracted_at_all(&self) -> bool {
        !self.tombstones.is_empty()
            || !self.named_by.is_empty()
            || self.deliveries.iter().any(|d| d.retracted_by.is_some())
    }
}

fn uuid_of(u: u128) -> Uuid {
    Uuid::from_u128(u)
}

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    if b.len() == N {
        out.copy_from_slice(b);
    }
    out
}

/// What a batch changes in the database, gathered before it is written.
struct Batch<'a> {
    objects: HashMap<Key, Object>,
    env_named: HashMap<[u8; 32], Vec<([u8; 32], String)>>,
    next_da: i64,
    digests: [ViewDigest; 7],
    digests_before: [ViewDigest; 7],
    observables: Vec<(String, Key, i64, [u8; 16])>,
    retractions: Vec<(&'a Incoming, &'a RetractionEntry)>,
}

impl Batch<'_> {
    /// Chooses an object's state again and moves the digests.
    fn settle(&mut self, key: &Key) {
        let Some(obj) = self.objects.get_mut(key) else {
            return;
        };
        let real: Vec<usize> = (0..obj.rows.len())
            .filter(|&i| !obj.rows[i].tombstone())
            .collect();
        let facts: Vec<VersionFacts> = real
            .iter()
            .map(|&i| VersionFacts {
                modified: obj.rows[i].modified,
                hash: obj.rows[i].hash,
                deliveries: obj
                    .deliveries
                    .iter()
                    .filter(|d| d.version == i)
                    .map(|d| DeliveryFacts {
                        retracted: d.retracted_by.is_some(),
                        ..d.facts.clone()
                    })
                    .collect(),
            })
            .collect();
        let r = resolve(&facts);
        // Out of the digests.
        for row in &obj.rows {
            contribute(&mut self.digests, key, row, false);
        }
        for (k, &i) in real.iter().enumerate() {
            let row = &mut obj.rows[i];
            row.tlp = r.version_tlp[k];
            if r.conflict[k] {
                row.flags |= i16::from(CONFLICT);
            }
            row.latest = 0;
        }
        for row in obj.rows.iter_mut().filter(|r| r.tombstone()) {
            row.latest = 0;
        }
        let before = std::mem::take(&mut obj.tombstones);
        let mut made = Vec::with_capacity(r.tombstones.len());
        for &(b, level) in &r.tombstones {
            let base = real[b];
            let t = match before.iter().find(|(_, tb)| *tb == base) {
                Some(&(t, _)) => {
                    obj.rows[t].tlp = level;
                    t
                }
                None => {
                    let b = obj.rows[base].clone();
                    let modified = b.modified.saturating_add(TOMBSTONE_AFTER_US);
                    let hash = tombstone_hash(&b.hash);
                    let date_added = self.next_da;
                    self.next_da += 1;
                    let flags = i16::from(REVOKED | RETRACTED) | (b.flags & i16::from(SPEC21));
                    // A tombstone once dropped and wanted again for the same version
                    // is the same row, given a new date_added.
                    match obj
                        .rows
                        .iter()
                        .position(|r| r.tombstone() && r.modified == modified && r.hash == hash)
                    {
                        Some(t) => {
                            obj.rows[t].date_added = date_added;
                            obj.rows[t].tlp = level;
                            t
                        }
                        None => {
                            obj.rows.push(Row {
                                modified,
                                hash,
                                date_added,
                                tlp: level,
                                flags,
                                latest: 0,
                                origin: b.origin.clone(),
                                envelope: b.envelope,
                                stored: None,
                                body: None,
                            });
                            obj.rows.len() - 1
                        }
                    }
                }
            };
            made.push((t, base));
        }
        for (bit, pick) in r.latest.iter().enumerate() {
            let row = match pick {
                Some(Pick::Version(k)) => real[*k],
                Some(Pick::Tombstone(k)) => made[*k].0,
                None => continue,
            };
            obj.rows[row].latest |= 1 << bit;
        }
        obj.tombstones = made;
        for row in &obj.rows {
            contribute(&mut self.digests, key, row, true);
        }
        obj.dirty = true;
    }
}

/// Adds (or removes) what a row counts for in the digests: its level's digest when it
/// is the latest a red reader sees, the shared ones when it is the latest at clear or
/// green.
fn contribute(d: &mut [ViewDigest; 7], key: &Key, row: &Row, add: bool) {
    if row.latest == 0 {
        return;
    }
    let c = contribution(&key.0, key.1, row.modified, &row.hash);
    let mut apply = |i: usize| {
        if add {
            d[i].add(&c);
        } else {
            d[i].remove(&c);
        }
    };
    if row.latest & (1 << 4) != 0 {
        apply(level_code(row.tlp) as usize);
    }
    if row.latest & 1 != 0 {
        apply(5);
    }
    if row.latest & 2 != 0 {
        apply(6);
    }
}

fn q(what: &str) -> impl FnOnce(tokio_postgres::Error) -> PgError + '_ {
    move |e| PgError::query(what, e)
}

/// An address block as PostgreSQL's `inet` reads it (`base/len`).
pub fn net_text(block: IpBlock) -> String {
    match block {
        IpBlock::V4 { base, len } => format!("{}/{len}", std::net::Ipv4Addr::from(base)),
        IpBlock::V6 { base, len } => format!("{}/{len}", std::net::Ipv6Addr::from(base)),
    }
}

/// What a node's own publishes are recorded as received from.
pub const LOCAL: &str = "local";

/// Stores `batch` in one transaction (see the module documentation).
pub async fn ingest(
    tx: &Transaction<'_>,
    batch: &[Incoming],
    received_from: &str,
    now: i64,
) -> Result<Vec<IngestOutcome>, PgError> {
    let head = tx
        .query_one(
            "SELECT next_ordinal, last_date_added FROM feed_head FOR UPDATE",
            &[],
        )
        .await
        .map_err(q("locking the feed head"))?;
    let (mut ordinal, last_da): (i64, i64) = (head.get(0), head.get(1));
    let ids: Vec<&[u8]> = batch.iter().map(|e| &e.id[..]).collect();
    let held: HashSet<[u8; 32]> = tx
        .query("SELECT id FROM envelopes WHERE id = ANY($1)", &[&ids])
        .await
        .map_err(q("finding held envelopes"))?
        .iter()
        .map(|r| arr(r.get::<_, &[u8]>(0)))
        .collect();
    let mut outcomes = vec![IngestOutcome::Duplicate; batch.len()];
    let mut seen = HashSet::new();
    let fresh: Vec<usize> = (0..batch.len())
        .filter(|&i| !held.contains(&batch[i].id) && seen.insert(batch[i].id))
        .collect();
    if fresh.is_empty() {
        return Ok(outcomes);
    }
    // This member's own, just signed: each number must be past every one stored, by
    // whichever process (a publish that lost its turn, its connection cut, must not
    // store a number another process has used since). Checked under the feed head's
    // lock, which every ingest takes first.
    if received_from == LOCAL {
        let own: Vec<&Incoming> = fresh
            .iter()
            .map(|&i| &batch[i])
            .filter(|e| e.recorded.is_none())
            .collect();
        let origins: Vec<&str> = own.iter().map(|e| e.origin.as_str()).collect();
        let stored: HashMap<String, i64> = tx
            .query(
                "SELECT origin, max_seq FROM origin_seqs WHERE origin = ANY($1)",
                &[&origins],
            )
            .await
            .map_err(q("reading sequence numbers"))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        if let Some(e) = own
            .iter()
            .find(|e| stored.get(&e.origin).is_some_and(|&m| e.seq as i64 <= m))
        {
            return Err(PgError::SequenceUsed {
                origin: e.origin.clone(),
                seq: e.seq,
            });
        }
    }

    // Every object the batch touches: those it delivers, those its retractions name,
    // and those the envelopes its retractions name delivered.
    let mut keys: HashSet<Key> = HashSet::new();
    let mut named_envs: Vec<&[u8]> = Vec::new();
    for &i in &fresh {
        let p = &batch[i].prepared;
        for o in &p.objects {
            keys.insert((o.type_name.clone(), o.uuid));
        }
        if let Some(r) = &p.retraction {
            for o in &r.objects {
                keys.insert((o.type_name.clone(), o.uuid));
            }
            named_envs.extend(r.envelopes.iter().map(|e| &e[..]));
        }
    }
    if !named_envs.is_empty() {
        for r in tx
            .query(
                "SELECT DISTINCT type, uuid FROM deliveries WHERE envelope = ANY($1)",
                &[&named_envs],
            )
            .await
            .map_err(q("finding retracted envelopes' objects"))?
        {
            keys.insert((r.get(0), r.get::<_, Uuid>(1).as_u128()));
        }
    }
    let mut b = Batch {
        objects: load_objects(tx, &keys).await?,
        env_named: HashMap::new(),
        next_da: 0,
        digests: [ViewDigest::default(); 7],
        digests_before: [ViewDigest::default(); 7],
        observables: Vec::new(),
        retractions: Vec::new(),
    };
    let fresh_ids: Vec<&[u8]> = fresh.iter().map(|&i| &batch[i].id[..]).collect();
    for r in tx
        .query(
            "SELECT target, retraction, origin FROM retracted_envelopes WHERE target = ANY($1)",
            &[&fresh_ids],
        )
        .await
        .map_err(q("finding retractions of new envelopes"))?
    {
        b.env_named
            .entry(arr(r.get::<_, &[u8]>(0)))
            .or_default()
            .push((arr(r.get::<_, &[u8]>(1)), r.get(2)));
    }
    for row in tx
        .query("SELECT level, l0, l1, l2, l3, count FROM digests", &[])
        .await
        .map_err(q("reading the digests"))?
    {
        let level: i16 = row.get(0);
        let ix = match level {
            0..=4 => level as usize,
            10 => 5,
            11 => 6,
            _ => continue,
        };
        let limb = |i: usize| row.get::<_, i64>(i) as u64;
        b.digests[ix] = ViewDigest::from_parts([limb(1), limb(2), limb(3), limb(4)], limb(5));
    }
    b.digests_before = b.digests;

    // Apply each envelope in order, as the embedded view does.
    let mut da_base = now.max(last_da + 1);
    let mut env_rows = Vec::with_capacity(fresh.len());
    let mut seqs: BTreeMap<&str, u64> = BTreeMap::new();
    for &i in &fresh {
        let env = &batch[i];
        let p = &env.prepared;
        let ord = match env.recorded.as_ref().and_then(|r| r.ordinal) {
            Some(o) => o as i64,
            None => {
                ordinal += 1;
                ordinal - 1
            }
        };
        let base = env
            .recorded
            .as_ref()
            .and_then(|r| r.date_added_base)
            .unwrap_or(da_base);
        da_base = da_base.max(base) + p.objects.len() as i64 + 1;
        env_rows.push((i, ord, base));
        let s = seqs.entry(env.origin.as_str()).or_insert(0);
        *s = (*s).max(env.seq);
        b.next_da = base.max(b.next_da.max(last_da + 1));
        let mut applied = ApplyOutcome::default();
        if let Some(r) = &p.retraction {
            apply_retraction(&mut b, env, r);
            b.retractions.push((env, r));
        } else {
            for o in &p.objects {
                deliver(&mut b, env, o, &mut applied);
            }
        }
        outcomes[i] = IngestOutcome::Accepted {
            ordinal: ord as u64,
            applied,
        };
    }
    // Objects without retractions are chosen once, at the end.
    let dirty: Vec<Key> = b
        .objects
        .iter()
        .filter(|(_, o)| o.dirty)
        .map(|(k, _)| k.clone())
        .collect();
    for k in &dirty {
        b.settle(k);
    }
    let versions_added = write(tx, batch, &b, &env_rows, received_from, now).await?;
    // Objects none of whose versions was stored before: new to the store.
    let objects_added = b
        .objects
        .values()
        .filter(|o| !o.rows.is_empty() && o.rows.iter().all(|r| r.stored.is_none()))
        .count() as i64;
    let last_assigned = b.next_da - 1;
    tx.execute(
        "UPDATE feed_head SET next_ordinal = $1, last_date_added = GREATEST(last_date_added, $2),
                              envelopes = envelopes + $3, versions = versions + $4,
                              objects = objects + $5, retractions = retractions + $6",
        &[
            &ordinal,
            &last_assigned,
            &(env_rows.len() as i64),
            &(versions_added as i64),
            &objects_added,
            &(b.retractions.len() as i64),
        ],
    )
    .await
    .map_err(q("moving the feed head"))?;
    let (origins, maxes): (Vec<&str>, Vec<i64>) =
        seqs.into_iter().map(|(o, s)| (o, s as i64)).unzip();
    tx.execute(
        "INSERT INTO origin_seqs (origin, max_seq) SELECT * FROM unnest($1::text[], $2::bigint[])
         ON CONFLICT (origin) DO UPDATE SET max_seq = GREATEST(origin_seqs.max_seq, excluded.max_seq)",
        &[&origins, &maxes],
    )
    .await
    .map_err(q("recording sequence numbers"))?;
    Ok(outcomes)
}

/// Adds one object delivery of envelope `env`.
fn deliver(
    b: &mut Batch<'_>,
    env: &Incoming,
    o: &crate::store::record::ObjectEntry,
    applied: &mut ApplyOutcome,
) {
    let key: Key = (o.type_name.clone(), o.uuid);
    let by_env = b
        .env_named
        .get(&env.id)
        .and_then(|rs| rs.iter().find(|(_, origin)| *origin == env.origin))
        .map(|(r, _)| *r);
    let obj = b.objects.entry(key.clone()).or_default();
    let retracted_by = by_env.or_else(|| {
        obj.named_by
            .iter()
            .find(|(_, origin, m)| *origin == env.origin && m.is_none_or(|m| m == o.modified))
            .map(|(r, _, _)| *r)
    });
    let version = match obj.row(o.modified, &o.hash) {
        Some(v) => {
            if obj
                .deliveries
                .iter()
                .any(|d| d.version == v && d.facts.envelope == env.id)
            {
                return;
            }
            applied.known_versions += 1;
            v
        }
        None => {
            let conflict = obj
                .rows
                .iter()
                .any(|r| !r.tombstone() && r.modified == o.modified);
            applied.new_versions += 1;
            applied.conflicts += u32::from(conflict);
            let date_added = b.next_da;
            b.next_da += 1;
            let mut flags = 0i16;
            if o.revoked {
                flags |= i16::from(REVOKED);
            }
            if o.spec_21 {
                flags |= i16::from(SPEC21);
            }
            let start = o.body_off as usize;
            let body = env.prepared.bytes.slice(start..start + o.body_len as usize);
            obj.rows.push(Row {
                modified: o.modified,
                hash: o.hash,
                date_added,
                tlp: env.tlp,
                flags,
                latest: 0,
                origin: env.origin.clone(),
                envelope: env.id,
                stored: None,
                body: Some(body),
            });
            for k in &o.obs_keys {
                b.observables
                    .push((k.clone(), key.clone(), o.modified, o.hash));
            }
            obj.rows.len() - 1
        }
    };
    obj.deliveries.push(Del {
        version,
        facts: DeliveryFacts {
            origin: env.origin.clone(),
            signed_at: env.signed_at,
            envelope: env.id,
            tlp: env.tlp.max(o.tlp),
            retracted: false,
        },
        retracted_by,
        stored: None,
    });
    obj.dirty = true;
    if obj.retracted_at_all() {
        b.settle(&key);
    }
}

/// Takes back the deliveries a retraction names, held now; notes what it names for
/// envelopes still to come.
fn apply_retraction(b: &mut Batch<'_>, env: &Incoming, r: &RetractionEntry) {
    let mut touched: Vec<Key> = Vec::new();
    for id in &r.envelopes {
        b.env_named
            .entry(*id)
            .or_default()
            .push((env.id, env.origin.clone()));
        for (key, obj) in b.objects.iter_mut() {
            let mut hit = false;
            for d in obj.deliveries.iter_mut() {
                if d.facts.envelope == *id && d.facts.origin == env.origin {
                    d.retracted_by.get_or_insert(env.id);
                    hit = true;
                }
            }
            if hit {
                touched.push(key.clone());
            }
        }
    }
    for o in &r.objects {
        let key: Key = (o.type_name.clone(), o.uuid);
        let obj = b.objects.entry(key.clone()).or_default();
        obj.named_by.push((env.id, env.origin.clone(), o.modified));
        let rows = &obj.rows;
        let mut hit = false;
        for d in obj.deliveries.iter_mut() {
            let row = &rows[d.version];
            if d.facts.origin == env.origin && o.modified.is_none_or(|m| m == row.modified) {
                d.retracted_by.get_or_insert(env.id);
                hit = true;
            }
        }
        if hit {
            touched.push(key);
        }
    }
    touched.sort();
    touched.dedup();
    for k in &touched {
        b.settle(k);
    }
}

/// Loads the stored state of every object in `keys`.
async fn load_objects(
    tx: &Transaction<'_>,
    keys: &HashSet<Key>,
) -> Result<HashMap<Key, Object>, PgError> {
    let mut objects: HashMap<Key, Object> = HashMap::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok(objects);
    }
    let types: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
    let uuids: Vec<Uuid> = keys.iter().map(|k| uuid_of(k.1)).collect();
    let params: [&(dyn ToSql + Sync); 2] = [&uuids, &types];
    const WANTED: &str = "(uuid, type) IN (SELECT * FROM unnest($1::uuid[], $2::text[]))";
    // Retractions may name objects not held yet: asked of every key.
    for r in tx
        .query(
            &format!(
                "SELECT type, uuid, retraction, origin, modified FROM retracted_objects WHERE {WANTED}"
            ),
            &params,
        )
        .await
        .map_err(q("loading retractions of objects"))?
    {
        let key: Key = (r.get(0), r.get::<_, Uuid>(1).as_u128());
        objects.entry(key).or_default().named_by.push((
            arr(r.get::<_, &[u8]>(2)),
            r.get(3),
            r.get(4),
        ));
    }
    for r in tx
        .query(
            &format!(
                "SELECT type, uuid, modified, hash, date_added, tlp, flags, latest, origin, envelope
                 FROM versions WHERE {WANTED}"
            ),
            &params,
        )
        .await
        .map_err(q("loading versions"))?
    {
        let key: Key = (r.get(0), r.get::<_, Uuid>(1).as_u128());
        let tlp = level_of(r.get(5));
        let (flags, latest, date_added): (i16, i16, i64) = (r.get(6), r.get(7), r.get(4));
        objects.entry(key).or_default().rows.push(Row {
            modified: r.get(2),
            hash: arr(r.get::<_, &[u8]>(3)),
            date_added,
            tlp,
            flags,
            latest,
            origin: r.get(8),
            envelope: arr(r.get::<_, &[u8]>(9)),
            stored: Some((tlp, flags, latest, date_added)),
            body: None,
        });
    }
    // Deliveries and tombstones exist only beside versions: asked only of the objects
    // that have some (in a bulk of new objects, none: half the index probes saved).
    let (types, uuids): (Vec<String>, Vec<Uuid>) = objects
        .iter()
        .filter(|(_, o)| !o.rows.is_empty())
        .map(|(k, _)| (k.0.clone(), uuid_of(k.1)))
        .unzip();
    if uuids.is_empty() {
        return Ok(objects);
    }
    let params: [&(dyn ToSql + Sync); 2] = [&uuids, &types];
    for r in tx
        .query(
            &format!(
                "SELECT type, uuid, modified, hash, envelope, origin, signed_at, tlp, retracted_by
                 FROM deliveries WHERE {WANTED}"
            ),
            &params,
        )
        .await
        .map_err(q("loading deliveries"))?
    {
        let key: Key = (r.get(0), r.get::<_, Uuid>(1).as_u128());
        let Some(obj) = objects.get_mut(&key) else {
            continue;
        };
        let Some(version) = obj.row(r.get(2), &arr(r.get::<_, &[u8]>(3))) else {
            continue;
        };
        let retracted_by = r.get::<_, Option<&[u8]>>(8).map(arr);
        obj.deliveries.push(Del {
            version,
            facts: DeliveryFacts {
                origin: r.get(5),
                signed_at: r.get(6),
                envelope: arr(r.get::<_, &[u8]>(4)),
                tlp: level_of(r.get(7)),
                retracted: false,
            },
            retracted_by,
            stored: Some(retracted_by),
        });
    }
    for r in tx
        .query(
            &format!(
                "SELECT type, uuid, modified, hash, base_modified, base_hash FROM tombstones WHERE {WANTED}"
            ),
            &params,
        )
        .await
        .map_err(q("loading tombstones"))?
    {
        let key: Key = (r.get(0), r.get::<_, Uuid>(1).as_u128());
        let Some(obj) = objects.get_mut(&key) else {
            continue;
        };
        let (m, h): (i64, [u8; 16]) = (r.get(2), arr(r.get::<_, &[u8]>(3)));
        let t = obj
            .rows
            .iter()
            .position(|x| x.tombstone() && x.modified == m && x.hash == h);
        let base = obj.row(r.get(4), &arr(r.get::<_, &[u8]>(5)));
        if let (Some(t), Some(base)) = (t, base) {
            obj.tombstones.push((t, base));
            obj.stored_tombstones.push((t, base));
        }
    }
    Ok(objects)
}

/// Writes what the batch changed; returns how many versions (tombstones included) it
/// added.
async fn write(
    tx: &Transaction<'_>,
    batch: &[Incoming],
    b: &Batch<'_>,
    env_rows: &[(usize, i64, i64)],
    received_from: &str,
    received_at: i64,
) -> Result<u64, PgError> {
    let mut versions_added = 0;
    // The evidence log.
    {
        let mut id = Vec::new();
        let mut ordinal = Vec::new();
        let mut origin = Vec::new();
        let mut key_id = Vec::new();
        let mut seq = Vec::new();
        let mut signed_at = Vec::new();
        let mut tlp = Vec::new();
        let mut recipients = Vec::new();
        let mut da_base = Vec::new();
        let mut retraction = Vec::new();
        let mut count = Vec::new();
        let mut body = Vec::new();
        let mut from = Vec::new();
        let mut at = Vec::new();
        for &(i, ord, base) in env_rows {
            let e = &batch[i];
            id.push(&e.id[..]);
            ordinal.push(ord);
            origin.push(e.origin.as_str());
            key_id.push(e.key_id.as_str());
            seq.push(e.seq as i64);
            signed_at.push(e.signed_at);
            tlp.push(level_code(e.tlp));
            // Arrays of arrays must be rectangular in PostgreSQL: recipients travel
            // as one comma-joined text each (member names hold no comma).
            recipients.push(e.recipients.join(","));
            da_base.push(base);
            retraction.push(e.prepared.retraction.is_some());
            count.push(e.prepared.objects.len() as i32);
            body.push(&e.prepared.bytes[..]);
            match &e.recorded {
                Some(r) => {
                    from.push(r.received_from.as_str());
                    at.push(r.received_at);
                }
                None => {
                    from.push(received_from);
                    at.push(received_at);
                }
            }
        }
        tx.execute(
            "INSERT INTO envelopes (id, ordinal, origin, key_id, seq, signed_at, tlp, recipients,
                 received_from, received_at, date_added_base, retraction, object_count, body)
             SELECT id, ord, origin, key_id, seq, signed_at, tlp,
                    CASE WHEN r = '' THEN ARRAY[]::text[] ELSE string_to_array(r, ',') END,
                    f, a, da, ret, n, body
             FROM unnest($1::bytea[], $2::bigint[], $3::text[], $4::text[], $5::bigint[],
                         $6::bigint[], $7::smallint[], $8::text[], $11::bigint[],
                         $12::boolean[], $13::integer[], $14::bytea[], $9::text[],
                         $10::bigint[])
                  AS t(id, ord, origin, key_id, seq, signed_at, tlp, r, da, ret, n, body, f, a)",
            &[
                &id,
                &ordinal,
                &origin,
                &key_id,
                &seq,
                &signed_at,
                &tlp,
                &recipients,
                &from,
                &at,
                &da_base,
                &retraction,
                &count,
                &body,
            ],
        )
        .await
        .map_err(q("logging envelopes"))?;
    }

    // Versions: new rows, and stored rows whose state changed.
    let mut new_v = VersionCols::default();
    let mut changed = VersionCols::default();
    let mut tomb_copies: Vec<(&Key, &Row, &Row)> = Vec::new();
    let mut new_d = DeliveryCols::default();
    let mut retracted_d = DeliveryCols::default();
    let mut tomb_set: Vec<(&Key, &Row, &Row)> = Vec::new();
    let mut tomb_drop: Vec<&Key> = Vec::new();
    for (key, obj) in &b.objects {
        for row in &obj.rows {
            match (&row.stored, &row.body) {
                (None, Some(_)) => new_v.push(key, row),
                (None, None) => {
                    // A new tombstone: its body is copied from the version it stands for.
                    if let Some(&(_, base)) = obj.tombstones.iter().find(|(t, _)| {
                        obj.rows[*t].modified == row.modified && obj.rows[*t].hash == row.hash
                    }) {
                        tomb_copies.push((key, row, &obj.rows[base]));
                    }
                }
                (Some(s), _) if *s != (row.tlp, row.flags, row.latest, row.date_added) => {
                    changed.push(key, row)
                }
                _ => {}
            }
        }
        for d in &obj.deliveries {
            let row = &obj.rows[d.version];
            match d.stored {
                None => new_d.push(key, row, d),
                Some(s) if s != d.retracted_by => retracted_d.push(key, row, d),
                _ => {}
            }
        }
        if obj.tombstones != obj.stored_tombstones {
            tomb_drop.push(key);
            for &(t, base) in &obj.tombstones {
                tomb_set.push((key, &obj.rows[t], &obj.rows[base]));
            }
        }
    }
    if !new_v.uuid.is_empty() {
        let bodies: Vec<&[u8]> = new_v.body.iter().map(|b| &b[..]).collect();
        versions_added += tx
            .execute(
                "INSERT INTO versions (uuid, type, modified, hash, date_added, tlp, flags, latest,
                                       origin, envelope, body)
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bytea[],
                                      $5::bigint[], $6::smallint[], $7::smallint[],
                                      $8::smallint[], $9::text[], $10::bytea[], $11::bytea[])",
                &[
                    &new_v.uuid,
                    &new_v.type_,
                    &new_v.modified,
                    &new_v.hash_refs(),
                    &new_v.date_added,
                    &new_v.tlp,
                    &new_v.flags,
                    &new_v.latest,
                    &new_v.origin,
                    &new_v.envelope_refs(),
                    &bodies,
                ],
            )
            .await
            .map_err(q("storing versions"))?;
    }
    for (key, t, base) in &tomb_copies {
        versions_added += tx
            .execute(
                "INSERT INTO versions (uuid, type, modified, hash, date_added, tlp, flags, latest,
                                       origin, envelope, body)
                 SELECT uuid, type, $5, $6, $7, $8, $9, $10, origin, envelope, body
                 FROM versions WHERE uuid = $1 AND type = $2 AND modified = $3 AND hash = $4",
                &[
                    &uuid_of(key.1),
                    &key.0,
                    &base.modified,
                    &&base.hash[..],
                    &t.modified,
                    &&t.hash[..],
                    &t.date_added,
                    &level_code(t.tlp),
                    &t.flags,
                    &t.latest,
                ],
            )
            .await
            .map_err(q("storing a tombstone"))?;
    }
    if !changed.uuid.is_empty() {
        tx.execute(
            "UPDATE versions v SET tlp = c.tlp, flags = c.flags, latest = c.latest,
                                   date_added = c.date_added
             FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bytea[], $5::bigint[],
                         $6::smallint[], $7::smallint[], $8::smallint[])
                  AS c(uuid, type, modified, hash, date_added, tlp, flags, latest)
             WHERE v.uuid = c.uuid AND v.type = c.type AND v.modified = c.modified
               AND v.hash = c.hash",
            &[
                &changed.uuid,
                &changed.type_,
                &changed.modified,
                &changed.hash_refs(),
                &changed.date_added,
                &changed.tlp,
                &changed.flags,
                &changed.latest,
            ],
        )
        .await
        .map_err(q("updating versions"))?;
    }
    if !new_d.uuid.is_empty() {
        tx.execute(
            "INSERT INTO deliveries (uuid, type, modified, hash, envelope, origin, signed_at, tlp,
                                     retracted_by, date_added)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bytea[], $5::bytea[],
                                  $6::text[], $7::bigint[], $8::smallint[], $9::bytea[],
                                  $10::bigint[])",
            &[
                &new_d.uuid,
                &new_d.type_,
                &new_d.modified,
                &new_d.hash_refs(),
                &new_d.envelope_refs(),
                &new_d.origin,
                &new_d.signed_at,
                &new_d.tlp,
                &new_d.retracted_refs(),
                &new_d.date_added,
            ],
        )
        .await
        .map_err(q("storing deliveries"))?;
    }
    if !retracted_d.uuid.is_empty() {
        tx.execute(
            "UPDATE deliveries d SET retracted_by = c.r
             FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bytea[], $5::bytea[], $6::bytea[])
                  AS c(uuid, type, modified, hash, envelope, r)
             WHERE d.uuid = c.uuid AND d.type = c.type AND d.modified = c.modified
               AND d.hash = c.hash AND d.envelope = c.envelope",
            &[
                &retracted_d.uuid,
                &retracted_d.type_,
                &retracted_d.modified,
                &retracted_d.hash_refs(),
                &retracted_d.envelope_refs(),
                &retracted_d.retracted_refs(),
            ],
        )
        .await
        .map_err(q("retracting deliveries"))?;
    }
    for key in &tomb_drop {
        tx.execute(
            "DELETE FROM tombstones WHERE uuid = $1 AND type = $2",
            &[&uuid_of(key.1), &key.0],
        )
        .await
        .map_err(q("dropping a tombstone"))?;
    }
    for (key, t, base) in &tomb_set {
        tx.execute(
            "INSERT INTO tombstones (uuid, type, modified, hash, base_modified, base_hash)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &uuid_of(key.1),
                &key.0,
                &t.modified,
                &&t.hash[..],
                &base.modified,
                &&base.hash[..],
            ],
        )
        .await
        .map_err(q("recording a tombstone"))?;
    }
    if !b.observables.is_empty() {
        let mut k = Vec::new();
        let mut u = Vec::new();
        let mut t = Vec::new();
        let mut m = Vec::new();
        let mut h = Vec::new();
        let mut net: Vec<Option<String>> = Vec::new();
        for (key, (ty, uu), modified, hash) in &b.observables {
            k.push(key.as_str());
            u.push(uuid_of(*uu));
            t.push(ty.as_str());
            m.push(*modified);
            h.push(&hash[..]);
            net.push(IpBlock::of_key(key).map(net_text));
        }
        tx.execute(
            "INSERT INTO observables (key, uuid, type, modified, hash, net)
             SELECT k, u, t, m, h, n::inet
             FROM unnest($1::text[], $2::uuid[], $3::text[], $4::bigint[], $5::bytea[], $6::text[])
                  AS x(k, u, t, m, h, n)
             ON CONFLICT DO NOTHING",
            &[&k, &u, &t, &m, &h, &net],
        )
        .await
        .map_err(q("indexing observables"))?;
    }
    for (env, r) in &b.retractions {
        tx.execute(
            "INSERT INTO retractions (envelope, origin, reason, note, targets) VALUES ($1, $2, $3, $4, $5)",
            &[
                &&env.id[..],
                &env.origin,
                &i16::from(r.reason.as_byte()),
                &r.note,
                &((r.envelopes.len() + r.objects.len()) as i32),
            ],
        )
        .await
        .map_err(q("recording a retraction"))?;
        let targets: Vec<&[u8]> = r.envelopes.iter().map(|e| &e[..]).collect();
        tx.execute(
            "INSERT INTO retracted_envelopes (target, retraction, origin)
             SELECT t, $2, $3 FROM unnest($1::bytea[]) AS t ON CONFLICT DO NOTHING",
            &[&targets, &&env.id[..], &env.origin],
        )
        .await
        .map_err(q("recording retracted envelopes"))?;
        let u: Vec<Uuid> = r.objects.iter().map(|o| uuid_of(o.uuid)).collect();
        let t: Vec<&str> = r.objects.iter().map(|o| o.type_name.as_str()).collect();
        let m: Vec<Option<i64>> = r.objects.iter().map(|o| o.modified).collect();
        tx.execute(
            "INSERT INTO retracted_objects (uuid, type, retraction, origin, modified)
             SELECT u, t, $4, $5, m FROM unnest($1::uuid[], $2::text[], $3::bigint[]) AS x(u, t, m)",
            &[&u, &t, &m, &&env.id[..], &env.origin],
        )
        .await
        .map_err(q("recording retracted objects"))?;
    }
    for (ix, (now, before)) in b.digests.iter().zip(&b.digests_before).enumerate() {
        if now == before {
            continue;
        }
        let level = if ix < 5 {
            ix as i16
        } else {
            SHARED_ROWS[ix - 5]
        };
        let l = now.limbs();
        tx.execute(
            "UPDATE digests SET l0 = $2, l1 = $3, l2 = $4, l3 = $5, count = $6 WHERE level = $1",
            &[
                &level,
                &(l[0] as i64),
                &(l[1] as i64),
                &(l[2] as i64),
                &(l[3] as i64),
                &(now.count as i64),
            ],
        )
        .await
        .map_err(q("moving the digests"))?;
    }
    Ok(versions_added)
}

#[derive(Default)]
struct VersionCols {
    uuid: Vec<Uuid>,
    type_: Vec<String>,
    modified: Vec<i64>,
    hash: Vec<[u8; 16]>,
    date_added: Vec<i64>,
    tlp: Vec<i16>,
    flags: Vec<i16>,
    latest: Vec<i16>,
    origin: Vec<String>,
    envelope: Vec<[u8; 32]>,
    body: Vec<bytes::Bytes>,
}

impl VersionCols {
    fn push(&mut self, key: &Key, r: &Row) {
        self.uuid.push(uuid_of(key.1));
        self.type_.push(key.0.clone());
        self.modified.push(r.modified);
        self.hash.push(r.hash);
        self.date_added.push(r.date_added);
        self.tlp.push(level_code(r.tlp));
        self.flags.push(r.flags);
        self.latest.push(r.latest);
        self.origin.push(r.origin.clone());
        self.envelope.push(r.envelope);
        if let Some(b) = &r.body {
            self.body.push(b.clone());
        }
    }
    fn hash_refs(&self) -> Vec<&[u8]> {
        self.hash.iter().map(|h| &h[..]).collect()
    }
    fn envelope_refs(&self) -> Vec<&[u8]> {
        self.envelope.iter().map(|h| &h[..]).collect()
    }
}

#[derive(Default)]
struct DeliveryCols {
    uuid: Vec<Uuid>,
    type_: Vec<String>,
    modified: Vec<i64>,
    hash: Vec<[u8; 16]>,
    envelope: Vec<[u8; 32]>,
    origin: Vec<String>,
    signed_at: Vec<i64>,
    tlp: Vec<i16>,
    retracted_by: Vec<Option<[u8; 32]>>,
    date_added: Vec<i64>,
}

impl DeliveryCols {
    fn push(&mut self, key: &Key, r: &Row, d: &Del) {
        self.date_added.push(r.date_added);
        self.uuid.push(uuid_of(key.1));
        self.type_.push(key.0.clone());
        self.modified.push(r.modified);
        self.hash.push(r.hash);
        self.envelope.push(d.facts.envelope);
        self.origin.push(d.facts.origin.clone());
        self.signed_at.push(d.facts.signed_at);
        self.tlp.push(level_code(d.facts.tlp));
        self.retracted_by.push(d.retracted_by);
    }
    fn hash_refs(&self) -> Vec<&[u8]> {
        self.hash.iter().map(|h| &h[..]).collect()
    }
    fn envelope_refs(&self) -> Vec<&[u8]> {
        self.envelope.iter().map(|h| &h[..]).collect()
    }
    fn retracted_refs(&self) -> Vec<Option<&[u8]>> {
        self.retracted_by
            .iter()
            .map(|r| r.as_ref().map(|r| &r[..]))
            .collect()
    }
}
