//! The PostgreSQL backend: everything the node stores, in a database that several
//! `synergia serve` processes of one member share (`[store] backend = "postgres"`).
//!
//! - [`settings`]: the URL, password and CA, from the config and the environment.
//! - [`schema`]: versioned migrations, applied at start in one transaction.
//! - [`ingest`]: storing a batch of envelopes in one transaction, choosing each
//!   object it touches again from that object's rows ([`crate::store::resolve`]).
//! - [`store`]: [`PgStore`], the reads and keyed values.
//! - [`migrate`]: moving an embedded node's evidence log into an empty database.
//! - [`rebuild`]: the view built again from the log, every envelope verified again.
//! - [`lease`]: which of a member's processes pulls each peer.
//!
//! Connections come from a pool (deadpool-postgres over tokio-postgres), over TLS
//! with rustls unless the URL turns it off.

pub mod ingest;
pub mod lease;
pub mod lookup;
pub mod migrate;
pub mod read;
pub mod rebuild;
pub mod schema;
pub mod settings;
pub mod store;

pub use ingest::{Incoming, Recorded};
pub use store::{Counts, PgStore};

use settings::{DbSettings, DbTls};
use std::time::Duration;

/// Why the database cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The settings are not usable.
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    /// The CA for the database's certificate cannot be read.
    #[error("store CA: {0}")]
    Ca(#[source] crate::tls::TlsError),
    /// No connection could be had: the server is down, unreachable, refuses this
    /// user, or every connection stayed busy.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A statement failed.
    #[error("database: {what}: {}", describe(source))]
    Query {
        /// What the node was doing.
        what: String,
        /// The server's or the connection's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A freshly signed envelope of this member's carries a sequence number already
    /// stored: its publish lost the publish turn (its connection was cut) and another
    /// process numbered on meanwhile. Nothing of the batch was stored.
    #[error(
        "sequence number {seq} of {origin} is already used: this publish lost its turn to sign; nothing of this batch was stored"
    )]
    SequenceUsed {
        /// The member.
        origin: String,
        /// The number.
        seq: u64,
    },
    /// The database's schema is newer than this build knows.
    #[error(
        "the database's schema is version {found}, newer than this build knows ({known}): run a newer synergia (nothing was changed)"
    )]
    SchemaTooNew {
        /// The database's version.
        found: i32,
        /// The newest this build knows.
        known: i32,
    },
}

impl PgError {
    /// A failed statement, with what the node was doing.
    pub fn query(what: &str, source: tokio_postgres::Error) -> PgError {
        // A connection lost mid-statement, or a server shutting down or not yet
        // taking connections (SQLSTATE classes 08 and 57P), is the server being
        // unavailable, not a statement the server refused; an error of a value's
        // conversion (neither) stays a query error.
        let io = std::error::Error::source(&source).is_some_and(|e| e.is::<std::io::Error>());
        let unavailable = match source.as_db_error() {
            Some(db) => {
                let code = db.code().code();
                code.starts_with("08") || code.starts_with("57P")
            }
            None => source.is_closed() || io,
        };
        if unavailable {
            return PgError::Unavailable(format!("{what}: {}", describe(&source)));
        }
        PgError::Query {
            what: what.to_string(),
            source,
        }
    }

    /// Whether the failure is the database being unreachable (the same request
    /// succeeds once it is back), as opposed to a statement it refused.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, PgError::Unavailable(_))
    }
}

/// A pool of connections to a member's database.
#[derive(Clone)]
pub struct PgPool {
    pool: deadpool_postgres::Pool,
}

impl std::fmt::Debug for PgPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgPool")
            .field("status", &self.pool.status())
            .finish()
    }
}

/// How long a connection attempt, or a wait for a free connection, may take: a
/// database that does not answer within it is unavailable, and a publish is refused
/// rather than left waiting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl PgPool {
    /// A pool for `s`. Makes no connection yet (see [`PgPool::open`]).
    pub fn new(s: &DbSettings) -> Result<PgPool, PgError> {
        let mut cfg: tokio_postgres::Config = s
            .url
            .parse()
            .map_err(|e| PgError::Unavailable(format!("store.url: {e}")))?;
        if let Some(p) = &s.password {
            cfg.password(p);
        }
        cfg.connect_timeout(CONNECT_TIMEOUT);
        cfg.keepalives(true);
        cfg.keepalives_idle(Duration::from_secs(30));
        if cfg.get_application_name().is_none() {
            cfg.application_name("synergia");
        }
        let manager_cfg = deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        };
        let manager = match s.tls {
            DbTls::Off => {
                cfg.ssl_mode(tokio_postgres::config::SslMode::Disable);
                deadpool_postgres::Manager::from_config(cfg, tokio_postgres::NoTls, manager_cfg)
            }
            DbTls::Verified => {
                cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
                let tls = crate::tls::database_client_config(&s.ca).map_err(PgError::Ca)?;
                deadpool_postgres::Manager::from_config(
                    cfg,
                    tokio_postgres_rustls::MakeRustlsConnect::new(tls),
                    manager_cfg,
                )
            }
        };
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(s.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| PgError::Unavailable(e.to_string()))?;
        Ok(PgPool { pool })
    }

    /// A pool for `s`, with the schema brought up to date (the first connection is
    /// made here, so a wrong password or an unreachable server is reported at start).
    pub async fn open(s: &DbSettings) -> Result<(PgPool, schema::Migrated), PgError> {
        let pool = PgPool::new(s)?;
        let migrated = {
            let mut c = pool.get().await?;
            schema::migrate(&mut c).await?
        };
        Ok((pool, migrated))
    }

    /// A connection from the pool.
    pub async fn get(&self) -> Result<deadpool_postgres::Object, PgError> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => PgError::Unavailable(describe(&e)),
            other => PgError::Unavailable(other.to_string()),
        })
    }

    /// Connections open now and the most the pool keeps.
    pub fn connections(&self) -> (usize, usize) {
        let s = self.pool.status();
        (s.size, s.max_size)
    }
}

/// A tokio-postgres error with its cause: its own text is often only "db error" or
/// "error connecting to server".
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}
