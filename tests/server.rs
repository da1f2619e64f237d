//! The node server over real TLS on loopback: every rejection's precise outcome, the
//! node API, and TAXII 2.1 behaviour (paging, filters, tokens, media types, limits).

#[path = "common/mod.rs"]
mod common;

use common::*;
use serde_json::{Value, json};
use synergia::config::Role;
use synergia::keys::tls::Validity;
use synergia::stix::tlp::TlpLevel;
use synergia::workload::{GenOptions, bundle};

struct Setup {
    fed: Federation,
    node: RunningNode,
}

fn setup(max_body: usize) -> Setup {
    let fed = Federation::new(&["alpha", "beta"], &[]);
    let mut cfg = fed.config("alpha");
    add_client(&mut cfg, "reader", &[Role::Read], TlpLevel::Red);
    add_client(&mut cfg, "green-reader", &[Role::Read], TlpLevel::Green);
    add_client(&mut cfg, "publisher", &[Role::Publish], TlpLevel::Red);
    cfg.limits.max_body_bytes = max_body;
    cfg.limits.taxii_max_page = 500;
    let node = RunningNode::start(cfg);
    Setup { fed, node }
}

fn gen_bundle(count: u64, origin: &str) -> Value {
    bundle(&GenOptions {
        count,
        seed: 5,
        origin: origin.into(),
        identity: None,
        overlap: 0.3,
        tlp: None,
    })
}

#[test]
fn every_rejection_has_its_precise_outcome() {
    let s = setup(1 << 20);
    let rt = rt();
    let url = format!("{}/taxii2/", s.node.url);
    rt.block_on(async {
        // No certificate, no token: 401.
        let r = https_client(&s.fed.ca_path(), None)
            .get(&url)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error_code"], "authentication-required");

        // Health needs no identity.
        let r = https_client(&s.fed.ca_path(), None)
            .get(format!("{}/healthz", s.node.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);

        // A certificate from a foreign CA: the handshake fails.
        let foreign_ca =
            synergia::keys::tls::new_ca("mallory", Validity::years_from_now(1)).unwrap();
        let foreign = synergia::keys::tls::issue(
            &foreign_ca,
            synergia::keys::tls::CertRole::Client,
            "alpha-admin",
            &[],
            Validity::years_from_now(1),
        )
        .unwrap();
        let e = https_client(&s.fed.ca_path(), Some(&foreign))
            .get(&url)
            .send()
            .await;
        assert!(e.is_err(), "foreign CA must fail the handshake: {e:?}");

        // An expired certificate from the federation CA: the handshake fails.
        let expired = s.fed.client_cert(
            "reader",
            Validity {
                not_before: (2020, 1, 1),
                not_after: (2021, 1, 1),
            },
        );
        let e = https_client(&s.fed.ca_path(), Some(&expired))
            .get(&url)
            .send()
            .await;
        assert!(
            e.is_err(),
            "expired certificate must fail the handshake: {e:?}"
        );

        // A valid certificate naming nobody this node knows: 403.
        let stranger = s.fed.client_cert("stranger", Validity::years_from_now(1));
        let r = https_client(&s.fed.ca_path(), Some(&stranger))
            .get(&url)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(
            r.json::<Value>().await.unwrap()["error_code"],
            "unknown-identity"
        );

        // A member node that is not a configured peer... beta is; a node cert of an
        // unknown member cannot exist (the CA issues only members), so check the peer
        // role instead: beta's node certificate may not use TAXII.
        let beta = s.fed.node_identity("beta");
        let r = https_client(&s.fed.ca_path(), Some(&beta))
            .get(&url)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(
            r.json::<Value>().await.unwrap()["error_code"],
            "missing-role"
        );

        // Missing role: a reader cannot publish.
        let reader = s.fed.client_cert("reader", Validity::years_from_now(1));
        let r = https_client(&s.fed.ca_path(), Some(&reader))
            .post(format!("{}/api/v1/bundles", s.node.url))
            .json(&gen_bundle(3, "alpha"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "missing-role");

        // Bad token: 401.
        let r = https_client(&s.fed.ca_path(), None)
            .get(&url)
            .bearer_auth("0123456789abcdef")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.json::<Value>().await.unwrap()["error_code"], "bad-token");

        // The right token: 200.
        let r = https_client(&s.fed.ca_path(), None)
            .get(&url)
            .bearer_auth(s.fed.token("alpha"))
            .header("Accept", TAXII)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], TAXII);
    });
}

#[test]
fn publish_then_page_filter_and_look_up_over_taxii() {
    let s = setup(4 << 20);
    let rt = rt();
    let admin = https_client(&s.fed.ca_path(), Some(&s.fed.admin_identity("alpha")));
    let base = s.node.url.clone();
    rt.block_on(async {
        let b = gen_bundle(1200, "alpha");
        let total = b["objects"].as_array().unwrap().len();
        let r = admin.post(format!("{base}/api/v1/bundles")).json(&b).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let rep: Value = r.json().await.unwrap();
        assert_eq!(rep["published"], total);
        assert!(rep["envelopes"].as_array().unwrap().len() >= 3, "split by TLP and size");

        // Publishing the same bundle again changes nothing and succeeds.
        let rep: Value = admin.post(format!("{base}/api/v1/bundles")).json(&b).send().await.unwrap().json().await.unwrap();
        assert_eq!(rep["held"], total);
        assert!(rep["envelopes"].as_array().unwrap().is_empty());

        // Page through the consolidated collection with next tokens.
        let coll = format!("{base}/taxii2/synergia/collections/consolidated/objects/");
        let mut seen = std::collections::HashSet::new();
        let mut next: Option<String> = None;
        let mut pages = 0;
        let mut last_added = String::new();
        loop {
            let mut req = admin.get(&coll).header("Accept", TAXII).query(&[("limit", "200")]);
            if let Some(n) = &next {
                req = req.query(&[("next", n.as_str())]);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], TAXII);
            let first = r.headers()["x-taxii-date-added-first"].to_str().unwrap().to_string();
            assert!(first > last_added, "pages advance in date_added order");
            last_added = r.headers()["x-taxii-date-added-last"].to_str().unwrap().to_string();
            assert_eq!(last_added.len(), "2026-11-27T06:09:23.359139Z".len(), "microsecond date_added");
            let env: Value = r.json().await.unwrap();
            for o in env["objects"].as_array().unwrap() {
                assert!(seen.insert(o["id"].as_str().unwrap().to_string()), "duplicate across pages");
            }
            pages += 1;
            if env["more"] == true {
                next = Some(env["next"].as_str().unwrap().to_string());
            } else {
                break;
            }
        }
        assert_eq!(seen.len(), total);
        assert!(pages >= total / 200);

        // Filters.
        let get = |q: Vec<(&'static str, String)>| {
            let admin = admin.clone();
            let coll = coll.clone();
            async move {
                let r = admin.get(&coll).header("Accept", TAXII).query(&q).send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        };
        let (st, env) = get(vec![("match[type]", "malware,infrastructure".into()), ("limit", "500".into())]).await;
        assert_eq!(st, 200);
        let objs = env["objects"].as_array().unwrap();
        assert_eq!(objs.len(), 24, "12 groups of 100 indicators, one malware and one infrastructure each");
        assert!(objs.iter().all(|o| o["type"] == "malware" || o["type"] == "infrastructure"));
        let an_id = objs[0]["id"].as_str().unwrap().to_string();
        let (_, env) = get(vec![("match[id]", an_id.clone())]).await;
        assert_eq!(env["objects"].as_array().unwrap().len(), 1);
        let (_, env) = get(vec![("match[spec_version]", "2.0".into())]).await;
        assert!(env.get("objects").is_none());
        let (_, env) = get(vec![("added_after", "2099-01-01T00:00:00Z".into())]).await;
        assert_eq!(env["more"], false);
        assert!(env.get("objects").is_none());

        // Malformed queries and forged or foreign tokens: 400.
        for q in [
            vec![("limit", "0".to_string())],
            vec![("added_after", "soon".to_string())],
            vec![("match[version]", "newest".to_string())],
            vec![("next", "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_string())],
            vec![("next", "not-a-token".to_string())],
        ] {
            let (st, env) = get(q.clone()).await;
            assert_eq!(st, 400, "{q:?}: {env}");
            assert_eq!(env["http_status"], "400");
        }
        // A real token from another collection is refused.
        let r: Value = admin
            .get(format!("{base}/taxii2/synergia/collections/local/objects/"))
            .header("Accept", TAXII)
            .query(&[("limit", "10")])
            .send().await.unwrap().json().await.unwrap();
        let local_next = r["next"].as_str().unwrap().to_string();
        let (st, _) = get(vec![("next", local_next.clone())]).await;
        assert_eq!(st, 400, "token of `local` used on `consolidated`");
        // Same token with different filters is refused too.
        let r = admin
            .get(format!("{base}/taxii2/synergia/collections/local/objects/"))
            .header("Accept", TAXII)
            .query(&[("next", local_next.as_str()), ("match[type]", "indicator")])
            .send().await.unwrap();
        assert_eq!(r.status(), 400);

        // Object by id, versions, manifest.
        let r = admin.get(format!("{base}/taxii2/synergia/collections/consolidated/objects/{an_id}/")).header("Accept", TAXII).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let r: Value = admin.get(format!("{base}/taxii2/synergia/collections/consolidated/objects/{an_id}/versions/")).header("Accept", TAXII).send().await.unwrap().json().await.unwrap();
        assert_eq!(r["versions"].as_array().unwrap().len(), 1);
        let r = admin.get(format!("{base}/taxii2/synergia/collections/consolidated/objects/indicator--00000000-0000-4000-8000-000000000000/")).header("Accept", TAXII).send().await.unwrap();
        assert_eq!(r.status(), 404);
        let r: Value = admin.get(format!("{base}/taxii2/synergia/collections/consolidated/manifest/")).header("Accept", TAXII).query(&[("limit", "5")]).send().await.unwrap().json().await.unwrap();
        let rec = &r["objects"][0];
        assert_eq!(rec["media_type"], "application/stix+json;version=2.1");
        assert!(rec["date_added"].as_str().unwrap().ends_with('Z'));

        // 406 for a client that does not accept TAXII.
        let r = admin.get(&coll).header("Accept", "application/xml").send().await.unwrap();
        assert_eq!(r.status(), 406);

        // Lookup and provenance.
        let ind = b["objects"].as_array().unwrap().iter().find(|o| o["type"] == "indicator").unwrap();
        let pattern = ind["pattern"].as_str().unwrap();
        let value = pattern.split('\'').nth(if pattern.starts_with("[file") { 3 } else { 1 }).unwrap();
        let r: Value = admin.get(format!("{base}/api/v1/lookup")).query(&[("value", value)]).send().await.unwrap().json().await.unwrap();
        assert_eq!(r["results"][0]["hits"][0]["id"], ind["id"], "{r}");
        assert_eq!(r["results"][0]["corroboration"], 1);
        let r: Value = admin.get(format!("{base}/api/v1/objects/{}/provenance", ind["id"].as_str().unwrap())).send().await.unwrap().json().await.unwrap();
        assert_eq!(r["versions"][0]["provenance"][0]["origin"], "alpha");
        assert_eq!(r["versions"][0]["provenance"][0]["received_from"], "local");

        // TLP ceiling: a green-only reader never sees amber objects.
        let green = https_client(&s.fed.ca_path(), Some(&s.fed.client_cert("green-reader", Validity::years_from_now(1))));
        let r: Value = green.get(&coll).header("Accept", TAXII).query(&[("limit", "500"), ("match[type]", "indicator")]).send().await.unwrap().json().await.unwrap();
        let amber = TlpLevel::Amber.marking_id();
        assert!(r["objects"].as_array().unwrap().iter().all(|o| o["object_marking_refs"][0] != amber));

        // Stats and metrics for the operator.
        let r: Value = admin.get(format!("{base}/api/v1/stats")).send().await.unwrap().json().await.unwrap();
        assert_eq!(r["object_versions"], total);
        let m = admin.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(m.contains(&format!("synergia_published_objects_total {total}")), "{m}");
    });
}

#[test]
fn taxii_post_publishes_with_a_status_that_stays() {
    let s = setup(1 << 20);
    let rt = rt();
    let admin = https_client(&s.fed.ca_path(), Some(&s.fed.admin_identity("alpha")));
    let base = s.node.url.clone();
    rt.block_on(async {
        let mut objs = gen_bundle(20, "alpha")["objects"]
            .as_array()
            .unwrap()
            .clone();
        let mut bad = objs[5].clone();
        bad["id"] = json!("indicator--not-a-uuid");
        objs.push(bad);
        let post = |ctype: &'static str, body: Value| {
            let admin = admin.clone();
            let url = format!("{base}/taxii2/synergia/collections/local/objects/");
            async move {
                admin
                    .post(url)
                    .header("Accept", TAXII)
                    .header("Content-Type", ctype)
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap()
            }
        };
        let r = post(TAXII, json!({"objects": objs})).await;
        assert_eq!(r.status(), 202);
        let st: Value = r.json().await.unwrap();
        assert_eq!(st["status"], "complete");
        assert_eq!(st["failure_count"], 1);
        assert_eq!(st["success_count"], objs.len() - 1);
        // The status resource stays available.
        let id = st["id"].as_str().unwrap();
        let again: Value = admin
            .get(format!("{base}/taxii2/synergia/status/{id}/"))
            .header("Accept", TAXII)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(again, st);
        // An exact duplicate POST is a success.
        let r = post(TAXII, json!({"objects": objs[..objs.len() - 1]})).await;
        let st: Value = r.json().await.unwrap();
        assert_eq!(st["failure_count"], 0);
        assert_eq!(st["success_count"], objs.len() - 1);
        // Wrong media type: 415. Read-only collection: 403. Too large: 413.
        assert_eq!(
            post("application/json", json!({"objects": []}))
                .await
                .status(),
            415
        );
        let r = admin
            .post(format!(
                "{base}/taxii2/synergia/collections/consolidated/objects/"
            ))
            .header("Content-Type", TAXII)
            .body("{\"objects\":[]}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let big = "x".repeat(2 << 20);
        let r = post(TAXII, json!({"objects": [], "pad": big})).await;
        assert_eq!(r.status(), 413);
        // Malformed JSON and duplicate keys: 400, nothing changes.
        let before = s.node.node.embedded("test").unwrap().read().version_count();
        let r = admin
            .post(format!("{base}/api/v1/bundles"))
            .header("Content-Type", "application/json")
            .body("{\"type\":\"bundle\",\"type\":\"bundle\",\"objects\":[]}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "malformed-json");
        // Invalid STIX through the node API: 422 with every finding, nothing changes.
        let mut b = gen_bundle(5, "alpha");
        b["objects"][2]["created"] = json!("yesterday");
        b["objects"][3]["confidence"] = json!(250);
        let r = admin
            .post(format!("{base}/api/v1/bundles"))
            .json(&b)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"], "invalid-stix");
        let pointers: Vec<&str> = e["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["pointer"].as_str().unwrap())
            .collect();
        assert!(
            pointers.contains(&"/objects/2/created") && pointers.contains(&"/objects/3/confidence"),
            "{pointers:?}"
        );
        assert_eq!(
            s.node.node.embedded("test").unwrap().read().version_count(),
            before
        );
        // Red without recipients: 422.
        let r = admin
            .post(format!("{base}/api/v1/bundles"))
            .json(&bundle(&GenOptions {
                count: 2,
                seed: 1,
                origin: "alpha".into(),
                identity: None,
                overlap: 0.0,
                tlp: Some(TlpLevel::Red),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422);
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "bad-recipients");
        let r = admin
            .post(format!("{base}/api/v1/bundles?recipients=beta"))
            .json(&bundle(&GenOptions {
                count: 2,
                seed: 1,
                origin: "alpha".into(),
                identity: None,
                overlap: 0.0,
                tlp: Some(TlpLevel::Red),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
}

/// TLS material is reloaded without a restart (SIGHUP): new connections get the new
/// certificate while the process keeps running.
#[test]
fn certificate_reloads_on_sighup_without_restart() {
    use synergia::keys::tls::{CertRole, issue};
    let fed = Federation::new(&["alpha", "beta"], &[]);
    let cfg = fed.config("alpha");
    let url = format!("https://{}", cfg.listen.address);
    let log = fed.dir.path().join("alpha.log");
    let p = NodeProcess::spawn(
        std::path::Path::new(env!("CARGO_BIN_EXE_synergia")),
        "alpha",
        &fed.config_path("alpha"),
        &url,
        &fed.ca_path(),
        &log,
    );
    let not_after = || {
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured({
                use rustls::pki_types::pem::PemObject as _;
                let mut roots = rustls::RootCertStore::empty();
                for c in rustls::pki_types::CertificateDer::pem_file_iter(fed.ca_path()).unwrap() {
                    roots.add(c.unwrap()).unwrap();
                }
                rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth()
            })
            .tls_info(true)
            .build()
            .unwrap();
        let url = format!("{url}/healthz");
        std::thread::spawn(move || {
            rt().block_on(async {
                let r = client.get(url).send().await.unwrap();
                let der = r
                    .extensions()
                    .get::<reqwest::tls::TlsInfo>()
                    .unwrap()
                    .peer_certificate()
                    .unwrap()
                    .to_vec();
                x509_parser::parse_x509_certificate(&der)
                    .unwrap()
                    .1
                    .validity()
                    .not_after
                    .timestamp()
            })
        })
        .join()
        .unwrap()
    };
    let before = not_after();
    let fresh = issue(
        &fed.ca(),
        CertRole::Node,
        "alpha",
        &[],
        Validity {
            not_before: (2026, 1, 1),
            not_after: (2031, 6, 1),
        },
    )
    .unwrap();
    std::fs::write(&cfg.tls.cert, &fresh.cert_pem).unwrap();
    synergia::keys::write_private(&cfg.tls.key, fresh.key_pem.as_bytes()).unwrap();
    let st = std::process::Command::new("kill")
        .args(["-HUP", &p.pid().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut after = before;
    while after == before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        after = not_after();
    }
    assert_ne!(before, after, "the new certificate is served");
    assert_eq!(after, 1_938_038_400, "2031-06-01T00:00:00Z");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("TLS certificate and CA reloaded"), "{text}");
}

/// A peer's push may state each envelope's id: held ones are answered `duplicate`
/// without being parsed, a parsed envelope must carry the id stated for it, and the
/// `ids` array must match the envelopes one to one.
#[test]
fn pushed_envelope_ids_skip_held_envelopes_and_must_be_true() {
    use synergia::envelope::{Envelope, EnvelopeMeta};
    use synergia::stix::timestamp::Timestamp;
    let s = setup(1 << 20);
    let beta = s.fed.signer("beta");
    let sign = |seq: u64| {
        let mut b = gen_bundle(2, "beta");
        for o in b["objects"].as_array_mut().unwrap() {
            o["object_marking_refs"] =
                json!(["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"]);
        }
        Envelope::sign(
            b,
            &beta,
            EnvelopeMeta {
                seq,
                signed_at: Timestamp::now(),
                tlp: TlpLevel::Green,
                recipients: vec![],
            },
        )
        .unwrap()
    };
    let (first, second, third) = (sign(1), sign(2), sign(3));
    let json_of = |e: &Envelope| Value::Object(e.as_json().clone());
    let peer = https_client(&s.fed.ca_path(), Some(&s.fed.node_identity("beta")));
    let url = format!("{}/federation/v1/envelopes", s.node.url);
    let rt = rt();
    rt.block_on(async {
        let push = |body: Value| {
            let (peer, url) = (peer.clone(), url.clone());
            async move {
                let r = peer.post(url).json(&body).send().await.unwrap();
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap())
            }
        };
        // Taken with its true id.
        let (st, r) =
            push(json!({"envelopes": [json_of(&first)], "ids": [first.id().as_str()]})).await;
        assert_eq!(st, 200, "{r}");
        assert_eq!(r["results"][0]["status"], "accepted", "{r}");
        // Held: a duplicate even when its body is garbage, since it is not parsed.
        let (st, r) =
            push(json!({"envelopes": [{"not": "parsed"}], "ids": [first.id().as_str()]})).await;
        assert_eq!(st, 200, "{r}");
        assert_eq!(r["results"][0]["status"], "duplicate", "{r}");
        assert_eq!(r["results"][0]["id"], first.id().as_str(), "{r}");
        // A new envelope stated under another (unheld) envelope's id: refused, not stored.
        let before = s.node.node.embedded("test").unwrap().head();
        let (st, r) =
            push(json!({"envelopes": [json_of(&second)], "ids": [third.id().as_str()]})).await;
        assert_eq!(st, 200, "{r}");
        assert_eq!(r["results"][0]["status"], "rejected", "{r}");
        assert_eq!(r["results"][0]["code"], "malformed", "{r}");
        assert_eq!(s.node.node.embedded("test").unwrap().head(), before);
        // Malformed ids arrays: the whole push is refused.
        for ids in [
            json!("x"),
            json!([]),
            json!(["sha256:00"]),
            json!([first.id().as_str(), first.id().as_str()]),
        ] {
            let (st, r) = push(json!({"envelopes": [json_of(&second)], "ids": ids})).await;
            assert_eq!(st, 422, "{ids}: {r}");
            assert_eq!(r["error"], "malformed", "{ids}: {r}");
        }
        assert_eq!(s.node.node.embedded("test").unwrap().head(), before);
        // Without ids (older peers), and with the true one: accepted.
        let (_, r) = push(json!({"envelopes": [json_of(&second)]})).await;
        assert_eq!(r["results"][0]["status"], "accepted", "{r}");
        let (_, r) =
            push(json!({"envelopes": [json_of(&third)], "ids": [third.id().as_str()]})).await;
        assert_eq!(r["results"][0]["status"], "accepted", "{r}");
        assert_eq!(s.node.node.embedded("test").unwrap().head(), before + 2);
    });
}

/// A request body sent in pieces, when the test says so.
struct Pieces(tokio::sync::mpsc::Receiver<Vec<u8>>);

impl futures_core::Stream for Pieces {
    type Item = Result<Vec<u8>, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|piece| piece.map(Ok))
    }
}

/// With `max_concurrent_publishes = 1`, a second publish waits, body unread, until the
/// first one (whose body is still arriving) is done; then both succeed.
#[test]
fn publishes_beyond_the_limit_wait_their_turn() {
    let fed = Federation::new(&["alpha", "beta"], &[]);
    let mut cfg = fed.config("alpha");
    cfg.limits.max_concurrent_publishes = 1;
    let node = RunningNode::start(cfg);
    let rt = rt();
    let admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("alpha")));
    let url = format!("{}/api/v1/bundles", node.url);
    rt.block_on(async {
        let first = serde_json::to_vec(&gen_bundle(50, "alpha")).unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let half = first.len() / 2;
        tx.send(first[..half].to_vec()).await.unwrap();
        let slow = tokio::spawn({
            let (admin, url) = (admin.clone(), url.clone());
            async move {
                let r = admin
                    .post(url)
                    .header("content-type", "application/json")
                    .body(reqwest::Body::wrap_stream(Pieces(rx)))
                    .send()
                    .await
                    .unwrap();
                r.status()
            }
        });
        // The slow publish is admitted and reading its body.
        let gate = node.node.publish_gate();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while gate.available_permits() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the first publish never started"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let quick = tokio::spawn({
            let (admin, url) = (admin.clone(), url.clone());
            async move {
                let r = admin
                    .post(url)
                    .json(&gen_bundle(5, "alpha"))
                    .send()
                    .await
                    .unwrap();
                (r.status(), std::time::Instant::now())
            }
        });
        // The second one is waiting at the gate (the gauge in /metrics says so).
        let waiting = &node.node.metrics().publishes_waiting;
        while waiting.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            assert!(
                !quick.is_finished(),
                "the second publish did not wait its turn"
            );
            assert!(
                std::time::Instant::now() < deadline,
                "the second publish never came"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            !quick.is_finished(),
            "the second publish did not wait its turn"
        );
        let released = std::time::Instant::now();
        tx.send(first[half..].to_vec()).await.unwrap();
        drop(tx);
        assert_eq!(slow.await.unwrap(), 200);
        let (quick_status, quick_done) = quick.await.unwrap();
        assert_eq!(quick_status, 200);
        assert!(
            quick_done >= released,
            "the second publish finished too early"
        );
    });
}

/// A publish with more objects than `limits.publish_window_objects` is checked whole
/// before anything is stored, then stored a window at a time: it answers and stores
/// exactly what a publish parsed whole does, and a bad object, malformed JSON or a red
/// object without recipients in its last window still changes nothing.
#[test]
fn a_windowed_publish_answers_and_stores_like_a_whole_one() {
    let whole_fed = Federation::new(&["alpha", "beta"], &[]);
    let whole = RunningNode::start(whole_fed.config("alpha"));
    let fed = Federation::new(&["alpha", "beta"], &[]);
    let mut cfg = fed.config("alpha");
    cfg.limits.publish_window_objects = 40;
    let windowed = RunningNode::start(cfg);
    let rt = rt();
    let whole_admin = https_client(
        &whole_fed.ca_path(),
        Some(&whole_fed.admin_identity("alpha")),
    );
    let admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("alpha")));
    // The first object is marked by a definition that comes last, windows later.
    let mut b = bundle(&GenOptions {
        count: 120,
        seed: 5,
        origin: "alpha".into(),
        identity: None,
        overlap: 0.3,
        tlp: Some(TlpLevel::Green),
    });
    let marking = "marking-definition--0c6d9a2e-51f4-4c1b-8d8a-3e2f7b9c4a10";
    let objects = b["objects"].as_array_mut().unwrap();
    objects[0]["object_marking_refs"] = json!([marking]);
    objects.push(json!({
        "type": "marking-definition", "spec_version": "2.1", "id": marking,
        "created": "2026-01-01T00:00:00.000Z", "name": "TLP:AMBER",
        "definition_type": "statement", "definition": {"statement": "amber, by name"}
    }));
    // A cyber-observable whose `modified` is a custom property, not a timestamp, has
    // one version like any observable.
    objects.insert(
        70,
        json!({
            "type": "ipv4-addr", "spec_version": "2.1",
            "id": "ipv4-addr--7d3b1e2c-4f5a-5b6c-8d7e-9f0a1b2c3d4e",
            "value": "203.0.113.9", "modified": "yesterday"
        }),
    );
    let count = objects.len();
    assert!(
        count > 3 * 40,
        "{count} objects make more than three windows"
    );
    rt.block_on(async {
        let publish = |client: &reqwest::Client, base: &str, recipients: &str, body: String| {
            let req = client
                .post(format!("{base}/api/v1/bundles?recipients={recipients}"))
                .header("content-type", "application/json")
                .body(body);
            async move {
                let r = req.send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        };
        let stats = |client: &reqwest::Client, base: &str| {
            let req = client.get(format!("{base}/api/v1/stats"));
            async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
        };
        let (st, a) = publish(&whole_admin, &whole.url, "beta", b.to_string()).await;
        assert_eq!(st, 200, "{a}");
        let (st, w) = publish(&admin, &windowed.url, "beta", b.to_string()).await;
        assert_eq!(st, 200, "{w}");
        let per_object = |r: &Value| -> Vec<(Value, Value, Value)> {
            r["objects"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| (o["id"].clone(), o["status"].clone(), o["tlp"].clone()))
                .collect()
        };
        assert_eq!(per_object(&w), per_object(&a));
        assert_eq!(w["objects"][0]["tlp"], "amber", "{}", w["objects"][0]);
        assert_eq!(w["published"], count);
        for r in [&a, &w] {
            let in_envelopes: u64 = r["envelopes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["objects"].as_u64().unwrap())
                .sum();
            assert_eq!(in_envelopes, count as u64);
        }
        assert!(w["envelopes"].as_array().unwrap().len() > 3);
        let before = stats(&admin, &windowed.url).await;
        let other = stats(&whole_admin, &whole.url).await;
        for k in ["objects", "object_versions", "digests"] {
            assert_eq!(before[k], other[k], "{k}");
        }

        // Repeated: everything is held, nothing is signed again.
        let (st, again) = publish(&admin, &windowed.url, "beta", b.to_string()).await;
        assert_eq!(st, 200, "{again}");
        assert_eq!(again["held"], count);
        assert_eq!(again["envelopes"], json!([]));

        // Each of these fails on the last window, after the first pass has parsed the
        // others: nothing is stored.
        let mut fresh = bundle(&GenOptions {
            count: 150,
            seed: 11,
            origin: "alpha".into(),
            identity: None,
            overlap: 0.3,
            tlp: Some(TlpLevel::Green),
        });
        let last = fresh["objects"].as_array().unwrap().len() - 1;
        let mut invalid = fresh.clone();
        invalid["objects"][last]["id"] = json!("indicator--not-a-uuid");
        let (st, e) = publish(&admin, &windowed.url, "beta", invalid.to_string()).await;
        assert_eq!(
            (st, e["error"].as_str()),
            (422, Some("invalid-stix")),
            "{e}"
        );
        let text = fresh.to_string();
        let dup = text.replacen(
            "\"type\":\"relationship\"",
            "\"type\":\"relationship\",\"type\":\"relationship\"",
            1,
        );
        let mut with_dup = text.clone();
        // The duplicate key goes into the last object.
        if let Some(at) = text.rfind("\"type\":") {
            with_dup = format!("{}\"type\":\"x\",{}", &text[..at], &text[at..]);
        }
        assert_ne!(dup, text);
        let (st, e) = publish(&admin, &windowed.url, "beta", with_dup).await;
        assert_eq!(
            (st, e["error"].as_str()),
            (400, Some("malformed-json")),
            "{e}"
        );
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains("duplicate object key") && message.contains("line 1 column"),
            "{message}"
        );
        fresh["objects"][last]["object_marking_refs"] = json!([TlpLevel::Red.marking_id()]);
        let (st, e) = publish(&admin, &windowed.url, "", fresh.to_string()).await;
        assert_eq!(
            (st, e["error"].as_str()),
            (422, Some("bad-recipients")),
            "{e}"
        );
        let after = stats(&admin, &windowed.url).await;
        for k in ["envelopes", "objects", "object_versions", "digests"] {
            assert_eq!(after[k], before[k], "{k}");
        }

        // TAXII: a post past the window is published a window at a time too.
        let objs = gen_bundle(60, "beta")["objects"].clone();
        let n = objs.as_array().unwrap().len();
        let r = admin
            .post(format!(
                "{}/taxii2/synergia/collections/local/objects/",
                windowed.url
            ))
            .header("Accept", TAXII)
            .header("Content-Type", TAXII)
            .body(json!({"objects": objs}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let st: Value = r.json().await.unwrap();
        assert_eq!(
            (st["success_count"].as_u64(), st["failure_count"].as_u64()),
            (Some(n as u64), Some(0)),
            "{st}"
        );
    });
}
