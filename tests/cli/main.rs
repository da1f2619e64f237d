//! The command line against real nodes and files: every command, key management, and
//! offline validation. One test binary (its modules were three) so that CI links it
//! once.

#[path = "../common/mod.rs"]
mod common;

use std::process::{Command, Output};

/// Runs the binary with `args` (logging at warn).
pub(crate) fn synergia(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synergia"))
        .args(args)
        .env("SYNERGIA_LOG", "warn")
        .output()
        .unwrap()
}

/// Its standard output as text.
pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Exit status and both outputs, for assertion messages.
pub(crate) fn describe(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        String::from_utf8_lossy(&o.stderr)
    )
}

mod commands;
mod keys;
mod roster;
mod validate;
