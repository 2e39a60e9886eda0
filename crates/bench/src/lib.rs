//! Benchmarks behind `nta bench decode|gen-pcap|windows`, kept out of the stages' libraries:
//!
//! * [`capture`]: a deterministic synthetic capture (`nta bench gen-pcap`; also a test input);
//! * [`decode`]: decode + MessagePack batch encoding, as the agent's capture loop does;
//! * [`windows`]: windower throughput and memory on synthetic streams (also
//!   `cargo run --release -p bench --example bench_windows`);
//! * [`ingest`]: the ingestor's write path (`store::packets`, `store::rollup`) against
//!   PostgreSQL's own CSV COPY (`nta bench ingest`).

pub mod capture;
pub mod decode;
pub mod ingest;
pub mod windows;

pub use capture::generate_capture;
pub use decode::{run_decode_bench, DEFAULT_FRAMES};
pub use ingest::run_ingest_bench;
pub use windows::run_window_bench;
