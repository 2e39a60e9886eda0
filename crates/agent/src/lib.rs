//! The agent: captures frames (live or from a file), decodes them and publishes MessagePack
//! batches to NATS JetStream. It is also the only reader of capture files: [`records`] yields
//! the decoded records of a file to `nta decode`, `nta analyze` and training.

pub mod capture;
mod config;
pub mod decode;
mod frames;
mod metrics;
mod pcapfile;
pub mod publisher;
pub mod queue;
pub mod records;
pub mod service;
pub mod source;

pub use records::{for_each_chunk, for_each_record, records_from_file, FileStats, FrameDecoder};
pub use service::{run, AgentConfig, AgentSummary, Input};
pub mod offline;
