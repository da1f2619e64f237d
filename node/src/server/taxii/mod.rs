//! TAXII 2.1 (OASIS) at `/taxii2/`, API root `/taxii2/synergia/`.
//!
//! Discovery, API root, collections, objects (GET and POST), object by id, versions,
//! manifest and status, with `added_after`, `match[…]`, `limit` and `next`. Responses
//! use the TAXII media type; objects are served as the canonical bytes stored in the
//! evidence log, never re-serialised.

pub mod collections;
pub mod query;
pub mod select;
pub mod select_pg;
pub mod token;

use super::api::{PublishBody, parse_publish_body, publish_error};
use super::body::read_body;
use super::caller::Caller;
use super::error::{ApiError, TAXII_MEDIA_TYPE};
use crate::config::Role;
use crate::node::Node;
use crate::node::backend::Backend;
use crate::node::publish::{Mode, ObjectStatus};
use crate::stix::timestamp::Timestamp;
use crate::store::engine::Space;
use crate::store::version_text;
use crate::store::view::View;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use collections::Collection;
use query::{Filters, VersionSpec};
use serde_json::{Value, json};
use std::sync::Arc;

/// Name of the one API root.
pub const API_ROOT: &str = "synergia";
const STIX_MEDIA_TYPE: &str = "application/stix+json;version=2.1";

/// TAXII routes.
pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/taxii2/", get(discovery))
        .route("/taxii2/synergia/", get(api_root))
        .route("/taxii2/synergia/collections/", get(list_collections))
        .route("/taxii2/synergia/collections/{coll}/", get(get_collection))
        .route(
            "/taxii2/synergia/collections/{coll}/objects/",
            get(get_objects).post(add_objects),
        )
        .route(
            "/taxii2/synergia/collections/{coll}/objects/{id}/",
            get(get_object),
        )
        .route(
            "/taxii2/synergia/collections/{coll}/objects/{id}/versions/",
            get(get_versions),
        )
        .route(
            "/taxii2/synergia/collections/{coll}/manifest/",
            get(get_manifest),
        )
        .route("/taxii2/synergia/status/{status}/", get(get_status))
        .fallback(not_found)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint").taxii()
}

fn taxii_json(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(TAXII_MEDIA_TYPE),
    );
    r
}

/// 406 unless the client accepts TAXII 2.1 JSON.
fn check_accept(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let ok = accept.split(',').any(|part| {
        let p = part.trim().to_ascii_lowercase().replace(' ', "");
        p.starts_with("*/*")
            || p.starts_with("application/*")
            || p == "application/taxii+json"
            || p.starts_with("application/taxii+json;version=2.1")
            || (p.starts_with("application/taxii+json;") && !p.contains("version="))
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-acceptable",
            format!("this server answers {TAXII_MEDIA_TYPE}; the request accepts {accept}"),
        )
        .taxii())
    }
}

fn read(caller: &Caller) -> Result<(), ApiError> {
    caller.require(Role::Read).map_err(ApiError::taxii)
}

fn base_url(headers: &HeaderMap, node: &Node) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| node.config().listen.address.clone());
    format!("https://{host}")
}

async fn discovery(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_accept(&headers)?;
    read(&caller)?;
    let root = format!("{}/taxii2/{API_ROOT}/", base_url(&headers, &node));
    let body = json!({
        "title": format!("Synergia node of {}", node.member()),
        "description": "Signed, provenance-tracked threat intelligence of the federation, as this member's node holds it.",
        "contact": node.member(),
        "default": root,
        "api_roots": [root],
    });
    Ok(taxii_json(StatusCode::OK, body.to_string().into_bytes()))
}

async fn api_root(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_accept(&headers)?;
    read(&caller)?;
    let body = json!({
        "title": format!("Synergia ({})", node.member()),
        "description": "Collections: consolidated (merged view), local (this member; writable), and one per member.",
        "versions": [TAXII_MEDIA_TYPE],
        "max_content_length": node.config().limits.max_body_bytes,
    });
    Ok(taxii_json(StatusCode::OK, body.to_string().into_bytes()))
}

fn collection_json(c: &Collection, caller: &Caller) -> Value {
    json!({
        "id": c.id,
        "title": c.title,
        "description": c.description,
        "alias": c.alias,
        "can_read": caller.has(Role::Read),
        "can_write": c.writable && caller.has(Role::Publish),
        "media_types": [STIX_MEDIA_TYPE],
    })
}

/// Collections a caller can see: everything for readers, `local` for publishers.
fn visible(node: &Node, caller: &Caller) -> Vec<Collection> {
    collections::all(node)
        .into_iter()
        .filter(|c| caller.has(Role::Read) || (c.writable && caller.has(Role::Publish)))
        .collect()
}

async fn list_collections(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_accept(&headers)?;
    if !caller.has(Role::Read) && !caller.has(Role::Publish) {
        read(&caller)?;
    }
    let cs: Vec<Value> = visible(&node, &caller)
        .iter()
        .map(|c| collection_json(c, &caller))
        .collect();
    Ok(taxii_json(
        StatusCode::OK,
        json!({"collections": cs}).to_string().into_bytes(),
    ))
}

fn collection(node: &Node, caller: &Caller, key: &str) -> Result<Collection, ApiError> {
    visible(node, caller)
        .into_iter()
        .find(|c| c.id == key || c.alias == key)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no collection {key} (or not visible to {})",
                caller.name()
            ))
            .taxii()
        })
}

async fn get_collection(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: HeaderMap,
    Path(coll): Path<String>,
) -> Result<Response, ApiError> {
    check_accept(&headers)?;
    let c = collection(&node, &caller, &coll)?;
    Ok(taxii_json(
        StatusCode::OK,
        collection_json(&c, &caller).to_string().into_bytes(),
    ))
}

fn object_id(view: &View, h: u32) -> String {
    let v = &view.versions()[h as usize];
    format!(
        "{}--{}",
        view.type_name(v.type_ix),
        uuid::Uuid::from_u128(v.uuid()).hyphenated()
    )
}

/// Runs a paged query: parses filters, resolves `next`, selects the page.
fn page(
    node: &Node,
    view: &View,
    coll: &Collection,
    caller: &Caller,
    pairs: &[(String, String)],
    default_versions: VersionSpec,
    extra_ids: Option<&str>,
) -> Result<(select::Page, Filters), ApiError> {
    let req = page_request(node, coll, pairs, default_versions, extra_ids)?;
    let page = select::select(view, coll, &req.filters, caller.max_tlp(), req.after);
    Ok((page, req.filters))
}

/// The filters and cursor of a paged request.
fn page_request(
    node: &Node,
    coll: &Collection,
    pairs: &[(String, String)],
    default_versions: VersionSpec,
    extra_ids: Option<&str>,
) -> Result<query::PageRequest, ApiError> {
    let limits = &node.config().limits;
    let scope = coll.token_scope();
    query::parse_page_request(
        pairs,
        default_versions,
        limits.taxii_default_page,
        limits.taxii_max_page,
        query::PageScope {
            token_key: node.token_key(),
            collection: &scope,
            object_id: extra_ids,
        },
    )
}

fn date_headers(resp: &mut Response, view: &View, handles: &[u32]) {
    let da = |h: u32| view.versions()[h as usize].date_added;
    date_headers_of(
        resp,
        handles.first().map(|&h| da(h)),
        handles.last().map(|&h| da(h)),
    );
}

/// The `X-TAXII-Date-Added-First` and `-Last` headers of a page.
fn date_headers_of(resp: &mut Response, first: Option<i64>, last: Option<i64>) {
    let stamp = |t: i64| Timestamp::from_micros(t).to_micros_string();
    if let (Some(first), Some(last)) = (first, last) {
        for (name, v) in [
            ("x-taxii-date-added-first", stamp(first)),
            ("x-taxii-date-added-last", stamp(last)),
        ] {
            if let Ok(hv) = HeaderValue::from_str(&v) {
                resp.headers_mut().insert(name, hv);
            }
        }
    }
}

/// A JSON page (manifest, versions): adds `next` when more follows, and the
/// `date_added` headers of the page.
fn paged_json(
    node: &Node,
    view: &View,
    coll: &Collection,
    f: &Filters,
    p: &select::Page,
    body: Value,
) -> Response {
    let da = |h: u32| view.versions()[h as usize].date_added;
    paged_json_of(
        node,
        coll,
        f,
        (p.more, p.resume_after),
        (
            p.handles.first().map(|&h| da(h)),
            p.handles.last().map(|&h| da(h)),
        ),
        body,
    )
}

/// [`paged_json`] given whether more follows and where from, and the first and
/// last `date_added` of the page.
fn paged_json_of(
    node: &Node,
    coll: &Collection,
    f: &Filters,
    (more, resume_after): (bool, Option<i64>),
    (first, last): (Option<i64>, Option<i64>),
    mut body: Value,
) -> Response {
    if let (true, Some(after)) = (more, resume_after) {
        body["next"] = json!(token::encode(
            node.token_key(),
            &coll.token_scope(),
            &f.canonical,
            after
        ));
    }
    let mut resp = taxii_json(StatusCode::OK, body.to_string().into_bytes());
    date_headers_of(&mut resp, first, last);
    resp
}

/// Writes a TAXII envelope of raw object bodies.
fn envelope_response(
    node: &Node,
    view: &View,
    coll: &Collection,
    f: &Filters,
    p: &select::Page,
) -> Result<Response, ApiError> {
    let mut body = Vec::with_capacity(64 + p.handles.len() * 700);
    body.extend_from_slice(b"{\"more\":");
    body.extend_from_slice(if p.more { b"true" } else { b"false" });
    if let (true, Some(after)) = (p.more, p.resume_after) {
        body.extend_from_slice(b",\"next\":\"");
        body.extend_from_slice(
            token::encode(node.token_key(), &coll.token_scope(), &f.canonical, after).as_bytes(),
        );
        body.push(b'"');
    }
    if !p.handles.is_empty() {
        body.extend_from_slice(b",\"objects\":[");
        // Objects stored next to each other in one envelope are separated by exactly
        // one comma there, as they are here: a run of them is one read, copied as is.
        let mut run: Option<crate::store::view::BodyLocation> = None;
        let mut first = true;
        // Appends a run of stored bodies (or, without one, nothing) after a comma
        // when something precedes it.
        let flush = |body: &mut Vec<u8>, first: &mut bool, run: Option<_>| {
            let Some(r) = run else {
                return Ok(());
            };
            if !std::mem::take(first) {
                body.push(b',');
            }
            node.embedded("TAXII")
                .map_err(ApiError::backend)?
                .object_body_onto(r, body)
                .map_err(ApiError::internal)
        };
        for &h in &p.handles {
            if view
                .version(h)
                .is_some_and(|v| v.has(crate::store::view::RETRACTED))
            {
                // A tombstone is written out, not copied (see `Store::version_body`).
                flush(&mut body, &mut first, run.take())?;
                if !std::mem::take(&mut first) {
                    body.push(b',');
                }
                body.extend_from_slice(
                    &node
                        .embedded("TAXII")
                        .map_err(ApiError::backend)?
                        .version_body(view, h)
                        .map_err(ApiError::internal)?,
                );
                continue;
            }
            let at = view
                .body_location(h)
                .ok_or_else(|| ApiError::internal("version without location"))?;
            match &mut run {
                Some(r)
                    if r.segment == at.segment && r.offset + u64::from(r.len) + 1 == at.offset =>
                {
                    r.len += 1 + at.len;
                }
                _ => {
                    flush(&mut body, &mut first, run.take())?;
                    run = Some(at);
                }
            }
        }
        flush(&mut body, &mut first, run)?;
        body.push(b']');
    }
    body.push(b'}');
    let mut resp = taxii_json(StatusCode::OK, body);
    date_headers(&mut resp, view, &p.handles);
    Ok(resp)
}

async fn get_objects(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: HeaderMap,
    Path(coll): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    check_accept(&headers)?;
    read(&caller)?;
    let c = collection(&node, &caller, &coll)?;
    if let Some(pg) = node.backend().postgres() {
        return pg_objects(&node, &pg.store, &c, &caller, &q, None).await;
    }
    tokio::task::spawn_blocking(move || {
        let store = node.embedded("TAXII").map_err(ApiError::backend)?;
        let view = store.read();
        let (p, f) = page(&node, &view, &c, &caller, &q, VersionSpec::Last, None)?;
        envelope_response(&node, &view, &c, &f, &p)
    })
    .await
    .map_err(ApiError::internal)?
}

/// 404 when a page for one object id is empty and no page follows: the collection
/// holds no version of it that the caller may see.
fn object_found(p: &select::Page, f: &Filters, id: &str, c: &Collection) -> Result<(), ApiError> {
    if p.handles.is_empty() && f.next.is_none() {
        return Err(
            ApiError::not_found(format!("no object {id} in collection {}", c.alias)).taxii(),
        );
    }
    Ok(())
}

async fn get_object(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: HeaderMap,
    Path((coll, id)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    check_accept(&headers)?;
    read(&caller)?;
    let c = collection(&node, &caller, &coll)?;
    if let Some(pg) = node.backend().postgres() {
        return pg_objects(&node, &pg.store, &c, &caller, &q, Some(&id)).await;
    }
    tokio::task::spawn_blocking(move || {
        let store = node.embedded("TAXII").map_err(ApiError::backend)?;
        let view = store.read();
        let (p, f) = page(&node, &view, &c, &caller, &q, VersionSpec::Last, Some(&id))?;
        object_found(&p, &f, &id, &c)?;
        envelope_response(&node, &view, &c, &f, &p)
    })
    .await
    .map_err(ApiError::internal)?
}

async fn get_versions(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: HeaderMap,
    Path((coll, id)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    check_accept(&headers)?;
    read(&caller)?;
    let c = collection(&node, &caller, &coll)?;
    // Off the async workers, as every handler that reads the view: a publish may hold
    // the view's write lock for a moment.
    if let Some(pg) = node.backend().postgres() {
        return pg_versions(&node, &pg.store, &c, &caller, &q, &id).await;
    }
    tokio::task::spawn_blocking(move || {
        let store = node.embedded("TAXII").map_err(ApiError::backend)?;
        let view = store.read();
        let (p, f) = page(&node, &view, &c, &caller, &q, VersionSpec::All, Some(&id))?;
        object_found(&p, &f, &id, &c)?;
        let mut versions: Vec<(i64, String)> = p
            .handles
            .iter()
            .map(|&h| {
                let v = &view.versions()[h as usize];
                (v.modified, version_text(v.modified, v.date_added))
            })
            .collect();
        versions.sort();
        let body = json!({"more": p.more, "versions": versions.into_iter().map(|(_, s)| s).collect::<Vec<_>>()});
        Ok(paged_json(&node, &view, &c, &f, &p, body))
    })
    .await
    .map_err(ApiError::internal)?
}

async fn get_manifest(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: HeaderMap,
    Path(coll): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    check_accept(&headers)?;
    read(&caller)?;
    let c = collection(&node, &caller, &coll)?;
    if let Some(pg) = node.backend().postgres() {
        return pg_manifest(&node, &pg.store, &c, &caller, &q).await;
    }
    tokio::task::spawn_blocking(move || {
        let store = node.embedded("TAXII").map_err(ApiError::backend)?;
        let view = store.read();
        let (p, f) = page(&node, &view, &c, &caller, &q, VersionSpec::Last, None)?;
        let records: Vec<Value> = p
            .handles
            .iter()
            .map(|&h| {
                let v = &view.versions()[h as usize];
                manifest_record(object_id(&view, h), v.modified, v.date_added)
            })
            .collect();
        Ok(paged_json(
            &node,
            &view,
            &c,
            &f,
            &p,
            manifest_body(p.more, records),
        ))
    })
    .await
    .map_err(ApiError::internal)?
}

/// One manifest record.
fn manifest_record(id: String, modified: i64, date_added: i64) -> Value {
    json!({
        "id": id,
        "date_added": Timestamp::from_micros(date_added).to_micros_string(),
        "version": version_text(modified, date_added),
        "media_type": STIX_MEDIA_TYPE,
    })
}

/// A manifest page's body (without `next`).
fn manifest_body(more: bool, records: Vec<Value>) -> Value {
    let mut body = json!({ "more": more });
    if !records.is_empty() {
        body["objects"] = json!(records);
    }
    body
}

async fn add_objects(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: HeaderMap,
    Path(coll): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    check_accept(&headers)?;
    let c = collection(&node, &caller, &coll)?;
    if !c.writable {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "read-only",
            format!("collection {} is read-only; publish into `local`", c.alias),
        )
        .taxii());
    }
    caller.require(Role::Publish).map_err(ApiError::taxii)?;
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
        .replace(' ', "");
    if !(ctype == "application/taxii+json"
        || ctype.starts_with("application/taxii+json;version=2.1"))
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            format!("POST a TAXII envelope as {TAXII_MEDIA_TYPE}"),
        )
        .taxii());
    }
    // Waits its turn before reading the body (limits.max_concurrent_publishes).
    let _turn = node
        .publish_turn()
        .await
        .map_err(|e| ApiError::internal(e).taxii())?;
    let (bytes, _budget) = read_body(body, &node, node.config().limits.max_body_bytes)
        .await
        .map_err(ApiError::taxii)?;
    let request_timestamp = Timestamp::now().to_micros_string();
    let n = node.clone();
    let status = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        // The objects are published as a bundle of this member's.
        let mut bundle = serde_json::Map::new();
        bundle.insert("type".into(), json!("bundle"));
        bundle.insert(
            "id".into(),
            json!(format!("bundle--{}", uuid::Uuid::new_v4())),
        );
        let window = n.config().limits.publish_window_objects;
        let report = match parse_publish_body(&bytes, window).map_err(ApiError::taxii)? {
            PublishBody::Windowed(mut raw) => {
                raw.members = bundle;
                n.publish_windowed(&raw, &[], Mode::PerObject)
            }
            PublishBody::Whole(mut doc) => {
                // The parsed form is all that is needed from here on.
                drop(bytes);
                let objects = match doc.get_mut("objects") {
                    Some(Value::Array(objects)) => std::mem::take(objects),
                    _ => {
                        return Err(ApiError::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "not-an-envelope",
                            "body must be a TAXII envelope {\"objects\": […]}",
                        )
                        .taxii());
                    }
                };
                bundle.insert("objects".into(), Value::Array(objects));
                n.publish(Value::Object(bundle), &[], Mode::PerObject)
            }
        }
        .map_err(|e| publish_error(e).taxii())?;
        let entry = |r: &crate::node::publish::ObjectResult, message: String| {
            let mut e = json!({"id": r.id, "message": message});
            if let Some(v) = &r.version {
                e["version"] = json!(v);
            }
            e
        };
        let successes: Vec<Value> = report
            .objects
            .iter()
            .filter(|r| r.status != ObjectStatus::Rejected)
            .map(|r| {
                entry(
                    r,
                    if r.status == ObjectStatus::Held {
                        "already published with identical content".into()
                    } else {
                        format!("published in {}", r.envelope.clone().unwrap_or_default())
                    },
                )
            })
            .collect();
        let failures: Vec<Value> = report
            .objects
            .iter()
            .filter(|r| r.status == ObjectStatus::Rejected)
            .map(|r| {
                entry(
                    r,
                    r.errors
                        .iter()
                        .map(|f| format!("{} [{}] {}", f.pointer, f.code, f.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })
            .collect();
        let status = json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "status": "complete",
            "request_timestamp": request_timestamp,
            "total_count": report.objects.len(),
            "success_count": successes.len(),
            "successes": successes,
            "failure_count": failures.len(),
            "failures": failures,
            "pending_count": 0,
            "pendings": [],
        });
        let id = status["id"].as_str().unwrap_or_default().to_string();
        let text = status.to_string().into_bytes();
        match n.backend() {
            Backend::Embedded(store) => store.put_value(Space::Status, &id, text, false),
            Backend::Postgres(pg) => pg.block(pg.store.put_value(Space::Status, &id, &text)),
        }
        .map_err(|e| ApiError::store(e).taxii())?;
        Ok(status)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(taxii_json(
        StatusCode::ACCEPTED,
        status.to_string().into_bytes(),
    ))
}

async fn get_status(
    State(node): State<Arc<Node>>,
    caller: Caller,
    headers: HeaderMap,
    Path(status): Path<String>,
) -> Result<Response, ApiError> {
    check_accept(&headers)?;
    if !caller.has(Role::Read) && !caller.has(Role::Publish) {
        read(&caller)?;
    }
    if uuid::Uuid::parse_str(&status).is_err() {
        return Err(ApiError::not_found(format!("no status {status}")).taxii());
    }
    let v = match node.backend() {
        Backend::Embedded(store) => store.get_value(Space::Status, &status),
        Backend::Postgres(pg) => pg.store.get_value(Space::Status, &status).await,
    }
    .map_err(|e| ApiError::store(e).taxii())?
    .ok_or_else(|| ApiError::not_found(format!("no status {status}")).taxii())?;
    Ok(taxii_json(StatusCode::OK, v))
}

// The same answers from a node on PostgreSQL: pages chosen by `select_pg`, objects'
// bodies read with the versions chosen.

/// What a page from PostgreSQL answers, which sets its default `match[version]` and
/// whether it needs the objects' bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PgAnswer {
    /// `…/objects/` and `…/objects/{id}/`: the latest versions, with bodies.
    Objects,
    /// `…/objects/{id}/versions/`: every version, without bodies.
    Versions,
    /// `…/manifest/`: the latest versions, without bodies.
    Manifest,
}

async fn pg_page(
    node: &Node,
    pg: &crate::store::postgres::PgStore,
    c: &Collection,
    caller: &Caller,
    q: &[(String, String)],
    answer: PgAnswer,
    id: Option<&str>,
) -> Result<(select_pg::Page, Filters), ApiError> {
    let default_versions = match answer {
        PgAnswer::Versions => VersionSpec::All,
        PgAnswer::Objects | PgAnswer::Manifest => VersionSpec::Last,
    };
    let with_bodies = answer == PgAnswer::Objects;
    let req = page_request(node, c, q, default_versions, id)?;
    let page = select_pg::select(
        pg,
        c,
        &req.filters,
        caller.max_tlp(),
        req.after,
        with_bodies,
    )
    .await
    .map_err(|e| ApiError::store(e).taxii())?;
    Ok((page, req.filters))
}

fn pg_found(p: &select_pg::Page, f: &Filters, id: &str, c: &Collection) -> Result<(), ApiError> {
    if p.rows.is_empty() && f.next.is_none() {
        return Err(
            ApiError::not_found(format!("no object {id} in collection {}", c.alias)).taxii(),
        );
    }
    Ok(())
}

fn pg_dates(p: &select_pg::Page) -> (Option<i64>, Option<i64>) {
    (
        p.rows.first().map(|r| r.date_added),
        p.rows.last().map(|r| r.date_added),
    )
}

async fn pg_objects(
    node: &Node,
    pg: &crate::store::postgres::PgStore,
    c: &Collection,
    caller: &Caller,
    q: &[(String, String)],
    id: Option<&str>,
) -> Result<Response, ApiError> {
    let (p, f) = pg_page(node, pg, c, caller, q, PgAnswer::Objects, id).await?;
    if let Some(id) = id {
        pg_found(&p, &f, id, c)?;
    }
    let bodies = &p.bodies;
    let mut body = Vec::with_capacity(64 + bodies.iter().map(|b| b.len() + 1).sum::<usize>());
    body.extend_from_slice(b"{\"more\":");
    body.extend_from_slice(if p.more { b"true" } else { b"false" });
    if let (true, Some(after)) = (p.more, p.resume_after) {
        body.extend_from_slice(b",\"next\":\"");
        body.extend_from_slice(
            token::encode(node.token_key(), &c.token_scope(), &f.canonical, after).as_bytes(),
        );
        body.push(b'"');
    }
    if !bodies.is_empty() {
        body.extend_from_slice(b",\"objects\":[");
        for (i, b) in bodies.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(b);
        }
        body.push(b']');
    }
    body.push(b'}');
    let mut resp = taxii_json(StatusCode::OK, body);
    let (first, last) = pg_dates(&p);
    date_headers_of(&mut resp, first, last);
    Ok(resp)
}

async fn pg_versions(
    node: &Node,
    pg: &crate::store::postgres::PgStore,
    c: &Collection,
    caller: &Caller,
    q: &[(String, String)],
    id: &str,
) -> Result<Response, ApiError> {
    let (p, f) = pg_page(node, pg, c, caller, q, PgAnswer::Versions, Some(id)).await?;
    pg_found(&p, &f, id, c)?;
    let mut versions: Vec<(i64, String)> = p
        .rows
        .iter()
        .map(|r| (r.modified, version_text(r.modified, r.date_added)))
        .collect();
    versions.sort();
    let body = json!({"more": p.more, "versions": versions.into_iter().map(|(_, s)| s).collect::<Vec<_>>()});
    Ok(paged_json_of(
        node,
        c,
        &f,
        (p.more, p.resume_after),
        pg_dates(&p),
        body,
    ))
}

async fn pg_manifest(
    node: &Node,
    pg: &crate::store::postgres::PgStore,
    c: &Collection,
    caller: &Caller,
    q: &[(String, String)],
) -> Result<Response, ApiError> {
    let (p, f) = pg_page(node, pg, c, caller, q, PgAnswer::Manifest, None).await?;
    let records: Vec<Value> = p
        .rows
        .iter()
        .map(|r| manifest_record(r.object_id(), r.modified, r.date_added))
        .collect();
    let body = manifest_body(p.more, records);
    Ok(paged_json_of(
        node,
        c,
        &f,
        (p.more, p.resume_after),
        pg_dates(&p),
        body,
    ))
}
