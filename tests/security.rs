//! Security regressions: each test performs one attack of the node's security audit
//! (docs/security.md lists them by number) against real nodes over mutual TLS on
//! loopback, and shows that it no longer achieves anything.

#[path = "common/mod.rs"]
mod common;

use common::*;
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use synergia::config::{Config, Peer, Role};
use synergia::envelope::{Envelope, EnvelopeMeta, Signer};
use synergia::keys::tls::{CertifiedKey, Validity};
use synergia::stix::timestamp::Timestamp;
use synergia::stix::tlp::TlpLevel;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const GREEN: &str = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";

fn url_of(n: &RunningNode) -> String {
    n.url.clone()
}

/// An indicator for `ip`, marked green.
fn indicator(uuid: &str, ip: &str, modified: &str, creator: Option<&str>) -> Value {
    let mut o = json!({
        "type": "indicator",
        "spec_version": "2.1",
        "id": format!("indicator--{uuid}"),
        "created": "2026-01-01T00:00:00.000Z",
        "modified": modified,
        "name": format!("C2 {ip}"),
        "pattern": format!("[ipv4-addr:value = '{ip}']"),
        "pattern_type": "stix",
        "valid_from": "2026-01-01T00:00:00Z",
        "object_marking_refs": [GREEN],
    });
    if let Some(c) = creator {
        o["created_by_ref"] = json!(c);
    }
    o
}

fn bundle(objects: Vec<Value>) -> Value {
    json!({"type": "bundle", "id": format!("bundle--{}", uuid::Uuid::new_v4()), "objects": objects})
}

fn sign(s: &Signer, objects: Vec<Value>, seq: u64, tlp: TlpLevel, recipients: &[&str]) -> Value {
    let e = Envelope::sign(
        bundle(objects),
        s,
        EnvelopeMeta {
            seq,
            signed_at: Timestamp::now(),
            tlp,
            recipients: recipients.iter().map(|r| r.to_string()).collect(),
        },
    )
    .unwrap();
    Value::Object(e.as_json().clone())
}

async fn get_text(c: &reqwest::Client, url: &str) -> (u16, String) {
    let r = c.get(url).header("Accept", TAXII).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A TLS connection to `addr` from `local` (any loopback address), presenting
/// `identity` when given, with a small receive buffer when asked.
async fn tls_connect(
    addr: SocketAddr,
    ca: &std::path::Path,
    identity: Option<&CertifiedKey>,
    local: IpAddr,
    small_receive_buffer: bool,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls::pki_types::ServerName;
    let cc = rustls_client_config(ca, identity);
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(local, 0))?;
    if small_receive_buffer {
        sock.set_recv_buffer_size(4096)?;
    }
    let tcp = sock.connect(addr).await?;
    tokio_rustls::TlsConnector::from(Arc::new(cc))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("https://").parse().unwrap()
}

/// Finding 1: a `read` client that stops reading an export no longer freezes the
/// node: publish, TAXII and stats answer within 2 s while it stalls, and the stalled
/// export is cut off after `limits.response_stall_secs`, freeing its place.
#[test]
fn a_stalled_export_leaves_the_node_answering() {
    let fed = Federation::new(&["interpol", "kaspersky"], &[]);
    let mut cfg = fed.config("interpol");
    cfg.peers.clear();
    cfg.limits.response_stall_secs = 4;
    cfg.limits.max_concurrent_exports = 1;
    let node = RunningNode::start(cfg);
    let admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("interpol")));
    rt().block_on(async {
        // About 12 MB of export: more than the channel, the socket buffers and TLS
        // hold together, so the writer blocks when the reader stops.
        let objects: Vec<Value> = (0..24_000u32)
            .map(|i| {
                let mut o = indicator(
                    &uuid::Uuid::new_v4().to_string(),
                    &format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                    "2026-01-01T00:00:00.000Z",
                    None,
                );
                o["description"] = json!("x".repeat(300));
                o
            })
            .collect();
        let r = admin
            .post(format!("{}/api/v1/bundles", url_of(&node)))
            .json(&bundle(objects))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);

        let token = fed.token("interpol");
        let mut stalled = tls_connect(
            addr_of(&node.url),
            &fed.ca_path(),
            None,
            "127.0.0.1".parse().unwrap(),
            true,
        )
        .await
        .unwrap();
        stalled
            .write_all(
                format!("GET /api/v1/export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let mut first = [0u8; 1024];
        let n = stalled.read(&mut first).await.unwrap();
        assert!(
            String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&first[..n])
        );
        // From here on the client reads nothing. Every check must answer within 2 s,
        // round after round, while the export is stuck behind it.
        let started = Instant::now();
        let mut round = 0;
        while started.elapsed() < Duration::from_secs(3) {
            round += 1;
            let t = Instant::now();
            let r = tokio::time::timeout(
                Duration::from_secs(2),
                admin
                    .post(format!("{}/api/v1/bundles", url_of(&node)))
                    .json(&bundle(vec![indicator(
                        &uuid::Uuid::new_v4().to_string(),
                        &format!("198.51.{}.{}", (round / 250) % 250, round % 250),
                        "2026-01-02T00:00:00.000Z",
                        None,
                    )]))
                    .send(),
            )
            .await
            .expect("a publish answered within 2 s while an export stalled")
            .unwrap();
            assert_eq!(r.status(), 200);
            let (s, _) = tokio::time::timeout(
                Duration::from_secs(2),
                get_json(
                    &admin,
                    &format!(
                        "{}/taxii2/synergia/collections/consolidated/objects/?limit=10",
                        node.url
                    ),
                ),
            )
            .await
            .expect("TAXII answered within 2 s while an export stalled");
            assert_eq!(s, 200);
            let (s, _) = tokio::time::timeout(
                Duration::from_secs(2),
                get_json(&admin, &format!("{}/api/v1/stats", node.url)),
            )
            .await
            .expect("stats answered within 2 s while an export stalled");
            assert_eq!(s, 200);
            assert!(t.elapsed() < Duration::from_secs(2));
        }
        // The only export place is taken by the stalled reader…
        let (s, body) = get_json(&admin, &format!("{}/api/v1/export", node.url)).await;
        assert_eq!(s, 503, "{body}");
        assert_eq!(body["error"], "too-many-exports");
        // …until the stall limit cuts it off.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let r = admin
                .get(format!("{}/api/v1/export?type=identity", node.url))
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                let v: Value = r.json().await.unwrap();
                assert_eq!(v["type"], "bundle");
                break;
            }
            assert!(Instant::now() < deadline, "the stalled export was never cut off");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The stalled reader's transfer ends broken, not as a complete export: no
        // last chunk of the chunked encoding, no closing `]}` of the bundle.
        let mut rest = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stalled.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&buf[..n]);
        }
        let tail = String::from_utf8_lossy(&rest[rest.len().saturating_sub(64)..]).to_string();
        assert!(!tail.ends_with("0\r\n\r\n"), "the cut export looked complete: {tail:?}");
        assert!(!tail.contains("]}"), "the cut export looked complete: {tail:?}");
    });
}

/// Finding 2: a `max_tlp = green` reader learns nothing of a red delivery of an
/// object another member also published green — not in lookups, provenance, the
/// reporting member's TAXII collection, corroboration filters or CSV origins. The
/// same node's red reader sees both (the check can fail). Finding 10: CSV cells that
/// look like formulas are inert.
#[test]
fn a_green_reader_sees_no_trace_of_a_red_delivery() {
    let fed = Federation::new(&["interpol", "kaspersky", "groupib"], &[]);
    // Its peers are configured (they may push to it) but not running.
    let mut cfg = fed.config("interpol");
    add_client(&mut cfg, "green-reader", &[Role::Read], TlpLevel::Green);
    add_client(&mut cfg, "red-reader", &[Role::Read], TlpLevel::Red);
    let node = RunningNode::start(cfg);
    let green = https_client(
        &fed.ca_path(),
        Some(&fed.client_cert("green-reader", Validity::years_from_now(1))),
    );
    let red = https_client(
        &fed.ca_path(),
        Some(&fed.client_cert("red-reader", Validity::years_from_now(1))),
    );
    let address = json!({"type": "ipv4-addr", "spec_version": "2.1",
        "id": "ipv4-addr--4c1b2a5e-8f63-5d2e-9a3b-1e0f6d7c8b9a", "value": "198.51.100.7"});
    let mutex = json!({"type": "mutex", "spec_version": "2.1",
        "id": "mutex--0c7b5e1a-2d3f-5a4b-8c9d-1e2f3a4b5c6d", "name": "=HYPERLINK(\"http://x\")",
        "object_marking_refs": [GREEN]});
    let mut green_address = address.clone();
    green_address["object_marking_refs"] = json!([GREEN]);
    // The red delivery: kaspersky to interpol only. The green one: groupib, the same
    // object with a marking, so a different version? No: markings are content, so
    // groupib's green version is `green_address`, and kaspersky's red delivery is of
    // that very version too.
    let red_env = sign(
        &fed.signer("kaspersky"),
        vec![green_address.clone()],
        1,
        TlpLevel::Red,
        &["interpol"],
    );
    let red_id = synergia::envelope::Envelope::from_value(red_env.clone())
        .unwrap()
        .id()
        .to_string();
    let green_env = sign(
        &fed.signer("groupib"),
        vec![green_address, mutex],
        1,
        TlpLevel::Green,
        &[],
    );
    rt().block_on(async {
        let r = push_envelopes(&fed, &node.url, "kaspersky", vec![red_env]).await;
        assert_eq!(r[0]["status"], "accepted", "{r:?}");
        let r = push_envelopes(&fed, &node.url, "groupib", vec![green_env]).await;
        assert_eq!(r[0]["status"], "accepted", "{r:?}");

        let lookup = format!("{}/api/v1/lookup?value=198.51.100.7", node.url);
        let provenance = format!(
            "{}/api/v1/objects/ipv4-addr--4c1b2a5e-8f63-5d2e-9a3b-1e0f6d7c8b9a/provenance",
            node.url
        );
        let collection = format!(
            "{}/taxii2/synergia/collections/kaspersky/objects/",
            node.url
        );
        let corroborated = format!("{}/api/v1/export?min_corroboration=2", node.url);
        let csv = format!("{}/api/v1/export?format=csv", node.url);

        // The red reader: both members, the red envelope, corroboration 2.
        let (_, v) = get_json(&red, &lookup).await;
        assert_eq!(v["results"][0]["corroboration"], 2, "{v}");
        assert!(v.to_string().contains(&red_id));
        let (_, t) = get_text(&red, &collection).await;
        assert!(t.contains("198.51.100.7"), "{t}");
        let (_, v) = get_json(&red, &corroborated).await;
        assert_eq!(v["objects"].as_array().unwrap().len(), 1, "{v}");

        // The green reader: no trace of kaspersky or of its envelope anywhere.
        for url in [&lookup, &provenance, &collection, &corroborated, &csv] {
            let (s, t) = get_text(&green, url).await;
            assert!(s == 200 || s == 404, "{url}: {s} {t}");
            assert!(!t.contains("kaspersky"), "{url} names the red origin: {t}");
            assert!(!t.contains(&red_id), "{url} names the red envelope: {t}");
        }
        let (_, v) = get_json(&green, &lookup).await;
        assert_eq!(v["results"][0]["corroboration"], 1, "{v}");
        assert_eq!(v["results"][0]["hits"][0]["origins"], json!(["groupib"]));
        let (_, v) = get_json(&green, &provenance).await;
        assert_eq!(v["versions"][0]["origins"], json!(["groupib"]));
        assert_eq!(v["versions"][0]["provenance"].as_array().unwrap().len(), 1);
        let (_, v) = get_json(&green, &collection).await;
        assert!(
            v.get("objects")
                .is_none_or(|o| o.as_array().unwrap().is_empty()),
            "{v}"
        );
        let (_, v) = get_json(&green, &corroborated).await;
        assert_eq!(v["objects"], json!([]), "{v}");
        let (_, t) = get_text(&green, &csv).await;
        let row = t
            .lines()
            .find(|l| l.contains("198.51.100.7"))
            .unwrap_or_else(|| panic!("{t}"));
        assert!(row.contains(",1,groupib,"), "{row}");
        // Finding 10: the mutex name starts with '=': quoted and prefixed.
        let m = t
            .lines()
            .find(|l| l.contains("HYPERLINK"))
            .unwrap_or_else(|| panic!("{t}"));
        assert!(m.contains(",\"'=HYPERLINK(\"\"http://x\"\")\","), "{m}");
        assert!(!m.contains(",=HYPERLINK"), "{m}");
    });
}

/// Finding 3: a member cannot supersede another member's object. Kaspersky signs
/// versions of groupib's indicator: one modified in 2099, one naming groupib as its
/// creator, one with a current `modified` and `revoked: true`. The first two are
/// refused by every node; the third is held as evidence but wins nowhere. Kaspersky's
/// own node refuses to sign an object naming groupib as its creator.
#[test]
fn another_members_later_version_wins_nowhere() {
    let fed = Federation::new(&["interpol", "kaspersky", "groupib"], &[]);
    let mut nodes = Vec::new();
    for m in ["interpol", "groupib", "kaspersky"] {
        // Each on a port of its own: they take pushes but do not sync.
        nodes.push((m, RunningNode::start(fed.config(m))));
    }
    let groupib_identity = fed.signer("groupib").origin_identity.clone();
    let kaspersky_identity = fed.signer("kaspersky").origin_identity.clone();
    let id = uuid::Uuid::new_v4().to_string();
    let original = indicator(
        &id,
        "203.0.113.9",
        "2026-06-01T00:00:00.000Z",
        Some(&groupib_identity),
    );
    // Signed in kaspersky's own name, so that only the date refuses it.
    let mut far_future = original.clone();
    far_future["modified"] = json!("2099-01-01T00:00:00.000Z");
    far_future["revoked"] = json!(true);
    far_future["created_by_ref"] = json!(kaspersky_identity);
    let mut forged_creator = original.clone();
    forged_creator["modified"] = json!(Timestamp::now().to_millis_string());
    forged_creator["revoked"] = json!(true);
    let mut takeover = forged_creator.clone();
    takeover["created_by_ref"] = json!(kaspersky_identity);
    let hostile = fed.signer("kaspersky");
    rt().block_on(async {
        // groupib publishes on its node; interpol receives it from groupib.
        let admin_g = https_client(&fed.ca_path(), Some(&fed.admin_identity("groupib")));
        let r = admin_g
            .post(format!("{}/api/v1/bundles", nodes[1].1.url))
            .json(&bundle(vec![original.clone()]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let r = push_envelopes(
            &fed,
            &nodes[0].1.url,
            "groupib",
            vec![sign(
                &fed.signer("groupib"),
                vec![original.clone()],
                1,
                TlpLevel::Green,
                &[],
            )],
        )
        .await;
        assert_eq!(r[0]["status"], "accepted", "{r:?}");
        for (_, n) in &nodes[..2] {
            let r = push_envelopes(
                &fed,
                &n.url,
                "kaspersky",
                vec![
                    sign(&hostile, vec![far_future.clone()], 1, TlpLevel::Green, &[]),
                    sign(
                        &hostile,
                        vec![forged_creator.clone()],
                        2,
                        TlpLevel::Green,
                        &[],
                    ),
                    sign(&hostile, vec![takeover.clone()], 3, TlpLevel::Green, &[]),
                ],
            )
            .await;
            assert_eq!(r[0]["code"], "object-after-signing", "{r:?}");
            assert_eq!(r[1]["code"], "foreign-creator", "{r:?}");
            assert_eq!(r[2]["status"], "accepted", "{r:?}");
        }
        for (m, n) in &nodes[..2] {
            let admin = https_client(&fed.ca_path(), Some(&fed.admin_identity(m)));
            let (_, v) = get_json(
                &admin,
                &format!(
                    "{}/taxii2/synergia/collections/consolidated/objects/indicator--{id}/",
                    n.url
                ),
            )
            .await;
            let objects = v["objects"].as_array().unwrap();
            assert_eq!(objects.len(), 1, "{m}: {v}");
            assert_eq!(
                objects[0]["modified"], "2026-06-01T00:00:00.000Z",
                "{m}: {v}"
            );
            assert!(objects[0].get("revoked").is_none(), "{m}: {v}");
            let (_, v) = get_json(
                &admin,
                &format!("{}/api/v1/lookup?value=203.0.113.9", n.url),
            )
            .await;
            assert_eq!(v["results"][0]["hits"][0]["revoked"], false, "{m}: {v}");
            // Both versions are held and shown in provenance; groupib's is the latest.
            let (_, v) = get_json(
                &admin,
                &format!("{}/api/v1/objects/indicator--{id}/provenance", n.url),
            )
            .await;
            let versions = v["versions"].as_array().unwrap();
            assert_eq!(versions.len(), 2, "{m}: {v}");
            let latest: Vec<_> = versions.iter().filter(|x| x["latest"] == true).collect();
            assert_eq!(latest.len(), 1);
            assert_eq!(latest[0]["origins"], json!(["groupib"]));
        }
        // Kaspersky's node refuses to sign either for groupib or for 2099.
        let (_, k) = &nodes[2];
        let admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("kaspersky")));
        for (object, code) in [
            (&forged_creator, "foreign-creator"),
            (&far_future, "object-after-signing"),
        ] {
            let r = admin
                .post(format!("{}/api/v1/bundles", k.url))
                .json(&bundle(vec![object.clone()]))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 422);
            let v: Value = r.json().await.unwrap();
            assert!(v.to_string().contains(code), "{v}");
        }
    });
}

/// Finding 4: a page of an object with 20,000 versions is chosen in one walk over
/// them: every version filter answers quickly, in the member's collection and the
/// consolidated one.
#[test]
fn twenty_thousand_versions_of_one_object_page_quickly() {
    let fed = Federation::new(&["interpol", "kaspersky"], &[]);
    let mut cfg = fed.config("kaspersky");
    cfg.peers.clear();
    let node = RunningNode::start(cfg);
    let admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("kaspersky")));
    let id = uuid::Uuid::new_v4().to_string();
    let base = Timestamp::parse("2026-01-01T00:00:00.000Z")
        .unwrap()
        .as_micros();
    let versions: Vec<Value> = (0..20_000i64)
        .map(|i| {
            indicator(
                &id,
                "203.0.113.200",
                &Timestamp::from_micros(base + i * 1000).to_millis_string(),
                None,
            )
        })
        .collect();
    rt().block_on(async {
        let r = admin
            .post(format!("{}/api/v1/bundles", node.url))
            .json(&bundle(versions))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        for coll in ["local", "consolidated", "kaspersky"] {
            for (filter, expect) in [("last", 1), ("first", 1), ("all", 1000)] {
                let url = format!(
                    "{}/taxii2/synergia/collections/{coll}/objects/?match[version]={filter}&limit=1000",
                    node.url
                );
                // The first request of a connection pays for the handshake.
                get_json(&admin, &url).await;
                let mut best = Duration::MAX;
                for _ in 0..3 {
                    let t = Instant::now();
                    let (s, v) = get_json(&admin, &url).await;
                    best = best.min(t.elapsed());
                    assert_eq!(s, 200);
                    assert_eq!(v["objects"].as_array().unwrap().len(), expect, "{coll} {filter}");
                }
                println!("TAXII-20K collection={coll} version={filter} best_ms={}", best.as_millis());
                assert!(
                    best < Duration::from_millis(100),
                    "{coll} match[version]={filter}: {best:?}"
                );
            }
        }
    });
}

/// Finding 5: connections without a certificate, from one address or several, cannot
/// starve a caller with one. 200 handshakes that never finish and 60 finished
/// certificate-less connections that stay idle, from 127.0.0.2 and 127.0.0.3; the
/// administrator's certificate connection from 127.0.0.1 is still served at once.
#[test]
fn certificate_less_connections_cannot_starve_an_authenticated_client() {
    let fed = Federation::new(&["interpol", "kaspersky"], &[]);
    let mut cfg = fed.config("interpol");
    cfg.peers.clear();
    cfg.limits.max_connections = 64;
    cfg.limits.max_connections_per_address = 16;
    cfg.limits.max_connections_without_certificate = 16;
    cfg.limits.handshake_timeout_secs = 30;
    cfg.limits.header_timeout_secs = 30;
    let node = RunningNode::start(cfg);
    let addr = addr_of(&node.url);
    let ca = fed.ca_path();
    rt().block_on(async {
        let mut held_tcp = Vec::new();
        for local in ["127.0.0.2", "127.0.0.3"] {
            for _ in 0..100 {
                let s = tokio::net::TcpSocket::new_v4().unwrap();
                s.bind(SocketAddr::new(local.parse().unwrap(), 0)).unwrap();
                if let Ok(c) = s.connect(addr).await {
                    held_tcp.push(c);
                }
            }
        }
        let mut held_tls = Vec::new();
        let mut refused = 0;
        for local in ["127.0.0.4", "127.0.0.5", "127.0.0.6"] {
            for _ in 0..20 {
                match tls_connect(addr, &ca, None, local.parse().unwrap(), false).await {
                    Ok(mut s) => {
                        // Established without a certificate: idle, or closed at once (a
                        // refused one is closed within milliseconds; 300 ms for a loaded
                        // machine).
                        let mut b = [0u8; 1];
                        match tokio::time::timeout(Duration::from_millis(300), s.read(&mut b)).await
                        {
                            Ok(_) => refused += 1,
                            Err(_) => held_tls.push(s),
                        }
                    }
                    Err(_) => refused += 1,
                }
            }
        }
        assert!(
            held_tls.len() <= 16,
            "{} certificate-less connections held",
            held_tls.len()
        );
        assert!(refused >= 44, "{refused} refused");
        let admin = https_client(&ca, Some(&fed.admin_identity("interpol")));
        let t = Instant::now();
        let (s, _) = tokio::time::timeout(
            Duration::from_secs(2),
            get_json(&admin, &format!("{}/api/v1/stats", node.url)),
        )
        .await
        .expect("the authenticated client was served within 2 s");
        assert_eq!(s, 200);
        println!(
            "CONN-FLOOD held_tcp={} held_tls={} refused={refused} admin_ms={}",
            held_tcp.len(),
            held_tls.len(),
            t.elapsed().as_millis()
        );
        // The refusals are counted for operators.
        let r = admin
            .get(format!("{}/metrics", node.url))
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        let count = |limit: &str| -> u64 {
            text.lines()
                .find(|l| {
                    l.starts_with(&format!(
                        "synergia_connections_refused_total{{limit=\"{limit}\"}}"
                    ))
                })
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no {limit} series in {text}"))
        };
        assert!(count("per-address") >= 100, "{text}");
        assert!(count("without-certificate") >= 40, "{text}");
    });
}

/// Finding 6: request bodies share a node-wide memory budget, taken as the bytes
/// arrive. With a 4 MiB body limit and an 8 MiB budget, six clients that each send
/// half of a 4 MiB body and stall: at most four are held, the others are refused 503
/// `busy` instead of being held in memory. A body announced
/// larger than the limit is refused before it is read, and a lookup of more than
/// 10,000 values is refused.
#[test]
fn concurrent_large_bodies_stay_within_the_budget() {
    let fed = Federation::new(&["interpol", "kaspersky"], &[]);
    let mut cfg = fed.config("interpol");
    cfg.limits.max_body_bytes = 4 << 20;
    cfg.limits.max_body_memory_bytes = 8 << 20;
    cfg.limits.request_timeout_secs = 6;
    let node = RunningNode::start(cfg);
    let addr = addr_of(&node.url);
    let ca = fed.ca_path();
    let peer = fed.node_identity("kaspersky");
    rt().block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let ca = ca.clone();
            let peer = peer.clone();
            tasks.push(tokio::spawn(async move {
                let mut s = tls_connect(addr, &ca, Some(&peer), "127.0.0.1".parse().unwrap(), false)
                    .await
                    .unwrap();
                let len = 4 << 20;
                s.write_all(
                    format!("POST /federation/v1/envelopes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n").as_bytes(),
                )
                .await
                .unwrap();
                // Half now, the rest only after the node has answered or 5 s.
                let _ = s.write_all(&vec![b' '; len / 2]).await;
                let mut answer = Vec::new();
                let mut buf = [0u8; 4096];
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                    if n == 0 {
                        break;
                    }
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                String::from_utf8_lossy(&answer).to_string()
            }));
        }
        let mut busy = 0;
        let mut waiting = 0;
        for t in tasks {
            let a = t.await.unwrap();
            if a.starts_with("HTTP/1.1 503") {
                assert!(a.contains("busy"), "{a}");
                busy += 1;
            } else {
                assert!(a.is_empty(), "{a}");
                waiting += 1;
            }
        }
        println!("BODY-BUDGET busy={busy} admitted={waiting}");
        // 2 MiB sent by each of six: the 8 MiB budget holds at most four of them
        // (fewer when several hold 1 MiB while waiting for their second), the others
        // are refused rather than held.
        assert!((2..=4).contains(&waiting), "{waiting} bodies held");
        assert_eq!(busy + waiting, 6);

        // Announced larger than the limit: 413 at once, nothing read.
        let c = https_client(&ca, Some(&peer));
        let r = c
            .post(format!("{}/federation/v1/envelopes", node.url))
            .body(vec![b' '; (4 << 20) + 1])
            .send()
            .await;
        if let Ok(r) = r {
            assert_eq!(r.status(), 413);
        }
        // A lookup of 10,001 values.
        let admin = https_client(&ca, Some(&fed.admin_identity("interpol")));
        let values: Vec<String> = (0..10_001).map(|i| format!("10.0.{}.{}", i / 256, i % 256)).collect();
        let r = admin
            .post(format!("{}/api/v1/lookup", node.url))
            .json(&json!({"values": values}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.text().await.unwrap().contains("at most 10,000 values"));
    });
}

/// Finding 7: outbound peer TLS is bound to the member. Kaspersky's peer `groupib`
/// is pointed at trendmicro's node (which presents trendmicro's certificate, also
/// valid for 127.0.0.1): kaspersky refuses the handshake, trendmicro receives none of
/// kaspersky's envelopes, and the refusal is shown in kaspersky's peer status.
#[test]
fn a_node_presenting_another_members_certificate_receives_no_push() {
    let fed = Federation::new(&["kaspersky", "groupib", "trendmicro"], &[]);
    let mut t_cfg = fed.config("trendmicro");
    t_cfg.peers.clear();
    let trendmicro = RunningNode::start(t_cfg);
    let mut k_cfg: Config = fed.config("kaspersky");
    k_cfg.peers = vec![Peer {
        name: "groupib".into(),
        url: Some(trendmicro.url.clone()),
        amber: true,
    }];
    let kaspersky = RunningNode::start(k_cfg);
    let admin_k = https_client(&fed.ca_path(), Some(&fed.admin_identity("kaspersky")));
    let admin_t = https_client(&fed.ca_path(), Some(&fed.admin_identity("trendmicro")));
    rt().block_on(async {
        let r = admin_k
            .post(format!("{}/api/v1/bundles", kaspersky.url))
            .json(&bundle(vec![indicator(
                &uuid::Uuid::new_v4().to_string(),
                "203.0.113.77",
                "2026-01-01T00:00:00.000Z",
                None,
            )]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            let (_, v) = get_json(&admin_k, &format!("{}/api/v1/peers", kaspersky.url)).await;
            let p = v["peers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["peer"] == "groupib" || p["name"] == "groupib")
                .cloned()
                .unwrap_or(Value::Null);
            if p.to_string().contains("synergia://member/groupib") {
                break p;
            }
            assert!(Instant::now() < deadline, "no refusal shown: {v}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let (_, stats) = get_json(&admin_t, &format!("{}/api/v1/stats", trendmicro.url)).await;
        assert_eq!(stats["envelopes"], 0, "{stats} / {status}");
    });
}

/// Finding 9: nothing a reader or peer is not cleared for shows through paging: a
/// TAXII page says `more` only when a version the reader may see follows, and a peer's
/// feed `head` and `more` do not count the envelopes withheld from it. A client entry
/// without `max_tlp` reads up to green. Connections close when idle and at their
/// maximum age, however busy.
#[test]
fn paging_and_connections_reveal_and_keep_nothing_beyond_clearance() {
    let fed = Federation::new(&["interpol", "kaspersky", "groupib", "trendmicro"], &[]);
    let mut cfg = fed.config("interpol");
    cfg.limits.idle_timeout_secs = 1;
    cfg.limits.max_connection_age_secs = 3;
    add_client(&mut cfg, "green-reader", &[Role::Read], TlpLevel::Green);
    let node = RunningNode::start(cfg);
    let green = https_client(
        &fed.ca_path(),
        Some(&fed.client_cert("green-reader", Validity::years_from_now(1))),
    );
    let shared = indicator(
        &uuid::Uuid::new_v4().to_string(),
        "198.51.100.20",
        "2026-01-01T00:00:00.000Z",
        None,
    );
    let secret = json!({"type": "ipv4-addr", "spec_version": "2.1",
        "id": format!("ipv4-addr--{}", uuid::Uuid::new_v4()), "value": "198.51.100.21"});
    rt().block_on(async {
        let r = push_envelopes(
            &fed,
            &node.url,
            "groupib",
            vec![sign(
                &fed.signer("groupib"),
                vec![shared],
                1,
                TlpLevel::Green,
                &[],
            )],
        )
        .await;
        assert_eq!(r[0]["status"], "accepted", "{r:?}");
        let r = push_envelopes(
            &fed,
            &node.url,
            "kaspersky",
            vec![sign(
                &fed.signer("kaspersky"),
                vec![secret],
                1,
                TlpLevel::Red,
                &["interpol"],
            )],
        )
        .await;
        assert_eq!(r[0]["status"], "accepted", "{r:?}");

        // TAXII: one visible object, then only a red one: the full page ends here.
        let (_, v) = get_json(
            &green,
            &format!(
                "{}/taxii2/synergia/collections/consolidated/objects/?limit=1",
                node.url
            ),
        )
        .await;
        assert_eq!(v["objects"].as_array().unwrap().len(), 1, "{v}");
        assert!(
            !v.get("more").and_then(Value::as_bool).unwrap_or(false),
            "{v}"
        );
        assert!(v.get("next").is_none(), "{v}");

        // The feed of a peer that may not have the red envelope.
        let peer = https_client(&fed.ca_path(), Some(&fed.node_identity("trendmicro")));
        let r = peer
            .get(format!("{}/federation/v1/feed?after=0&limit=1", node.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["envelopes"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(v["head"], 1, "{v}");
        assert_eq!(v["more"], false, "{v}");

        // An idle connection is closed after 1 s; a busy one at its age of 3 s.
        let addr = addr_of(&node.url);
        let token = fed.token("interpol");
        let request =
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
        let ca = fed.ca_path();
        let connect = || tls_connect(addr, &ca, None, "127.0.0.1".parse().unwrap(), false);
        let mut idle = connect().await.unwrap();
        idle.write_all(request.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 4096];
        assert!(idle.read(&mut buf).await.unwrap() > 0);
        let t = Instant::now();
        let closed = loop {
            match tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break true,
                Ok(Ok(_)) => continue,
                Err(_) => break false,
            }
        };
        assert!(closed, "an idle connection was kept");
        assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());

        let mut busy = connect().await.unwrap();
        let t = Instant::now();
        let mut answered = 0;
        loop {
            if busy.write_all(request.as_bytes()).await.is_err() {
                break;
            }
            match tokio::time::timeout(Duration::from_secs(5), busy.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => answered += 1,
                _ => break,
            }
            assert!(
                t.elapsed() < Duration::from_secs(8),
                "a busy connection outlived its age"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        assert!(answered >= 5, "{answered}");
        assert!(
            t.elapsed() >= Duration::from_millis(2500),
            "{:?}",
            t.elapsed()
        );
    });
    // A client entry without max_tlp reads up to green (least privilege).
    let c: synergia::config::Client =
        toml::from_str("name = \"pipeline\"\nroles = [\"read\"]\n").unwrap();
    assert_eq!(c.max_tlp, TlpLevel::Green);
}

/// Finding 9 (revocation): certificates on the federation CA's revocation list are
/// refused at the handshake, inbound (a client, a peer pushing) and outbound (a peer
/// this node pulls from). `keys revoke-cert` keeps what the list named before.
#[test]
fn revoked_certificates_are_refused_inbound_and_outbound() {
    let fed = Federation::new(&["interpol", "kaspersky", "groupib"], &[]);
    let keys = fed.dir.path().join("keys");
    let analyst = fed.client_cert("analyst", Validity::years_from_now(1));
    let analyst_pem = fed.dir.path().join("analyst.pem");
    std::fs::write(&analyst_pem, &analyst.cert_pem).unwrap();
    let (crl, serials) =
        synergia::keys::federation::revoke_certificates(&keys, std::slice::from_ref(&analyst_pem))
            .unwrap();
    assert_eq!(serials.len(), 1);
    let (_, serials) = synergia::keys::federation::revoke_certificates(
        &keys,
        &[keys.join("kaspersky/node.pem"), analyst_pem],
    )
    .unwrap();
    assert_eq!(serials.len(), 2, "{serials:?}");

    let mut cfg = fed.config("interpol");
    add_client(&mut cfg, "analyst", &[Role::Read], TlpLevel::Green);
    add_client(&mut cfg, "colleague", &[Role::Read], TlpLevel::Green);
    cfg.tls.crl = Some(crl.clone());
    let interpol = RunningNode::start(cfg);
    let kaspersky = RunningNode::start(fed.config("kaspersky"));
    let mut g_cfg = fed.config("groupib");
    g_cfg.tls.crl = Some(crl);
    g_cfg.peers = vec![Peer {
        name: "kaspersky".into(),
        url: Some(kaspersky.url.clone()),
        amber: false,
    }];
    let groupib = RunningNode::start(g_cfg);
    rt().block_on(async {
        let revoked = https_client(&fed.ca_path(), Some(&analyst));
        let r = revoked
            .get(format!("{}/api/v1/lookup?value=192.0.2.1", interpol.url))
            .send()
            .await;
        assert!(
            r.is_err(),
            "a revoked client certificate was accepted: {r:?}"
        );
        let colleague = https_client(
            &fed.ca_path(),
            Some(&fed.client_cert("colleague", Validity::years_from_now(1))),
        );
        let (s, _) = get_json(
            &colleague,
            &format!("{}/api/v1/lookup?value=192.0.2.1", interpol.url),
        )
        .await;
        assert_eq!(s, 200);
        // A revoked node certificate cannot push; another member's can.
        let env = sign(
            &fed.signer("kaspersky"),
            vec![indicator(
                &uuid::Uuid::new_v4().to_string(),
                "192.0.2.5",
                "2026-01-01T00:00:00.000Z",
                None,
            )],
            1,
            TlpLevel::Green,
            &[],
        );
        let c = https_client(&fed.ca_path(), Some(&fed.node_identity("kaspersky")));
        let r = c
            .post(format!("{}/federation/v1/envelopes", interpol.url))
            .json(&json!({"envelopes": [env]}))
            .send()
            .await;
        assert!(r.is_err(), "a revoked node certificate pushed: {r:?}");
        // Outbound: groupib refuses kaspersky's node when it pulls from it.
        let admin_g = https_client(&fed.ca_path(), Some(&fed.admin_identity("groupib")));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, v) = get_json(&admin_g, &format!("{}/api/v1/peers", groupib.url)).await;
            if v.to_string().contains("Revoked") {
                break;
            }
            assert!(Instant::now() < deadline, "no revocation shown: {v}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}
