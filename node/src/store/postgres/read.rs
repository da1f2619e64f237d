//! What a node reads from PostgreSQL to answer TAXII and publishes: object versions in
//! `date_added` order, all versions of a few objects, their bodies, and whether this
//! member already published a version. Each is one statement that walks an index
//! from a position: no read scans the whole store or keeps anything per object.

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

/// Which versions a page may be made of.
#[derive(Debug, Clone)]
pub struct Candidates<'a> {
    /// Only versions added after this `date_added` (µs).
    pub after: Option<i64>,
    /// The reader's clearance: versions no delivery of which is at or below it are
    /// never read.
    pub max_tlp: TlpLevel,
    /// Only versions this member delivered at or below `max_tlp` (a member's
    /// collection), or every version (`None`).
    pub origin: Option<&'a str>,
    /// Only these types (none: every type).
    pub types: &'a [String],
    /// Only these objects (none: every object).
    pub ids: &'a [(String, u128)],
}

impl PgStore {
    /// Up to `n` versions matching `c`, in `date_added` order.
    pub async fn candidates(
        &self,
        c: &Candidates<'_>,
        n: usize,
    ) -> Result<Vec<VersionRow>, StoreError> {
        let conn = self.pool().get().await?;
        let types: Option<Vec<&str>> =
            (!c.types.is_empty()).then(|| c.types.iter().map(String::as_str).collect());
        let (id_types, id_uuids): (Vec<&str>, Vec<Uuid>) = c
            .ids
            .iter()
            .map(|(t, u)| (t.as_str(), Uuid::from_u128(*u)))
            .unzip();
        let ids = (!c.ids.is_empty()).then_some(());
        let sql = format!(
            "SELECT {COLUMNS} FROM versions v
             WHERE v.date_added > $1 AND v.tlp <= $2
               AND ($3::text[] IS NULL OR v.type = ANY($3))
               AND ($4::boolean IS NULL
                    OR (v.type, v.uuid) IN (SELECT * FROM unnest($5::text[], $6::uuid[])))
               AND ($7::text IS NULL OR EXISTS (
                    SELECT 1 FROM deliveries d
                    WHERE d.uuid = v.uuid AND d.type = v.type AND d.modified = v.modified
                      AND d.hash = v.hash AND d.origin = $7 AND d.tlp <= $2))
             ORDER BY v.date_added
             LIMIT $8"
        );
        let after = c.after.unwrap_or(i64::MIN);
        let level = level_code(c.max_tlp);
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let rows = conn
            .query(
                &sql,
                &[
                    &after,
                    &level,
                    &types,
                    &ids.map(|()| true),
                    &id_types,
                    &id_uuids,
                    &c.origin,
                    &limit,
                ],
            )
            .await
            .map_err(q("reading a page of versions"))?;
        Ok(rows.iter().map(row_of).collect())
    }

    /// Every version of these objects that a reader cleared up to `max_tlp` may see,
    /// each with whether `origin` delivered it at or below `max_tlp` (always true
    /// without an origin), oldest `modified` first, ties in `date_added` order.
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
        let sql = format!(
            "SELECT {COLUMNS},
                    $3::text IS NULL OR EXISTS (
                        SELECT 1 FROM deliveries d
                        WHERE d.uuid = v.uuid AND d.type = v.type AND d.modified = v.modified
                          AND d.hash = v.hash AND d.origin = $3 AND d.tlp <= $4)
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

    /// The canonical bodies of these versions, in their order; a tombstone's is its
    /// base version's with `revoked: true` and its own `modified`
    /// (`store::tombstone_body`).
    pub async fn bodies(&self, rows: &[VersionRow]) -> Result<Vec<Vec<u8>>, StoreError> {
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
                "SELECT k.i, v.body
                 FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bytea[])
                      WITH ORDINALITY AS k(uuid, type, modified, hash, i)
                 JOIN versions v ON v.uuid = k.uuid AND v.type = k.type
                                AND v.modified = k.modified AND v.hash = k.hash",
                &[&uuids, &types, &modified, &hashes],
            )
            .await
            .map_err(q("reading object bodies"))?;
        let mut out: Vec<Option<Vec<u8>>> = vec![None; rows.len()];
        for r in &found {
            let i = usize::try_from(r.get::<_, i64>(0) - 1).unwrap_or(usize::MAX);
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(r.get(1));
            }
        }
        out.into_iter()
            .zip(rows)
            .map(|(body, row)| {
                let body = body.ok_or_else(|| {
                    StoreError::Corrupt(format!("no body for a version of {}", row.object_id()))
                })?;
                if row.has(RETRACTED) {
                    crate::store::tombstone_body(&body, row.modified, row.date_added)
                } else {
                    Ok(body)
                }
            })
            .collect()
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
                 WHERE d.origin = $4",
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
}
