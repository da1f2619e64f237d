//! "Who reported this?" on PostgreSQL: the lookups and provenance of `store::lookup`,
//! by statements, with the same rules: every latest version a reader may see that
//! names the value (for an address, also every network containing it; for a network,
//! also every address and smaller network inside it, at most `RANGE_LIMIT`), and
//! every version of an object, each with the deliveries (and retractions) the reader
//! may know of.

use super::PgError;
use super::ingest::{level_code, level_of, net_text};
use super::store::PgStore;
use crate::envelope::EnvelopeId;
use crate::stix::observable::{IpBlock, ObservableKey};
use crate::stix::timestamp::Timestamp;
use crate::stix::tlp::TlpLevel;
use crate::store::StoreError;
use crate::store::lookup::{
    LookupHit, LookupResult, ObjectProvenance, RANGE_LIMIT, Reporter, RetractedDelivery,
    RetractionInfo, VersionProvenance, version_text,
};
use crate::store::view::{CONFLICT, RETRACTED, REVOKED};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap, HashSet};
use uuid::Uuid;

fn q(what: &str) -> impl FnOnce(tokio_postgres::Error) -> StoreError + '_ {
    move |e| StoreError::Database(PgError::query(what, e))
}

/// A version's identity: (type, uuid, modified, hash).
type VersionKey = (String, Uuid, i64, Vec<u8>);

impl PgStore {
    /// Looks observables up (see `Store::lookup`).
    pub async fn lookup(
        &self,
        values: &[String],
        max_tlp: TlpLevel,
    ) -> Result<Vec<LookupResult>, StoreError> {
        let c = self.pool().get().await?;
        let level = level_code(max_tlp);
        let bit: i16 = 1 << level;
        let mut results = Vec::with_capacity(values.len());
        for value in values {
            let key = match LookupResult::key_of(value) {
                Ok(k) => k,
                Err(refused) => {
                    results.push(refused);
                    continue;
                }
            };
            let mut keys = vec![key.clone()];
            keys.extend(key.containing_networks());
            let mut truncated = false;
            if let Some(block) = key.ip_block() {
                // The networks and addresses inside, in address order.
                let limit = i64::try_from(RANGE_LIMIT + 1).unwrap_or(i64::MAX);
                let inside: Vec<String> = c
                    .query(
                        "SELECT key FROM (SELECT DISTINCT net, key FROM observables
                                          WHERE net <<= $1::text::inet) k
                         ORDER BY net LIMIT $2",
                        &[&net_text(block), &limit],
                    )
                    .await
                    .map_err(q("finding the networks inside a network"))?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                truncated = inside.len() > RANGE_LIMIT;
                keys.extend(
                    inside
                        .iter()
                        .take(RANGE_LIMIT)
                        .filter_map(|k| IpBlock::of_key(k))
                        .filter(|b| *b != block)
                        .map(|b| b.key()),
                );
            }
            let texts: Vec<&str> = keys.iter().map(ObservableKey::as_str).collect();
            // Latest versions (never a tombstone: tombstones name no observable).
            let rows = c
                .query(
                    "SELECT o.key, v.type, v.uuid, v.modified, v.hash, v.tlp, v.flags, v.body
                     FROM observables o
                     JOIN versions v ON v.uuid = o.uuid AND v.type = o.type
                                    AND v.modified = o.modified AND v.hash = o.hash
                     WHERE o.key = ANY($1) AND v.latest & $2 <> 0 AND v.tlp <= $3
                       AND v.flags & 16 = 0
                     ORDER BY array_position($1, o.key), v.date_added",
                    &[&texts, &bit, &level],
                )
                .await
                .map_err(q("looking up observables"))?;
            let mut seen: HashSet<VersionKey> = HashSet::new();
            let mut found = Vec::new();
            for r in &rows {
                let k: VersionKey = (r.get(1), r.get(2), r.get(3), r.get(4));
                if seen.insert(k.clone()) {
                    found.push((r, k));
                }
            }
            let reporters = self
                .reporters(&c, found.iter().map(|(_, k)| k), level)
                .await?;
            let mut origins = BTreeSet::new();
            let mut hits = Vec::with_capacity(found.len());
            for (r, k) in found {
                let body: &[u8] = r.get(7);
                let obj: Value =
                    serde_json::from_slice(body).map_err(|source| StoreError::Json {
                        what: format!("stored object {}--{}", k.0, k.1),
                        source,
                    })?;
                let provenance = reporters.get(&k).cloned().unwrap_or_default();
                let mut hit_origins: Vec<String> =
                    provenance.iter().map(|p| p.origin.clone()).collect();
                hit_origins.sort_unstable();
                hit_origins.dedup();
                origins.extend(hit_origins.iter().cloned());
                let matched = keys
                    .iter()
                    .find(|x| x.as_str() == r.get::<_, &str>(0))
                    .unwrap_or(&key);
                let flags = r.get::<_, i16>(6) as u8;
                hits.push(LookupHit::of(
                    &obj,
                    &k.0,
                    matched,
                    (level_of(r.get(5)), flags & REVOKED != 0),
                    hit_origins,
                    provenance,
                ));
            }
            results.push(LookupResult {
                query: value.clone(),
                key: Some(key.to_string()),
                error: None,
                corroboration: origins.len(),
                hits,
                truncated,
            });
        }
        Ok(results)
    }

    /// The deliveries of these versions a reader at `level` may know of (at or below
    /// it, not retracted), first delivery first.
    async fn reporters(
        &self,
        c: &deadpool_postgres::Object,
        versions: impl Iterator<Item = &VersionKey>,
        level: i16,
    ) -> Result<HashMap<VersionKey, Vec<Reporter>>, StoreError> {
        let (mut t, mut u, mut m, mut h) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (ty, uu, mo, ha) in versions {
            t.push(ty.as_str());
            u.push(*uu);
            m.push(*mo);
            h.push(ha.as_slice());
        }
        if t.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = c
            .query(
                "SELECT d.type, d.uuid, d.modified, d.hash,
                        e.origin, e.key_id, e.id, e.seq, e.signed_at, e.received_from,
                        e.received_at
                 FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::bytea[])
                      AS k(type, uuid, modified, hash)
                 JOIN deliveries d ON d.uuid = k.uuid AND d.type = k.type
                                  AND d.modified = k.modified AND d.hash = k.hash
                 JOIN envelopes e ON e.id = d.envelope
                 WHERE d.retracted_by IS NULL AND e.tlp <= $5
                 ORDER BY e.ordinal",
                &[&t, &u, &m, &h, &level],
            )
            .await
            .map_err(q("reading who reported what"))?;
        let mut out: HashMap<VersionKey, Vec<Reporter>> = HashMap::new();
        for r in &rows {
            let id = <[u8; 32]>::try_from(r.get::<_, &[u8]>(6))
                .map_err(|_| StoreError::Corrupt("an envelope id is not 32 bytes".into()))?;
            out.entry((r.get(0), r.get(1), r.get(2), r.get(3)))
                .or_default()
                .push(Reporter {
                    origin: r.get(4),
                    key_id: r.get(5),
                    envelope_id: EnvelopeId::from_digest_bytes(&id).to_string(),
                    seq: u64::try_from(r.get::<_, i64>(7)).unwrap_or(0),
                    signed_at: Timestamp::from_micros(r.get(8)).to_millis_string(),
                    received_from: r.get(9),
                    received_at: Timestamp::from_micros(r.get(10)).to_micros_string(),
                });
        }
        Ok(out)
    }

    /// Every version of an object a reader at `max_tlp` may see, with provenance
    /// (see `Store::provenance`); `None` when there is none.
    pub async fn provenance(
        &self,
        id: &str,
        max_tlp: TlpLevel,
    ) -> Result<Option<ObjectProvenance>, StoreError> {
        let Some((t, uuid)) = crate::store::prepare::split_id(id) else {
            return Ok(None);
        };
        let uuid = Uuid::from_u128(uuid);
        let c = self.pool().get().await?;
        let level = level_code(max_tlp);
        let all = c
            .query(
                "SELECT modified, hash, date_added, tlp, flags, latest FROM versions
                 WHERE uuid = $1 AND type = $2
                 ORDER BY modified, date_added",
                &[&uuid, &t],
            )
            .await
            .map_err(q("reading an object's versions"))?;
        let versions: Vec<&tokio_postgres::Row> =
            all.iter().filter(|v| v.get::<_, i16>(3) <= level).collect();
        if versions.is_empty() {
            return Ok(None);
        }
        // Every delivery of the object, with the retraction that took it back.
        let deliveries = c
            .query(
                "SELECT d.modified, d.hash,
                        e.origin, e.key_id, e.id, e.seq, e.signed_at, e.received_from,
                        e.received_at, e.tlp,
                        r.origin, r.key_id, r.id, r.seq, r.signed_at, r.received_from,
                        r.received_at, r.tlp, rt.reason, rt.note
                 FROM deliveries d
                 JOIN envelopes e ON e.id = d.envelope
                 LEFT JOIN envelopes r ON r.id = d.retracted_by
                 LEFT JOIN retractions rt ON rt.envelope = d.retracted_by
                 WHERE d.uuid = $1 AND d.type = $2
                 ORDER BY e.ordinal",
                &[&uuid, &t],
            )
            .await
            .map_err(q("reading an object's deliveries"))?;
        let tombstones: HashMap<(i64, Vec<u8>), (i64, Vec<u8>)> = c
            .query(
                "SELECT modified, hash, base_modified, base_hash FROM tombstones
                 WHERE uuid = $1 AND type = $2",
                &[&uuid, &t],
            )
            .await
            .map_err(q("reading an object's tombstones"))?
            .iter()
            .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
            .collect();
        let reporter = |r: &tokio_postgres::Row, at: usize| -> Result<Reporter, StoreError> {
            let id = <[u8; 32]>::try_from(r.get::<_, &[u8]>(at + 2))
                .map_err(|_| StoreError::Corrupt("an envelope id is not 32 bytes".into()))?;
            Ok(Reporter {
                origin: r.get(at),
                key_id: r.get(at + 1),
                envelope_id: EnvelopeId::from_digest_bytes(&id).to_string(),
                seq: u64::try_from(r.get::<_, i64>(at + 3)).unwrap_or(0),
                signed_at: Timestamp::from_micros(r.get(at + 4)).to_millis_string(),
                received_from: r.get(at + 5),
                received_at: Timestamp::from_micros(r.get(at + 6)).to_micros_string(),
            })
        };
        // Per version (modified, hash): standing deliveries, and retracted ones with
        // their retraction, each as the reader may know of them.
        type Standing = Vec<Reporter>;
        type Retracted = Vec<(RetractedDelivery, [u8; 32])>;
        let mut by_version: HashMap<(i64, Vec<u8>), (Standing, Retracted)> = HashMap::new();
        for d in &deliveries {
            let key: (i64, Vec<u8>) = (d.get(0), d.get(1));
            let e_tlp: i16 = d.get(9);
            if e_tlp > level {
                continue;
            }
            let entry = by_version.entry(key).or_default();
            match d.get::<_, Option<&[u8]>>(12) {
                None => entry.0.push(reporter(d, 2)?),
                Some(rid) => {
                    let r_tlp: Option<i16> = d.get(17);
                    if r_tlp.is_none_or(|l| l > level) {
                        continue;
                    }
                    let rid = <[u8; 32]>::try_from(rid).map_err(|_| {
                        StoreError::Corrupt("a retraction id is not 32 bytes".into())
                    })?;
                    let reason = d
                        .get::<_, Option<i16>>(18)
                        .and_then(|b| u8::try_from(b).ok())
                        .and_then(crate::envelope::retraction::Reason::from_byte)
                        .map_or(String::new(), |r| r.to_string());
                    entry.1.push((
                        RetractedDelivery {
                            delivery: reporter(d, 2)?,
                            retraction: RetractionInfo {
                                signed: reporter(d, 10)?,
                                reason,
                                note: d.get::<_, Option<String>>(19).unwrap_or_default(),
                            },
                        },
                        rid,
                    ));
                }
            }
        }
        let visible: Vec<(i64, Vec<u8>)> = versions.iter().map(|v| (v.get(0), v.get(1))).collect();
        let bit: i16 = 1 << level;
        let mut out = Vec::with_capacity(versions.len());
        for &v in &versions {
            let key: (i64, Vec<u8>) = (v.get(0), v.get(1));
            let flags = v.get::<_, i16>(4) as u8;
            let tombstone = flags & RETRACTED != 0;
            let conflict =
                flags & CONFLICT != 0 && visible.iter().any(|o| o.0 == key.0 && o.1 != key.1);
            let (standing, retracted) = by_version.get(&key).cloned().unwrap_or_default();
            let mut origins: Vec<String> = standing.iter().map(|r| r.origin.clone()).collect();
            origins.sort_unstable();
            origins.dedup();
            // A tombstone's reasons: the retractions of the deliveries of every
            // version of the object but tombstones, once each.
            let mut retracted_by = Vec::new();
            if tombstone && tombstones.contains_key(&key) {
                let mut seen = HashSet::new();
                for other in &all {
                    if other.get::<_, i16>(4) as u8 & RETRACTED != 0 {
                        continue;
                    }
                    let other: (i64, Vec<u8>) = (other.get(0), other.get(1));
                    if let Some((_, rs)) = by_version.get(&other) {
                        for (rd, rid) in rs {
                            if seen.insert(*rid) {
                                retracted_by.push(rd.retraction.clone());
                            }
                        }
                    }
                }
            }
            let hash: Vec<u8> = v.get(1);
            let date_added: i64 = v.get(2);
            out.push(VersionProvenance {
                version: version_text(key.0, date_added),
                date_added: Timestamp::from_micros(date_added).to_micros_string(),
                latest: v.get::<_, i16>(5) & bit != 0,
                revoked: flags & REVOKED != 0,
                conflict,
                tlp: level_of(v.get(3)),
                content_hash: hash.iter().map(|b| format!("{b:02x}")).collect(),
                origins: if tombstone { Vec::new() } else { origins },
                provenance: if tombstone { Vec::new() } else { standing },
                retracted: retracted.into_iter().map(|(r, _)| r).collect(),
                retracted_by,
            });
        }
        Ok(Some(ObjectProvenance {
            id: id.to_string(),
            versions: out,
        }))
    }
}
