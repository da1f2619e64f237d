//! `synergia serve`.

use anyhow::Context as _;
use std::path::PathBuf;
use std::sync::Arc;
use synergia::config::Config;
use synergia::node::Node;

/// Run the node until SIGINT or SIGTERM.
///
/// Serves TAXII 2.1 at /taxii2/, the node API at /api/v1/, and the federation API at
/// /federation/v1/ on the configured address, over TLS with client certificates from
/// the federation CA. SIGHUP reloads the TLS certificate and CA.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The node's config file.
    #[arg(long, env = "SYNERGIA_CONFIG")]
    config: PathBuf,
    /// Listen on this address (IP:PORT) instead of the config's `[listen] address`.
    #[arg(long, value_name = "IP:PORT", value_parser = parse_listen)]
    listen: Option<std::net::SocketAddr>,
}

fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("{s:?} is not IP:PORT (e.g. 127.0.0.1:7443)"))
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
    tracing::info!("shutting down");
}

/// A write past the process's file-size limit (`RLIMIT_FSIZE`) kills the process by
/// default (`SIGXFSZ`). A server must instead see that write fail (`EFBIG`) and refuse
/// the request like a full disk, acknowledging nothing, so the signal is caught and
/// only logged.
fn survive_file_size_limit() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::from_raw(libc::SIGXFSZ)) {
        Ok(mut s) => {
            tokio::spawn(async move {
                // Logged once a minute at most: when the log itself is a file past the
                // limit, each warning would raise the signal again.
                let mut last: Option<tokio::time::Instant> = None;
                while s.recv().await.is_some() {
                    if last.is_none_or(|t| t.elapsed() > std::time::Duration::from_secs(60)) {
                        last = Some(tokio::time::Instant::now());
                        tracing::warn!("a write went past the file-size limit; it fails instead");
                    }
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot catch SIGXFSZ"),
    }
}

/// Fault-test switches from the environment: a clock offset and object types the
/// validator refuses. Each is logged loudly; no request or config file can set them.
fn test_switches() -> anyhow::Result<()> {
    if let Ok(v) = std::env::var("SYNERGIA_TEST_CLOCK_OFFSET_SECS") {
        let secs: i64 = v.trim().parse().with_context(|| {
            format!("SYNERGIA_TEST_CLOCK_OFFSET_SECS={v:?} is not a whole number of seconds")
        })?;
        synergia::stix::timestamp::set_clock_offset_secs(secs);
        tracing::warn!(secs, "test switch: this node's clock is shifted");
    }
    if let Ok(v) = std::env::var("SYNERGIA_TEST_REFUSE_TYPES") {
        let types: Vec<String> = v
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect();
        tracing::warn!(types = ?types, "test switch: the validator refuses these object types");
        synergia::stix::refuse_types(types);
    }
    Ok(())
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let mut cfg = Config::load(&a.config)?;
    let flag = a.listen.is_some();
    if let Some(addr) = a.listen {
        cfg.listen.address = addr.to_string();
    }
    test_switches()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        survive_file_size_limit();
        let address = cfg.listen.address.clone();
        let node = Arc::new(
            Node::open(cfg)
                .with_context(|| format!("starting the node from {}", a.config.display()))?,
        );
        synergia::allocator::give_back_freed_memory();
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {address} ({})",
                    if flag { "--listen" } else { "listen.address" }
                )
            })?;
        let sync = synergia::sync::spawn(node.clone());
        synergia::server::serve(listener, node, sync, shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    Ok(0)
}
