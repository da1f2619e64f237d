//! Where PostgreSQL's server binaries are and how to run them: shared by the tests'
//! throwaway cluster (`common::pg`) and the benchmark harness's
//! (`node/examples/bench_all/postgres.rs`), which includes this file by path.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The server binaries: `SYNERGIA_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's `postgresql` package), else `PATH`.
pub fn bin_dir() -> Result<PathBuf, String> {
    if let Some(d) = std::env::var_os("SYNERGIA_PG_BIN") {
        return Ok(PathBuf::from(d));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Ok(bin);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if d.join("initdb").exists() && d.join("postgres").exists() {
                return Ok(d);
            }
        }
    }
    Err(
        "PostgreSQL server binaries (initdb, postgres) not found: install Debian's \
         `postgresql` package or set SYNERGIA_PG_BIN to their directory"
            .into(),
    )
}

/// Whether this process runs as root (PostgreSQL refuses to).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `program`, run as the unprivileged `nobody` when this process runs as root.
pub fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--reset-env",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}
