//! The node API: publish, lookup, provenance, stats, health and metrics.

use super::body::{malformed_json, parse_json, read_body};
use super::caller::Caller;
use super::error::ApiError;
use crate::config::Role;
use crate::json::RawObjects;
use crate::node::Node;
use crate::node::backend::Backend;
use crate::node::publish::{Mode, PublishError};
use crate::stix::tlp::ALL_LEVELS;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::sync::Arc;

/// Node API routes.
pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/bundles", post(publish))
        .route("/api/v1/retractions", post(retract))
        .route("/api/v1/lookup", get(lookup_get).post(lookup_post))
        .route("/api/v1/objects/{id}/provenance", get(object_provenance))
        .route("/api/v1/stats", get(stats))
        .route("/api/v1/peers", get(peers))
        .route(
            "/api/v1/membership",
            get(membership).post(submit_membership),
        )
        .route("/api/v1/export", get(super::export::export))
}

/// A publish body, parsed whole or, past `limits.publish_window_objects` objects,
/// left as text for a windowed publish ([`Node::publish_windowed`]).
pub(crate) enum PublishBody<'a> {
    /// The whole document, parsed.
    Whole(Value),
    /// The document's members and the text of its objects.
    Windowed(RawObjects<'a>),
}

/// Parses a publish body (a bundle, or a TAXII envelope): the document is split into
/// its members and the text of its objects once, and the objects are parsed on every
/// core, unless there are more than `window` of them. A document of another shape
/// goes through the plain strict parse (and the publish then says what is wrong).
pub(crate) fn parse_publish_body(bytes: &[u8], window: usize) -> Result<PublishBody<'_>, ApiError> {
    match RawObjects::split(bytes) {
        Ok(raw) if raw.objects.len() > window => Ok(PublishBody::Windowed(raw)),
        Ok(raw) => {
            let objects = raw.parse(0..raw.objects.len()).map_err(malformed_json)?;
            let mut doc = raw.members;
            doc.insert("objects".into(), Value::Array(objects));
            Ok(PublishBody::Whole(Value::Object(doc)))
        }
        // Not that shape: the plain parse says what is wrong (or parses a document
        // the publish then refuses); the split is not tried again.
        Err(_) => crate::json::from_slice_strict(bytes)
            .map(PublishBody::Whole)
            .map_err(malformed_json),
    }
}

fn json_response(status: StatusCode, v: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(v) {
        Ok(b) => (status, [(header::CONTENT_TYPE, "application/json")], b).into_response(),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

async fn healthz(State(node): State<Arc<Node>>) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"status": "ok", "member": node.member()}),
    )
}

async fn publish(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Query(q): Query<Vec<(String, String)>>,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(Role::Publish)?;
    // Waits its turn before reading the body (limits.max_concurrent_publishes).
    let _turn = node.publish_turn().await.map_err(ApiError::internal)?;
    let (bytes, _budget) = read_body(body, &node, node.config().limits.max_body_bytes).await?;
    let recipients: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "recipients")
        .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .collect();
    let n = node.clone();
    let result = tokio::task::spawn_blocking(move || {
        let window = n.config().limits.publish_window_objects;
        match parse_publish_body(&bytes, window)? {
            PublishBody::Windowed(raw) => n.publish_windowed(&raw, &recipients, Mode::AllOrNothing),
            PublishBody::Whole(doc) => {
                // The parsed form is all that is needed from here on.
                drop(bytes);
                n.publish(doc, &recipients, Mode::AllOrNothing)
            }
        }
        .map_err(publish_error)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(json_response(StatusCode::OK, &result))
}

/// Largest retraction request body: 10,000 targets of about 100 bytes, and a note.
const MAX_RETRACT_BODY: usize = 2 << 20;

/// `POST /api/v1/retractions` (role `publish`): `{"envelopes": [id…], "objects":
/// ["type--uuid" or "type--uuid@modified"…], "reason": code, "note": text}`. Signs
/// one retraction per level of what is named (protocol §11).
async fn retract(
    State(node): State<Arc<Node>>,
    caller: Caller,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(Role::Publish)?;
    let _turn = node.publish_turn().await.map_err(ApiError::internal)?;
    let limit = node.config().limits.max_body_bytes.min(MAX_RETRACT_BODY);
    let (bytes, _budget) = read_body(body, &node, limit).await?;
    let doc = parse_json(&bytes)?;
    let request = RetractRequest::from_value(&doc)
        .map_err(|m| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-retraction", m))?;
    let n = node.clone();
    let report = tokio::task::spawn_blocking(move || {
        n.retract(
            &request.envelopes,
            &request.objects,
            request.reason,
            &request.note,
        )
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(retract_error)?;
    Ok(json_response(StatusCode::OK, &report))
}

/// A retraction request, read from its JSON body.
struct RetractRequest {
    envelopes: Vec<crate::envelope::EnvelopeId>,
    objects: Vec<crate::envelope::retraction::ObjectTarget>,
    reason: crate::envelope::Reason,
    note: String,
}

impl RetractRequest {
    fn from_value(doc: &Value) -> Result<RetractRequest, String> {
        use crate::envelope::retraction::ObjectTarget;
        use crate::envelope::{EnvelopeId, Reason};
        let Value::Object(m) = doc else {
            return Err(
                "body must be {\"envelopes\": […], \"objects\": […], \"reason\": …}".into(),
            );
        };
        if let Some(k) = m
            .keys()
            .find(|k| !["envelopes", "objects", "reason", "note"].contains(&k.as_str()))
        {
            return Err(format!("unknown member {k:?}"));
        }
        let strings = |name: &str| -> Result<Vec<String>, String> {
            match m.get(name) {
                None => Ok(Vec::new()),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| format!("{name} must be an array of strings")),
                Some(_) => Err(format!("{name} must be an array of strings")),
            }
        };
        let envelopes = strings("envelopes")?
            .iter()
            .map(|e| {
                EnvelopeId::parse(e).ok_or_else(|| {
                    format!("{e:?} is not an envelope id (sha256: and 64 hex digits)")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let objects = strings("objects")?
            .iter()
            .map(|o| ObjectTarget::parse_cli(o))
            .collect::<Result<Vec<_>, _>>()?;
        let reason = match m.get("reason").and_then(Value::as_str) {
            Some(r) => Reason::parse(r).ok_or_else(|| {
                format!(
                    "reason {r:?} is not one of {}",
                    Reason::ALL.map(Reason::as_str).join(", ")
                )
            })?,
            None => {
                return Err(format!(
                    "reason is required: one of {}",
                    Reason::ALL.map(Reason::as_str).join(", ")
                ));
            }
        };
        let note = match m.get("note") {
            None => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err("note must be a string".into()),
        };
        Ok(RetractRequest {
            envelopes,
            objects,
            reason,
            note,
        })
    }
}

/// Maps retraction failures to HTTP answers.
fn retract_error(e: crate::node::retract::RetractError) -> ApiError {
    use crate::node::retract::RetractError;
    match e {
        RetractError::NotRetractable(m) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not-retractable", m)
        }
        RetractError::Invalid(m) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-retraction", m)
        }
        RetractError::Store(e) => ApiError::store(e),
        RetractError::Sign(m) => ApiError::internal(m),
        RetractError::Recovering => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "recovering",
            RetractError::Recovering.to_string(),
        ),
    }
}

/// Maps publish failures to HTTP answers.
pub(crate) fn publish_error(e: PublishError) -> ApiError {
    match e {
        PublishError::Json(m) => malformed_json(m),
        PublishError::NotABundle(m) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "not-a-bundle", m)
        }
        PublishError::Invalid(report) => {
            let details = serde_json::to_value(&report.findings).unwrap_or(Value::Null);
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-stix",
                format!(
                    "the bundle is not valid STIX 2.1: {} errors; nothing was published",
                    report.errors().count()
                ),
            )
            .with_details(details)
        }
        PublishError::Recipients(m) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad-recipients", m)
        }
        PublishError::Store(e) => ApiError::store(e),
        PublishError::Sign(m) => ApiError::internal(m),
        PublishError::Recovering => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "recovering",
            PublishError::Recovering.to_string(),
        ),
        PublishError::TooLarge(m) => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "envelope-too-large", m)
        }
    }
}

async fn lookup_get(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let values: Vec<String> = q
        .into_iter()
        .filter(|(k, _)| k == "value")
        .map(|(_, v)| v)
        .collect();
    lookup(node, caller, values).await
}

async fn lookup_post(
    State(node): State<Arc<Node>>,
    caller: Caller,
    body: Body,
) -> Result<Response, ApiError> {
    caller.require(Role::Read)?;
    let limit = node.config().limits.max_body_bytes.min(MAX_LOOKUP_BODY);
    let (bytes, _budget) = read_body(body, &node, limit).await?;
    // Strict JSON first (duplicate keys, unsafe integers), then the values, counted
    // as they are read: a body of a million values is refused at the 10,001st.
    parse_json(&bytes)?;
    let values = serde_json::from_slice::<LookupBody>(&bytes)
        .map_err(|e| {
            if e.to_string().contains(TOO_MANY_VALUES) {
                ApiError::bad_request("bad-request", TOO_MANY_VALUES)
            } else {
                ApiError::bad_request("bad-request", "body must be {\"values\": [\"…\", …]}")
            }
        })?
        .values
        .0;
    lookup(node, caller, values).await
}

/// Largest lookup body: 10,000 values of up to a few hundred bytes each.
const MAX_LOOKUP_BODY: usize = 4 << 20;
/// Most values in one lookup.
const MAX_LOOKUP_VALUES: usize = 10_000;
const TOO_MANY_VALUES: &str = "at most 10,000 values per lookup";

/// A lookup body: `{"values": […]}`.
#[derive(serde::Deserialize)]
struct LookupBody {
    values: LookupValues,
}

/// The values of a lookup, refused at the first one past [`MAX_LOOKUP_VALUES`]
/// rather than after the whole array is built.
struct LookupValues(Vec<String>);

impl<'de> serde::Deserialize<'de> for LookupValues {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = LookupValues;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of strings")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<LookupValues, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<String>()? {
                    if out.len() == MAX_LOOKUP_VALUES {
                        return Err(serde::de::Error::custom(TOO_MANY_VALUES));
                    }
                    out.push(v);
                }
                Ok(LookupValues(out))
            }
        }
        d.deserialize_seq(Visit)
    }
}

async fn lookup(
    node: Arc<Node>,
    caller: Caller,
    values: Vec<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Read)?;
    if values.is_empty() {
        return Err(ApiError::bad_request(
            "bad-request",
            "give at least one value (?value=203.0.113.7)",
        ));
    }
    if values.len() > MAX_LOOKUP_VALUES {
        return Err(ApiError::bad_request("bad-request", TOO_MANY_VALUES));
    }
    let max = caller.max_tlp();
    let results = if let Some(pg) = node.backend().postgres() {
        pg.store
            .lookup(&values, max)
            .await
            .map_err(ApiError::store)?
    } else {
        tokio::task::spawn_blocking(move || {
            node.embedded("a lookup")
                .map_err(ApiError::backend)?
                .lookup(&values, max)
                .map_err(ApiError::internal)
        })
        .await
        .map_err(ApiError::internal)??
    };
    Ok(json_response(StatusCode::OK, &json!({"results": results})))
}

async fn object_provenance(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Read)?;
    let found = match node.backend() {
        Backend::Postgres(pg) => pg
            .store
            .provenance(&id, caller.max_tlp())
            .await
            .map_err(ApiError::store)?,
        Backend::Embedded(store) => store
            .provenance(&id, caller.max_tlp())
            .map_err(ApiError::internal)?,
    };
    let p = found.ok_or_else(|| ApiError::not_found(format!("no object {id} on this node")))?;
    Ok(json_response(StatusCode::OK, &p))
}

async fn stats(State(node): State<Arc<Node>>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Role::Operate)?;
    // Walks the data directory and waits for the view's lock: not on an async worker.
    match node.backend() {
        Backend::Embedded(_) => tokio::task::spawn_blocking(move || stats_body(&node))
            .await
            .map_err(ApiError::internal)?,
        Backend::Postgres(pg) => stats_postgres(&node, &pg.store)
            .await
            .map_err(ApiError::store),
    }
}

/// The status of a node on PostgreSQL: the same fields as on the embedded store,
/// `disk.log_bytes` being the whole database's size.
async fn stats_postgres(
    node: &Node,
    pg: &crate::store::postgres::PgStore,
) -> Result<Response, crate::store::StoreError> {
    let counts = pg.counts().await?;
    let mut digests = serde_json::Map::new();
    for l in ALL_LEVELS {
        digests.insert(
            l.as_str().to_string(),
            json!(pg.digest(l).await?.to_string()),
        );
    }
    let mut shared = serde_json::Map::new();
    for l in crate::store::view::SHARED_LEVELS {
        if let Some(d) = pg.shared_digest(l).await? {
            shared.insert(l.as_str().to_string(), json!(d.to_string()));
        }
    }
    let origins = pg.origin_seqs().await?;
    let bytes = pg.disk_bytes().await?;
    let processes = {
        let c = pg.pool().get().await?;
        crate::store::postgres::lease::running_processes(&**c).await?
    };
    let body = json!({
        "member": node.member(),
        "backend": "postgres",
        "envelopes": counts.envelopes,
        "object_versions": counts.versions,
        "objects": counts.objects,
        "origins": origins.into_iter().map(|(o, s)| json!({"origin": o, "max_seq": s})).collect::<Vec<_>>(),
        "digests": digests,
        "shared_digests": shared,
        "disk": {"log_bytes": bytes, "index_bytes": 0},
        // The member's `serve` processes sharing the database, this one included.
        "processes": processes.into_iter().map(|(holder, listen)| json!({"holder": holder, "listen": listen})).collect::<Vec<_>>(),
        "index_needs_restart": false,
        "started_at": node.started_at().to_millis_string(),
        "roster": roster_summary(node),
    });
    Ok(json_response(StatusCode::OK, &body))
}

fn stats_body(node: &Node) -> Result<Response, ApiError> {
    let store = node.embedded("status").map_err(ApiError::backend)?;
    let (log_bytes, index_bytes) = store.disk_bytes();
    let v = store.read();
    let digests: serde_json::Map<String, Value> = ALL_LEVELS
        .iter()
        .map(|l| (l.as_str().to_string(), json!(v.digest(*l).to_string())))
        .collect();
    let body = json!({
        "member": node.member(),
        "backend": "embedded",
        "envelopes": v.envelope_count(),
        "object_versions": v.version_count(),
        "objects": v.object_count(),
        "origins": v.origin_seqs().into_iter().map(|(o, s)| json!({"origin": o, "max_seq": s})).collect::<Vec<_>>(),
        "digests": digests,
        "shared_digests": crate::store::view::SHARED_LEVELS
            .iter()
            .filter_map(|l| v.shared_digest(*l).map(|d| (l.as_str().to_string(), json!(d.to_string()))))
            .collect::<serde_json::Map<String, Value>>(),
        "disk": {"log_bytes": log_bytes, "index_bytes": index_bytes},
        "index_needs_restart": store.index_failed(),
        "started_at": node.started_at().to_millis_string(),
        "roster": roster_summary(node),
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// The roster and signing key in force (they change at a reload, `node::live`).
fn roster_summary(node: &Node) -> Value {
    let live = node.live();
    json!({
        "federation": live.roster.document().federation,
        "members": live.roster.members().iter().map(|m| m.name.clone()).collect::<Vec<_>>(),
        "sha256": live.roster.fingerprint(),
        "signing_key_id": live.signer.key_id,
        "peers": live.peers.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
        // The membership log's head, when the roster comes from one.
        "membership": live.membership.as_ref().and_then(|l| {
            let h = l.head()?;
            Some(json!({"index": h.index, "hash": h.hash, "threshold": l.state().threshold}))
        }),
    })
}

async fn metrics(State(node): State<Arc<Node>>, caller: Caller) -> Result<Response, ApiError> {
    if !caller.has(Role::Metrics) {
        caller.require(Role::Operate)?;
    }
    // Like stats: the view's lock and a walk of the data directory.
    let text = tokio::task::spawn_blocking(move || crate::node::metrics::render(&node))
        .await
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        text,
    )
        .into_response())
}

async fn peers(State(node): State<Arc<Node>>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Role::Operate)?;
    let peers = crate::node::peers::status::peer_statuses(&node);
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "member": node.member(),
            "digests": node.shared_digests().map_err(ApiError::store)?,
            "membership": membership_summary(&node),
            "peers": peers,
        }),
    ))
}

/// The membership log as operators see it: our head and threshold, forks seen, and
/// each peer's head (`null` when the node follows no log).
fn membership_summary(node: &Node) -> Value {
    let live = node.live();
    let Some(log) = &live.membership else {
        return Value::Null;
    };
    let m = node.membership();
    json!({
        "head": log.head(),
        "threshold": log.state().threshold,
        "former_members": live.roster.former().iter().map(|f| json!({"name": f.member.name, "removed_at": f.removed_at})).collect::<Vec<_>>(),
        "revoked_certificates": log.state().revoked,
        "forks": m.forks(),
        "peer_heads": node.peer_membership_heads(),
    })
}

/// `GET /api/v1/membership`: the summary of `GET /api/v1/peers`, alone.
async fn membership(State(node): State<Arc<Node>>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Role::Operate)?;
    Ok(json_response(StatusCode::OK, &membership_summary(&node)))
}

/// Most bytes of a submitted membership entry.
const MAX_ENTRY_BODY: usize = 1 << 20;

/// `POST /api/v1/membership`: an approved proposal (`synergia roster submit`),
/// checked against the log in force and appended; peers fetch it from here.
async fn submit_membership(
    State(node): State<Arc<Node>>,
    caller: Caller,
    body: Body,
) -> Result<Response, ApiError> {
    use crate::node::membership::MembershipError;
    caller.require(Role::Operate)?;
    let limit = node.config().limits.max_body_bytes.min(MAX_ENTRY_BODY);
    let (bytes, _budget) = read_body(body, &node, limit).await?;
    let entry = crate::membership::Entry::from_slice(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string()))?;
    let (index, hash) = (entry.index, entry.hash());
    let n = node.clone();
    let from = format!("submitted by {}", caller.name());
    let taken = tokio::task::spawn_blocking(move || n.offer_membership(vec![entry], &from))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| {
            let status = match &e {
                MembershipError::NoLog => StatusCode::NOT_FOUND,
                MembershipError::Frozen { .. } => StatusCode::CONFLICT,
                MembershipError::Refused { source, .. } if source.code() == "fork" => {
                    StatusCode::CONFLICT
                }
                MembershipError::Refused { .. } | MembershipError::Unusable { .. } => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                MembershipError::Rejected { .. } => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            ApiError::new(status, e.code(), e.to_string())
        })?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "status": if taken.appended > 0 { "appended" } else { "held" },
            "index": index,
            "hash": hash,
            "head": taken.head,
        }),
    ))
}
