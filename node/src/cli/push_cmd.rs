//! `synergia push`.

use super::EXIT_INVALID;
use super::client::{ClientArgs, node_error};
use anyhow::Context as _;
use std::io::Read as _;
use std::path::PathBuf;

/// Publish a STIX 2.1 bundle to a node as its member (signed there, split by TLP).
///
/// Invalid bundles are refused whole with every error (JSON pointer, code, message) and
/// exit status 1. Needs the `publish` role.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle file, or - for standard input.
    file: PathBuf,
    /// Members allowed to receive red objects (comma-separated).
    #[arg(long, value_delimiter = ',')]
    recipients: Vec<String>,
    #[command(flatten)]
    client: ClientArgs,
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let c = a.client.connect()?;
    let mut data = Vec::new();
    if a.file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut data)
            .context("reading standard input")?;
    } else {
        data =
            std::fs::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    }
    let size = data.len();
    // Redrawn with `\r`, which only a terminal shows as one line.
    let show = size > 8 << 20 && std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Upload in chunks, reporting progress on large files.
    let chunks: Vec<Vec<u8>> = data.chunks(1 << 20).map(<[u8]>::to_vec).collect();
    let mut sent = 0usize;
    let stream = progress_stream(chunks, move |n| {
        sent += n;
        if show {
            eprint!(
                "\ruploading {:>5.1}% of {} MB",
                sent as f64 * 100.0 / size as f64,
                size >> 20
            );
        }
    });
    let path = if a.recipients.is_empty() {
        "/api/v1/bundles".to_string()
    } else {
        format!("/api/v1/bundles?recipients={}", a.recipients.join(","))
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let req = c
        .request(reqwest::Method::POST, &path)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream));
    let (status, v) = rt.block_on(c.json(req))?;
    if show {
        eprintln!();
    }
    let name = a.file.display();
    match status {
        200 => {
            println!(
                "{name}: published {} objects in {} envelopes; {} already held; {} rejected",
                v["published"],
                v["envelopes"].as_array().map_or(0, Vec::len),
                v["held"],
                v["rejected"]
            );
            for e in v["envelopes"].as_array().into_iter().flatten() {
                println!(
                    "  {} seq {} tlp {} ({} objects)",
                    e["id"].as_str().unwrap_or(""),
                    e["seq"],
                    e["tlp"].as_str().unwrap_or(""),
                    e["objects"]
                );
            }
            Ok(0)
        }
        422 => {
            println!("{name}: refused: {}", node_error(status, &v));
            for f in v["details"].as_array().into_iter().flatten().take(200) {
                println!(
                    "  {} {} [{}] {}",
                    f["object_id"].as_str().unwrap_or("-"),
                    f["pointer"].as_str().unwrap_or(""),
                    f["code"].as_str().unwrap_or(""),
                    f["message"].as_str().unwrap_or("")
                );
            }
            Ok(EXIT_INVALID)
        }
        _ => anyhow::bail!("{name}: {}", node_error(status, &v)),
    }
}

/// A stream over chunks that reports each chunk's size as it is taken.
fn progress_stream(
    chunks: Vec<Vec<u8>>,
    on_chunk: impl FnMut(usize) + Send + Unpin + 'static,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    struct S<F> {
        chunks: std::collections::VecDeque<Vec<u8>>,
        f: F,
    }
    impl<F: FnMut(usize) + Unpin> futures_core::Stream for S<F> {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            let next = self.chunks.pop_front();
            if let Some(c) = &next {
                (self.f)(c.len());
            }
            std::task::Poll::Ready(next.map(Ok))
        }
    }
    S {
        chunks: chunks.into(),
        f: on_chunk,
    }
}
