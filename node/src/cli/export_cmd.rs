//! `synergia export`.

use super::client::{ClientArgs, node_error};
use anyhow::Context as _;
use std::io::Write as _;
use std::path::PathBuf;

/// The consolidated feed: latest versions as a STIX 2.1 bundle, or a CSV of observables
/// with corroboration. Streams to standard output or a file. Needs `read`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output file (default: standard output).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// `stix` (bundle) or `csv` (one row per observable).
    #[arg(long, default_value = "stix", value_parser = ["stix", "csv"])]
    format: String,
    /// Only these STIX types (comma-separated).
    #[arg(long = "type", value_delimiter = ',')]
    types: Vec<String>,
    /// Only objects the node received after this instant: a date (`2026-12-01`, from
    /// its start, UTC) or a timestamp (`2026-12-01T08:00:00Z`).
    #[arg(long, value_parser = since)]
    since: Option<String>,
    /// Only objects whose observables at least this many members reported.
    #[arg(long, default_value_t = 0)]
    min_corroboration: usize,
    /// Only objects reported by these members (comma-separated).
    #[arg(long, value_delimiter = ',')]
    origin: Vec<String>,
    /// Most restrictive TLP level to include (clear, green, amber, amber+strict, red).
    #[arg(long)]
    tlp: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

/// Checks `--since` before anything is asked of the node.
fn since(s: &str) -> Result<String, String> {
    synergia::stix::timestamp::Timestamp::parse_day_or_instant(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let c = a.client.connect()?;
    let mut q: Vec<(&str, String)> = vec![("format", a.format.clone())];
    if !a.types.is_empty() {
        q.push(("type", a.types.join(",")));
    }
    if !a.origin.is_empty() {
        q.push(("origin", a.origin.join(",")));
    }
    if let Some(s) = &a.since {
        q.push(("since", s.clone()));
    }
    if a.min_corroboration > 0 {
        q.push(("min_corroboration", a.min_corroboration.to_string()));
    }
    if let Some(t) = &a.tlp {
        q.push(("tlp", t.clone()));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut resp = c
            .request(reqwest::Method::GET, "/api/v1/export")
            .query(&q)
            .send()
            .await
            .with_context(|| format!("cannot reach the node at {}", c.url))?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let v: serde_json::Value = resp.json().await.unwrap_or_default();
            anyhow::bail!(node_error(status, &v));
        }
        let mut out: Box<dyn std::io::Write> = match &a.out {
            Some(p) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot create {}", p.display()))?,
            )),
            None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        };
        let mut written = 0usize;
        let mut next_report = 16 << 20;
        while let Some(chunk) = resp.chunk().await.context("the export was interrupted")? {
            out.write_all(&chunk)
                .map_err(super::out::closed_quietly)
                .context("writing the export")?;
            written += chunk.len();
            if a.out.is_some() && written >= next_report {
                eprint!("\rexported {} MB", written >> 20);
                next_report += 16 << 20;
            }
        }
        out.flush()
            .map_err(super::out::closed_quietly)
            .context("writing the export")?;
        if let Some(p) = &a.out {
            eprintln!("\rexported {} bytes to {}", written, p.display());
        }
        anyhow::Ok(0)
    })
}
