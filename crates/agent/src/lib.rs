//! The agent: captures frames (live or from a file), decodes them and publishes MessagePack
//! batches to NATS JetStream.

pub mod decode;
pub mod source;
pub mod capture;
pub mod publisher;
pub mod queue;
pub mod service;
mod config;

pub use service::{run, AgentConfig, AgentSummary, Input};
pub mod offline;
pub mod bench;
