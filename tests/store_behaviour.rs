//! One store behaviour suite, run against both store backends: every test here runs
//! once on a node on the embedded store (`embedded::…`) and once on a node on
//! PostgreSQL (`postgres::…`, a throwaway cluster from `common::pg`), through real TLS
//! and HTTP, with real signed envelopes pushed by peers.
//!
//! What the tests say is what either store must do: ingest is idempotent and durable;
//! the owner rule settles conflicting deliveries; versions and `date_added` keep their
//! meaning; provenance names every delivery; the order envelopes arrive in changes
//! nothing; a peer's cursor through the feed sees each envelope once; `synergia
//! rebuild` verifies every envelope again against the roster, and gives back what it
//! set aside once the roster allows it again.
//!
//! The property test in tests/postgres.rs adds random sets of envelopes and
//! retractions, in any order and batching, to the store on PostgreSQL and to the
//! embedded view, and compares them.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use synergia::stix::timestamp::Timestamp;
use synergia::stix::tlp::TlpLevel;

/// Runs each named test on both backends.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $( #[test] fn $name() { super::$name(super::Kind::Embedded) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(super::Kind::Postgres) } )*
        }
    };
}

on_both_backends!(
    ingest_is_idempotent_and_durable,
    the_owner_settles_conflicting_deliveries,
    versions_and_date_added_keep_their_meaning,
    provenance_names_every_delivery,
    arrival_order_changes_nothing,
    a_feed_cursor_sees_each_envelope_once,
    rebuild_verifies_again_and_gives_back_what_it_set_aside,
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Embedded,
    Postgres,
}

const COLL: &str = "/taxii2/synergia/collections/consolidated";

/// Interpol's node on one backend; groupib and kaspersky are its peers (configured,
/// not running: they push by hand here).
struct Subject {
    kind: Kind,
    /// When the federation's keys became valid (µs).
    started: i64,
    fed: std::sync::Arc<Federation>,
    config: PathBuf,
    node: Option<RunningNode>,
    url: String,
    rt: tokio::runtime::Runtime,
    admin: reqwest::Client,
}

impl Subject {
    fn new(kind: Kind) -> Subject {
        let fed = Federation::new(&["groupib", "kaspersky", "interpol"], &[]);
        Subject::of(kind, std::sync::Arc::new(fed), 0)
    }

    /// Another node of interpol's, on a store of its own, in the same federation.
    fn beside(&self) -> Subject {
        Subject::of(self.kind, self.fed.clone(), 1)
    }

    fn of(kind: Kind, fed: std::sync::Arc<Federation>, n: usize) -> Subject {
        let mut cfg = fed.config("interpol");
        cfg.data_dir = fed.dir.path().join(format!("data/interpol-under-test-{n}"));
        if kind == Kind::Postgres {
            let pg = common::pg::PgCluster::shared();
            common::pg::use_database(&mut cfg, &pg.new_database(), fed.dir.path());
        }
        let config = fed
            .dir
            .path()
            .join(format!("config/interpol-under-test-{n}.toml"));
        std::fs::write(&config, toml::to_string(&cfg).unwrap()).unwrap();
        let admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("interpol")));
        let roster = synergia::roster::Roster::load(&cfg.roster).unwrap();
        let started = roster
            .document()
            .members
            .iter()
            .flat_map(|m| &m.keys)
            .map(|k| Timestamp::parse(&k.not_before).unwrap().as_micros())
            .max()
            .unwrap();
        let mut s = Subject {
            kind,
            started,
            fed,
            config,
            node: None,
            url: String::new(),
            rt: rt(),
            admin,
        };
        s.start();
        s
    }

    fn start(&mut self) {
        let cfg = synergia::config::Config::load(&self.config).unwrap();
        let node = RunningNode::start(cfg);
        self.url = node.url.clone();
        self.node = Some(node);
    }

    fn stop(&mut self) {
        self.node = None;
    }

    /// Envelope `seq` of `from` at `tlp` carrying `objects`, signed `ago` (0..=100)
    /// tens of milliseconds before a second past the federation's start: the keys are
    /// valid from that start, and a greater `ago` signs earlier.
    fn envelope(
        &self,
        from: &str,
        seq: u64,
        tlp: TlpLevel,
        ago: i64,
        objects: Vec<Value>,
    ) -> Value {
        let bundle = json!({
            "type": "bundle",
            "id": format!("bundle--{}", uuid::Uuid::new_v4()),
            "objects": objects,
        });
        assert!((0..=100).contains(&ago));
        let at = Timestamp::from_micros(self.started + (100 - ago) * 10_000);
        signed_envelope(&self.fed.signer(from), bundle, seq, tlp, at)
    }

    /// Pushes `envelopes` as `from`: each one's status.
    fn push(&self, from: &str, envelopes: &[Value]) -> Vec<String> {
        let results = self.rt.block_on(push_envelopes(
            &self.fed,
            &self.url,
            from,
            envelopes.to_vec(),
        ));
        results
            .iter()
            .map(|r| match r.get("code").and_then(Value::as_str) {
                Some(code) => format!("{} {code}", r["status"].as_str().unwrap()),
                None => r["status"].as_str().unwrap().to_string(),
            })
            .collect()
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.rt
            .block_on(get_json(&self.admin, &format!("{}{path}", self.url)))
    }

    /// What the store holds, as the status says it: envelopes, versions, objects and
    /// every digest.
    fn held(&self) -> Value {
        let (status, s) = self.get("/api/v1/stats");
        assert_eq!(status, 200, "{s}");
        json!({
            "envelopes": s["envelopes"], "object_versions": s["object_versions"],
            "objects": s["objects"], "digests": s["digests"],
            "shared_digests": s["shared_digests"],
        })
    }

    /// The object as an admin reads it (its latest version), or the status.
    fn object(&self, id: &str) -> Result<Value, u16> {
        match self.get(&format!("{COLL}/objects/{id}/")) {
            (200, v) => Ok(v["objects"][0].clone()),
            (status, _) => Err(status),
        }
    }

    /// Every version of every object, `match[version]=all`, from the manifest:
    /// (id, version, date_added), in the store's order.
    fn manifest(&self, query: &str) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut path = format!("{COLL}/manifest/?match[version]=all&limit=3{query}");
            if let Some(n) = &next {
                path.push_str(&format!("&next={n}"));
            }
            let (status, v) = self.get(&path);
            assert_eq!(status, 200, "{path}: {v}");
            for e in v["objects"].as_array().into_iter().flatten() {
                out.push((
                    e["id"].as_str().unwrap().to_string(),
                    e["version"].as_str().unwrap().to_string(),
                    e["date_added"].as_str().unwrap().to_string(),
                ));
            }
            if v["more"] != true {
                return out;
            }
            next = Some(v["next"].as_str().unwrap().to_string());
        }
    }

    /// `synergia rebuild` on this node's config: exit code, stdout, stderr.
    fn rebuild(&self) -> (Option<i32>, String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_synergia"))
            .args(["rebuild", "--config"])
            .arg(&self.config)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }
}

fn indicator_id(n: u32) -> String {
    format!("indicator--{n:08x}-5a5a-4000-8000-00000000beef")
}

/// Indicator `n` at version `modified` (seconds into 2026-11-01), named `name`.
fn indicator(n: u32, modified: u32, name: &str) -> Value {
    json!({
        "type": "indicator", "spec_version": "2.1", "id": indicator_id(n),
        "created": "2026-11-01T00:00:00.000Z",
        "modified": format!("2026-11-01T00:{:02}:{:02}.000Z", modified / 60, modified % 60),
        "name": name,
        "pattern": format!("[ipv4-addr:value = '198.51.100.{}']", n % 250),
        "pattern_type": "stix", "valid_from": "2026-11-01T00:00:00Z",
    })
}

/// The id of an envelope given as JSON.
fn envelope_id(e: &Value) -> String {
    synergia::envelope::Envelope::from_slice(&serde_json::to_vec(e).unwrap())
        .unwrap()
        .id()
        .to_string()
}

fn version_of(o: &Value) -> String {
    o["modified"].as_str().unwrap().to_string()
}

fn ingest_is_idempotent_and_durable(kind: Kind) {
    let mut s = Subject::new(kind);
    let envs: Vec<Value> = (1..=3)
        .map(|i| {
            s.envelope(
                "groupib",
                i,
                TlpLevel::Green,
                10,
                vec![
                    indicator(i as u32 * 2, 1, "a"),
                    indicator(i as u32 * 2 + 1, 1, "b"),
                ],
            )
        })
        .collect();
    assert_eq!(s.push("groupib", &envs), ["accepted"; 3]);
    let held = s.held();
    assert_eq!(held["envelopes"], 3, "{held}");
    assert_eq!(held["objects"], 6, "{held}");

    // The same again, and one twice within a push: nothing changes.
    let mut again = envs.clone();
    again.push(envs[2].clone());
    assert_eq!(s.push("groupib", &again), ["duplicate"; 4]);
    assert_eq!(s.held(), held);
    // Relayed by another peer: held already.
    assert_eq!(s.push("kaspersky", &envs[..1]), ["duplicate"]);
    assert_eq!(s.held(), held);
    // A new one twice in one push: stored once.
    let fourth = s.envelope(
        "groupib",
        4,
        TlpLevel::Clear,
        5,
        vec![indicator(20, 1, "c")],
    );
    assert_eq!(
        s.push("groupib", &[fourth.clone(), fourth]),
        ["accepted", "duplicate"]
    );
    let held = s.held();
    assert_eq!(held["envelopes"], 4, "{held}");

    // Acknowledged is durable: the same after a restart.
    s.stop();
    s.start();
    assert_eq!(s.held(), held);
    assert!(s.object(&indicator_id(20)).is_ok());
}

fn the_owner_settles_conflicting_deliveries(kind: Kind) {
    let s = Subject::new(kind);
    let x = 100;
    // groupib delivers first: it owns the object.
    let first = s.envelope(
        "groupib",
        1,
        TlpLevel::Green,
        60,
        vec![indicator(x, 10, "groupib v10")],
    );
    // kaspersky, later, a newer version of the same id: held, never the latest.
    let other = s.envelope(
        "kaspersky",
        1,
        TlpLevel::Green,
        30,
        vec![indicator(x, 50, "kaspersky v50")],
    );
    assert_eq!(s.push("groupib", &[first]), ["accepted"]);
    assert_eq!(s.push("kaspersky", &[other]), ["accepted"]);
    let o = s.object(&indicator_id(x)).unwrap();
    assert_eq!(
        o["name"], "groupib v10",
        "another member cannot supersede the owner: {o}"
    );
    // The owner's own newer version is the latest.
    let newer = s.envelope(
        "groupib",
        2,
        TlpLevel::Green,
        20,
        vec![indicator(x, 40, "groupib v40")],
    );
    assert_eq!(s.push("groupib", &[newer]), ["accepted"]);
    assert_eq!(s.object(&indicator_id(x)).unwrap()["name"], "groupib v40");
    // Every version is held, the other member's included.
    let versions: Vec<String> = s
        .manifest(&format!("&match[id]={}", indicator_id(x)))
        .into_iter()
        .map(|(_, v, _)| v)
        .collect();
    assert_eq!(versions.len(), 3, "{versions:?}");
    assert!(
        versions
            .iter()
            .any(|v| v.starts_with("2026-11-01T00:00:50")),
        "{versions:?}"
    );

    // When the earlier delivery arrives last, it still decides: the same on a node
    // that got them the other way round.
    let t = Subject::new(kind);
    let y = 200;
    let early = t.envelope(
        "kaspersky",
        1,
        TlpLevel::Green,
        90,
        vec![indicator(y, 5, "kaspersky v5")],
    );
    let late = t.envelope(
        "groupib",
        1,
        TlpLevel::Green,
        10,
        vec![indicator(y, 30, "groupib v30")],
    );
    assert_eq!(t.push("groupib", &[late]), ["accepted"]);
    assert_eq!(t.object(&indicator_id(y)).unwrap()["name"], "groupib v30");
    assert_eq!(t.push("kaspersky", &[early]), ["accepted"]);
    assert_eq!(
        t.object(&indicator_id(y)).unwrap()["name"],
        "kaspersky v5",
        "the earliest signed delivery makes its origin the owner"
    );
}

fn versions_and_date_added_keep_their_meaning(kind: Kind) {
    let s = Subject::new(kind);
    let x = 300;
    let v1 = s.envelope(
        "groupib",
        1,
        TlpLevel::Clear,
        50,
        vec![indicator(x, 1, "v1"), indicator(x + 1, 1, "other")],
    );
    assert_eq!(s.push("groupib", &[v1]), ["accepted"]);
    let before = s.manifest("");
    assert_eq!(before.len(), 2);
    std::thread::sleep(Duration::from_millis(5));
    let v2 = s.envelope(
        "groupib",
        2,
        TlpLevel::Clear,
        40,
        vec![indicator(x, 2, "v2")],
    );
    // v1 again, unchanged, in a later envelope of another member.
    let v1_again = s.envelope(
        "kaspersky",
        1,
        TlpLevel::Clear,
        30,
        vec![indicator(x, 1, "v1")],
    );
    assert_eq!(s.push("groupib", &[v2]), ["accepted"]);
    assert_eq!(s.push("kaspersky", &[v1_again]), ["accepted"]);

    let all = s.manifest(&format!("&match[id]={}", indicator_id(x)));
    let versions: Vec<&str> = all.iter().map(|(_, v, _)| v.as_str()).collect();
    assert_eq!(
        versions,
        ["2026-11-01T00:00:01.000Z", "2026-11-01T00:00:02.000Z"]
    );
    // A version's date_added is when this node first held it: a delivery of it again
    // does not move it.
    let first_v1 = before
        .iter()
        .find(|(id, _, _)| *id == indicator_id(x))
        .unwrap();
    assert_eq!(all[0].2, first_v1.2);
    // date_added grows with each version this node adds, and added_after selects by it.
    assert!(all[1].2 > all[0].2, "{all:?}");
    let last_before = before.iter().map(|(_, _, d)| d).max().unwrap();
    let after = s.manifest(&format!("&added_after={last_before}"));
    assert_eq!(
        after
            .iter()
            .map(|(id, v, _)| (id.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        [(indicator_id(x).as_str(), "2026-11-01T00:00:02.000Z")]
    );
    // The latest is the newest; first and last select by version.
    assert_eq!(
        version_of(&s.object(&indicator_id(x)).unwrap()),
        "2026-11-01T00:00:02.000Z"
    );
    let (_, first) = s.get(&format!(
        "{COLL}/objects/{}/?match[version]=first",
        indicator_id(x)
    ));
    assert_eq!(version_of(&first["objects"][0]), "2026-11-01T00:00:01.000Z");
    let (_, listed) = s.get(&format!("{COLL}/objects/{}/versions/", indicator_id(x)));
    assert_eq!(
        listed["versions"],
        json!(["2026-11-01T00:00:01.000Z", "2026-11-01T00:00:02.000Z"])
    );
}

fn provenance_names_every_delivery(kind: Kind) {
    let s = Subject::new(kind);
    let x = 400;
    let a = s.envelope(
        "groupib",
        1,
        TlpLevel::Green,
        20,
        vec![indicator(x, 1, "seen")],
    );
    let b = s.envelope(
        "kaspersky",
        1,
        TlpLevel::Clear,
        10,
        vec![indicator(x, 1, "seen")],
    );
    let ids: Vec<String> = [&a, &b].iter().map(|e| envelope_id(e)).collect();
    assert_eq!(s.push("groupib", &[a]), ["accepted"]);
    assert_eq!(s.push("kaspersky", &[b]), ["accepted"]);
    let (status, p) = s.get(&format!("/api/v1/objects/{}/provenance", indicator_id(x)));
    assert_eq!(status, 200, "{p}");
    let versions = p["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "one version, delivered twice: {p}");
    let mut seen: Vec<(String, String)> = versions[0]["provenance"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["origin"].as_str().unwrap().to_string(),
                r["envelope_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("groupib".to_string(), ids[0].clone()),
            ("kaspersky".to_string(), ids[1].clone())
        ]
    );
    // The version's level is the least restrictive of its deliveries (clear), and a
    // lookup counts both origins.
    let (_, l) = s.get(&format!("/api/v1/lookup?value=198.51.100.{}", x % 250));
    assert_eq!(l["results"][0]["corroboration"], 2, "{l}");
    assert_eq!(l["results"][0]["hits"][0]["tlp"], "clear", "{l}");
    // An object nobody delivered: 404.
    assert_eq!(
        s.get(&format!(
            "/api/v1/objects/{}/provenance",
            indicator_id(9999)
        ))
        .0,
        404
    );
}

fn arrival_order_changes_nothing(kind: Kind) {
    let a = Subject::new(kind);
    let b = a.beside();
    // Eight envelopes of two members sharing five objects, at three levels, signed at
    // different times; one node gets them in order, the other in reverse.
    let envs: Vec<(&str, Value)> = (0..8u32)
        .map(|i| {
            let from = if i % 3 == 0 { "kaspersky" } else { "groupib" };
            let tlp = [TlpLevel::Clear, TlpLevel::Green, TlpLevel::Amber][(i % 3) as usize];
            let objects = (0..3)
                .map(|k| indicator(500 + (i + k) % 5, 1 + (i * 7 + k) % 4, &format!("n{i}{k}")))
                .collect();
            (
                from,
                a.envelope(from, u64::from(i) + 1, tlp, 100 - i64::from(i), objects),
            )
        })
        .collect();
    for (from, e) in &envs {
        assert_eq!(a.push(from, std::slice::from_ref(e)), ["accepted"]);
    }
    for (from, e) in envs.iter().rev() {
        assert_eq!(b.push(from, std::slice::from_ref(e)), ["accepted"]);
    }
    assert_eq!(a.held(), b.held(), "digests and counts, bit for bit");
    let served = |s: &Subject| -> Vec<(Value, Value)> {
        (0..5u32)
            .map(|i| {
                let id = indicator_id(500 + i);
                let (_, vs) = s.get(&format!("{COLL}/objects/{id}/versions/"));
                (s.object(&id).unwrap(), vs["versions"].clone())
            })
            .collect()
    };
    assert_eq!(served(&a), served(&b));
}

fn a_feed_cursor_sees_each_envelope_once(kind: Kind) {
    let mut s = Subject::new(kind);
    let envs: Vec<Value> = (1..=5)
        .map(|i| {
            s.envelope(
                "groupib",
                i,
                TlpLevel::Clear,
                10,
                vec![indicator(600 + i as u32, 1, "f")],
            )
        })
        .collect();
    let ids = |es: &[Value]| -> Vec<String> { es.iter().map(envelope_id).collect() };
    assert_eq!(s.push("groupib", &envs), ["accepted"; 5]);
    // kaspersky pages interpol's feed two at a time.
    let page = |s: &Subject, after: &str| -> Value {
        let c = https_client(&s.fed.ca_path(), Some(&s.fed.node_identity("kaspersky")));
        let (status, v) = s.rt.block_on(get_json(
            &c,
            &format!("{}/federation/v1/feed?after={after}&limit=2", s.url),
        ));
        assert_eq!(status, 200, "{v}");
        v
    };
    let read_all = |s: &Subject, from: &str| -> (Vec<String>, String, String) {
        let (mut got, mut cursor, mut epoch) = (Vec::new(), from.to_string(), String::new());
        for _ in 0..20 {
            let v = page(s, &cursor);
            got.extend(ids(v["envelopes"].as_array().unwrap()));
            cursor = v["next"].as_str().unwrap().to_string();
            if !epoch.is_empty() {
                assert_eq!(v["epoch"], epoch.as_str(), "one epoch across pages");
            }
            epoch = v["epoch"].as_str().unwrap().to_string();
            if v["more"] == false {
                return (got, cursor, epoch);
            }
        }
        panic!("the feed did not end");
    };
    let (got, cursor, epoch) = read_all(&s, "0");
    assert_eq!(got, ids(&envs), "each envelope once, in the order stored");
    // From the cursor: nothing, then exactly what came since, also after a restart.
    assert!(
        page(&s, &cursor)["envelopes"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let later: Vec<Value> = (6..=8)
        .map(|i| {
            s.envelope(
                "groupib",
                i,
                TlpLevel::Clear,
                5,
                vec![indicator(600 + i as u32, 1, "f")],
            )
        })
        .collect();
    assert_eq!(s.push("groupib", &later), ["accepted"; 3]);
    s.stop();
    s.start();
    let (got, _, epoch_after) = read_all(&s, &cursor);
    assert_eq!(got, ids(&later));
    assert_eq!(epoch_after, epoch, "a restart keeps the log and its epoch");
    // A cursor past the head is refused, not read as "nothing new".
    let c = https_client(&s.fed.ca_path(), Some(&s.fed.node_identity("kaspersky")));
    let (status, v) = s.rt.block_on(get_json(
        &c,
        &format!("{}/federation/v1/feed?after=1000000", s.url),
    ));
    assert!(status >= 400 || v["more"] == false, "{status} {v}");
}

fn rebuild_verifies_again_and_gives_back_what_it_set_aside(kind: Kind) {
    let mut s = Subject::new(kind);
    let g = s.envelope(
        "groupib",
        1,
        TlpLevel::Green,
        30,
        vec![indicator(700, 1, "g"), indicator(701, 1, "g")],
    );
    let k = s.envelope(
        "kaspersky",
        1,
        TlpLevel::Green,
        20,
        vec![indicator(702, 1, "k")],
    );
    assert_eq!(s.push("groupib", &[g]), ["accepted"]);
    assert_eq!(s.push("kaspersky", std::slice::from_ref(&k)), ["accepted"]);
    let held = s.held();
    let dates = s.manifest("");

    // Not while the node serves.
    let (code, out, err) = s.rebuild();
    assert_ne!(code, Some(0), "{out}{err}");
    assert!(
        err.contains("in use") || err.contains("serve process"),
        "{err}"
    );
    assert_eq!(s.held(), held, "a refused rebuild changes nothing");

    // kaspersky's key revoked: its envelope no longer verifies and leaves the view.
    s.stop();
    let roster_path = synergia::config::Config::load(&s.config).unwrap().roster;
    let original = std::fs::read_to_string(&roster_path).unwrap();
    let mut roster: Value = serde_json::from_str(&original).unwrap();
    for m in roster["members"].as_array_mut().unwrap() {
        if m["name"] == "kaspersky" {
            m["keys"][0]["revoked_at"] = json!("2020-01-01T00:00:00Z");
        }
    }
    std::fs::write(&roster_path, serde_json::to_string_pretty(&roster).unwrap()).unwrap();
    let (code, out, err) = s.rebuild();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("2 envelopes read") && out.contains("1 rejected"),
        "{out}"
    );
    assert!(out.contains("key-revoked"), "{out}");
    std::fs::write(&roster_path, &original).unwrap();
    s.start();
    assert_eq!(s.object(&indicator_id(702)), Err(404));
    assert!(s.object(&indicator_id(700)).is_ok());
    assert_eq!(s.held()["envelopes"], 1);
    // What stayed keeps its date_added.
    let kept: Vec<_> = dates
        .iter()
        .filter(|(id, _, _)| *id != indicator_id(702))
        .cloned()
        .collect();
    assert_eq!(s.manifest(""), kept);

    // On PostgreSQL, a peer brings the set-aside envelope again, which the roster now
    // allows: the database then holds it both in the log and set aside, and a rebuild
    // that rejects it again must still run.
    if kind == Kind::Postgres {
        assert_eq!(s.push("kaspersky", std::slice::from_ref(&k)), ["accepted"]);
        s.stop();
        std::fs::write(&roster_path, serde_json::to_string_pretty(&roster).unwrap()).unwrap();
        let (code, out, err) = s.rebuild();
        assert_eq!(code, Some(0), "{out}{err}");
        assert!(
            out.contains("2 envelopes read") && out.contains("1 rejected"),
            "{out}"
        );
        std::fs::write(&roster_path, &original).unwrap();
        s.start();
    }
    // Newer data while the envelope is set aside.
    let newer = s.envelope(
        "groupib",
        2,
        TlpLevel::Green,
        0,
        vec![indicator(703, 1, "n")],
    );
    assert_eq!(s.push("groupib", &[newer]), ["accepted"]);
    let before_back = s.manifest("");
    let last_before = before_back.iter().map(|(_, _, d)| d.clone()).max().unwrap();
    s.stop();

    // kaspersky's key valid again, groupib's revoked: the next rebuild gives the
    // envelope back while it sets aside those that hold the latest date_added.
    let mut groupib_revoked: Value = serde_json::from_str(&original).unwrap();
    for m in groupib_revoked["members"].as_array_mut().unwrap() {
        if m["name"] == "groupib" {
            m["keys"][0]["revoked_at"] = json!("2020-01-01T00:00:00Z");
        }
    }
    std::fs::write(
        &roster_path,
        serde_json::to_string_pretty(&groupib_revoked).unwrap(),
    )
    .unwrap();
    let (code, out, err) = s.rebuild();
    std::fs::write(&roster_path, &original).unwrap();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("3 envelopes read") && out.contains(" 2 rejected"),
        "{out}"
    );
    s.start();
    assert_eq!(s.held()["envelopes"], 1);
    assert_eq!(s.object(&indicator_id(702)).unwrap()["name"], "k");
    assert_eq!(s.object(&indicator_id(703)), Err(404));
    let back = s.manifest("");
    match kind {
        // The log was remade from its file: the envelope has its first date_added.
        Kind::Embedded => assert_eq!(
            back,
            dates
                .iter()
                .filter(|(id, _, _)| *id == indicator_id(702))
                .cloned()
                .collect::<Vec<_>>()
        ),
        // Given back past every date_added handed out before, those of envelopes
        // this rebuild set aside included, so that a TAXII client whose added_after
        // passed its old one gets it.
        Kind::Postgres => {
            assert_eq!(back.len(), 1);
            assert!(back[0].2 > last_before, "{back:?} after {last_before}");
            let (_, since) = s.get(&format!("{COLL}/objects/?added_after={last_before}"));
            assert_eq!(
                since["objects"][0]["id"],
                indicator_id(702).as_str(),
                "{since}"
            );
        }
    }
    // And the roster as it was: everything is back.
    s.stop();
    let (code, out, err) = s.rebuild();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(" 0 rejected"), "{out}");
    s.start();
    assert_eq!(s.held()["envelopes"], 3);
    assert!(s.object(&indicator_id(703)).is_ok());
}
