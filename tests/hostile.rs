//! Hostile input: hundreds of malformed, oversized, tampered and replayed requests
//! against an in-process node with small limits. Every one must get a clear 4xx with a
//! stable error code (or, for envelopes in a push, a per-envelope rejection code, or
//! `duplicate` for a replay), the node must not panic, and the store must not change.
//!
//! The suite prints one line per class, `HOSTILE class=<name> tried=<n>
//! rejected_cleanly=<n>`; `docs/reliability.md` is made from those lines.
//!
//! Hostile clients (slow headers, idle connections past the limit, slow bodies) are in
//! the second test.

#[path = "common/mod.rs"]
mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use synergia::config::Role;
use synergia::envelope::Signer;
use synergia::node::Node;
use synergia::stix::timestamp::Timestamp;
use synergia::stix::tlp::{ALL_LEVELS, TlpLevel};
use synergia::workload::{GenOptions, bundle};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const MAX_BODY: usize = 1 << 20;
const GREEN: &str = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";

/// What the store holds: counts and every digest.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    envelopes: usize,
    versions: usize,
    objects: usize,
    digests: Vec<String>,
}

fn snapshot(node: &Node) -> Snapshot {
    let v = node.embedded("test").unwrap().read();
    Snapshot {
        envelopes: v.envelope_count(),
        versions: v.version_count(),
        objects: v.object_count(),
        digests: ALL_LEVELS
            .iter()
            .map(|l| v.digest(*l).to_string())
            .collect(),
    }
}

/// The answer to one request.
#[derive(Debug)]
enum Answer {
    Http { status: u16, body: Value },
    Transport(#[allow(dead_code)] String),
}

async fn answer(req: reqwest::RequestBuilder) -> Answer {
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let bytes = r.bytes().await.unwrap_or_default();
            Answer::Http {
                status,
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            }
        }
        Err(e) => Answer::Transport(format!("{e:?}")),
    }
}

/// The stable code of an error body (node API `error`, TAXII `error_code`).
fn code_of(body: &Value) -> Option<&str> {
    body.get("error")
        .or_else(|| body.get("error_code"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

struct Suite {
    fed: Federation,
    node: RunningNode,
    admin: reqwest::Client,
    peer: reqwest::Client,
    base: Option<Snapshot>,
    tally: BTreeMap<&'static str, (usize, usize)>,
    failures: Vec<String>,
}

impl Suite {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.node.url)
    }

    fn record(&mut self, class: &'static str, clean: bool, what: impl FnOnce() -> String) {
        let t = self.tally.entry(class).or_default();
        t.0 += 1;
        if clean {
            t.1 += 1;
        } else {
            self.failures.push(format!("{class}: {}", what()));
        }
    }

    fn store_unchanged(&self) -> bool {
        self.base.as_ref() == Some(&snapshot(&self.node.node))
    }

    /// One hostile request: a 4xx whose status is in `statuses` (any 4xx if empty) with
    /// a code in `codes` (any code if empty); with `closed_ok`, a connection closed by
    /// the node also counts.
    async fn expect(
        &mut self,
        class: &'static str,
        label: &str,
        req: reqwest::RequestBuilder,
        statuses: &[u16],
        codes: &[&str],
        closed_ok: bool,
    ) {
        let a = answer(req).await;
        let good = match &a {
            Answer::Http { status, body } => {
                (400..500).contains(status)
                    && (statuses.is_empty() || statuses.contains(status))
                    && code_of(body).is_some_and(|c| codes.is_empty() || codes.contains(&c))
            }
            Answer::Transport(_) => closed_ok,
        };
        let unchanged = self.store_unchanged();
        self.record(class, good && unchanged, || {
            format!("{label}: {a:?} store unchanged: {unchanged}")
        });
    }

    /// Pushes envelopes as peer `beta`; each is one input that must come back with
    /// one of its allowed outcomes (a rejection code, or `duplicate`).
    async fn push(&mut self, class: &'static str, items: Vec<(String, Value, Vec<&'static str>)>) {
        for chunk in items.chunks(synergia::server::federation::MAX_PUSH) {
            let envs: Vec<Value> = chunk.iter().map(|(_, v, _)| v.clone()).collect();
            let body = serde_json::to_vec(&json!({ "envelopes": envs })).unwrap();
            assert!(body.len() <= MAX_BODY, "push body of {} bytes", body.len());
            let a = answer(
                self.peer
                    .post(self.url("/federation/v1/envelopes"))
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
            let unchanged = self.store_unchanged();
            let results = match &a {
                Answer::Http { status: 200, body } => {
                    body["results"].as_array().cloned().unwrap_or_default()
                }
                _ => Vec::new(),
            };
            for (i, (label, _, allowed)) in chunk.iter().enumerate() {
                let r = results.get(i).cloned().unwrap_or(Value::Null);
                let ok = match r["status"].as_str() {
                    Some("duplicate") => allowed.contains(&"duplicate"),
                    Some("rejected") => r["code"]
                        .as_str()
                        .is_some_and(|c| allowed.is_empty() || allowed.contains(&c)),
                    // Refused for a passing reason: kept for a retry, not stored.
                    Some("deferred") => r["code"].as_str().is_some_and(|c| {
                        synergia::node::peers::deferred::is_retryable(c)
                            && (allowed.is_empty() || allowed.contains(&c))
                    }),
                    _ => false,
                };
                self.record(class, ok && unchanged, || {
                    format!("{label}: {r} (allowed {allowed:?}) store unchanged: {unchanged}")
                });
            }
        }
    }
}

/// A one-object green bundle (an IPv4 address).
fn tiny_bundle(i: u64) -> Value {
    let ns = uuid::Uuid::from_u128(0x1234_5678_9abc_4def_8123_4567_89ab_cdef);
    let value = format!("198.51.{}.{}", (i / 250) % 250, i % 250);
    json!({
        "type": "bundle",
        "id": format!("bundle--{}", uuid::Uuid::new_v5(&ns, format!("b{i}").as_bytes())),
        "objects": [{
            "type": "ipv4-addr",
            "spec_version": "2.1",
            "id": format!("ipv4-addr--{}", uuid::Uuid::new_v5(&ns, value.as_bytes())),
            "value": value,
            "object_marking_refs": [GREEN],
        }],
    })
}

fn sign(s: &Signer, b: Value, seq: u64, signed_at: Timestamp) -> Value {
    signed_envelope(s, b, seq, TlpLevel::Green, signed_at)
}

fn gen_bundle(count: u64, seed: u64, origin: &str) -> Value {
    bundle(&GenOptions {
        count,
        seed,
        origin: origin.into(),
        identity: None,
        overlap: 0.3,
        tlp: None,
    })
}

/// JSON text with the first key of the `n`-th object (pre-order) written twice.
fn with_duplicate_key(v: &Value, n: usize, same_value: bool) -> String {
    fn walk(v: &Value, n: usize, seen: &mut usize, same: bool, out: &mut String) {
        match v {
            Value::Object(m) => {
                let me = *seen;
                *seen += 1;
                out.push('{');
                let mut first = true;
                for (k, x) in m {
                    if !first {
                        out.push(',');
                    }
                    if first && me == n {
                        out.push_str(&serde_json::to_string(k).unwrap());
                        out.push(':');
                        if same {
                            out.push_str(&x.to_string());
                        } else {
                            out.push_str("\"other\"");
                        }
                        out.push(',');
                    }
                    first = false;
                    out.push_str(&serde_json::to_string(k).unwrap());
                    out.push(':');
                    walk(x, n, seen, same, out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    walk(x, n, seen, same, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    let mut seen = 0;
    walk(v, n, &mut seen, same_value, &mut out);
    out
}

fn count_objects(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(count_objects).sum::<usize>(),
        Value::Array(a) => a.iter().map(count_objects).sum(),
        _ => 0,
    }
}

/// Bodies that must be refused as JSON, with the label of each.
fn bodies(class: &str, valid: &Value) -> Vec<(String, Vec<u8>)> {
    let text = valid.to_string();
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    match class {
        "deep-nesting" => {
            for depth in [129usize, 200, 1_000, 10_000, 100_000, 500_000] {
                out.push((format!("[ x{depth}"), "[".repeat(depth).into_bytes()));
                out.push((
                    format!("[ ] x{depth}"),
                    format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes(),
                ));
                out.push((
                    format!("{{\"a\": x{depth}"),
                    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)).into_bytes(),
                ));
                out.push((
                    format!("bundle objects nested x{depth}"),
                    format!(
                        "{{\"type\":\"bundle\",\"id\":\"bundle--0b5a3c1e-2f4d-4e6a-8b7c-9d0e1f2a3b4c\",\"objects\":{}{}}}",
                        "[{\"x\":".repeat(depth),
                        "}]".repeat(depth)
                    )
                    .into_bytes(),
                ));
            }
        }
        "huge-numbers" => {
            for n in [
                "9007199254740993",
                "9007199254740992",
                "-9007199254740993",
                "18446744073709551616",
                "99999999999999999999999999999999",
                "-99999999999999999999999999999999",
                "1e400",
                "-1e400",
                "1e999999",
                &"9".repeat(5000),
                "123456789012345678901234567890e-5",
            ] {
                if n.starts_with("9007199254740993")
                    || n.starts_with("-9007199254740993")
                    || n.contains("e4")
                    || n.contains("e9")
                {
                    out.push((format!("top-level extra {n}"), format!("{{\"type\":\"bundle\",\"id\":\"bundle--0b5a3c1e-2f4d-4e6a-8b7c-9d0e1f2a3b4c\",\"objects\":[],\"x_n\":{n}}}").into_bytes()));
                }
                let mut v = valid.clone();
                v["objects"][0]["confidence"] = json!(0);
                let t = v
                    .to_string()
                    .replace("\"confidence\":0", &format!("\"confidence\":{n}"));
                out.push((format!("confidence {n}"), t.into_bytes()));
                out.push((format!("in objects array {n}"), format!("{{\"type\":\"bundle\",\"id\":\"bundle--0b5a3c1e-2f4d-4e6a-8b7c-9d0e1f2a3b4c\",\"objects\":[{n}]}}").into_bytes()));
            }
        }
        "duplicate-keys" => {
            let n = count_objects(valid);
            for i in 0..n {
                for same in [true, false] {
                    out.push((
                        format!("duplicate first key of object #{i} (same value: {same})"),
                        with_duplicate_key(valid, i, same).into_bytes(),
                    ));
                }
            }
        }
        "invalid-utf8" => {
            let seqs: [&[u8]; 10] = [
                b"\xff",
                b"\xfe\xff",
                b"\xc0\x80",
                b"\xc3",
                b"\xe2\x82",
                b"\xed\xa0\x80",
                b"\xed\xbf\xbf",
                b"\xf4\x90\x80\x80",
                b"\xf8\x88\x80\x80\x80",
                b"\x80",
            ];
            let name_at = text.find("\"name\":\"").map(|i| i + 8).unwrap_or(1);
            let key_at = 1;
            let id_at = text.find("\"id\":\"").map(|i| i + 6).unwrap_or(1);
            for (j, s) in seqs.iter().enumerate() {
                for (where_, at) in [
                    ("in a name", name_at),
                    ("before a key", key_at),
                    ("in an id", id_at),
                ] {
                    let mut b = text.as_bytes()[..at].to_vec();
                    b.extend_from_slice(s);
                    b.extend_from_slice(&text.as_bytes()[at..]);
                    out.push((format!("bytes #{j} {where_}"), b));
                }
            }
        }
        "lone-surrogates" => {
            for esc in [
                "\\ud800",
                "\\udfff",
                "\\udc00",
                "\\udbff",
                "\\ud800\\u0041",
                "\\udc00\\ud800",
                "\\ud83d",
                "\\ud83dx",
                "\\ud800\\ud800",
                "\\uDFFF",
            ] {
                let in_name = text.replacen("\"name\":\"", &format!("\"name\":\"{esc}"), 1);
                out.push((format!("{esc} in a name"), in_name.into_bytes()));
                let in_key = text.replacen("{\"", &format!("{{\"{esc}\":1,\""), 1);
                out.push((format!("{esc} in a key"), in_key.into_bytes()));
                let in_type = format!(
                    "{{\"type\":\"bundle{esc}\",\"id\":\"bundle--0b5a3c1e-2f4d-4e6a-8b7c-9d0e1f2a3b4c\",\"objects\":[]}}"
                );
                out.push((format!("{esc} in the bundle type"), in_type.into_bytes()));
            }
        }
        "truncated-json" => {
            let len = text.len();
            let cuts = 40usize;
            for k in 0..cuts {
                let at = (len - 1) * k / cuts;
                let mut at = at.max(1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                out.push((format!("cut at {at}/{len}"), text.as_bytes()[..at].to_vec()));
            }
            out.push((
                "cut before the last brace".into(),
                text.as_bytes()[..len - 1].to_vec(),
            ));
            out.push(("empty".into(), Vec::new()));
            out.push(("unterminated string".into(), b"{\"type\":\"bund".to_vec()));
        }
        "wrong-top-level" => {
            for t in [
                "[]",
                "\"bundle\"",
                "42",
                "null",
                "true",
                "[{\"type\":\"bundle\"}]",
                "{}",
                "{\"type\":\"bundle\"}",
                "{\"type\":\"Bundle\",\"id\":\"bundle--0b5a3c1e-2f4d-4e6a-8b7c-9d0e1f2a3b4c\",\"objects\":[]}",
                "{\"type\":\"bundle\",\"id\":\"bundle--0b5a3c1e-2f4d-4e6a-8b7c-9d0e1f2a3b4c\",\"objects\":{}}",
                "{\"type\":\"bundle\",\"id\":\"bundle--0b5a3c1e-2f4d-4e6a-8b7c-9d0e1f2a3b4c\",\"objects\":\"x\"}",
                "{\"type\":\"bundle\",\"id\":\"bundle--0b5a3c1e-2f4d-4e6a-8b7c-9d0e1f2a3b4c\",\"objects\":[1,2]}",
                "{\"type\":\"bundle\",\"id\":\"bundle--0b5a3c1e-2f4d-4e6a-8b7c-9d0e1f2a3b4c\",\"objects\":[null]}",
                "{\"type\":\"bundle\",\"id\":\"bundle--0b5a3c1e-2f4d-4e6a-8b7c-9d0e1f2a3b4c\",\"objects\":[[]]}",
                "{\"type\":\"envelope\",\"objects\":[]}",
                "   ",
                "{\"type\":\"bundle\"} trailing",
                "{\"type\":\"bundle\",}",
                "{'type':'bundle'}",
                "\u{feff}{\"type\":\"bundle\"}",
            ] {
                out.push((t.chars().take(60).collect(), t.as_bytes().to_vec()));
            }
        }
        _ => unreachable!("{class}"),
    }
    out
}

/// Variants of a valid bundle that are not valid STIX 2.1.
fn invalid_stix(base: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let objects = base["objects"].as_array().unwrap().clone();
    let with = |i: usize, f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut b = base.clone();
        f(b["objects"][i].as_object_mut().unwrap());
        b
    };
    for (i, o) in objects.iter().enumerate() {
        let t = o["type"].as_str().unwrap().to_string();
        let sdo = o.get("created").is_some();
        // Each required property removed.
        let mut required = vec!["type", "id"];
        if sdo {
            required.extend(["spec_version", "created", "modified"]);
        }
        match t.as_str() {
            "indicator" => required.extend(["pattern", "pattern_type", "valid_from"]),
            "identity" => required.push("name"),
            "malware" => required.push("is_family"),
            "relationship" => required.extend(["relationship_type", "source_ref", "target_ref"]),
            "marking-definition" => required.push("definition_type"),
            _ => {}
        }
        for p in required {
            if o.get(p).is_some() {
                out.push((
                    format!("{t} #{i} without {p}"),
                    with(i, &|m| {
                        m.remove(p);
                    }),
                ));
            }
        }
        // Each property with a wrong type.
        for (p, v) in o.as_object().unwrap() {
            if p.starts_with("x_") || p == "extensions" {
                continue;
            }
            let wrong = match v {
                Value::String(_) => json!(12345),
                Value::Number(_) => json!("not-a-number"),
                Value::Array(_) => json!("not-a-list"),
                Value::Object(_) => json!("not-an-object"),
                Value::Bool(_) => json!("yes"),
                Value::Null => continue,
            };
            out.push((
                format!("{t} #{i} {p} = {wrong}"),
                with(i, &|m| {
                    m.insert(p.clone(), wrong.clone());
                }),
            ));
        }
        // Bad ids.
        let uuid = o["id"]
            .as_str()
            .unwrap()
            .split("--")
            .nth(1)
            .unwrap()
            .to_string();
        let other = if t == "malware" {
            "indicator"
        } else {
            "malware"
        };
        for bad in [
            format!("{t}--not-a-uuid"),
            format!("{t}--"),
            t.clone(),
            format!("{}--{uuid}", t.to_uppercase()),
            format!("{other}--{uuid}"),
            format!("{t}--00000000-0000-0000-0000-000000000000"),
            format!(" {t}--{uuid}"),
            format!("{t}-{uuid}"),
            format!("{t}--{uuid}0"),
        ] {
            out.push((
                format!("{t} #{i} id {bad:?}"),
                with(i, &|m| {
                    m.insert("id".into(), json!(bad));
                }),
            ));
        }
        // Bad timestamps.
        for p in [
            "created",
            "modified",
            "valid_from",
            "valid_until",
            "first_seen",
            "last_seen",
        ] {
            if o.get(p).is_none() {
                continue;
            }
            for bad in [
                "2026-13-01T00:00:00Z",
                "2026-02-30T00:00:00Z",
                "2026-01-01T24:00:01Z",
                "2026-01-01",
                "2026-01-01T00:00:00",
                "yesterday",
                "",
                "2026-01-01T00:00:00+01:00",
                "1767225600",
            ] {
                out.push((
                    format!("{t} #{i} {p} = {bad:?}"),
                    with(i, &|m| {
                        m.insert(p.into(), json!(bad));
                    }),
                ));
            }
        }
    }
    // Invalid patterns in the first indicator.
    let Some(ind) = objects.iter().position(|o| o["type"] == "indicator") else {
        return out;
    };
    let patterns =
        std::fs::read_to_string(workspace().join("tests/data/patterns/invalid.txt")).unwrap();
    for line in patterns
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        out.push((
            format!("pattern {line:?}"),
            with(ind, &|m| {
                m.insert("pattern".into(), json!(line));
            }),
        ));
    }
    out
}

fn setup() -> Suite {
    let fed = Federation::new(&["alpha", "beta"], &[]);
    let mut cfg = fed.config("alpha");
    cfg.limits.max_body_bytes = MAX_BODY;
    cfg.limits.taxii_max_page = 500;
    add_client(&mut cfg, "reader", &[Role::Read], TlpLevel::Red);
    let node = RunningNode::start(cfg);
    let admin = https_client(&fed.ca_path(), Some(&fed.admin_identity("alpha")));
    let peer = https_client(&fed.ca_path(), Some(&fed.node_identity("beta")));
    Suite {
        fed,
        node,
        admin,
        peer,
        base: None,
        tally: BTreeMap::new(),
        failures: Vec::new(),
    }
}

#[test]
fn hostile_inputs_are_refused_cleanly_and_change_nothing() {
    let started = Instant::now();
    let mut s = setup();
    let rt = rt();
    rt.block_on(async {
        // The node holds something: a published bundle and envelopes pushed by beta.
        let r = s.admin.post(s.url("/api/v1/bundles")).json(&gen_bundle(40, 5, "alpha")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
        let beta = s.fed.signer("beta");
        let held: Vec<Value> = (1..=1000u64).map(|i| sign(&beta, tiny_bundle(i), i, Timestamp::now())).collect();
        let t = Instant::now();
        let r: Value = s.peer.post(s.url("/federation/v1/envelopes")).json(&json!({"envelopes": held})).send().await.unwrap().json().await.unwrap();
        let took = t.elapsed();
        let accepted = r["results"].as_array().unwrap().iter().filter(|x| x["status"] == "accepted").count();
        assert_eq!(accepted, 1000, "{}", r["results"][0]);
        assert!(took < Duration::from_secs(30), "1000 tiny envelopes took {took:?}");
        eprintln!("flood: 1000 one-object envelopes accepted in one push in {took:?}");
        // Each envelope of a push is read strictly on its own: one that repeats a key
        // is rejected, its neighbour is taken.
        let twice = serde_json::to_string(&sign(&beta, tiny_bundle(2001), 2001, Timestamp::now())).unwrap().replacen("\"tlp\":", "\"tlp\":\"green\",\"tlp\":", 1);
        let fine = serde_json::to_string(&sign(&beta, tiny_bundle(2002), 2002, Timestamp::now())).unwrap();
        let r: Value = s.peer.post(s.url("/federation/v1/envelopes")).header("content-type", "application/json").body(format!("{{\"envelopes\":[{twice},{fine}]}}")).send().await.unwrap().json().await.unwrap();
        let outcome: Vec<(&str, &str)> = r["results"].as_array().unwrap().iter().map(|x| (x["status"].as_str().unwrap(), x["code"].as_str().unwrap_or(""))).collect();
        assert_eq!(outcome, vec![("rejected", "malformed"), ("accepted", "")], "{r}");
        assert!(r["results"][0]["message"].as_str().unwrap().contains("duplicate object key \"tlp\""), "{r}");
        s.base = Some(snapshot(&s.node.node));

        let valid = gen_bundle(3, 9, "alpha");
        let publish = s.url("/api/v1/bundles");
        let push = s.url("/federation/v1/envelopes");
        let taxii_post = s.url("/taxii2/synergia/collections/local/objects/");
        let lookup = s.url("/api/v1/lookup");

        // Oversized bodies: 413 (a body past twice the limit may instead see the
        // connection closed after the 413).
        for size in [MAX_BODY + 1, MAX_BODY + 4096, MAX_BODY * 3 / 2, 2 * MAX_BODY - 1, 3 * MAX_BODY, 8 * MAX_BODY] {
            for fill in [b' ', b'x'] {
                let mut body = b"{\"type\":\"bundle\",\"objects\":[".to_vec();
                body.resize(size, fill);
                for (url, ct) in [(&publish, "application/json"), (&push, "application/json"), (&taxii_post, TAXII), (&lookup, "application/json")] {
                    let (s2, a) = (s.admin.clone(), s.peer.clone());
                    let client = if url == &push { a } else { s2 };
                    let req = client.post(url.as_str()).header("content-type", ct).header("accept", if url == &taxii_post { TAXII } else { "application/json" }).body(body.clone());
                    s.expect("oversized-body", &format!("{size} bytes to {url}"), req, &[413], &["body-too-large"], size > 2 * MAX_BODY).await;
                }
            }
        }
        // Streamed without a length.
        for size in [MAX_BODY + 1, 2 * MAX_BODY] {
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..size.div_ceil(65536)).map(|_| Ok(vec![b' '; 65536])).collect();
            let body = reqwest::Body::wrap_stream(futures_stream(chunks));
            let req = s.admin.post(publish.as_str()).body(body);
            s.expect("oversized-body", &format!("chunked {size} bytes"), req, &[413], &["body-too-large"], true).await;
        }

        // Malformed JSON of every kind, to both JSON endpoints that take bodies.
        for class in ["deep-nesting", "huge-numbers", "duplicate-keys", "invalid-utf8", "lone-surrogates", "truncated-json", "wrong-top-level"] {
            let (codes_publish, codes_push): (&[&str], &[&str]) = match class {
                "wrong-top-level" => (&["malformed-json", "not-a-bundle", "invalid-stix"], &["malformed-json", "malformed"]),
                "huge-numbers" => (&["malformed-json", "invalid-stix"], &["malformed-json", "malformed"]),
                _ => (&["malformed-json"], &["malformed-json"]),
            };
            for (label, body) in bodies(class, &valid) {
                if body.len() > MAX_BODY {
                    continue;
                }
                let req = s.admin.post(publish.as_str()).header("content-type", "application/json").body(body.clone());
                s.expect(class, &format!("publish {label}"), req, &[400, 422], codes_publish, false).await;
                // As a push: wrapped in {"envelopes": …} it is still malformed JSON
                // (or, for wrong top-level types, a malformed push).
                let req = s.peer.post(push.as_str()).header("content-type", "application/json").body(body.clone());
                s.expect(class, &format!("push {label}"), req, &[400, 422], codes_push, false).await;
            }
        }

        // Invalid STIX bundles, generated and from the corpus.
        for (label, b) in invalid_stix(&valid) {
            let req = s.admin.post(publish.as_str()).json(&b);
            s.expect("invalid-stix", &label, req, &[422], &["invalid-stix", "not-a-bundle"], false).await;
        }
        let dir = workspace().join("tests/data/bundles/invalid");
        let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let body = std::fs::read(&f).unwrap();
            let req = s.admin.post(publish.as_str()).header("content-type", "application/json").body(body);
            s.expect("invalid-stix", &f.display().to_string(), req, &[400, 422], &["invalid-stix", "not-a-bundle", "malformed-json"], false).await;
        }

        // Envelopes: tampered, re-signed, malformed, replayed, signed in the future.
        let base = sign(&beta, tiny_bundle(5000), 5000, Timestamp::now());
        let alpha_signer = s.fed.signer("alpha");
        let mut items: Vec<(String, Value, Vec<&'static str>)> = Vec::new();
        let members = ["type", "version", "origin", "origin_identity", "key_id", "seq", "signed_at", "tlp", "recipients", "bundle", "signature"];
        for m in members {
            let mut e = base.clone();
            e.as_object_mut().unwrap().remove(m);
            items.push((format!("without {m}"), e, vec!["malformed", "bad-seq", "bad-base64"]));
            for wrong in [json!(null), json!(7), json!("x"), json!([]), json!({})] {
                if base[m] == wrong {
                    continue;
                }
                let mut e = base.clone();
                e[m] = wrong.clone();
                items.push((format!("{m} = {wrong}"), e, vec![]));
            }
        }
        for (m, v) in [
            ("origin", json!("mallory")),
            ("origin", json!("alpha")),
            ("origin_identity", json!("identity--00000000-0000-4000-8000-000000000000")),
            ("key_id", json!("beta-1999a")),
            ("key_id", json!(alpha_signer.key_id.clone())),
            ("seq", json!(5001)),
            ("seq", json!(0)),
            ("seq", json!(-1)),
            ("seq", json!(1.5)),
            // One second after the signed value (now() could fall in the same millisecond
            // and leave the envelope unchanged, and valid).
            (
                "signed_at",
                json!(Timestamp::from_micros(Timestamp::parse(base["signed_at"].as_str().unwrap()).unwrap().as_micros() + 1_000_000).to_millis_string()),
            ),
            ("signed_at", json!("not a time")),
            ("tlp", json!("amber")),
            ("tlp", json!("clear")),
            ("tlp", json!("purple")),
            ("recipients", json!(["alpha"])),
            ("recipients", json!(["mallory"])),
            ("version", json!(2)),
            ("type", json!("bundle")),
            ("signature", json!("")),
            ("signature", json!("!!!!")),
            ("signature", json!("AAAA")),
            ("signature", json!(URL_SAFE_NO_PAD.encode([0u8; 64]))),
            ("signature", json!(format!("{}=", base["signature"].as_str().unwrap()))),
        ] {
            let mut e = base.clone();
            e[m] = v.clone();
            items.push((format!("{m} changed to {v}"), e, vec![]));
        }
        let sig = URL_SAFE_NO_PAD.decode(base["signature"].as_str().unwrap()).unwrap();
        for bit in (0..512).step_by(4) {
            let mut b = sig.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            let mut e = base.clone();
            e["signature"] = json!(URL_SAFE_NO_PAD.encode(&b));
            items.push((format!("signature bit {bit} flipped"), e, vec!["bad-signature"]));
        }
        for (k, path) in [("value", "/bundle/objects/0/value"), ("type", "/bundle/type"), ("id", "/bundle/id"), ("marking", "/bundle/objects/0/object_marking_refs/0")] {
            let mut e = base.clone();
            *e.pointer_mut(path).unwrap() = json!(format!("tampered-{k}"));
            items.push((format!("bundle {k} tampered"), e, vec!["bad-signature", "malformed"]));
        }
        let mut e = base.clone();
        e["bundle"]["objects"].as_array_mut().unwrap().push(tiny_bundle(6000)["objects"][0].clone());
        items.push(("object added to the bundle".into(), e, vec!["bad-signature"]));
        let mut e = base.clone();
        e["x_extra"] = json!(1);
        items.push(("extra member".into(), e, vec![]));
        // Re-signed: beta's envelope signed with alpha's key, and alpha's key id.
        let forger = Signer { key: alpha_signer.key.clone(), ..s.fed.signer("beta") };
        items.push(("re-signed with another member's key".into(), sign(&forger, tiny_bundle(5001), 5001, Timestamp::now()), vec!["bad-signature"]));
        let forger = Signer { key_id: alpha_signer.key_id.clone(), ..s.fed.signer("beta") };
        items.push(("signed naming another member's key id".into(), sign(&forger, tiny_bundle(5002), 5002, Timestamp::now()), vec!["unknown-key"]));
        let forger = Signer { origin: "alpha".into(), ..s.fed.signer("beta") };
        items.push(("claiming alpha's origin with beta's identity".into(), sign(&forger, tiny_bundle(5003), 5003, Timestamp::now()), vec![]));
        // Invalid STIX inside a correctly signed envelope.
        for (j, (label, b)) in invalid_stix(&tiny_bundle(7000)).into_iter().enumerate() {
            items.push((format!("signed invalid STIX: {label}"), sign(&beta, b, 7000 + j as u64, Timestamp::now()), vec!["invalid-stix", "malformed"]));
        }
        // Not objects at all.
        for v in [json!(1), json!("envelope"), json!(null), json!([]), json!({})] {
            items.push((format!("envelope {v}"), v, vec!["malformed"]));
        }
        s.push("tampered-envelope", items).await;

        // Signed in the future (key still valid then).
        let mut items = Vec::new();
        for (j, secs) in [301i64, 600, 3600, 86_400, 7 * 86_400, 30 * 86_400].into_iter().enumerate() {
            // Whole seconds, as the check counts them, rounded up: a push that reaches
            // the node in the next second still finds it `secs` seconds ahead.
            let at = Timestamp::from_micros((Timestamp::now().as_secs() + secs + 1) * 1_000_000);
            items.push((format!("signed {secs} s ahead"), sign(&beta, tiny_bundle(8000 + j as u64), 8000 + j as u64, at), vec!["signed-in-future"]));
        }
        s.push("signed-in-future", items).await;

        // Replays: every held envelope again, as sent and re-serialised non-canonically
        // (pretty-printed, keys reordered, escaped): all duplicates, nothing changes.
        let mut items = Vec::new();
        for (i, e) in held.iter().enumerate().take(200) {
            items.push((format!("replay #{i}"), e.clone(), vec!["duplicate"]));
        }
        s.push("replayed-envelope", items).await;
        for (i, e) in held.iter().enumerate().take(50) {
            let m = e.as_object().unwrap();
            let mut text = String::from("{ ");
            for (j, (k, v)) in m.iter().rev().enumerate() {
                if j > 0 {
                    text.push_str(" ,\n ");
                }
                let key = if k == "origin" { "\"\\u006frigin\"".to_string() } else { serde_json::to_string(k).unwrap() };
                text.push_str(&format!("{key} :  {}", serde_json::to_string_pretty(v).unwrap()));
            }
            text.push_str(" }");
            let body = format!("{{\"envelopes\": [{text}]}}");
            let a = answer(s.peer.post(push.as_str()).header("content-type", "application/json").body(body)).await;
            let ok = matches!(&a, Answer::Http { status: 200, body } if body["results"][0]["status"] == "duplicate");
            let unchanged = s.store_unchanged();
            s.record("replayed-envelope", ok && unchanged, || format!("non-canonical replay #{i}: {a:?}"));
        }

        // A flood: 1000 replays in one push, then 1000 tampered ones, then one too many.
        let t = Instant::now();
        let items: Vec<_> = held.iter().enumerate().map(|(i, e)| (format!("flood replay #{i}"), e.clone(), vec!["duplicate"])).collect();
        s.push("envelope-flood", items).await;
        let items: Vec<_> = held
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut e = e.clone();
                e["seq"] = json!(e["seq"].as_u64().unwrap() + 100_000);
                (format!("flood tampered #{i}"), e, vec!["bad-signature"])
            })
            .collect();
        s.push("envelope-flood", items).await;
        let took = t.elapsed();
        assert!(took < Duration::from_secs(60), "2000 flood envelopes took {took:?}");
        eprintln!("flood: 2000 refused envelopes in two pushes in {took:?}");
        let over: Vec<&Value> = held.iter().chain(held.iter().take(1)).collect();
        let req = s.peer.post(push.as_str()).json(&json!({"envelopes": over}));
        s.expect("envelope-flood", "1001 envelopes in one push", req, &[413], &["too-many-envelopes"], false).await;

        // TAXII query parameters.
        let mut params: Vec<(&str, String)> = Vec::new();
        for v in ["0", "-1", "-999", "99999999999999999999999", "ten", "1.5", "", " 5", "0x10", "1e3", "5;6", "NaN"] {
            params.push(("limit", v.into()));
        }
        for v in ["yesterday", "2026-13-01T00:00:00Z", "", "2026", "0", "2026-01-01", "2026-01-01T00:00:00", "2026-02-30T00:00:00Z", "2026-01-01T00:00:00+01:00", "-1", "9999999999999"] {
            params.push(("added_after", v.into()));
        }
        for v in ["not-an-id", "indicator--", "indicator--xyz", "indicator", "--", "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f,bad"] {
            params.push(("match[id]", v.into()));
        }
        for v in ["Indicator", "in dicator", &"a".repeat(300), "ind;icator", "indicator,Malware", "x_y", "ïndicator"] {
            params.push(("match[type]", v.into()));
        }
        for v in ["latest", "-1", "2026-99-99T00:00:00Z", "first,newest", "LAST", "1"] {
            params.push(("match[version]", v.into()));
        }
        for v in ["3.0", "2", "2.1.0", "2.1,3", "v2.1"] {
            params.push(("match[spec_version]", v.into()));
        }
        for k in ["match[color]", "match[ID]", "match[created]", "match[types]", "match[]", "match[id", "match[added_after]", "match[version][0]"] {
            params.push((k, "x".into()));
        }
        for (k, v) in &params {
            for coll in ["consolidated", "local"] {
                for what in ["objects", "manifest"] {
                    let req = s.admin.get(s.url(&format!("/taxii2/synergia/collections/{coll}/{what}/"))).header("accept", TAXII).query(&[(k, v.as_str())]);
                    s.expect("taxii-query", &format!("{coll} {what} {k}={v:?}"), req, &[400], &["bad-query"], false).await;
                }
            }
        }
        for (k, v) in [("after", "-1"), ("after", "abc"), ("after", "1.5"), ("after", "99999999999999999999999"), ("limit", "0"), ("limit", "-5"), ("limit", "many"), ("limit", "")] {
            let req = s.peer.get(s.url("/federation/v1/feed")).query(&[(k, v)]);
            s.expect("taxii-query", &format!("feed {k}={v:?}"), req, &[400], &["bad-cursor", "bad-limit"], false).await;
        }

        // `next` tokens: malformed, forged by bit flips, from another collection or
        // other filters.
        let objects = s.url("/taxii2/synergia/collections/consolidated/objects/");
        let page: Value = s.admin.get(objects.as_str()).header("accept", TAXII).query(&[("limit", "1")]).send().await.unwrap().json().await.unwrap();
        let token = page["next"].as_str().unwrap().to_string();
        let ok = s.admin.get(objects.as_str()).header("accept", TAXII).query(&[("limit", "1"), ("next", token.as_str())]).send().await.unwrap();
        assert_eq!(ok.status(), 200, "the genuine token works");
        let mut bad: Vec<(String, String)> = Vec::new();
        for t in ["", "!", "AAAA", &"A".repeat(64), &"A".repeat(65), &"A".repeat(1000), "%%%", "null", "0", "-1", "AQ", "AQAAAAAAAAAA", "====", &token.to_uppercase(), &format!("{token}A"), &token[..token.len() - 1], &format!("{token}="), &format!(" {token}")] {
            bad.push((format!("malformed {t:?}"), t.to_string()));
        }
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for bit in 0..raw.len() * 8 {
            let mut b = raw.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            bad.push((format!("bit {bit} flipped"), URL_SAFE_NO_PAD.encode(&b)));
        }
        for (label, t) in bad {
            let req = s.admin.get(objects.as_str()).header("accept", TAXII).query(&[("limit", "1"), ("next", t.as_str())]);
            s.expect("next-token", &label, req, &[400], &["bad-next"], false).await;
        }
        for coll in ["local", "alpha", "beta"] {
            for what in ["objects", "manifest"] {
                let req = s.admin.get(s.url(&format!("/taxii2/synergia/collections/{coll}/{what}/"))).header("accept", TAXII).query(&[("limit", "1"), ("next", token.as_str())]);
                s.expect("next-token", &format!("token of consolidated used on {coll} {what}"), req, &[400], &["bad-next"], false).await;
            }
        }
        for (k, v) in [("match[type]", "indicator"), ("match[version]", "all"), ("match[spec_version]", "2.1"), ("added_after", "2020-01-01T00:00:00Z"), ("match[id]", "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f")] {
            let req = s.admin.get(objects.as_str()).header("accept", TAXII).query(&[("limit", "1"), ("next", token.as_str()), (k, v)]);
            s.expect("next-token", &format!("token used with {k}={v}"), req, &[400], &["bad-next"], false).await;
        }

        // Media types.
        for accept in ["application/json", "text/html", "application/stix+json;version=2.1", "application/taxii+json;version=2.0", "application/xml", "image/png", "text/*", "application/taxii+xml"] {
            for path in ["/taxii2/", "/taxii2/synergia/", "/taxii2/synergia/collections/", "/taxii2/synergia/collections/consolidated/objects/"] {
                let req = s.admin.get(s.url(path)).header("accept", accept);
                s.expect("media-type", &format!("GET {path} accept {accept}"), req, &[406], &["not-acceptable"], false).await;
            }
        }
        let envelope = json!({"objects": valid["objects"]});
        for ctype in ["application/json", "text/plain", "application/stix+json;version=2.1", "application/taxii+json;version=2.0", "multipart/form-data", "application/x-www-form-urlencoded", "", "application/taxii+xml"] {
            let mut req = s.admin.post(taxii_post.as_str()).header("accept", TAXII).body(envelope.to_string());
            if !ctype.is_empty() {
                req = req.header("content-type", ctype);
            }
            s.expect("media-type", &format!("POST content-type {ctype:?}"), req, &[415], &["unsupported-media-type"], false).await;
        }
    });

    let mut all_clean = true;
    for (class, (tried, clean)) in &s.tally {
        eprintln!("HOSTILE class={class} tried={tried} rejected_cleanly={clean}");
        all_clean &= tried == clean;
    }
    let total: usize = s.tally.values().map(|t| t.0).sum();
    eprintln!("HOSTILE total tried={total} in {:?}", started.elapsed());
    for f in s.failures.iter().take(60) {
        eprintln!("NOT CLEAN {f}");
    }
    assert!(
        all_clean,
        "{} inputs were not refused cleanly",
        s.failures.len()
    );
    assert!(total >= 300, "only {total} hostile inputs");
    // The node still works.
    rt.block_on(async {
        let r = s.admin.get(s.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    });
}

/// A stream of ready chunks (for a request body without a length).
fn futures_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + Sync + 'static {
    struct Chunks(std::vec::IntoIter<Result<Vec<u8>, std::io::Error>>);
    impl futures_core::Stream for Chunks {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Chunks(chunks.into_iter())
}

/// A raw TLS connection to the node as `identity`.
async fn tls_connect(
    fed: &Federation,
    addr: &str,
    identity: &synergia::keys::tls::CertifiedKey,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(fed.ca_path()).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let certs: Vec<_> = CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).unwrap();
    let cc = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(certs, key)
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cc))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap()
}

/// Reads until the peer closes the connection or `limit` passes; returns what was
/// read and whether it closed.
async fn read_until_closed<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    limit: Duration,
) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

#[test]
fn hostile_clients_are_cut_off_and_the_node_keeps_answering() {
    let fed = Federation::new(&["alpha", "beta"], &[]);
    let mut cfg = fed.config("alpha");
    cfg.limits.max_body_bytes = MAX_BODY;
    cfg.limits.header_timeout_secs = 2;
    cfg.limits.handshake_timeout_secs = 2;
    cfg.limits.request_timeout_secs = 3;
    cfg.limits.max_connections = 20;
    cfg.peers.clear();
    let node = RunningNode::start(cfg);
    let addr = node.url.trim_start_matches("https://").to_string();
    let admin_id = fed.admin_identity("alpha");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = https_client(&fed.ca_path(), Some(&admin_id));
        let health = format!("{}/healthz", node.url);

        // Slow-loris: headers one byte at a time; the node closes the connection after
        // the header timeout, and a normal client is answered meanwhile.
        let mut tls = tls_connect(&fed, &addr, &admin_id).await;
        let t = Instant::now();
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.unwrap();
        let mut closed_after = None;
        for i in 0..40 {
            if tls.write_all(format!("X-Slow-{i}: y\r\n").as_bytes()).await.is_err() || tls.flush().await.is_err() {
                closed_after = Some(t.elapsed());
                break;
            }
            if i == 2 {
                let r = client.get(&health).send().await.unwrap();
                assert_eq!(r.status(), 200, "a normal client is answered during slow-loris");
            }
            let (_, closed) = read_until_closed(&mut tls, Duration::from_millis(500)).await;
            if closed {
                closed_after = Some(t.elapsed());
                break;
            }
        }
        let closed_after = closed_after.expect("slow-loris connection still open after 20 s");
        assert!(closed_after < Duration::from_secs(6), "closed after {closed_after:?}");
        eprintln!("slow-loris headers: connection closed after {closed_after:?} (header timeout 2 s)");

        // Slow body: a declared length, a few bytes a second: 408 request-timeout.
        let mut tls = tls_connect(&fed, &addr, &admin_id).await;
        let t = Instant::now();
        tls.write_all(b"POST /api/v1/bundles HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"type\":").await.unwrap();
        let mut got = Vec::new();
        for _ in 0..20 {
            let _ = tls.write_all(b" ").await;
            let _ = tls.flush().await;
            let (b, closed) = read_until_closed(&mut tls, Duration::from_millis(500)).await;
            got.extend_from_slice(&b);
            if closed || !got.is_empty() {
                break;
            }
        }
        let text = String::from_utf8_lossy(&got).to_string();
        assert!(text.starts_with("HTTP/1.1 408"), "slow body answer: {text:?}");
        assert!(text.contains("request-timeout"), "{text}");
        eprintln!("slow body: 408 request-timeout after {:?} (request timeout 3 s)", t.elapsed());
        let r = client.get(&health).send().await.unwrap();
        assert_eq!(r.status(), 200);

        // Idle TLS connections under the limit do not stop a normal client.
        let mut idle = Vec::new();
        for _ in 0..10 {
            idle.push(tls_connect(&fed, &addr, &admin_id).await);
        }
        let r = client.get(&health).send().await.unwrap();
        assert_eq!(r.status(), 200, "answered with 10 idle connections open");
        // …and are closed by the header timeout.
        for c in idle.iter_mut() {
            let (_, closed) = read_until_closed(c, Duration::from_secs(8)).await;
            assert!(closed, "an idle TLS connection was never closed");
        }
        drop(idle);

        // Idle connections past max_connections: the extra ones are closed at once;
        // the held ones are closed by the handshake timeout, after which a normal
        // client is answered again.
        let mut held = Vec::new();
        for _ in 0..30 {
            held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let t = Instant::now();
        let mut closed_at_once = 0;
        for c in held.iter_mut().skip(20) {
            let (_, closed) = read_until_closed(c, Duration::from_millis(500)).await;
            closed_at_once += usize::from(closed);
        }
        assert!(closed_at_once >= 9, "only {closed_at_once} of 10 extra connections were closed at once");
        let fresh = https_client(&fed.ca_path(), Some(&admin_id));
        let answered = loop {
            if let Ok(r) = fresh.get(&health).timeout(Duration::from_secs(2)).send().await
                && r.status() == 200
            {
                break t.elapsed();
            }
            assert!(t.elapsed() < Duration::from_secs(15), "the node stopped answering after idle connections");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        for c in held.iter_mut().take(20) {
            let (_, closed) = read_until_closed(c, Duration::from_secs(5)).await;
            assert!(closed, "an idle connection holding a slot was never closed");
        }
        eprintln!("idle connections: {closed_at_once} extra closed at once, normal client answered after {answered:?}");
    });
}
