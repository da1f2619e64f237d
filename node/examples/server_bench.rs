//! End-to-end node benchmark over mutual TLS (docs/benchmarks.md, "Node API and TAXII"):
//!
//! ```sh
//! cargo build --release --bin synergia   # the serve process below
//! cargo run --release --example server_bench -- --count 1000000
//! ```
//!
//! Starts one node in-process on loopback (real TLS, real store, real HTTP) and
//! publishes `--count` `gen` indicators (or the objects of a bundle `synergia gen`
//! wrote, `--bundle FILE`) in requests of `--batch` objects, spooled to a file first.
//! It then stops that node and starts it again as its own `synergia serve` process
//! (the release binary beside this example), and measures what a deployed node shows:
//! the time until it answers, paging the whole `consolidated` TAXII collection with
//! `limit=1000` and `next` tokens, 10,000 lookups over HTTPS (generated workloads
//! only), and the process's memory after those reads, after 12 s idle, and at its
//! peak.
//!
//! - `--publish api` (default) posts plain bundles to `POST /api/v1/bundles`;
//!   `--publish taxii` posts TAXII envelopes to the `local` collection, the same request
//!   any TAXII 2.1 server accepts.
//! - `--postgres URL` puts the node on that PostgreSQL database (empty; the password
//!   from `SYNERGIA_STORE_PASSWORD`) instead of the embedded store.
//! - `--replicate` then starts a second node, empty, whose only peer is the first, and
//!   times how long it takes to pull and verify everything through federation sync;
//!   `--peer-postgres URL` puts that one on PostgreSQL.
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
use synergia::workload::{GenOptions, for_each_bundle_object, for_each_object, observable_value};

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

/// The workload `--count` generates (and the observables the lookups ask for).
fn workload() -> GenOptions {
    GenOptions {
        count: num("--count", 100_000),
        seed: 7,
        origin: "bench".into(),
        identity: None,
        overlap: 0.3,
        tlp: None,
    }
}

/// The request bodies, spooled to a file before the clock starts so only the server's
/// work (and HTTP) is timed, and so 10M objects of requests do not sit in the
/// benchmark's memory: plain bundles for the node API, TAXII envelopes otherwise.
struct Spool {
    file: std::fs::File,
    /// Each body's offset and length in `file`.
    spans: Vec<(u64, usize)>,
    objects: u64,
}

impl Spool {
    fn len(&self) -> usize {
        self.spans.len()
    }

    fn body(&self, i: usize) -> Vec<u8> {
        use std::os::unix::fs::FileExt as _;
        let (at, len) = self.spans[i];
        let mut b = vec![0; len];
        self.file
            .read_exact_at(&mut b, at)
            .expect("reading the spooled body");
        b
    }
}

fn bodies(batch: usize, taxii: bool, path: &Path) -> Spool {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("spool file"));
    let mut spans = Vec::new();
    let mut at = 0u64;
    let mut chunk = Vec::with_capacity(batch);
    let mut objects = 0u64;
    let mut wrap = |objs: Vec<Value>| {
        let b = if taxii {
            json!({ "objects": objs })
        } else {
            json!({"type": "bundle", "id": format!("bundle--{}", uuid::Uuid::new_v4()), "objects": objs})
        };
        let bytes = serde_json::to_vec(&b).expect("json");
        out.write_all(&bytes).expect("spooling a body");
        spans.push((at, bytes.len()));
        at += bytes.len() as u64;
    };
    let mut emit = |o: Value| {
        chunk.push(o);
        objects += 1;
        if chunk.len() == batch {
            wrap(std::mem::take(&mut chunk));
        }
    };
    match arg("--bundle") {
        Some(path) => {
            let file = std::fs::File::open(&path).expect("--bundle file");
            for_each_bundle_object(file, &mut emit).expect("--bundle: a STIX bundle");
        }
        None => for_each_object(&workload(), &mut emit),
    }
    if !chunk.is_empty() {
        wrap(chunk);
    }
    out.flush().expect("spool file");
    let file = out.into_inner().expect("spool file");
    file.sync_all().ok();
    let file = std::fs::File::open(path).expect("spool file");
    Spool {
        file,
        spans,
        objects,
    }
}

/// Posts every body, `--concurrency` requests at a time (default 1: one client posting
/// request after request); returns the time taken.
async fn publish(
    http: &reqwest::Client,
    url: &str,
    taxii: bool,
    basic: Option<(&str, &str)>,
    bodies: Arc<Spool>,
) -> Duration {
    let concurrency = num("--concurrency", 1).max(1) as usize;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (http, url, next, bodies) =
            (http.clone(), url.to_string(), next.clone(), bodies.clone());
        let basic = basic.map(|(u, p)| (u.to_string(), p.to_string()));
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= bodies.len() {
                    break;
                }
                let b = bodies.body(i);
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
    let tmp = tempfile::tempdir().expect("tempdir");
    let bodies = Arc::new(bodies(batch, true, &tmp.path().join("bodies")));
    let objects = bodies.objects;
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
    proc_mb(std::process::id(), field)
}

/// Puts a member's node on the PostgreSQL database at `url` (`--postgres`,
/// `--peer-postgres`): the password comes from `SYNERGIA_STORE_PASSWORD`, as for any
/// node, and the database must be empty (a new one per run).
fn on_database(cfg: &mut Config, url: &str) {
    cfg.store.backend = synergia::config::StoreBackend::Postgres;
    cfg.store.url = Some(url.to_string());
}

/// Measures a Synergia node: publish (in process), replicate to an empty peer
/// (`--replicate`, in process), then start-up, paging, lookups and memory of the node
/// started again as its own `synergia serve` process, with nothing else in it.
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
    cfg.limits.max_body_memory_bytes = cfg.limits.max_body_memory_bytes.max(512 << 20);
    if let Some(w) = arg("--window") {
        cfg.limits.publish_window_objects = w.parse().expect("--window: a number of objects");
    }
    let backend = match arg("--postgres") {
        Some(url) => {
            on_database(&mut cfg, &url);
            "postgres"
        }
        None => "embedded",
    };
    // The node started again on its own, with no peer to pull from.
    let mut alone = cfg.clone();
    alone.peers.clear();
    let alone_path = dir.join("config/bench-alone.toml");
    std::fs::write(&alone_path, toml::to_string(&alone).expect("config")).expect("config");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // A node on PostgreSQL opens within the runtime it will run on.
    let node = Arc::new(rt.block_on(async { Node::open(cfg) }).expect("node"));
    let url = format!("https://127.0.0.1:{}", ports[0]);
    let (stop_a, task_a) = start(&rt, node.clone(), ports[0]);
    let http = client(Some((&dir.join("keys"), "bench")));
    let bodies = Arc::new(bodies(batch, taxii, &dir.join("bodies")));
    let objects = bodies.objects;
    let publish_url = if taxii {
        format!("{url}/taxii2/synergia/collections/local/objects/")
    } else {
        format!("{url}/api/v1/bundles")
    };
    let mut result = rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        eprintln!(
            "publishing {objects} objects in {} requests to the {backend} store ...",
            bodies.len()
        );
        // The process's peak memory from here on is the node's publishing (plus a
        // request body or two): the generator's memory is given back and the
        // kernel's high-water mark reset.
        synergia::allocator::give_back_freed_memory();
        let before_publish = reset_peak_memory();
        let cpu_before = cpu_seconds();
        let publish = publish(&http, &publish_url, taxii, None, bodies.clone()).await;
        let publish_cpu = cpu_seconds() - cpu_before;
        let publish_peak = peak_memory();
        eprintln!(
            "publish: {:.0} objects/s, {:.2} CPU-µs per object",
            objects as f64 / publish.as_secs_f64(),
            publish_cpu * 1e6 / objects as f64
        );
        json!({
            "backend": backend,
            "objects": objects,
            "publish_endpoint": if taxii { "taxii" } else { "api" },
            "publish_concurrency": num("--concurrency", 1).max(1),
            "publish_objects_per_s": objects as f64 / publish.as_secs_f64(),
            "publish_s": publish.as_secs_f64(),
            "publish_cpu_s": publish_cpu,
            "rss_before_publish_mb": before_publish,
            "peak_rss_publishing_mb": publish_peak,
        })
    });
    // What the store's disk use is compared with: the JSON of the published objects.
    let raw_json: u64 = bodies.spans.iter().map(|(_, len)| *len as u64).sum();
    result["raw_json_bytes"] = json!(raw_json);
    // The spooled requests are not needed again.
    drop(bodies);
    let _ = std::fs::remove_file(dir.join("bodies"));
    if flag("--replicate") {
        let head = node.backend().head().expect("feed head");
        let mut cfg = Config::load(&dir.join("config/other.toml")).expect("config");
        if let Some(url) = arg("--peer-postgres") {
            on_database(&mut cfg, &url);
        }
        let peer = Arc::new(rt.block_on(async { Node::open(cfg) }).expect("peer node"));
        eprintln!("replicating {head} envelopes ({objects} objects) to an empty peer ...");
        let t = Instant::now();
        let cpu = cpu_seconds();
        let (stop_b, task_b) = start(&rt, peer.clone(), ports[1]);
        // Caught up when its cursor in our feed reaches our head: every envelope
        // below it is stored durably on the peer (the cursor moves after the commit).
        while peer.sync().peer("bench").cursor < head {
            assert!(
                t.elapsed() < Duration::from_secs(4 * 3600),
                "replication stalled"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let took = t.elapsed();
        let cpu = cpu_seconds() - cpu;
        let received = peer.sync().peer("bench").objects_received;
        assert_eq!(received, objects, "the peer stored every object once");
        eprintln!(
            "replicate: {:.0} objects/s, {:.2} CPU-µs per object, cores busy {:.0}% of the time",
            objects as f64 / took.as_secs_f64(),
            cpu / objects as f64 * 1e6,
            100.0 * cpu
                / took.as_secs_f64()
                / std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        );
        result["replicate_backend"] = json!(if arg("--peer-postgres").is_some() {
            "postgres"
        } else {
            "embedded"
        });
        result["replicate_cpu_s"] = json!(cpu);
        result["replicated_objects"] = json!(received);
        result["replicate_s"] = json!(took.as_secs_f64());
        result["replicated_objects_per_s"] = json!(objects as f64 / took.as_secs_f64());
        let _ = stop_b.send(());
        let _ = rt.block_on(task_b);
    }
    let _ = stop_a.send(());
    let _ = rt.block_on(task_a);
    // Every task holding the node ends with the runtime; the node then closes its store
    // (sled's lock, the database pool) before the serve process opens it.
    drop(rt);
    drop(node);
    let alone = serve_alone(dir, &alone_path, ports[0], taxii, objects);
    for (k, v) in alone.as_object().expect("an object") {
        result[k] = v.clone();
    }
    result
}

/// Starts the node again as `synergia serve` (the release binary beside this
/// example) and measures what a deployed node shows: start-up until it answers, paging
/// `consolidated`, 10,000 lookups, and its memory afterwards (`VmRSS`, then again after
/// 12 s idle, when the allocator has given freed memory back) and at its peak
/// (`VmHWM`).
fn serve_alone(dir: &Path, config: &Path, port: u16, taxii: bool, objects: u64) -> Value {
    let bin = std::env::current_exe()
        .expect("this program's path")
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("synergia"))
        .expect("the target directory");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build --release --bin synergia)",
        bin.display()
    );
    let log = std::fs::File::create(dir.join("serve.log")).expect("serve log");
    let t = Instant::now();
    let mut child = std::process::Command::new(&bin)
        .args(["serve", "--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(log.try_clone().expect("serve log"))
        .stderr(log)
        .spawn()
        .expect("starting synergia serve");
    let pid = child.id();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let http = client(Some((&dir.join("keys"), "bench")));
    let url = format!("https://127.0.0.1:{port}");
    let result = rt.block_on(async {
        loop {
            if let Ok(r) = http.get(format!("{url}/healthz")).send().await
                && r.status().is_success()
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "synergia serve exited ({status}): {}",
                    std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let startup = t.elapsed();
        let rss_started = proc_mb(pid, "VmRSS:");
        eprintln!(
            "serve process: answering after {:.2} s, {} MB",
            startup.as_secs_f64(),
            rss_started.unwrap_or(0)
        );
        eprintln!("paging the consolidated collection ...");
        let (paged, paging) = page(
            &http,
            &format!("{url}/taxii2/synergia/collections/consolidated/objects/"),
            None,
        )
        .await;
        assert_eq!(paged, objects, "every object paged once");
        eprintln!(
            "paging: {:.0} objects/s",
            paged as f64 / paging.as_secs_f64()
        );
        let mut out = json!({
            "startup_s": startup.as_secs_f64(),
            "rss_started_mb": rss_started,
            "paging_objects_per_s": paged as f64 / paging.as_secs_f64(),
            "paging_s": paging.as_secs_f64(),
        });
        // The generated workload's observables; a `--bundle` file's are unknown here.
        if !taxii && arg("--bundle").is_none() {
            let (p50, p99) = lookups(&http, &url).await;
            eprintln!("lookup over HTTPS: p50 {p50:.0} µs, p99 {p99:.0} µs");
            out["lookup_p50_us"] = json!(p50);
            out["lookup_p99_us"] = json!(p99);
        }
        out["rss_after_reads_mb"] = json!(proc_mb(pid, "VmRSS:"));
        // The store on disk, as the node reports it: the evidence log and index
        // directories, or the whole database's size.
        let stats: Value = http
            .get(format!("{url}/api/v1/stats"))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats answer");
        let disk = stats["disk"]["log_bytes"].as_u64().unwrap_or(0)
            + stats["disk"]["index_bytes"].as_u64().unwrap_or(0);
        out["disk_bytes"] = json!(disk);
        out["disk_bytes_per_object"] = json!(disk as f64 / objects as f64);
        eprintln!(
            "store on disk: {:.0} MB, {:.0} bytes per object",
            disk as f64 / 1e6,
            disk as f64 / objects as f64
        );
        tokio::time::sleep(Duration::from_secs(12)).await;
        out["rss_steady_mb"] = json!(proc_mb(pid, "VmRSS:"));
        out["rss_peak_mb"] = json!(proc_mb(pid, "VmHWM:"));
        out
    });
    // SAFETY: signals the child this function started and has not reaped.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = child.wait();
    eprintln!(
        "serve process memory: {} MB after reads, {} MB steady, {} MB peak",
        result["rss_after_reads_mb"], result["rss_steady_mb"], result["rss_peak_mb"]
    );
    result
}

/// 10,000 lookups of generated observables over HTTPS, one at a time, each through
/// `GET /api/v1/lookup?value=…`; every one must be found. Returns p50 and p99 in µs.
async fn lookups(http: &reqwest::Client, url: &str) -> (f64, f64) {
    let workload = workload();
    let mut lat = Vec::with_capacity(10_000);
    let mut r = 12345u64;
    for _ in 0..10_000 {
        r = r
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let (_, value) = observable_value(&workload, (r >> 33) % workload.count);
        let t = Instant::now();
        let resp = http
            .get(format!("{url}/api/v1/lookup"))
            .query(&[("value", value.as_str())])
            .send()
            .await
            .expect("lookup");
        let status = resp.status();
        let body: Value = resp.json().await.expect("lookup answer");
        lat.push(t.elapsed());
        assert!(status.is_success(), "lookup: {status} {body}");
        assert!(
            body["results"][0]["hits"]
                .as_array()
                .is_some_and(|h| !h.is_empty()),
            "{value} must be found: {body}"
        );
    }
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)].as_secs_f64() * 1e6;
    (p(0.5), p(0.99))
}

/// A field of another process's `/proc/PID/status`, MB.
fn proc_mb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}
