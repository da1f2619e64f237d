//! `synergia store`: moving a node's store.

use anyhow::Context as _;
use std::path::PathBuf;
use synergia::config::Config;
use synergia::store::postgres::PgStore;
use synergia::store::postgres::migrate::{MigrateError, migrate};
use synergia::store::postgres::settings::{self, DbConfig, DbSettings};
use synergia::store::{Store, StoreOptions};

/// Store operations (node stopped).
#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Copy an embedded node's evidence log into an empty PostgreSQL database and
    /// build the view there, verifying every envelope against the roster; prints the
    /// digests of both sides.
    Migrate(MigrateArgs),
}

/// `synergia store migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The node's config file (its data directory is the source; the node must be
    /// stopped).
    #[arg(long, env = "SYNERGIA_CONFIG")]
    config: PathBuf,
    /// The empty database, `postgresql://USER@HOST:PORT/DB` (no password in it: the
    /// password comes from SYNERGIA_STORE_PASSWORD). TLS is verified against the
    /// config's CA unless the URL says `sslmode=disable`.
    #[arg(long)]
    to_url: String,
}

pub fn run(c: StoreCommand) -> anyhow::Result<u8> {
    match c {
        StoreCommand::Migrate(a) => run_migrate(a),
    }
}

fn run_migrate(a: MigrateArgs) -> anyhow::Result<u8> {
    let cfg = Config::load(&a.config)?;
    // The roster the node itself goes by: its membership log's, when it follows one.
    let roster = synergia::node::live::Live::load(&cfg, false)
        .with_context(|| format!("{}: the roster", a.config.display()))?
        .roster;
    settings::check_url(&a.to_url).map_err(|m| anyhow::anyhow!("--to-url: {m}"))?;
    let db = DbSettings::resolve_with(
        &DbConfig {
            url: Some(a.to_url.clone()),
            password_file: None,
            ca: cfg.tls.ca.clone(),
            pool_size: 2,
        },
        // The flag names the target: SYNERGIA_STORE_URL does not override it.
        |k| {
            (k == settings::PASSWORD_ENV)
                .then(|| std::env::var(k).ok())
                .flatten()
        },
    )?;
    let opts = StoreOptions {
        cache_bytes: cfg.store.cache_mb << 20,
        ..StoreOptions::default()
    };
    let source = Store::open(&cfg.data_dir, &opts)
        .with_context(|| format!("opening {}", cfg.data_dir.display()))?;
    let rt = super::database_runtime()?;
    let target = rt
        .block_on(PgStore::open(&db))
        .with_context(|| format!("opening the database {}", db.url))?;
    let report = match migrate(&source, &roster, &target, rt.handle()) {
        Ok(r) => r,
        Err(e @ MigrateError::NotEmpty(_)) => {
            eprintln!("error: {e}");
            return Ok(super::EXIT_INVALID);
        }
        Err(e) => return Err(e).context("migrating"),
    };
    println!(
        "migrated {} to {}: {} envelopes read, {} stored, {} rejected, {} values copied",
        cfg.data_dir.display(),
        db.url,
        report.envelopes,
        report.stored,
        report.rejected.len(),
        report.values
    );
    for (ordinal, why) in &report.rejected {
        println!("  rejected log ordinal {ordinal}: {why}");
    }
    for (name, embedded, postgres) in &report.digests {
        let same = if embedded == postgres {
            "same"
        } else {
            "DIFFERENT"
        };
        println!("  digest {name:<13} {postgres} ({same})");
    }
    if !report.digests_match() {
        println!(
            "the digests differ{}: the database is kept; check before starting the node on it",
            if report.rejected.is_empty() {
                ""
            } else {
                " (rejected envelopes are not in the database)"
            }
        );
        return Ok(super::EXIT_INVALID);
    }
    Ok(0)
}
