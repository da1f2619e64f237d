//! Compares Synergia's STIX 2.1 validator with the OASIS reference validator
//! (`stix2-validator`) over the bundle corpus in `tests/data/bundles/`.
//!
//! - `valid/` and `invalid/`: both validators must agree, and agree with the label.
//! - `spec_over_reference/`: the specification and the reference disagree; we follow
//!   the specification (the file name's `valid_`/`invalid_` prefix) and assert that the
//!   reference still says the opposite, so a reference fix is noticed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use synergia::stix::validate::{Report, validate_bundle};

fn data_dir() -> PathBuf {
    crate::common::workspace().join("tests/data/bundles")
}

fn json_files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data_dir().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("json"))
        .collect();
    v.sort();
    v
}

fn ours(path: &Path) -> Report {
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    validate_bundle(&doc)
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Runs the reference validator once over every file.
fn reference(files: &[PathBuf]) -> BTreeMap<String, (bool, Vec<String>)> {
    let py = crate::common::reference_python();
    let script = crate::common::workspace().join("tests/py/validate_bundles.py");
    let out = Command::new(py).arg(script).args(files).output().unwrap();
    assert!(
        out.status.success(),
        "validate_bundles.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, r)| {
            let errors = r["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap_or_default().to_string())
                .collect();
            (k.clone(), (r["valid"].as_bool().unwrap(), errors))
        })
        .collect()
}

#[test]
fn verdicts_match_reference_validator() {
    let valid = json_files("valid");
    let invalid = json_files("invalid");
    let spec_over = json_files("spec_over_reference");
    assert!(valid.len() >= 60, "only {} valid bundles", valid.len());
    assert!(
        invalid.len() >= 60,
        "only {} invalid bundles",
        invalid.len()
    );

    let all: Vec<PathBuf> = [&valid, &invalid, &spec_over]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let refv = reference(&all);
    let verdict = |p: &Path| {
        refv.get(&p.to_string_lossy().into_owned())
            .cloned()
            .unwrap()
    };

    let mut problems = Vec::new();
    for (files, label) in [(&valid, true), (&invalid, false)] {
        for f in files {
            let r = ours(f);
            let (ref_ok, ref_errors) = verdict(f);
            if r.is_valid() != label {
                problems.push(format!(
                    "{}: labelled {} but ours says {}: {:?}",
                    name(f),
                    if label { "valid" } else { "invalid" },
                    r.is_valid(),
                    r.errors().collect::<Vec<_>>()
                ));
            }
            if r.is_valid() != ref_ok {
                problems.push(format!(
                    "{}: ours {} vs reference {} (reference errors: {ref_errors:?}; ours: {:?})",
                    name(f),
                    r.is_valid(),
                    ref_ok,
                    r.errors().map(|e| e.code).collect::<Vec<_>>()
                ));
            }
        }
    }
    for f in &spec_over {
        let n = name(f);
        let spec_valid = n.starts_with("valid_");
        assert!(
            spec_valid || n.starts_with("invalid_"),
            "{n}: name must state the verdict"
        );
        let r = ours(f);
        if r.is_valid() != spec_valid {
            problems.push(format!(
                "{n}: ours {} but the specification says {spec_valid}",
                r.is_valid()
            ));
        }
        if verdict(f).0 == spec_valid {
            problems.push(format!(
                "{n}: the reference now agrees with the specification; move it"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} disagreements:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The shared OASIS corpus (copied into `valid/` as `oasis_*`) has no errors at all.
#[test]
fn oasis_corpus_has_no_errors() {
    let files: Vec<PathBuf> = json_files("valid")
        .into_iter()
        .filter(|p| name(p).starts_with("oasis_"))
        .collect();
    assert_eq!(files.len(), 9);
    for f in files {
        let r = ours(&f);
        assert_eq!(r.errors().count(), 0, "{}: {:?}", name(&f), r.findings);
    }
}

/// Every invalid bundle is rejected for a reason we can point at.
#[test]
fn invalid_findings_carry_pointers() {
    for f in json_files("invalid") {
        let r = ours(&f);
        for e in r.errors() {
            assert!(
                e.pointer.is_empty() || e.pointer.starts_with('/'),
                "{}: {e:?}",
                name(&f)
            );
        }
    }
}
