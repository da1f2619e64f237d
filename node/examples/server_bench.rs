//! End-to-end node benchmark over mutual TLS (docs/benchmarks.md, "Node API and TAXII"):
//!
//! ```sh
//! cargo run --release --example server_bench -- --count 1000000
//! ```
//!
//! Starts one node in-process on loopback (real TLS, real sled, real HTTP), publishes
//! `--count` `gen` indicators through `POST /api/v1/bundles` in requests of `--batch`
//! indicators, then pages the whole `consolidated` TAXII collection with `limit=1000`
//! using `next` tokens. Prints objects/s for both and one `RESULT {json}` line.

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use synergia::config::Config;
use synergia::keys::federation::{InitOptions, init_federation};
use synergia::node::Node;
use synergia::workload::{GenOptions, for_each_object};

/// The binary's allocator, so the figures are the ones the node gets.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn client(dir: &std::path::Path) -> reqwest::Client {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let keys = dir.join("keys");
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(keys.join("ca.pem")).expect("ca") {
        roots.add(c.expect("ca")).expect("ca");
    }
    let certs: Vec<_> = CertificateDer::pem_file_iter(keys.join("bench/admin.pem"))
        .expect("cert")
        .map(|c| c.expect("cert"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(keys.join("bench/admin-key.pem")).expect("key");
    let cc = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("tls")
    .with_root_certificates(roots)
    .with_client_auth_cert(certs, key)
    .expect("tls");
    reqwest::Client::builder()
        .tls_backend_preconfigured(cc)
        .timeout(Duration::from_secs(600))
        .build()
        .expect("client")
}

fn main() {
    let count = arg("--count", 100_000);
    let batch = arg("--batch", 10_000) as usize;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    init_federation(&InitOptions {
        members: vec!["bench".into(), "other".into()],
        federation: "bench".into(),
        out: dir.join("keys"),
        config_out: dir.join("config"),
        data_root: dir.join("data"),
        base_port: port,
        ports: vec![],
        amber_hubs: vec![],
        years: 1,
        example: false,
    })
    .expect("federation");
    let mut cfg = Config::load(&dir.join("config/bench.toml")).expect("config");
    cfg.peers.clear();
    cfg.limits.max_body_bytes = 512 << 20;
    let node = Arc::new(Node::open(cfg).expect("node"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = format!("https://127.0.0.1:{port}");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let n = node.clone();
    let server = rt.spawn(async move {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        synergia::server::serve(l, n, async {
            let _ = stop_rx.await;
        })
        .await
        .expect("serve");
    });
    let http = client(dir);
    let workload = GenOptions {
        count,
        seed: 7,
        origin: "bench".into(),
        identity: None,
        overlap: 0.3,
        tlp: None,
    };
    // Pre-build the request bodies (not timed).
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let mut chunk = Vec::with_capacity(batch);
    let mut objects = 0u64;
    for_each_object(&workload, |o| {
        chunk.push(o);
        objects += 1;
        if chunk.len() == batch {
            let b = json!({"type": "bundle", "id": format!("bundle--{}", uuid::Uuid::new_v4()), "objects": std::mem::take(&mut chunk)});
            bodies.push(serde_json::to_vec(&b).expect("json"));
        }
    });
    if !chunk.is_empty() {
        let b = json!({"type": "bundle", "id": format!("bundle--{}", uuid::Uuid::new_v4()), "objects": chunk});
        bodies.push(serde_json::to_vec(&b).expect("json"));
    }
    let result = rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        eprintln!(
            "publishing {objects} objects in {} requests ...",
            bodies.len()
        );
        let t = Instant::now();
        for b in bodies {
            let r = http
                .post(format!("{url}/api/v1/bundles"))
                .header("content-type", "application/json")
                .body(b)
                .send()
                .await
                .expect("publish");
            assert!(
                r.status().is_success(),
                "{}",
                r.text().await.unwrap_or_default()
            );
        }
        let publish = t.elapsed();
        eprintln!("paging the consolidated collection ...");
        let t = Instant::now();
        let mut paged = 0u64;
        let mut next: Option<String> = None;
        loop {
            let mut req = http
                .get(format!(
                    "{url}/taxii2/synergia/collections/consolidated/objects/"
                ))
                .header("Accept", "application/taxii+json;version=2.1")
                .query(&[("limit", "1000")]);
            if let Some(n) = &next {
                req = req.query(&[("next", n.as_str())]);
            }
            // Parse like a client that only needs the paging fields and the count.
            #[derive(serde::Deserialize)]
            struct Envelope {
                more: bool,
                next: Option<String>,
                #[serde(default)]
                objects: Vec<serde::de::IgnoredAny>,
            }
            let bytes = req.send().await.expect("page").bytes().await.expect("body");
            let body: Envelope = serde_json::from_slice(&bytes).expect("json");
            paged += body.objects.len() as u64;
            match body.next {
                Some(n) if body.more => next = Some(n),
                _ => break,
            }
        }
        let paging = t.elapsed();
        assert_eq!(paged, objects, "every object paged once");
        json!({
            "objects": objects,
            "publish_objects_per_s": objects as f64 / publish.as_secs_f64(),
            "publish_s": publish.as_secs_f64(),
            "paging_objects_per_s": paged as f64 / paging.as_secs_f64(),
            "paging_s": paging.as_secs_f64(),
        })
    });
    println!(
        "publish via POST /api/v1/bundles: {:.0} objects/s",
        result["publish_objects_per_s"].as_f64().unwrap_or(0.0)
    );
    println!(
        "TAXII paging (limit 1000):        {:.0} objects/s",
        result["paging_objects_per_s"].as_f64().unwrap_or(0.0)
    );
    println!("RESULT {result}");
    let _ = stop_tx.send(());
    let _ = rt.block_on(server);
}
