//! `synergia rebuild`.

use anyhow::Context as _;
use std::path::PathBuf;
use synergia::config::{Config, StoreBackend};
use synergia::node::backend::database_config;
use synergia::store::postgres::PgStore;
use synergia::store::postgres::rebuild::PgRebuildError;
use synergia::store::postgres::settings::DbSettings;
use synergia::store::{Store, StoreOptions};

/// Rebuild every index from the evidence log, verifying every signature again.
///
/// Run it with the node stopped: after a crash that left the index unreadable, after a
/// roster change (revoked keys), or after an upgrade that changed the index format.
/// On PostgreSQL the view's tables are built again from the `envelopes` table, in one
/// transaction; it refuses while a `serve` process of the member shows signs of life.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node's config file.
    #[arg(long, env = "SYNERGIA_CONFIG")]
    config: PathBuf,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let cfg = Config::load(&a.config)?;
    // The roster the node itself goes by: its membership log's, when it follows one.
    let roster = synergia::node::live::Live::load(&cfg, false)
        .with_context(|| format!("{}: the roster", a.config.display()))?
        .roster;
    let (what, report) = match cfg.store.backend {
        StoreBackend::Embedded => {
            let opts = StoreOptions {
                cache_bytes: cfg.store.cache_mb << 20,
                ..StoreOptions::default()
            };
            let report = Store::rebuild(&cfg.data_dir, &opts, &roster)
                .with_context(|| format!("rebuilding {}", cfg.data_dir.display()))?;
            (cfg.data_dir.display().to_string(), report)
        }
        StoreBackend::Postgres => {
            let db = DbSettings::resolve(&database_config(&cfg))
                .with_context(|| format!("{}: [store]", a.config.display()))?;
            let rt = super::database_runtime()?;
            let store = rt
                .block_on(PgStore::open(&db))
                .with_context(|| format!("opening the database {}", db.url))?;
            let report = match rt.block_on(store.rebuild(&roster)) {
                Ok(r) => r,
                Err(e @ PgRebuildError::InUse(_)) => {
                    eprintln!("error: {}: {e}", db.url);
                    return Ok(super::EXIT_INVALID);
                }
                Err(e) => return Err(e).with_context(|| format!("rebuilding {}", db.url)),
            };
            (db.url.clone(), report)
        }
    };
    println!(
        "rebuilt {what}: {} envelopes read, {} object versions indexed, {} rejected",
        report.envelopes,
        report.versions,
        report.rejected.len()
    );
    for (ordinal, why) in &report.rejected {
        println!("  rejected log ordinal {ordinal}: {why}");
    }
    for (level, d) in &report.digests {
        println!("  digest {:<13} {d}", level.as_str());
    }
    Ok(0)
}
