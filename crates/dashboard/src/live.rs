//! Live parts: the `nta.alerts` relay to Server-Sent Events, and the JetStream sampler behind
//! the pipeline-health panel.

use crate::sql::ApiError;
use crate::AppState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::Serialize;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, warn};

/// Subscribes to `nta.alerts` and `nta.alerts.resolved` (retrying while NATS is away) and
/// broadcasts each event's JSON.
/// Only well-formed `AlertEvent`s are relayed, re-serialised, so a stray publisher cannot push
/// arbitrary data to browsers.
pub async fn relay_alerts(state: AppState) {
    loop {
        let subs = async {
            let events = state.nats.subscribe(bus::ALERTS_SUBJECT).await?;
            let resolutions = state.nats.subscribe(bus::ALERT_RESOLUTIONS_SUBJECT).await?;
            Ok::<_, async_nats::SubscribeError>(futures::stream::select(events, resolutions))
        };
        match subs.await {
            Ok(mut sub) => {
                while let Some(msg) = sub.next().await {
                    match serde_json::from_slice::<wire::AlertEvent>(&msg.payload) {
                        Ok(ev) => {
                            state.counters.alert_events.fetch_add(1, Ordering::Relaxed);
                            let text: Arc<str> = serde_json::to_string(&ev).unwrap_or_default().into();
                            let _ = state.alerts_tx.send(text);
                        }
                        Err(e) => warn!(error = %e, subject = %msg.subject, "ignoring a malformed alert event"),
                    }
                }
                debug!("alert subscription ended; resubscribing");
            }
            Err(e) => warn!(error = %e, "subscribing to {}", bus::ALERTS_SUBJECT),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `GET /api/alerts/stream`: one SSE `alert` event per alert event (data: the `AlertEvent`
/// JSON), a `lagged` event when this client fell more than 1024 events behind (reload the
/// list), and keep-alive comments every 15 s. At most `max_sse_streams` at once (each holds a
/// connection and a task forever): 503 beyond.
pub async fn alerts_stream(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Ok(slot) = state.sse_slots.clone().try_acquire_owned() else {
        state.counters.sse_refused.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("nta_dashboard_sse_refused_total").increment(1);
        return Err(ApiError::Unavailable("too many live-alert streams open; try again later".into()));
    };
    let rx = state.alerts_tx.subscribe();
    let stop = state.shutdown.subscribe();
    state.counters.sse_clients.fetch_add(1, Ordering::Relaxed);
    metrics::gauge!("nta_dashboard_sse_clients").increment(1.0);
    struct Guard(AppState, #[allow(dead_code)] OwnedSemaphorePermit);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.counters.sse_clients.fetch_sub(1, Ordering::Relaxed);
            metrics::gauge!("nta_dashboard_sse_clients").decrement(1.0);
        }
    }
    let guard = Guard(state.clone(), slot);
    let hello = futures::stream::once(async { Ok(Event::default().event("hello").data("{}")) });
    let events = futures::stream::unfold((rx, stop, guard), |(mut rx, mut stop, guard)| async move {
        let item = tokio::select! {
            r = rx.recv() => match r {
                Ok(text) => Event::default().event("alert").data(&*text),
                Err(RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
                Err(RecvError::Closed) => return None,
            },
            _ = stop.wait_for(|s| *s) => return None,
        };
        Some((Ok(item), (rx, stop, guard)))
    });
    Ok(Sse::new(hello.chain(events)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct ConsumerHealth {
    pub stream: &'static str,
    pub consumer: String,
    pub role: String,
    pub exists: bool,
    /// Messages in the stream not yet delivered to this consumer.
    pub num_pending: Option<u64>,
    /// Delivered but not yet acknowledged.
    pub num_ack_pending: Option<u64>,
    pub num_redelivered: Option<u64>,
    /// Stream sequence up to which everything is acknowledged.
    pub ack_floor: Option<u64>,
    /// Messages acknowledged per second between the last two samples.
    pub acked_per_s: Option<f64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct StreamHealth {
    pub stream: &'static str,
    pub exists: bool,
    pub messages: Option<u64>,
    pub bytes: Option<u64>,
    pub last_seq: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct PipelineSnapshot {
    /// Epoch seconds of the sample (None before the first).
    pub sampled_at: Option<f64>,
    pub nats_connected: bool,
    pub consumers: Vec<ConsumerHealth>,
    pub streams: Vec<StreamHealth>,
    /// Messages in NTA_DEADLETTER (None when the stream does not exist).
    pub dead_letters: Option<u64>,
    #[serde(skip)]
    pub at: Option<Instant>,
}

const CONSUMERS: [(&str, &str, &str); 4] = [
    (bus::PACKETS_STREAM, "nta-ingestor", "ingestor"),
    (bus::PACKETS_STREAM, "nta-ingestor-rollup", "ingestor (rollup)"),
    (bus::PACKETS_STREAM, WINDOWER_DURABLE, "windower"),
    (bus::WINDOWS_STREAM, "nta-predictor", "predictor"),
];
const STREAMS: [&str; 3] = [bus::PACKETS_STREAM, bus::WINDOWS_STREAM, bus::DEADLETTER_STREAM];

/// Samples stream and consumer info every 5 s (JetStream API calls, cheap).
pub async fn sample_pipeline(state: AppState) {
    let js = async_nats::jetstream::new(state.nats.clone());
    loop {
        let snap = sample_once(&state, &js).await;
        *state.pipeline.write().await = snap;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

async fn sample_once(state: &AppState, js: &async_nats::jetstream::Context) -> PipelineSnapshot {
    let prev = state.pipeline.read().await.clone();
    let now = Instant::now();
    let connected = state.nats.connection_state() == async_nats::connection::State::Connected;
    let mut snap = PipelineSnapshot {
        sampled_at: Some(crate::sql::now_epoch()),
        nats_connected: connected,
        at: Some(now),
        ..Default::default()
    };
    if !connected {
        return snap;
    }
    let timeout = Duration::from_secs(2);
    for name in STREAMS {
        let mut h = StreamHealth { stream: name, ..Default::default() };
        if let Ok(Ok(s)) = tokio::time::timeout(timeout, js.get_stream(name)).await {
            if let Ok(Ok(info)) = tokio::time::timeout(timeout, s.get_info()).await {
                h.exists = true;
                h.messages = Some(info.state.messages);
                h.bytes = Some(info.state.bytes);
                h.last_seq = Some(info.state.last_sequence);
            }
        }
        if name == bus::DEADLETTER_STREAM {
            snap.dead_letters = h.messages;
        }
        snap.streams.push(h);
    }
    let mut consumers: Vec<(&'static str, String, String)> =
        CONSUMERS.iter().map(|(s, c, r)| (*s, c.to_string(), r.to_string())).collect();
    // Partitioned windowers: the consumers of the partitioning that checkpointed last.
    if let Some(count) = windower_partitions(state).await.filter(|&n| n > 1) {
        consumers.retain(|(_, c, _)| c != WINDOWER_DURABLE);
        for i in 0..count {
            let name = store::windows::partition_durable(WINDOWER_DURABLE, i, count);
            consumers.push((bus::PACKETS_STREAM, name, format!("windower {i}/{count}")));
        }
    }
    for (stream, consumer, role) in consumers {
        let mut h = ConsumerHealth { stream, consumer: consumer.clone(), role, ..Default::default() };
        match tokio::time::timeout(timeout, js.get_stream(stream)).await {
            Ok(Ok(s)) => match tokio::time::timeout(timeout, s.consumer_info(&consumer)).await {
                Ok(Ok(info)) => {
                    h.exists = true;
                    h.num_pending = Some(info.num_pending);
                    h.num_ack_pending = Some(info.num_ack_pending as u64);
                    h.num_redelivered = Some(info.num_redelivered as u64);
                    h.ack_floor = Some(info.ack_floor.stream_sequence);
                    let before = prev.consumers.iter().find(|c| c.consumer == consumer).and_then(|c| c.ack_floor);
                    if let (Some(b), Some(t)) = (before, prev.at) {
                        let dt = now.duration_since(t).as_secs_f64();
                        if dt > 0.0 && info.ack_floor.stream_sequence >= b {
                            h.acked_per_s = Some((info.ack_floor.stream_sequence - b) as f64 / dt);
                        }
                    }
                }
                Ok(Err(e)) => h.error = Some(format!("consumer not found ({e})")),
                Err(_) => h.error = Some("timed out".into()),
            },
            Ok(Err(e)) => h.error = Some(format!("stream not found ({e})")),
            Err(_) => h.error = Some("timed out".into()),
        }
        snap.consumers.push(h);
    }
    snap
}

const WINDOWER_DURABLE: &str = "nta-windower";

/// Partition count of the default windower group's most recent checkpoint.
async fn windower_partitions(state: &AppState) -> Option<u32> {
    let client = state.pool.get().await.ok()?;
    let row = client
        .query_opt(
            "SELECT durable FROM windower_checkpoint
             WHERE durable = $1 OR starts_with(durable, $1 || '-') ORDER BY updated_at DESC LIMIT 1",
            &[&WINDOWER_DURABLE],
        )
        .await
        .ok()??;
    store::windows::parse_partition_durable(WINDOWER_DURABLE, row.get(0)).map(|(_, n)| n)
}
