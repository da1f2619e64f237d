//! The per-peer tasks: pull (catch-up, forwarding and repair), push (this node's own
//! envelopes, at once), digest checks.

use super::client::{PageSize, PeerClient, SyncError};
use crate::envelope::EnvelopeId;
use crate::node::Node;
use crate::node::peers::wire::{Carry, EnvelopeList};
use crate::node::peers::{now, policy};
use crate::node::receive::{Offer, OfferStatus};
use crate::store::postgres::lease::LeaseKind;
use crate::store::view::EnvMeta;
use serde::Deserialize as _;
use std::sync::Arc;
use std::time::Duration;

/// Envelopes per pulled page.
const PULL_PAGE: usize = 200;
/// Envelopes per push, at most.
const PUSH_BATCH: usize = 100;
/// Bytes per push, about: a push stops growing past this, so the peer parses and
/// stores one small batch while the next is on its way (and memory stays low).
const PUSH_BYTES: usize = 4 << 20;
/// Quiet-time poll interval when caught up.
const POLL: Duration = Duration::from_millis(1000);

/// Starts the sync tasks: one set per peer, following the peers as the node reloads
/// its roster and config (`node::live`), and the retry of envelopes kept for a
/// passing reason. Abort the handles to stop them (a peer's tasks stop with them).
pub fn spawn(node: Arc<Node>) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(retry_loop(node.clone())),
        tokio::spawn(peers_loop(node)),
    ]
}

/// A peer's pull, push and digest tasks, stopped when dropped.
struct PeerTasks {
    url: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for PeerTasks {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Runs one [`PeerTasks`] per peer now in force: starts those of a peer gained (or
/// whose URL changed), stops those of a peer lost, at every reload.
async fn peers_loop(node: Arc<Node>) {
    let mut changes = node.live_changes();
    let mut running: std::collections::BTreeMap<String, PeerTasks> = Default::default();
    loop {
        let live = node.live();
        let wanted: Vec<(String, String)> = live
            .peers
            .iter()
            .filter_map(|p| live.peer_url(p).map(|u| (p.name.clone(), u)))
            .collect();
        running.retain(|name, t| {
            let keep = wanted.iter().any(|(n, u)| n == name && *u == t.url);
            if !keep {
                tracing::info!(peer = %name, "stopped syncing with this peer");
            }
            keep
        });
        for (name, url) in wanted {
            if running.contains_key(&name) {
                continue;
            }
            let client = match PeerClient::new(node.config(), &name, &url, node.tls_gate()) {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    tracing::error!(peer = %name, error = %e, "cannot build a client for this peer; not syncing with it");
                    continue;
                }
            };
            tracing::debug!(peer = %name, %url, "syncing with this peer");
            let tasks = vec![
                tokio::spawn(pull_loop(node.clone(), client.clone())),
                tokio::spawn(push_loop(node.clone(), client.clone())),
                tokio::spawn(digest_loop(node.clone(), client)),
            ];
            running.insert(name, PeerTasks { url, tasks });
        }
        if changes.changed().await.is_err() {
            // The node is gone: keep the tasks until this one is stopped.
            std::future::pending::<()>().await;
        }
    }
}

/// Tries the kept envelopes that are due, every second (see `node::peers::deferred`).
async fn retry_loop(node: Arc<Node>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let n = node.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || retry_due(&n)).await {
            tracing::error!(error = %e, "the retry of kept envelopes failed");
        }
    }
}

/// Offers each due kept envelope again, as from the peer that sent it; those stored,
/// found held, or refused for good leave the set, the others wait again.
pub fn retry_due(node: &Node) {
    let store = node.backend();
    for (peer, items) in node.sync().deferred.due(store, now(), 64) {
        let offers: Vec<Offer> = items
            .iter()
            .map(|(_, text)| Offer {
                text: text.clone(),
                claimed: None,
            })
            .collect();
        match node.accept_from_peer(&peer, offers) {
            Ok(results) => {
                for (r, (id, _)) in results.iter().zip(&items) {
                    // Still waiting; or refused for a passing reason but not kept
                    // again (a store write failed): it stays as it was.
                    let passing = r.status == OfferStatus::Rejected
                        && r.code
                            .as_deref()
                            .is_some_and(crate::node::peers::deferred::is_retryable);
                    if r.status == OfferStatus::Deferred || passing {
                        continue;
                    }
                    tracing::info!(peer, envelope = %id, status = ?r.status, code = ?r.code, "an envelope kept for a retry was tried again");
                    if let Err(e) = node.sync().deferred.forget(store, &peer, id) {
                        tracing::warn!(peer, envelope = %id, error = %e, "cannot forget a kept envelope; it is tried again");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(peer, error = %e, "cannot store kept envelopes; trying later")
            }
        }
    }
}

/// Exponential backoff with jitter: 0.5 s, 1 s, 2 s … up to 30 s, ±25%.
fn backoff(failures: u32) -> Duration {
    let base = 500u64.saturating_mul(1 << failures.min(6)).min(30_000);
    let mut r = [0u8; 2];
    let _ = getrandom::fill(&mut r);
    let jitter = u64::from(u16::from_le_bytes(r)) % (base / 2 + 1);
    Duration::from_millis(base - base / 4 + jitter)
}

fn record_error(node: &Node, peer: &str, e: &SyncError) {
    tracing::warn!(peer, error = %e, "sync with peer failed");
    node.sync().update(node.backend(), peer, true, |s| {
        s.reachable = !matches!(e, SyncError::Unreachable { .. });
        s.last_error = Some((now(), e.to_string()));
        *s.failures.entry(e.kind().to_string()).or_default() += 1;
    });
}

/// How many of `ids` this node does not hold.
fn missing(node: &Node, ids: &[EnvelopeId]) -> usize {
    let ids: Vec<[u8; 32]> = ids.iter().map(EnvelopeId::digest_bytes).collect();
    match node.backend().held(&ids) {
        Ok(held) => held.iter().filter(|h| !**h).count(),
        // Unknown: ask for the bodies.
        Err(_) => ids.len(),
    }
}

/// Pulls a peer's feed from the persisted cursor, forever.
///
/// Pages ask for relayed envelopes (other origins') as ids only: in a full mesh the
/// origin has pushed them here already, and sending their bodies again from every
/// other member was most of the federation's traffic and a good part of its CPU (TLS
/// both ways, copies, scanning text only to drop it). A page listing a relayed id this
/// node does not hold is asked for again in full, and the next page is asked for in
/// full too (a node catching up lacks most of them); once a full page brings mostly
/// envelopes held already, pages go back to ids.
///
/// Storing a page runs on one core (one writer, one `fsync`), so while a page is
/// stored the next one is checked (parsed, verified, its content checked) on the
/// others, and the one after that is asked for: a node catching up kept its cores busy
/// only two thirds of the time when it did one page after the other. Pages are still
/// stored one after the other, in feed order, and the cursor moves past a page only
/// once that page is durable; if storing fails, the pages checked and asked for
/// meanwhile are dropped and asked for again.
async fn pull_loop(node: Arc<Node>, client: Arc<PeerClient>) {
    let peer = client.name.clone();
    let mut failures = 0u32;
    let mut relayed_as_ids = true;
    // Halved after a page that failed for its size or time, doubled back after one
    // that came through (security of sync: a large or slow page is never asked for
    // again the same way, so it cannot stop the pull).
    let full = PageSize::full(PULL_PAGE);
    let mut size = full;
    // The page being stored, if any.
    let mut storing: Option<Storing> = None;
    // The page after the one being checked, asked for already.
    let mut ahead: Option<Ahead> = None;
    // On PostgreSQL, the lease that makes this process the one pulling this peer.
    let mut lease = node
        .backend()
        .postgres()
        .map(|pg| PeerLease::new(LeaseKind::Pull, &peer, &pg.holder));
    loop {
        if let Some(l) = lease.as_mut() {
            match l.hold(&node).await {
                Held::Still => {}
                Held::Newly => {
                    // Another process may have pulled meanwhile: on from the cursor it
                    // persisted with what it stored.
                    let n = node.clone();
                    let p = peer.clone();
                    let _ =
                        tokio::task::spawn_blocking(move || n.sync().reload_peer(n.backend(), &p))
                            .await;
                    tracing::info!(peer, "this process pulls this peer now");
                }
                Held::No => {
                    ahead = None;
                    if let Some(s) = storing.take() {
                        let _ = stored(&node, &peer, s, &mut relayed_as_ids).await;
                    }
                    tokio::time::sleep(LEASE_RENEW).await;
                    continue;
                }
            }
        }
        // After the page being stored, or from the persisted cursor.
        let cursor = match &storing {
            Some(s) => s.page.next,
            None => node.sync().peer(&peer).cursor,
        };
        node.sync().update(node.backend(), &peer, false, |s| {
            s.last_attempt = Some(now())
        });
        // While the node takes back its own envelopes (after a rebuild), the feed
        // includes them.
        let own = node.recovering();
        let mut page = match ahead.take().and_then(|a| a.for_cursor(cursor)) {
            Some(task) => match task.await {
                Ok(page) => page,
                // The task failed: ask again.
                Err(_) => client.feed(cursor, size, relayed_as_ids, own).await,
            },
            None => client.feed(cursor, size, relayed_as_ids, own).await,
        };
        if let Ok(p) = &page
            && missing(&node, &p.relayed) > 0
        {
            relayed_as_ids = false;
            page = client.feed(cursor, size, false, own).await;
        }
        let mut page = match page {
            Ok(p) => p,
            Err(e) => {
                // What is being stored is finished first, so the cursor moves.
                if let Some(s) = storing.take() {
                    let _ = stored(&node, &peer, s, &mut relayed_as_ids).await;
                }
                if e.is_cursor_beyond_head() {
                    start_again(&node, &peer, None, "its log is shorter than our cursor");
                    continue;
                }
                record_error(&node, &peer, &e);
                if e.is_size_or_time() && size != size.halved() {
                    size = size.halved();
                    tracing::info!(
                        peer,
                        envelopes = size.envelopes,
                        bytes = size.bytes,
                        "asking for smaller feed pages"
                    );
                }
                failures += 1;
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
        };
        size = size.doubled(full);
        // Another epoch: the peer's log was rebuilt or restored, and our cursor means
        // nothing in it. What is being stored is finished, then the pull starts again
        // from 0 (what we hold already is skipped by id).
        let known = node.sync().peer(&peer).epoch;
        if let (Some(theirs), Some(ours)) = (&page.epoch, &known)
            && theirs != ours
        {
            ahead = None;
            if let Some(s) = storing.take() {
                let _ = stored(&node, &peer, s, &mut relayed_as_ids).await;
            }
            start_again(&node, &peer, page.epoch.clone(), "its log has a new epoch");
            continue;
        }
        // The page after this one is asked for while this one is checked.
        if page.more {
            let (c, next, ids) = (client.clone(), page.next, relayed_as_ids);
            ahead = Some(Ahead {
                cursor: next,
                task: Some(tokio::spawn(
                    async move { c.feed(next, size, ids, own).await },
                )),
            });
        }
        let (n, p) = (node.clone(), peer.clone());
        let offers = std::mem::take(&mut page.envelopes);
        let checked = tokio::task::spawn_blocking(move || n.check_offers(&p, offers)).await;
        // The page before must be durable before this one is stored; if it is not,
        // this page is dropped and asked for again after it.
        if !finish_storing(
            &node,
            &peer,
            &mut storing,
            &mut relayed_as_ids,
            &mut failures,
        )
        .await
        {
            continue;
        }
        let checked = match checked {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                // The store could not be read (the database unavailable): the page is
                // asked for again once it can.
                record_error(&node, &peer, &SyncError::Store(e));
                failures += 1;
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
            Err(e) => {
                tracing::error!(peer, error = %e, "checking task failed");
                tokio::time::sleep(backoff(failures + 1)).await;
                continue;
            }
        };
        let (n, p) = (node.clone(), peer.clone());
        let task = tokio::task::spawn_blocking(move || n.store_checked(&p, checked));
        let more = page.more;
        storing = Some(Storing { page, task });
        let read_through_own = own && !more;
        // Caught up: finish storing, then wait for more.
        if !more
            && finish_storing(
                &node,
                &peer,
                &mut storing,
                &mut relayed_as_ids,
                &mut failures,
            )
            .await
        {
            if read_through_own {
                node.recovered_from(&peer);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// How long a pull or push lease lasts without renewal, and how often it is renewed:
/// a process that dies leaves its peers to another within `LEASE_TTL + LEASE_RENEW`.
const LEASE_TTL: Duration = Duration::from_secs(6);
const LEASE_RENEW: Duration = Duration::from_secs(2);

/// A process's claim to pull one peer, or to push to it (a node on PostgreSQL:
/// docs/scaling.md).
struct PeerLease {
    kind: LeaseKind,
    peer: String,
    holder: String,
    held: bool,
    renewed: Option<tokio::time::Instant>,
}

/// Whether this process pulls the peer (or pushes to it).
enum Held {
    /// Yes, as before.
    Still,
    /// Yes, from now on.
    Newly,
    /// No: another process does (or the database cannot say).
    No,
}

impl PeerLease {
    fn new(kind: LeaseKind, peer: &str, holder: &str) -> PeerLease {
        PeerLease {
            kind,
            peer: peer.to_string(),
            holder: holder.to_string(),
            held: false,
            renewed: None,
        }
    }

    /// Takes or renews the lease (at most every `LEASE_RENEW` while held).
    async fn hold(&mut self, node: &Node) -> Held {
        if self.held && self.renewed.is_some_and(|t| t.elapsed() < LEASE_RENEW) {
            return Held::Still;
        }
        let Some(pg) = node.backend().postgres() else {
            return Held::Still;
        };
        let was = self.held;
        self.held = match pg
            .store
            .take_lease(self.kind, &self.peer, &self.holder, LEASE_TTL)
            .await
        {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(peer = %self.peer, lease = self.kind.as_str(), error = %e, "cannot take or renew the lease");
                false
            }
        };
        if self.held {
            self.renewed = Some(tokio::time::Instant::now());
        }
        match (was, self.held) {
            (_, false) => {
                if was {
                    tracing::info!(peer = %self.peer, lease = self.kind.as_str(), "another process holds this peer's lease now");
                }
                Held::No
            }
            (false, true) => Held::Newly,
            (true, true) => Held::Still,
        }
    }
}

/// Starts the pull from `peer` again at 0 (for `epoch`, when known): its log is not
/// the one our cursor was in.
fn start_again(node: &Node, peer: &str, epoch: Option<String>, why: &str) {
    tracing::warn!(
        peer,
        "{why} (restored or rebuilt): pulling its feed again from the start"
    );
    node.sync().update(node.backend(), peer, true, |s| {
        s.cursor = 0;
        s.epoch = epoch;
        s.their_head = None;
        s.behind_since = None;
    });
}

/// A feed page asked for ahead of its turn. Dropping it cancels the request.
struct Ahead {
    /// The cursor it was asked for after.
    cursor: u64,
    task: Option<tokio::task::JoinHandle<Result<super::client::FeedPage, SyncError>>>,
}

impl Ahead {
    /// The request, if it is for the page after `cursor` (after a failed store the
    /// pull starts again from the persisted cursor, and the page asked for ahead is
    /// not the one wanted).
    fn for_cursor(
        mut self,
        cursor: u64,
    ) -> Option<tokio::task::JoinHandle<Result<super::client::FeedPage, SyncError>>> {
        if self.cursor == cursor {
            self.task.take()
        } else {
            None
        }
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A pulled page whose envelopes are being stored.
struct Storing {
    /// The page (its envelopes taken out).
    page: super::client::FeedPage,
    /// The task storing them.
    task: tokio::task::JoinHandle<
        Result<Vec<crate::node::receive::Offered>, crate::node::peers::deferred::KeepError>,
    >,
}

/// Finishes storing the page being stored, if any. `false` if that failed: the
/// failure is recorded and waited out (backing off further with each failure in a
/// row), and the pull starts again from the persisted cursor.
async fn finish_storing(
    node: &Node,
    peer: &str,
    storing: &mut Option<Storing>,
    relayed_as_ids: &mut bool,
    failures: &mut u32,
) -> bool {
    let Some(s) = storing.take() else {
        return true;
    };
    if stored(node, peer, s, relayed_as_ids).await.is_ok() {
        *failures = 0;
        true
    } else {
        *failures += 1;
        tokio::time::sleep(backoff(*failures)).await;
        false
    }
}

/// Waits for a page to be stored; once it is durable, moves the cursor past it and
/// notes the peer's state. An error is recorded and returned (the cursor stays).
async fn stored(node: &Node, peer: &str, s: Storing, relayed_as_ids: &mut bool) -> Result<(), ()> {
    let Storing { page, task } = s;
    let results = match task.await {
        Ok(Ok(results)) => results,
        Ok(Err(e)) => {
            record_error(node, peer, &e.into());
            return Err(());
        }
        Err(e) => {
            tracing::error!(peer, error = %e, "ingest task failed");
            return Err(());
        }
    };
    if !*relayed_as_ids {
        let held = results
            .iter()
            .filter(|r| r.status == OfferStatus::Duplicate)
            .count();
        *relayed_as_ids = held * 2 >= results.len();
    }
    // Durable: the cursor may move.
    let t = now();
    node.sync().update(node.backend(), peer, true, |s| {
        s.cursor = page.next;
        if page.epoch.is_some() {
            s.epoch = page.epoch.clone();
        }
        s.reachable = true;
        s.last_success = Some(t);
        s.their_head = Some(page.head);
        if page.cert_not_after.is_some() {
            s.cert_not_after = page.cert_not_after;
        }
        // Behind while the peer says more is ready. A page that ends short of its
        // head without `more` stopped where the peer's push to us is under way (those
        // envelopes are on their way), so it is not counted as falling behind.
        s.behind_since = if page.more && page.head > page.next {
            s.behind_since.or(Some(t))
        } else {
            None
        };
    });
    Ok(())
}

/// Tells the feed when a push task stops (returns or is aborted).
struct PushTask {
    node: Arc<Node>,
    peer: String,
}

impl Drop for PushTask {
    fn drop(&mut self) {
        self.node.sync().push_stopped(&self.peer);
    }
}

/// Pushes this member's own envelopes to `client`'s peer as they are stored: the
/// first hop at once, where the peer's pull would take up to a poll interval.
async fn push_loop(node: Arc<Node>, client: Arc<PeerClient>) {
    let peer = client.name.clone();
    let mut head_rx = node.sync().head.subscribe();
    // On PostgreSQL the member's processes share one feed: the holder of this peer's
    // push lease pushes what any of them published, and the others leave the peer to
    // it (the peer's pull covers whatever a push misses).
    let mut lease = node
        .backend()
        .postgres()
        .map(|pg| PeerLease::new(LeaseKind::Push, &peer, &pg.holder));
    let _task = PushTask {
        node: node.clone(),
        peer: peer.clone(),
    };
    // Push only what arrives from now on; pull (the peer's) covers the past. On
    // PostgreSQL "now" is when this process takes the lease.
    let mut pushed_through = 0;
    if lease.is_none() {
        pushed_through = node.backend().head().unwrap_or(0);
        node.sync().push_started(&peer, pushed_through);
    }
    let mut failures = 0u32;
    loop {
        if let Some(l) = lease.as_mut() {
            match l.hold(&node).await {
                Held::Still => {}
                Held::Newly => {
                    let head = match node.backend().postgres() {
                        Some(pg) => pg.store.head().await,
                        None => return,
                    };
                    match head {
                        Ok(h) => {
                            pushed_through = h;
                            node.sync().push_started(&peer, h);
                            tracing::info!(peer, "this process pushes to this peer now");
                        }
                        Err(e) => {
                            // Taken again (and the head read again) at the next turn.
                            tracing::warn!(peer, error = %e, "cannot read the feed head to start pushing");
                            l.held = false;
                            tokio::time::sleep(POLL).await;
                            continue;
                        }
                    }
                }
                Held::No => {
                    // The feed must not wait for a push this process no longer makes.
                    node.sync().push_stopped(&peer);
                    tokio::time::sleep(LEASE_RENEW).await;
                    continue;
                }
            }
        }
        let signalled = *head_rx.borrow_and_update();
        let head = match node.backend().postgres() {
            // Publishes through the other processes show here at the next poll.
            Some(pg) => match pg.store.head().await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(peer, error = %e, "cannot read the feed head to push");
                    tokio::time::sleep(POLL).await;
                    continue;
                }
            },
            None => signalled,
        };
        if head <= pushed_through {
            tokio::select! {
                r = head_rx.changed() => { if r.is_err() { return; } }
                _ = tokio::time::sleep(POLL) => {}
            }
            continue;
        }
        // Collect what this peer may have, from pushed_through on, read from the
        // log straight into the request body: on the embedded store, file reads of up
        // to PUSH_BYTES under the view's read lock, so on a blocking thread (as the
        // feed does), not on a worker the node's server shares.
        let built = match node.backend().postgres() {
            Some(pg) => push_body_pg(&node, &pg.store, &peer, pushed_through)
                .await
                .map_err(|e| e.to_string()),
            None => {
                let (n, p) = (node.clone(), peer.clone());
                tokio::task::spawn_blocking(move || push_body(&n, &p, pushed_through))
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        let (body, ordinals, objects, last) = match built {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(peer, error = %e, "building a push body failed");
                tokio::time::sleep(backoff(1)).await;
                continue;
            }
        };
        if last == pushed_through {
            // The head moved but the view has not caught up yet.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        pushed_through = last;
        if ordinals.is_empty() {
            node.sync().push_tried(&peer, last, None);
            continue;
        }
        match client.push(body).await {
            Ok(answer) => {
                failures = 0;
                // Only what the peer took (or held already) counts as delivered; the
                // feed serves anything else again.
                let taken = taken_by_peer(&answer, ordinals.len());
                node.sync().mark_pushed(
                    &peer,
                    ordinals
                        .iter()
                        .zip(taken)
                        .filter_map(|(o, t)| t.then_some(*o)),
                );
                node.sync().push_tried(&peer, last, Some(true));
                let n = ordinals.len() as u64;
                let t = now();
                node.sync().update(node.backend(), &peer, false, |s| {
                    s.envelopes_sent += n;
                    s.objects_sent += objects;
                    s.reachable = true;
                    s.last_success = Some(t);
                });
            }
            Err(e) => {
                // The peer's pull will fetch what this push missed.
                node.sync().push_tried(&peer, last, Some(false));
                record_error(&node, &peer, &e);
                failures += 1;
                tokio::time::sleep(backoff(failures)).await;
            }
        }
    }
}

/// [`push_body`] on PostgreSQL: from the member's shared feed, the envelopes this
/// member published (through any of its processes) that `peer` may have.
async fn push_body_pg(
    node: &Node,
    pg: &crate::store::postgres::PgStore,
    peer: &str,
    pushed_through: u64,
) -> Result<(Vec<u8>, Vec<u64>, u64, u64), crate::store::StoreError> {
    let live = node.live();
    let rows = pg.feed_entries(pushed_through, 4 * PUSH_BATCH).await?;
    let mut chosen = Vec::new();
    let mut last = pushed_through;
    let mut bytes = 0usize;
    for e in rows {
        if chosen.len() == PUSH_BATCH || bytes >= PUSH_BYTES {
            break;
        }
        last = e.ordinal + 1;
        // As on the embedded store: our own envelopes only, not one the peer gave
        // back, and only what policy lets it have.
        if e.origin != node.member() || e.received_from == peer {
            continue;
        }
        let allowed = policy::may_send(
            &live.signer.origin,
            &live.peers,
            peer,
            &e.origin,
            e.tlp,
            &e.recipients,
        );
        if allowed.is_err() {
            continue;
        }
        bytes += e.len;
        chosen.push(e);
    }
    let ids: Vec<[u8; 32]> = chosen.iter().map(|e| e.id).collect();
    let bodies = pg.envelope_bodies(&ids).await?;
    let mut list = EnvelopeList::with_capacity(chosen.iter().map(|e| e.len), 1);
    let mut ordinals = Vec::with_capacity(chosen.len());
    let mut objects = 0u64;
    for (e, body) in chosen.iter().zip(&bodies) {
        list.add_with(&e.id, Carry::Body, |out| {
            out.extend_from_slice(body);
            Ok(())
        })?;
        ordinals.push(e.ordinal);
        objects += u64::from(e.object_count);
    }
    let mut body = list.finish();
    body.push(b'}');
    Ok((body, ordinals, objects, last.max(pushed_through)))
}

/// The body of the next push to `peer`: this node's own envelopes from ordinal
/// `pushed_through` on that the peer may have, at most [`PUSH_BATCH`] of them and about
/// [`PUSH_BYTES`], read from the log straight into the body; with the ordinals it
/// carries, the objects in those envelopes and the ordinal the scan stopped before.
fn push_body(node: &Node, peer: &str, pushed_through: u64) -> (Vec<u8>, Vec<u64>, u64, u64) {
    let live = node.live();
    // On PostgreSQL, `push_body_pg`.
    let Ok(store) = node.embedded("pushing to peers") else {
        return (Vec::new(), Vec::new(), 0, pushed_through);
    };
    let view = store.read();
    let envs = view.envelopes();
    let start = envs.partition_point(|e| e.ordinal < pushed_through);
    let mut entries: Vec<(&EnvMeta, Carry)> = Vec::new();
    let mut last = pushed_through;
    let mut bytes = 0usize;
    for e in &envs[start..] {
        if entries.len() == PUSH_BATCH || bytes >= PUSH_BYTES {
            break;
        }
        last = e.ordinal + 1;
        // Push carries this node's own envelopes (the first hop, at once);
        // forwarding others' envelopes is the pull path's job, so a full mesh
        // does not multiply every envelope by the number of members.
        if view.origin_name(e.origin) != node.member() {
            continue;
        }
        // One of ours the peer gave back (a recovery after a restore): it has it.
        if e.received_from == peer {
            continue;
        }
        if policy::may_send_held(&live, &view, peer, e).is_err() {
            continue;
        }
        bytes += Carry::Body.text_len(e);
        entries.push((e, Carry::Body));
    }
    let mut list = EnvelopeList::for_entries(&entries, 1);
    let mut ordinals = Vec::with_capacity(entries.len());
    let mut objects = 0u64;
    for (e, carry) in &entries {
        match list.add(store, e, *carry) {
            Ok(()) => {
                ordinals.push(e.ordinal);
                objects += u64::from(e.object_count);
            }
            Err(err) => tracing::error!(error = %err, "cannot read an envelope to push"),
        }
    }
    let mut body = list.finish();
    body.push(b'}');
    (body, ordinals, objects, last.max(pushed_through))
}

/// Per pushed envelope, whether the peer's answer says it took it (`accepted`) or held
/// it (`duplicate`); an answer of another shape counts as taking none.
fn taken_by_peer(answer: &serde_json::Value, n: usize) -> Vec<bool> {
    match answer.get("results").and_then(|r| r.as_array()) {
        Some(results) if results.len() == n => results
            .iter()
            .map(|r| {
                // `deferred`: the peer keeps it and tries it again itself.
                matches!(
                    OfferStatus::deserialize(&r["status"]),
                    Ok(OfferStatus::Accepted | OfferStatus::Duplicate | OfferStatus::Deferred)
                )
            })
            .collect(),
        _ => vec![false; n],
    }
}

async fn digest_loop(node: Arc<Node>, client: Arc<PeerClient>) {
    let peer = client.name.clone();
    loop {
        if let Ok(v) = client.digest().await
            && let Some(d) = v.get("digests").and_then(|d| d.as_object())
        {
            let digests = d
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect();
            node.sync()
                .update(node.backend(), &peer, false, |s| s.their_digests = digests);
            if let Some(m) = v.get("membership")
                && let (Some(index), Some(hash)) = (
                    m.get("index").and_then(|i| i.as_u64()),
                    m.get("hash").and_then(|h| h.as_str()),
                )
            {
                let fork = m.get("fork").is_some_and(|f| f.is_object());
                if node.note_peer_membership_head(&peer, index, hash, fork)
                    && fetch_membership(&node, &client).await
                {
                    node.fetched_for(&peer, index, hash, fork);
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Takes the membership entries a peer holds and this node lacks (or holds others
/// at: a fork): the peer's whole log, page by page, offered in order, then the other
/// side of a fork the peer saw. Entries held are skipped; the first refused one stops
/// the offer and is logged (and, for a fork, recorded and shown: `node::membership`).
/// Whether the peer's log was fetched and offered (false when a request failed).
async fn fetch_membership(node: &Arc<Node>, client: &PeerClient) -> bool {
    let mut from = 0u64;
    loop {
        let page = match client.membership(from).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(peer = %client.name, error = %e, "cannot fetch the peer's membership log");
                return false;
            }
        };
        let more = page.more;
        let last = page.entries.last().map(|e| e.index);
        let mut entries = page.entries;
        if !more {
            entries.extend(page.conflicting);
        }
        if entries.is_empty() {
            return true;
        }
        let n = node.clone();
        let from_peer = format!("peer {}", client.name);
        let offered =
            tokio::task::spawn_blocking(move || n.offer_membership(entries, &from_peer)).await;
        match offered {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(peer = %client.name, code = e.code(), error = %e, "membership entries from this peer refused");
                return true;
            }
            Err(e) => {
                tracing::error!(error = %e, "the membership offer did not run");
                return false;
            }
        }
        match last {
            Some(last) if more && last >= from => from = last + 1,
            _ => return true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Each failure doubles the wait from 0.5 s up to 30 s, within ±25%; the waits of
    /// one failure count differ between calls (jitter), so peers that failed together
    /// do not retry together.
    #[test]
    fn backoff_doubles_to_a_cap_with_jitter() {
        for (failures, base) in [
            (0, 500),
            (1, 1_000),
            (2, 2_000),
            (5, 16_000),
            (6, 30_000),
            (40, 30_000),
        ] {
            let waits: Vec<u64> = (0..200)
                .map(|_| backoff(failures).as_millis() as u64)
                .collect();
            let (lo, hi) = (base - base / 4, base + base / 4);
            assert!(
                waits.iter().all(|w| (lo..=hi).contains(w)),
                "{failures} failures: {waits:?} outside {lo}..={hi}"
            );
            let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
            assert!(
                distinct.len() > 20,
                "{failures} failures: too little jitter {distinct:?}"
            );
            let mean = waits.iter().sum::<u64>() / 200;
            assert!(
                mean.abs_diff(base) < base / 10,
                "{failures} failures: mean {mean}"
            );
        }
    }

    /// A pushed envelope counts as delivered only if the peer took or held it.
    #[test]
    fn only_what_the_peer_took_counts_as_pushed() {
        let answer = json!({"results": [
            {"id": "a", "status": "accepted"},
            {"id": "b", "status": "rejected", "code": "signed-in-future"},
            {"id": "c", "status": "duplicate"},
        ]});
        assert_eq!(taken_by_peer(&answer, 3), vec![true, false, true]);
        assert_eq!(taken_by_peer(&answer, 4), vec![false; 4], "count differs");
        assert_eq!(taken_by_peer(&json!({"error": "x"}), 2), vec![false; 2]);
    }
}
