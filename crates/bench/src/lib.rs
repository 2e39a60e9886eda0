//! Benchmarks behind `nta bench decode|gen-pcap|windows|ingest|e2e|rescore|notify`, kept out of the stages' libraries:
//!
//! * [`capture`]: a deterministic synthetic capture (`nta bench gen-pcap`; also a test input);
//! * [`decode`]: decode + MessagePack batch encoding, as the agent's capture loop does;
//! * [`windows`]: windower throughput and memory on synthetic streams (also
//!   `cargo run --release -p bench --example bench_windows`);
//! * [`ingest`]: the ingestor's write path (`store::packets`, `store::rollup`) against
//!   PostgreSQL's own CSV COPY (`nta bench ingest`);
//! * [`e2e`]: the whole stack, agent to predictions, as `nta` processes on a private
//!   nats-server and a throw-away database (`nta bench e2e`);
//! * [`rescore`]: the live ingestor and windower with and without a concurrent `nta rescore`
//!   (`nta bench rescore`);
//! * [`notify`]: alert-to-notification latency through `nta run --target notifier` and a
//!   local webhook (`nta bench notify`).

pub mod capture;
pub mod decode;
pub mod e2e;
pub mod ingest;
pub mod notify;
pub mod rescore;
pub mod windows;

pub use capture::generate_capture;
pub use decode::{run_decode_bench, DEFAULT_FRAMES};
pub use e2e::{run_e2e_bench, E2eOptions};
pub use ingest::run_ingest_bench;
pub use notify::{run_notify_bench, NotifyBenchOptions};
pub use rescore::{run_rescore_bench, RescoreBenchOptions};
pub use windows::run_window_bench;
