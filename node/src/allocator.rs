//! The memory allocator every Synergia program uses, and how it is tuned.
//!
//! mimalloc instead of the system allocator: parsing and validating STIX allocates and
//! frees millions of small strings and map nodes, and glibc's allocator spent a third
//! of a federation sync in malloc, free and page zeroing (docs/benchmarks.md).
//!
//! The binary, the examples and the benchmarks all declare it with
//! [`use_node_allocator!`](crate::use_node_allocator) so that measured figures are the
//! ones the node gets.
//!
//! The only unsafe code of the crate is here: three calls into mimalloc's C API, which
//! have no preconditions beyond the ones stated where they are made.
#![allow(unsafe_code)]

pub use mimalloc::MiMalloc;

/// mimalloc's `arena_eager_commit` option (mimalloc.h, `mi_option_e`).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// mimalloc's `purge_delay` option (mimalloc.h, `mi_option_e`), in milliseconds.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays with the allocator before it goes back to the system.
///
/// mimalloc's default (one second) returned the pages of a feed page's parsed
/// envelopes between one burst of work and the next, and the node faulted them in
/// again, zeroed, for the next page: in a five-member sync that was about a quarter of the
/// kernel's CPU time. Ten seconds (the order of jemalloc's dirty-page decay) keeps
/// them through a sync or a long publish; an idle node still gives them back, and
/// [`give_back_freed_memory`] still does at once (docs/benchmarks.md, "Federation
/// convergence").
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// Commits allocator memory as it is used rather than whole arenas up front.
///
/// With eager commit (mimalloc's default on Linux) pages the node touched again after
/// a purge came back as freshly zeroed transparent huge pages: page zeroing was a sixth
/// of the CPU profile of a five-member sync and the kernel a third of its CPU time;
/// committing on demand cut that kernel time by about 40% (docs/benchmarks.md). The
/// option is read when the first arena is created, which the runtime's first
/// allocations do before `main`, so [`use_node_allocator!`](crate::use_node_allocator)
/// runs this from the program's initialisers.
pub extern "C" fn tune() {
    // SAFETY: mi_option_set only stores the value; it runs before any thread exists,
    // as its documentation asks.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) }
    // A default only: `MIMALLOC_PURGE_DELAY` in the environment still sets it.
    // SAFETY: as above.
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
}

/// Returns memory freed so far to the operating system. mimalloc keeps freed pages for
/// reuse; after start-up (the index scan, the view built by doubling) that is a few
/// hundred megabytes at a million objects that the node would otherwise hold for a
/// while.
pub fn give_back_freed_memory() {
    // SAFETY: mi_collect only walks the allocator's own free lists; it has no
    // preconditions.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// Declares mimalloc as the program's global allocator, tuned by [`tune`] before
/// `main`.
#[macro_export]
macro_rules! use_node_allocator {
    () => {
        #[global_allocator]
        static GLOBAL: $crate::allocator::MiMalloc = $crate::allocator::MiMalloc;

        #[cfg(target_os = "linux")]
        #[used]
        #[unsafe(link_section = ".init_array")]
        static TUNE_ALLOCATOR: extern "C" fn() = $crate::allocator::tune;
    };
}
