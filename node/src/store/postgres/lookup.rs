//! "Who reported this?" on PostgreSQL: the lookups of `store::lookup`, by statements
//! over the observable index, with the same rules: every latest version a reader may
//! see that names the value (for an address, also every network containing it; for a
//! network, also every address and smaller network inside it, at most
//! `RANGE_LIMIT`), with the deliveries the reader may know of.

use super::PgError;
use super::ingest::{level_code, level_of, net_text};
use super::store::PgStore;
use crate::envelope::EnvelopeId;
use crate::stix::observable::{IpBlock, ObservableKey};
use crate::stix::timestamp::Timestamp;
use crate::stix::tlp::TlpLevel;
use crate::store::StoreError;
use crate::store::lookup::{LookupHit, LookupResult, RANGE_LIMIT, Reporter};
use crate::store::view::REVOKED;
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
}
