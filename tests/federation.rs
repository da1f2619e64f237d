//! Multi-process federation tests: five real `synergia serve` processes of the example
//! federation (`config/`, `keys-example/`) on loopback; the same test again with the
//! coordinator on PostgreSQL behind two `serve` processes, read through either.

#[path = "common/mod.rs"]
mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use synergia::envelope::{Envelope, EnvelopeMeta, Signer};
use synergia::stix::timestamp::Timestamp;
use synergia::stix::tlp::{TlpLevel, TlpResolver};
use synergia::workload::{GenOptions, bundle, observable_value};

const BIN: &str = env!("CARGO_BIN_EXE_synergia");
const VENDORS: [&str; 4] = ["groupib", "trendmicro", "kaspersky", "teamcymru"];

/// Where the coordinator keeps its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coordinator {
    /// One process on the embedded store, as every vendor.
    Embedded,
    /// Two `serve` processes sharing a PostgreSQL database: one at the roster's
    /// address (where peers reach it), one beside it; the tests read through both.
    PostgresTwoProcesses,
}

struct Fed {
    fed: ExampleFederation,
    procs: BTreeMap<String, NodeProcess>,
    /// Interpol's addresses, each of its processes'.
    interpol_urls: Vec<String>,
    /// Which of them the next request to interpol goes to.
    turn: std::sync::atomic::AtomicUsize,
}

impl Fed {
    fn start(coordinator: Coordinator) -> Fed {
        let fed = ExampleFederation::new();
        let mut procs = BTreeMap::new();
        let mut interpol_urls = vec![fed.url("interpol")];
        for m in fed.members.clone() {
            if m == "interpol" && coordinator == Coordinator::PostgresTwoProcesses {
                let pg = common::pg::PgCluster::shared();
                let config = common::pg::example_on_database(&fed, &m, &pg.new_database());
                let roster_port: u16 = fed.url(&m).rsplit(':').next().unwrap().parse().unwrap();
                let beside = free_ports(1)[0];
                procs.insert(
                    m.clone(),
                    common::pg::serve_on(&fed, &m, &config, roster_port),
                );
                procs.insert(
                    format!("{m}-2"),
                    common::pg::serve_on(&fed, &m, &config, beside),
                );
                interpol_urls.push(format!("https://127.0.0.1:{beside}"));
                continue;
            }
            procs.insert(
                m.clone(),
                NodeProcess::start(std::path::Path::new(BIN), &fed, &m),
            );
        }
        Fed {
            fed,
            procs,
            interpol_urls,
            turn: Default::default(),
        }
    }

    /// Where a request to `m` goes: interpol's processes in turn.
    fn base(&self, m: &str) -> String {
        if m == "interpol" {
            let i = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return self.interpol_urls[i % self.interpol_urls.len()].clone();
        }
        self.fed.url(m)
    }

    fn admin(&self, m: &str) -> reqwest::Client {
        https_client(&self.fed.ca_path(), Some(&self.fed.admin(m)))
    }

    async fn get(&self, m: &str, path: &str) -> (u16, Value) {
        let r = self
            .admin(m)
            .get(format!("{}{path}", self.base(m)))
            .send()
            .await
            .unwrap();
        let st = r.status().as_u16();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    async fn publish(&self, m: &str, b: &Value, recipients: &str) -> Value {
        let r = self
            .admin(m)
            .post(format!(
                "{}/api/v1/bundles?recipients={recipients}",
                self.base(m)
            ))
            .json(b)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    async fn versions(&self, m: &str) -> u64 {
        self.get(m, "/api/v1/stats").await.1["object_versions"]
            .as_u64()
            .unwrap()
    }

    /// A node's peers as its operator sees them (`GET /api/v1/peers`), by name.
    async fn peers(&self, m: &str) -> BTreeMap<String, Value> {
        let (status, v) = self.get(m, "/api/v1/peers").await;
        assert_eq!(status, 200, "{v}");
        v["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["peer"].as_str().unwrap().to_string(), p.clone()))
            .collect()
    }

    /// No node has refused anything from any peer. Had an honest node sent what policy
    /// forbids it to send (amber it is not the origin of, red to a non-recipient), the
    /// receiver would have refused it and counted the refusal here: this is the check
    /// on the sending side, which the absence of an object cannot give.
    async fn assert_nothing_refused(&self, when: &str) {
        for m in self.fed.members.clone() {
            for (p, s) in self.peers(&m).await {
                assert_eq!(
                    s["rejected"],
                    json!({}),
                    "{when}: {m} refused envelopes from {p}: {s}"
                );
            }
        }
    }

    /// Envelopes `m` withheld from `peer`, over every level.
    async fn withheld(&self, m: &str, peer: &str) -> BTreeMap<String, u64> {
        let s = self.peers(m).await.remove(peer).unwrap();
        s["withheld"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect()
    }

    async fn shared_digests(&self, m: &str) -> Value {
        self.get(m, "/api/v1/peers").await.1["digests"].clone()
    }

    /// Waits until `f` holds, or fails after `secs`.
    async fn wait_for(&self, what: &str, secs: u64, f: impl AsyncFnMut() -> bool) {
        eventually(what, secs, f).await
    }
}

fn opts(origin: &str, count: u64) -> GenOptions {
    GenOptions {
        count,
        seed: 21,
        origin: origin.into(),
        identity: None,
        overlap: 0.3,
        tlp: None,
    }
}

/// Objects of a bundle a vendor's node shares with everyone (clear/green), given the
/// publisher's default (amber) for unmarked objects.
fn transitive(b: &Value) -> usize {
    transitive_ids(b).len()
}

/// The ids of those objects.
fn transitive_ids(b: &Value) -> BTreeSet<String> {
    let objs = b["objects"].as_array().unwrap();
    let r = TlpResolver::for_objects(objs);
    objs.iter()
        .filter(|o| r.effective_level(o, TlpLevel::Amber).is_transitive())
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every object id of a bundle.
fn ids(b: &Value) -> BTreeSet<String> {
    b["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect()
}

/// What `synergia gen` writes for a vendor (the bundles vendors publish in the demo).
fn gen_bundle(origin: &str, count: u64) -> Value {
    let o = opts(origin, count);
    let out = std::process::Command::new(BIN)
        .args([
            "gen",
            "--count",
            &count.to_string(),
            "--seed",
            &o.seed.to_string(),
            "--origin",
            origin,
            "--overlap",
            &o.overlap.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn five_members_converge_with_policy_restart_and_hostile_peers() {
    five_members_converge(Coordinator::Embedded);
}

/// The same with the coordinator on PostgreSQL behind two processes: every figure an
/// operator reads (peer status, counters, stats) is the member's, whichever process
/// answers.
#[test]
fn five_members_converge_with_the_coordinator_on_postgres_behind_two_processes() {
    five_members_converge(Coordinator::PostgresTwoProcesses);
}

fn five_members_converge(coordinator: Coordinator) {
    let mut f = Fed::start(coordinator);
    let rt = rt();
    rt.block_on(async {
        // Each of the coordinator's processes answers, as one member (a process lists
        // itself within its first beat).
        let backend = match coordinator {
            Coordinator::Embedded => ("embedded", 0),
            Coordinator::PostgresTwoProcesses => ("postgres", 2),
        };
        f.wait_for("each coordinator process to list both", 10, async || {
            let mut all = true;
            for _ in 0..f.interpol_urls.len() {
                let stats = f.get("interpol", "/api/v1/stats").await.1;
                let processes = stats["processes"].as_array().map_or(0, Vec::len);
                all &= (stats["backend"].as_str(), processes) == (Some(backend.0), backend.1);
            }
            all
        })
        .await;
        // 1. Every vendor publishes overlapping indicators.
        let mut bundles = BTreeMap::new();
        for v in VENDORS {
            let b = gen_bundle(v, 500);
            let rep = f.publish(v, &b, "").await;
            assert_eq!(rep["rejected"], 0);
            bundles.insert(v, b);
        }
        let total: u64 = bundles.values().map(|b| b["objects"].as_array().unwrap().len() as u64).sum();
        // The coordinator receives everything: green/clear from all, amber because
        // every vendor lists it for amber.
        f.wait_for("interpol to hold every object", 60, async || f.versions("interpol").await == total).await;
        // Each vendor: its own objects plus the others' clear/green ones.
        for v in VENDORS {
            let expected: u64 = bundles
                .iter()
                .map(|(o, b)| if *o == v { b["objects"].as_array().unwrap().len() as u64 } else { transitive(b) as u64 })
                .sum();
            f.wait_for(&format!("{v} to converge"), 60, async || f.versions(v).await == expected).await;
        }
        // Every node's clear and green digests agree.
        f.wait_for("digests to agree", 30, async || {
            let d0 = f.shared_digests("interpol").await;
            let mut all = true;
            for v in VENDORS {
                all &= f.shared_digests(v).await == d0;
            }
            all
        })
        .await;

        // 1b. Operators see where each peer stands. Once every pull has caught up and
        // the digest checks have run, every node shows each peer reachable, caught up,
        // with agreeing digests and keys and certificates far from expiry.
        let members = f.fed.members.clone();
        f.wait_for("every peer caught up with agreeing digests", 60, async || {
            for m in &members {
                for s in f.peers(m).await.values() {
                    let digests = s["digests_match"].as_object().unwrap();
                    if s["lag_envelopes"] != 0 || digests.len() != 2 || !digests.values().all(|b| *b == true) {
                        return false;
                    }
                }
            }
            true
        })
        .await;
        for m in &members {
            let peers = f.peers(m).await;
            assert_eq!(peers.len(), 4, "{m}: {peers:?}");
            for (p, s) in &peers {
                let ctx = format!("{m} about {p}: {s}");
                assert_eq!(s["reachable"], true, "{ctx}");
                assert!(s["last_attempt"].is_string() && s["last_success"].is_string(), "{ctx}");
                assert_eq!(s["lag_seconds"], 0, "{ctx}");
                assert!(s["cert_expires_in_days"].as_i64().is_some_and(|d| d > 300), "{ctx}");
                assert!(s["signing_key_expires_in_days"].as_i64().is_some_and(|d| d > 300), "{ctx}");
                if VENDORS.contains(&m.as_str()) {
                    // Each vendor sent its own clear/green envelopes to every peer.
                    let (env, obj) = (s["envelopes_sent"].as_u64().unwrap(), s["objects_sent"].as_u64().unwrap());
                    assert!(env > 0 && obj >= env, "{ctx}");
                }
            }
        }
        f.assert_nothing_refused("after convergence").await;
        // Traffic: every envelope a node holds from others reached it in a body some
        // member sent it (the counters add up), and no member sent a peer more than
        // twice the envelopes that peer holds (pushes carry only the sender's own
        // envelopes, feeds list relayed and pushed ones by id, a cursor never goes
        // back). An envelope may go twice: a page asked for in full, by a peer that
        // lacks some of its ids, carries again what was pushed to it (a peer restored
        // from a backup may have lost it), and a relay asked for a full page in the
        // moment before the origin's push arrives sends some envelopes again.
        let mut sent_to: BTreeMap<String, u64> = BTreeMap::new();
        for m in &members {
            for (p, s) in f.peers(m).await {
                let held = f.get(&p, "/api/v1/stats").await.1["envelopes"].as_u64().unwrap();
                let sent = s["envelopes_sent"].as_u64().unwrap();
                assert!(sent <= 2 * held, "{m} sent {p} more than twice what it holds ({held}): {s}");
                *sent_to.entry(p).or_default() += sent;
            }
        }
        for (p, sent) in sent_to {
            let stats = f.get(&p, "/api/v1/stats").await.1;
            let own = stats["origins"].as_array().unwrap().iter().find(|o| o["origin"] == p.as_str()).map_or(0, |o| o["max_seq"].as_u64().unwrap());
            let from_others = stats["envelopes"].as_u64().unwrap() - own;
            assert!(sent >= from_others, "{p} holds {from_others} envelopes from others but was sent {sent}");
        }
        // Each node's consolidated view holds exactly the objects it is allowed: the
        // coordinator every vendor's, a vendor its own and the others' clear/green.
        for m in &members {
            let want: BTreeSet<String> = bundles
                .iter()
                .flat_map(|(o, b)| if *o == m.as_str() || m == "interpol" { ids(b) } else { transitive_ids(b) })
                .collect();
            let (status, export) = f.get(m, "/api/v1/export").await;
            assert_eq!(status, 200, "{export}");
            let got: BTreeSet<String> = export["objects"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_string()).collect();
            assert_eq!(got.len(), export["objects"].as_array().unwrap().len(), "{m}: an object twice");
            assert!(got == want, "{m}: {} missing, {} not allowed", want.difference(&got).count(), got.difference(&want).count());
        }
        // The coordinator took every object exactly once, from some peer.
        let at_coordinator = f.peers("interpol").await;
        let objects_in: u64 = at_coordinator.values().map(|s| s["objects_received"].as_u64().unwrap()).sum();
        assert_eq!(objects_in, total, "{at_coordinator:?}");
        let envelopes_in: u64 = at_coordinator.values().map(|s| s["envelopes_received"].as_u64().unwrap()).sum();
        assert_eq!(json!(envelopes_in), f.get("interpol", "/api/v1/stats").await.1["envelopes"]);
        // What was withheld from whom, by level, is counted for the operator: every
        // vendor's unmarked objects are amber and go to the coordinator only, so the
        // coordinator withholds from each vendor at least the other vendors' amber
        // envelopes, and an origin withholds its own from every peer but the coordinator.
        let has_amber = |v: &str| transitive(&bundles[v]) < bundles[v]["objects"].as_array().unwrap().len();
        for v in VENDORS {
            let others_with_amber = VENDORS.iter().filter(|o| **o != v && has_amber(o)).count() as u64;
            assert!(others_with_amber > 0);
            let w = f.withheld("interpol", v).await;
            assert!(w.get("amber").copied().unwrap_or(0) >= others_with_amber, "interpol withheld from {v}: {w:?}");
            assert!(w.keys().all(|l| l == "amber" || l == "amber+strict"), "{w:?}");
            if has_amber(v) {
                for p in VENDORS.iter().filter(|p| **p != v) {
                    let w = f.withheld(v, p).await;
                    assert!(w.get("amber").copied().unwrap_or(0) >= 1, "{v} withheld from {p}: {w:?}");
                }
                assert_eq!(f.withheld(v, "interpol").await, BTreeMap::new(), "{v} withheld from interpol");
            }
        }

        // 2. Corroboration at the coordinator: shared observables are reported by all
        // four vendors, private ones by one.
        let o = opts("groupib", 500);
        let (mut shared_seen, mut private_seen) = (0, 0);
        for i in 0..60u64 {
            let shared = synergia::workload::is_shared(o.seed, i, o.overlap);
            let (_, value) = observable_value(&o, i);
            let (_, r) = f.get("interpol", &format!("/api/v1/lookup?value={}", urlencode(&value))).await;
            let c = r["results"][0]["corroboration"].as_u64().unwrap();
            assert_eq!(c, if shared { 4 } else { 1 }, "{value}: {r}");
            if shared {
                shared_seen += 1;
            } else {
                private_seen += 1;
            }
        }
        // Both kinds were among those checked (30% overlap).
        assert!(shared_seen >= 5 && private_seen >= 5, "{shared_seen} shared, {private_seen} private");

        // 3. Amber is never forwarded: kaspersky's amber objects are on kaspersky and
        // interpol only.
        let kb = &bundles["kaspersky"];
        let objs = kb["objects"].as_array().unwrap();
        let r = TlpResolver::for_objects(objs);
        let amber_id = objs.iter().find(|o| r.effective_level(o, TlpLevel::Amber) == TlpLevel::Amber).unwrap()["id"].as_str().unwrap().to_string();
        for m in ["kaspersky", "interpol"] {
            assert_eq!(f.get(m, &format!("/api/v1/objects/{amber_id}/provenance")).await.0, 200, "{m}");
        }
        for m in ["groupib", "trendmicro", "teamcymru"] {
            assert_eq!(f.get(m, &format!("/api/v1/objects/{amber_id}/provenance")).await.0, 404, "amber leaked to {m}");
        }

        // 4. Red reaches only its named recipients.
        let red = bundle(&GenOptions { tlp: Some(TlpLevel::Red), ..opts("kaspersky-red", 3) });
        let red_ids: Vec<String> = red["objects"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_string()).collect();
        f.publish("kaspersky", &red, "interpol").await;
        f.wait_for("red at interpol", 30, async || f.get("interpol", &format!("/api/v1/objects/{}/provenance", red_ids[1])).await.0 == 200).await;
        // The other vendors' pulls have gone past the red envelope, at its origin and
        // at its recipient, and both withheld it from them (counted for the operator).
        for m in ["kaspersky", "interpol"] {
            for p in ["groupib", "trendmicro", "teamcymru"] {
                f.wait_for(&format!("{m} to withhold red from {p}"), 30, async || f.withheld(m, p).await.get("red").copied().unwrap_or(0) >= 1).await;
            }
        }
        f.assert_nothing_refused("after the red envelope").await;
        for m in ["groupib", "trendmicro", "teamcymru"] {
            for id in &red_ids {
                assert_eq!(f.get(m, &format!("/api/v1/objects/{id}/provenance")).await.0, 404, "red leaked to {m}");
            }
        }

        // 5. A stopped node catches up after a restart, with no loss and no duplicate,
        // from relays alone: the origin of what it missed is down by then, so every
        // envelope must come through another member's feed (which lists relayed
        // envelopes by id first, and sends them in full when asked again).
        f.procs.get_mut("teamcymru").unwrap().kill();
        let more = bundle(&GenOptions { seed: 77, ..opts("groupib", 200) });
        f.publish("groupib", &more, "").await;
        let more_ids: Vec<String> = more["objects"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_string()).collect();
        f.wait_for("interpol to hold groupib's new objects", 60, async || {
            for id in &more_ids {
                if f.get("interpol", &format!("/api/v1/objects/{id}/provenance")).await.0 != 200 {
                    return false;
                }
            }
            true
        })
        .await;
        f.procs.get_mut("groupib").unwrap().kill();
        f.procs.insert("teamcymru".into(), NodeProcess::start(std::path::Path::new(BIN), &f.fed, "teamcymru"));
        // Object versions, each once: groupib's identity object is in both its
        // bundles, unchanged.
        let version = |o: &Value| format!("{}@{}", o["id"].as_str().unwrap(), o["modified"].as_str().unwrap_or(""));
        let mut expected: BTreeSet<String> = BTreeSet::new();
        for (o, b) in bundles.iter().map(|(o, b)| (*o, b)).chain([("groupib", &more)]) {
            let travels = transitive_ids(b);
            for obj in b["objects"].as_array().unwrap() {
                if o == "teamcymru" || travels.contains(obj["id"].as_str().unwrap()) {
                    expected.insert(version(obj));
                }
            }
        }
        let expected_tc = expected.len() as u64;
        f.wait_for("teamcymru to catch up", 60, async || f.versions("teamcymru").await == expected_tc).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(f.versions("teamcymru").await, expected_tc, "nothing more after catching up");
        // No envelope was taken twice: its evidence log holds one record per envelope.
        f.procs.get_mut("teamcymru").unwrap().kill();
        {
            let store = synergia::store::Store::open(&synergia::config::Config::load(&f.fed.config_path("teamcymru")).unwrap().data_dir, &synergia::store::StoreOptions::default()).unwrap();
            assert_eq!(store.head(), store.read().envelope_count() as u64, "an envelope logged twice");
        }
        f.procs.insert("teamcymru".into(), NodeProcess::start(std::path::Path::new(BIN), &f.fed, "teamcymru"));
        f.procs.insert("groupib".into(), NodeProcess::start(std::path::Path::new(BIN), &f.fed, "groupib"));

        // A feed asked for relayed envelopes as ids (kaspersky's, read as teamcymru)
        // lists other origins' envelopes as null with their id, and its own in full.
        let as_peer = https_client(&f.fed.ca_path(), Some(&f.fed.node_identity("teamcymru")));
        let feed = async |relayed: &str| -> (u16, Value) {
            let r = as_peer.get(format!("{}/federation/v1/feed?after=0&limit=500&relayed={relayed}", f.fed.url("kaspersky"))).send().await.unwrap();
            (r.status().as_u16(), r.json().await.unwrap())
        };
        let (status, ids_page) = feed("ids").await;
        assert_eq!(status, 200, "{ids_page}");
        let (_, full_page) = feed("full").await;
        let (entries, full) = (ids_page["envelopes"].as_array().unwrap(), full_page["envelopes"].as_array().unwrap());
        assert_eq!(ids_page["ids"], full_page["ids"]);
        assert_eq!(entries.len(), full.len());
        let relayed = full.iter().filter(|e| e["origin"] != "kaspersky").count();
        assert!(relayed > 0 && relayed < full.len(), "{relayed} of {}", full.len());
        // The whole feed fits the page; it carries clear and green only (teamcymru is
        // neither listed for kaspersky's amber nor a recipient of its red), and nothing
        // of what was withheld from it, not even a count.
        assert_eq!(full_page["more"], false);
        for e in full {
            assert!(matches!(e["tlp"].as_str(), Some("clear" | "green")), "{} {} sent to teamcymru", e["origin"], e["tlp"]);
        }
        let members: Vec<&str> = full_page.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(members, ["envelopes", "epoch", "head", "ids", "more", "next"], "{members:?}");
        for (e, whole) in entries.iter().zip(full) {
            if whole["origin"] == "kaspersky" {
                assert_eq!(e, whole);
            } else {
                assert!(e.is_null(), "relayed envelope sent in full: {}", whole["origin"]);
            }
        }
        let (status, err) = feed("everything").await;
        assert_eq!((status, err["error"].as_str()), (400, Some("bad-relayed")), "{err}");

        // 6. A hostile peer: groupib's node certificate presents forged, re-signed and
        // not-forwardable envelopes to interpol. Each is refused and counted.
        let hostile = https_client(&f.fed.ca_path(), Some(&f.fed.node_identity("groupib")));
        let kasp_key = synergia::keys::signing::load(&f.fed.dir.path().join("keys-example/kaspersky/signing-kaspersky-2026a.pem")).unwrap();
        let roster = synergia::roster::Roster::load(&f.fed.dir.path().join("keys-example/roster.json")).unwrap();
        let ident = |m: &str| roster.member(m).unwrap().identity.clone();
        let small = bundle(&GenOptions { tlp: Some(TlpLevel::Amber), ..opts("kaspersky-x", 2) });
        let amber = Envelope::sign(small.clone(), &Signer { origin: "kaspersky".into(), origin_identity: ident("kaspersky"), key_id: "kaspersky-2026a".into(), key: kasp_key.clone() }, EnvelopeMeta { seq: 9000, signed_at: Timestamp::now(), tlp: TlpLevel::Amber, recipients: vec![] }).unwrap();
        let groupib_key = synergia::keys::signing::load(&f.fed.dir.path().join("keys-example/groupib/signing-groupib-2026a.pem")).unwrap();
        let resigned = Envelope::sign(small.clone(), &Signer { origin: "kaspersky".into(), origin_identity: ident("kaspersky"), key_id: "kaspersky-2026a".into(), key: groupib_key }, EnvelopeMeta { seq: 9001, signed_at: Timestamp::now(), tlp: TlpLevel::Amber, recipients: vec![] }).unwrap();
        let mut forged = amber.as_json().clone();
        forged["bundle"]["objects"][1]["name"] = json!("tampered");
        let body = json!({"envelopes": [Value::Object(amber.as_json().clone()), Value::Object(resigned.as_json().clone()), Value::Object(forged)]});
        let (versions_before, digests_before) = (f.versions("interpol").await, f.get("interpol", "/api/v1/stats").await.1["digests"].clone());
        let r: Value = hostile.post(format!("{}/federation/v1/envelopes", f.fed.url("interpol"))).json(&body).send().await.unwrap().json().await.unwrap();
        let codes: Vec<&str> = r["results"].as_array().unwrap().iter().map(|x| x["code"].as_str().unwrap_or("")).collect();
        assert_eq!(codes, vec!["forward-not-allowed", "bad-signature", "bad-signature"], "{r}");
        let (_, peers) = f.get("interpol", "/api/v1/peers").await;
        let g = peers["peers"].as_array().unwrap().iter().find(|p| p["peer"] == "groupib").unwrap();
        assert_eq!(g["rejected"]["forward-not-allowed"], 1, "{g}");
        assert_eq!(g["rejected"]["bad-signature"], 2, "{g}");
        // And nothing of them was stored.
        assert_eq!(f.versions("interpol").await, versions_before);
        assert_eq!(f.get("interpol", "/api/v1/stats").await.1["digests"], digests_before);
        // A client certificate is not a peer.
        let r = f.admin("interpol").get(format!("{}/federation/v1/feed", f.fed.url("interpol"))).send().await.unwrap();
        assert_eq!(r.status(), 403);

        // 7. No loops: once converged, traffic stops, and what was sent is bounded.
        let sent = async || {
            let mut n = 0u64;
            for m in f.fed.members.clone() {
                for p in f.get(&m, "/api/v1/peers").await.1["peers"].as_array().unwrap() {
                    n += p["envelopes_sent"].as_u64().unwrap();
                }
            }
            n
        };
        // Peers that backed off while teamcymru was down may still be catching up;
        // traffic must settle (a loop would never stop sending).
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut s1 = sent().await;
        let s2 = loop {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let s2 = sent().await;
            if s2 == s1 {
                break s2;
            }
            assert!(Instant::now() < deadline, "traffic never settles ({s1} then {s2} envelopes sent): a loop");
            s1 = s2;
        };
        let (_, stats) = f.get("interpol", "/api/v1/stats").await;
        let envelopes = stats["envelopes"].as_u64().unwrap();
        println!("FEDERATION-TRAFFIC envelopes_sent={s2} held_at_coordinator={envelopes}");
        assert!(s2 <= envelopes * 5 * 4, "{s2} envelopes sent for {envelopes} held");
    });
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
