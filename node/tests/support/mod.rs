//! Helpers shared by this crate's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The workspace root (parent of `node/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("node/ has a parent")
        .to_path_buf()
}

/// Path of a Python interpreter that has the OASIS reference tools installed,
/// creating the virtual environment on first use (`tests/py/setup.sh`).
///
/// The comparison tests must run in CI, so a missing Python is a failure, not a skip.
pub fn reference_python() -> PathBuf {
    let script = workspace_root().join("tests/py/setup.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run tests/py/setup.sh");
    assert!(
        out.status.success(),
        "tests/py/setup.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}
