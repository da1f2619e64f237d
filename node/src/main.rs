//! The `synergia` binary: argument parsing and error reporting only; every behaviour
//! lives in the library.

mod cli;

/// mimalloc instead of the system allocator: parsing and validating STIX allocates and
/// frees millions of small strings and map nodes, and glibc's allocator spent a third
/// of a federation sync in malloc, free and page zeroing (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
