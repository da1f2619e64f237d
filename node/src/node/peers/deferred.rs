//! Envelopes refused for a passing reason, kept and tried again (protocol §9,
//! "Retries").
//!
//! Some refusals say nothing final about an envelope: it is signed a few minutes in
//! the future by a member whose clock runs ahead (`signed-in-future`), or with a key
//! or by a member the roster here does not know yet (`unknown-key`,
//! `unknown-origin`, `key-not-yet-valid`, after a rotation or a new member whose
//! roster has not arrived), or its content fails a check this version of the
//! validator makes and a later one may not (`invalid-stix`). Dropping such an
//! envelope while the pull cursor moves past it lost it for good: amber and red
//! envelopes come only from their origin. So the receiver keeps it, durably, before
//! it answers `deferred` (push) or moves its cursor (pull), and tries it again: when a
//! future `signed_at` comes due, with backoff otherwise (30 s doubling to an hour),
//! and at once when the node starts (a new roster or binary). An envelope leaves the
//! set when it is stored, found held, or refused for a permanent reason.

use crate::node::backend::Backend;
use crate::store::StoreError;
use crate::store::engine::Space;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Rejection codes that may pass: the envelope is kept and tried again.
pub const RETRYABLE: [&str; 5] = [
    "signed-in-future",
    "unknown-key",
    "unknown-origin",
    "key-not-yet-valid",
    "invalid-stix",
];

/// Whether a rejection code may pass with time, a roster or a validator.
pub fn is_retryable(code: &str) -> bool {
    RETRYABLE.contains(&code)
}

/// How far ahead a `signed-in-future` envelope may be signed and still be kept (µs):
/// a day. Further ahead is no clock running a little fast, and is refused for good.
pub const LONGEST_FUTURE_US: i64 = 86_400_000_000;

/// Most envelopes kept for one peer.
pub const MAX_PER_PEER: usize = 10_000;
/// Most bytes of envelopes kept for one peer.
pub const MAX_BYTES_PER_PEER: usize = 256 << 20;

/// First wait before trying again (µs), doubled at each attempt.
const FIRST_WAIT_US: i64 = 30_000_000;
/// Longest wait (µs).
const LONGEST_WAIT_US: i64 = 3_600_000_000;

/// What is known of one kept envelope (its bytes are stored apart).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Waiting {
    /// Envelope id.
    pub id: String,
    /// The code of the last refusal.
    pub code: String,
    /// Its message.
    pub message: String,
    /// When it was first refused (µs).
    pub first_refused: i64,
    /// Tries so far.
    pub attempts: u32,
    /// When it is tried next (µs).
    pub next_retry: i64,
    /// Its size.
    pub bytes: usize,
}

/// One envelope to keep: its id, text and the refusal, and when it can pass at the
/// earliest (a future `signed_at` less the allowed skew), if known.
#[derive(Debug, Clone)]
pub struct ToKeep {
    /// Envelope id.
    pub id: String,
    /// Its text as received.
    pub text: Bytes,
    /// Refusal code.
    pub code: String,
    /// Refusal message.
    pub message: String,
    /// The earliest instant it can pass (µs), when the refusal says.
    pub due: Option<i64>,
}

/// Why an envelope could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    /// The node's store backend cannot take envelopes from peers.
    #[error(transparent)]
    Backend(#[from] crate::node::backend::NotOnThisBackend),
    /// The peer's set is full: nothing more from this peer is taken (its page is
    /// refused whole, so the pull cursor stays) until some of them pass.
    #[error(
        "{peer} already has {MAX_PER_PEER} envelopes or {MAX_BYTES_PER_PEER} bytes waiting for a retry"
    )]
    Full {
        /// The peer.
        peer: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The kept envelopes of every peer: what is known in memory, bytes in the store.
#[derive(Debug, Default)]
pub struct Deferred {
    waiting: Mutex<BTreeMap<String, BTreeMap<String, Waiting>>>,
}

fn meta_key(peer: &str, id: &str) -> String {
    format!("m\u{0}{peer}\u{0}{id}")
}

fn bytes_key(peer: &str, id: &str) -> String {
    format!("b\u{0}{peer}\u{0}{id}")
}

impl Deferred {
    /// Loads what the store keeps; every envelope is due at once (the node may have
    /// a new roster or binary since).
    pub fn load(store: &Backend, now: i64) -> Deferred {
        let mut waiting: BTreeMap<String, BTreeMap<String, Waiting>> = BTreeMap::new();
        match store.values_with_prefix(Space::Deferred, "m\u{0}") {
            Ok(values) => {
                for (k, v) in values {
                    let mut parts = k.splitn(3, '\u{0}');
                    let (Some("m"), Some(peer), Some(_)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        continue;
                    };
                    match serde_json::from_slice::<Waiting>(&v) {
                        Ok(mut w) => {
                            w.next_retry = now;
                            waiting
                                .entry(peer.to_string())
                                .or_default()
                                .insert(w.id.clone(), w);
                        }
                        Err(e) => {
                            tracing::error!(key = %k.replace('\u{0}', "/"), error = %e, "a kept envelope's record is damaged; it is not tried again")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the envelopes kept for a retry; they are tried again after the next start")
            }
        }
        Deferred {
            waiting: Mutex::new(waiting),
        }
    }

    /// Keeps (or, when already kept, notes another refusal of) `e` from `peer`,
    /// durably: when this returns `Ok`, the envelope survives a crash.
    pub fn keep(&self, store: &Backend, peer: &str, e: &ToKeep, now: i64) -> Result<(), KeepError> {
        let mut all = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let set = all.entry(peer.to_string()).or_default();
        let previous = set.get(&e.id).cloned();
        if previous.is_none() {
            let bytes: usize = set.values().map(|w| w.bytes).sum();
            if set.len() >= MAX_PER_PEER || bytes + e.text.len() > MAX_BYTES_PER_PEER {
                return Err(KeepError::Full {
                    peer: peer.to_string(),
                });
            }
        }
        let attempts = previous.as_ref().map_or(0, |w| w.attempts + 1);
        let backoff = FIRST_WAIT_US
            .saturating_mul(1 << attempts.min(7))
            .min(LONGEST_WAIT_US);
        let w = Waiting {
            id: e.id.clone(),
            code: e.code.clone(),
            message: e.message.clone(),
            first_refused: previous.as_ref().map_or(now, |w| w.first_refused),
            attempts,
            // When it can pass, if known (a second after, for clock granularity);
            // otherwise after the backoff.
            next_retry: e.due.map_or(now + backoff, |d| d.max(now) + 1_000_000),
            bytes: e.text.len(),
        };
        let meta = serde_json::to_vec(&w).map_err(|source| StoreError::Json {
            what: format!("kept envelope {}", w.id),
            source,
        })?;
        if previous.is_none() {
            store.put_value(
                Space::Deferred,
                &bytes_key(peer, &e.id),
                e.text.to_vec(),
                false,
            )?;
        }
        store.put_value(Space::Deferred, &meta_key(peer, &e.id), meta, true)?;
        set.insert(e.id.clone(), w);
        Ok(())
    }

    /// Forgets a kept envelope (stored, held, or refused for good).
    pub fn forget(&self, store: &Backend, peer: &str, id: &str) -> Result<(), StoreError> {
        let mut all = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let Some(set) = all.get_mut(peer) else {
            return Ok(());
        };
        if set.remove(id).is_none() {
            return Ok(());
        }
        store.delete_value(Space::Deferred, &meta_key(peer, id))?;
        store.delete_value(Space::Deferred, &bytes_key(peer, id))?;
        Ok(())
    }

    /// Whether `id` from `peer` is kept.
    pub fn holds(&self, peer: &str, id: &str) -> bool {
        let all = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        all.get(peer).is_some_and(|s| s.contains_key(id))
    }

    /// Up to `n` kept envelopes due at `now`, per peer, with their texts.
    pub fn due(&self, store: &Backend, now: i64, n: usize) -> Vec<(String, Vec<(String, Bytes)>)> {
        let picked: Vec<(String, String)> = {
            let all = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            all.iter()
                .flat_map(|(peer, set)| {
                    set.values()
                        .filter(|w| w.next_retry <= now)
                        .map(move |w| (peer.clone(), w.id.clone()))
                })
                .take(n)
                .collect()
        };
        let mut out: Vec<(String, Vec<(String, Bytes)>)> = Vec::new();
        for (peer, id) in picked {
            match store.get_value(Space::Deferred, &bytes_key(&peer, &id)) {
                Ok(Some(b)) => match out.last_mut() {
                    Some((p, v)) if *p == peer => v.push((id, Bytes::from(b))),
                    _ => out.push((peer, vec![(id, Bytes::from(b))])),
                },
                Ok(None) => {
                    tracing::error!(peer, envelope = %id, "a kept envelope's bytes are missing; it is not tried again");
                    let _ = self.forget(store, &peer, &id);
                }
                Err(e) => {
                    tracing::warn!(peer, envelope = %id, error = %e, "cannot read a kept envelope; trying later")
                }
            }
        }
        out
    }

    /// Makes every kept envelope due at `now`: the roster changed (a new member or
    /// key may let them pass), so they are tried at once rather than after their
    /// backoff.
    pub fn all_due(&self, now: i64) {
        let mut all = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        for w in all.values_mut().flat_map(|s| s.values_mut()) {
            w.next_retry = w.next_retry.min(now);
        }
    }

    /// What is kept for `peer`, soonest retry first.
    pub fn of(&self, peer: &str) -> Vec<Waiting> {
        let all = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<Waiting> = all
            .get(peer)
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by_key(|w| w.next_retry);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refusals that time, a roster or a validator may lift are retried; the rest,
    /// among them an envelope signed after its origin's removal, are final.
    #[test]
    fn only_passing_refusals_are_retried() {
        for code in RETRYABLE {
            assert!(
                crate::envelope::VerifyError::CODES.contains(&code),
                "{code}"
            );
        }
        for code in ["member-removed", "key-revoked", "bad-signature"] {
            assert!(!is_retryable(code), "{code}");
        }
        assert!(is_retryable("unknown-origin"));
    }
}
