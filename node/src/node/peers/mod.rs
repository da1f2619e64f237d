//! What this node knows and decides about its peers, shared by the sync tasks (the
//! client side) and the federation API (the serving side): per-peer state and
//! cursors, what was pushed to whom, envelopes kept for a retry, the TLP policy, the
//! envelope lists that feeds and pushes carry, and the peer status operators see.

pub mod deferred;
pub mod policy;
pub mod state;
pub mod status;
pub mod wire;

/// The kinds of failed requests to a peer (the sync client's `SyncError::kind`),
/// counted per peer: every one is shown from the start, at zero.
pub const FAILURE_KINDS: [&str; 9] = [
    "tls",
    "unreachable",
    "timeout",
    "too-large",
    "http-status",
    "malformed",
    "disk-full",
    "store",
    "retry-set-full",
];

use crate::stix::timestamp::Timestamp;
use crate::store::StoreError;
use crate::store::engine::Space;
use state::PeerState;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

/// Takes `s` as peer `name`'s state unless this process holds a newer copy already
/// (a read that raced a later update).
fn keep_newer(m: &mut HashMap<String, PeerState>, name: &str, s: PeerState) {
    match m.get(name) {
        Some(held) if held.revision > s.revision => {}
        _ => {
            m.insert(name.to_string(), s);
        }
    }
}

/// How far a peer's push task has got.
#[derive(Debug, Clone, Copy)]
struct PushProgress {
    /// Every own envelope below this ordinal has been tried (pushed, or given up
    /// to the pull path); the task is responsible for those from here on.
    through: u64,
    /// The last push to this peer failed.
    failing: bool,
}

/// Sync bookkeeping shared by the server (feed, push endpoint) and the peer tasks.
#[derive(Debug)]
pub struct SyncState {
    peers: Mutex<HashMap<String, PeerState>>,
    /// Ordinals pushed successfully to a peer, not yet passed by its pull cursor on us:
    /// the feed skips them so a pushed envelope is not sent twice.
    pushed: Mutex<HashMap<String, BTreeSet<u64>>>,
    /// Per peer, how far its push task has got (see [`SyncState::push_will_send`]).
    push_progress: Mutex<HashMap<String, PushProgress>>,
    /// The store's head (next log ordinal); pushers wait for it to move.
    pub head: tokio::sync::watch::Sender<u64>,
    /// Envelopes refused for a passing reason, kept for a retry.
    pub deferred: deferred::Deferred,
    /// The last write of a peer's state failed (logged once, not at every update).
    persist_failing: std::sync::atomic::AtomicBool,
}

impl SyncState {
    /// Loads persisted peer states.
    pub fn load(node_store: &crate::node::backend::Backend) -> SyncState {
        let mut peers = HashMap::new();
        if let Ok(values) = node_store.values_with_prefix(Space::Peers, "") {
            for (k, v) in values {
                if let Ok(s) = serde_json::from_slice::<PeerState>(&v) {
                    peers.insert(k, s);
                }
            }
        }
        SyncState {
            peers: Mutex::new(peers),
            pushed: Mutex::default(),
            push_progress: Mutex::default(),
            head: tokio::sync::watch::Sender::new(node_store.head().unwrap_or(0)),
            deferred: deferred::Deferred::load(node_store, now()),
            persist_failing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Reads a peer's state again from the store, where another process of this
    /// member may have moved it (a node on PostgreSQL taking over a peer's pull).
    pub fn reload_peer(&self, store: &crate::node::backend::Backend, name: &str) {
        let stored = store
            .get_value(Space::Peers, name)
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice::<PeerState>(&v).ok());
        let mut m = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        match stored {
            Some(s) => keep_newer(&mut m, name, s),
            None => {
                m.remove(name);
            }
        }
    }

    /// A copy of a peer's state.
    pub fn peer(&self, name: &str) -> PeerState {
        self.peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// Reads every peer's state again from the store (a node on PostgreSQL: the
    /// status shows what the member's processes did together, not what this one saw).
    pub fn reload_all(&self, store: &crate::node::backend::Backend) {
        let Ok(values) = store.values_with_prefix(Space::Peers, "") else {
            return;
        };
        let mut m = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        for (k, v) in values {
            if let Ok(s) = serde_json::from_slice::<PeerState>(&v) {
                keep_newer(&mut m, &k, s);
            }
        }
    }

    /// Updates a peer's state; `persist` writes it to the store.
    ///
    /// On PostgreSQL every update is written, in one transaction holding the peer's
    /// row, to what is stored: the member's processes each change part of a peer's
    /// state (the one pulling it moves its cursor, any one serving its feed counts
    /// what it sent), so none may write back a stale copy, and any one shows the
    /// whole.
    pub fn update(
        &self,
        store: &crate::node::backend::Backend,
        name: &str,
        persist: bool,
        f: impl FnOnce(&mut PeerState) + Send,
    ) {
        let written = match store {
            crate::node::backend::Backend::Postgres(pg) => {
                let mut f = Some(f);
                let result = pg.block(pg.store.update_value(Space::Peers, name, persist, |stored| {
                    let mut s = match stored.map(serde_json::from_slice::<PeerState>) {
                        None => PeerState::default(),
                        Some(Ok(s)) => s,
                        Some(Err(e)) => {
                            // Written by another version, or damaged: the pull starts
                            // again from the peer's first page (what it holds is
                            // skipped by id), and the counters from zero.
                            tracing::warn!(peer = name, error = %e, "stored sync state of this peer is unreadable; starting it afresh");
                            PeerState::default()
                        }
                    };
                    if let Some(f) = f.take() {
                        f(&mut s);
                    }
                    s.revision += 1;
                    (serde_json::to_vec(&s).unwrap_or_default(), s)
                }));
                let mut m = self.peers.lock().unwrap_or_else(|p| p.into_inner());
                match (result, f) {
                    (Ok(s), _) => {
                        keep_newer(&mut m, name, s);
                        Ok(())
                    }
                    // Not written: this process goes on from its own copy.
                    (Err(e), Some(f)) => {
                        f(m.entry(name.to_string()).or_default());
                        Err(e)
                    }
                    (Err(e), None) => Err(e),
                }
            }
            crate::node::backend::Backend::Embedded(s) => {
                let snapshot = {
                    let mut m = self.peers.lock().unwrap_or_else(|p| p.into_inner());
                    let st = m.entry(name.to_string()).or_default();
                    f(st);
                    st.clone()
                };
                if !persist {
                    return;
                }
                serde_json::to_vec(&snapshot)
                    .map_err(|source| StoreError::Json {
                        what: format!("peer state of {name}"),
                        source,
                    })
                    .and_then(|bytes| s.put_value(Space::Peers, name, bytes, false))
            }
        };
        // A state not written leaves the persisted cursor behind the one in memory:
        // after a restart the pull takes some pages again (found held), nothing is
        // lost. Logged when writes start failing and when they work again.
        let was_failing = self
            .persist_failing
            .swap(written.is_err(), std::sync::atomic::Ordering::Relaxed);
        match written {
            Err(e) if !was_failing => {
                tracing::warn!(peer = name, error = %e, "cannot persist a peer's sync state; its cursor stays where it was last written")
            }
            Ok(()) if was_failing => tracing::info!("peer sync state is persisted again"),
            _ => {}
        }
    }

    /// A push task for `peer` starts: it is responsible for this node's own envelopes
    /// from ordinal `from` on.
    pub fn push_started(&self, peer: &str, from: u64) {
        let mut m = self.push_progress.lock().unwrap_or_else(|p| p.into_inner());
        m.insert(
            peer.to_string(),
            PushProgress {
                through: from,
                failing: false,
            },
        );
    }

    /// The push task for `peer` has tried everything below `through`; `ok` says
    /// whether that try succeeded (`None`: there was nothing to send).
    pub fn push_tried(&self, peer: &str, through: u64, ok: Option<bool>) {
        let mut m = self.push_progress.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = m.get_mut(peer) {
            p.through = p.through.max(through);
            if let Some(ok) = ok {
                p.failing = !ok;
            }
        }
    }

    /// The push task for `peer` stops.
    pub fn push_stopped(&self, peer: &str) {
        let mut m = self.push_progress.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(peer);
    }

    /// Whether the push task for `peer` is about to send (or is sending) this node's
    /// own envelope at `ordinal`: its task runs, is not failing, and has not tried
    /// it yet.
    ///
    /// The feed stops before such an envelope rather than send it too: the same
    /// bodies went both ways at once (a push in flight, a pull a moment later), and
    /// the receiver paid for both. It does not skip it either, because the puller's
    /// cursor would then pass an envelope the push may still fail to deliver; once
    /// the push is done the envelope is either marked pushed (skipped) or, after a
    /// failure, served like any other.
    pub fn push_will_send(&self, peer: &str, ordinal: u64) -> bool {
        let m = self.push_progress.lock().unwrap_or_else(|p| p.into_inner());
        m.get(peer)
            .is_some_and(|p| !p.failing && ordinal >= p.through)
    }

    /// Records ordinals pushed to a peer.
    pub fn mark_pushed(&self, peer: &str, ordinals: impl IntoIterator<Item = u64>) {
        let mut m = self.pushed.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(peer.to_string()).or_default().extend(ordinals);
    }

    /// Whether an ordinal was pushed to a peer; forgets those below `cursor` (the
    /// peer's pull has passed them).
    pub fn was_pushed(&self, peer: &str, cursor: u64, ordinal: u64) -> bool {
        let mut m = self.pushed.lock().unwrap_or_else(|p| p.into_inner());
        let Some(set) = m.get_mut(peer) else {
            return false;
        };
        while let Some(&first) = set.first() {
            if first >= cursor {
                break;
            }
            set.pop_first();
        }
        set.contains(&ordinal)
    }
}

/// Now in µs.
pub(crate) fn now() -> i64 {
    Timestamp::now().as_micros()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The feed waits for an own envelope only while the peer's push task runs, is
    /// not failing, and has not tried that envelope yet.
    #[test]
    fn the_feed_waits_only_for_what_a_healthy_push_task_will_send() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::node::backend::Backend::Embedded(Box::new(
            crate::store::tests::memory_store(dir.path()),
        ));
        let s = SyncState::load(&store);
        assert!(!s.push_will_send("beta", 10), "no push task");
        s.push_started("beta", 10);
        assert!(
            !s.push_will_send("beta", 9),
            "before the task started: the pull's"
        );
        assert!(s.push_will_send("beta", 10));
        assert!(!s.push_will_send("gamma", 10), "per peer");
        s.push_tried("beta", 15, Some(true));
        assert!(!s.push_will_send("beta", 14), "pushed");
        assert!(s.push_will_send("beta", 15));
        s.push_tried("beta", 20, Some(false));
        assert!(
            !s.push_will_send("beta", 25),
            "failing: the pull takes over"
        );
        s.push_tried("beta", 22, None);
        assert!(!s.push_will_send("beta", 25), "nothing sent: still failing");
        s.push_tried("beta", 30, Some(true));
        assert!(s.push_will_send("beta", 30));
        s.push_tried("beta", 5, Some(true));
        assert!(!s.push_will_send("beta", 29), "progress never goes back");
        s.push_stopped("beta");
        assert!(!s.push_will_send("beta", 30), "task gone");
    }
}
