//! The example federation with its coordinator on PostgreSQL behind two `serve`
//! processes: the vendors' nodes (embedded) and interpol's converge, each of
//! interpol's peers is pulled by one process at a time, and when the process pulling
//! a peer is SIGKILLed mid-sync the other takes the pull over from the persisted
//! cursor, with no envelope lost or stored twice.

#[path = "common/mod.rs"]
mod common;

use common::pg::PgCluster;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use synergia::stix::tlp::TlpLevel;
use synergia::workload::{GenOptions, bundle};

const BIN: &str = env!("CARGO_BIN_EXE_synergia");
const VENDORS: [&str; 4] = ["groupib", "trendmicro", "kaspersky", "teamcymru"];

fn interpol_on_postgres(fed: &ExampleFederation, url: &str) -> PathBuf {
    common::pg::example_on_database(fed, "interpol", url)
}

fn serve_interpol(fed: &ExampleFederation, config: &Path, port: u16) -> NodeProcess {
    common::pg::serve_on(fed, "interpol", config, port)
}

fn vendor_bundle(origin: &str, count: u64, seed: u64) -> Value {
    bundle(&GenOptions {
        count,
        seed,
        origin: origin.into(),
        identity: None,
        overlap: 0.3,
        tlp: Some(TlpLevel::Green),
    })
}

async fn get(c: &reqwest::Client, url: &str) -> Value {
    let r = c.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.json().await.unwrap()
}

/// Which process (by pid) holds each peer's pull lease now.
fn lease_holders(pg: &PgCluster, db: &str) -> BTreeMap<String, u32> {
    pg.psql(
        db,
        "SELECT peer || ' ' || holder FROM pull_leases WHERE expires_at > now()",
    )
    .lines()
    .filter_map(|l| {
        let (peer, holder) = l.split_once(' ')?;
        let pid = holder.split(':').nth(1)?.parse().ok()?;
        Some((peer.to_string(), pid))
    })
    .collect()
}

#[test]
fn the_coordinator_on_postgres_behind_two_processes_converges_through_a_lease_holder_kill() {
    let pg = PgCluster::shared();
    let url = pg.new_database();
    let db = url.rsplit('/').next().unwrap().to_string();
    let fed = ExampleFederation::new();
    let config = interpol_on_postgres(&fed, &url);
    let mut procs: BTreeMap<String, NodeProcess> = BTreeMap::new();
    for v in VENDORS {
        procs.insert(v.into(), NodeProcess::start(Path::new(BIN), &fed, v));
    }
    // Process A at interpol's roster address (the vendors' peer URL), process B on
    // an address of its own.
    let port_a: u16 = fed
        .url("interpol")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let port_b = free_ports(1)[0];
    let mut a = serve_interpol(&fed, &config, port_a);
    let mut b = serve_interpol(&fed, &config, port_b);
    let (url_a, url_b) = (fed.url("interpol"), format!("https://127.0.0.1:{port_b}"));
    let interpol = https_client(&fed.ca_path(), Some(&fed.admin("interpol")));
    let rt = rt();
    // Every object published (a vendor's identity, in both its bundles, once).
    let mut published: std::collections::BTreeSet<String> = Default::default();
    rt.block_on(async {
        // Each peer is pulled by exactly one of the two processes.
        eventually("every peer's pull lease taken", 20, async || {
            lease_holders(pg, &db).len() == VENDORS.len()
        })
        .await;
        let holders = lease_holders(pg, &db);
        let pids = [a.pid().unwrap(), b.pid().unwrap()];
        assert!(
            holders.values().all(|p| pids.contains(p)),
            "{holders:?} {pids:?}"
        );

        // The vendors publish; interpol's two processes take it all in. Then a
        // second, larger round, during which the process pulling groupib is killed.
        for (count, seed) in [(400, 70), (1500, 170)] {
            for (i, v) in VENDORS.into_iter().enumerate() {
                let bundle = vendor_bundle(v, count, seed + i as u64);
                let c = https_client(&fed.ca_path(), Some(&fed.admin(v)));
                let r = c
                    .post(format!("{}/api/v1/bundles", fed.url(v)))
                    .json(&bundle)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                published.extend(
                    bundle["objects"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|o| o["id"].as_str().unwrap().to_string()),
                );
            }
        }
    });
    let holders = lease_holders(pg, &db);
    let victim = holders["groupib"];
    let killed_a = victim == a.pid().unwrap();
    let killed_at = Instant::now();
    if killed_a {
        a.kill();
    } else {
        b.kill();
    }
    let survivor_pid = if killed_a {
        b.pid().unwrap()
    } else {
        a.pid().unwrap()
    };
    let survivor_url = if killed_a {
        url_b.clone()
    } else {
        url_a.clone()
    };
    rt.block_on(async {
        // The other process takes the pull over within 10 s.
        eventually("groupib's pull taken over", 15, async || {
            lease_holders(pg, &db).get("groupib") == Some(&survivor_pid)
        })
        .await;
        assert!(
            killed_at.elapsed() < Duration::from_secs(12),
            "{:?}",
            killed_at.elapsed()
        );
    });
    // The killed process comes back (A on the vendors' peer URL, its address).
    if killed_a {
        a = serve_interpol(&fed, &config, port_a);
    } else {
        b = serve_interpol(&fed, &config, port_b);
    }
    let total = published.len();
    rt.block_on(async {
        eventually("interpol to hold every vendor's object", 120, async || {
            get(&interpol, &format!("{survivor_url}/api/v1/stats")).await["object_versions"]
                == total
        })
        .await;
        // No envelope lost or stored twice: interpol holds exactly the envelopes the
        // vendors signed, each once.
        let mut signed = 0u64;
        for v in VENDORS {
            let c = https_client(&fed.ca_path(), Some(&fed.admin(v)));
            let s = get(&c, &format!("{}/api/v1/stats", fed.url(v))).await;
            signed += s["origins"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["origin"] == v)
                .unwrap()["max_seq"]
                .as_u64()
                .unwrap();
        }
        let row = pg.psql(
            &db,
            "SELECT count(*) || ' ' || count(DISTINCT id) FROM envelopes",
        );
        assert_eq!(row, format!("{signed} {signed}"));
        // Both processes serve the same view, and every vendor agrees with it.
        let sa = get(&interpol, &format!("{url_a}/api/v1/stats")).await;
        let sb = get(&interpol, &format!("{url_b}/api/v1/stats")).await;
        assert_eq!(sa["digests"], sb["digests"]);
        eventually("the shared digests to agree everywhere", 60, async || {
            let ours = get(&interpol, &format!("{url_a}/api/v1/peers")).await["digests"].clone();
            let mut all = true;
            for v in VENDORS {
                let c = https_client(&fed.ca_path(), Some(&fed.admin(v)));
                all &= get(&c, &format!("{}/api/v1/peers", fed.url(v))).await["digests"] == ours;
            }
            all
        })
        .await;
    });
    drop((a, b, procs));
}
