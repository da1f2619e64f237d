//! The `synergia` binary: argument parsing and error reporting only; every behaviour
//! lives in the library.

mod cli;

/// mimalloc instead of the system allocator: parsing and validating STIX allocates and
/// frees millions of small strings and map nodes, and glibc's allocator spent a third
/// of a federation sync in malloc, free and page zeroing (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Returns memory freed so far to the operating system. mimalloc keeps freed pages for
/// reuse; after start-up (the index scan, the view built by doubling) that is a few
/// hundred megabytes at a million objects that the node would otherwise hold for a
/// while.
pub(crate) fn give_back_freed_memory() {
    // SAFETY: mi_collect only walks the allocator's own free lists; it has no
    // preconditions.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

fn main() -> std::process::ExitCode {
    cli::main()
}
