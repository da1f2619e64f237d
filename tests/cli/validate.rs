//! `synergia validate` through the real binary: verdicts, exit status and output.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn bundles() -> PathBuf {
    crate::common::workspace().join("tests/data/bundles")
}

fn validate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synergia"))
        .arg("validate")
        .args(args)
        .output()
        .unwrap()
}

fn path(rel: &str) -> String {
    bundles().join(rel).to_string_lossy().into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn valid_corpus_file_exits_zero() {
    let o = validate(&[&path(
        "valid/oasis_examples_indicator-for-c2-ip-address.json",
    )]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains(": valid ("), "{}", stdout(&o));
}

#[test]
fn invalid_file_exits_one_with_object_id_and_pointer() {
    let o = validate(&[
        &path("valid/gen_campaign.json"),
        &path("invalid/gen_confidence_negative.json"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("gen_campaign.json: valid"), "{out}");
    assert!(
        out.contains("gen_confidence_negative.json: INVALID"),
        "{out}"
    );
    assert!(
        out.contains(
            "error [out-of-range] indicator--e25827de-5505-4a0f-9865-1eeb867f0e8a at /objects/0/confidence"
        ),
        "{out}"
    );
}

#[test]
fn quiet_prints_only_verdicts() {
    let o = validate(&["--quiet", &path("invalid/gen_confidence_negative.json")]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("INVALID"), "{out}");
}

#[test]
fn unreadable_file_exits_two_and_is_named() {
    let missing = bundles().join("no-such-bundle.json");
    let o = validate(&[&path("valid/gen_campaign.json"), &missing.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no-such-bundle.json"), "{err}");
    // The readable file still gets its verdict.
    assert!(stdout(&o).contains("gen_campaign.json: valid"));
}

#[test]
fn malformed_json_is_invalid_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("dup.json");
    std::fs::write(&f, "{\n \"type\": \"bundle\",\n \"type\": \"bundle\"\n}\n").unwrap();
    let o = validate(&[&f.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("[invalid-json]"), "{out}");
    assert!(out.contains("line 3"), "{out}");
}

#[test]
fn json_output_parses_and_reads_standard_input() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_synergia"))
        .args([
            "validate",
            "--json",
            &path("invalid/gen_confidence_negative.json"),
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let valid = std::fs::read(bundles().join("valid/gen_campaign.json")).unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &valid).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let results = v.as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["valid"], false);
    assert_eq!(
        results[0]["findings"][0]["pointer"],
        "/objects/0/confidence"
    );
    assert_eq!(results[0]["findings"][0]["severity"], "error");
    assert_eq!(results[1]["file"], "-");
    assert_eq!(results[1]["valid"], true);
    assert_eq!(results[1]["findings"], serde_json::json!([]));
}

#[test]
fn large_generated_bundle_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big.json");
    let gen_status = Command::new(env!("CARGO_BIN_EXE_synergia"))
        .args([
            "gen", "--count", "20000", "--seed", "3", "--origin", "groupib", "--out",
        ])
        .arg(&f)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(gen_status.success());
    let o = validate(&["--quiet", &f.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}
