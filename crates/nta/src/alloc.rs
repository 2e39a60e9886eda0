//! The binary's allocator: mimalloc (windowing allocates and frees many small per-key states;
//! it measured faster than glibc's here), without transparent huge pages. The window bench
//! example (`crates/bench/examples/bench_windows.rs`) includes this file, so it measures what
//! `nta bench windows` does.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// No transparent huge pages for this process: the kernel zeroes each 2 MiB page whole on its
/// first touch, slowly on a virtual machine, and the windower keeps touching fresh memory as
/// it frees a closed window's states and allocates the next ones'. Measured with
/// `nta bench windows`, spoofed case (a million keys' states allocated and freed every few
/// seconds, what a flood does): 0.8 s of its 2 s in the kernel with them, 0.2 s without
/// (1.0 -> 1.4 M records/s); the 1 000-source case the same within noise. Setting
/// `MIMALLOC_ALLOW_THP` (mimalloc's own switch) leaves the choice to it.
pub fn tune() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: prctl with integer arguments only; it sets a flag of this process that the
        // kernel checks at every fault, so memory mapped before this call is covered too.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}
