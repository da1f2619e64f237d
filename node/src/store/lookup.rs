//! "Who reported this?": observable lookups and per-object provenance.

use super::view::{CONFLICT, EnvMeta, RETRACTED, REVOKED, View};
use super::{Store, StoreError};
use crate::envelope::EnvelopeId;
use crate::stix::observable::{ObservableKey, keys_from_object};
use crate::stix::timestamp::Timestamp;
use crate::stix::tlp::TlpLevel;
use serde::Serialize;
use serde_json::Value;

/// One delivery of an object version: who signed it and how it reached this node.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Reporter {
    /// Origin member.
    pub origin: String,
    /// Signing key.
    pub key_id: String,
    /// Envelope id.
    pub envelope_id: String,
    /// Origin sequence number.
    pub seq: u64,
    /// When the origin signed it.
    pub signed_at: String,
    /// The peer it came from (`local` for own publishes).
    pub received_from: String,
    /// When this node received it.
    pub received_at: String,
}

impl Reporter {
    pub(crate) fn of(view: &View, e: &EnvMeta) -> Reporter {
        Reporter {
            origin: view.origin_name(e.origin).to_string(),
            key_id: e.key_id.clone(),
            envelope_id: EnvelopeId::from_digest_bytes(&e.id).to_string(),
            seq: e.seq,
            signed_at: Timestamp::from_micros(e.signed_at).to_millis_string(),
            received_from: e.received_from.clone(),
            received_at: Timestamp::from_micros(e.received_at).to_micros_string(),
        }
    }
}

/// A retraction, as provenance shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RetractionInfo {
    /// The retraction's own delivery: who signed it, when, how it came.
    #[serde(flatten)]
    pub signed: Reporter,
    /// Why.
    pub reason: String,
    /// The origin's note.
    pub note: String,
}

impl RetractionInfo {
    fn of(view: &View, r: &EnvMeta) -> RetractionInfo {
        let meta = view
            .envelope_by_id(&r.id)
            .and_then(|ix| view.retraction(ix));
        RetractionInfo {
            signed: Reporter::of(view, r),
            reason: meta.map_or(String::new(), |m| m.reason.to_string()),
            note: meta.map_or(String::new(), |m| m.note.clone()),
        }
    }
}

/// A delivery taken back, with the retraction that took it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RetractedDelivery {
    /// The delivery (the original envelope, still in the evidence log).
    pub delivery: Reporter,
    /// The retraction.
    pub retraction: RetractionInfo,
}

/// An object (latest version) naming a looked-up observable.
#[derive(Debug, Clone, Serialize)]
pub struct LookupHit {
    /// STIX id.
    pub id: String,
    /// STIX type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The observable key that matched (a CIDR key when an IP fell inside it).
    pub matched: String,
    /// `name`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `confidence`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<i64>,
    /// `first_seen`, else `valid_from`, else `created`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    /// `last_seen`, else `valid_until`, else `modified`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// Effective TLP level.
    pub tlp: TlpLevel,
    /// Whether the latest version is revoked.
    pub revoked: bool,
    /// Distinct origins that reported this version.
    pub origins: Vec<String>,
    /// Every delivery.
    pub provenance: Vec<Reporter>,
}

/// The answer for one looked-up value.
#[derive(Debug, Clone, Serialize)]
pub struct LookupResult {
    /// What was asked.
    pub query: String,
    /// Its normalised key, when it could be normalised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Why it could not be normalised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Distinct origins reporting it (over all hits), counting only deliveries the
    /// caller's TLP clearance covers.
    pub corroboration: usize,
    /// Objects naming it.
    pub hits: Vec<LookupHit>,
    /// For a network: more addresses and networks inside it than one lookup scans
    /// ([`RANGE_LIMIT`]); the hits are those of the first ones, in address order.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// Addresses and networks inside a looked-up network that one lookup scans at most
/// (an export, not a lookup, is the way to read a whole /8).
pub const RANGE_LIMIT: usize = 10_000;

impl LookupHit {
    /// The hit for version `obj` (its parsed body) of type `type_name`, found by key
    /// `matched`, at level and revocation `(tlp, revoked)`, with the deliveries a
    /// reader may know of.
    pub(crate) fn of(
        obj: &Value,
        type_name: &str,
        matched: &ObservableKey,
        (tlp, revoked): (TlpLevel, bool),
        origins: Vec<String>,
        provenance: Vec<Reporter>,
    ) -> LookupHit {
        LookupHit {
            id: text(obj, &["id"]).unwrap_or_default(),
            type_name: type_name.to_string(),
            matched: matched.to_string(),
            name: text(obj, &["name", "value"]),
            confidence: obj.get("confidence").and_then(Value::as_i64),
            first_seen: text(obj, &["first_seen", "valid_from", "created"]),
            last_seen: text(obj, &["last_seen", "valid_until", "modified"]),
            tlp,
            revoked,
            origins,
            provenance,
        }
    }
}

impl LookupResult {
    /// The normalised key of a looked-up value, or the answer that says why it has
    /// none.
    pub(crate) fn key_of(q: &str) -> Result<ObservableKey, LookupResult> {
        ObservableKey::from_user_input(q).map_err(|e| LookupResult {
            query: q.to_string(),
            key: None,
            error: Some(e.to_string()),
            corroboration: 0,
            hits: Vec::new(),
            truncated: false,
        })
    }
}

fn text(v: &Value, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .map(str::to_string)
}

impl Store {
    /// Looks observables up: every latest object version that names each value (for an
    /// IP, also every CIDR containing it; for a CIDR, also every address and smaller
    /// network inside it), visible at `max_tlp` or below.
    pub fn lookup(
        &self,
        values: &[String],
        max_tlp: TlpLevel,
    ) -> Result<Vec<LookupResult>, StoreError> {
        let view = self.read();
        let mut results = Vec::with_capacity(values.len());
        for q in values {
            let key = match LookupResult::key_of(q) {
                Ok(k) => k,
                Err(refused) => {
                    results.push(refused);
                    continue;
                }
            };
            let mut keys = vec![key.clone()];
            keys.extend(key.containing_networks());
            // A network also finds the addresses and smaller networks inside it.
            let mut truncated = false;
            if let Some(block) = key.ip_block() {
                let (inside, more) = view.ip_blocks_within(block, RANGE_LIMIT);
                truncated = more;
                keys.extend(inside.into_iter().filter(|b| *b != block).map(|b| b.key()));
            }
            let mut seen = std::collections::HashSet::new();
            let mut hits = Vec::new();
            let mut origins = std::collections::BTreeSet::new();
            for k in &keys {
                for h in view.by_observable(k.as_str()) {
                    let (Some(ver), Some(at)) = (view.version(h), view.body_location(h)) else {
                        continue;
                    };
                    if ver.tlp > max_tlp
                        || view.latest_visible(h, max_tlp) != Some(h)
                        || seen.contains(&h)
                    {
                        continue;
                    }
                    let body = self.object_body(at)?;
                    let obj: Value =
                        serde_json::from_slice(&body).map_err(|source| StoreError::Json {
                            what: format!("stored object at {at:?}"),
                            source,
                        })?;
                    // The index is keyed by a 64-bit hash: confirm the object names it.
                    if !keys_from_object(&obj).contains(k) {
                        continue;
                    }
                    seen.insert(h);
                    let provenance: Vec<Reporter> = view
                        .deliveries_at(h, max_tlp)
                        .into_iter()
                        .map(|e| Reporter::of(&view, e))
                        .collect();
                    let hit_origins: Vec<String> = view
                        .origins_at(h, max_tlp)
                        .into_iter()
                        .map(str::to_string)
                        .collect();
                    origins.extend(hit_origins.iter().cloned());
                    hits.push(LookupHit::of(
                        &obj,
                        view.type_name(ver.type_ix),
                        k,
                        (ver.tlp, ver.has(REVOKED)),
                        hit_origins,
                        provenance,
                    ));
                }
            }
            results.push(LookupResult {
                query: q.clone(),
                key: Some(key.to_string()),
                error: None,
                corroboration: origins.len(),
                hits,
                truncated,
            });
        }
        Ok(results)
    }
}

/// One version of an object with everything known about its origin.
#[derive(Debug, Clone, Serialize)]
pub struct VersionProvenance {
    /// `modified` of the version (or `date_added` for objects without one).
    pub version: String,
    /// When this node first held it.
    pub date_added: String,
    /// Whether it is the latest version.
    pub latest: bool,
    /// Whether it is revoked.
    pub revoked: bool,
    /// Whether another version has the same `modified` and different content.
    pub conflict: bool,
    /// Effective TLP level.
    pub tlp: TlpLevel,
    /// First 16 bytes of the SHA-256 of its canonical form, hex.
    pub content_hash: String,
    /// Distinct origins.
    pub origins: Vec<String>,
    /// Every delivery that stands (not retracted).
    pub provenance: Vec<Reporter>,
    /// Deliveries their origin took back, each with its retraction.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retracted: Vec<RetractedDelivery>,
    /// For the revoked version this node shows in place of retracted ones (a
    /// tombstone): the retractions behind it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retracted_by: Vec<RetractionInfo>,
}

/// Provenance of every version of an object.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectProvenance {
    /// STIX id.
    pub id: String,
    /// Versions, oldest first.
    pub versions: Vec<VersionProvenance>,
}

/// The retractions behind a tombstone, as a reader at `max_tlp` may know of them.
fn tombstone_reasons(view: &View, h: u32, max_tlp: TlpLevel) -> Vec<RetractionInfo> {
    let Some(base) = view.tombstone_of(h) else {
        return Vec::new();
    };
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for s in view.siblings(base) {
        if view.version(s).is_some_and(|v| v.has(RETRACTED)) {
            continue;
        }
        for (d, r) in view.retracted_deliveries(s) {
            if d.tlp <= max_tlp && r.tlp <= max_tlp && seen.insert(r.id) {
                out.push(RetractionInfo::of(view, r));
            }
        }
    }
    out
}

/// Renders a version's `modified` the way TAXII shows versions.
pub fn version_text(modified: i64, date_added: i64) -> String {
    let t = if modified == i64::MIN {
        date_added
    } else {
        modified
    };
    let ts = Timestamp::from_micros(t);
    if t % 1000 == 0 {
        ts.to_millis_string()
    } else {
        ts.to_micros_string()
    }
}

impl Store {
    /// Every version of an object visible at `max_tlp`, with provenance. `None` when
    /// the node holds no visible version.
    pub fn provenance(
        &self,
        id: &str,
        max_tlp: TlpLevel,
    ) -> Result<Option<ObjectProvenance>, StoreError> {
        let Some((t, uuid)) = super::prepare::split_id(id) else {
            return Ok(None);
        };
        let view = self.read();
        let mut versions = Vec::new();
        let handles = view.versions_of(t, uuid);
        let visible: Vec<&crate::store::view::Version> = handles
            .iter()
            .filter_map(|&h| view.version(h))
            .filter(|v| v.tlp <= max_tlp)
            .collect();
        for h in handles {
            let Some(v) = view.version(h) else { continue };
            if v.tlp > max_tlp {
                continue;
            }
            // A conflict only with a version the reader may see.
            // A tombstone was delivered by nobody: the retractions behind it say why
            // it is there (`retracted_by`).
            let tombstone = v.has(RETRACTED);
            let conflict = v.has(CONFLICT)
                && visible
                    .iter()
                    .any(|o| o.modified == v.modified && o.hash != v.hash);
            versions.push(VersionProvenance {
                version: version_text(v.modified, v.date_added),
                date_added: Timestamp::from_micros(v.date_added).to_micros_string(),
                latest: view.latest_visible(h, max_tlp) == Some(h),
                revoked: v.has(REVOKED),
                conflict,
                tlp: v.tlp,
                content_hash: v.hash.iter().map(|b| format!("{b:02x}")).collect(),
                origins: if tombstone {
                    Vec::new()
                } else {
                    view.origins_at(h, max_tlp)
                        .into_iter()
                        .map(str::to_string)
                        .collect()
                },
                provenance: if tombstone {
                    Vec::new()
                } else {
                    view.deliveries_at(h, max_tlp)
                        .into_iter()
                        .map(|e| Reporter::of(&view, e))
                        .collect()
                },
                retracted: view
                    .retracted_deliveries(h)
                    .into_iter()
                    .filter(|(d, r)| d.tlp <= max_tlp && r.tlp <= max_tlp)
                    .map(|(d, r)| RetractedDelivery {
                        delivery: Reporter::of(&view, d),
                        retraction: RetractionInfo::of(&view, r),
                    })
                    .collect(),
                retracted_by: tombstone_reasons(&view, h, max_tlp),
            });
        }
        Ok((!versions.is_empty()).then(|| ObjectProvenance {
            id: id.to_string(),
            versions,
        }))
    }
}
