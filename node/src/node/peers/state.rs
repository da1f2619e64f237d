//! Per-peer sync state: the pull cursor and counters, persisted in the store, plus
//! what only lives while the node runs (reachability, last error, their head).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Persisted per-peer state (`Space::Peers`, key = peer name).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PeerState {
    /// Their log position we have pulled through (their feed cursor), as they gave it.
    pub cursor: u64,
    /// The epoch of their log that `cursor` refers to: when their feed says another,
    /// their log was rebuilt or restored, and the pull starts again from 0.
    pub epoch: Option<String>,
    /// Envelopes accepted from this peer.
    pub envelopes_received: u64,
    /// Objects in them.
    pub objects_received: u64,
    /// Envelopes this node sent them (push and feed).
    pub envelopes_sent: u64,
    /// Objects in them.
    pub objects_sent: u64,
    /// Envelopes from them refused, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Envelopes withheld from them by policy, by TLP level.
    pub withheld: BTreeMap<String, u64>,
    /// Failed requests to them (feed, push), by kind (`unreachable`, `http-status`,
    /// `malformed`, `disk-full`, `store`): a hostile or broken peer shows here, and
    /// so does a disk that cannot take what they send.
    pub failures: BTreeMap<String, u64>,
    /// Last time we tried to reach them (µs).
    pub last_attempt: Option<i64>,
    /// Last time a pull or push succeeded (µs).
    pub last_success: Option<i64>,
    /// Last error and when (µs).
    pub last_error: Option<(i64, String)>,
    /// Their log head at the last successful pull.
    pub their_head: Option<u64>,
    /// When their head was first seen ahead of our cursor (µs), for lag in seconds.
    pub behind_since: Option<i64>,
    /// Whether the last attempt reached them.
    pub reachable: bool,
    /// Their TLS certificate expiry (seconds since the epoch), from the last handshake.
    pub cert_not_after: Option<i64>,
    /// Their view digests by level at the last check.
    pub their_digests: BTreeMap<String, String>,
    /// Times it was written to a store that several processes share (PostgreSQL):
    /// a process never takes an older copy for a newer one.
    pub revision: u64,
}
