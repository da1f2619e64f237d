//! The federation API a peer member uses: its feed, pushes, and our view digest.

use super::api::{parse_json, read_body};
use super::caller::Caller;
use super::error::ApiError;
use crate::node::Node;
use crate::stix::tlp::TlpLevel;
use crate::sync::policy::{self, Withheld};
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Largest feed page, envelopes.
pub const MAX_FEED_PAGE: usize = 500;
/// Largest feed page, bytes (a page stops early rather than grow past it).
pub const MAX_FEED_BYTES: usize = 16 << 20;
/// Most envelopes in one push.
pub const MAX_PUSH: usize = 1000;

/// Federation routes.
pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/federation/v1/feed", get(feed))
        .route("/federation/v1/envelopes", post(push))
        .route("/federation/v1/digest", get(digest))
}

fn json_ok(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn feed(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let peer = caller.require_peer()?.to_string();
    let mut after = 0u64;
    let mut limit = 100usize;
    for (k, v) in &q {
        match k.as_str() {
            "after" => {
                after = v.parse().map_err(|_| {
                    ApiError::bad_request(
                        "bad-cursor",
                        "after must be a cursor this node gave (a number)",
                    )
                })?
            }
            "limit" => {
                limit = v.parse().map_err(|_| {
                    ApiError::bad_request("bad-limit", "limit must be a positive integer")
                })?;
                if limit == 0 {
                    return Err(ApiError::bad_request(
                        "bad-limit",
                        "limit must be a positive integer",
                    ));
                }
            }
            _ => {}
        }
    }
    let limit = limit.min(MAX_FEED_PAGE);
    tokio::task::spawn_blocking(move || {
        let view = node.store.read();
        let envs = view.envelopes();
        let head = envs.last().map_or(0, |e| e.ordinal + 1);
        let start = envs.partition_point(|e| e.ordinal < after);
        let mut body = Vec::with_capacity(64 * 1024);
        body.extend_from_slice(b"{\"envelopes\":[");
        let mut count = 0usize;
        let mut next = after;
        let mut more = false;
        let mut withheld: BTreeMap<String, u64> = BTreeMap::new();
        for e in &envs[start..] {
            if count == limit || body.len() >= MAX_FEED_BYTES {
                more = true;
                break;
            }
            next = e.ordinal + 1;
            match policy::may_send_held(&node.config, &view, &peer, e) {
                Ok(()) => {}
                Err(Withheld::PeerHasIt) => continue,
                Err(_) => {
                    *withheld.entry(e.tlp.as_str().to_string()).or_default() += 1;
                    continue;
                }
            }
            if node.sync.was_pushed(&peer, after, e.ordinal) {
                continue;
            }
            let bytes = node.store.envelope_bytes(e).map_err(ApiError::internal)?;
            if count > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&bytes);
            count += 1;
        }
        body.extend_from_slice(
            format!("],\"next\":\"{next}\",\"more\":{more},\"head\":{head}}}").as_bytes(),
        );
        let sent = count as u64;
        node.sync
            .update(&node.store, &peer, !withheld.is_empty(), |s| {
                s.envelopes_sent += sent;
                for (l, n) in withheld {
                    *s.withheld.entry(l).or_default() += n;
                }
            });
        Ok(json_ok(body))
    })
    .await
    .map_err(ApiError::internal)?
}

async fn push(
    State(node): State<Arc<Node>>,
    caller: Caller,
    body: Body,
) -> Result<Response, ApiError> {
    let peer = caller.require_peer()?.to_string();
    let bytes = read_body(body, node.config.limits.max_body_bytes).await?;
    let results = tokio::task::spawn_blocking(move || {
        let doc = parse_json(&bytes)?;
        let envelopes = match doc.get("envelopes") {
            Some(Value::Array(a)) => a.clone(),
            _ => {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "malformed",
                    "body must be {\"envelopes\": […]}",
                ));
            }
        };
        if envelopes.len() > MAX_PUSH {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-many-envelopes",
                format!("at most {MAX_PUSH} envelopes per push"),
            ));
        }
        node.accept_from_peer(&peer, envelopes)
            .map_err(ApiError::store)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(json_ok(
        json!({"results": results}).to_string().into_bytes(),
    ))
}

/// Our digests of the levels every peer shares (clear, green).
pub fn shared_digests(node: &Node) -> serde_json::Map<String, Value> {
    let view = node.store.read();
    [TlpLevel::Clear, TlpLevel::Green]
        .iter()
        .map(|l| (l.as_str().to_string(), json!(view.digest(*l).to_string())))
        .collect()
}

async fn digest(State(node): State<Arc<Node>>, caller: Caller) -> Result<Response, ApiError> {
    caller.require_peer()?;
    let head = node.store.head();
    let body = json!({"member": node.member(), "head": head, "digests": shared_digests(&node)});
    Ok(json_ok(body.to_string().into_bytes()))
}
