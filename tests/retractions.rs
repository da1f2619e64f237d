//! Retractions across real processes (protocol §11): a vendor takes back one envelope
//! and one object of the five-member example federation; every node, directly and
//! through a relay, drops them from its view, lookups and exports, serves the revoked
//! version over TAXII (taxii2-client), and the digests agree again; a node that was
//! down applies the retraction when it catches up; forged retractions are refused
//! everywhere; a retraction that arrives before its envelope still wins; a restart and
//! a rebuild keep it applied.

#[path = "common/mod.rs"]
mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use synergia::envelope::{Envelope, EnvelopeId, EnvelopeMeta, Reason, Retraction, Signer};
use synergia::stix::timestamp::Timestamp;
use synergia::stix::tlp::TlpLevel;

const BIN: &str = env!("CARGO_BIN_EXE_synergia");
const MEMBERS: [&str; 5] = [
    "groupib",
    "trendmicro",
    "kaspersky",
    "teamcymru",
    "interpol",
];

/// Removes `b` from `a`'s `[[peers]]` (both ways): the two exchange nothing directly
/// and `a`'s green envelopes reach `b` only through the others' feeds.
fn unlink(fed: &ExampleFederation, a: &str, b: &str) {
    for (m, peer) in [(a, b), (b, a)] {
        let path = fed.config_path(m);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut out = String::new();
        for block in text.split("\n[[").enumerate().map(|(i, s)| {
            if i == 0 {
                s.to_string()
            } else {
                format!("\n[[{s}")
            }
        }) {
            if block.starts_with("\n[[peers]]") && block.contains(&format!("name = \"{peer}\"")) {
                continue;
            }
            out.push_str(&block);
        }
        std::fs::write(&path, out).unwrap();
    }
}

fn signer(fed: &ExampleFederation, m: &str) -> Signer {
    let keys = fed.dir.path().join("keys-example");
    let roster = synergia::roster::Roster::load(&keys.join("roster.json")).unwrap();
    Signer {
        origin: m.into(),
        origin_identity: roster.member(m).unwrap().identity.clone(),
        key_id: format!("{m}-2026a"),
        key: synergia::keys::signing::load(&keys.join(m).join(format!("signing-{m}-2026a.pem")))
            .unwrap(),
    }
}

/// A green indicator naming `ip`.
fn indicator(ip: &str, at: &str) -> Value {
    json!({
        "type": "indicator",
        "spec_version": "2.1",
        "id": format!("indicator--{}", uuid::Uuid::new_v4()),
        "created": at,
        "modified": at,
        "name": format!("C2 server {ip}"),
        "indicator_types": ["malicious-activity"],
        "pattern": format!("[ipv4-addr:value = '{ip}']"),
        "pattern_type": "stix",
        "valid_from": at,
        "object_marking_refs": [TlpLevel::Green.marking_id()]
    })
}

fn bundle(objects: Vec<Value>) -> Value {
    json!({"type": "bundle", "id": format!("bundle--{}", uuid::Uuid::new_v4()), "objects": objects})
}

struct Fed {
    fed: ExampleFederation,
    procs: BTreeMap<String, NodeProcess>,
}

impl Fed {
    fn start(&mut self, m: &str) {
        self.procs
            .insert(m.into(), NodeProcess::start(Path::new(BIN), &self.fed, m));
    }

    fn stop(&mut self, m: &str) {
        let mut p = self.procs.remove(m).unwrap();
        assert!(p.terminate(Duration::from_secs(20)), "{m} did not stop");
    }

    fn running(&self) -> Vec<String> {
        self.procs.keys().cloned().collect()
    }

    fn admin(&self, m: &str) -> reqwest::Client {
        https_client(&self.fed.ca_path(), Some(&self.fed.admin(m)))
    }

    async fn get(&self, m: &str, path: &str) -> (u16, Value) {
        get_json(&self.admin(m), &format!("{}{path}", self.fed.url(m))).await
    }

    async fn post(&self, m: &str, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .admin(m)
            .post(format!("{}{path}", self.fed.url(m)))
            .json(body)
            .send()
            .await
            .unwrap();
        let st = r.status().as_u16();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    /// Ids of the latest objects naming `ip` that `m` shows.
    async fn lookup(&self, m: &str, ip: &str) -> Vec<String> {
        let (st, v) = self.get(m, &format!("/api/v1/lookup?value={ip}")).await;
        assert_eq!(st, 200, "{v}");
        v["results"][0]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_string())
            .collect()
    }

    async fn shared_digests(&self, m: &str) -> Value {
        self.get(m, "/api/v1/peers").await.1["digests"].clone()
    }

    async fn export_ids(&self, m: &str) -> Vec<String> {
        let (st, v) = self.get(m, "/api/v1/export").await;
        assert_eq!(st, 200, "{v}");
        v["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// Pushes envelopes to `to` as member `from`'s node; the per-envelope results.
    async fn push(&self, to: &str, from: &str, envelopes: Vec<Value>) -> Vec<Value> {
        let c = https_client(&self.fed.ca_path(), Some(&self.fed.node_identity(from)));
        let r = c
            .post(format!("{}/federation/v1/envelopes", self.fed.url(to)))
            .json(&json!({"envelopes": envelopes}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "push from {from} to {to}");
        r.json::<Value>().await.unwrap()["results"]
            .as_array()
            .unwrap()
            .clone()
    }

    async fn wait_for(&self, what: &str, secs: u64, f: impl AsyncFnMut() -> bool) {
        eventually(what, secs, f).await
    }

    /// Every running node shows the same clear and green digests.
    async fn digests_agree(&self) -> bool {
        let running = self.running();
        let d0 = self.shared_digests(&running[0]).await;
        for m in &running[1..] {
            if self.shared_digests(m).await != d0 {
                return false;
            }
        }
        true
    }

    fn taxii_check(&self, m: &str, ids: &[&str]) -> Value {
        let keys = self.fed.dir.path().join("keys-example").join(m);
        let out = taxii_client_python()
            .arg(workspace().join("tests/py/taxii_retraction_check.py"))
            .arg(self.fed.url(m))
            .arg(self.fed.ca_path())
            .arg(keys.join("admin.pem"))
            .arg(keys.join("admin-key.pem"))
            .args(ids)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn retraction_envelope(s: &Signer, seq: u64, envelopes: &[&str], reason: Reason) -> Value {
    let r = Retraction {
        envelopes: envelopes
            .iter()
            .map(|e| EnvelopeId::parse(e).unwrap())
            .collect(),
        objects: vec![],
        reason,
        note: "test".into(),
    };
    let meta = EnvelopeMeta {
        seq,
        signed_at: Timestamp::now(),
        tlp: TlpLevel::Green,
        recipients: vec![],
    };
    Value::Object(
        Envelope::sign_retraction(r, s, meta)
            .unwrap()
            .as_json()
            .clone(),
    )
}

#[test]
fn retractions_reach_every_node_in_any_order_and_survive_restarts() {
    let fed = ExampleFederation::new();
    unlink(&fed, "groupib", "teamcymru");
    let mut f = Fed {
        fed,
        procs: BTreeMap::new(),
    };
    for m in MEMBERS {
        f.start(m);
    }
    let rt = rt();
    let at = Timestamp::now().to_millis_string();
    // groupib publishes A (three indicators) and B (two), kaspersky K (one).
    let a_ips = ["198.51.100.1", "198.51.100.2", "198.51.100.3"];
    let b_ips = ["198.51.100.11", "198.51.100.12"];
    let a = bundle(a_ips.iter().map(|ip| indicator(ip, &at)).collect());
    let b = bundle(b_ips.iter().map(|ip| indicator(ip, &at)).collect());
    let k = bundle(vec![indicator("198.51.100.21", &at)]);
    let (env_a, env_b, env_k) = rt.block_on(async {
        let mut ids = Vec::new();
        for (m, bundle) in [("groupib", &a), ("groupib", &b), ("kaspersky", &k)] {
            let (st, rep) = f.post(m, "/api/v1/bundles", bundle).await;
            assert_eq!(st, 200, "{rep}");
            assert_eq!(rep["envelopes"].as_array().unwrap().len(), 1, "{rep}");
            ids.push(rep["envelopes"][0]["id"].as_str().unwrap().to_string());
        }
        (ids[0].clone(), ids[1].clone(), ids[2].clone())
    });
    let a_ids: Vec<String> = a["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().into())
        .collect();
    let b_ids: Vec<String> = b["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().into())
        .collect();
    let b0_version = format!("{}@{}", b_ids[0], at);

    rt.block_on(async {
        for m in MEMBERS {
            for ip in a_ips.iter().chain(&b_ips).chain(&["198.51.100.21"]) {
                f.wait_for(&format!("{m} to hold {ip}"), 60, async || f.lookup(m, ip).await.len() == 1).await;
            }
        }
        f.wait_for("digests to agree", 30, async || f.digests_agree().await).await;

        // The API refuses what it may not sign, and says why; nothing is signed.
        let cases: Vec<(&str, Value, u16, &str)> = vec![
            ("groupib", json!({"envelopes": [env_k], "reason": "false-positive"}), 422, "not-retractable"),
            ("groupib", json!({"envelopes": [format!("sha256:{}", "0".repeat(64))], "reason": "other"}), 422, "not-retractable"),
            ("groupib", json!({"objects": ["indicator--00000000-0000-4000-8000-000000000000"], "reason": "other"}), 422, "not-retractable"),
            ("kaspersky", json!({"objects": [b_ids[1]], "reason": "other"}), 422, "not-retractable"),
            ("groupib", json!({"envelopes": [env_a], "reason": "oops"}), 422, "bad-retraction"),
            ("groupib", json!({"envelopes": [env_a]}), 422, "bad-retraction"),
            ("groupib", json!({"reason": "other"}), 422, "bad-retraction"),
            ("groupib", json!({"envelopes": ["sha256:XYZ"], "reason": "other"}), 422, "bad-retraction"),
            ("groupib", json!({"envelopes": [env_a], "reason": "other", "note": "x".repeat(5000)}), 422, "bad-retraction"),
            ("groupib", json!({"envelopes": [env_a], "reason": "other", "extra": 1}), 422, "bad-retraction"),
        ];
        for (m, body, status, code) in cases {
            let (st, v) = f.post(m, "/api/v1/retractions", &body).await;
            assert_eq!((st, v["error"].as_str().unwrap_or("")), (status, code), "{body}: {v}");
        }
        let r = f
            .admin("groupib")
            .post(format!("{}/api/v1/retractions", f.fed.url("groupib")))
            .body(r#"{"envelopes": [], "envelopes": [], "reason": "other"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "a repeated key is not strict JSON");
        // Without a client identity.
        let anonymous = https_client(&f.fed.ca_path(), None);
        let r = anonymous
            .post(format!("{}/api/v1/retractions", f.fed.url("groupib")))
            .json(&json!({"envelopes": [env_a], "reason": "other"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(f.get("groupib", "/api/v1/stats").await.1["envelopes"], 3, "nothing was signed");
    });

    // The coordinator is down while groupib retracts envelope A and one object of B,
    // with the CLI.
    f.stop("interpol");
    let keys = f.fed.dir.path().join("keys-example/groupib");
    let started = Instant::now();
    let out = std::process::Command::new(BIN)
        .args([
            "retract",
            "--envelope",
            &env_a,
            "--object",
            &b0_version,
            "--reason",
            "false-positive",
            "--note",
            "benign CDN range",
        ])
        .arg("--node")
        .arg(f.fed.url("groupib"))
        .arg("--ca")
        .arg(f.fed.ca_path())
        .arg("--cert")
        .arg(keys.join("admin.pem"))
        .arg("--key")
        .arg(keys.join("admin-key.pem"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("retraction sha256:")
            && stdout.contains("1 envelope(s), 1 object(s), reason false-positive"),
        "{stdout}"
    );

    rt.block_on(async {
        // Within 5 s every running node, teamcymru through a relay, drops them.
        for m in f.running() {
            f.wait_for(&format!("{m} to apply the retraction"), 5, async || {
                let mut gone = true;
                for ip in a_ips.iter().chain(&b_ips[..1]) {
                    gone &= f.lookup(&m, ip).await.is_empty();
                }
                gone
            })
            .await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{:?}",
            started.elapsed()
        );
        for m in f.running() {
            assert_eq!(
                f.lookup(&m, b_ips[1]).await,
                vec![b_ids[1].clone()],
                "{m}: the rest of B stays"
            );
            let exported = f.export_ids(&m).await;
            for id in a_ids.iter().chain(&b_ids[..1]) {
                assert!(!exported.contains(id), "{m} still exports {id}");
            }
            assert!(exported.contains(&b_ids[1]), "{m}");
        }
        f.wait_for("digests to agree after the retraction", 10, async || {
            f.digests_agree().await
        })
        .await;

        // Provenance keeps the original delivery and the retraction side by side.
        let (st, p) = f
            .get(
                "teamcymru",
                &format!("/api/v1/objects/{}/provenance", a_ids[0]),
            )
            .await;
        assert_eq!(st, 200, "{p}");
        let versions = p["versions"].as_array().unwrap();
        assert_eq!(versions.len(), 2, "{p}");
        let original = &versions[0];
        assert_eq!(original["provenance"], json!([]), "{p}");
        assert_eq!(
            original["retracted"][0]["delivery"]["envelope_id"],
            env_a.as_str(),
            "{p}"
        );
        assert_eq!(
            original["retracted"][0]["retraction"]["reason"], "false-positive",
            "{p}"
        );
        assert_eq!(
            original["retracted"][0]["retraction"]["note"], "benign CDN range",
            "{p}"
        );
        assert_eq!(
            original["retracted"][0]["retraction"]["origin"], "groupib",
            "{p}"
        );
        let tombstone = &versions[1];
        assert_eq!(tombstone["revoked"], true, "{p}");
        assert_eq!(tombstone["latest"], true, "{p}");
        assert_eq!(
            tombstone["retracted_by"][0]["reason"], "false-positive",
            "{p}"
        );
    });

    // TAXII clients get a revoked version, directly and through the relay.
    let mut retracted: Vec<&str> = a_ids.iter().map(String::as_str).collect();
    retracted.push(&b_ids[0]);
    let mut ask = retracted.clone();
    ask.push(&b_ids[1]);
    for m in ["kaspersky", "teamcymru"] {
        let seen = f.taxii_check(m, &ask);
        for id in &retracted {
            let s = &seen[*id];
            assert_eq!(s["paged_revoked"], true, "{m} {id}: {s}");
            assert_eq!(s["get_revoked"], json!([true]), "{m} {id}: {s}");
            assert_eq!(s["versions"].as_array().unwrap().len(), 2, "{m} {id}: {s}");
            assert_eq!(s["valid"], true, "{m} {id}: {s}");
            assert!(s["paged_modified"].as_str().unwrap() > at.as_str(), "{s}");
        }
        assert_eq!(seen[&b_ids[1]]["paged_revoked"], false, "{m}: {seen}");
    }

    // The coordinator comes back and applies it as it catches up.
    f.start("interpol");
    rt.block_on(async {
        f.wait_for("interpol to apply the retraction", 30, async || {
            f.lookup("interpol", a_ips[0]).await.is_empty()
                && f.lookup("interpol", b_ips[0]).await.is_empty()
        })
        .await;
        assert_eq!(f.lookup("interpol", b_ips[1]).await.len(), 1);
        f.wait_for("all five digests to agree", 30, async || {
            f.digests_agree().await
        })
        .await;

        // Forged: kaspersky retracts groupib's envelope B; a retraction claiming to be
        // groupib's but signed with kaspersky's key. Refused by every node, counted.
        let kaspersky = signer(&f.fed, "kaspersky");
        let mut impostor = signer(&f.fed, "groupib");
        impostor.key = kaspersky.key.clone();
        let foreign = retraction_envelope(&kaspersky, 900, &[&env_b], Reason::Other);
        let forged = retraction_envelope(&impostor, 900, &[&env_b], Reason::Other);
        for m in MEMBERS.iter().filter(|m| **m != "kaspersky") {
            let r = f.push(m, "kaspersky", vec![foreign.clone()]).await;
            assert_eq!(
                (r[0]["status"].as_str(), r[0]["code"].as_str()),
                (Some("rejected"), Some("foreign-retraction")),
                "{m}: {r:?}"
            );
        }
        for m in MEMBERS.iter().filter(|m| **m != "groupib") {
            // Pushed as trendmicro (or kaspersky to trendmicro): a relay may forward
            // green envelopes of other origins.
            let from = if *m == "trendmicro" {
                "kaspersky"
            } else {
                "trendmicro"
            };
            let r = f.push(m, from, vec![forged.clone()]).await;
            assert_eq!(
                (r[0]["status"].as_str(), r[0]["code"].as_str()),
                (Some("rejected"), Some("bad-signature")),
                "{m}: {r:?}"
            );
        }
        let (_, peers) = f.get("interpol", "/api/v1/peers").await;
        let at_kaspersky = peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["peer"] == "kaspersky")
            .unwrap()
            .clone();
        assert_eq!(
            at_kaspersky["rejected"]["foreign-retraction"], 1,
            "{at_kaspersky}"
        );
        for m in MEMBERS {
            assert_eq!(
                f.lookup(m, b_ips[1]).await.len(),
                1,
                "{m}: envelope B stands"
            );
        }

        // A retraction that arrives before its envelope still wins.
        let groupib = signer(&f.fed, "groupib");
        let c = bundle(vec![indicator(
            "198.51.100.31",
            &Timestamp::now().to_millis_string(),
        )]);
        let env_c = Envelope::sign(
            c,
            &groupib,
            EnvelopeMeta {
                seq: 700,
                signed_at: Timestamp::now(),
                tlp: TlpLevel::Green,
                recipients: vec![],
            },
        )
        .unwrap();
        let c_id = env_c.id().to_string();
        let r_c = retraction_envelope(&groupib, 701, &[&c_id], Reason::TestData);
        let r = f.push("kaspersky", "groupib", vec![r_c.clone()]).await;
        assert_eq!(r[0]["status"], "accepted", "{r:?}");
        let r = f
            .push(
                "kaspersky",
                "groupib",
                vec![Value::Object(env_c.as_json().clone())],
            )
            .await;
        assert_eq!(r[0]["status"], "accepted", "{r:?}");
        assert!(f.lookup("kaspersky", "198.51.100.31").await.is_empty());
        // Signed outside groupib's node, they reach it as a peer's copy of its own
        // (feeds skip a peer's own envelopes), in the same order.
        let r = f
            .push(
                "groupib",
                "kaspersky",
                vec![r_c, Value::Object(env_c.as_json().clone())],
            )
            .await;
        assert!(r.iter().all(|x| x["status"] == "accepted"), "{r:?}");
        // Both spread from kaspersky; every node ends the same.
        for m in MEMBERS {
            f.wait_for(
                &format!("{m} to hold the late envelope and its retraction"),
                30,
                async || {
                    let (_, s) = f.get(m, "/api/v1/stats").await;
                    s["envelopes"].as_u64().unwrap() >= 3 + 1 + 2
                },
            )
            .await;
            assert!(f.lookup(m, "198.51.100.31").await.is_empty(), "{m}");
        }
        f.wait_for("digests to agree with the late envelope", 30, async || {
            f.digests_agree().await
        })
        .await;
    });

    // A restart, then a rebuild from the evidence log: the retractions stay applied.
    let before = rt.block_on(f.shared_digests("kaspersky"));
    f.stop("kaspersky");
    f.start("kaspersky");
    rt.block_on(async {
        assert!(f.lookup("kaspersky", a_ips[0]).await.is_empty());
        assert_eq!(f.shared_digests("kaspersky").await, before);
    });
    f.stop("kaspersky");
    let out = std::process::Command::new(BIN)
        .arg("rebuild")
        .arg("--config")
        .arg(f.fed.config_path("kaspersky"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    f.start("kaspersky");
    rt.block_on(async {
        for ip in a_ips.iter().chain(&b_ips[..1]).chain(&["198.51.100.31"]) {
            assert!(
                f.lookup("kaspersky", ip).await.is_empty(),
                "{ip} after rebuild"
            );
        }
        assert_eq!(f.shared_digests("kaspersky").await, before);
        let (_, metrics) = f.get("kaspersky", "/metrics").await;
        let text = metrics.as_str().unwrap_or_default().to_string();
        assert!(text.contains("synergia_store_retractions 2"), "{text}");
    });
}
