//! The binary's allocator: mimalloc (windowing allocates and frees many small per-key states;
//! it measured faster than glibc's here), and when it gives freed memory back. The window
//! bench example (`crates/bench/examples/bench_windows.rs`) includes this file, so it measures
//! what `nta bench windows` does.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (the `mi_option_e` enum in its `mimalloc.h`, v2 and v3).
const MI_OPTION_PURGE_DELAY: i32 = 15;

/// How the process gets and returns memory; measured with `nta bench windows`, whose spoofed
/// case (a million keys' states allocated and freed every few seconds) is what a flood does:
///
/// * Freed memory goes back to the system after 10 s unused (jemalloc's default decay), not
///   mimalloc's 1 s: a closed window's states are freed and the next windows' allocated
///   moments later, and memory handed back after 1 s returned as fresh pages the kernel zeroed
///   again (1 500 page faults of 2 MiB against 340, the first touch). After a flood the memory
///   still returns, 10 s later.
/// * No transparent huge pages for this process: every 2 MiB page the kernel hands out is
///   zeroed whole, and on a virtual machine its first touch is slow; the flood case spent
///   0.8 s of 2 s in the kernel with them, 0.2 s without (1.0 -> 1.5 M records/s), the
///   1 000-source case the same within noise.
///
/// `MIMALLOC_PURGE_DELAY` (milliseconds) and `MIMALLOC_ALLOW_THP` still decide when set.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: called first thing in `main`, before any other thread exists (the option
        // setter is not thread-safe); the option takes milliseconds.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 10_000) };
    }
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: prctl with integer arguments only; it sets a flag of this process (the
        // kernel checks it at every fault, so memory mapped before this call is covered too).
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}
