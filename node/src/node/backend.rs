//! Where a node keeps what it stores: the embedded store (evidence log files and
//! sled, the view in memory) or a PostgreSQL database several processes share.

use crate::store::engine::Space;
use crate::store::postgres::PgStore;
use crate::store::{Store, StoreError};

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
    /// This process's name among the member's processes, in the pull leases it holds
    /// (given up at once when it stops).
    pub holder: String,
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
        Postgres {
            store,
            holder: crate::store::postgres::lease::holder_name(),
            handle,
        }
    }

    /// Runs `fut` to its end from synchronous code: a publish on a blocking thread,
    /// a sync task's bookkeeping on an async worker, a test. On a worker of a
    /// multi-threaded runtime the worker first hands its other tasks over
    /// (`block_in_place`), so the connections' tasks keep running while it waits.
    pub fn block<F>(&self, fut: F) -> F::Output
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        block_on(&self.handle, fut)
    }
}

/// Runs `fut` to its end on the runtime of `handle`, from synchronous code (see
/// [`Postgres::block`]). `handle` must be a multi-threaded runtime's (`Node::open`
/// makes sure).
pub fn block_on<F>(handle: &tokio::runtime::Handle, fut: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        // Outside any runtime (or on its blocking threads), waiting here is fine.
        Err(_) => handle.block_on(fut),
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(|| handle.block_on(fut)),
        // Inside a single-threaded runtime (another one: the node's is multi-threaded):
        // from a thread of its own.
        Ok(_) => std::thread::scope(|s| match s.spawn(|| handle.block_on(fut)).join() {
            Ok(out) => out,
            // The future panicked: the panic goes on in the caller.
            Err(p) => std::panic::resume_unwind(p),
        }),
    }
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

/// What the node's bookkeeping (peer states, TAXII statuses, envelopes kept for a
/// retry) and its feed need of either store, called from synchronous code.
impl Backend {
    /// The next feed position.
    pub fn head(&self) -> Result<u64, StoreError> {
        match self {
            Backend::Embedded(s) => Ok(s.head()),
            Backend::Postgres(pg) => pg.block(pg.store.head()),
        }
    }

    /// The log's epoch.
    pub fn epoch(&self) -> &str {
        match self {
            Backend::Embedded(s) => s.epoch(),
            Backend::Postgres(pg) => pg.store.epoch(),
        }
    }

    /// Which of `ids` are held.
    pub fn held(&self, ids: &[[u8; 32]]) -> Result<Vec<bool>, StoreError> {
        match self {
            Backend::Embedded(s) => {
                let view = s.read();
                Ok(ids.iter().map(|i| view.has_envelope(i)).collect())
            }
            Backend::Postgres(pg) => pg.block(pg.store.held(ids)),
        }
    }

    /// A small persisted value.
    pub fn get_value(&self, space: Space, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Backend::Embedded(s) => s.get_value(space, key),
            Backend::Postgres(pg) => pg.block(pg.store.get_value(space, key)),
        }
    }

    /// Sets a small value; `durable`: on disk when this returns (always so on
    /// PostgreSQL, where each write is a committed statement).
    pub fn put_value(
        &self,
        space: Space,
        key: &str,
        value: Vec<u8>,
        durable: bool,
    ) -> Result<(), StoreError> {
        match self {
            Backend::Embedded(s) => s.put_value(space, key, value, durable),
            Backend::Postgres(pg) => pg.block(pg.store.put_value(space, key, &value)),
        }
    }

    /// Removes a small value (durably).
    pub fn delete_value(&self, space: Space, key: &str) -> Result<(), StoreError> {
        match self {
            Backend::Embedded(s) => s.delete_value(space, key),
            Backend::Postgres(pg) => pg.block(pg.store.delete_value(space, key)),
        }
    }

    /// Every value of `space` whose key starts with `prefix`, in key order.
    pub fn values_with_prefix(
        &self,
        space: Space,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        match self {
            Backend::Embedded(s) => s.values_with_prefix(space, prefix),
            Backend::Postgres(pg) => pg.block(pg.store.values_with_prefix(space, prefix)),
        }
    }
}
