//! `synergia rebuild`.

use anyhow::Context as _;
use std::path::PathBuf;
use synergia::config::Config;
use synergia::roster::Roster;
use synergia::store::{Store, StoreOptions};

/// Rebuild every index from the evidence log, verifying every signature again.
///
/// Run it with the node stopped: after a crash that left the index unreadable, after a
/// roster change (revoked keys), or after an upgrade that changed the index format.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node's config file.
    #[arg(long, env = "SYNERGIA_CONFIG")]
    config: PathBuf,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let cfg = Config::load(&a.config)?;
    if cfg.store.backend == synergia::config::StoreBackend::Postgres {
        anyhow::bail!(
            "{}: store.backend = \"postgres\": rebuilding the view in the database is not available in this version (the data directory is not the node's store); to rebuild it, move the node's evidence log into an empty database again with `synergia store migrate`",
            a.config.display()
        );
    }
    let roster = Roster::load(&cfg.roster)?;
    let opts = StoreOptions {
        cache_bytes: cfg.store.cache_mb << 20,
        ..StoreOptions::default()
    };
    let report = Store::rebuild(&cfg.data_dir, &opts, &roster)
        .with_context(|| format!("rebuilding {}", cfg.data_dir.display()))?;
    println!(
        "rebuilt {}: {} envelopes read, {} object versions indexed, {} rejected",
        cfg.data_dir.display(),
        report.envelopes,
        report.versions,
        report.rejected.len()
    );
    for (ordinal, why) in &report.rejected {
        println!("  rejected log ordinal {ordinal}: {why}");
    }
    for (level, d) in &report.digests {
        println!("  digest {level:<13} {d}");
    }
    Ok(0)
}
