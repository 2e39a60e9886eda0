//! The one owner of NATS plumbing: connecting ([`connect`]: credentials, TLS), the JetStream streams and consumers NTA relies
//! on ([`streams`]), their names ([`subjects`]), the consumer loop ([`consume`]), poison
//! messages ([`deadletter`]) and the crash-test hooks ([`failpoint`]). Message types stay in
//! `wire`; what a role does with a message stays in the role.

pub mod batch;
pub mod connect;
pub mod consume;
pub mod deadletter;
pub mod failpoint;
pub mod frames;
pub mod replay;
pub mod startup;
pub mod streams;
pub mod subjects;

pub use batch::decode_packet_batch;
pub use connect::{connect, Nats, NatsAuth};
pub use consume::{Backoff, PullConsumer, Shutdown};
pub use failpoint::Failpoint;
pub use streams::{ensure_alerts_stream, AlertLimits, FrameLimits, StreamLimits};
pub use subjects::*;
