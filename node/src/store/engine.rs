//! The index engine: a small ordered key-value interface the store is written against.
//!
//! The rest of the code never names the engine. Everything kept here can be rebuilt
//! from the evidence log, so an engine needs no durability of its own beyond "what was
//! flushed survives": the store replays the log tail after a crash. Adding another
//! engine means implementing this trait; callers do not change.

use super::StoreError;

/// A keyspace of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Space {
    /// Envelope ordinal (u64 big-endian) → packed [`super::record::EnvelopeRecord`].
    Envelopes,
    /// Small named values: format version, flags.
    Meta,
    /// Peer name → persisted sync cursor and counters.
    Peers,
    /// TAXII status id → status resource.
    Status,
    /// Envelopes refused for a passing reason, kept for a retry
    /// (`node::peers::deferred`): their records and their bytes.
    Deferred,
}

impl Space {
    /// Every keyspace.
    pub const ALL: [Space; 5] = [
        Space::Envelopes,
        Space::Meta,
        Space::Peers,
        Space::Status,
        Space::Deferred,
    ];

    /// Stable name (sled tree name, file names).
    pub fn name(self) -> &'static str {
        match self {
            Space::Envelopes => "envelopes",
            Space::Meta => "meta",
            Space::Peers => "peers",
            Space::Status => "status",
            Space::Deferred => "deferred",
        }
    }
}

/// One write.
#[derive(Debug, Clone)]
pub enum Op {
    /// Set `key` to `value`.
    Put(Space, Vec<u8>, Vec<u8>),
    /// Remove `key`.
    Delete(Space, Vec<u8>),
}

/// A key-value pair read from the engine.
pub type Entry = (Vec<u8>, Vec<u8>);

/// An ordered key-value engine.
pub trait IndexEngine: Send + Sync {
    /// The value at `key`.
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Applies writes in order. Writes to one space are applied atomically.
    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError>;
    /// Up to `limit` entries with key ≥ `from`, in key order.
    fn scan(&self, space: Space, from: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError>;
    /// The entry with the greatest key.
    fn last(&self, space: Space) -> Result<Option<Entry>, StoreError>;
    /// Makes every applied write durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// Removes everything (before a rebuild).
    fn clear(&self) -> Result<(), StoreError>;
    /// Bytes the engine occupies on disk (0 when in memory).
    fn disk_bytes(&self) -> u64;
    /// The same engine with its read caches dropped, after the start-up scan of every
    /// record (sled 0.34 keeps what a full scan read resident far beyond its configured
    /// cache: about 230 MB at a million objects).
    fn reopened(self: Box<Self>) -> Result<Box<dyn IndexEngine>, StoreError>;
}
