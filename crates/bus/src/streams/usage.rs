//! Stream usage as gauges, so that an alert can say "NTA_PACKETS is 90% full" before the agent
//! starts dropping (`discard new`) or a consumer starts missing messages (`discard old`).
//! nats-server's own monitoring endpoint is JSON, not Prometheus, and Debian has no exporter for
//! it: the roles that read a stream export its state themselves. Several roles polling the same
//! stream export the same values (dashboards and rules take `max by (stream)`).

use async_nats::jetstream;
use std::time::Duration;

pub const BYTES: &str = "nta_stream_bytes";
pub const MESSAGES: &str = "nta_stream_messages";
pub const CONSUMERS: &str = "nta_stream_consumers";
pub const MAX_BYTES: &str = "nta_stream_max_bytes";
pub const MAX_MESSAGES: &str = "nta_stream_max_messages";
pub const MAX_AGE_SECONDS: &str = "nta_stream_max_age_seconds";

/// How often the roles refresh the stream gauges: cheap (one STREAM.INFO each), and a stream
/// filling up takes minutes, not seconds.
const EVERY: Duration = Duration::from_secs(15);

/// Keeps the gauges of `streams` current every [`EVERY`] until the task is aborted. A stream
/// that does not exist (yet) is skipped quietly: the role that creates it exports it.
pub fn spawn_gauges(js: jetstream::Context, streams: Vec<&'static str>) -> tokio::task::JoinHandle<()> {
    describe();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for name in &streams {
                match js.get_stream(*name).await {
                    Ok(s) => export(name, s.cached_info()),
                    Err(e) => tracing::debug!(stream = name, error = %e, "stream info failed"),
                }
            }
        }
    })
}

fn export(name: &'static str, info: &jetstream::stream::Info) {
    let (state, config) = (&info.state, &info.config);
    metrics::gauge!(BYTES, "stream" => name).set(state.bytes as f64);
    metrics::gauge!(MESSAGES, "stream" => name).set(state.messages as f64);
    metrics::gauge!(CONSUMERS, "stream" => name).set(state.consumer_count as f64);
    // JetStream says "no limit" with -1 (or 0 for the age): such a limit is not exported, so a
    // ratio against it has no series rather than a meaningless value.
    if config.max_bytes > 0 {
        metrics::gauge!(MAX_BYTES, "stream" => name).set(config.max_bytes as f64);
    }
    if config.max_messages > 0 {
        metrics::gauge!(MAX_MESSAGES, "stream" => name).set(config.max_messages as f64);
    }
    if !config.max_age.is_zero() {
        metrics::gauge!(MAX_AGE_SECONDS, "stream" => name).set(config.max_age.as_secs_f64());
    }
}

fn describe() {
    use metrics::{describe_gauge, Unit};
    describe_gauge!(BYTES, Unit::Bytes, "Bytes stored in the JetStream stream");
    describe_gauge!(MESSAGES, "Messages stored in the JetStream stream");
    describe_gauge!(CONSUMERS, "Consumers of the JetStream stream");
    describe_gauge!(MAX_BYTES, Unit::Bytes, "Size limit of the stream (absent when unlimited)");
    describe_gauge!(MAX_MESSAGES, "Message count limit of the stream (absent when unlimited)");
    describe_gauge!(MAX_AGE_SECONDS, Unit::Seconds, "Age limit of the stream's messages (absent when unlimited)");
}
