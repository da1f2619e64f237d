//! Where the node keeps what it knows (SPEC section 4).
//!
//! - [`log`]: the evidence log — every accepted envelope, verbatim (RFC 8785 bytes),
//!   append-only, fsynced before anything is acknowledged. The source of truth.
//! - [`engine`]: a small key-value trait; [`sled_engine`] implements it on sled 0.34,
//!   [`memory_engine`] in memory. It holds one packed [`record`] per envelope (plus peer
//!   cursors and TAXII status resources), so writes per publish stay few.
//! - [`view`]: the merged view in memory — versions, latest, conflicts, provenance,
//!   type/origin/`date_added` indexes, observables, [`digest`]s — rebuilt at start from
//!   the engine's records and, for anything the engine had not flushed, from the log.
//!
//! Object bodies are stored once, inside the logged envelope; the view keeps their byte
//! ranges ([`prepare`]).

pub mod digest;
pub mod engine;
pub mod lock;
pub mod log;
pub mod memory_engine;
pub mod postgres;
pub mod prepare;
pub mod record;
pub mod resolve;
pub mod sled_engine;
pub mod view;

mod lookup;
mod rebuild;

pub use lookup::{
    LookupHit, LookupResult, ObjectProvenance, Reporter, VersionProvenance, version_text,
};
pub use rebuild::RebuildReport;

use crate::envelope::{Envelope, EnvelopeId, Header, Sealed};
use crate::stix::timestamp::Timestamp;
use crate::stix::tlp::TlpLevel;
use digest::ViewDigest;
use engine::{IndexEngine, Op, Space};
use log::{EvidenceLog, RecordHeader};
use record::EnvelopeRecord;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use view::{ApplyOutcome, View};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file operation failed (disk full, permissions, …).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The index engine failed.
    #[error("index engine: {0}")]
    Engine(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The system gave no randomness (for the log's epoch).
    #[error("no system randomness: {0}")]
    Randomness(#[source] getrandom::Error),
    /// A stored JSON record does not decode (or a record cannot be encoded).
    #[error("store data is damaged: {what}: {source}")]
    Json {
        /// Which record.
        what: String,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// The index store cannot be opened (typically after a crash or disk fault).
    #[error(
        "the index store at {path} cannot be opened ({reason}); the evidence log is intact: run `synergia rebuild --config <config>` (or set store.auto_rebuild = true)"
    )]
    IndexUnavailable {
        /// Where.
        path: String,
        /// The engine's error.
        reason: String,
    },
    /// Stored data is damaged.
    #[error("store data is damaged: {0}")]
    Corrupt(String),
    /// An envelope cannot be stored (content the store cannot index).
    #[error("envelope cannot be stored: {0}")]
    Rejected(String),
    /// The data directory may be read by other users, and this process cannot change
    /// that.
    #[error(
        "the data directory {dir} may be read by other users (mode {mode:o}); it holds every envelope, red ones included: run `chmod 700 {dir}`"
    )]
    OpenToOthers {
        /// The data directory.
        dir: String,
        /// Its permission bits.
        mode: u32,
    },
    /// Another process has the data directory open (its lock, see `store::lock`).
    #[error(
        "the data directory {dir} is in use by {}; stop it first (nothing was changed)",
        pid.map_or("another process".to_string(), |p| format!("process {p}"))
    )]
    InUse {
        /// The data directory.
        dir: String,
        /// The process holding it, as it wrote its id.
        pid: Option<u32>,
    },
    /// The PostgreSQL backend failed.
    #[error(transparent)]
    Database(#[from] postgres::PgError),
    /// A write or `fsync` of the evidence log failed and left what is on disk
    /// unknown: the log takes nothing more until the node restarts and re-reads it.
    #[error(
        "the evidence log could not be made durable ({path}: {source}); nothing more is stored until the node restarts"
    )]
    LogUnsafe {
        /// The file or directory.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    /// Whether the failure is the disk being full (or a quota or file-size limit
    /// reached): nothing was acknowledged, and the same request succeeds once the
    /// operator frees space.
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => io_is_storage_full(source),
            _ => false,
        }
    }
}

/// Whether an I/O error means no space: `ENOSPC`, `EDQUOT`, or `EFBIG` (a write past
/// the process's file-size limit, which `synergia serve` turns into an error instead
/// of the default `SIGXFSZ` kill).
pub fn io_is_storage_full(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge
    )
}

/// Which index engine to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineKind {
    /// sled 0.34 on disk (production).
    #[default]
    Sled,
    /// In memory (tests): the view is rebuilt from the log at every open.
    Memory,
}

/// Store tuning.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Index engine.
    pub engine: EngineKind,
    /// Page cache of the index engine.
    pub cache_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            engine: EngineKind::Sled,
            cache_bytes: 32 << 20,
        }
    }
}

/// Result of offering one envelope to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Newly stored (durable) at this ordinal.
    Accepted {
        /// Log ordinal.
        ordinal: u64,
        /// What it changed.
        applied: ApplyOutcome,
    },
    /// Already held: nothing changed.
    Duplicate,
}

/// The store of one node.
pub struct Store {
    dir: PathBuf,
    log: EvidenceLog,
    engine: Box<dyn IndexEngine>,
    view: RwLock<View>,
    /// Serialises appends: ordinals and `date_added` are assigned under it.
    ingest: Mutex<()>,
    /// The log's epoch (hex), see [`EPOCH_KEY`].
    epoch: String,
    /// Whether this member must take its own envelopes back from its peers before
    /// signing again ([`RECOVER_KEY`]).
    recovery_pending: bool,
    /// This process's hold on the data directory.
    _lock: lock::DirLock,
    /// Set when writing envelope records to the index engine failed (a full disk):
    /// from then on only the log and the view take envelopes, and the next start
    /// indexes them from the log.
    index_failed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

const FORMAT_KEY: &[u8] = b"record-format";
/// The identity of this node's log as its peers know it (protocol §9, the feed's
/// `epoch`): made at random with the index, so a log restored from a backup and
/// rebuilt, or rebuilt at all, gets a new one and peers pull it again from the start.
const EPOCH_KEY: &[u8] = b"log-epoch";
/// Present while this member must take its own envelopes back from its peers before
/// it signs again: written by `synergia rebuild` (the documented restore, even of an
/// empty log: a node whose disk was lost is restored by rebuilding an empty data
/// directory) and when an open makes the index anew over a log that holds envelopes;
/// removed once the peers were read ([`Store::recovery_done`]). Kept in the index so
/// that a restart in the middle of the recovery does not end it.
pub(crate) const RECOVER_KEY: &[u8] = b"recover-own-envelopes";
/// The key (in [`Space::Meta`]) of the secret that authenticates TAXII `next` tokens,
/// kept by the node so that tokens stay valid across restarts and moves.
pub const TAXII_TOKEN_KEY: &str = "taxii-token-key";
/// Greatest log ordinal a rebuild examined: ordinals up to it that have no record were
/// rejected by the rebuild and must not be replayed.
const INDEXED_THROUGH_KEY: &[u8] = b"indexed-through";

fn open_engine(dir: &Path, opts: &StoreOptions) -> Result<Box<dyn IndexEngine>, StoreError> {
    Ok(match opts.engine {
        EngineKind::Sled => Box::new(sled_engine::SledEngine::open(
            &dir.join("index"),
            opts.cache_bytes,
        )?),
        EngineKind::Memory => Box::new(memory_engine::MemoryEngine::new()),
    })
}

/// What storing needs of an envelope besides what [`prepare::prepare`] made of it:
/// its id and signed header. A parsed [`Envelope`] has them, and so has what receiving
/// keeps of one once it is checked ([`Sealed`]).
pub trait Storable {
    /// The envelope id.
    fn id(&self) -> &EnvelopeId;
    /// The signed metadata.
    fn header(&self) -> &Header;
}

impl Storable for Envelope {
    fn id(&self) -> &EnvelopeId {
        Envelope::id(self)
    }
    fn header(&self) -> &Header {
        Envelope::header(self)
    }
}

impl Storable for Sealed {
    fn id(&self) -> &EnvelopeId {
        Sealed::id(self)
    }
    fn header(&self) -> &Header {
        Sealed::header(self)
    }
}

fn record_from(
    env: &impl Storable,
    header: &RecordHeader,
    pos: log::LogPos,
    p: prepare::Prepared,
) -> EnvelopeRecord {
    let h = env.header();
    EnvelopeRecord {
        ordinal: header.ordinal,
        id: env.id().digest_bytes(),
        origin: h.origin.clone(),
        key_id: h.key_id.clone(),
        seq: h.seq,
        signed_at: h.signed_at_ts.as_micros(),
        tlp: h.tlp,
        recipients: h.recipients.clone(),
        received_from: header.received_from.clone(),
        received_at: header.received_at,
        date_added_base: header.date_added_base,
        pos,
        objects: p.objects,
        retraction: p.retraction,
    }
}

fn put_record(rec: &EnvelopeRecord) -> Op {
    Op::Put(
        Space::Envelopes,
        rec.ordinal.to_be_bytes().to_vec(),
        rec.encode(),
    )
}

impl Store {
    /// Opens the store in `dir` (`dir/log`, `dir/index`), loading the view from the
    /// index and replaying any log records the index had not recorded.
    pub fn open(dir: &Path, opts: &StoreOptions) -> Result<Store, StoreError> {
        lock::private_dir(dir)?;
        let lock = lock::DirLock::acquire(dir)?;
        let engine = open_engine(dir, opts)?;
        match engine.get(Space::Meta, FORMAT_KEY)? {
            Some(v) if v != [record::RECORD_FORMAT] => {
                return Err(StoreError::IndexUnavailable {
                    path: dir.join("index").display().to_string(),
                    reason: format!(
                        "index format {v:?} is not this build's {}",
                        record::RECORD_FORMAT
                    ),
                });
            }
            Some(_) => {}
            None => engine.apply(vec![Op::Put(
                Space::Meta,
                FORMAT_KEY.to_vec(),
                vec![record::RECORD_FORMAT],
            )])?,
        }
        let mut epoch_made = false;
        let epoch = match engine.get(Space::Meta, EPOCH_KEY)? {
            Some(v) if v.len() == 16 => v,
            _ => {
                epoch_made = true;
                let mut e = [0u8; 16];
                getrandom::fill(&mut e).map_err(StoreError::Randomness)?;
                engine.apply(vec![Op::Put(Space::Meta, EPOCH_KEY.to_vec(), e.to_vec())])?;
                engine.flush()?;
                e.to_vec()
            }
        };
        let epoch: String = epoch.iter().map(|b| format!("{b:02x}")).collect();
        let mut view = View::new();
        let mut next = 0u64;
        loop {
            let batch = engine.scan(Space::Envelopes, &next.to_be_bytes(), 1024)?;
            let Some(last) = batch.last() else { break };
            let mut k = [0u8; 8];
            k.copy_from_slice(last.0.get(..8).unwrap_or(&[0; 8]));
            next = u64::from_be_bytes(k) + 1;
            for (_, v) in &batch {
                view.apply(&EnvelopeRecord::decode(v)?);
            }
        }
        if let Some(v) = engine.get(Space::Meta, INDEXED_THROUGH_KEY)?
            && let Ok(b) = <[u8; 8]>::try_from(v.as_slice())
        {
            next = next.max(u64::from_be_bytes(b) + 1);
        }
        // Every record has been read once and is not read again while running.
        let engine = engine.reopened()?;
        view.shrink_to_fit();
        let (log, replay) = EvidenceLog::open(&dir.join("log"), next)?;
        if log.next_ordinal() < next {
            return Err(StoreError::IndexUnavailable {
                path: dir.join("index").display().to_string(),
                reason: format!(
                    "the index knows ordinals up to {} but the evidence log ends at {}",
                    next - 1,
                    log.next_ordinal()
                ),
            });
        }
        if !replay.is_empty() {
            tracing::info!(
                records = replay.len(),
                "indexing evidence log records the index had not recorded"
            );
        }
        let mut ops = Vec::new();
        for r in replay {
            let env = Envelope::from_slice(&r.envelope).map_err(|e| {
                StoreError::Corrupt(format!("log ordinal {}: {e}", r.header.ordinal))
            })?;
            let p = prepare::prepare(&env)?;
            let rec = record_from(&env, &r.header, r.pos, p);
            view.apply(&rec);
            ops.push(put_record(&rec));
        }
        engine.apply(ops)?;
        engine.flush()?;
        let mut recovery_pending = engine.get(Space::Meta, RECOVER_KEY)?.is_some();
        if epoch_made && log.next_ordinal() > 0 && !recovery_pending {
            engine.apply(vec![Op::Put(Space::Meta, RECOVER_KEY.to_vec(), vec![1])])?;
            engine.flush()?;
            recovery_pending = true;
        }
        Ok(Store {
            _lock: lock,
            recovery_pending,
            dir: dir.to_path_buf(),
            log,
            engine,
            view: RwLock::new(view),
            epoch,
            ingest: Mutex::new(()),
            index_failed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Stores verified envelopes. Returns once every accepted one is durable (the log
    /// is fsynced); duplicates change nothing. `received_from` is the peer's member
    /// name, or `local` for this node's own publishes.
    ///
    /// Verification is the caller's job: the store keeps what it is given.
    pub fn ingest(
        &self,
        batch: &[Envelope],
        received_from: &str,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        // Preparing (object ranges, content hashes, observable keys) is independent per
        // envelope: it runs on every core, for the envelopes not held yet.
        self.ingest_with(batch, received_from, |candidates| {
            crate::parallel::map(candidates, 2, |_, &i| prepare::prepare(&batch[i]))
        })
    }

    /// [`Store::ingest`] for envelopes the caller already prepared
    /// ([`prepare::prepare`], one per envelope, in order): a publish prepares each
    /// envelope on the core that just signed it, while its bytes are still in cache, and
    /// receiving on the core that just checked it, keeping only its [`Sealed`] part.
    pub fn ingest_prepared<E: Storable>(
        &self,
        batch: &[E],
        prepared: Vec<prepare::Prepared>,
        received_from: &str,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        if prepared.len() != batch.len() {
            return Err(StoreError::Rejected(format!(
                "{} prepared envelopes for a batch of {}",
                prepared.len(),
                batch.len()
            )));
        }
        let mut given: Vec<Option<prepare::Prepared>> = prepared.into_iter().map(Some).collect();
        self.ingest_with(batch, received_from, |candidates| {
            candidates
                .iter()
                .map(|&i| {
                    given[i].take().ok_or_else(|| {
                        StoreError::Rejected("an envelope appears twice in a batch".into())
                    })
                })
                .collect()
        })
    }

    /// Stores the envelopes of `batch` not held yet; `prepare` gets their positions in
    /// `batch` and answers one prepared envelope (or error) for each, in that order.
    fn ingest_with<E: Storable>(
        &self,
        batch: &[E],
        received_from: &str,
        prepare: impl FnOnce(&[usize]) -> Vec<Result<prepare::Prepared, StoreError>>,
    ) -> Result<Vec<IngestOutcome>, StoreError> {
        let _serial = self.ingest.lock().unwrap_or_else(|p| p.into_inner());
        let now = Timestamp::now().as_micros();
        let (mut ordinal, mut da_base) = {
            let v = self.read();
            (self.log.next_ordinal(), now.max(v.last_date_added() + 1))
        };
        let mut outcomes = vec![IngestOutcome::Duplicate; batch.len()];
        let candidates: Vec<usize> = {
            let v = self.read();
            let mut seen = std::collections::HashSet::new();
            batch
                .iter()
                .enumerate()
                .filter(|(_, env)| {
                    let id = env.id().digest_bytes();
                    !v.has_envelope(&id) && seen.insert(id)
                })
                .map(|(i, _)| i)
                .collect()
        };
        let prepared = prepare(&candidates);
        let mut pending: Vec<(usize, RecordHeader, prepare::Prepared)> =
            Vec::with_capacity(candidates.len());
        for (i, p) in candidates.into_iter().zip(prepared) {
            let p = p?;
            let header = RecordHeader {
                ordinal,
                received_at: now,
                date_added_base: da_base,
                received_from: received_from.to_string(),
            };
            ordinal += 1;
            // Gaps are fine; date_added only has to be unique and increasing.
            da_base += p.objects.len() as i64 + 1;
            pending.push((i, header, p));
        }
        if pending.is_empty() {
            return Ok(outcomes);
        }
        let to_log: Vec<(RecordHeader, &[u8])> = pending
            .iter()
            .map(|(_, h, p)| (h.clone(), &p.bytes[..]))
            .collect();
        let positions = self.log.append(&to_log)?;
        let mut ops = Vec::with_capacity(pending.len());
        {
            let mut v = self.view.write().unwrap_or_else(|p| p.into_inner());
            for ((i, header, p), pos) in pending.into_iter().zip(positions) {
                let rec = record_from(&batch[i], &header, pos, p);
                let applied = v.apply(&rec);
                outcomes[i] = IngestOutcome::Accepted {
                    ordinal: header.ordinal,
                    applied,
                };
                ops.push(put_record(&rec));
            }
        }
        // The log is already durable; the index catches up from it after a crash.
        if self.index_failed.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(outcomes);
        }
        if let Err(e) = self.engine.apply(ops) {
            // The envelopes are durable in the log and in the view, so they are
            // acknowledged. But the engine may stay unusable until reopened (sled stops
            // after one failed write, even once space returns), and a record indexed
            // after a missing one would hide the missing one from the replay at the next
            // start: index nothing more until then.
            self.index_failed
                .store(true, std::sync::atomic::Ordering::SeqCst);
            tracing::error!(error = %e, "the index store failed; envelopes are kept in the evidence log and indexed from it at the next start: restart the node once the disk has space");
        }
        Ok(outcomes)
    }

    /// Whether writing to the index engine failed since the store was opened (the node
    /// needs a restart to index what it took since from the log).
    pub fn index_failed(&self) -> bool {
        self.index_failed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether this member must take its own envelopes back from its peers before
    /// signing again: the index was rebuilt (a restore from backup, a damaged index,
    /// a lost disk) and the log may lack envelopes its peers hold.
    pub fn recovery_pending(&self) -> bool {
        self.recovery_pending
    }

    /// The recovery is over: the next open does not start one.
    pub fn recovery_done(&self) -> Result<(), StoreError> {
        self.engine
            .apply(vec![Op::Delete(Space::Meta, RECOVER_KEY.to_vec())])?;
        self.engine.flush()
    }

    /// The log's epoch: peers start their cursor on this node again when it changes.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The next log ordinal: how far this node's log goes.
    pub fn head(&self) -> u64 {
        self.log.next_ordinal()
    }

    /// Read access to the merged view.
    pub fn read(&self) -> RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether an envelope is held.
    pub fn contains(&self, id: &EnvelopeId) -> bool {
        self.read().has_envelope(&id.digest_bytes())
    }

    /// The view digest of a level.
    pub fn digest(&self, level: TlpLevel) -> ViewDigest {
        self.read().digest(level)
    }

    /// The canonical bytes of an object version (see [`View::body_location`]).
    pub fn object_body(&self, at: view::BodyLocation) -> Result<Vec<u8>, StoreError> {
        self.log.read_at(at.segment, at.offset, at.len)
    }

    /// The canonical bytes of version `h` as readers are served it: its stored body,
    /// or for a tombstone (`view::RETRACTED`) the body of the version it stands for
    /// with `revoked: true` and the tombstone's `modified` (protocol §11).
    pub fn version_body(&self, view: &View, h: u32) -> Result<Vec<u8>, StoreError> {
        let (Some(v), Some(at)) = (view.version(h), view.body_location(h)) else {
            return Err(StoreError::Corrupt(format!("no object version {h}")));
        };
        let body = self.object_body(at)?;
        if !v.has(view::RETRACTED) {
            return Ok(body);
        }
        tombstone_body(&body, v.modified, v.date_added)
    }

    /// Appends the canonical bytes at `at` to `out` (a page being built), read in
    /// place; on error `out` is as it was.
    pub fn object_body_onto(
        &self,
        at: view::BodyLocation,
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        self.log.read_onto(at.segment, at.offset, at.len, out)
    }

    /// Appends an envelope's canonical bytes, as logged, to `out` (a body being
    /// built), read in place; on error `out` is as it was.
    pub fn envelope_bytes_onto(
        &self,
        e: &view::EnvMeta,
        out: &mut Vec<u8>,
    ) -> Result<(), StoreError> {
        self.log
            .read_onto(e.pos.segment, e.pos.offset, e.pos.len, out)
    }

    /// A small persisted value (peer cursors, status resources).
    pub fn get_value(&self, space: Space, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.engine.get(space, key.as_bytes())
    }

    /// Persists a small value. `durable` flushes the index before returning.
    pub fn put_value(
        &self,
        space: Space,
        key: &str,
        value: Vec<u8>,
        durable: bool,
    ) -> Result<(), StoreError> {
        self.engine
            .apply(vec![Op::Put(space, key.as_bytes().to_vec(), value)])?;
        if durable {
            self.engine.flush()?;
        }
        Ok(())
    }

    /// Removes a small persisted value (flushed before returning).
    pub fn delete_value(&self, space: Space, key: &str) -> Result<(), StoreError> {
        self.engine
            .apply(vec![Op::Delete(space, key.as_bytes().to_vec())])?;
        self.engine.flush()
    }

    /// Every value of a space whose key starts with `prefix`, in key order.
    pub fn values_with_prefix(
        &self,
        space: Space,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        let mut from = prefix.as_bytes().to_vec();
        loop {
            let batch = self.engine.scan(space, &from, 256)?;
            let Some(last) = batch.last() else { break };
            let mut next = last.0.clone();
            next.push(0);
            let full = batch.len() == 256;
            for (k, v) in batch {
                if !k.starts_with(prefix.as_bytes()) {
                    return Ok(out);
                }
                out.push((String::from_utf8_lossy(&k).into_owned(), v));
            }
            if !full {
                break;
            }
            from = next;
        }
        Ok(out)
    }

    /// Every value of a space (small spaces: peers).
    pub fn values(&self, space: Space) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .engine
            .scan(space, &[], usize::MAX)?
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
            .collect())
    }

    /// Reads every record of the evidence log, in order (moving a node to another
    /// backend). The log is append-only, so this runs beside ingests.
    pub fn read_log(
        &self,
        each: impl FnMut(log::LogRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.log.read_all(each)
    }

    /// Flushes the index (shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.engine.flush()
    }

    /// Bytes on disk: (evidence log, index).
    pub fn disk_bytes(&self) -> (u64, u64) {
        (self.log.disk_bytes(), self.engine.disk_bytes())
    }

    /// Bytes free for this process on the data directory's file system (`None` when
    /// the system does not say). A full disk stops every publish and pull: operators
    /// alert on this before it happens.
    pub fn free_disk_bytes(&self) -> Option<u64> {
        let s = rustix::fs::statvfs(&self.dir).ok()?;
        Some(s.f_bavail.saturating_mul(s.f_frsize))
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
pub(crate) mod tests;

/// The body of a tombstone (protocol §11): the canonical body of the version it stands
/// for, with `revoked: true` and the tombstone's own `modified`.
pub fn tombstone_body(base: &[u8], modified: i64, date_added: i64) -> Result<Vec<u8>, StoreError> {
    let mut obj: serde_json::Value =
        serde_json::from_slice(base).map_err(|source| StoreError::Json {
            what: "the stored body a tombstone stands for".into(),
            source,
        })?;
    if let Some(m) = obj.as_object_mut() {
        m.insert("revoked".into(), true.into());
        m.insert(
            "modified".into(),
            lookup::version_text(modified, date_added).into(),
        );
    }
    crate::envelope::canonical::canonical_value(&obj)
        .map_err(|e| StoreError::Corrupt(format!("a tombstone's body: {e}")))
}
