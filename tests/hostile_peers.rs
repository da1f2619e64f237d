//! Hostile peers: fake members that serve a node their feed badly, all at once, while
//! an honest member keeps publishing to it.
//!
//! Each fake is a real mutual-TLS server presenting its member's certificate from the
//! federation CA, so the node under test pulls from it like from any peer. Each serves
//! `GET /federation/v1/feed` one hostile way: garbage bytes, invalid JSON, a page that
//! never advances (empty, or repeating envelopes), a cursor that goes backwards or is
//! not a number, HTTP 500, an endless body, a body that trickles, a connection reset
//! mid-page, an amber envelope of another origin it may not forward, forged
//! signatures. For every fake the test checks that the node keeps answering, the
//! failure or rejection is counted in `GET /api/v1/peers`, retries are backed off (the
//! fake's request count stays small), nothing it sent is stored, and meanwhile every
//! bundle the honest member publishes reaches the node within seconds.
//!
//! The test prints `HOSTILE-PEER class=<name> tried=<answers served>
//! contained=<answers contained>` lines; `docs/reliability.md` is made from them.

#[path = "common/mod.rs"]
mod common;

use common::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use synergia::envelope::{Envelope, EnvelopeId, Signer};
use synergia::stix::timestamp::Timestamp;
use synergia::stix::tlp::{ALL_LEVELS, TlpLevel};
use synergia::sync::client::MAX_RESPONSE_BYTES;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const GREEN: &str = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
const AMBER: &str = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421";
/// How long the fakes run against the node.
const WINDOW: Duration = Duration::from_secs(12);
/// The node's timeout for a whole request to a peer (`limits.peer_timeout_secs`).
const PEER_TIMEOUT_SECS: u64 = 5;

/// One hostile way to serve a feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// 4 KiB of random bytes as a 200 answer.
    Garbage,
    /// A JSON page cut in the middle.
    InvalidJson,
    /// `more: true` with `next` equal to `after` and no envelopes.
    StuckEmpty,
    /// `more: true` with `next` equal to `after`, repeating valid envelopes.
    StuckHeld,
    /// A cursor that moves forward once, then goes backwards.
    Backwards,
    /// `next` that is not a decimal u64 (a word, missing, past u64).
    BadCursor,
    /// HTTP 500.
    Error500,
    /// A 200 whose body never ends.
    Endless,
    /// A 200 whose body trickles a byte every 200 ms.
    Slow,
    /// Half a page, then the connection is reset or closed.
    Reset,
    /// A valid page holding an amber envelope of another origin.
    ForwardAmber,
    /// A valid page holding envelopes with forged signatures.
    Forged,
}

const FAKES: &[(&str, Behaviour)] = &[
    ("garbage", Behaviour::Garbage),
    ("invalid-json", Behaviour::InvalidJson),
    ("stuck-empty", Behaviour::StuckEmpty),
    ("stuck-held", Behaviour::StuckHeld),
    ("backwards", Behaviour::Backwards),
    ("bad-cursor", Behaviour::BadCursor),
    ("error-500", Behaviour::Error500),
    ("endless", Behaviour::Endless),
    ("slow", Behaviour::Slow),
    ("reset", Behaviour::Reset),
    ("forward-amber", Behaviour::ForwardAmber),
    ("forged", Behaviour::Forged),
];

/// A fake peer and what it saw.
struct Fake {
    class: &'static str,
    behaviour: Behaviour,
    /// Feed requests answered.
    feed_requests: AtomicU64,
    /// Largest number of body bytes written in one answer.
    max_body_bytes: AtomicU64,
    /// Valid-looking envelopes it serves (none of which may be stored).
    envelopes: Vec<Value>,
}

impl Fake {
    fn page(&self, after: u64, next: &str, more: bool) -> Vec<u8> {
        json!({"envelopes": self.envelopes, "next": next, "more": more, "head": after + 1000})
            .to_string()
            .into_bytes()
    }
}

/// A one-object bundle marked `marking`.
fn tiny_bundle(tag: &str, i: u64, marking: &str) -> Value {
    let ns = uuid::Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0001);
    let value = format!("203.0.{}.{}", (i / 250) % 250, i % 250);
    json!({
        "type": "bundle",
        "id": format!("bundle--{}", uuid::Uuid::new_v5(&ns, format!("{tag}-{i}").as_bytes())),
        "objects": [{
            "type": "ipv4-addr",
            "spec_version": "2.1",
            "id": format!("ipv4-addr--{}", uuid::Uuid::new_v5(&ns, format!("{tag}-{value}").as_bytes())),
            "value": value,
            "object_marking_refs": [marking],
        }],
    })
}

fn sign(s: &Signer, b: Value, seq: u64, tlp: TlpLevel) -> Value {
    signed_envelope(s, b, seq, tlp, Timestamp::now())
}

/// The envelope id of a JSON envelope.
fn id_of(v: &Value) -> EnvelopeId {
    Envelope::from_value(v.clone()).unwrap().id().clone()
}

/// The envelopes a fake serves: its own valid green envelopes (they must not be
/// stored because the page around them is refused), beta's amber (not forwardable), or
/// forged ones.
fn fake_envelopes(fed: &Federation, member: &str, behaviour: Behaviour) -> Vec<Value> {
    match behaviour {
        Behaviour::StuckHeld | Behaviour::Reset => {
            let s = fed.signer(member);
            (1..=3)
                .map(|i| sign(&s, tiny_bundle(member, i, GREEN), i, TlpLevel::Green))
                .collect()
        }
        Behaviour::ForwardAmber => {
            let beta = fed.signer("beta");
            vec![sign(
                &beta,
                tiny_bundle("beta-amber", 1, AMBER),
                9_000,
                TlpLevel::Amber,
            )]
        }
        Behaviour::Forged => {
            let own = fed.signer(member);
            // Its own envelope with one signature byte changed.
            let mut flipped = sign(&own, tiny_bundle(member, 1, GREEN), 1, TlpLevel::Green);
            let sig = flipped["signature"].as_str().unwrap().to_string();
            let mut chars: Vec<char> = sig.chars().collect();
            chars[10] = if chars[10] == 'A' { 'B' } else { 'A' };
            flipped["signature"] = Value::String(chars.into_iter().collect());
            // An envelope claiming to be beta's, signed with the fake's own key.
            let mut claimed = fed.signer(member);
            let beta = fed.signer("beta");
            claimed.origin = beta.origin.clone();
            claimed.origin_identity = beta.origin_identity.clone();
            claimed.key_id = beta.key_id.clone();
            let impersonated = sign(
                &claimed,
                tiny_bundle("beta-forged", 2, GREEN),
                9_001,
                TlpLevel::Green,
            );
            vec![flipped, impersonated]
        }
        _ => vec![],
    }
}

/// Serves one fake peer on `listener` until the runtime stops.
async fn serve_fake(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    fake: Arc<Fake>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let fake = fake.clone();
        tokio::spawn(async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let _ = tokio::time::timeout(Duration::from_secs(30), answer(tls, &fake)).await;
        });
    }
}

fn query_u64(target: &str, key: &str) -> Option<u64> {
    let q = target.split_once('?')?.1;
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

fn head(status: &str, len: Option<usize>) -> Vec<u8> {
    let mut h =
        format!("HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n");
    if let Some(n) = len {
        h.push_str(&format!("content-length: {n}\r\n"));
    }
    h.push_str("\r\n");
    h.into_bytes()
}

async fn answer(
    mut tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    fake: &Fake,
) -> std::io::Result<()> {
    // Read the request head (the node sends only GETs here: no body).
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut buf).await?;
        if n == 0 || req.len() > 64 * 1024 {
            return Ok(());
        }
        req.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&req[..req.iter().position(|&b| b == b'\r').unwrap_or(0)])
        .into_owned();
    let target = line.split(' ').nth(1).unwrap_or("").to_string();
    let simple = |body: Value| {
        let b = body.to_string().into_bytes();
        let mut out = head("200 OK", Some(b.len()));
        out.extend_from_slice(&b);
        out
    };
    if !target.starts_with("/federation/v1/feed") {
        let out = if target.starts_with("/federation/v1/digest") {
            simple(json!({"member": fake.class, "head": 0, "digests": {}}))
        } else {
            simple(json!({"results": []}))
        };
        tls.write_all(&out).await?;
        return tls.shutdown().await;
    }
    let n = fake.feed_requests.fetch_add(1, Ordering::SeqCst);
    let after = query_u64(&target, "after").unwrap_or(0);
    let record = |bytes: u64| {
        fake.max_body_bytes.fetch_max(bytes, Ordering::SeqCst);
    };
    let body: Vec<u8> = match fake.behaviour {
        Behaviour::Garbage => {
            let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ n;
            (0..4096)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        }
        Behaviour::InvalidJson => {
            b"{\"envelopes\": [{\"type\": \"synergia-envelope\", \"version\": 1, \"ori".to_vec()
        }
        Behaviour::StuckEmpty | Behaviour::StuckHeld => fake.page(after, &after.to_string(), true),
        Behaviour::Backwards => {
            if after == 0 {
                fake.page(after, "100", false)
            } else {
                fake.page(after, &(after / 2).to_string(), false)
            }
        }
        Behaviour::BadCursor => match n % 3 {
            0 => fake.page(after, "next-page", false),
            1 => json!({"envelopes": [], "more": false})
                .to_string()
                .into_bytes(),
            _ => fake.page(after, "100000000000000000000000", false),
        },
        Behaviour::Error500 => {
            let b = json!({"error": "internal", "message": "boom"}).to_string();
            let mut out = head("500 Internal Server Error", Some(b.len()));
            out.extend_from_slice(b.as_bytes());
            tls.write_all(&out).await?;
            record(b.len() as u64);
            return tls.shutdown().await;
        }
        Behaviour::Endless => {
            // A 200 with no length and a body that goes on until the node hangs up.
            tls.write_all(&head("200 OK", None)).await?;
            tls.write_all(b"{\"envelopes\":[").await?;
            let chunk = b"{\"a\":1},".repeat(8192);
            let mut sent = 14u64;
            loop {
                if tls.write_all(&chunk).await.is_err() {
                    record(sent);
                    return Ok(());
                }
                sent += chunk.len() as u64;
                record(sent);
            }
        }
        Behaviour::Slow => {
            tls.write_all(&head("200 OK", Some(1 << 20))).await?;
            tls.flush().await?;
            let mut sent = 0u64;
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if tls.write_all(b" ").await.is_err() || tls.flush().await.is_err() {
                    return Ok(());
                }
                sent += 1;
                record(sent);
            }
        }
        Behaviour::Reset => {
            let page = fake.page(after, &(after + 3).to_string(), false);
            tls.write_all(&head("200 OK", Some(page.len()))).await?;
            tls.write_all(&page[..page.len() / 2]).await?;
            tls.flush().await?;
            record((page.len() / 2) as u64);
            let (tcp, _) = tls.get_ref();
            if n.is_multiple_of(2) {
                // RST instead of FIN: a reset mid-transfer.
                let _ = tcp.set_zero_linger();
            }
            // Dropped without close_notify.
            return Ok(());
        }
        Behaviour::ForwardAmber | Behaviour::Forged => {
            fake.page(after, &(after + 1).to_string(), false)
        }
    };
    let mut out = head("200 OK", Some(body.len()));
    out.extend_from_slice(&body);
    record(body.len() as u64);
    tls.write_all(&out).await?;
    tls.shutdown().await
}

/// Peak resident memory of this process, bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or(0, |k| k * 1024)
}

fn snapshot(node: &synergia::node::Node) -> (usize, Vec<String>) {
    let v = node.embedded("test").unwrap().read();
    (
        v.envelope_count(),
        ALL_LEVELS
            .iter()
            .map(|l| v.digest(*l).to_string())
            .collect(),
    )
}

#[test]
fn hostile_peers_are_contained_and_sync_with_an_honest_peer_goes_on() {
    let started = Instant::now();
    let mut names: Vec<String> = vec!["alpha".into(), "beta".into()];
    names.extend(FAKES.iter().map(|(c, _)| format!("fake-{c}")));
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let fed = Federation::new(&refs, &[]);

    // The fakes: real mTLS servers on the members' roster addresses.
    let fakes: Vec<Arc<Fake>> = FAKES
        .iter()
        .map(|(class, behaviour)| {
            Arc::new(Fake {
                class,
                behaviour: *behaviour,
                feed_requests: AtomicU64::new(0),
                max_body_bytes: AtomicU64::new(0),
                envelopes: fake_envelopes(&fed, &format!("fake-{class}"), *behaviour),
            })
        })
        .collect();
    let fake_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for fake in &fakes {
        let cfg = fed.config(&format!("fake-{}", fake.class));
        let mut tls = (*synergia::tls::server_config(&cfg).unwrap()).clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let listener = fake_rt
            .block_on(tokio::net::TcpListener::bind(&cfg.listen.address))
            .unwrap();
        fake_rt.spawn(serve_fake(listener, Arc::new(tls), fake.clone()));
    }

    // The honest member publishes before the node under test starts (it catches up by
    // pulling) and then every 700 ms (pushed and pulled).
    let mut beta_cfg = fed.config("beta");
    beta_cfg.peers.retain(|p| p.name == "alpha");
    let beta = RunningNode::start_at_roster_address(beta_cfg);
    let beta_admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("beta")));
    let rt = rt();
    let publish = |i: u64| {
        let b = tiny_bundle("beta", i, GREEN);
        rt.block_on(async {
            let r = beta_admin
                .post(format!("{}/api/v1/bundles", beta.url))
                .json(&b)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            EnvelopeId::parse(v["envelopes"][0]["id"].as_str().unwrap()).unwrap()
        })
    };
    let mut published: Vec<EnvelopeId> = (0..5).map(publish).collect();

    let mut cfg = fed.config("alpha");
    cfg.limits.peer_timeout_secs = PEER_TIMEOUT_SECS;
    let alpha = RunningNode::start_at_roster_address(cfg);
    let alpha_admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("alpha")));
    let rss_before = peak_rss();

    // Publish on beta while the fakes misbehave; each must reach alpha within seconds.
    let window_start = Instant::now();
    let mut latencies = Vec::new();
    let mut i = 5;
    while window_start.elapsed() < WINDOW {
        let id = publish(i);
        let t = Instant::now();
        while !alpha.node.embedded("test").unwrap().contains(&id) {
            if t.elapsed() > Duration::from_secs(5) {
                let counts: Vec<(&str, u64)> = fakes
                    .iter()
                    .map(|f| (f.class, f.feed_requests.load(Ordering::SeqCst)))
                    .collect();
                panic!(
                    "envelope {i} published on the honest peer did not reach the node within 5 s; alpha's view of beta: {:?}; fake requests {counts:?}",
                    alpha.node.sync().peer("beta")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        latencies.push(t.elapsed());
        published.push(id);
        i += 1;
        // The node under test keeps answering.
        let health = rt.block_on(async {
            alpha_admin
                .get(format!("{}/healthz", alpha.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .map(|r| r.status().as_u16())
        });
        assert_eq!(health.ok(), Some(200), "the node stopped answering");
        std::thread::sleep(Duration::from_millis(700));
    }
    let window = window_start.elapsed();
    let counts: Vec<u64> = fakes
        .iter()
        .map(|f| f.feed_requests.load(Ordering::SeqCst))
        .collect();

    // What the operator sees.
    let peers: Vec<Value> = rt.block_on(async {
        let v: Value = alpha_admin
            .get(format!("{}/api/v1/peers", alpha.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["peers"].as_array().cloned().unwrap_or_default()
    });
    let status = |name: &str| -> Value {
        peers
            .iter()
            .find(|p| p["peer"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no status for {name}: {peers:?}"))
    };

    // Nothing from the fakes is stored: alpha holds exactly beta's envelopes.
    let (alpha_count, alpha_digests) = snapshot(&alpha.node);
    let (beta_count, beta_digests) = snapshot(&beta.node);
    assert_eq!(alpha_count, published.len(), "alpha holds something else");
    assert_eq!(beta_count, published.len());
    assert_eq!(alpha_digests, beta_digests);
    for id in &published {
        assert!(alpha.node.embedded("test").unwrap().contains(id));
    }

    let mut failures = Vec::new();
    for (fake, &n) in fakes.iter().zip(&counts) {
        let name = format!("fake-{}", fake.class);
        let s = status(&name);
        let error = s["last_error"].as_str().unwrap_or("").to_string();
        let failed: u64 = s["failures"]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0);
        let rejected = |code: &str| s["rejected"][code].as_u64().unwrap_or(0);
        // What must show in the status, and how many requests the window allows:
        // failures back off (about 1, 2, 4, 8 s), pages that succeed are polled every
        // second; a spinning loop would make hundreds.
        let (counted, bound, expect): (bool, u64, &str) = match fake.behaviour {
            Behaviour::Garbage | Behaviour::InvalidJson => (
                error.contains("not JSON") && s["failures"]["malformed"].as_u64() >= Some(1),
                8,
                "malformed: not JSON",
            ),
            Behaviour::StuckEmpty | Behaviour::StuckHeld => (
                error.contains("does not advance") && failed >= 1,
                8,
                "malformed: does not advance",
            ),
            Behaviour::Backwards => (
                error.contains("went backwards") && failed >= 1,
                9,
                "malformed: went backwards",
            ),
            // Whichever of its answers came last: a word or a number past u64 as
            // `next`, or no `next` at all.
            Behaviour::BadCursor => (
                (error.contains("numeric next cursor") || error.contains("missing field `next`"))
                    && failed >= 1,
                8,
                "malformed: no numeric next",
            ),
            Behaviour::Error500 => (
                error.contains("answered 500") && s["failures"]["http-status"].as_u64() >= Some(1),
                8,
                "http-status 500",
            ),
            // Cut at the size limit (too-large); on a very slow machine the timeout
            // may come first for some answers, but not for all of them. Either way the
            // puller then asks for smaller pages.
            Behaviour::Endless => (
                s["failures"]["too-large"].as_u64() >= Some(1) && failed >= 1,
                8,
                "too-large: answer larger than the limit",
            ),
            // Not whole in time: a timeout (the peer answered), not unreachable.
            Behaviour::Slow => (
                error.contains("did not answer in time")
                    && s["failures"]["timeout"].as_u64() >= Some(1),
                8,
                "timeout",
            ),
            Behaviour::Reset => (
                error.contains("cannot reach")
                    && s["failures"]["unreachable"].as_u64() >= Some(1)
                    && s["reachable"] == false,
                8,
                "unreachable",
            ),
            Behaviour::ForwardAmber => (
                rejected("forward-not-allowed") >= 1,
                window.as_secs() + 4,
                "rejected forward-not-allowed",
            ),
            Behaviour::Forged => (
                rejected("bad-signature") >= 2,
                window.as_secs() + 4,
                "rejected bad-signature",
            ),
        };
        let backed_off = (1..=bound).contains(&n);
        let stored = fake
            .envelopes
            .iter()
            .filter(|e| alpha.node.embedded("test").unwrap().contains(&id_of(e)))
            .count();
        let contained = counted && backed_off && stored == 0;
        eprintln!(
            "HOSTILE-PEER class={} tried={n} contained={} status=\"{expect}\" requests_in_{}s={n} bound={bound} stored=0",
            fake.class,
            if contained { n } else { 0 },
            window.as_secs(),
        );
        if !contained {
            failures.push(format!(
                "{}: requests {n} (bound {bound}), stored {stored}, status {s}",
                fake.class
            ));
        }
    }
    // An endless answer is cut off at the limit, not read to the end or buffered whole.
    let endless = fakes
        .iter()
        .find(|f| f.behaviour == Behaviour::Endless)
        .unwrap();
    let cut_at = endless.max_body_bytes.load(Ordering::SeqCst);
    let rss_growth = peak_rss().saturating_sub(rss_before);
    eprintln!(
        "HOSTILE-PEER endless: largest answer written {} MiB (limit {} MiB), peak RSS growth {} MiB",
        cut_at >> 20,
        MAX_RESPONSE_BYTES >> 20,
        rss_growth >> 20
    );
    assert!(
        cut_at <= (MAX_RESPONSE_BYTES as u64) + (8 << 20),
        "the node read {cut_at} bytes of an endless answer"
    );
    assert!(
        rss_growth < 3 * MAX_RESPONSE_BYTES as u64,
        "peak memory grew by {rss_growth} bytes"
    );
    let max_latency = latencies.iter().max().copied().unwrap_or_default();
    eprintln!(
        "HOSTILE-PEER honest published={} received={} max_latency_ms={} while {} fakes misbehaved",
        published.len(),
        alpha_count,
        max_latency.as_millis(),
        fakes.len()
    );
    let total: u64 = counts.iter().sum();
    eprintln!(
        "HOSTILE-PEER total tried={total} classes={} in {:?}",
        fakes.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "not contained:\n{}",
        failures.join("\n")
    );
    drop(alpha);
    drop(beta);
    fake_rt.shutdown_background();
}
