//! Where a node keeps what it stores: the embedded store (evidence log files and
//! sled, the view in memory) or a PostgreSQL database several processes share.

use crate::store::Store;
use crate::store::postgres::PgStore;

/// A node's store.
#[derive(Debug)]
pub enum Backend {
    /// The evidence log and sled in `data_dir`. (Boxed: one node holds one store,
    /// and the enum stays small.)
    Embedded(Box<Store>),
    /// A PostgreSQL database.
    Postgres(Postgres),
}

/// A node's PostgreSQL store, with the runtime its statements run on.
#[derive(Debug)]
pub struct Postgres {
    /// The store.
    pub store: PgStore,
    handle: tokio::runtime::Handle,
}

/// An operation the node cannot do yet on the backend it runs on.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{what} is not available on the postgres store backend in this version; run the node on the embedded backend to use it"
)]
pub struct NotOnThisBackend {
    /// The operation.
    pub what: &'static str,
}

impl Postgres {
    /// Wraps a store whose statements run on the runtime of `handle`.
    pub fn new(store: PgStore, handle: tokio::runtime::Handle) -> Postgres {
        Postgres { store, handle }
    }

    /// Runs `fut` to its end from synchronous code (a publish, which runs on a
    /// blocking thread, or a test): on a thread of its own that enters the runtime,
    /// so that it works whether or not the caller is inside the runtime.
    pub fn block<F>(&self, fut: F) -> F::Output
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        block_on(&self.handle, fut)
    }
}

/// Runs `fut` to its end on the runtime of `handle`, from a thread of its own (see
/// [`Postgres::block`]).
pub fn block_on<F>(handle: &tokio::runtime::Handle, fut: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| match s.spawn(|| handle.block_on(fut)).join() {
        Ok(out) => out,
        // The future panicked: the panic goes on in the caller.
        Err(p) => std::panic::resume_unwind(p),
    })
}

impl Backend {
    /// The embedded store, or why the operation `what` cannot run here.
    pub fn embedded(&self, what: &'static str) -> Result<&Store, NotOnThisBackend> {
        match self {
            Backend::Embedded(s) => Ok(s),
            Backend::Postgres(_) => Err(NotOnThisBackend { what }),
        }
    }

    /// The PostgreSQL store, when the node runs on one.
    pub fn postgres(&self) -> Option<&Postgres> {
        match self {
            Backend::Embedded(_) => None,
            Backend::Postgres(p) => Some(p),
        }
    }
}

/// What the config says about the database (`[store]`, with `tls.ca` as the default
/// CA); `DbSettings::resolve` adds the environment and checks the URL (a password in
/// it, or an `sslmode` that can fall back to plain text, is refused there).
pub fn database_config(
    config: &crate::config::Config,
) -> crate::store::postgres::settings::DbConfig {
    crate::store::postgres::settings::DbConfig {
        url: config.store.url.clone(),
        password_file: config.store.password_file.clone(),
        ca: config
            .store
            .ca
            .clone()
            .unwrap_or_else(|| config.tls.ca.clone()),
        pool_size: config.store.pool_size,
    }
}
