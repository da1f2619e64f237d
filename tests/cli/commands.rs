//! The `synergia` binary as users meet it: help for every command, clear errors with
//! a non-zero exit for bad config, missing key files, unreachable nodes and invalid
//! bundles, the demo's numbers, and `/metrics` that a Prometheus parser accepts.

use crate::common;

use common::*;
use std::process::{Command, Output};
use synergia::workload::{GenOptions, bundle, is_shared};

const BIN: &str = env!("CARGO_BIN_EXE_synergia");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn every_command_has_help() {
    let top = run(&["--help"]);
    assert!(top.status.success());
    let commands = [
        "serve", "demo", "push", "status", "export", "lookup", "keys", "verify", "validate",
        "rebuild", "gen", "retract",
    ];
    for c in commands {
        assert!(text(&top).contains(c), "top-level help lists {c}");
        let o = run(&[c, "--help"]);
        assert!(o.status.success(), "{c} --help: {}", text(&o));
        assert!(text(&o).contains("Usage"), "{c}");
    }
    for k in ["init-federation", "rotate", "revoke", "show"] {
        let o = run(&["keys", k, "--help"]);
        assert!(o.status.success(), "keys {k} --help");
    }
}

#[test]
fn bad_config_missing_key_and_unreachable_node_are_clear_errors() {
    let fed = Federation::new(&["alpha", "beta"], &[]);
    let cfg = fed.config_path("alpha");
    // Unknown key in the config: names the key.
    let bad = fed.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("default_tlp", "default_colour"),
    )
    .unwrap();
    let o = run(&["serve", "--config", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("default_colour"), "{}", text(&o));
    // A value out of range: names the key.
    let bad2 = fed.dir.path().join("bad2.toml");
    std::fs::write(
        &bad2,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("address = \"127.0.0.1:", "address = \"nowhere:"),
    )
    .unwrap();
    let o = run(&["serve", "--config", bad2.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("listen.address"), "{}", text(&o));
    // A bad --listen: named, before anything is opened.
    let o = run(&[
        "serve",
        "--config",
        cfg.to_str().unwrap(),
        "--listen",
        "nowhere:7443",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("--listen") && text(&o).contains("not IP:PORT"),
        "{}",
        text(&o)
    );
    // Missing signing key file: names the file.
    let c = fed.config("alpha");
    std::fs::remove_file(&c.signing.key_file).unwrap();
    let o = run(&["serve", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains(c.signing.key_file.file_name().unwrap().to_str().unwrap()),
        "{}",
        text(&o)
    );
    // A private key readable by others: refused, with the fix.
    use std::os::unix::fs::PermissionsExt as _;
    let c = fed.config("beta");
    std::fs::set_permissions(&c.tls.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run(&[
        "rebuild",
        "--config",
        fed.config_path("beta").to_str().unwrap(),
    ]);
    let _ = o;
    let o = run(&[
        "serve",
        "--config",
        fed.config_path("beta").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("chmod 600"), "{}", text(&o));
    // Unreachable node.
    let port = free_ports(1)[0];
    let o = run(&[
        "status",
        "--node",
        &format!("https://127.0.0.1:{port}"),
        "--ca",
        fed.ca_path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("cannot reach the node"), "{}", text(&o));
    // No node given at all.
    let o = Command::new(BIN)
        .args(["status"])
        .env_remove("SYNERGIA_NODE")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no node URL"), "{}", text(&o));
}

/// `serve --listen` serves on the address it names, not the config's.
#[test]
fn serve_listens_where_the_flag_says() {
    let fed = Federation::new(&["alpha"], &[]);
    let port = free_ports(1)[0];
    let configured = fed.config("alpha").listen.address;
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--config",
            fed.config_path("alpha").to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = https_client(&fed.ca_path(), None);
    let answered = rt().block_on(async {
        for _ in 0..200 {
            if let Ok(r) = client
                .get(format!("https://127.0.0.1:{port}/healthz"))
                .send()
                .await
            {
                return r.status().as_u16();
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        0
    });
    let on_config = std::net::TcpStream::connect(&configured).is_ok();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(answered, 200, "the node answers on the --listen address");
    assert!(!on_config, "nothing listens on the config's {configured}");
}

#[test]
fn push_lookup_status_export_against_a_node_and_metrics_parse() {
    let fed = Federation::new(&["alpha", "beta"], &[]);
    let node = RunningNode::start(fed.config("alpha"));
    let keys = fed.dir.path().join("keys/alpha");
    let client = |extra: &[&str]| -> Output {
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        args.extend([
            "--node".into(),
            node.url.clone(),
            "--ca".into(),
            fed.ca_path().display().to_string(),
            "--cert".into(),
            keys.join("admin.pem").display().to_string(),
            "--key".into(),
            keys.join("admin-key.pem").display().to_string(),
        ]);
        Command::new(BIN).args(&args).output().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    // Invalid bundle: exit 1, every error with its pointer.
    let mut b = bundle(&GenOptions {
        count: 20,
        seed: 1,
        origin: "alpha".into(),
        identity: None,
        overlap: 0.0,
        tlp: None,
    });
    b["objects"][4]["valid_from"] = serde_json::json!("not a time");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, b.to_string()).unwrap();
    let o = client(&["push", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("/objects/4/valid_from"), "{}", text(&o));
    // A good one: exit 0 and a summary.
    let good = dir.path().join("good.json");
    let b = bundle(&GenOptions {
        count: 200,
        seed: 1,
        origin: "alpha".into(),
        identity: None,
        overlap: 0.0,
        tlp: None,
    });
    std::fs::write(&good, b.to_string()).unwrap();
    let o = client(&["push", good.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!(
            "published {} objects",
            b["objects"].as_array().unwrap().len()
        )),
        "{}",
        text(&o)
    );
    // Lookup of a published value.
    let ind = b["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "indicator" && o["pattern"].as_str().unwrap().starts_with("[ipv4"))
        .unwrap();
    let ip = ind["pattern"].as_str().unwrap().split('\'').nth(1).unwrap();
    let o = client(&["lookup", ip, "evil.invalid"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(ind["id"].as_str().unwrap()),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("by alpha"), "{}", text(&o));
    // The /24 around it finds it too, saying by which address.
    let net = format!("{}.0/24", ip.rsplit_once('.').unwrap().0);
    let o = client(&["lookup", &net]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(ind["id"].as_str().unwrap()),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains(&format!("matched (as ipv4-addr:{ip})")),
        "{}",
        text(&o)
    );
    // Status table.
    // Status table: beta is configured but not running, so its row says it is down
    // and why, with the error's time.
    let o = client(&["status"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let mut lines = out.lines();
    assert!(
        lines.next().unwrap_or("").starts_with("node alpha "),
        "{out}"
    );
    let head = lines.next().unwrap_or("");
    for column in [
        "PEER",
        "UP",
        "LAST ATTEMPT",
        "LAST SUCCESS",
        "LAG ENV",
        "OBJ IN",
        "OBJ OUT",
        "WITHHELD",
    ] {
        assert!(head.contains(column), "{column}: {out}");
    }
    let row = lines.next().unwrap_or("");
    assert!(row.starts_with("beta ") && row.contains(" NO "), "{out}");
    assert!(row.contains("; last error 20"), "{out}");
    // Export as STIX and as CSV.
    let out = dir.path().join("feed.json");
    let o = client(&[
        "export",
        "--out",
        out.to_str().unwrap(),
        "--type",
        "indicator",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let feed: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(feed["objects"].as_array().unwrap().len(), 200);
    let o = client(&["export", "--format", "csv", "--tlp", "green"]);
    assert!(o.status.success());
    let csv = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        csv.starts_with("observable,kind,value,corroboration"),
        "{csv}"
    );
    assert!(
        csv.lines().skip(1).all(|l| !l.ends_with(",amber")),
        "green ceiling"
    );
    // /metrics parses with the Prometheus reference parser.
    let rt = rt();
    let metrics = rt.block_on(async {
        https_client(&fed.ca_path(), Some(&fed.admin_identity("alpha")))
            .get(format!("{}/metrics", node.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    let mut child = Command::new(crate::common::reference_python())
        .arg(crate::common::workspace().join("tests/py/parse_metrics.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), metrics.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "prometheus parser: {}", text(&o));
    let families = String::from_utf8_lossy(&o.stdout);
    assert!(
        families.contains("synergia_published_objects counter"),
        "{families}"
    );
    assert!(
        families.contains("synergia_store_disk_bytes gauge"),
        "{families}"
    );
}

#[test]
fn demo_reports_what_the_vendors_published() {
    let count = 300u64;
    let o = run(&["demo", "--count", &count.to_string()]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("converged in"), "{out}");
    // Every vendor's objects reach the coordinator: 4 bundles of `count` indicators
    // plus identity, malware, infrastructure and relationships.
    let vendors = ["groupib", "trendmicro", "kaspersky", "teamcymru"];
    let per: usize = bundle(&GenOptions {
        count,
        seed: 2026,
        origin: "groupib".into(),
        identity: None,
        overlap: 0.3,
        tlp: None,
    })["objects"]
        .as_array()
        .unwrap()
        .len();
    assert!(
        out.contains(&format!("{} objects (latest versions)", per * 4)),
        "{out}"
    );
    // Corroboration: shared observables reported by all four, the rest by one each.
    let shared = (0..count).filter(|&i| is_shared(2026, i, 0.3)).count();
    let single = (count as usize - shared) * vendors.len();
    assert!(
        out.contains(&format!("4 member(s): {shared:>7} observables")),
        "{out}"
    );
    assert!(
        out.contains(&format!("1 member(s): {single:>7} observables")),
        "{out}"
    );
    assert!(out.contains("agree"), "{out}");
}

/// A reader that stops reading (`| head`) ends a command quietly, status 0: no panic,
/// no error message. Both ways commands write are tried: a stream (`gen`) and lines
/// (`validate` of a document with thousands of findings).
#[test]
fn a_reader_that_stops_reading_ends_the_command_quietly() {
    use std::io::Read as _;
    let dir = tempfile::tempdir().unwrap();
    let many = dir.path().join("many.json");
    let objects: Vec<serde_json::Value> = (0..5000)
        .map(|i| serde_json::json!({"type": "indicator", "id": format!("indicator--{i}")}))
        .collect();
    std::fs::write(
        &many,
        serde_json::to_vec(
            &serde_json::json!({"type": "bundle", "id": "bundle--x", "objects": objects}),
        )
        .unwrap(),
    )
    .unwrap();
    let runs: [&[&str]; 2] = [
        &["gen", "--count", "200000"],
        &["validate", many.to_str().unwrap()],
    ];
    for args in runs {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_synergia"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 100];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        // The pipe's reading end is closed here.
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("error"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn push_splits_what_the_node_would_refuse_and_a_push_stopped_half_way_resumes_without_duplicates() {
    let fed = Federation::new(&["alpha", "beta"], &[]);
    let mut cfg = fed.config("alpha");
    // A small limit, so that a modest bundle needs several parts.
    cfg.limits.max_body_bytes = 1 << 20;
    let node = RunningNode::start(cfg);
    let keys = fed.dir.path().join("keys/alpha");
    let client = |extra: &[&str]| -> Output {
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        args.extend([
            "--node".into(),
            node.url.clone(),
            "--ca".into(),
            fed.ca_path().display().to_string(),
            "--token-file".into(),
            keys.join("admin-token").display().to_string(),
        ]);
        Command::new(BIN).args(&args).output().unwrap()
    };
    let versions = || node.node.embedded("test").unwrap().read().version_count();
    let envelopes = || node.node.embedded("test").unwrap().read().envelope_count();
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(&GenOptions {
        count: 4000,
        seed: 7,
        origin: "alpha".into(),
        identity: None,
        overlap: 0.0,
        tlp: None,
    });
    let n = b["objects"].as_array().unwrap().len();
    let text_of = |b: &serde_json::Value| b.to_string();
    let size = text_of(&b).len();
    assert!(size > 2 << 20, "{size}");

    // A push stops half-way: an object near the end is invalid. The parts before it
    // are published and stay so.
    let mut broken = b.clone();
    let bad_at = n * 3 / 4;
    broken["objects"][bad_at]["valid_from"] = serde_json::json!("not a time");
    let path = dir.path().join("bundle.json");
    std::fs::write(&path, text_of(&broken)).unwrap();
    let o = client(&["push", path.to_str().unwrap(), "--max-part-bytes", "400000"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("refused"), "{out}");
    assert!(out.contains("are published"), "{out}");
    let first = versions();
    assert!(first > 0 && first < n, "{first} of {n}");
    let envelopes_first = envelopes();

    // Fixed and pushed again with the default part size: the node's 413 says its
    // limit, the command sends parts under it, and nothing is published twice.
    std::fs::write(&path, text_of(&b)).unwrap();
    let o = client(&["push", path.to_str().unwrap()]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains(" parts)"), "{out}");
    assert!(
        out.contains(&format!("published {} objects", n - first)),
        "{out}"
    );
    assert!(out.contains(&format!("{first} already held")), "{out}");
    assert_eq!(versions(), n);
    let envelopes_all = envelopes();
    assert!(envelopes_all > envelopes_first);

    // Once more: everything is held, nothing is signed.
    let o = client(&["push", path.to_str().unwrap()]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("published 0 objects in 0 envelopes"), "{out}");
    assert_eq!(versions(), n);
    assert_eq!(envelopes(), envelopes_all);

    // An object larger than any part: refused by the command before sending, with
    // the object named.
    let mut huge = b.clone();
    huge["objects"][1]["description"] = serde_json::json!("x".repeat(600_000));
    std::fs::write(&path, text_of(&huge)).unwrap();
    let o = client(&["push", path.to_str().unwrap(), "--max-part-bytes", "400000"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("object 1"), "{}", text(&o));
    assert_eq!(envelopes(), envelopes_all);
}
