//! Command output on standard output.
//!
//! A reader that stops reading (`synergia status | head`, `synergia gen | head -c 100`)
//! ends the command quietly with status 0, as Unix tools do: `println!` would panic
//! and a write would end in an error message. The `print!`/`println!` macros of the
//! commands (defined in `cli/mod.rs`) come here.

use std::io::Write as _;

/// Ends the process quietly (status 0) when `e` says the reader of standard output
/// has gone; otherwise gives `e` back. Only for writes to standard output: a broken
/// pipe to a node is a real failure.
pub fn closed_quietly(e: std::io::Error) -> std::io::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    e
}

/// Writes `args` (and a newline) to standard output.
pub fn print(args: std::fmt::Arguments<'_>, newline: bool) {
    let mut o = std::io::stdout().lock();
    let written = o
        .write_fmt(args)
        .and_then(|()| if newline { o.write_all(b"\n") } else { Ok(()) });
    if let Err(e) = written {
        let e = closed_quietly(e);
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(i32::from(super::EXIT_ERROR));
    }
}
