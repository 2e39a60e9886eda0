//! The binary's allocator: mimalloc (windowing allocates and frees many small per-key states;
//! it measured faster than glibc's here), and how it gives memory back. The window bench
//! example (`crates/bench/examples/bench_windows.rs`) includes this file, so it measures what
//! `nta bench windows` does.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_decommits` (the `mi_option_e` enum in its `mimalloc.h`).
const MI_OPTION_PURGE_DECOMMITS: i32 = 5;

/// Freed memory that mimalloc hands back is *reset* (the kernel may take the pages when it needs
/// them: MADV_FREE) rather than decommitted (MADV_DONTNEED). The windower frees every closed
/// window's states and allocates the next ones' a moment later; decommitted pages came back
/// as fresh pages the kernel had to zero again, thousands of page faults per minute of traffic
/// (`nta bench windows`: 5 000-10 000 page faults against 300, and 5-10% of its time). The
/// environment variable `MIMALLOC_PURGE_DECOMMITS` still decides when set.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DECOMMITS").is_none() {
        // SAFETY: called first thing in `main`, before any other thread exists (the option
        // setter is not thread-safe); the option takes an integer, 0 = reset.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DECOMMITS, 0) };
    }
}
