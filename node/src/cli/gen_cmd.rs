//! `synergia gen`.

use anyhow::Context as _;
use std::io::Write as _;
use std::path::PathBuf;
use synergia::stix::tlp::TlpLevel;
use synergia::workload::{GenOptions, write_bundle};

/// Generate a deterministic STIX 2.1 indicator bundle.
///
/// Origins generated with the same seed share exactly the fraction --overlap of their
/// observables, so corroboration in a federation is predictable.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of indicators.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Seed; origins with the same seed overlap.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Member name of the producer.
    #[arg(long, default_value = "example")]
    origin: String,
    /// STIX identity of the producer (created_by_ref); derived from --origin if absent.
    #[arg(long)]
    identity: Option<String>,
    /// Fraction (0 to 1) of observables shared with other origins of the same seed.
    #[arg(long, default_value_t = 0.3)]
    overlap: f64,
    /// Mark every object with this TLP level instead of the realistic mix
    /// (70% green, 20% clear, 10% amber).
    #[arg(long)]
    tlp: Option<TlpLevel>,
    /// Output file (default: standard output).
    #[arg(long, short)]
    out: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    if !(0.0..=1.0).contains(&a.overlap) {
        anyhow::bail!("--overlap must be between 0 and 1, got {}", a.overlap);
    }
    let opts = GenOptions {
        count: a.count,
        seed: a.seed,
        origin: a.origin,
        identity: a.identity,
        overlap: a.overlap,
        tlp: a.tlp,
    };
    match a.out {
        Some(path) => {
            let f = std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            let n = write_bundle(&opts, &mut w)
                .with_context(|| format!("writing {}", path.display()))?;
            w.flush()
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote {n} objects ({} indicators) to {}",
                opts.count,
                path.display()
            );
        }
        None => {
            let stdout = std::io::stdout();
            let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            write_bundle(&opts, &mut w)
                .map_err(super::out::closed_quietly)
                .context("writing to standard output")?;
            w.flush()
                .map_err(super::out::closed_quietly)
                .context("writing to standard output")?;
        }
    }
    Ok(0)
}
