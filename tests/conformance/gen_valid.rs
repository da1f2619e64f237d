//! What `synergia gen` writes must be valid STIX 2.1, by our validator and by the
//! OASIS reference validator: demos, benchmarks and federation tests all start from it,
//! and a generator that drifted from the specification would hide validator bugs.

use std::path::PathBuf;
use std::process::Command;

use synergia::stix::tlp::TlpLevel;
use synergia::stix::validate::validate_bundle;
use synergia::workload::{GenOptions, write_bundle};

/// Seeds, origins, overlaps and TLP choices that between them exercise every branch
/// of the generator (shared and private observables of every kind, every TLP level).
fn option_sets() -> Vec<GenOptions> {
    let mut v = Vec::new();
    for (seed, origin, overlap) in [
        (1, "kaspersky", 0.3),
        (42, "groupib", 0.0),
        (42, "trendmicro", 1.0),
        (7, "interpol", 0.5),
    ] {
        v.push(GenOptions {
            count: 300,
            seed,
            origin: origin.into(),
            identity: None,
            overlap,
            tlp: None,
        });
    }
    for tlp in [TlpLevel::Red, TlpLevel::AmberStrict] {
        v.push(GenOptions {
            count: 300,
            seed: 9,
            origin: "teamcymru".into(),
            identity: Some("identity--7a3c1f57-7c2c-4a3e-9a1b-5f0d7e9c2b11".into()),
            overlap: 0.3,
            tlp: Some(tlp),
        });
    }
    v
}

#[test]
fn generated_bundles_are_valid_for_us_and_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = Vec::new();
    for (i, opts) in option_sets().iter().enumerate() {
        let mut bytes = Vec::new();
        let n = write_bundle(opts, &mut bytes).unwrap();
        assert!(n > 300, "{opts:?}: only {n} objects");
        let doc = synergia::json::from_slice_strict(&bytes).unwrap();
        let report = validate_bundle(&doc);
        let errors: Vec<_> = report.errors().collect();
        assert!(errors.is_empty(), "{opts:?}: {errors:#?}");
        let path = dir.path().join(format!("gen-{i}.json"));
        std::fs::write(&path, &bytes).unwrap();
        files.push(path);
    }

    let out = Command::new(crate::common::reference_python())
        .arg(crate::common::workspace().join("tests/py/validate_bundles.py"))
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "validate_bundles.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for f in &files {
        let v = &verdicts[f.to_string_lossy().as_ref()];
        assert_eq!(v["valid"], true, "{}: reference says {v}", f.display());
    }
}
