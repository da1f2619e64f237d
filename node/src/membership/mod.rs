//! The membership log: the federation's roster as an append-only, hash-chained
//! sequence of signed changes, each approved by a threshold of the members of the
//! state before it (protocol §12).
//!
//! The roster a node trusts is the result of applying the log from its genesis entry.
//! No single member decides a change: an entry is valid only when at least `K`
//! distinct members of the state before it signed it, each with a roster key valid at
//! the entry's time (TUF's rule for root metadata; a removed member cannot approve,
//! and nobody approves twice). Entries name the hash of the entry before them, so a
//! log is a chain and two different entries at one index (a fork) are visible as such.
//!
//! An entry's **hash** is `sha256:` of the RFC 8785 form of the entry without its
//! `signatures` member; the signatures are over the same bytes. Signatures can thus
//! be gathered one by one on a proposal without changing what is approved.

mod change;
#[cfg(test)]
mod tests;

pub use change::Change;

use crate::envelope::canonical::canonical_value;
use crate::roster::{Roster, RosterDocument, RosterError, TrustedKey};
use crate::stix::timestamp::Timestamp;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The `type` member of every entry.
pub const ENTRY_TYPE: &str = "synergia-membership-entry";
/// The entry format version.
pub const ENTRY_VERSION: u64 = 1;
/// How far an entry's `at` may lie after the verifier's clock (seconds).
pub const MAX_FUTURE_SKEW_SECS: i64 = 300;

/// One member's approval of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The approving member.
    pub member: String,
    /// Its roster key that signed.
    pub key_id: String,
    /// Ed25519 over the entry's signed form, base64url without padding.
    pub signature: String,
}

/// An entry of the log (or a proposal: an entry still gathering approvals).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Always [`ENTRY_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// Always [`ENTRY_VERSION`].
    pub version: u64,
    /// The federation's name (the roster's `federation`).
    pub federation: String,
    /// Position in the log, from 0 (the genesis).
    pub index: u64,
    /// The hash of the entry before (`None` for the genesis).
    pub prev: Option<String>,
    /// When the change was proposed (STIX timestamp); signers' keys must be valid then.
    pub at: String,
    /// The one change this entry makes.
    pub change: Change,
    /// The approvals gathered.
    pub signatures: Vec<Approval>,
}

/// Why an entry is refused. [`LogError::code`] is stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// Not an entry (shape, type, version, timestamps).
    #[error("malformed membership entry: {0}")]
    Malformed(String),
    /// The index is at or below the head: the log has an entry there already.
    #[error("entry {index} is stale: the log's head is {head}")]
    StaleIndex {
        /// The entry's index.
        index: u64,
        /// The head's.
        head: u64,
    },
    /// The index leaves a gap after the head.
    #[error("entry {index} does not follow the log's head ({})", head.map_or("an empty log".to_string(), |h| format!("entry {h}")))]
    IndexGap {
        /// The entry's index.
        index: u64,
        /// The head's (`None`: empty log).
        head: Option<u64>,
    },
    /// `prev` is not the hash of the head.
    #[error("entry {index} names previous entry {got:?}, but the head's hash is {want:?}")]
    WrongPrevious {
        /// The entry's index.
        index: u64,
        /// What it names.
        got: Option<String>,
        /// The head's hash.
        want: Option<String>,
    },
    /// Another federation's entry.
    #[error("entry of federation {got:?}, not {want:?}")]
    WrongFederation {
        /// The entry's.
        got: String,
        /// Ours.
        want: String,
    },
    /// `at` is earlier than the head's.
    #[error("entry time {at} is earlier than the previous entry's {prev}")]
    TimeGoesBack {
        /// The entry's time.
        at: String,
        /// The head's.
        prev: String,
    },
    /// `at` is ahead of the verifier's clock by more than the allowed skew.
    #[error("entry time {0} is later than now plus the allowed clock skew")]
    InFuture(String),
    /// A signer is not a member of the state before the entry (or names a key that
    /// is not its own).
    #[error("{member} (key {key_id}) is not a member of the federation before this entry")]
    UnknownSigner {
        /// The signer named.
        member: String,
        /// Its key.
        key_id: String,
    },
    /// A member signed twice.
    #[error("{0} signed the entry more than once")]
    DuplicateSigner(String),
    /// A signer's key was not valid at the entry's time.
    #[error("key {key_id} of {member} was not valid at {at}")]
    SignerKeyNotValid {
        /// The signer.
        member: String,
        /// Its key.
        key_id: String,
        /// The entry's time.
        at: String,
    },
    /// A signature does not verify.
    #[error("the signature of {0} does not verify over the entry")]
    BadSignature(String),
    /// Fewer approvals than the threshold.
    #[error("{got} valid signatures, the threshold is {need}")]
    TooFewSignatures {
        /// Valid approvals.
        got: usize,
        /// The threshold before the entry.
        need: u32,
    },
    /// The change cannot apply to the state (or gives an invalid roster).
    #[error("invalid change: {0}")]
    InvalidChange(String),
    /// A different valid entry holds this index already: a split view.
    #[error("entry {index} conflicts with the entry held at that index ({held})")]
    Fork {
        /// The index.
        index: u64,
        /// The hash held there.
        held: String,
    },
}

impl LogError {
    /// Every code, for counters shown at zero from the start.
    pub const CODES: [&'static str; 14] = [
        "malformed",
        "stale-index",
        "index-gap",
        "wrong-previous-hash",
        "wrong-federation",
        "time-goes-back",
        "signed-in-future",
        "unknown-signer",
        "duplicate-signer",
        "signer-key-not-valid",
        "bad-signature",
        "too-few-signatures",
        "invalid-change",
        "fork",
    ];

    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            LogError::Malformed(_) => "malformed",
            LogError::StaleIndex { .. } => "stale-index",
            LogError::IndexGap { .. } => "index-gap",
            LogError::WrongPrevious { .. } => "wrong-previous-hash",
            LogError::WrongFederation { .. } => "wrong-federation",
            LogError::TimeGoesBack { .. } => "time-goes-back",
            LogError::InFuture(_) => "signed-in-future",
            LogError::UnknownSigner { .. } => "unknown-signer",
            LogError::DuplicateSigner(_) => "duplicate-signer",
            LogError::SignerKeyNotValid { .. } => "signer-key-not-valid",
            LogError::BadSignature(_) => "bad-signature",
            LogError::TooFewSignatures { .. } => "too-few-signatures",
            LogError::InvalidChange(_) => "invalid-change",
            LogError::Fork { .. } => "fork",
        }
    }
}

fn malformed(m: impl Into<String>) -> LogError {
    LogError::Malformed(m.into())
}

impl Entry {
    /// A new, unsigned entry following `state` (a proposal).
    pub fn propose(state: &State, at: Timestamp, change: Change) -> Entry {
        Entry {
            kind: ENTRY_TYPE.into(),
            version: ENTRY_VERSION,
            federation: state.roster.federation.clone(),
            index: state.head.as_ref().map_or(0, |h| h.index + 1),
            prev: state.head.as_ref().map(|h| h.hash.clone()),
            at: at.to_millis_string(),
            change,
            signatures: Vec::new(),
        }
    }

    /// Reads an entry from JSON text (strict JSON, no unknown members).
    pub fn from_slice(bytes: &[u8]) -> Result<Entry, LogError> {
        let v = crate::json::from_slice_strict(bytes)
            .map_err(|e| malformed(format!("not strict JSON: {e}")))?;
        let e: Entry = serde_json::from_value(v).map_err(|e| malformed(e.to_string()))?;
        e.check_shape()?;
        Ok(e)
    }

    fn check_shape(&self) -> Result<(), LogError> {
        if self.kind != ENTRY_TYPE {
            return Err(malformed(format!("type must be {ENTRY_TYPE:?}")));
        }
        if self.version != ENTRY_VERSION {
            return Err(malformed(format!("version must be {ENTRY_VERSION}")));
        }
        Timestamp::parse(&self.at).map_err(|e| malformed(format!("at: {e}")))?;
        if let Some(p) = &self.prev
            && crate::envelope::EnvelopeId::parse(p).is_none()
        {
            return Err(malformed(
                "prev must be sha256: and 64 lower-case hex digits",
            ));
        }
        if (self.index == 0) != self.prev.is_none() {
            return Err(malformed("exactly the genesis (index 0) has no prev"));
        }
        if (self.index == 0) != matches!(self.change, Change::Genesis { .. }) {
            return Err(malformed("exactly the entry at index 0 is the genesis"));
        }
        Ok(())
    }

    /// The bytes approvals sign and the hash is over: the RFC 8785 form of the entry
    /// without `signatures`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            m.remove("signatures");
        }
        canonical_value(&v).unwrap_or_default()
    }

    /// `sha256:` of [`Entry::signed_bytes`].
    pub fn hash(&self) -> String {
        format!("sha256:{}", hex(&Sha256::digest(self.signed_bytes())))
    }

    /// Adds `member`'s approval with `key` (replacing an earlier one of that member).
    pub fn approve(&mut self, member: &str, key_id: &str, key: &SigningKey) {
        let signature = URL_SAFE_NO_PAD.encode(key.sign(&self.signed_bytes()).to_bytes());
        self.signatures.retain(|a| a.member != member);
        self.signatures.push(Approval {
            member: member.into(),
            key_id: key_id.into(),
            signature,
        });
    }

    /// The entry as one line of a log file: its RFC 8785 form.
    pub fn to_line(&self) -> String {
        let v = serde_json::to_value(self).unwrap_or_default();
        String::from_utf8(canonical_value(&v).unwrap_or_default()).unwrap_or_default()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The head of a log: its last entry's index, hash and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Head {
    /// Index of the last entry.
    pub index: u64,
    /// Its hash.
    pub hash: String,
    /// Its time.
    pub at: String,
}

/// Revoked TLS certificates, by serial (hex) or SHA-256 fingerprint (hex).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RevokedCertificates {
    /// Serial numbers, lower-case hex.
    pub serials: Vec<String>,
    /// SHA-256 fingerprints of the DER certificate, lower-case hex.
    pub fingerprints: Vec<String>,
}

/// The federation as a prefix of the log leaves it.
#[derive(Debug, Clone)]
pub struct State {
    /// The roster.
    pub roster: RosterDocument,
    /// Approvals an entry needs.
    pub threshold: u32,
    /// TLS certificates revoked.
    pub revoked: RevokedCertificates,
    /// The last entry applied.
    pub head: Option<Head>,
}

impl State {
    /// The state before the genesis.
    pub fn empty() -> State {
        State {
            roster: RosterDocument {
                former: Vec::new(),
                kind: "synergia-roster".into(),
                federation: String::new(),
                members: Vec::new(),
            },
            threshold: 0,
            revoked: RevokedCertificates::default(),
            head: None,
        }
    }

    /// The checked roster of this state.
    pub fn checked_roster(&self) -> Result<Roster, RosterError> {
        Roster::from_document(self.roster.clone())
    }

    /// Applies `entry` (verified against this state, with the verifier's clock at
    /// `now`): the state after it.
    pub fn apply(&self, entry: &Entry, now: Timestamp) -> Result<State, LogError> {
        entry.check_shape()?;
        let head_index = self.head.as_ref().map(|h| h.index);
        match head_index {
            Some(h) if entry.index <= h => {
                return Err(LogError::StaleIndex {
                    index: entry.index,
                    head: h,
                });
            }
            _ => {}
        }
        if entry.index != head_index.map_or(0, |h| h + 1) {
            return Err(LogError::IndexGap {
                index: entry.index,
                head: head_index,
            });
        }
        let want_prev = self.head.as_ref().map(|h| h.hash.clone());
        if entry.prev != want_prev {
            return Err(LogError::WrongPrevious {
                index: entry.index,
                got: entry.prev.clone(),
                want: want_prev,
            });
        }
        let at = Timestamp::parse(&entry.at).map_err(|e| malformed(format!("at: {e}")))?;
        if let Some(h) = &self.head {
            if entry.federation != self.roster.federation {
                return Err(LogError::WrongFederation {
                    got: entry.federation.clone(),
                    want: self.roster.federation.clone(),
                });
            }
            if Timestamp::parse(&h.at).is_ok_and(|prev| at < prev) {
                return Err(LogError::TimeGoesBack {
                    at: entry.at.clone(),
                    prev: h.at.clone(),
                });
            }
        }
        if at.as_secs() > now.as_secs() + MAX_FUTURE_SKEW_SECS {
            return Err(LogError::InFuture(entry.at.clone()));
        }
        // The genesis is the trust anchor the operator installs (as the roster file
        // was): its approvals are not counted. Every later entry needs the threshold of
        // the state before it.
        if self.head.is_some() {
            self.check_approvals(entry, at)?;
        }
        let mut next = change::apply(self, &entry.change, &entry.federation, &entry.at)?;
        next.checked_roster()
            .map_err(|e| LogError::InvalidChange(e.to_string()))?;
        next.head = Some(Head {
            index: entry.index,
            hash: entry.hash(),
            at: entry.at.clone(),
        });
        Ok(next)
    }

    /// How many of `entry`'s approvers are members of this state whose approving
    /// key this state holds valid at the entry's time (signatures not checked: the
    /// caller checked them against the state the entry follows).
    pub fn approvers_in_good_standing(&self, entry: &Entry) -> usize {
        let (Ok(roster), Ok(at)) = (self.checked_roster(), Timestamp::parse(&entry.at)) else {
            return 0;
        };
        entry
            .signatures
            .iter()
            .filter(|a| {
                roster.member(&a.member).is_some()
                    && roster.key(&a.member, &a.key_id).is_some_and(|k| {
                        at >= k.not_before
                            && at <= k.not_after
                            && k.revoked_at.is_none_or(|r| at < r)
                    })
            })
            .count()
    }

    fn check_approvals(&self, entry: &Entry, at: Timestamp) -> Result<(), LogError> {
        let roster = self
            .checked_roster()
            .map_err(|e| LogError::InvalidChange(e.to_string()))?;
        let signed = entry.signed_bytes();
        let mut seen: Vec<&str> = Vec::new();
        for a in &entry.signatures {
            if seen.contains(&a.member.as_str()) {
                return Err(LogError::DuplicateSigner(a.member.clone()));
            }
            seen.push(&a.member);
            // Only current members approve (a former member's keys are still known,
            // for its earlier envelopes).
            let key: &TrustedKey = roster
                .member(&a.member)
                .and_then(|_| roster.key(&a.member, &a.key_id))
                .ok_or_else(|| LogError::UnknownSigner {
                    member: a.member.clone(),
                    key_id: a.key_id.clone(),
                })?;
            let valid = at >= key.not_before
                && at <= key.not_after
                && key.revoked_at.is_none_or(|r| at < r);
            if !valid || key.verifying_key.is_weak() {
                return Err(LogError::SignerKeyNotValid {
                    member: a.member.clone(),
                    key_id: a.key_id.clone(),
                    at: entry.at.clone(),
                });
            }
            let bytes: [u8; 64] = URL_SAFE_NO_PAD
                .decode(&a.signature)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| LogError::BadSignature(a.member.clone()))?;
            key.verifying_key
                .verify_strict(&signed, &Signature::from_bytes(&bytes))
                .map_err(|_| LogError::BadSignature(a.member.clone()))?;
        }
        if seen.len() < self.threshold as usize {
            return Err(LogError::TooFewSignatures {
                got: seen.len(),
                need: self.threshold,
            });
        }
        Ok(())
    }
}

/// A verified log: its entries and the state after each.
#[derive(Debug, Clone)]
pub struct Log {
    entries: Vec<Entry>,
    states: Vec<State>,
}

/// Why a log file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogFileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An entry of the file is refused.
    #[error("{path}, entry on line {line}: [{}] {source}", source.code())]
    Entry {
        /// The file.
        path: String,
        /// Its line (from 1).
        line: usize,
        /// Why.
        #[source]
        source: LogError,
    },
    /// The file holds no entry.
    #[error("{0}: the membership log is empty (it starts with a genesis entry)")]
    Empty(String),
}

impl Log {
    /// Verifies entries from the genesis on, with the clock at `now`.
    pub fn from_entries(entries: Vec<Entry>, now: Timestamp) -> Result<Log, (usize, LogError)> {
        let mut log = Log {
            entries: Vec::new(),
            states: Vec::new(),
        };
        for (i, e) in entries.into_iter().enumerate() {
            log.append(e, now).map_err(|err| (i, err))?;
        }
        Ok(log)
    }

    /// A log holding only the genesis of `roster` with `threshold`.
    pub fn genesis(
        roster: &RosterDocument,
        threshold: u32,
        at: Timestamp,
    ) -> Result<Log, LogError> {
        let mut e = Entry::propose(
            &State::empty(),
            at,
            Change::Genesis {
                threshold,
                members: roster.members.clone(),
            },
        );
        e.federation = roster.federation.clone();
        Log::from_entries(vec![e], at).map_err(|(_, e)| e)
    }

    /// The log as a file holds it: one RFC 8785 entry per line.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for e in &self.entries {
            text.push_str(&e.to_line());
            text.push('\n');
        }
        text
    }

    /// Reads and verifies a log file: one entry per line (blank lines ignored).
    pub fn load(path: &Path, now: Timestamp) -> Result<Log, LogFileError> {
        let p = path.display().to_string();
        let text = std::fs::read(path).map_err(|source| LogFileError::Io {
            path: p.clone(),
            source,
        })?;
        let mut entries = Vec::new();
        let mut lines = Vec::new();
        for (n, line) in text.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let e = Entry::from_slice(line).map_err(|source| LogFileError::Entry {
                path: p.clone(),
                line: n + 1,
                source,
            })?;
            entries.push(e);
            lines.push(n + 1);
        }
        if entries.is_empty() {
            return Err(LogFileError::Empty(p));
        }
        Log::from_entries(entries, now).map_err(|(i, source)| LogFileError::Entry {
            path: p,
            line: lines[i],
            source,
        })
    }

    /// Writes the log, one entry per line, whole (a temporary file, then a rename).
    pub fn save(&self, path: &Path) -> Result<(), LogFileError> {
        let text = self.to_text();
        // A name of its own: the node and an operator's `roster append` may write at
        // once, and must not write into one temporary file.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(format!(".{}.{nanos}.tmp", std::process::id()));
        let tmp = std::path::PathBuf::from(tmp_name);
        let io = |source| LogFileError::Io {
            path: path.display().to_string(),
            source,
        };
        // Synced before the rename and the directory after it: a node acknowledges
        // an entry only once a crash cannot take it back.
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io)?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(())
    }

    /// Appends an entry that follows the head; an entry identical to one held is a
    /// no-op, a different one at a held index is a [`LogError::Fork`].
    pub fn append(&mut self, entry: Entry, now: Timestamp) -> Result<bool, LogError> {
        if let Some(held) = self.entries.get(entry.index as usize) {
            let (h, e) = (held.hash(), entry.hash());
            if h == e {
                return Ok(false);
            }
            // A different entry at a held index is a fork only if it is itself valid
            // on the same prefix; otherwise it is just stale. Another genesis is never
            // a fork: it needs no approvals, so anyone could make one, and it is
            // another federation's trust anchor, not a rival entry of this one.
            if entry.index == 0 {
                return Err(LogError::StaleIndex {
                    index: 0,
                    head: self.entries.len() as u64 - 1,
                });
            }
            let before = self.states[entry.index as usize - 1].clone();
            // Valid on the prefix is not enough: approvals are judged with the members
            // and keys of that older state. A rival approved by members removed since,
            // or with keys revoked since, would let former members or thieves of
            // revoked keys freeze the log; it is stale, not a fork.
            let good_standing = self.state().approvers_in_good_standing(&entry);
            return match before.apply(&entry, now) {
                Ok(_) if good_standing >= before.threshold as usize => Err(LogError::Fork {
                    index: entry.index,
                    held: h,
                }),
                Ok(_) | Err(_) => Err(LogError::StaleIndex {
                    index: entry.index,
                    head: self.entries.len() as u64 - 1,
                }),
            };
        }
        let next = self.state().apply(&entry, now)?;
        self.entries.push(entry);
        self.states.push(next);
        Ok(true)
    }

    /// Keeps the first `len` entries (an entry just appended, taken back).
    pub fn truncate(&mut self, len: usize) {
        self.entries.truncate(len);
        self.states.truncate(len);
    }

    /// The state at the head (the empty state for an empty log).
    pub fn state(&self) -> State {
        self.states.last().cloned().unwrap_or_else(State::empty)
    }

    /// The state after entry `index`.
    pub fn state_at(&self, index: u64) -> Option<&State> {
        self.states.get(index as usize)
    }

    /// The entries, genesis first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The head.
    pub fn head(&self) -> Option<Head> {
        self.states.last().and_then(|s| s.head.clone())
    }
}
