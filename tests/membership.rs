//! The membership log across real processes (protocol §12): five members with
//! threshold 3, each node following its own copy of the log; groupib and trendmicro
//! are not peers of each other (what one learns reaches the other through relays).
//!
//! A proposal with two approvals is refused by every node. A sixth member is added by
//! a proposal three members signed, submitted to one node: every running node takes
//! it within 10 s, and the newcomer publishes and converges with everyone. A member is
//! removed the same way: within 10 s no node lets its certificate in, every node
//! refuses an envelope it signs afterwards (`member-removed`), and its earlier
//! envelopes are still served. A node stopped through both changes catches up from
//! its peers when it comes back. A certificate the log revokes is refused by TLS.
//! Two valid entries at one index (a forged fork) are
//! detected and shown on every node.

#[path = "common/mod.rs"]
mod common;

use common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use synergia::envelope::Signer;
use synergia::keys::tls::CertifiedKey;
use synergia::stix::timestamp::Timestamp;
use synergia::stix::tlp::TlpLevel;

const BIN: &str = env!("CARGO_BIN_EXE_synergia");
const FOUNDERS: [&str; 5] = [
    "groupib",
    "trendmicro",
    "kaspersky",
    "teamcymru",
    "interpol",
];
const NEWCOMER: &str = "afripol";
const GREEN: &str = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da";

fn cli(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn cli_ok(args: &[&str]) -> String {
    let (code, text) = cli(args);
    assert_eq!(code, 0, "synergia {args:?}: {text}");
    text
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A green indicator bundle for one IPv4 address.
fn bundle(ip: &str) -> Value {
    let ns = uuid::Uuid::from_u128(0x0fe7_0000_0000_4000_8000_0000_0000_0026);
    json!({
        "type": "bundle",
        "id": format!("bundle--{}", uuid::Uuid::new_v4()),
        "objects": [{
            "type": "indicator",
            "spec_version": "2.1",
            "id": format!("indicator--{}", uuid::Uuid::new_v5(&ns, ip.as_bytes())),
            "created": "2026-11-01T00:00:00.000Z",
            "modified": "2026-11-01T00:00:00.000Z",
            "pattern": format!("[ipv4-addr:value = '{ip}']"),
            "pattern_type": "stix",
            "valid_from": "2026-11-01T00:00:00Z",
            "object_marking_refs": [GREEN]
        }]
    })
}

struct Fed {
    dir: tempfile::TempDir,
    urls: BTreeMap<String, String>,
    nodes: BTreeMap<String, NodeProcess>,
    http: reqwest::Client,
}

impl Fed {
    /// `keys init-federation` of `founders` with threshold `k`, each on a free port
    /// (and a port set aside for each of `later`).
    fn init(founders: &[&str], later: &[&str], k: u32) -> Fed {
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(founders.len() + later.len());
        let urls: BTreeMap<String, String> = founders
            .iter()
            .chain(later)
            .zip(&ports)
            .map(|(m, port)| (m.to_string(), format!("https://127.0.0.1:{port}")))
            .collect();
        let url_flag = founders
            .iter()
            .map(|m| format!("{m}={}", urls[*m]))
            .collect::<Vec<_>>()
            .join(",");
        let fed_dir = dir.path().join("fed");
        cli_ok(&[
            "keys",
            "init-federation",
            "--members",
            &founders.join(","),
            "--threshold",
            &k.to_string(),
            "--out",
            p(&fed_dir),
            "--url",
            &url_flag,
        ]);
        Fed {
            http: https_client(&fed_dir.join("ca.pem"), None),
            dir,
            urls,
            nodes: BTreeMap::new(),
        }
    }

    fn fed(&self) -> PathBuf {
        self.dir.path().join("fed")
    }

    fn config(&self, m: &str) -> PathBuf {
        self.fed().join("config").join(format!("{m}.toml"))
    }

    fn log(&self, m: &str) -> PathBuf {
        self.fed().join(m).join("membership.jsonl")
    }

    fn ca(&self) -> PathBuf {
        self.fed().join("ca.pem")
    }

    fn token(&self, m: &str) -> String {
        std::fs::read_to_string(self.fed().join(m).join("admin-token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Has `m`'s node follow its own copy of `source` (a membership log file).
    fn follow_log(&self, m: &str, source: &Path) {
        std::fs::copy(source, self.log(m)).unwrap();
        let path = self.config(m);
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replacen(
            "\nroster = ",
            &format!("\nmembership_log = \"../{m}/membership.jsonl\"\nroster = "),
            1,
        );
        std::fs::write(&path, text).unwrap();
    }

    /// `a` and `b` stop being peers of each other (and sync only with the members
    /// their `[[peers]]` list): what one learns reaches the other only through relays.
    fn unlink(&self, a: &str, b: &str) {
        for (m, peer) in [(a, b), (b, a)] {
            let path = self.config(m);
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text.replace("peers_from_roster = true", "peers_from_roster = false");
            let mut out = String::new();
            for (i, block) in text.split("\n[[").enumerate() {
                let block = if i == 0 {
                    block.to_string()
                } else {
                    format!("\n[[{block}")
                };
                if block.starts_with("\n[[peers]]") && block.contains(&format!("name = \"{peer}\""))
                {
                    continue;
                }
                out.push_str(&block);
            }
            std::fs::write(&path, out).unwrap();
        }
    }

    fn start(&mut self, m: &str) {
        let node = NodeProcess::spawn(
            Path::new(BIN),
            m,
            &self.config(m),
            &self.urls[m],
            &self.ca(),
            &self.dir.path().join(format!("{m}.log")),
        );
        self.nodes.insert(m.to_string(), node);
    }

    fn stop(&mut self, m: &str) {
        let mut n = self.nodes.remove(m).unwrap();
        assert!(n.terminate(std::time::Duration::from_secs(20)), "{m} stops");
    }

    fn running(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    /// GET with `m`'s administrator token; tried again once on a connection error
    /// (a pooled connection to a node that was restarted since).
    async fn get(&self, m: &str, path: &str) -> Value {
        let send = || {
            self.http
                .get(format!("{}{path}", self.urls[m]))
                .bearer_auth(self.token(m))
                .send()
        };
        let r = match send().await {
            Ok(r) => r,
            Err(_) => send().await.unwrap(),
        };
        assert_eq!(r.status(), 200, "{m} {path}");
        r.json().await.unwrap()
    }

    async fn publish(&self, m: &str, ip: &str) {
        let r = self
            .http
            .post(format!("{}/api/v1/bundles", self.urls[m]))
            .bearer_auth(self.token(m))
            .json(&bundle(ip))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "{m} publishes {ip}: {}",
            r.text().await.unwrap()
        );
    }

    async fn holds(&self, m: &str, ip: &str) -> bool {
        let v = self.get(m, &format!("/api/v1/lookup?value={ip}")).await;
        v["results"][0]["hits"]
            .as_array()
            .is_some_and(|h| !h.is_empty())
    }

    /// Whether every running node holds an indicator for `ip`.
    async fn everywhere_holds(&self, ip: &str) -> bool {
        for m in self.running() {
            if !self.holds(&m, ip).await {
                return false;
            }
        }
        true
    }

    async fn members(&self, m: &str) -> Vec<String> {
        let v = self.get(m, "/api/v1/stats").await;
        serde_json::from_value(v["roster"]["members"].clone()).unwrap()
    }

    /// `m`'s `/metrics` text.
    async fn metrics(&self, m: &str) -> String {
        self.http
            .get(format!("{}/metrics", self.urls[m]))
            .bearer_auth(self.token(m))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn membership(&self, m: &str) -> Value {
        self.get(m, "/api/v1/membership").await
    }

    /// `synergia roster submit` to `m`'s node: (exit code, output).
    fn submit(&self, proposal: &Path, m: &str) -> (i32, String) {
        let token = self.fed().join(m).join("admin-token");
        cli(&[
            "roster",
            "submit",
            p(proposal),
            "--node",
            &self.urls[m],
            "--ca",
            p(&self.ca()),
            "--token-file",
            p(&token),
        ])
    }

    /// A proposal of `change` (CLI flags) by `by[0]`, approved by the others.
    fn proposal(&self, name: &str, change: &[&str], by: &[&str]) -> PathBuf {
        let out = self.dir.path().join(format!("{name}.json"));
        let (config, log) = (self.config(by[0]), self.log(by[0]));
        let mut args = vec![
            "roster",
            "propose",
            "--config",
            p(&config),
            "--log",
            p(&log),
            "--out",
            p(&out),
        ];
        args.extend_from_slice(change);
        cli_ok(&args);
        for m in &by[1..] {
            cli_ok(&["roster", "sign", p(&out), "--config", p(&self.config(m))]);
        }
        out
    }

    /// `m`'s certificate and key `NAME.pem`, `NAME-key.pem` (`node`, `admin`, …).
    fn identity(&self, m: &str, name: &str) -> CertifiedKey {
        let read = |f: String| std::fs::read_to_string(self.fed().join(m).join(f)).unwrap();
        CertifiedKey {
            cert_pem: read(format!("{name}.pem")),
            key_pem: read(format!("{name}-key.pem")),
        }
    }

    fn node_identity(&self, m: &str) -> CertifiedKey {
        self.identity(m, "node")
    }

    /// Whether a request with `m`'s node certificate to `to` completes.
    async fn lets_in(&self, to: &str, m: &str) -> bool {
        let c = https_client(&self.ca(), Some(&self.node_identity(m)));
        match c
            .get(format!("{}/federation/v1/digest", self.urls[to]))
            .send()
            .await
        {
            Ok(r) => r.status() == 200,
            Err(_) => false,
        }
    }

    /// A raw TLS connection to `to` with `m`'s node certificate, one request sent
    /// and answered on it (kept alive); `None` when the handshake or the answer fails.
    async fn open_connection(
        &self,
        to: &str,
        m: &str,
    ) -> Option<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        use rustls::pki_types::ServerName;
        let cc = rustls_client_config(&self.ca(), Some(&self.node_identity(m)));
        let addr = self.urls[to].trim_start_matches("https://").to_string();
        let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
        let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cc))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .ok()?;
        answer(&mut tls).await.map(|_| tls)
    }

    fn signer(&self, m: &str) -> Signer {
        let cfg = synergia::config::Config::load(&self.config(m)).unwrap();
        let roster = synergia::roster::Roster::load(&self.fed().join("roster.json")).unwrap();
        Signer {
            origin: m.into(),
            origin_identity: roster.member(m).unwrap().identity.clone(),
            key_id: cfg.signing.key_id.clone(),
            key: synergia::keys::signing::load(&cfg.signing.key_file).unwrap(),
        }
    }

    /// Pushes `envelope` to `to` as `from`'s node (a relay): the result's code.
    async fn push_as(&self, to: &str, from: &str, envelope: &Value) -> Value {
        let c = https_client(&self.ca(), Some(&self.node_identity(from)));
        let r = c
            .post(format!("{}/federation/v1/envelopes", self.urls[to]))
            .json(&json!({"envelopes": [envelope]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "push from {from} to {to}");
        r.json::<Value>().await.unwrap()["results"][0].clone()
    }
}

/// Sends `GET /healthz` on a kept-alive connection and reads the answer's head;
/// `None` when the connection fails or closes instead.
async fn answer(
    tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> Option<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), tls.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.starts_with("HTTP/1.1 ").then_some(text)
}

#[test]
fn members_join_and_leave_by_threshold_approval_and_every_node_follows() {
    let mut f = Fed::init(&FOUNDERS, &[NEWCOMER], 3);
    let genesis = f.fed().join("membership.jsonl");
    // trendmicro learns what is submitted to groupib only through relays.
    f.unlink("groupib", "trendmicro");
    for m in FOUNDERS {
        f.follow_log(m, &genesis);
        f.start(m);
    }
    let rt = rt();
    rt.block_on(async {
        // teamcymru publishes before it is removed; everyone gets it.
        f.publish("teamcymru", "203.0.113.7").await;
        eventually("teamcymru's indicator everywhere", 20, async || {
            f.everywhere_holds("203.0.113.7").await
        })
        .await;

        // The newcomer's keys and certificate, from the federation CA.
        cli_ok(&[
            "keys",
            "add-member",
            "--dir",
            p(&f.fed()),
            "--member",
            NEWCOMER,
            "--url",
            &f.urls[NEWCOMER],
        ]);
        let entry = f.fed().join(NEWCOMER).join("member.json");
        let add_flag = ["--add-member", p(&entry)];
        // Two approvals of three: refused by every node, nothing changes.
        let short = f.proposal("add-short", &add_flag, &["groupib", "kaspersky"]);
        for m in f.running() {
            let (code, out) = f.submit(&short, &m);
            assert_eq!(code, 1, "{m}: {out}");
            assert!(out.contains("[too-few-signatures]"), "{m}: {out}");
            assert_eq!(f.membership(&m).await["head"]["index"], 0, "{m}");
        }

        // interpol is down through both changes.
        f.stop("interpol");
        let add = f.proposal("add", &add_flag, &["groupib", "kaspersky", "trendmicro"]);
        let out = f.submit(&add, "groupib");
        assert_eq!(out.0, 0, "{}", out.1);
        assert!(out.1.contains("appended"), "{}", out.1);
        let t0 = std::time::Instant::now();
        eventually("every running node takes the newcomer", 10, async || {
            for m in f.running() {
                if !f.members(&m).await.contains(&NEWCOMER.to_string()) {
                    return false;
                }
            }
            true
        })
        .await;
        eprintln!("newcomer taken everywhere in {:?}", t0.elapsed());
        // Submitting it again elsewhere: held already.
        let out = f.submit(&add, "trendmicro");
        assert_eq!(out.0, 0, "{}", out.1);
        assert!(out.1.contains("held"), "{}", out.1);

        // The newcomer starts from the log as it is now, publishes and converges.
        f.follow_log(NEWCOMER, &f.log("groupib"));
        f.start(NEWCOMER);
        f.publish(NEWCOMER, "198.51.100.26").await;
        eventually("the newcomer's indicator everywhere", 20, async || {
            f.everywhere_holds("198.51.100.26").await
        })
        .await;
        eventually(
            "the newcomer holds teamcymru's earlier indicator",
            20,
            async || f.holds(NEWCOMER, "203.0.113.7").await,
        )
        .await;
        eventually("the running nodes' shared digests agree", 20, async || {
            let mut digests = Vec::new();
            for m in f.running() {
                digests.push(f.get(&m, "/api/v1/peers").await["digests"].clone());
            }
            digests.windows(2).all(|w| w[0] == w[1])
        })
        .await;

        // teamcymru is removed: approved by the newcomer too, submitted elsewhere.
        // Its connections opened before are closed.
        assert!(f.lets_in("kaspersky", "teamcymru").await);
        let mut open = Vec::new();
        for m in f.running().into_iter().filter(|m| m != "teamcymru") {
            let c = f.open_connection(&m, "teamcymru").await;
            open.push((m, c.expect("teamcymru connects before its removal")));
        }
        let remove = f.proposal(
            "remove",
            &["--remove-member", "teamcymru"],
            &["kaspersky", NEWCOMER, "groupib"],
        );
        let out = f.submit(&remove, "kaspersky");
        assert_eq!(out.0, 0, "{}", out.1);
        let t0 = std::time::Instant::now();
        let others: Vec<String> = f
            .running()
            .into_iter()
            .filter(|m| m != "teamcymru")
            .collect();
        eventually("no running node lets teamcymru in", 10, async || {
            for m in &others {
                if f.lets_in(m, "teamcymru").await {
                    return false;
                }
            }
            true
        })
        .await;
        eprintln!("teamcymru shut out everywhere in {:?}", t0.elapsed());
        // Shut out at the handshake, not only per request (a request would get a
        // 403 answer): a new TLS connection with its certificate gets no answer, and
        // the connections it held are closed.
        for (m, mut c) in open {
            assert_eq!(
                answer(&mut c).await,
                None,
                "{m}: an open connection still answers"
            );
        }
        for m in &others {
            assert!(f.open_connection(m, "teamcymru").await.is_none(), "{m}");
            assert!(!f.lets_in(m, "teamcymru").await, "{m}");
            let v = f.membership(m).await;
            assert_eq!(v["former_members"][0]["name"], "teamcymru", "{m}: {v}");
            assert!(
                !f.members(m).await.contains(&"teamcymru".to_string()),
                "{m}"
            );
        }
        // What it signs now is refused everywhere, for good; what it signed before
        // is still served.
        let late = signed_envelope(
            &f.signer("teamcymru"),
            bundle("203.0.113.99"),
            1000,
            TlpLevel::Green,
            Timestamp::now(),
        );
        for m in &others {
            // Relayed by a peer of `m` (groupib and trendmicro are not peers).
            let relay = if m == "groupib" || m == "trendmicro" {
                "kaspersky"
            } else {
                "groupib"
            };
            let r = f.push_as(m, relay, &late).await;
            assert_eq!(r["status"], "rejected", "{m}: {r}");
            assert_eq!(r["code"], "member-removed", "{m}: {r}");
            assert!(f.holds(m, "203.0.113.7").await, "{m}");
            assert!(!f.holds(m, "203.0.113.99").await, "{m}");
        }

        // The former member's collection is still served, with what it published
        // while a member.
        let r = f
            .http
            .get(format!(
                "{}/taxii2/synergia/collections/teamcymru/objects/",
                f.urls["kaspersky"]
            ))
            .bearer_auth(f.token("kaspersky"))
            .header("accept", "application/taxii+json;version=2.1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let page: Value = r.json().await.unwrap();
        assert_eq!(
            page["objects"][0]["id"],
            bundle("203.0.113.7")["objects"][0]["id"],
            "{page}"
        );

        // interpol comes back and catches up from its peers: both entries, the
        // newcomer's indicator, teamcymru shut out.
        f.start("interpol");
        eventually("interpol catches up with the log", 20, async || {
            f.membership("interpol").await["head"]["index"] == 2
        })
        .await;
        eventually("interpol holds the newcomer's indicator", 20, async || {
            f.holds("interpol", "198.51.100.26").await
        })
        .await;
        assert!(!f.lets_in("interpol", "teamcymru").await);
        let r = f.push_as("interpol", "groupib", &late).await;
        assert_eq!(r["code"], "member-removed", "{r}");
        assert!(f.holds("interpol", "203.0.113.7").await);
        let heads: Vec<Value> = {
            let mut v = Vec::new();
            for m in f.running() {
                if m != "teamcymru" {
                    v.push(f.membership(&m).await["head"].clone());
                }
            }
            v
        };
        assert!(heads.windows(2).all(|w| w[0] == w[1]), "{heads:?}");
        f.stop("teamcymru");

        // A certificate revoked by the log (kaspersky's admin client, by serial) is
        // refused by TLS from then on; the same client's bearer token still works.
        let admin = f.identity("kaspersky", "admin");
        let der =
            rustls::pki_types::pem::PemObject::from_pem_slice(admin.cert_pem.as_bytes()).unwrap();
        let (serial, _) = synergia::tls::cert_ids(&der).unwrap();
        let as_admin = https_client(&f.ca(), Some(&admin));
        let stats = format!("{}/api/v1/stats", f.urls["kaspersky"]);
        assert_eq!(as_admin.get(&stats).send().await.unwrap().status(), 200);
        let revoke = f.proposal(
            "revoke-cert",
            &["--revoke-cert-serial", &serial],
            &["kaspersky", "groupib", "interpol"],
        );
        assert_eq!(f.submit(&revoke, "interpol").0, 0);
        eventually(
            "kaspersky refuses its revoked admin certificate",
            10,
            async || {
                https_client(&f.ca(), Some(&admin))
                    .get(&stats)
                    .send()
                    .await
                    .is_err()
            },
        )
        .await;
        assert_eq!(f.membership("kaspersky").await["head"]["index"], 3);
        assert!(f.holds("kaspersky", "203.0.113.7").await);

        // A forged fork: two entries at index 4, each approved by three members,
        // submitted to two nodes at once.
        let a = f.proposal(
            "fork-a",
            &["--set-threshold", "2"],
            &["groupib", "trendmicro", "kaspersky"],
        );
        let b = f.proposal(
            "fork-b",
            &["--set-threshold", "4"],
            &["interpol", NEWCOMER, "kaspersky"],
        );
        let (ra, rb) = std::thread::scope(|s| {
            let ha = s.spawn(|| f.submit(&a, "groupib"));
            let hb = s.spawn(|| f.submit(&b, "interpol"));
            (ha.join().unwrap(), hb.join().unwrap())
        });
        assert_eq!(ra.0, 0, "{}", ra.1);
        assert_eq!(rb.0, 0, "{}", rb.1);
        let t0 = std::time::Instant::now();
        eventually("every node shows the fork", 15, async || {
            for m in f.running() {
                let v = f.membership(&m).await;
                if v["forks"].as_array().is_none_or(|x| x.is_empty()) {
                    return false;
                }
            }
            true
        })
        .await;
        eprintln!("fork shown everywhere in {:?}", t0.elapsed());
        for m in f.running() {
            let v = f.membership(&m).await;
            let fork = &v["forks"][0];
            assert_eq!(fork["index"], 4, "{m}: {v}");
            assert_ne!(fork["held"]["hash"], fork["other"]["hash"], "{m}: {v}");
            assert_eq!(
                fork["held"]["signers"].as_array().unwrap().len(),
                3,
                "{m}: {v}"
            );
            // The state stays at the first of the two it took; nothing further is taken.
            assert_eq!(v["head"]["index"], 4, "{m}: {v}");
            let metrics = f.metrics(&m).await;
            assert!(
                metrics.contains("synergia_membership_forks 1"),
                "{m}: {metrics}"
            );
            let status = cli_ok(&[
                "status",
                "--node",
                &f.urls[&m],
                "--ca",
                p(&f.ca()),
                "--token-file",
                p(&f.fed().join(&m).join("admin-token")),
            ]);
            assert!(status.contains("FORK at entry 4"), "{m}: {status}");
        }
        let next = f.proposal(
            "after-fork",
            &["--set-url", &format!("kaspersky={}", f.urls["kaspersky"])],
            &["groupib", "trendmicro", "kaspersky"],
        );
        let (code, out) = f.submit(&next, "groupib");
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("[membership-fork]"), "{out}");

        // Resolved as operations.md says: the chosen entry is groupib's; every node
        // lists the other in its log's `.rejected` file; the nodes that hold the
        // other restart on a copy of groupib's log.
        let chosen = f.membership("groupib").await["head"]["hash"].clone();
        let other = f.membership("groupib").await["forks"][0]["other"]["hash"]
            .as_str()
            .unwrap()
            .to_string();
        let mut on_other_side = Vec::new();
        for m in f.running() {
            let mut rejected = f.log(&m).into_os_string();
            rejected.push(".rejected");
            std::fs::write(
                &rejected,
                format!("# fork at entry 4\n{other}  # not ours\n"),
            )
            .unwrap();
            if f.membership(&m).await["head"]["hash"] != chosen {
                on_other_side.push(m);
            }
        }
        assert!(!on_other_side.is_empty());
        for m in &on_other_side {
            f.stop(m);
            std::fs::copy(f.log("groupib"), f.log(m)).unwrap();
            f.start(m);
        }
        eventually(
            "every node forgets the fork and holds the chosen entry",
            15,
            async || {
                for m in f.running() {
                    let v = f.membership(&m).await;
                    if v["forks"] != json!([]) || v["head"]["hash"] != chosen {
                        return false;
                    }
                }
                true
            },
        )
        .await;
        // The next change goes through, everywhere.
        let (code, out) = f.submit(&next, "groupib");
        assert_eq!(code, 0, "{out}");
        eventually(
            "every node takes the change after the fork",
            15,
            async || {
                for m in f.running() {
                    if f.membership(&m).await["head"]["index"] != 5 {
                        return false;
                    }
                }
                true
            },
        )
        .await;
    });
}

/// A fake `cc`: a real mutual-TLS server with cc's node certificate that states a
/// membership head it does not hold and serves forged logs: another genesis on one
/// request, the real genesis and a forged entry 1 on the next. The head it states
/// changes at every digest poll, unless `constant` is set.
async fn serve_forged_log(
    listener: tokio::net::TcpListener,
    tls: std::sync::Arc<rustls::ServerConfig>,
    logs: [Vec<Value>; 2],
    served: std::sync::Arc<std::sync::atomic::AtomicU64>,
    constant: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let polls = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(1));
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let logs = std::sync::Arc::new(logs);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.clone());
        let (logs, served) = (logs.clone(), served.clone());
        let (polls, constant) = (polls.clone(), constant.clone());
        tokio::spawn(async move {
            let Ok(mut s) = acceptor.accept(tcp).await else {
                return;
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16384 {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&head);
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let body = if path.starts_with("/federation/v1/digest") {
                let n = if constant.load(std::sync::atomic::Ordering::SeqCst) {
                    0
                } else {
                    polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                };
                json!({"member": "cc", "head": 0, "digests": {},
                       "membership": {"index": 1, "hash": format!("sha256:{n:064x}")}})
            } else if path.starts_with("/federation/v1/membership") {
                let n = served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let entries = &logs[(n % 2) as usize];
                json!({"head": null, "entries": entries, "more": false})
            } else if path.starts_with("/federation/v1/feed") {
                json!({"envelopes": [], "next": "0", "more": false, "head": 0})
            } else {
                json!({"error": "not-found"})
            };
            let text = body.to_string();
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                text.len()
            );
            let _ = s.write_all(answer.as_bytes()).await;
            let _ = s.shutdown().await;
        });
    }
}

/// What a hostile peer or client can do with the membership endpoints: nothing. A
/// peer serving another genesis or a forged entry changes no node's log and causes
/// no fork (the refusals are counted, the fetches stay one per digest poll); the
/// submission endpoint refuses the unauthenticated, the unprivileged, non-JSON, an
/// oversized body and a forged entry; the federation endpoint refuses callers that
/// are not peers and bad cursors.
#[test]
fn forged_entries_from_a_peer_or_a_client_change_nothing() {
    let mut f = Fed::init(&["aa", "bb", "cc"], &[], 2);
    let genesis_path = f.fed().join("membership.jsonl");
    f.follow_log("aa", &genesis_path);
    f.follow_log("bb", &genesis_path);

    // The forged logs: another genesis (needs no approval), and the real genesis
    // followed by an entry 1 with bb's approval and a forged one of aa's.
    let genesis: Value =
        serde_json::from_str(std::fs::read_to_string(&genesis_path).unwrap().trim()).unwrap();
    let mut other_genesis = genesis.clone();
    other_genesis["change"]["threshold"] = json!(1);
    let forged = f.proposal("forged", &["--set-threshold", "1"], &["bb"]);
    let mut forged: Value = serde_json::from_slice(&std::fs::read(&forged).unwrap()).unwrap();
    let mut fake_sig = forged["signatures"][0].clone();
    fake_sig["member"] = json!("aa");
    fake_sig["key_id"] = json!(format!("aa-{}", &fake_sig["key_id"].as_str().unwrap()[3..]));
    forged["signatures"].as_array_mut().unwrap().push(fake_sig);
    std::fs::write(f.dir.path().join("forged.json"), forged.to_string()).unwrap();

    let fake_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cc = synergia::config::Config::load(&f.config("cc")).unwrap();
    let mut tls = (*synergia::tls::server_config(&cc).unwrap()).clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let listener = fake_rt
        .block_on(tokio::net::TcpListener::bind(&cc.listen.address))
        .unwrap();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let constant = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    fake_rt.spawn(serve_forged_log(
        listener,
        std::sync::Arc::new(tls),
        [vec![other_genesis], vec![genesis.clone(), forged.clone()]],
        served.clone(),
        constant.clone(),
    ));
    f.start("aa");
    let rt = rt();
    rt.block_on(async {
        let refused = async |code: &str| -> u64 {
            let text = f.metrics("aa").await;
            let want = format!("synergia_membership_entries_refused_total{{code=\"{code}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&want))
                .map_or(0, |v| v.parse().unwrap())
        };
        eventually("aa refuses both forged logs", 15, async || {
            refused("stale-index").await >= 1 && refused("bad-signature").await >= 1
        })
        .await;
        // A new head statement at every poll: one fetch per poll (2 s) at most.
        let t0 = std::time::Instant::now();
        let before = served.load(std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_secs(6)).await;
        let fetches = served.load(std::sync::atomic::Ordering::SeqCst) - before;
        assert!(
            (1..=5).contains(&fetches),
            "{fetches} fetches in {:?}: one per digest poll (2 s) at most",
            t0.elapsed()
        );
        // The same statement again and again: fetched once, then not for 30 s.
        constant.store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let before = served.load(std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_secs(6)).await;
        assert_eq!(
            served.load(std::sync::atomic::Ordering::SeqCst),
            before,
            "a head statement that was fetched for is not fetched for again at once"
        );
        let v = f.membership("aa").await;
        assert_eq!(v["head"]["index"], 0, "{v}");
        assert_eq!(v["threshold"], 2, "{v}");
        assert_eq!(v["forks"], json!([]), "{v}");
        assert_eq!(v["peer_heads"]["cc"]["matches"], false, "{v}");
        assert_eq!(refused("fork").await, 0);

        // The submission endpoint.
        let url = format!("{}/api/v1/membership", f.urls["aa"]);
        let post = |token: Option<String>, body: Vec<u8>| {
            let mut r = f.http.post(&url).body(body);
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send()
        };
        let status = |r: reqwest::Response| r.status().as_u16();
        let metrics_token = std::fs::read_to_string(f.fed().join("aa").join("metrics-token"))
            .unwrap()
            .trim()
            .to_string();
        let entry = forged.to_string().into_bytes();
        assert_eq!(status(post(None, entry.clone()).await.unwrap()), 401);
        assert_eq!(
            status(post(Some(metrics_token), entry.clone()).await.unwrap()),
            403
        );
        let r = post(Some(f.token("aa")), b"{\"type\": ".to_vec())
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "malformed");
        let r = post(Some(f.token("aa")), vec![b' '; 2 << 20])
            .await
            .unwrap();
        assert_eq!(r.status(), 413);
        let r = post(Some(f.token("aa")), entry.clone()).await.unwrap();
        assert_eq!(r.status(), 422);
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "bad-signature");
        let (code, out) = f.submit(&f.dir.path().join("forged.json"), "aa");
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("[bad-signature]"), "{out}");
        assert_eq!(f.membership("aa").await["head"]["index"], 0);

        // The federation endpoint: peers only, numeric cursors.
        let entries = format!("{}/federation/v1/membership", f.urls["aa"]);
        assert_eq!(f.http.get(&entries).send().await.unwrap().status(), 401);
        let admin = f.identity("aa", "admin");
        let as_admin = https_client(&f.ca(), Some(&admin));
        assert_eq!(as_admin.get(&entries).send().await.unwrap().status(), 403);
        let as_bb = https_client(&f.ca(), Some(&f.node_identity("bb")));
        let r = as_bb.get(format!("{entries}?from=x")).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let v: Value = as_bb
            .get(format!("{entries}?from=18446744073709551615"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["entries"], json!([]), "{v}");
        assert_eq!(v["head"]["index"], 0, "{v}");
        let v: Value = as_bb
            .get(&entries)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["entries"][0], genesis, "{v}");
    });
    drop(fake_rt);
}
