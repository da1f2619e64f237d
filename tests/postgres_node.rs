//! A node on PostgreSQL (`[store] backend = "postgres"`), through real TLS and HTTP:
//! it answers TAXII as a node on the embedded store does, several `serve` processes
//! share one database, and a database outage is answered 503 and recovered from.

mod common;

use common::pg::PgCluster;
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use synergia::config::{Config, Role};
use synergia::keys::tls::Validity;
use synergia::node::publish::Mode;
use synergia::stix::tlp::TlpLevel;
use synergia::workload::{GenOptions, bundle};

/// `cfg` moved onto database `url`, without peers (these tests are about one
/// member's processes; tests/postgres_federation.rs syncs).
fn on_postgres(mut cfg: Config, url: &str, dir: &Path) -> Config {
    common::pg::use_database(&mut cfg, url, dir);
    cfg.peers.clear();
    cfg
}

fn with_reader(mut cfg: Config) -> Config {
    add_client(&mut cfg, "green-reader", &[Role::Read], TlpLevel::Green);
    cfg
}

/// Later versions of the first `n` indicators of `b`: `modified` moved on by `secs`.
fn revised(b: &Value, n: usize, secs: u32) -> Value {
    let objects: Vec<Value> = b["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] == "indicator")
        .take(n)
        .map(|o| {
            let mut o = o.clone();
            o["modified"] = json!(format!("2026-11-01T00:00:{:02}.000Z", secs % 60));
            o["name"] = json!(format!("revised {secs}"));
            o
        })
        .collect();
    json!({"type": "bundle", "id": format!("bundle--{}", uuid::Uuid::new_v4()), "objects": objects})
}

/// Every page of a TAXII listing, following `next`: (objects or versions, `more`
/// of each page).
async fn all_pages(c: &reqwest::Client, url: &str, key: &str) -> (Vec<Value>, Vec<bool>) {
    let mut out = Vec::new();
    let mut mores = Vec::new();
    let mut next: Option<String> = None;
    for _ in 0..2000 {
        let u = match &next {
            Some(n) => format!("{url}&next={n}"),
            None => url.to_string(),
        };
        let r = c.get(&u).header("Accept", TAXII).send().await.unwrap();
        assert_eq!(r.status(), 200, "{u}");
        let v: Value = r.json().await.unwrap();
        out.extend(v[key].as_array().cloned().unwrap_or_default());
        let more = v["more"].as_bool().unwrap();
        mores.push(more);
        if !more {
            return (out, mores);
        }
        next = Some(v["next"].as_str().unwrap().to_string());
    }
    panic!("more than 2000 pages at {url}");
}

/// What two nodes must agree on in a manifest entry: the id, and the version where
/// it is the object's `modified` (for objects without one it is the node's own
/// `date_added`).
fn manifest_entry(e: &Value, with_modified: &std::collections::HashSet<String>) -> String {
    let id = e["id"].as_str().unwrap();
    if with_modified.contains(id) {
        format!("{id} {}", e["version"].as_str().unwrap())
    } else {
        id.to_string()
    }
}

#[test]
fn taxii_on_postgres_answers_as_the_embedded_store_does() {
    let pg = PgCluster::shared();
    let f = Federation::new(&["groupib", "interpol"], &[]);
    let dir = tempfile::tempdir().unwrap();
    let mut embedded_cfg = with_reader(f.config("groupib"));
    embedded_cfg.peers.clear();
    let mut pg_cfg = on_postgres(
        with_reader(f.config("groupib")),
        &pg.new_database(),
        dir.path(),
    );
    pg_cfg.data_dir = dir.path().join("unused");
    let a = RunningNode::start(embedded_cfg);
    let b = RunningNode::start(pg_cfg);

    // The same publishes, in the same order, on both: every level, red to interpol,
    // then later versions of some objects, and objects published again unchanged.
    let first = bundle(&GenOptions {
        count: 150,
        seed: 7,
        origin: "groupib".into(),
        identity: None,
        overlap: 0.3,
        tlp: None,
    });
    // A run of amber objects longer than a green reader's scan budget at limit=1
    // (50 candidates), then green ones: pages cut by the budget come out alike.
    let at = |count: u64, seed: u64, tlp: TlpLevel| {
        bundle(&GenOptions {
            count,
            seed,
            origin: "groupib".into(),
            identity: None,
            overlap: 0.0,
            tlp: Some(tlp),
        })
    };
    let batches = [
        (first.clone(), Mode::AllOrNothing),
        (revised(&first, 20, 5), Mode::AllOrNothing),
        (revised(&first, 8, 9), Mode::AllOrNothing),
        (first.clone(), Mode::AllOrNothing),
        (at(70, 99, TlpLevel::Amber), Mode::AllOrNothing),
        (at(3, 98, TlpLevel::Green), Mode::AllOrNothing),
    ];
    // Between the fourth and the fifth publish on both nodes: pages from here on
    // start at the amber run.
    let mut cut = String::new();
    let mut whole = (String::new(), String::new());
    for (i, (batch, mode)) in batches.iter().enumerate() {
        if i == 4 {
            std::thread::sleep(Duration::from_millis(5));
            cut = synergia::stix::timestamp::Timestamp::now().to_micros_string();
            std::thread::sleep(Duration::from_millis(5));
        }
        let ra = a
            .node
            .publish(batch.clone(), &["interpol".to_string()], *mode)
            .unwrap();
        let rb = b
            .node
            .publish(batch.clone(), &["interpol".to_string()], *mode)
            .unwrap();
        let (ja, jb) = (
            serde_json::to_value(&ra).unwrap(),
            serde_json::to_value(&rb).unwrap(),
        );
        assert_eq!(ja["published"], jb["published"]);
        assert_eq!(ja["held"], jb["held"], "already-held objects found alike");
        assert_eq!(
            ja["envelopes"].as_array().unwrap().len(),
            jb["envelopes"].as_array().unwrap().len()
        );
        // Each node's second envelope of the first publish: retracted whole below.
        if i == 0 {
            whole = (
                ja["envelopes"][1]["id"].as_str().unwrap().to_string(),
                jb["envelopes"][1]["id"].as_str().unwrap().to_string(),
            );
        }
    }
    let with_modified: std::collections::HashSet<String> = first["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o.get("modified").is_some())
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect();
    let some_id = first["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "indicator")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let rt = rt();
    rt.block_on(async {
        let admin = https_client(&f.ca_path(), Some(&f.admin_identity("groupib")));
        let green = https_client(
            &f.ca_path(),
            Some(&f.client_cert("green-reader", Validity::years_from_now(1))),
        );
        let coll = "/taxii2/synergia/collections";
        let queries = [
            format!("{coll}/consolidated/objects/?limit=7"),
            format!("{coll}/consolidated/objects/?limit=11&match[version]=all"),
            format!("{coll}/consolidated/objects/?limit=5&match[version]=first"),
            format!("{coll}/consolidated/objects/?limit=9&match[version]=first,last"),
            format!("{coll}/consolidated/objects/?limit=6&match[type]=indicator,ipv4-addr"),
            format!("{coll}/consolidated/objects/?limit=50&match[id]={some_id}&match[version]=all"),
            format!("{coll}/consolidated/objects/?limit=8&match[spec_version]=2.1"),
            format!("{coll}/local/objects/?limit=13"),
            format!("{coll}/local/objects/?limit=4&match[version]=first"),
            format!("{coll}/groupib/objects/?limit=10&match[version]=all"),
            format!("{coll}/interpol/objects/?limit=10"),
            format!("{coll}/consolidated/objects/?limit=1&added_after={cut}"),
            format!("{coll}/local/objects/?limit=1&added_after={cut}"),
        ];
        for who in [&admin, &green] {
            for q in &queries {
                let (oa, ma) = all_pages(who, &format!("{}{q}", a.url), "objects").await;
                let (ob, mb) = all_pages(who, &format!("{}{q}", b.url), "objects").await;
                assert_eq!(ma, mb, "the same pages: {q}");
                assert_eq!(oa.len(), ob.len(), "{q}");
                assert_eq!(oa, ob, "the same objects, byte for byte: {q}");
            }
            let q = format!("{coll}/consolidated/manifest/?limit=17&match[version]=all");
            let (ma, pa) = all_pages(who, &format!("{}{q}", a.url), "objects").await;
            let (mb, pb) = all_pages(who, &format!("{}{q}", b.url), "objects").await;
            assert_eq!(pa, pb);
            let ids = |m: &[Value]| -> Vec<String> {
                m.iter()
                    .map(|e| manifest_entry(e, &with_modified))
                    .collect()
            };
            assert_eq!(ids(&ma), ids(&mb), "{q}");
            let q = format!("{coll}/consolidated/objects/{some_id}/versions/?limit=2");
            let (va, _) = all_pages(who, &format!("{}{q}", a.url), "versions").await;
            let (vb, _) = all_pages(who, &format!("{}{q}", b.url), "versions").await;
            assert_eq!(va, vb, "{q}");
            assert_eq!(va.len(), 3, "three versions of {some_id}");
            let one = format!("{coll}/consolidated/objects/{some_id}/");
            let ra = get_json(who, &format!("{}{one}", a.url)).await.1;
            let rb = get_json(who, &format!("{}{one}", b.url)).await.1;
            assert_eq!(ra["objects"], rb["objects"]);
        }
        // The green reader sees less than the administrator, on both.
        let count = |c: &reqwest::Client, base: String| {
            let c = c.clone();
            async move {
                all_pages(
                    &c,
                    &format!("{base}{coll}/consolidated/objects/?limit=1000"),
                    "objects",
                )
                .await
                .0
                .len()
            }
        };
        let (all_a, green_b) = (
            count(&admin, a.url.clone()).await,
            count(&green, b.url.clone()).await,
        );
        assert!(green_b < all_a, "{green_b} < {all_a}");
        let tlp = synergia::stix::tlp::TlpResolver::new();
        for o in all_pages(
            &green,
            &format!("{}{coll}/consolidated/objects/?limit=1000", b.url),
            "objects",
        )
        .await
        .0
        {
            let level = tlp
                .object_level_given(&o, synergia::stix::tlp::own_level(&o))
                .unwrap_or(TlpLevel::Amber);
            assert!(
                level <= TlpLevel::Green,
                "no amber or red object reaches a green reader: {o}"
            );
        }

        // Unknown objects and collections: the same refusals.
        for q in [
            format!("{coll}/consolidated/objects/indicator--00000000-0000-4000-8000-000000000000/"),
            format!("{coll}/nobody/objects/"),
        ] {
            let sa = admin
                .get(format!("{}{q}", a.url))
                .send()
                .await
                .unwrap()
                .status();
            let sb = admin
                .get(format!("{}{q}", b.url))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!((sa.as_u16(), sb.as_u16()), (404, 404), "{q}");
        }
        // A `next` token of one collection is refused in another.
        let r = get_json(
            &admin,
            &format!("{}{coll}/consolidated/objects/?limit=1", b.url),
        )
        .await
        .1;
        let token = r["next"].as_str().unwrap();
        let r = admin
            .get(format!(
                "{}{coll}/local/objects/?limit=1&next={token}",
                b.url
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);

        // The status shows the backend and the same digests as the embedded node.
        let sa = get_json(&admin, &format!("{}/api/v1/stats", a.url)).await.1;
        let sb = get_json(&admin, &format!("{}/api/v1/stats", b.url)).await.1;
        assert_eq!(sb["backend"], "postgres");
        assert_eq!(sa["backend"], "embedded");
        assert_eq!(sa["digests"], sb["digests"]);
        assert_eq!(sa["shared_digests"], sb["shared_digests"]);
        assert_eq!(sa["envelopes"], sb["envelopes"]);
        assert_eq!(sa["origins"], sb["origins"]);
        // Lookups: the same hits, origins and corroboration for every observable
        // published (and for the networks holding them), at each clearance.
        let mut values: Vec<String> = Vec::new();
        let o = GenOptions {
            count: 150,
            seed: 7,
            origin: "groupib".into(),
            identity: None,
            overlap: 0.3,
            tlp: None,
        };
        for i in 0..40 {
            values.push(synergia::workload::observable_value(&o, i).1);
        }
        values.push("203.0.113.0/24".into());
        values.push("10.0.0.0/8".into());
        values.push("not an observable".into());
        let strip = |v: Value| -> Value {
            // Envelope ids, signing and receipt times are each node's own.
            let mut v = v;
            let text = v.to_string();
            for r in v["results"]
                .as_array_mut()
                .unwrap_or_else(|| panic!("{text}"))
            {
                for h in r["hits"].as_array_mut().unwrap() {
                    for p in h["provenance"].as_array_mut().unwrap() {
                        for k in ["envelope_id", "signed_at", "received_at"] {
                            p.as_object_mut().unwrap().remove(k);
                        }
                    }
                }
            }
            v
        };
        for who in [&admin, &green] {
            let body = json!({ "values": values });
            let la: Value = who
                .post(format!("{}/api/v1/lookup", a.url))
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let lb: Value = who
                .post(format!("{}/api/v1/lookup", b.url))
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(
                la["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| !r["hits"].as_array().unwrap().is_empty()),
                "{la}"
            );
            assert_eq!(strip(la), strip(lb), "lookups alike");
        }
        // Exports: the same objects in the same order, the same CSV rows.
        for who in [&admin, &green] {
            for q in [
                "format=stix",
                "format=stix&type=indicator&origin=groupib",
                "format=csv",
                "format=csv&min_corroboration=1&tlp=green",
            ] {
                let ea = who
                    .get(format!("{}/api/v1/export?{q}", a.url))
                    .send()
                    .await
                    .unwrap();
                let eb = who
                    .get(format!("{}/api/v1/export?{q}", b.url))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    (ea.status().as_u16(), eb.status().as_u16()),
                    (200, 200),
                    "{q}"
                );
                let (ta, tb) = (ea.text().await.unwrap(), eb.text().await.unwrap());
                if q.starts_with("format=stix") {
                    let (va, vb): (Value, Value) = (
                        serde_json::from_str(&ta).unwrap(),
                        serde_json::from_str(&tb).unwrap(),
                    );
                    assert!(!va["objects"].as_array().unwrap().is_empty(), "{q}");
                    assert_eq!(va["objects"], vb["objects"], "export {q}");
                } else {
                    assert!(ta.lines().count() > 1, "{q}");
                    assert_eq!(ta, tb, "export {q}");
                }
            }
        }
        // Provenance: every version, who reported it, the same on both.
        let node_local = |v: Value| -> Value {
            let mut v = v;
            for ver in v["versions"].as_array_mut().unwrap() {
                ver.as_object_mut().unwrap().remove("date_added");
                for p in ver["provenance"].as_array_mut().unwrap() {
                    for k in ["envelope_id", "signed_at", "received_at"] {
                        p.as_object_mut().unwrap().remove(k);
                    }
                }
            }
            v
        };
        let mut ids: Vec<&String> = with_modified.iter().collect();
        ids.sort();
        ids.truncate(25);
        // A retraction's own envelope id, signing and receipt times are each node's.
        let retraction_local = |v: Value| -> Value {
            let mut v = v;
            for ver in v["versions"].as_array_mut().unwrap() {
                for r in ver["retracted"].as_array_mut().into_iter().flatten() {
                    for part in ["delivery", "retraction"] {
                        for k in ["envelope_id", "signed_at", "received_at"] {
                            r[part].as_object_mut().unwrap().remove(k);
                        }
                    }
                }
                for r in ver["retracted_by"].as_array_mut().into_iter().flatten() {
                    for k in ["envelope_id", "signed_at", "received_at"] {
                        r.as_object_mut().unwrap().remove(k);
                    }
                }
            }
            v
        };
        for who in [&admin, &green] {
            let mut found = 0;
            for id in ids.iter().copied().chain([&some_id]) {
                let path = format!("/api/v1/objects/{id}/provenance");
                let ra = who.get(format!("{}{path}", a.url)).send().await.unwrap();
                let rb = who.get(format!("{}{path}", b.url)).send().await.unwrap();
                assert_eq!(ra.status(), rb.status(), "{id}");
                if ra.status() == 200 {
                    found += 1;
                    let (pa, pb): (Value, Value) =
                        (ra.json().await.unwrap(), rb.json().await.unwrap());
                    assert_eq!(node_local(pa), node_local(pb), "provenance of {id}");
                }
            }
            assert!(found > 0);
        }
        // Retractions: the same objects and a whole envelope taken back on both;
        // the pages (tombstones in place of what was retracted), provenance and
        // exports stay alike.
        let taken: Vec<&String> = ids.iter().copied().take(4).collect();
        for (base, envelope) in [(&a.url, &whole.0), (&b.url, &whole.1)] {
            let r = admin
                .post(format!("{base}/api/v1/retractions"))
                .json(&json!({"objects": taken, "envelopes": [envelope], "reason": "false-positive", "note": "test"}))
                .send()
                .await
                .unwrap();
            let status = r.status();
            let report: Value = r.json().await.unwrap();
            assert_eq!(status, 200, "{report}");
            assert!(!report["retractions"].as_array().unwrap().is_empty());
        }
        for who in [&admin, &green] {
            for q in [
                format!("{coll}/consolidated/objects/?limit=9"),
                format!("{coll}/consolidated/objects/?limit=11&match[version]=all"),
                format!("{coll}/local/objects/?limit=13&match[version]=first,last"),
                format!("{coll}/consolidated/objects/?limit=9&added_after={cut}"),
            ] {
                // The tombstones of one retraction take their `date_added` in an order
                // of each store's own (node-local values): the same objects, in
                // whichever order.
                let sorted = |mut v: Vec<Value>| {
                    v.sort_by_key(|o| o.to_string());
                    v
                };
                let (oa, _) = all_pages(who, &format!("{}{q}", a.url), "objects").await;
                let (ob, _) = all_pages(who, &format!("{}{q}", b.url), "objects").await;
                assert!(oa.iter().any(|o| o["revoked"] == true), "tombstones served: {q}");
                assert_eq!(sorted(oa), sorted(ob), "after retractions: {q}");
            }
            for id in &taken {
                let path = format!("/api/v1/objects/{id}/provenance");
                let (sa, pa) = get_json(who, &format!("{}{path}", a.url)).await;
                let (sb, pb) = get_json(who, &format!("{}{path}", b.url)).await;
                assert_eq!(sa, sb, "{id}");
                if sa == 200 {
                    let (pa, pb) = (retraction_local(node_local(pa)), retraction_local(node_local(pb)));
                    assert!(pa.to_string().contains("false-positive"), "{pa}");
                    assert_eq!(pa, pb, "provenance of retracted {id}");
                }
            }
            let (_, ea) = get_json(who, &format!("{}/api/v1/export?format=csv", a.url)).await;
            let (_, eb) = get_json(who, &format!("{}/api/v1/export?format=csv", b.url)).await;
            assert_eq!(ea, eb, "CSV export after retractions");
        }
        let sa = get_json(&admin, &format!("{}/api/v1/stats", a.url)).await.1;
        let sb = get_json(&admin, &format!("{}/api/v1/stats", b.url)).await.1;
        assert_eq!(sa["digests"], sb["digests"], "digests after retractions");
        assert_eq!(sa["shared_digests"], sb["shared_digests"]);
        let metrics = admin
            .get(format!("{}/metrics", b.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains(&format!("synergia_store_envelopes {}", sb["envelopes"])),
            "{metrics}"
        );
    });
}

// ----- several processes, kills and outages -----

fn synergia_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_synergia"))
}

/// A member's node on PostgreSQL, run as `synergia serve` processes.
struct PgMember {
    f: Federation,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl PgMember {
    /// groupib on database `url`, without peers.
    fn new(url: &str) -> PgMember {
        PgMember::with_peers(url, false)
    }

    /// groupib on database `url`; with `peers`, interpol is its peer.
    fn with_peers(url: &str, peers: bool) -> PgMember {
        let f = Federation::new(&["groupib", "interpol"], &[]);
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = f.config("groupib");
        common::pg::use_database(&mut cfg, url, dir.path());
        if !peers {
            cfg.peers.clear();
        }
        let config = dir.path().join("groupib-postgres.toml");
        std::fs::write(&config, toml::to_string(&cfg).unwrap()).unwrap();
        PgMember { f, dir, config }
    }

    /// `synergia serve --config … --listen 127.0.0.1:PORT`; its URL.
    fn serve(&self, port: u16) -> (NodeProcess, String) {
        let url = format!("https://127.0.0.1:{port}");
        let mut cmd = std::process::Command::new(synergia_bin());
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config)
            .args(["--listen", &format!("127.0.0.1:{port}")]);
        let log = self.dir.path().join(format!("serve-{port}.log"));
        let p = NodeProcess::spawn_command(cmd, "groupib", &url, &self.f.ca_path(), &log);
        (p, url)
    }

    fn admin(&self) -> reqwest::Client {
        https_client(&self.f.ca_path(), Some(&self.f.admin_identity("groupib")))
    }
}

/// A green bundle of `n` indicators of its own (seed `seed`).
fn green_bundle(n: u64, seed: u64) -> Value {
    bundle(&GenOptions {
        count: n,
        seed,
        origin: "groupib".into(),
        identity: None,
        overlap: 0.0,
        tlp: Some(TlpLevel::Green),
    })
}

fn ids_of(b: &Value) -> Vec<String> {
    b["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every object id the node at `base` serves in its consolidated collection.
async fn served_ids(c: &reqwest::Client, base: &str) -> std::collections::HashSet<String> {
    all_pages(
        c,
        &format!("{base}/taxii2/synergia/collections/consolidated/objects/?limit=1000"),
        "objects",
    )
    .await
    .0
    .iter()
    .map(|o| o["id"].as_str().unwrap().to_string())
    .collect()
}

/// This member's sequence numbers are 1..=n, each used once.
fn assert_seqs_dense(pg: &PgCluster, db: &str) -> u64 {
    let row = pg.psql(
        db,
        "SELECT count(*), count(DISTINCT seq), coalesce(min(seq), 0), coalesce(max(seq), 0)
         FROM envelopes WHERE origin = 'groupib'",
    );
    let v: Vec<u64> = row.split('|').map(|x| x.parse().unwrap()).collect();
    assert_eq!(v[0], v[1], "no sequence number used twice: {row}");
    assert_eq!(
        (v[2], v[3]),
        (1.min(v[0]), v[0]),
        "1..=n without gaps: {row}"
    );
    v[0]
}

fn db_name(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_string()
}

/// Which process (pid) holds the lease on pushing to interpol, if one does.
fn push_holder(pg: &PgCluster, db: &str) -> Option<u32> {
    pg.psql(
        db,
        "SELECT holder FROM push_leases WHERE peer = 'interpol' AND expires_at > now()",
    )
    .lines()
    .find_map(|h| h.split(':').nth(1)?.parse().ok())
}

/// Publishes a green bundle of 30 indicators (seed `seed`) through the process at
/// `base`, which must acknowledge it; the ids of its objects.
async fn publish_green(admin: &reqwest::Client, base: &str, seed: u64) -> Vec<String> {
    let bundle = green_bundle(30, seed);
    let r = admin
        .post(format!("{base}/api/v1/bundles"))
        .json(&bundle)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    ids_of(&bundle)
}

#[test]
fn the_holder_of_a_peers_push_lease_pushes_what_either_process_published() {
    let pg = PgCluster::shared();
    let url = pg.new_database();
    let db = db_name(&url);
    let m = PgMember::with_peers(&url, true);
    // interpol runs at its roster address; groupib's processes do not listen at
    // theirs, so interpol's pulls of groupib fail and what reaches it came by push.
    let interpol = RunningNode::start_at_roster_address(m.f.config("interpol"));
    let roster_port = m.f.config("groupib").listen.address.clone();
    let ports: Vec<u16> = free_ports(3)
        .into_iter()
        .filter(|p| !roster_port.ends_with(&format!(":{p}")))
        .take(2)
        .collect();
    let (mut a, url_a) = m.serve(ports[0]);
    let (mut b, url_b) = m.serve(ports[1]);
    let admin = m.admin();
    let reader = https_client(&m.f.ca_path(), Some(&m.f.admin_identity("interpol")));
    let rt = rt();
    let mut published = std::collections::HashSet::new();
    let holder = rt.block_on(async {
        eventually("one process takes the push lease", 20, async || {
            push_holder(pg, &db).is_some()
        })
        .await;
        // One bundle through each process: the holder pushes both.
        for (i, base) in [&url_a, &url_b].into_iter().enumerate() {
            published.extend(publish_green(&admin, base, 7000 + i as u64).await);
        }
        eventually("interpol holds both publishes", 15, async || {
            served_ids(&reader, &interpol.url).await == published
        })
        .await;
        push_holder(pg, &db).unwrap()
    });
    let state = interpol.node.sync().peer("groupib");
    assert!(
        state.failures.get("unreachable").copied().unwrap_or(0) > 0 || state.last_error.is_some(),
        "interpol's pulls of groupib fail (nothing listens at its roster address): {state:?}"
    );
    assert_eq!(state.cursor, 0, "nothing came by pull: {state:?}");

    // The holder is killed: the other process takes the lease over (it expires 6 s
    // after the last renewal) and pushes what is published from then on.
    let (survivor_url, survivor) = if holder == a.pid().unwrap() {
        a.kill();
        (url_b.clone(), b.pid().unwrap())
    } else {
        assert_eq!(holder, b.pid().unwrap());
        b.kill();
        (url_a.clone(), a.pid().unwrap())
    };
    let killed_at = std::time::Instant::now();
    rt.block_on(async {
        eventually(
            "the surviving process takes the push lease",
            15,
            async || push_holder(pg, &db) == Some(survivor),
        )
        .await;
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "taken over {:?} after the kill",
            killed_at.elapsed()
        );
        published.extend(publish_green(&admin, &survivor_url, 7100).await);
        eventually(
            "interpol holds the publish after the takeover",
            15,
            async || served_ids(&reader, &interpol.url).await == published,
        )
        .await;
    });
    // Every envelope of groupib's log reached interpol, each stored once.
    let envelopes = assert_seqs_dense(pg, &db);
    let state = interpol.node.sync().peer("groupib");
    assert_eq!(state.envelopes_received, envelopes, "{state:?}");
    assert_eq!(state.cursor, 0, "still nothing by pull: {state:?}");
    let duplicates = interpol
        .node
        .metrics()
        .duplicate_envelopes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(duplicates, 0, "one process pushed each envelope, once");
}

#[test]
fn two_serve_processes_share_one_database_and_number_publishes_once() {
    let pg = PgCluster::shared();
    let url = pg.new_database();
    let m = PgMember::new(&url);
    let ports = free_ports(2);
    let (mut a, url_a) = m.serve(ports[0]);
    let (mut b, url_b) = m.serve(ports[1]);
    let rt = rt();
    let admin = m.admin();
    let digests = rt.block_on(async {
        let mut tasks = Vec::new();
        for (k, base) in [&url_a, &url_b].into_iter().enumerate() {
            for i in 0..6u64 {
                let (c, base) = (admin.clone(), base.clone());
                let b = green_bundle(25, 1000 + k as u64 * 100 + i);
                tasks.push(tokio::spawn(async move {
                    let r = c
                        .post(format!("{base}/api/v1/bundles"))
                        .json(&b)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
                    ids_of(&b)
                }));
            }
        }
        let mut published = std::collections::HashSet::new();
        for t in tasks {
            published.extend(t.await.unwrap());
        }
        // Each process serves what the other stored.
        assert_eq!(served_ids(&admin, &url_a).await, published);
        assert_eq!(served_ids(&admin, &url_b).await, published);
        let sa = get_json(&admin, &format!("{url_a}/api/v1/stats")).await.1;
        let sb = get_json(&admin, &format!("{url_b}/api/v1/stats")).await.1;
        assert_eq!(sa["digests"], sb["digests"]);
        assert_eq!(sa["envelopes"], sb["envelopes"]);
        sa["digests"].clone()
    });
    let n = assert_seqs_dense(pg, &db_name(&url));
    assert!(n >= 12, "{n} envelopes for 12 publishes");
    // `synergia rebuild` refuses while the member's processes serve, and changes
    // nothing; the status lists both processes. Once they stopped, it runs at once
    // (a stopping process says so) and finds the same view.
    let rebuild = || {
        std::process::Command::new(synergia_bin())
            .args(["rebuild", "--config"])
            .arg(&m.config)
            .output()
            .unwrap()
    };
    let out = rebuild();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a serve process of this member is running")
            && err.contains("nothing was changed"),
        "{err}"
    );
    rt.block_on(async {
        let (_, stats) = get_json(&admin, &format!("{url_a}/api/v1/stats")).await;
        let listens: Vec<&str> = stats["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["listen"].as_str().unwrap())
            .collect();
        assert_eq!(listens.len(), 2, "{stats}");
    });
    assert!(a.terminate(Duration::from_secs(10)) && b.terminate(Duration::from_secs(10)));
    let out = rebuild();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("{n} envelopes read")) && text.contains(" 0 rejected"),
        "{text}"
    );
    for (level, d) in digests.as_object().unwrap() {
        assert!(
            text.contains(&format!("digest {level:<13} {}", d.as_str().unwrap())),
            "{level}: {text}"
        );
    }
    assert_eq!(assert_seqs_dense(pg, &db_name(&url)), n);
}

#[test]
fn ten_sigkills_of_a_serve_process_lose_no_acknowledged_publish() {
    let pg = PgCluster::shared();
    let url = pg.new_database();
    let m = PgMember::new(&url);
    let ports = free_ports(2);
    let (_b, url_b) = m.serve(ports[1]);
    let rt = rt();
    let admin = m.admin();
    let mut acknowledged = std::collections::HashSet::new();
    let mut refused = 0;
    let mut seed = 5000u64;
    for round in 0..10u64 {
        let (mut a, url_a) = m.serve(ports[0]);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let publisher = {
            let (c, stop, url_a) = (admin.clone(), stop.clone(), url_a.clone());
            let first = seed;
            std::thread::spawn(move || {
                rt_multi().block_on(async move {
                    let mut acked = Vec::new();
                    let mut failed = 0;
                    let mut s = first;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        s += 1;
                        let b = green_bundle(40, s);
                        match c
                            .post(format!("{url_a}/api/v1/bundles"))
                            .json(&b)
                            .send()
                            .await
                        {
                            Ok(r) if r.status() == 200 => {
                                // Acknowledged only once the whole answer arrived.
                                if r.json::<Value>().await.is_ok() {
                                    acked.extend(ids_of(&b));
                                }
                            }
                            _ => failed += 1,
                        }
                    }
                    (acked, failed, s)
                })
            })
        };
        std::thread::sleep(Duration::from_millis(300 + (round * 137) % 700));
        a.kill();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (acked, failed, last) = publisher.join().unwrap();
        acknowledged.extend(acked);
        refused += failed;
        seed = last + 1;
    }
    assert!(
        acknowledged.len() >= 400,
        "{} objects acknowledged",
        acknowledged.len()
    );
    assert!(refused >= 1, "a publish was cut by a kill");
    rt.block_on(async {
        let served = served_ids(&admin, &url_b).await;
        let lost: Vec<&String> = acknowledged
            .iter()
            .filter(|i| !served.contains(*i))
            .collect();
        assert!(
            lost.is_empty(),
            "{} acknowledged objects lost: {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
    });
    assert_seqs_dense(pg, &db_name(&url));
}

fn rt_multi() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_database_outage_is_answered_503_and_the_node_recovers_by_itself() {
    // A cluster of its own: it is stopped and started again.
    let pg = PgCluster::start(None);
    let url = pg.new_database();
    let m = PgMember::new(&url);
    let (_a, base) = m.serve(free_ports(1)[0]);
    let rt = rt();
    let admin = m.admin();
    let publish = |seed: u64| {
        let (c, base) = (admin.clone(), base.clone());
        async move {
            let b = green_bundle(10, seed);
            let r = c
                .post(format!("{base}/api/v1/bundles"))
                .json(&b)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (status, body, ids_of(&b))
        }
    };
    let mut acknowledged = std::collections::HashSet::new();
    rt.block_on(async {
        for s in 0..5 {
            let (st, body, ids) = publish(s).await;
            assert_eq!(st, 200, "{body}");
            acknowledged.extend(ids);
        }
    });
    pg.stop();
    let down = std::time::Instant::now();
    rt.block_on(async {
        let mut refusals = 0;
        let mut s = 100;
        while down.elapsed() < Duration::from_secs(10) {
            s += 1;
            let (st, body, _) = publish(s).await;
            assert_eq!(
                st, 503,
                "nothing is acknowledged while the database is down: {body}"
            );
            assert_eq!(body["error"], "store-unavailable", "{body}");
            refusals += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(refusals >= 2);
        // Reads are refused the same way.
        let r = admin
            .get(format!(
                "{base}/taxii2/synergia/collections/consolidated/objects/"
            ))
            .header("Accept", TAXII)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
    });
    pg.start_again();
    rt.block_on(async {
        // The same process, without a restart, takes publishes again.
        let mut s = 1000;
        let back = std::time::Instant::now();
        loop {
            s += 1;
            let (st, body, ids) = publish(s).await;
            if st == 200 {
                acknowledged.extend(ids);
                break;
            }
            assert_eq!(st, 503, "{body}");
            assert!(
                back.elapsed() < Duration::from_secs(20),
                "not recovered 20 s after the database came back"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for s in 2000..2003 {
            let (st, body, ids) = publish(s).await;
            assert_eq!(st, 200, "{body}");
            acknowledged.extend(ids);
        }
        let served = served_ids(&admin, &base).await;
        assert!(
            acknowledged.iter().all(|i| served.contains(i)),
            "nothing acknowledged is lost"
        );
    });
    assert_seqs_dense(&pg, &db_name(&url));
}

#[test]
fn a_password_in_store_url_or_a_downgradable_sslmode_is_refused_at_start() {
    let f = Federation::new(&["groupib", "interpol"], &[]);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _in = rt.enter();
    for (url, says) in [
        (
            "postgresql://synergia:hunter2@127.0.0.1:1/db",
            "store.url: holds a password",
        ),
        (
            "postgresql://synergia@127.0.0.1:1/db?sslmode=prefer",
            "sslmode=prefer is not one of",
        ),
        ("mysql://synergia@127.0.0.1:1/db", "is not postgresql://"),
    ] {
        let mut cfg = on_postgres(f.config("groupib"), "x", dir.path());
        cfg.store.url = Some(url.into());
        let err = synergia::node::Node::open(cfg).unwrap_err().to_string();
        assert!(err.contains(says), "{err}");
        assert!(
            !err.contains("hunter2"),
            "the password is never echoed: {err}"
        );
    }
}
