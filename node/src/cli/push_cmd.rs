//! `synergia push`.

use super::EXIT_INVALID;
use super::client::{ClientArgs, Unanswered, node_error};
use anyhow::Context as _;
use serde_json::Value;
use std::io::Read as _;
use std::path::PathBuf;

/// Publish a STIX 2.1 bundle to a node as its member (signed there, split by TLP).
///
/// A bundle larger than --max-part-bytes (or than the node accepts) is sent in parts,
/// cut between objects, each with every marking definition of the bundle. If a push
/// stops half-way, what the node acknowledged stays published; run it again and the
/// node publishes the rest (objects it holds already are reported as held, never
/// signed twice). Invalid bundles are refused with every error (JSON pointer, code,
/// message) and exit status 1. Needs the `publish` role.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The bundle file, or - for standard input.
    file: PathBuf,
    /// Members allowed to receive red objects (comma-separated).
    #[arg(long, value_delimiter = ',')]
    recipients: Vec<String>,
    /// Largest request sent, bytes: a larger bundle goes in parts of at most this
    /// size (smaller still if the node says its limit is lower).
    #[arg(long, default_value_t = 32 << 20)]
    max_part_bytes: usize,
    #[command(flatten)]
    client: ClientArgs,
}

/// What the parts sent so far added up to.
#[derive(Default)]
struct Totals {
    published: u64,
    held: u64,
    rejected: u64,
    envelopes: Vec<Value>,
}

impl Totals {
    fn add(&mut self, v: &Value) {
        self.published += v["published"].as_u64().unwrap_or(0);
        self.held += v["held"].as_u64().unwrap_or(0);
        self.rejected += v["rejected"].as_u64().unwrap_or(0);
        self.envelopes
            .extend(v["envelopes"].as_array().into_iter().flatten().cloned());
    }
}

/// How one request ended.
enum Sent {
    Published(Value),
    Invalid(Value),
    /// The node's limit is lower than the request (its `max_body_bytes`, when said).
    TooLarge(Option<usize>),
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
    let name = a.file.display().to_string();
    let path = if a.recipients.is_empty() {
        "/api/v1/bundles".to_string()
    } else {
        format!("/api/v1/bundles?recipients={}", a.recipients.join(","))
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Progress is redrawn with `\r`, which only a terminal shows as one line.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut limit = a.max_part_bytes.max(1024);
    'split: loop {
        let parts = if data.len() <= limit {
            vec![data.clone()]
        } else {
            synergia::stix::split::split(&data, limit)
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?
                .parts
        };
        let n = parts.len();
        let mut totals = Totals::default();
        for (k, part) in parts.into_iter().enumerate() {
            let part_len = part.len();
            let label = if n > 1 {
                format!("part {} of {n}", k + 1)
            } else {
                String::new()
            };
            match rt.block_on(send(&c, &path, part, terminal, &label))? {
                Sent::Published(v) => totals.add(&v),
                Sent::TooLarge(node_limit) => {
                    // Smaller parts, from the start: parts the node took already come
                    // back as held.
                    // Under the node's limit when it said it; else half of what was cut.
                    let smaller = node_limit
                        .map_or(part_len / 2, |l| l - l / 10)
                        .min(limit / 2);
                    if smaller < 1024 {
                        anyhow::bail!("{name}: the node refuses even {limit}-byte requests");
                    }
                    if terminal {
                        eprintln!(
                            "the node takes at most {} bytes per request: sending parts of {smaller}",
                            node_limit.unwrap_or(limit)
                        );
                    }
                    limit = smaller;
                    continue 'split;
                }
                Sent::Invalid(v) => {
                    print_totals(&name, &totals, k);
                    println!(
                        "{name}{}: refused: {}",
                        if n > 1 {
                            format!(" ({label})")
                        } else {
                            String::new()
                        },
                        node_error(422, &v)
                    );
                    for f in v["details"].as_array().into_iter().flatten().take(200) {
                        println!(
                            "  {} {} [{}] {}",
                            f["object_id"].as_str().unwrap_or("-"),
                            f["pointer"].as_str().unwrap_or(""),
                            f["code"].as_str().unwrap_or(""),
                            f["message"].as_str().unwrap_or("")
                        );
                    }
                    if k > 0 {
                        println!(
                            "the {k} part(s) before it are published; fix the bundle and push it again: what the node holds is not published twice"
                        );
                    }
                    return Ok(EXIT_INVALID);
                }
            }
        }
        print_totals(&name, &totals, n);
        for e in &totals.envelopes {
            println!(
                "  {} seq {} tlp {} ({} objects)",
                e["id"].as_str().unwrap_or(""),
                e["seq"],
                e["tlp"].as_str().unwrap_or(""),
                e["objects"]
            );
        }
        return Ok(0);
    }
}

fn print_totals(name: &str, t: &Totals, parts: usize) {
    if parts == 0 {
        return;
    }
    println!(
        "{name}: published {} objects in {} envelopes{}; {} already held; {} rejected",
        t.published,
        t.envelopes.len(),
        if parts > 1 {
            format!(" ({parts} parts)")
        } else {
            String::new()
        },
        t.held,
        t.rejected
    );
}

/// Sends one bundle; any answer but a publish, a refusal of its content or of its
/// size is an error (naming `label`, the part).
async fn send(
    c: &super::client::NodeClient,
    path: &str,
    body: Vec<u8>,
    terminal: bool,
    label: &str,
) -> anyhow::Result<Sent> {
    let size = body.len();
    let show = terminal && size > 8 << 20;
    let chunks: Vec<Vec<u8>> = body.chunks(1 << 20).map(<[u8]>::to_vec).collect();
    let mut sent = 0usize;
    let label_shown = label.to_string();
    let stream = progress_stream(chunks, move |n| {
        sent += n;
        if show {
            eprint!(
                "\ruploading {label_shown} {:>5.1}% of {} MB",
                sent as f64 * 100.0 / size as f64,
                size >> 20
            );
        }
    });
    let req = c
        .request(reqwest::Method::POST, path)
        .header("content-type", "application/json")
        .header("content-length", size)
        .body(reqwest::Body::wrap_stream(stream));
    let answer = c.try_json(req).await;
    if show {
        eprintln!();
    }
    let (status, v) = match answer {
        Ok(a) => a,
        // A body far over the node's limit is answered 413 on a connection the node
        // then closes, which can cut the upload before the answer is read: try
        // smaller parts (a node that is down is then unreachable, and said so).
        Err(Unanswered::Lost(_)) if size > 1 << 20 => return Ok(Sent::TooLarge(None)),
        Err(Unanswered::Lost(m) | Unanswered::Unreachable(m)) => {
            anyhow::bail!("cannot reach the node at {}: {m}", c.url)
        }
    };
    match status {
        200 => Ok(Sent::Published(v)),
        422 => Ok(Sent::Invalid(v)),
        413 if v["error"] == "body-too-large" => Ok(Sent::TooLarge(
            v["details"]["max_body_bytes"]
                .as_u64()
                .and_then(|l| usize::try_from(l).ok()),
        )),
        _ => anyhow::bail!(
            "{}{}",
            if label.is_empty() {
                String::new()
            } else {
                format!("{label}: ")
            },
            node_error(status, &v)
        ),
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
