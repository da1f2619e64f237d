//! The `synergia` binary: argument parsing and error reporting only; every behaviour
//! lives in the library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
