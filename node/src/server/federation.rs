//! The federation API a peer member uses: its feed, pushes, and our view digest.

use super::body::{parse_json, read_body};
use super::caller::Caller;
use super::error::ApiError;
use crate::envelope::EnvelopeId;
use crate::json::RawObjects;
use crate::node::Node;
use crate::node::peers::policy::{self, Withheld};
use crate::node::peers::wire::{Carry, EnvelopeList};
use crate::node::receive::Offer;
use crate::store::view::EnvMeta;
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

pub use crate::node::peers::wire::{MAX_FEED_BYTES, MAX_FEED_PAGE};
/// Most envelopes in one push.
pub const MAX_PUSH: usize = 1000;

/// Federation routes.
pub fn routes() -> Router<Arc<Node>> {
    Router::new()
        .route("/federation/v1/feed", get(feed))
        .route("/federation/v1/envelopes", post(push))
        .route("/federation/v1/digest", get(digest))
        .route("/federation/v1/membership", get(membership))
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
    let mut relayed_as_ids = false;
    let mut max_bytes = MAX_FEED_BYTES;
    let mut with_own = false;
    for (k, v) in &q {
        match k.as_str() {
            "own" => {
                with_own = match v.as_str() {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => {
                        return Err(ApiError::bad_request("bad-own", "own must be 1 or 0"));
                    }
                }
            }
            "max_bytes" => {
                max_bytes = v
                    .parse::<usize>()
                    .ok()
                    .filter(|&b| b > 0)
                    .ok_or_else(|| {
                        ApiError::bad_request("bad-limit", "max_bytes must be a positive integer")
                    })?
                    .min(MAX_FEED_BYTES);
            }
            "relayed" => {
                relayed_as_ids = match v.as_str() {
                    "ids" => true,
                    "full" => false,
                    _ => {
                        return Err(ApiError::bad_request(
                            "bad-relayed",
                            "relayed must be ids or full",
                        ));
                    }
                }
            }
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
    let ask = FeedAsk {
        peer: peer.clone(),
        after,
        relayed_as_ids,
        with_own,
    };
    if let Some(pg) = node.backend().postgres() {
        return feed_postgres(&node, &pg.store, ask, limit, max_bytes).await;
    }
    tokio::task::spawn_blocking(move || {
        let live = node.live();
        let store = node.embedded("the federation feed").map_err(ApiError::backend)?;
        let view = store.read();
        // A cursor past the end of this log was given by a log that is no longer
        // (restored from an older backup): the peer must start again.
        let log_head = store.head();
        if after > log_head {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "cursor-beyond-head",
                format!(
                    "cursor {after} is past the end of this node's log ({log_head}, epoch {}): pull again from 0",
                    store.epoch()
                ),
            )
            .with_details(json!({"epoch": store.epoch(), "head": log_head})));
        }
        let envs = view.envelopes();
        let head = head_for(&node, &view, &peer);
        let start = envs.partition_point(|e| e.ordinal < after);
        let mut page_bytes = 0usize;
        let mut next = after;
        let mut more = false;
        let mut withheld: BTreeMap<String, u64> = BTreeMap::new();
        // What goes in the page is chosen first, so the body can be sized once and
        // each envelope read from the log straight into it.
        let mut entries: Vec<(&EnvMeta, Carry)> = Vec::new();
        for e in &envs[start..] {
            if entries.len() == limit || page_bytes >= max_bytes {
                more = true;
                break;
            }
            next = e.ordinal + 1;
            let about = About {
                ordinal: e.ordinal,
                origin: view.origin_name(e.origin),
                tlp: e.tlp,
                recipients: &e.recipients,
                received_from: &e.received_from,
            };
            match choose(&node, &live, &ask, &about) {
                Choice::Skip => continue,
                Choice::Withhold => {
                    *withheld.entry(e.tlp.as_str().to_string()).or_default() += 1;
                    continue;
                }
                Choice::Stop => {
                    next = e.ordinal;
                    break;
                }
                Choice::Take(carry) => {
                    page_bytes += carry.text_len(e);
                    entries.push((e, carry));
                }
            }
        }
        // `more` and `head` speak only of envelopes the peer may receive: a peer
        // never learns how many are withheld from it (security finding 9).
        let (more, head) = match head {
            Some(h) => (more && next < h, h.max(next)),
            // Nothing the peer may receive among the last envelopes looked through:
            // `more` stays as the page found it, and the head shows no further than
            // the page.
            None => (more, next),
        };
        let tail = format!(
            ",\"next\":\"{next}\",\"more\":{more},\"head\":{head},\"epoch\":\"{}\"}}",
            store.epoch()
        );
        let mut list = EnvelopeList::for_entries(&entries, tail.len());
        for (e, carry) in &entries {
            list.add(store, e, *carry)
                .map_err(ApiError::internal)?;
        }
        let (sent, objects) = carried(entries.iter().map(|(e, c)| (e.object_count, *c)));
        let mut body = list.finish();
        body.extend_from_slice(tail.as_bytes());
        node.sync()
            .update(node.backend(), &peer, !withheld.is_empty(), |s| {
                s.envelopes_sent += sent;
                s.objects_sent += objects;
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
    let (bytes, _budget) = read_body(body, &node, node.config().limits.max_body_bytes).await?;
    let results = tokio::task::spawn_blocking(move || {
        // The envelopes are kept as text: each is parsed (strictly) only if this node
        // does not hold its stated id, and its signed form is then taken from its
        // canonical bytes (see `Offer`).
        let Ok(raw) = RawObjects::split_at(&bytes, "envelopes") else {
            // Not JSON (400), or JSON of another shape (422).
            parse_json(&bytes)?;
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "malformed",
                "body must be {\"envelopes\": […]}",
            ));
        };
        let (doc, envelopes) = (raw.members, raw.objects);
        if envelopes.len() > MAX_PUSH {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-many-envelopes",
                format!("at most {MAX_PUSH} envelopes per push"),
            ));
        }
        let claimed = stated_ids(doc.get("ids"), envelopes.len())?;
        let offers: Vec<Offer> = envelopes
            .into_iter()
            .zip(claimed)
            .map(|(v, claimed)| Offer::within(&bytes, v.get(), claimed))
            .collect();
        node.accept_from_peer(&peer, offers).map_err(ApiError::keep)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(json_ok(
        json!({"results": results}).to_string().into_bytes(),
    ))
}

/// How many envelopes from the end of the log [`head_for`] looks through for the last
/// one a peer may receive.
const HEAD_SCAN: usize = 4096;

/// The feed's `head` for `peer`: just after the last envelope of the log it may
/// receive (or holds), so that withheld envelopes at the end of the log do not show.
/// Looks through the last [`HEAD_SCAN`] envelopes at most; `None` when none of them
/// may go to the peer (the page's own `next` then stands in).
fn head_for(node: &Node, view: &crate::store::view::View, peer: &str) -> Option<u64> {
    let live = node.live();
    view.envelopes()
        .iter()
        .rev()
        .take(HEAD_SCAN)
        .find(|e| {
            matches!(
                policy::may_send_held(&live, view, peer, e),
                Ok(()) | Err(Withheld::PeerHasIt)
            )
        })
        .map(|e| e.ordinal + 1)
}

/// The envelopes a page carries in full and the objects in them (counted for the
/// operator: an id alone sends nothing).
fn carried(entries: impl Iterator<Item = (u32, Carry)>) -> (u64, u64) {
    entries
        .filter(|(_, c)| *c == Carry::Body)
        .fold((0, 0), |(n, o), (k, _)| (n + 1, o + u64::from(k)))
}

/// What a feed request asks for.
struct FeedAsk {
    /// The peer asking.
    peer: String,
    /// Its cursor.
    after: u64,
    /// Whether relayed envelopes go as ids only.
    relayed_as_ids: bool,
    /// Whether the peer takes back its own envelopes.
    with_own: bool,
}

/// What the feed needs to know of one envelope to choose it.
struct About<'a> {
    ordinal: u64,
    origin: &'a str,
    tlp: crate::stix::tlp::TlpLevel,
    recipients: &'a [String],
    received_from: &'a str,
}

/// What the feed does with one envelope.
enum Choice {
    /// Left out: the peer has it (its own, or its origin is the peer).
    Skip,
    /// Left out by policy, counted per level for the operator.
    Withhold,
    /// The page ends before it: our push task sends it.
    Stop,
    /// In the page, with its body or as an id.
    Take(Carry),
}

/// The feed's rule for one envelope, whichever store holds it.
fn choose(node: &Node, live: &crate::node::live::Live, ask: &FeedAsk, e: &About<'_>) -> Choice {
    let peer = ask.peer.as_str();
    // With `own=1` the peer takes back its own envelopes (a log restored from an
    // older backup), whatever their level: they are its own.
    let its_own = ask.with_own && e.origin == peer;
    match policy::may_send(
        &live.signer.origin,
        &live.peers,
        peer,
        e.origin,
        e.tlp,
        e.recipients,
    ) {
        _ if its_own => {}
        Ok(()) => {}
        Err(Withheld::PeerHasIt) => return Choice::Skip,
        Err(_) => return Choice::Withhold,
    }
    // Pushed to the peer already, or sent to us by it: listed by id, not skipped. A
    // peer whose log was restored from a backup, or whose index was rebuilt, may have
    // lost it since, and asks for the page in full when it lacks the id.
    let pushed = node.sync().was_pushed(peer, ask.after, e.ordinal) || e.received_from == peer;
    let own = e.origin == node.member();
    if own && !pushed && node.sync().push_will_send(peer, e.ordinal) {
        // Our push task sends it (see `push_will_send`): stop here.
        return Choice::Stop;
    }
    // Relayed: the peer most likely has it from its origin already, and asks for the
    // body only if not. The ids go after the envelopes so a puller can skip parsing
    // those it holds.
    Choice::Take(if ask.relayed_as_ids && (!own || pushed) {
        Carry::IdOnly
    } else {
        Carry::Body
    })
}

/// The feed of a node on PostgreSQL: the same choice ([`choose`]) over envelopes
/// read a chunk at a time from the cursor, their bytes read in one statement.
async fn feed_postgres(
    node: &Arc<Node>,
    pg: &crate::store::postgres::PgStore,
    ask: FeedAsk,
    limit: usize,
    max_bytes: usize,
) -> Result<Response, ApiError> {
    let live = node.live();
    let log_head = pg.head().await.map_err(ApiError::store)?;
    if ask.after > log_head {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "cursor-beyond-head",
            format!(
                "cursor {} is past the end of this node's log ({log_head}, epoch {}): pull again from 0",
                ask.after,
                pg.epoch()
            ),
        )
        .with_details(json!({"epoch": pg.epoch(), "head": log_head})));
    }
    // The head the peer may see (as `head_for`).
    let head = pg
        .last_feed_entries(HEAD_SCAN)
        .await
        .map_err(ApiError::store)?
        .iter()
        .find(|e| {
            matches!(
                policy::may_send(
                    &live.signer.origin,
                    &live.peers,
                    &ask.peer,
                    &e.origin,
                    e.tlp,
                    &e.recipients
                ),
                Ok(()) | Err(Withheld::PeerHasIt)
            )
        })
        .map(|e| e.ordinal + 1);
    let mut entries: Vec<(crate::store::postgres::read::FeedRow, Carry)> = Vec::new();
    let mut withheld: BTreeMap<String, u64> = BTreeMap::new();
    let (mut next, mut more, mut page_bytes) = (ask.after, false, 0usize);
    let mut from = ask.after;
    'pages: loop {
        let chunk = pg.feed_entries(from, 512).await.map_err(ApiError::store)?;
        if chunk.is_empty() {
            break;
        }
        for e in chunk {
            if entries.len() == limit || page_bytes >= max_bytes {
                more = true;
                break 'pages;
            }
            next = e.ordinal + 1;
            let a = About {
                ordinal: e.ordinal,
                origin: &e.origin,
                tlp: e.tlp,
                recipients: &e.recipients,
                received_from: &e.received_from,
            };
            match choose(node, &live, &ask, &a) {
                Choice::Skip => {}
                Choice::Withhold => *withheld.entry(e.tlp.as_str().to_string()).or_default() += 1,
                Choice::Stop => {
                    next = e.ordinal;
                    break 'pages;
                }
                Choice::Take(carry) => {
                    page_bytes += match carry {
                        Carry::Body => e.len,
                        Carry::IdOnly => 4,
                    };
                    entries.push((e, carry));
                }
            }
        }
        from = next;
    }
    let (more, head) = match head {
        Some(h) => (more && next < h, h.max(next)),
        None => (more, next),
    };
    let tail = format!(
        ",\"next\":\"{next}\",\"more\":{more},\"head\":{head},\"epoch\":\"{}\"}}",
        pg.epoch()
    );
    let with_body: Vec<[u8; 32]> = entries
        .iter()
        .filter(|(_, c)| *c == Carry::Body)
        .map(|(e, _)| e.id)
        .collect();
    let mut bodies = pg
        .envelope_bodies(&with_body)
        .await
        .map_err(ApiError::store)?
        .into_iter();
    let mut list = EnvelopeList::with_capacity(
        entries.iter().map(|(e, c)| match c {
            Carry::Body => e.len,
            Carry::IdOnly => 4,
        }),
        tail.len(),
    );
    for (e, carry) in &entries {
        match carry {
            Carry::Body => {
                let body = bodies.next().unwrap_or_default();
                list.add_with(&e.id, *carry, |out| {
                    out.extend_from_slice(&body);
                    Ok(())
                })
                .map_err(ApiError::internal)?;
            }
            Carry::IdOnly => list
                .add_with(&e.id, *carry, |_| Ok(()))
                .map_err(ApiError::internal)?,
        }
    }
    let (sent, objects) = carried(entries.iter().map(|(e, c)| (e.object_count, *c)));
    let mut body = list.finish();
    body.extend_from_slice(tail.as_bytes());
    let n = node.clone();
    let persist = !withheld.is_empty();
    tokio::task::spawn_blocking(move || {
        n.sync().update(n.backend(), &ask.peer, persist, |s| {
            s.envelopes_sent += sent;
            s.objects_sent += objects;
            for (l, k) in withheld {
                *s.withheld.entry(l).or_default() += k;
            }
        })
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(json_ok(body))
}

/// The optional `ids` of a push: one `sha256:…` id per envelope, in order.
fn stated_ids(ids: Option<&Value>, n: usize) -> Result<Vec<Option<EnvelopeId>>, ApiError> {
    let bad = || {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "malformed",
            "ids must be an array of one envelope id (sha256:…) per envelope",
        )
    };
    match ids {
        None => Ok(vec![None; n]),
        Some(Value::Array(a)) if a.len() == n => a
            .iter()
            .map(|v| {
                v.as_str()
                    .and_then(EnvelopeId::parse)
                    .map(Some)
                    .ok_or_else(bad)
            })
            .collect(),
        Some(_) => Err(bad()),
    }
}

async fn digest(State(node): State<Arc<Node>>, caller: Caller) -> Result<Response, ApiError> {
    caller.require_peer()?;
    // Every peer asks every two seconds; the view's lock may be held by an ingest.
    tokio::task::spawn_blocking(move || {
        let head = node.backend().head().map_err(ApiError::store)?;
        let digests = node.shared_digests().map_err(ApiError::store)?;
        let mut body = json!({"member": node.member(), "head": head, "digests": digests});
        // The membership log's head: a peer that lacks entries, or holds others,
        // fetches them (`GET /federation/v1/membership`).
        if let Some(h) = node.live().membership.as_ref().and_then(|l| l.head()) {
            body["membership"] = json!({"index": h.index, "hash": h.hash});
            // A fork seen here is stated too: peers that hold one side only fetch
            // the other (`conflicting` in the entries answer) and see it as well.
            if let Some(f) = node.membership().forks().first() {
                body["membership"]["fork"] = json!({"index": f.index, "hash": f.other.hash});
            }
        }
        Ok(json_ok(body.to_string().into_bytes()))
    })
    .await
    .map_err(ApiError::internal)?
}

/// `GET /federation/v1/membership?from=N`: the membership log's entries from index
/// `N` (default 0), at most [`crate::node::membership::MAX_ENTRIES_PAGE`], with the
/// head and whether more follow. Entries carry their own approvals: a peer checks
/// each against the log it holds, whoever served it.
async fn membership(
    State(node): State<Arc<Node>>,
    caller: Caller,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    caller.require_peer()?;
    let mut from = 0u64;
    for (k, v) in &q {
        if k == "from" {
            from = v.parse().map_err(|_| {
                ApiError::bad_request("bad-from", "from must be an entry index (a number)")
            })?;
        }
    }
    let Some(page) = node.membership_entries(from) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no-membership-log",
            "this node follows no membership log",
        ));
    };
    let body = serde_json::to_vec(&page).map_err(ApiError::internal)?;
    Ok(json_ok(body))
}
