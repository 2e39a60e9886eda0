//! Benchmarks behind `nta bench decode|gen-pcap|windows`, kept out of the stages' libraries:
//!
//! * [`capture`]: a deterministic synthetic capture (`nta bench gen-pcap`; also a test input);
//! * [`decode`]: decode + MessagePack batch encoding, as the agent's capture loop does;
//! * [`windows`]: windower throughput and memory on synthetic streams (also
//!   `cargo run --release -p bench --example bench_windows`).
//!
//! `nta bench ingest` is still the ingestor's own (`ingestor::bench`).

pub mod capture;
pub mod decode;
pub mod windows;

pub use capture::generate_capture;
pub use decode::{run_decode_bench, DEFAULT_FRAMES};
pub use windows::run_window_bench;
