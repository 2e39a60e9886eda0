//! `cargo run --release -p bench --example bench_windows [PACKETS] [SOURCES]`
//! (the same as `nta bench windows`, with the nta binary's allocator and its settings).
#[path = "../../nta/src/alloc.rs"]
mod alloc;

fn main() {
    alloc::tune();
    let mut a = std::env::args().skip(1);
    let packets = a.next().and_then(|s| s.parse().ok()).unwrap_or(4_000_000);
    let sources = a.next().and_then(|s| s.parse().ok()).unwrap_or(1_000);
    print!("{}", bench::run_window_bench(packets, sources));
}
