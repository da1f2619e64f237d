//! The membership log while the node runs (protocol §12): entries an operator
//! submits, entries learnt from peers, and forks.
//!
//! Every entry carries its own authority (the approvals of K members of the state
//! before it), so a node takes an entry from anyone who hands it over — an operator's
//! `synergia roster submit`, or any peer's log — and checks it the same way. What it
//! takes is written to its log file (whole, synced, then renamed) before it is used,
//! then the node reloads (`node::live`): the roster, the peers to sync with and the
//! certificates TLS refuses follow at once, without a restart.
//!
//! Two different valid entries at one index are a fork: members approved two
//! histories. The node keeps the state it has, takes no further entry from anyone,
//! and shows both sides (hashes, signers, who sent the other) in its status and
//! metrics until an operator resolves it and restarts it.

use super::Node;
use crate::membership::{Entry, Head, LogError, LogFileError};
use crate::stix::timestamp::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Most entries one page of `GET /federation/v1/membership` carries.
pub const MAX_ENTRIES_PAGE: usize = 1000;

/// Why entries offered to the node's membership log are not taken. [`code`] is
/// stable.
///
/// [`code`]: MembershipError::code
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// The node's roster is a plain file, not a membership log.
    #[error("this node follows no membership log (config `membership_log`)")]
    NoLog,
    /// A fork was seen: nothing is taken until an operator resolves it.
    #[error(
        "the membership log is stopped at a fork at entry {index}: no entry is taken until an operator resolves it (docs/operations.md)"
    )]
    Frozen {
        /// The index both entries claim.
        index: u64,
    },
    /// An entry is refused by the log's rules.
    #[error("entry {index}: {source}")]
    Refused {
        /// Its index.
        index: u64,
        /// Why.
        #[source]
        source: LogError,
    },
    /// The log file cannot be written.
    #[error(transparent)]
    File(#[from] LogFileError),
    /// The log file was written but the node could not take it up.
    #[error("the membership log was written but the node cannot use it: {0}")]
    Reload(String),
    /// An operator rejected this entry (the log's `.rejected` file).
    #[error("entry {index} ({hash}) was rejected by this node's operator")]
    Rejected {
        /// Its index.
        index: u64,
        /// Its hash.
        hash: String,
    },
    /// The entry would leave a roster this node cannot run with (this member
    /// removed, or its signing key gone): not written.
    #[error("entry {index} leaves a roster this node cannot run with: {reason}")]
    Unusable {
        /// Its index.
        index: u64,
        /// Why.
        reason: String,
    },
}

impl MembershipError {
    /// The stable code: a [`LogError`] code for a refused entry.
    pub fn code(&self) -> &'static str {
        match self {
            MembershipError::NoLog => "no-membership-log",
            MembershipError::Frozen { .. } => "membership-fork",
            MembershipError::Refused { source, .. } => source.code(),
            MembershipError::File(_) => "membership-log-unwritable",
            MembershipError::Reload(_) => "membership-reload-failed",
            MembershipError::Rejected { .. } => "rejected-entry",
            MembershipError::Unusable { .. } => "unusable-roster",
        }
    }
}

/// One side of a fork.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkSide {
    /// The entry's hash.
    pub hash: String,
    /// The members that approved it.
    pub signers: Vec<String>,
    /// Its time.
    pub at: String,
    /// What it changes, for people.
    pub change: String,
}

impl ForkSide {
    fn of(e: &Entry) -> ForkSide {
        ForkSide {
            hash: e.hash(),
            signers: e.signatures.iter().map(|a| a.member.clone()).collect(),
            at: e.at.clone(),
            change: e.change.describe(),
        }
    }
}

/// Two valid entries at one index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fork {
    /// The index.
    pub index: u64,
    /// The entry this node holds there.
    pub held: ForkSide,
    /// The other.
    pub other: ForkSide,
    /// Who handed the other over: `peer NAME` or `submitted by NAME`.
    pub from: String,
    /// When it was seen.
    pub seen_at: String,
    /// The other entry itself: served to peers (`GET /federation/v1/membership`), so
    /// that a node whose peers all hold one side learns of the fork too.
    #[serde(skip)]
    pub other_entry: Entry,
}

/// A peer's log head, as its digest answer last stated it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerHead {
    /// Index of its last entry.
    pub index: u64,
    /// Its hash.
    pub hash: String,
    /// Whether our log holds that very entry at that index (the peer is on our
    /// history, at our head or behind it).
    pub matches: bool,
}

/// What the node keeps about its membership log besides the log itself.
#[derive(Debug, Default)]
pub struct MembershipState {
    /// One offer at a time: each reads the log in force and writes the next.
    append: Mutex<()>,
    /// Forks seen since the node started.
    forks: Mutex<Vec<Fork>>,
    /// Peers' heads.
    peer_heads: Mutex<BTreeMap<String, PeerHead>>,
    /// Entries refused, by code (for `/metrics`).
    refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Entries taken since the node started.
    appended: std::sync::atomic::AtomicU64,
    /// Per peer: the head (index, hash, fork stated) last fetched for, and when. The
    /// same statement is not fetched for again for [`REFETCH_AFTER`]: a peer that
    /// states a head it cannot back up costs one fetch in that time, not one per
    /// digest poll.
    fetched: Mutex<BTreeMap<String, (Statement, std::time::Instant)>>,
}

/// A peer's head statement: index, hash, and whether it states a fork.
type Statement = (u64, String, bool);

/// How long a peer's same head statement is not fetched for again.
pub const REFETCH_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

impl MembershipState {
    /// Forks seen.
    pub fn forks(&self) -> Vec<Fork> {
        self.forks.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every peer's head as last seen (peers no longer in force included: see
    /// [`Node::peer_membership_heads`]).
    fn peer_heads(&self) -> BTreeMap<String, PeerHead> {
        self.peer_heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Refusals by code.
    pub fn refused(&self) -> BTreeMap<&'static str, u64> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Entries taken since start.
    pub fn appended(&self) -> u64 {
        self.appended.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Drops the forks whose other entry an operator rejected.
    pub fn forget_forks_with(&self, rejected: &std::collections::BTreeSet<String>) {
        self.forks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|f| !rejected.contains(&f.other.hash));
    }

    fn count_refused(&self, code: &'static str) {
        *self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(code)
            .or_default() += 1;
    }
}

/// What an offer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// Entries appended (those already held are not counted).
    pub appended: usize,
    /// The head after it.
    pub head: Option<Head>,
}

impl Node {
    /// The node's membership bookkeeping.
    pub fn membership(&self) -> &MembershipState {
        &self.membership
    }

    /// The membership log heads of the peers in force, as each last stated it (a
    /// member removed or no longer a peer drops out of status and metrics).
    pub fn peer_membership_heads(&self) -> BTreeMap<String, PeerHead> {
        let live = self.live();
        let mut heads = self.membership.peer_heads();
        heads.retain(|peer, _| live.is_peer(peer));
        heads
    }

    /// Offers entries to the node's log, in order; `from` says who handed them over
    /// (for a fork's record). Entries already held are skipped; those that follow the
    /// head are checked and appended; the first refused one stops the offer (those
    /// before it stay appended). What was appended is durable in the log file and in
    /// force when this returns.
    pub fn offer_membership(
        &self,
        entries: Vec<Entry>,
        from: &str,
    ) -> Result<Taken, MembershipError> {
        let _one = self
            .membership
            .append
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // No reload reads the log file between the read of the log in force and the
        // swap after writing it.
        let _turn = self.reload_turn();
        if let Some(f) = self.membership.forks().first() {
            return Err(MembershipError::Frozen { index: f.index });
        }
        let live = self.live();
        let (Some(held), Some(path)) = (&live.membership, &self.config.membership_log) else {
            return Err(MembershipError::NoLog);
        };
        let mut log = (**held).clone();
        let now = Timestamp::now();
        let mut appended = 0usize;
        let mut refused = None;
        let mut pending_fork = None;
        for e in entries {
            let index = e.index;
            let hash = e.hash();
            if live.rejected.contains(&hash) {
                self.membership.count_refused("rejected-entry");
                refused = Some(MembershipError::Rejected { index, hash });
                break;
            }
            match log.append(e.clone(), now) {
                Ok(true) => {
                    // Never write a log this node could not run with: refused, it
                    // keeps its roster and says why (a member learning its own
                    // removal stops here).
                    if let Err(reason) = self.usable(&log) {
                        log.truncate(index as usize);
                        self.membership.count_refused("unusable-roster");
                        refused = Some(MembershipError::Unusable { index, reason });
                        break;
                    }
                    appended += 1;
                }
                Ok(false) => {}
                Err(source) => {
                    if let LogError::Fork { .. } = source
                        && let Some(ours) = log.entries().get(index as usize)
                    {
                        let fork = Fork {
                            index,
                            held: ForkSide::of(ours),
                            other: ForkSide::of(&e),
                            from: from.to_string(),
                            seen_at: now.to_millis_string(),
                            other_entry: e.clone(),
                        };
                        tracing::error!(
                            index,
                            held = %fork.held.hash,
                            held_signers = ?fork.held.signers,
                            other = %fork.other.hash,
                            other_signers = ?fork.other.signers,
                            from,
                            "membership log fork: two valid entries at one index; keeping our state and taking no further entry until an operator resolves it"
                        );
                        // Recorded once what came before it is in force: a node
                        // stopped at a fork takes no longer log, its own included.
                        pending_fork = Some(fork);
                    }
                    self.membership.count_refused(source.code());
                    refused = Some(MembershipError::Refused { index, source });
                    break;
                }
            }
        }
        if appended > 0 {
            log.save(path)?;
            // The file is the log in force: take it up now rather than at the next
            // poll, so the roster, the peers and TLS follow at once.
            self.reload_in_turn(true);
            let now_head = self.live().membership.as_ref().and_then(|l| l.head());
            if now_head != log.head() {
                refused = Some(MembershipError::Reload(
                    self.reload_failure
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone()
                        .unwrap_or_else(|| "the reload did not take".into()),
                ));
            }
            self.membership
                .appended
                .fetch_add(appended as u64, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(appended, head = ?log.head().map(|h| h.index), from, "membership log extended");
        }
        if let Some(fork) = pending_fork {
            self.membership
                .forks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(fork);
        }
        match refused {
            Some(e) => Err(e),
            None => Ok(Taken {
                appended,
                head: log.head(),
            }),
        }
    }

    /// Whether this node can run with the roster `log` leaves: its member is in it,
    /// with the key it signs with.
    fn usable(&self, log: &crate::membership::Log) -> Result<(), String> {
        let roster = log.state().checked_roster().map_err(|e| e.to_string())?;
        let me = &self.config.member;
        if roster.member(me).is_none() {
            return Err(format!("{me} is no longer a member"));
        }
        let key = &self.live().signer.key_id;
        if roster.key(me, key).is_none() {
            return Err(format!("{me}'s signing key {key} is not in it"));
        }
        Ok(())
    }

    /// Notes a peer's head (and whether it saw a fork); whether entries should be
    /// fetched from it: it is ahead of us, holds another entry where we hold one, or
    /// saw a fork we have not.
    pub fn note_peer_membership_head(
        &self,
        peer: &str,
        index: u64,
        hash: &str,
        peer_saw_fork: bool,
    ) -> bool {
        let live = self.live();
        let Some(log) = &live.membership else {
            return false;
        };
        let ours = log.entries().get(index as usize).map(Entry::hash);
        let matches = ours.as_deref() == Some(hash);
        self.membership
            .peer_heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                peer.to_string(),
                PeerHead {
                    index,
                    hash: hash.to_string(),
                    matches,
                },
            );
        if matches && !peer_saw_fork || !self.membership.forks().is_empty() {
            return false;
        }
        let stated = (index, hash.to_string(), peer_saw_fork);
        let fetched = self
            .membership
            .fetched
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        !matches!(fetched.get(peer), Some((s, at)) if *s == stated && at.elapsed() < REFETCH_AFTER)
    }

    /// The peer's log was fetched and offered for this head statement (whatever the
    /// offer took): the same statement is not fetched for again for
    /// [`REFETCH_AFTER`]. A fetch that failed on the way is not noted: it is tried
    /// again at the next poll.
    pub fn fetched_for(&self, peer: &str, index: u64, hash: &str, peer_saw_fork: bool) {
        self.membership
            .fetched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                peer.to_string(),
                (
                    (index, hash.to_string(), peer_saw_fork),
                    std::time::Instant::now(),
                ),
            );
    }

    /// What `GET /federation/v1/membership?from=N` serves: the entries from index
    /// `N` on (at most [`MAX_ENTRIES_PAGE`]), whether more follow, the head, and the
    /// other entry of the first fork seen, if any.
    pub fn membership_entries(&self, from: u64) -> Option<EntriesPage> {
        let live = self.live();
        let log = live.membership.as_ref()?;
        let all = log.entries();
        let start = usize::try_from(from).unwrap_or(usize::MAX).min(all.len());
        let end = (start + MAX_ENTRIES_PAGE).min(all.len());
        Some(EntriesPage {
            entries: all[start..end].to_vec(),
            more: end < all.len(),
            head: log.head(),
            conflicting: self
                .membership
                .forks()
                .first()
                .map(|f| f.other_entry.clone()),
        })
    }
}

/// A page of the membership log as peers fetch it.
#[derive(Debug, Clone, Serialize)]
pub struct EntriesPage {
    /// Entries, in order.
    pub entries: Vec<Entry>,
    /// Whether more follow.
    pub more: bool,
    /// The log's head.
    pub head: Option<Head>,
    /// When the node saw a fork: the entry it holds no copy of in its log (the other
    /// side), so that the peer checks it and sees the fork too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicting: Option<Entry>,
}
