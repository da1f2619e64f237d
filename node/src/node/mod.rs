//! A member node: its configuration, roster, store and signing key, and the
//! operations every interface (TAXII, node API, federation, CLI) goes through.

pub mod backend;
pub mod export;
pub mod live;
pub mod membership;
pub mod metrics;
pub mod peers;
pub mod publish;
pub mod receive;
pub mod retract;

use crate::config::{Config, Role};
use crate::keys::KeyError;
use crate::roster::{Roster, RosterError};
use crate::stix::timestamp::Timestamp;
use crate::store::engine::Space;
use crate::store::{Store, StoreError, StoreOptions};
use backend::{Backend, NotOnThisBackend};
use metrics::Metrics;
use std::sync::Mutex;

/// Why a node cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The roster cannot be used.
    #[error(transparent)]
    Roster(#[from] RosterError),
    /// A key file cannot be used.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The store cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The backend cannot do what the config asks.
    #[error(transparent)]
    Backend(#[from] NotOnThisBackend),
    /// The config file, read again at a reload, cannot be used.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The system gave no randomness.
    #[error("no system randomness: {0}")]
    Randomness(#[source] getrandom::Error),
    /// The membership log cannot be used.
    #[error(transparent)]
    Membership(#[from] crate::membership::LogFileError),
    /// A reloaded membership log does not extend the one in force.
    #[error(
        "the membership log {path} does not extend the one in force: {reason}; keeping the current roster"
    )]
    MembershipDiverged {
        /// The log file.
        path: String,
        /// How it differs.
        reason: String,
    },
    /// Config and roster disagree.
    #[error("{0}")]
    Inconsistent(String),
}

/// A running member node.
pub struct Node {
    /// Its configuration.
    config: Config,
    /// Roster, signing identity, peers and clients, as last (re)loaded.
    live: std::sync::RwLock<std::sync::Arc<live::Live>>,
    /// Bumped at every reload that took: the sync tasks follow the peer set.
    live_generation: tokio::sync::watch::Sender<u64>,
    /// The last reload failure, logged once rather than at every retry.
    reload_failure: Mutex<Option<String>>,
    /// One reload at a time: the server's poll and a membership entry just taken
    /// both reload, and the later of two overlapping reloads must not swap in what
    /// the earlier read before the files changed.
    reload_turn: Mutex<()>,
    /// Its store.
    store: Backend,
    /// The membership log's forks, peer heads and counters (`node::membership`).
    membership: membership::MembershipState,
    /// The certificates the membership log refuses, read by TLS at every handshake.
    tls_gate: crate::tls::Gate,
    /// Counters for `/metrics` and status.
    metrics: Metrics,
    /// Per-peer sync state.
    sync: crate::node::peers::SyncState,
    /// Next sequence number this node signs with (publishes are serialised on it).
    /// On the postgres backend, publishes of every process are serialised on the
    /// database's publish turn instead, which gives the number.
    next_seq: Mutex<u64>,
    /// Key for the MAC of TAXII `next` tokens (persisted: tokens survive restarts).
    token_key: [u8; 32],
    /// When the node started.
    started_at: Timestamp,
    /// Admits `limits.max_concurrent_publishes` publishes at once (see there).
    publish_gate: tokio::sync::Semaphore,
    /// Admits `limits.max_concurrent_exports` exports at once (see there).
    export_gate: std::sync::Arc<tokio::sync::Semaphore>,
    /// Request-body bytes held in memory (`limits.max_body_memory_bytes`), in units
    /// of [`BODY_BUDGET_UNIT`] (taken by `server::body`).
    body_budget: std::sync::Arc<tokio::sync::Semaphore>,
    /// Set while a node whose index was rebuilt over its log takes back its own
    /// envelopes from its peers: it signs nothing new until then (see
    /// [`Node::recovering`]).
    recovery: Mutex<Option<Recovery>>,
}

/// What a recovering node still waits for.
#[derive(Debug)]
struct Recovery {
    /// Peers whose feed has not yet been read to its end, own envelopes included.
    pending: std::collections::BTreeSet<String>,
    /// When recovery stops waiting for peers that do not answer (µs).
    until: i64,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("member", &self.config.member)
            .finish_non_exhaustive()
    }
}

/// What opening a store gives a node: the store, its next own sequence number, the
/// TAXII token key, the peers' sync state, and the recovery it must make first.
type Opened = (
    Backend,
    u64,
    [u8; 32],
    crate::node::peers::SyncState,
    Option<Recovery>,
);

/// A stored TAXII token key, when it is one.
fn token_key_of(v: &[u8]) -> Option<[u8; 32]> {
    <[u8; 32]>::try_from(v).ok()
}

fn new_token_key() -> Result<[u8; 32], NodeError> {
    let mut k = [0u8; 32];
    getrandom::fill(&mut k).map_err(NodeError::Randomness)?;
    Ok(k)
}

/// The body budget is counted in units of this many bytes (a semaphore's permits are
/// counted in `u32` per acquisition).
pub const BODY_BUDGET_UNIT: usize = 1024;

impl Node {
    /// Opens a node from its config: loads and cross-checks roster and keys, opens
    /// (or, when configured, rebuilds) the store.
    pub fn open(config: Config) -> Result<Node, NodeError> {
        let live = live::Live::load(&config, true)?;
        let (store, next_seq, token_key, sync, recovery) = match config.store.backend {
            crate::config::StoreBackend::Embedded => Node::open_embedded(&config, &live)?,
            crate::config::StoreBackend::Postgres => Node::open_postgres(&config)?,
        };
        let refused = live.refused();
        let publish_gate = tokio::sync::Semaphore::new(config.limits.max_concurrent_publishes);
        let config_limits = config.limits.clone();
        Ok(Node {
            config,
            live: std::sync::RwLock::new(std::sync::Arc::new(live)),
            live_generation: tokio::sync::watch::Sender::new(0),
            reload_failure: Mutex::new(None),
            reload_turn: Mutex::new(()),
            tls_gate: std::sync::Arc::new(std::sync::RwLock::new(std::sync::Arc::new(refused))),
            store,
            membership: membership::MembershipState::default(),
            metrics: Metrics::default(),
            sync,
            next_seq: Mutex::new(next_seq),
            token_key,
            started_at: Timestamp::now(),
            publish_gate,
            export_gate: std::sync::Arc::new(tokio::sync::Semaphore::new(
                config_limits.max_concurrent_exports,
            )),
            body_budget: std::sync::Arc::new(tokio::sync::Semaphore::new(
                config_limits
                    .max_body_memory_bytes
                    .div_ceil(BODY_BUDGET_UNIT)
                    .max(1),
            )),
            recovery: Mutex::new(recovery),
        })
    }

    fn open_embedded(config: &Config, live: &live::Live) -> Result<Opened, NodeError> {
        let roster = live.roster.clone();
        let opts = StoreOptions {
            cache_bytes: config.store.cache_mb << 20,
            ..StoreOptions::default()
        };
        let store = match Store::open(&config.data_dir, &opts) {
            Ok(s) => s,
            Err(e @ (StoreError::IndexUnavailable { .. } | StoreError::Corrupt(_)))
                if config.store.auto_rebuild =>
            {
                tracing::warn!(error = %e, "index unusable; rebuilding from the evidence log (store.auto_rebuild)");
                let report = Store::rebuild(&config.data_dir, &opts, &roster)?;
                tracing::info!(
                    envelopes = report.envelopes,
                    rejected = report.rejected.len(),
                    "rebuild finished"
                );
                Store::open(&config.data_dir, &opts)?
            }
            Err(e) => return Err(e.into()),
        };
        let next_seq = store
            .read()
            .origin_seqs()
            .into_iter()
            .find(|(o, _)| *o == config.member)
            .map_or(1, |(_, s)| s + 1);
        let token_key = match store.get_value(Space::Meta, crate::store::TAXII_TOKEN_KEY)? {
            Some(v) => token_key_of(&v),
            None => None,
        };
        let token_key = match token_key {
            Some(k) => k,
            None => {
                let k = new_token_key()?;
                store.put_value(Space::Meta, crate::store::TAXII_TOKEN_KEY, k.to_vec(), true)?;
                k
            }
        };
        // After a rebuild (a restore from backup, even of an empty log), the log may
        // lack this member's last envelopes, which its peers hold: take them back
        // before signing again, so no sequence number is used twice.
        let recovery = (store.recovery_pending() && !live.peers.is_empty()).then(|| {
            tracing::warn!("the index was rebuilt over the evidence log: taking back this member's own envelopes from its peers before signing again");
            Recovery {
                pending: live.peers.iter().map(|p| p.name.clone()).collect(),
                until: Timestamp::now().as_micros()
                    + i64::try_from(config.store.recovery_wait_secs)
                        .unwrap_or(i64::MAX / 2_000_000)
                        .saturating_mul(1_000_000),
            }
        });
        let store = Backend::Embedded(Box::new(store));
        let sync = crate::node::peers::SyncState::load(&store);
        Ok((store, next_seq, token_key, sync, recovery))
    }

    /// Connects to the database (brings its schema up to date, or refuses one newer
    /// than this build) on the async runtime the caller runs in.
    fn open_postgres(config: &Config) -> Result<Opened, NodeError> {
        let handle = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
            .ok_or_else(|| {
                NodeError::Inconsistent(
                    "store.backend = \"postgres\" needs the node opened within a multi-threaded async runtime"
                        .into(),
                )
            })?;
        let settings = crate::store::postgres::settings::DbSettings::resolve(
            &backend::database_config(config),
        )
        .map_err(|e| StoreError::Database(e.into()))?;
        let store = backend::block_on(&handle, crate::store::postgres::PgStore::open(&settings))?;
        let pg = backend::Postgres::new(store, handle);
        let key = pg.block(
            pg.store
                .get_value(Space::Meta, crate::store::TAXII_TOKEN_KEY),
        )?;
        let token_key = match key.as_deref().and_then(token_key_of) {
            Some(k) => k,
            None => {
                // Several processes may start at once: the first key written stays.
                let k = new_token_key()?;
                pg.block(
                    pg.store
                        .put_value_once(Space::Meta, crate::store::TAXII_TOKEN_KEY, &k),
                )?;
                pg.block(
                    pg.store
                        .get_value(Space::Meta, crate::store::TAXII_TOKEN_KEY),
                )?
                .as_deref()
                .and_then(token_key_of)
                .ok_or_else(|| StoreError::Corrupt("the TAXII token key is damaged".into()))?
            }
        };
        let backend = Backend::Postgres(pg);
        let sync = crate::node::peers::SyncState::load(&backend);
        Ok((backend, 1, token_key, sync, None))
    }

    /// Whether the node is still taking back its own envelopes from its peers after
    /// a rebuild (publishes wait): until every peer's feed has been read to its end
    /// once, or `store.recovery_wait_secs` has passed (it then risks only envelopes
    /// the peers that did not answer alone hold).
    pub fn recovering(&self) -> bool {
        let mut r = self.recovery.lock().unwrap_or_else(|p| p.into_inner());
        match r.as_ref() {
            Some(rec) if rec.pending.is_empty() || Timestamp::now().as_micros() > rec.until => {
                if !rec.pending.is_empty() {
                    tracing::warn!(peers = ?rec.pending, "recovery: these peers did not answer in time; signing again without their copy of this member's envelopes");
                }
                if let Err(e) = self
                    .store
                    .embedded("recovery")
                    .map_err(|e| e.to_string())
                    .and_then(|s| s.recovery_done().map_err(|e| e.to_string()))
                {
                    tracing::warn!(error = %e, "cannot record the end of the recovery; the next start recovers again");
                }
                *r = None;
                false
            }
            Some(_) => true,
            None => false,
        }
    }

    /// A peer's feed was read to its end with this member's own envelopes in it.
    pub fn recovered_from(&self, peer: &str) {
        let mut r = self.recovery.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rec) = r.as_mut()
            && rec.pending.remove(peer)
        {
            tracing::info!(
                peer,
                left = rec.pending.len(),
                "recovery: took back this member's envelopes from a peer"
            );
        }
    }

    /// An envelope of this member's came back from a peer: the next sequence number
    /// is past it.
    pub fn own_seq_seen(&self, seq: u64) {
        let mut next = self.next_seq.lock().unwrap_or_else(|p| p.into_inner());
        *next = (*next).max(seq + 1);
    }

    /// Our digests of the levels every peer shares (clear, green): each over the
    /// latest versions among the deliveries at that level or below
    /// (`View::shared_digest`), as the federation API's digest answer carries them.
    pub fn shared_digests(&self) -> Result<serde_json::Map<String, serde_json::Value>, StoreError> {
        let levels = crate::store::view::SHARED_LEVELS;
        let digests: Vec<Option<crate::store::digest::ViewDigest>> = match &self.store {
            Backend::Embedded(store) => {
                let view = store.read();
                levels.iter().map(|l| view.shared_digest(*l)).collect()
            }
            Backend::Postgres(pg) => pg.block(async {
                let mut out = Vec::new();
                for l in levels {
                    out.push(pg.store.shared_digest(l).await?);
                }
                Ok::<_, StoreError>(out)
            })?,
        };
        Ok(levels
            .iter()
            .zip(digests)
            .filter_map(|(l, d)| {
                d.map(|d| (l.as_str().to_string(), serde_json::json!(d.to_string())))
            })
            .collect())
    }

    /// Its configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The roster, signing identity, peers and clients now in force.
    pub fn live(&self) -> std::sync::Arc<live::Live> {
        self.live.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The certificates the membership log refuses (shared with the TLS
    /// configurations, which read it at every handshake).
    pub fn tls_gate(&self) -> crate::tls::Gate {
        self.tls_gate.clone()
    }

    /// Why the membership log refuses this certificate, if it does.
    pub fn refuses_certificate(
        &self,
        cert: &rustls::pki_types::CertificateDer<'_>,
    ) -> Option<String> {
        crate::tls::refused_now(&self.tls_gate).refuses(cert)
    }

    /// The federation roster now in force.
    pub fn roster(&self) -> std::sync::Arc<Roster> {
        self.live().roster.clone()
    }

    /// A receiver that sees a new value at every reload that took.
    pub fn live_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.live_generation.subscribe()
    }

    /// Reads roster, signing key, peers and clients again from the config file (when
    /// the node was opened from one) and the files it names, and swaps them in when
    /// they check out; otherwise keeps what it has. `force`: even when no file
    /// changed (SIGHUP). Returns what changed, `None` when nothing was reloaded.
    pub fn reload(&self, force: bool) -> Option<live::Changes> {
        let _turn = self.reload_turn.lock().unwrap_or_else(|p| p.into_inner());
        self.reload_in_turn(force)
    }

    /// The turn reloads take (`Node::reload`), for a caller that changes a file the
    /// reload reads and must not have another reload read it half-way.
    pub(crate) fn reload_turn(&self) -> std::sync::MutexGuard<'_, ()> {
        self.reload_turn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`Node::reload`], the caller holding [`Node::reload_turn`].
    pub(crate) fn reload_in_turn(&self, force: bool) -> Option<live::Changes> {
        let current = self.live();
        if !force && !current.stale() {
            return None;
        }
        let attempt = || -> Result<live::Live, NodeError> {
            let config = match &self.config.source {
                Some(path) => Config::load(path)?,
                None => self.config.clone(),
            };
            if config.member != self.config.member || config.data_dir != self.config.data_dir {
                return Err(NodeError::Inconsistent(
                    "member and data_dir cannot change while the node runs: restart it".into(),
                ));
            }
            let next = live::Live::load(&config, false)?;
            live::check_extends(&current, &next, &config)?;
            // Stopped at a fork, the log takes no entry, not even from its file.
            let head = |l: &live::Live| l.membership.as_ref().and_then(|m| m.head());
            if let Some(f) = self
                .membership
                .forks()
                .iter()
                .find(|f| !next.rejected.contains(&f.other.hash))
                && head(&next) != head(&current)
            {
                return Err(NodeError::Inconsistent(format!(
                    "the membership log is stopped at a fork at entry {}: the longer log file is not taken until an operator resolves it",
                    f.index
                )));
            }
            if next.signer.key_id != current.signer.key_id {
                live::check_signing_key_usable(&next, Timestamp::now())?;
            }
            Ok(next)
        };
        match attempt() {
            Ok(next) => {
                let changes = live::Changes::between(&current, &next);
                let refused = std::sync::Arc::new(next.refused());
                self.membership.forget_forks_with(&next.rejected);
                *self.live.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(next);
                *self.tls_gate.write().unwrap_or_else(|p| p.into_inner()) = refused;
                if current.roster.fingerprint() != self.live().roster.fingerprint() {
                    // A new member or key may let envelopes kept for a retry pass.
                    self.sync.deferred.all_due(crate::node::peers::now());
                }
                *self
                    .reload_failure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = None;
                self.live_generation.send_modify(|g| *g += 1);
                tracing::info!(
                    members_added = ?changes.members_added,
                    members_removed = ?changes.members_removed,
                    peers_added = ?changes.peers_added,
                    peers_removed = ?changes.peers_removed,
                    signing_key = ?changes.signing_key,
                    "roster and config reloaded"
                );
                Some(changes)
            }
            Err(e) => {
                let msg = e.to_string();
                let mut last = self
                    .reload_failure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if last.as_deref() != Some(msg.as_str()) || force {
                    tracing::warn!(error = %msg, "roster or config changed but cannot be used; keeping the current ones");
                    *last = Some(msg);
                }
                None
            }
        }
    }

    /// Its store.
    pub fn backend(&self) -> &Backend {
        &self.store
    }

    /// Its embedded store, or why operation `what` cannot run on the backend the node
    /// runs on.
    pub fn embedded(&self, what: &'static str) -> Result<&Store, NotOnThisBackend> {
        self.store.embedded(what)
    }

    /// Counters for `/metrics` and status.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// What it knows of its peers (cursors, pushes, kept envelopes).
    pub fn sync(&self) -> &crate::node::peers::SyncState {
        &self.sync
    }

    /// The key of the MAC on TAXII `next` tokens.
    pub fn token_key(&self) -> &[u8; 32] {
        &self.token_key
    }

    /// When the node started.
    pub fn started_at(&self) -> Timestamp {
        self.started_at
    }

    /// Admits `limits.max_concurrent_publishes` publishes at once.
    pub fn publish_gate(&self) -> &tokio::sync::Semaphore {
        &self.publish_gate
    }

    /// Waits for a publish's turn (`limits.max_concurrent_publishes`), counted in
    /// `synergia_publishes_waiting` meanwhile (also when the caller gives up).
    pub async fn publish_turn(
        &self,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, tokio::sync::AcquireError> {
        /// Takes the waiting publish off the gauge however the wait ends.
        struct Waiting<'a>(&'a std::sync::atomic::AtomicU64);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        self.metrics
            .publishes_waiting
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _waiting = Waiting(&self.metrics.publishes_waiting);
        self.publish_gate.acquire().await
    }

    /// Admits `limits.max_concurrent_exports` exports at once.
    pub fn export_gate(&self) -> &std::sync::Arc<tokio::sync::Semaphore> {
        &self.export_gate
    }

    /// Request-body bytes held in memory, in units of [`BODY_BUDGET_UNIT`].
    pub fn body_budget(&self) -> &std::sync::Arc<tokio::sync::Semaphore> {
        &self.body_budget
    }

    /// The member name.
    pub fn member(&self) -> &str {
        &self.config.member
    }

    /// Roles of a configured local client.
    pub fn client_roles(&self, name: &str) -> Option<&[Role]> {
        self.config
            .clients
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.roles.as_slice())
    }
}
