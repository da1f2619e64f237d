//! What a node reads from PostgreSQL to answer TAXII, its feed and publishes: object
//! versions in `date_added` order, all versions of a few objects, their bodies,
//! whether this member already published a version, envelopes in feed order. Each is
//! one statement that walks an index from a position and reads about as many rows as
//! it returns: no read scans the whole store or keeps anything per object.

use super::PgError;
use super::ingest::{level_code, level_of};
use super::store::PgStore;
use crate::stix::tlp::TlpLevel;
use crate::store::StoreError;
use crate::store::view::RETRACTED;
use uuid::Uuid;

fn q(what: &str) -> impl FnOnce(tokio_postgres::Error) -> StoreError + '_ {
    move |e| StoreError::Database(PgError::query(what, e))
}

/// One stored object version (or tombstone), without its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRow {
    /// The object's type.
    pub type_name: String,
    /// The object's uuid.
    pub uuid: u128,
    /// `modified` (µs; `i64::MIN` when the object has none).
    pub modified: i64,
    /// Content hash (the first 16 bytes of SHA-256 of the canonical body).
    pub hash: [u8; 16],
    /// When this node first held it (µs), unique per version.
    pub date_added: i64,
    /// The least restrictive level of a delivery of it.
    pub tlp: TlpLevel,
    /// `store::view` flags (`SPEC21`, `RETRACTED`, …).
    pub flags: u8,
    /// Bit L set when a reader at level L sees it as the object's latest.
    pub latest: u8,
}

impl VersionRow {
    /// Whether `flag` (a `store::view` flag) is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Whether a reader cleared up to `level` sees it as its object's latest.
    pub fn latest_at(&self, level: TlpLevel) -> bool {
        self.latest & (1 << level_code(level)) != 0
    }

    /// `type--uuid`.
    pub fn object_id(&self) -> String {
        format!("{}--{}", self.type_name, Uuid::from_u128(self.uuid))
    }
}

fn row_of(r: &tokio_postgres::Row) -> VersionRow {
    let mut hash = [0u8; 16];
    let h: &[u8] = r.get(3);
    if h.len() == 16 {
        hash.copy_from_slice(h);
    }
    VersionRow {
        type_name: r.get(0),
        uuid: r.get::<_, Uuid>(1).as_u128(),
        modified: r.get(2),
        hash,
        date_added: r.get(4),
        tlp: level_of(r.get(5)),
        flags: r.get::<_, i16>(6) as u8,
        latest: r.get::<_, i16>(7) as u8,
    }
}

const COLUMNS: &str = "v.type, v.uuid, v.modified, v.hash, v.date_added, v.tlp, v.flags, v.latest";

/// Which versions a page may be made of: the candidates of `server::taxii::select`,
/// from the same sources in `date_added` order (every version, a type's, a member's,
/// or the requested objects'), each with whether it is in the collection as the reader
/// sees it. Levels and collections are checked by the caller, so that every candidate
/// counts against its scan budget as on the embedded store, and no statement reads
/// more rows than it returns.
#[derive(Debug, Clone)]
pub struct Candidates<'a> {
    /// Only versions added after this `date_added` (µs).
    pub after: Option<i64>,
    /// The reader's clearance.
    pub max_tlp: TlpLevel,
    /// A member's collection (`None`: the consolidated one).
    pub origin: Option<&'a str>,
    /// Only these types (none: every type).
    pub types: &'a [String],
    /// Only these objects (none: every object).
    pub ids: &'a [(String, u128)],
    /// Whether each candidate comes with its stored body: a page of objects then
    /// needs no second statement for them.
    pub with_bodies: bool,
}

/// A candidate version and whether it is in the collection at the reader's level.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The version.
    pub row: VersionRow,
    /// Whether the collection holds it for the reader (`collections::contains`).
    pub in_collection: bool,
    /// Its stored body, when asked for ([`Candidates::with_bodies`]) and the
    /// reader's level allows the version; a tombstone's is served through
    /// [`served_body`].
    pub body: Option<Vec<u8>>,
}

/// The body a reader is served for version `row` stored with `body`: a tombstone's
/// is its base version's with `revoked: true` and its own `modified`
/// (`store::tombstone_body`).
pub fn served_body(row: &VersionRow, body: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    if row.has(RETRACTED) {
        crate::store::tombstone_body(&body, row.modified, row.date_added)
    } else {
        Ok(body)
    }
}

/// Whether version `v` is in member `$o`'s collection for a reader at level `$l`
/// (true for the consolidated one, `$o` NULL): a delivery by the member at or below
/// the level that was not retracted, or, for a tombstone, the member first delivered
/// the version it stands for in an envelope at or below the level
/// (`View::delivered_at`).
fn in_collection(o: &str, l: &str) -> String {
    format!(
        "({o}::text IS NULL
          OR EXISTS (SELECT 1 FROM deliveries d
                     WHERE d.uuid = v.uuid AND d.type = v.type AND d.modified = v.modified
                       AND d.hash = v.hash AND d.origin = {o} AND d.tlp <= {l}
                       AND d.retracted_by IS NULL)
          OR (v.flags & 16 <> 0 AND v.origin = {o}
              AND EXISTS (SELECT 1 FROM envelopes e WHERE e.id = v.envelope AND e.tlp <= {l})))"
    )
}

impl PgStore {
    /// Up to `n` candidates after `c.after`, in `date_added` order, and whether the
    /// source has no more after them.
    pub async fn candidates(
        &self,
        c: &Candidates<'_>,
        n: usize,
    ) -> Result<(Vec<Candidate>, bool), StoreError> {
        let conn = self.pool().get().await?;
        let after = c.after.unwrap_or(i64::MIN);
        let level = level_code(c.max_tlp);
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let member = in_collection("$2", "$3");
        // A body only where the reader's level allows the version: a page skips the
        // others, and a reader cleared for green should not draw red bodies over the
        // wire to have them dropped.
        let member = if c.with_bodies {
            format!("{member}, CASE WHEN v.tlp <= $3 THEN v.body END")
        } else {
            member
        };
        let run = |rows: Vec<tokio_postgres::Row>| -> Vec<Candidate> {
            rows.iter()
                .map(|r| Candidate {
                    row: row_of(r),
                    in_collection: r.get(8),
                    body: if c.with_bodies { r.get(9) } else { None },
                })
                .collect()
        };
        if !c.ids.is_empty() {
            let (types, uuids): (Vec<&str>, Vec<Uuid>) = c
                .ids
                .iter()
                .map(|(t, u)| (t.as_str(), Uuid::from_u128(*u)))
                .unzip();
            let sql = format!(
                "SELECT {COLUMNS}, {member} FROM versions v
                 WHERE (v.type, v.uuid) IN (SELECT * FROM unnest($5::text[], $6::uuid[]))
                   AND v.date_added > $1
                 ORDER BY v.date_added LIMIT $4"
            );
            let rows = conn
                .query(&sql, &[&after, &c.origin, &level, &limit, &types, &uuids])
                .await
                .map_err(q("reading the versions of objects"))?;
            let out = run(rows);
            let done = out.len() < n;
            return Ok((out, done));
        }
        if let Some(o) = c.origin {
            // What the member delivered (retracted or not, at any level), and the
            // tombstones of what it delivered first: `View::by_origin`.
            let sql = format!(
                "SELECT {COLUMNS}, {member} FROM versions v
                 JOIN (SELECT uuid, type, modified, hash FROM
                         ((SELECT uuid, type, modified, hash, date_added FROM deliveries
                           WHERE origin = $2 AND date_added > $1
                           ORDER BY date_added LIMIT $4)
                          UNION ALL
                          (SELECT uuid, type, modified, hash, date_added FROM versions
                           WHERE origin = $2 AND flags & 16 <> 0 AND date_added > $1
                           ORDER BY date_added LIMIT $4)) k0
                       GROUP BY uuid, type, modified, hash) k
                   ON v.uuid = k.uuid AND v.type = k.type AND v.modified = k.modified
                  AND v.hash = k.hash
                 ORDER BY v.date_added LIMIT $4"
            );
            let rows = conn
                .query(&sql, &[&after, &Some(o), &level, &limit])
                .await
                .map_err(q("reading a member's versions"))?;
            let out = run(rows);
            // A version delivered twice by the member comes once: only an empty
            // answer says the source is exhausted.
            let done = out.is_empty();
            return Ok((out, done));
        }
        if !c.types.is_empty() {
            // Each type's versions from its index, merged.
            let sql = format!(
                "SELECT {COLUMNS}, {member} FROM versions v
                 WHERE v.type = $5 AND v.date_added > $1
                 ORDER BY v.date_added LIMIT $4"
            );
            let mut out = Vec::new();
            let mut done = true;
            for t in c.types {
                let rows = conn
                    .query(&sql, &[&after, &c.origin, &level, &limit, t])
                    .await
                    .map_err(q("reading a type's versions"))?;
                done &= rows.len() < n;
                out.extend(run(rows));
            }
            out.sort_by_key(|c| c.row.date_added);
            if out.len() > n {
                out.truncate(n);
                done = false;
            }
            return Ok((out, done));
        }
        let sql = format!(
            "SELECT {COLUMNS}, {member} FROM versions v
             WHERE v.date_added > $1 ORDER BY v.date_added LIMIT $4"
        );
        let rows = conn
            .query(&sql, &[&after, &c.origin, &level, &limit])
            .await
            .map_err(q("reading a page of versions"))?;
        let out = run(rows);
        let done = out.len() < n;
        Ok((out, done))
    }

    /// Every version of these objects that a reader cleared up to `max_tlp` may see,
    /// each with whether it is in member `origin`'s collection for that reader
    /// (always true without an origin), oldest `modified` first, ties in
    /// `date_added` order.
    pub async fn versions_of(
        &self,
        objects: &[(String, u128)],
        max_tlp: TlpLevel,
        origin: Option<&str>,
    ) -> Result<Vec<(VersionRow, bool)>, StoreError> {
        if objects.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.pool().get().await?;
        let (types, uuids): (Vec<&str>, Vec<Uuid>) = objects
            .iter()
            .map(|(t, u)| (t.as_str(), Uuid::from_u128(*u)))
            .unzip();
        let member = in_collection("$3", "$4");
        let sql = format!(
            "SELECT {COLUMNS}, {member}
             FROM versions v
             WHERE (v.type, v.uuid) IN (SELECT * FROM unnest($1::text[], $2::uuid[]))
               AND v.tlp <= $4
             ORDER BY v.type, v.uuid, v.modified, v.date_added"
        );
        let rows = conn
            .query(&sql, &[&types, &uuids, &origin, &level_code(max_tlp)])
            .await
            .map_err(q("reading the versions of objects"))?;
        Ok(rows.iter().map(|r| (row_of(r), r.get(8))).collect())
    }

    /// For each `(type, uuid, modified)`, the content hashes of that version that
    /// `origin` delivered (a publish skips an object its member already published).
    pub async fn delivered_by(
        &self,
        origin: &str,
        versions: &[(String, u128, i64)],
    ) -> Result<Vec<Vec<[u8; 16]>>, StoreError> {
        if versions.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.pool().get().await?;
        let types: Vec<&str> = versions.iter().map(|v| v.0.as_str()).collect();
        let uuids: Vec<Uuid> = versions.iter().map(|v| Uuid::from_u128(v.1)).collect();
        let modified: Vec<i64> = versions.iter().map(|v| v.2).collect();
        let found = conn
            .query(
                "SELECT k.i, d.hash
                 FROM unnest($1::uuid[], $2::text[], $3::bigint[]) WITH ORDINALITY
                      AS k(uuid, type, modified, i)
                 JOIN deliveries d ON d.uuid = k.uuid AND d.type = k.type
                                  AND d.modified = k.modified
                 WHERE d.origin = $4 AND d.retracted_by IS NULL",
                &[&uuids, &types, &modified, &origin],
            )
            .await
            .map_err(q("finding versions already published"))?;
        let mut out = vec![Vec::new(); versions.len()];
        for r in &found {
            let i = usize::try_from(r.get::<_, i64>(0) - 1).unwrap_or(usize::MAX);
            let h: &[u8] = r.get(1);
            if let (Some(slot), Ok(h)) = (out.get_mut(i), <[u8; 16]>::try_from(h)) {
                slot.push(h);
            }
        }
        Ok(out)
    }

    /// Up to `n` envelopes from feed position `from` on, in position order, without
    /// their bodies.
    pub async fn feed_entries(&self, from: u64, n: usize) -> Result<Vec<FeedRow>, StoreError> {
        self.feed_rows(
            "SELECT ordinal, id, origin, tlp, recipients, received_from, object_count,
                    octet_length(body)
             FROM envelopes WHERE ordinal >= $1 ORDER BY ordinal LIMIT $2",
            i64::try_from(from).unwrap_or(i64::MAX),
            n,
        )
        .await
    }

    /// The last `n` envelopes, newest first, without their bodies.
    pub async fn last_feed_entries(&self, n: usize) -> Result<Vec<FeedRow>, StoreError> {
        self.feed_rows(
            "SELECT ordinal, id, origin, tlp, recipients, received_from, object_count,
                    octet_length(body)
             FROM envelopes WHERE ordinal >= $1 ORDER BY ordinal DESC LIMIT $2",
            0,
            n,
        )
        .await
    }

    async fn feed_rows(&self, sql: &str, from: i64, n: usize) -> Result<Vec<FeedRow>, StoreError> {
        let conn = self.pool().get().await?;
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let rows = conn
            .query(sql, &[&from, &limit])
            .await
            .map_err(q("reading the feed"))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(FeedRow {
                    ordinal: u64::try_from(r.get::<_, i64>(0)).ok()?,
                    id: <[u8; 32]>::try_from(r.get::<_, &[u8]>(1)).ok()?,
                    origin: r.get(2),
                    tlp: level_of(r.get(3)),
                    recipients: r.get(4),
                    received_from: r.get(5),
                    object_count: u32::try_from(r.get::<_, i32>(6)).unwrap_or(0),
                    len: usize::try_from(r.get::<_, i32>(7)).unwrap_or(0),
                })
            })
            .collect())
    }

    /// The verbatim bytes of these envelopes, in their order.
    pub async fn envelope_bodies(&self, ids: &[[u8; 32]]) -> Result<Vec<Vec<u8>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.pool().get().await?;
        let refs: Vec<&[u8]> = ids.iter().map(|i| &i[..]).collect();
        let rows = conn
            .query(
                "SELECT id, body FROM envelopes WHERE id = ANY($1)",
                &[&refs],
            )
            .await
            .map_err(q("reading envelopes"))?;
        let mut found: std::collections::HashMap<Vec<u8>, Vec<u8>> =
            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        ids.iter()
            .map(|id| {
                found
                    .remove(&id[..])
                    .ok_or_else(|| StoreError::Corrupt("a feed envelope vanished".into()))
            })
            .collect()
    }

    /// The last `date_added` given (an export reads up to it).
    pub async fn last_date_added(&self) -> Result<i64, StoreError> {
        let conn = self.pool().get().await?;
        Ok(conn
            .query_one("SELECT last_date_added FROM feed_head", &[])
            .await
            .map_err(q("reading the feed head"))?
            .get(0))
    }

    /// Up to `n` latest versions an export takes (see `ExportChunk`), with their
    /// bodies, in `date_added` order.
    pub async fn export_chunk(
        &self,
        c: &ExportChunk<'_>,
        n: usize,
    ) -> Result<Vec<(VersionRow, Vec<u8>)>, StoreError> {
        let conn = self.pool().get().await?;
        let level = level_code(c.max_tlp);
        let bit: i16 = 1 << level;
        let types: Option<Vec<&str>> =
            (!c.types.is_empty()).then(|| c.types.iter().map(String::as_str).collect());
        let origins: Option<Vec<&str>> =
            (!c.origins.is_empty()).then(|| c.origins.iter().map(String::as_str).collect());
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {COLUMNS}, v.body FROM versions v
             WHERE v.date_added > $1 AND v.date_added <= $2
               AND v.latest & $3 <> 0 AND v.tlp <= $4 AND v.flags & 16 = 0
               AND ($5::text[] IS NULL OR v.type = ANY($5))
               AND ($6::text[] IS NULL OR EXISTS (
                    SELECT 1 FROM deliveries d
                    WHERE d.uuid = v.uuid AND d.type = v.type AND d.modified = v.modified
                      AND d.hash = v.hash AND d.origin = ANY($6) AND d.tlp <= $4
                      AND d.retracted_by IS NULL))
             ORDER BY v.date_added LIMIT $7"
        );
        let rows = conn
            .query(
                &sql,
                &[&c.after, &c.end, &bit, &level, &types, &origins, &limit],
            )
            .await
            .map_err(q("reading versions to export"))?;
        Ok(rows.iter().map(|r| (row_of(r), r.get(8))).collect())
    }

    /// For each version, the distinct origins of its deliveries a reader at
    /// `max_tlp` may know of (at or below it, not retracted), in name order.
    pub async fn origins_of(
        &self,
        rows: &[VersionRow],
        max_tlp: TlpLevel,
    ) -> Result<Vec<Vec<String>>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.pool().get().await?;
        let uuids: Vec<Uuid> = rows.iter().map(|r| Uuid::from_u128(r.uuid)).collect();
        let types: Vec<&str> = rows.iter().map(|r| r.type_name.as_str()).collect();
        let modified: Vec<i64> = rows.iter().map(|r| r.modified).collect();
        let hashes: Vec<&[u8]> = rows.iter().map(|r| &r.hash[..]).collect();
        let found = conn
            .query(
                "SELECT DISTINCT k.i, d.origin
                 FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bytea[])
                      WITH ORDINALITY AS k(uuid, type, modified, hash, i)
                 JOIN deliveries d ON d.uuid = k.uuid AND d.type = k.type
                                  AND d.modified = k.modified AND d.hash = k.hash
                 WHERE d.tlp <= $5 AND d.retracted_by IS NULL
                 ORDER BY k.i, d.origin",
                &[&uuids, &types, &modified, &hashes, &level_code(max_tlp)],
            )
            .await
            .map_err(q("reading who reported what"))?;
        let mut out = vec![Vec::new(); rows.len()];
        for r in &found {
            let i = usize::try_from(r.get::<_, i64>(0) - 1).unwrap_or(usize::MAX);
            if let Some(slot) = out.get_mut(i) {
                slot.push(r.get(1));
            }
        }
        Ok(out)
    }

    /// For each observable key, the distinct origins reporting it, over the latest
    /// versions a reader at `max_tlp` sees and the deliveries it may know of.
    pub async fn origins_naming(
        &self,
        keys: &[String],
        max_tlp: TlpLevel,
    ) -> Result<std::collections::HashMap<String, std::collections::BTreeSet<String>>, StoreError>
    {
        let mut out: std::collections::HashMap<String, std::collections::BTreeSet<String>> =
            Default::default();
        if keys.is_empty() {
            return Ok(out);
        }
        let conn = self.pool().get().await?;
        let level = level_code(max_tlp);
        let bit: i16 = 1 << level;
        let rows = conn
            .query(
                "SELECT DISTINCT o.key, d.origin FROM observables o
                 JOIN versions v ON v.uuid = o.uuid AND v.type = o.type
                                AND v.modified = o.modified AND v.hash = o.hash
                 JOIN deliveries d ON d.uuid = v.uuid AND d.type = v.type
                                  AND d.modified = v.modified AND d.hash = v.hash
                 WHERE o.key = ANY($1) AND v.latest & $2 <> 0 AND v.tlp <= $3
                   AND d.tlp <= $3 AND d.retracted_by IS NULL",
                &[&keys, &bit, &level],
            )
            .await
            .map_err(q("reading who reported observables"))?;
        for r in &rows {
            out.entry(r.get(0)).or_default().insert(r.get(1));
        }
        Ok(out)
    }

    /// For each held envelope among `ids`: its origin, whether it is a retraction,
    /// its level and red recipients.
    pub async fn envelope_metas(
        &self,
        ids: &[[u8; 32]],
    ) -> Result<Vec<([u8; 32], String, bool, TlpLevel, Vec<String>)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.pool().get().await?;
        let refs: Vec<&[u8]> = ids.iter().map(|i| &i[..]).collect();
        let rows = conn
            .query(
                "SELECT id, origin, retraction, tlp, recipients FROM envelopes WHERE id = ANY($1)",
                &[&refs],
            )
            .await
            .map_err(q("reading envelopes"))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let id = <[u8; 32]>::try_from(r.get::<_, &[u8]>(0)).ok()?;
                Some((id, r.get(1), r.get(2), level_of(r.get(3)), r.get(4)))
            })
            .collect())
    }

    /// `origin`'s deliveries of the versions of an object, standing or retracted:
    /// (version's `modified`, envelope level, red recipients), in feed order.
    pub async fn deliveries_by(
        &self,
        type_name: &str,
        uuid: u128,
        origin: &str,
    ) -> Result<Vec<(i64, TlpLevel, Vec<String>)>, StoreError> {
        let conn = self.pool().get().await?;
        let rows = conn
            .query(
                "SELECT d.modified, e.tlp, e.recipients FROM deliveries d
                 JOIN envelopes e ON e.id = d.envelope
                 WHERE d.uuid = $1 AND d.type = $2 AND d.origin = $3
                 ORDER BY e.ordinal",
                &[&Uuid::from_u128(uuid), &type_name, &origin],
            )
            .await
            .map_err(q("reading an origin's deliveries"))?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), level_of(r.get(1)), r.get(2)))
            .collect())
    }
}

/// An envelope as the feed chooses it (without its bytes).
#[derive(Debug, Clone)]
pub struct FeedRow {
    /// Its feed position.
    pub ordinal: u64,
    /// Its id (SHA-256).
    pub id: [u8; 32],
    /// Its origin member.
    pub origin: String,
    /// Its level.
    pub tlp: TlpLevel,
    /// Red recipients.
    pub recipients: Vec<String>,
    /// The peer it came from (`local` for this member's own).
    pub received_from: String,
    /// Objects inside.
    pub object_count: u32,
    /// Length of its bytes.
    pub len: usize,
}

/// Which latest versions an export takes.
#[derive(Debug, Clone)]
pub struct ExportChunk<'a> {
    /// Added after this `date_added`.
    pub after: i64,
    /// Added at or before this one (the last when the export started).
    pub end: i64,
    /// The reader's clearance.
    pub max_tlp: TlpLevel,
    /// Only these types (none: every type).
    pub types: &'a [String],
    /// Only versions one of these members delivered (none: any).
    pub origins: &'a [String],
}
