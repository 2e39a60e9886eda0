//! The agent: captures frames (live or from a file), decodes them and publishes MessagePack
//! batches to NATS JetStream.

pub mod decode;
pub mod source;
