//! Compares our STIX pattern parser with the OASIS reference validator
//! (`stix2-patterns`) over the corpus in `tests/data/patterns/`.
//!
//! Every pattern in `valid.txt` must be accepted by both, every pattern in
//! `invalid.txt` rejected by both, and every case in `spec_over_reference.txt`
//! must show the documented, deliberate disagreement. The test lists every
//! mismatch at once rather than stopping at the first.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;

use synergia::stix::pattern::parse;

fn corpus_dir() -> PathBuf {
    crate::common::workspace().join("tests/data/patterns")
}

/// One pattern per line; blank lines and `#` comments skipped.
fn read_lines(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(corpus_dir().join(name)).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Expect {
    BothAccept,
    BothReject,
    OnlyWeAccept,
    OnlyWeReject,
}

fn corpus() -> Vec<(String, Expect, &'static str)> {
    let mut out = Vec::new();
    for p in read_lines("valid.txt") {
        out.push((p, Expect::BothAccept, "valid.txt"));
    }
    for p in read_lines("invalid.txt") {
        out.push((p, Expect::BothReject, "invalid.txt"));
    }
    for line in read_lines("spec_over_reference.txt") {
        let (tag, p) = line.split_once('\t').unwrap();
        let e = match tag {
            "accept" => Expect::OnlyWeAccept,
            "reject" => Expect::OnlyWeReject,
            other => panic!("bad tag {other:?} in spec_over_reference.txt"),
        };
        out.push((p.to_owned(), e, "spec_over_reference.txt"));
    }
    out
}

#[test]
fn corpus_is_large_distinct_and_labelled() {
    let valid = read_lines("valid.txt");
    let invalid = read_lines("invalid.txt");
    assert!(valid.len() >= 300, "valid.txt has {} patterns", valid.len());
    assert!(
        invalid.len() >= 100,
        "invalid.txt has {} patterns",
        invalid.len()
    );
    let mut seen = HashSet::new();
    for (p, _, file) in corpus() {
        assert!(seen.insert(p.clone()), "{file}: duplicate pattern {p}");
    }
}

#[test]
fn valid_patterns_round_trip_through_display() {
    for p in read_lines("valid.txt") {
        let ast = parse(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
        let text = ast.to_string();
        let again = parse(&text).unwrap_or_else(|e| panic!("{p} rendered as {text}: {e}"));
        assert_eq!(ast, again, "{p} rendered as {text}");
        assert_eq!(
            text,
            again.to_string(),
            "canonical text is not stable for {p}"
        );
    }
}

#[test]
fn parser_agrees_with_reference_validator() {
    let corpus = corpus();
    let py = crate::common::reference_python();
    let script = crate::common::workspace().join("tests/py/check_patterns.py");
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("patterns.txt");
    let mut body = String::new();
    for (p, _, _) in &corpus {
        assert!(!p.contains('\n'));
        body.push_str(p);
        body.push('\n');
    }
    std::fs::write(&list, body).unwrap();
    let out = Command::new(py).arg(&script).arg(&list).output().unwrap();
    assert!(
        out.status.success(),
        "check_patterns.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdicts.len(), corpus.len(), "reference skipped patterns");

    let mut failures = Vec::new();
    for ((pattern, expect, file), verdict) in corpus.iter().zip(&verdicts) {
        assert_eq!(verdict["pattern"].as_str(), Some(pattern.as_str()));
        let reference_ok = verdict["valid"].as_bool().unwrap();
        let ours = parse(pattern);
        let (want_ref, want_ours) = match expect {
            Expect::BothAccept => (true, true),
            Expect::BothReject => (false, false),
            Expect::OnlyWeAccept => (false, true),
            Expect::OnlyWeReject => (true, false),
        };
        if reference_ok != want_ref || ours.is_ok() != want_ours {
            failures.push(format!(
                "{file}: {pattern}\n    expected reference={want_ref} ours={want_ours}; \
                 reference={reference_ok} {:?}; ours={:?}",
                verdict["errors"],
                ours.err()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreement(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
