//! `synergia demo`.

use std::time::Duration;
use synergia::demo::{Demo, DemoOptions, explore_hint, run as run_demo};

/// Start a five-member federation on loopback (groupib, trendmicro, kaspersky,
/// teamcymru, interpol) with freshly generated keys, have each vendor publish
/// overlapping indicators, wait for convergence, and print the coordinator's
/// consolidated summary and peer status.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Indicators each vendor publishes.
    #[arg(long, default_value_t = 3000)]
    count: u64,
    /// Fraction of observables shared by every vendor.
    #[arg(long, default_value_t = 0.3)]
    overlap: f64,
    /// Keep the federation running after the summary (Ctrl-C to stop).
    #[arg(long)]
    keep: bool,
    /// Give up if the federation has not converged after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// The coordinator publishes too (all five members: the convergence benchmark).
    #[arg(long)]
    all_publish: bool,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    if !(0.0..=1.0).contains(&a.overlap) {
        anyhow::bail!("--overlap must be between 0 and 1");
    }
    let opts = DemoOptions {
        count: a.count,
        overlap: a.overlap,
        dir: None,
        timeout: Duration::from_secs(a.timeout),
        coordinator_publishes: a.all_publish,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let started = std::time::Instant::now();
        let mut progress = |s: &str| eprintln!("[{:>6.2}s] {s}", started.elapsed().as_secs_f64());
        let demo = Demo::start(&opts, &mut progress).await?;
        let report = run_demo(&demo, &opts, &mut progress).await;
        match report {
            Ok(text) => println!("{text}"),
            Err(e) => {
                demo.stop().await;
                return Err(e.into());
            }
        }
        if a.keep {
            println!("{}", explore_hint(&demo));
            let _ = tokio::signal::ctrl_c().await;
        }
        demo.stop().await;
        eprintln!("[{:>6.2}s] stopped", started.elapsed().as_secs_f64());
        anyhow::Ok(0)
    })
}
