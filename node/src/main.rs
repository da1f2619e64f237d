//! The `synergia` binary: argument parsing and error reporting only; every behaviour
//! lives in the library.

mod cli;

synergia::use_node_allocator!();

fn main() -> std::process::ExitCode {
    cli::main()
}
