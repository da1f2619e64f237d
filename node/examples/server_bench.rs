//! End-to-end node benchmark over mutual TLS (docs/benchmarks.md, "Node API and TAXII"):
//!
//! ```sh
//! cargo run --release --example server_bench -- --count 1000000
//! ```
//!
//! Starts one node in-process on loopback (real TLS, real sled, real HTTP), publishes
//! `--count` `gen` indicators (or the objects of a bundle `synergia gen` wrote,
//! `--bundle FILE`) in requests of `--batch` objects, then pages the whole
//! `consolidated` TAXII collection with `limit=1000` using `next` tokens.
//!
//! - `--publish api` (default) posts plain bundles to `POST /api/v1/bundles`;
//!   `--publish taxii` posts TAXII envelopes to the `local` collection, the same request
//!   any TAXII 2.1 server accepts.
//! - `--replicate` then starts a second node, empty, whose only peer is the first, and
//!   times how long it takes to pull and verify everything through federation sync.
//! - `--taxii-collection URL --basic USER:PASS` measures another TAXII 2.1 server
//!   instead (plain HTTP on loopback, basic auth: medallion): the same objects, the
//!   same requests, the same client code, so the two figures compare like for like;
//!   `--no-paging` measures its publishing only.
//! - `--window N` sets `limits.publish_window_objects` (publishes with more objects are
//!   checked and stored N objects at a time).
//!
//! Prints objects/s and one `RESULT {json}` line for scripts.

use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use synergia::config::Config;
use synergia::keys::federation::{InitOptions, init_federation};
use synergia::node::Node;
use synergia::workload::{GenOptions, for_each_bundle_object, for_each_object};

// The node's allocator, tuned as the node tunes it, so the figures are the node's.
synergia::use_node_allocator!();

const TAXII: &str = "application/taxii+json;version=2.1";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn num(name: &str, default: u64) -> u64 {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// An HTTPS client holding a member's admin certificate, or (no `keys`) a client for a
/// plain-HTTP server.
fn client(keys: Option<(&Path, &str)>) -> reqwest::Client {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("tls");
    let cc = match keys {
        Some((keys, member)) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(keys.join("ca.pem")).expect("ca") {
                roots.add(c.expect("ca")).expect("ca");
            }
            let certs: Vec<_> = CertificateDer::pem_file_iter(keys.join(member).join("admin.pem"))
                .expect("cert")
                .map(|c| c.expect("cert"))
                .collect();
            let key =
                PrivateKeyDer::from_pem_file(keys.join(member).join("admin-key.pem")).expect("key");
            builder
                .with_root_certificates(roots)
                .with_client_auth_cert(certs, key)
                .expect("tls")
        }
        None => builder
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(cc)
        .timeout(Duration::from_secs(3600))
        .build()
        .expect("client")
}

/// The request bodies: plain bundles for the node API, TAXII envelopes otherwise.
/// Built before the clock starts, so only the server's work (and HTTP) is timed.
fn bodies(batch: usize, taxii: bool) -> (Vec<Vec<u8>>, u64) {
    let workload = GenOptions {
        count: num("--count", 100_000),
        seed: 7,
        origin: "bench".into(),
        identity: None,
        overlap: 0.3,
        tlp: None,
    };
    let mut bodies = Vec::new();
    let mut chunk = Vec::with_capacity(batch);
    let mut objects = 0u64;
    let wrap = |objs: Vec<Value>| -> Vec<u8> {
        let b = if taxii {
            json!({ "objects": objs })
        } else {
            json!({"type": "bundle", "id": format!("bundle--{}", uuid::Uuid::new_v4()), "objects": objs})
        };
        serde_json::to_vec(&b).expect("json")
    };
    let mut emit = |o: Value| {
        chunk.push(o);
        objects += 1;
        if chunk.len() == batch {
            bodies.push(wrap(std::mem::take(&mut chunk)));
        }
    };
    match arg("--bundle") {
        Some(path) => {
            let file = std::fs::File::open(&path).expect("--bundle file");
            for_each_bundle_object(file, &mut emit).expect("--bundle: a STIX bundle");
        }
        None => for_each_object(&workload, &mut emit),
    }
    if !chunk.is_empty() {
        bodies.push(wrap(chunk));
    }
    (bodies, objects)
}

/// Posts every body, `--concurrency` requests at a time (default 1: one client posting
/// request after request); returns the time taken.
async fn publish(
    http: &reqwest::Client,
    url: &str,
    taxii: bool,
    basic: Option<(&str, &str)>,
    bodies: Vec<Vec<u8>>,
) -> Duration {
    let concurrency = num("--concurrency", 1).max(1) as usize;
    let queue = Arc::new(std::sync::Mutex::new(bodies.into_iter()));
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (http, url, queue) = (http.clone(), url.to_string(), queue.clone());
        let basic = basic.map(|(u, p)| (u.to_string(), p.to_string()));
        tasks.spawn(async move {
            loop {
                let Some(b) = queue.lock().expect("queue").next() else {
                    break;
                };
                let mut req = http.post(&url).body(b);
                req = if taxii {
                    req.header("content-type", TAXII).header("accept", TAXII)
                } else {
                    req.header("content-type", "application/json")
                };
                if let Some((user, pass)) = &basic {
                    req = req.basic_auth(user, Some(pass));
                }
                let r = req.send().await.expect("publish");
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                assert!(status.is_success(), "publish: {status} {text}");
                if taxii {
                    // A TAXII server may accept and answer 202 yet fail objects: count
                    // them.
                    let s: Value = serde_json::from_str(&text).expect("status resource");
                    assert_eq!(s["failure_count"].as_u64().unwrap_or(0), 0, "{text}");
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("publishing task");
    }
    t.elapsed()
}

/// Pages a TAXII collection's objects with `limit=1000` and `next`; returns the number
/// of objects and the time taken.
async fn page(
    http: &reqwest::Client,
    objects_url: &str,
    basic: Option<(&str, &str)>,
) -> (u64, Duration) {
    // Parse like a client that only needs the paging fields and the count.
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(default)]
        more: bool,
        next: Option<String>,
        #[serde(default)]
        objects: Vec<serde::de::IgnoredAny>,
    }
    let t = Instant::now();
    let mut paged = 0u64;
    let mut next: Option<String> = None;
    loop {
        let mut req = http
            .get(objects_url)
            .header("accept", TAXII)
            .query(&[("limit", "1000")]);
        if let Some(n) = &next {
            req = req.query(&[("next", n.as_str())]);
        }
        if let Some((user, pass)) = basic {
            req = req.basic_auth(user, Some(pass));
        }
        let r = req.send().await.expect("page");
        let status = r.status();
        let bytes = r.bytes().await.expect("body");
        assert!(
            status.is_success(),
            "page: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        let body: Envelope = serde_json::from_slice(&bytes).expect("json");
        paged += body.objects.len() as u64;
        match body.next {
            Some(n) if body.more => next = Some(n),
            _ => break,
        }
    }
    (paged, t.elapsed())
}

/// CPU time (user and system) this process has used, in seconds: the node and the
/// client both run in it, so this is what a publish costs on this machine, steadier
/// than its wall time when other work shares the cores.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `rusage` into the pointer it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

/// Serves `node` on `port` until `stop` fires.
fn start(
    rt: &tokio::runtime::Runtime,
    node: Arc<Node>,
    port: u16,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = rt.spawn(async move {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        let sync = synergia::sync::spawn(node.clone());
        synergia::server::serve(l, node, sync, async {
            let _ = stop_rx.await;
        })
        .await
        .expect("serve");
    });
    (stop_tx, task)
}

/// Measures another TAXII server (`--taxii-collection`): publish, then page.
fn external(collection: &str) -> Value {
    let basic = arg("--basic").unwrap_or_default();
    let (user, pass) = basic.split_once(':').unwrap_or((&basic, ""));
    let basic = Some((user, pass));
    let batch = num("--batch", 1000) as usize;
    let (bodies, objects) = bodies(batch, true);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let http = client(None);
    let url = format!("{}/objects/", collection.trim_end_matches('/'));
    rt.block_on(async {
        eprintln!(
            "publishing {objects} objects in {} requests ...",
            bodies.len()
        );
        let publish = publish(&http, &url, true, basic, bodies).await;
        let mut result = json!({
            "objects": objects,
            "publish_endpoint": "taxii",
            "publish_concurrency": num("--concurrency", 1).max(1),
            "publish_objects_per_s": objects as f64 / publish.as_secs_f64(),
            "publish_s": publish.as_secs_f64(),
        });
        // medallion's paging time grows with the square of the collection, so larger
        // collections are measured for publishing only.
        if !flag("--no-paging") {
            eprintln!("paging the collection ...");
            let (paged, paging) = page(&http, &url, basic).await;
            assert_eq!(paged, objects, "every object paged once");
            result["paging_objects_per_s"] = json!(paged as f64 / paging.as_secs_f64());
            result["paging_s"] = json!(paging.as_secs_f64());
        }
        result
    })
}

fn main() {
    let result = match arg("--taxii-collection") {
        Some(c) => external(&c),
        None => synergia_node(),
    };
    println!(
        "publish ({}): {:.0} objects/s",
        result["publish_endpoint"].as_str().unwrap_or(""),
        result["publish_objects_per_s"].as_f64().unwrap_or(0.0)
    );
    if let Some(r) = result["paging_objects_per_s"].as_f64() {
        println!("TAXII paging (limit 1000): {r:.0} objects/s");
    }
    if let Some(r) = result["replicated_objects_per_s"].as_f64() {
        println!("replicated ingest from a peer: {r:.0} objects/s");
    }
    println!("RESULT {result}");
}

/// Resets the kernel's record of this process's peak memory (`/proc/self/clear_refs`)
/// and returns the memory in use now, MB (`None` where there is no procfs).
fn reset_peak_memory() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    status_mb("VmRSS:")
}

/// The process's peak memory since [`reset_peak_memory`], MB.
fn peak_memory() -> Option<u64> {
    status_mb("VmHWM:")
}

fn status_mb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

/// Measures a Synergia node: publish, page, and (`--replicate`) a peer's catch-up.
fn synergia_node() -> Value {
    let taxii = arg("--publish").as_deref() == Some("taxii");
    let batch = num("--batch", if taxii { 1000 } else { 10_000 }) as usize;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let ports = vec![free_port(), free_port()];
    init_federation(&InitOptions {
        members: vec!["bench".into(), "other".into()],
        federation: "bench".into(),
        out: dir.join("keys"),
        config_out: dir.join("config"),
        data_root: dir.join("data"),
        base_port: 0,
        ports: ports.clone(),
        urls: vec![],
        hosts: vec![],
        amber_hubs: vec![],
        years: 1,
        example: false,
        force: false,
        threshold: None,
    })
    .expect("federation");
    let mut cfg = Config::load(&dir.join("config/bench.toml")).expect("config");
    // The peer must be configured for its feed requests to be served; without
    // `--replicate` there is none, so no sync task runs during the measurement.
    if !flag("--replicate") {
        cfg.peers.clear();
    }
    cfg.limits.max_body_bytes = 512 << 20;
    if let Some(w) = arg("--window") {
        cfg.limits.publish_window_objects = w.parse().expect("--window: a number of objects");
    }
    let node = Arc::new(Node::open(cfg).expect("node"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = format!("https://127.0.0.1:{}", ports[0]);
    let (stop_a, task_a) = start(&rt, node.clone(), ports[0]);
    let http = client(Some((&dir.join("keys"), "bench")));
    let (bodies, objects) = bodies(batch, taxii);
    let publish_url = if taxii {
        format!("{url}/taxii2/synergia/collections/local/objects/")
    } else {
        format!("{url}/api/v1/bundles")
    };
    let mut result = rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        eprintln!(
            "publishing {objects} objects in {} requests ...",
            bodies.len()
        );
        // The process's peak memory from here on is the node's publishing (plus the
        // request bodies, held from the start): the generator's memory is given back
        // and the kernel's high-water mark reset.
        synergia::allocator::give_back_freed_memory();
        let before_publish = reset_peak_memory();
        let cpu_before = cpu_seconds();
        let publish = publish(&http, &publish_url, taxii, None, bodies).await;
        let publish_cpu = cpu_seconds() - cpu_before;
        let publish_peak = peak_memory();
        eprintln!(
            "publish: {:.0} objects/s, {:.2} CPU-µs per object",
            objects as f64 / publish.as_secs_f64(),
            publish_cpu * 1e6 / objects as f64
        );
        eprintln!("paging the consolidated collection ...");
        let (paged, paging) = page(
            &http,
            &format!("{url}/taxii2/synergia/collections/consolidated/objects/"),
            None,
        )
        .await;
        assert_eq!(paged, objects, "every object paged once");
        json!({
            "objects": objects,
            "publish_endpoint": if taxii { "taxii" } else { "api" },
            "publish_concurrency": num("--concurrency", 1).max(1),
            "publish_objects_per_s": objects as f64 / publish.as_secs_f64(),
            "publish_s": publish.as_secs_f64(),
            "publish_cpu_s": publish_cpu,
            "paging_objects_per_s": paged as f64 / paging.as_secs_f64(),
            "paging_s": paging.as_secs_f64(),
            "rss_before_publish_mb": before_publish,
            "peak_rss_publishing_mb": publish_peak,
        })
    });
    if flag("--replicate") {
        let held_by_a = node.embedded("test").unwrap().read().version_count();
        let cfg = Config::load(&dir.join("config/other.toml")).expect("config");
        let peer = Arc::new(Node::open(cfg).expect("peer node"));
        eprintln!("replicating {held_by_a} object versions to an empty peer ...");
        let t = Instant::now();
        let cpu = cpu_seconds();
        let (stop_b, task_b) = start(&rt, peer.clone(), ports[1]);
        while peer.embedded("test").unwrap().read().version_count() < held_by_a {
            assert!(
                t.elapsed() < Duration::from_secs(3600),
                "replication stalled"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = t.elapsed();
        let cpu = cpu_seconds() - cpu;
        eprintln!(
            "replicate: {:.0} objects/s, {:.2} CPU-µs per object, cores busy {:.0}% of the time",
            held_by_a as f64 / took.as_secs_f64(),
            cpu / held_by_a as f64 * 1e6,
            100.0 * cpu
                / took.as_secs_f64()
                / std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        );
        result["replicate_cpu_s"] = json!(cpu);
        result["replicated_objects"] = json!(held_by_a);
        result["replicate_s"] = json!(took.as_secs_f64());
        result["replicated_objects_per_s"] = json!(held_by_a as f64 / took.as_secs_f64());
        let _ = stop_b.send(());
        let _ = rt.block_on(task_b);
    }
    let _ = stop_a.send(());
    let _ = rt.block_on(task_a);
    result
}
