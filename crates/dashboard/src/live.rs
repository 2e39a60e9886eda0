//! Live parts: the `NTA_ALERTS` relay to Server-Sent Events (with resumption from the
//! browser's `Last-Event-ID`), and the JetStream sampler behind the pipeline-health panel.

use crate::sql::ApiError;
use crate::AppState;
use anyhow::{anyhow, Context};
use async_nats::jetstream::{self, consumer::pull, consumer::DeliverPolicy};
use axum::extract::State;
use axum::http::HeaderMap;
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

/// An alert event as relayed: its `NTA_ALERTS` stream sequence (the SSE `id`) and its JSON.
pub type LiveEvent = (u64, Arc<str>);

/// Events a reconnecting client is sent from the stream at most; beyond, it gets `lagged` (and
/// reloads the list), as a client that falls behind the live fan-out does.
const MAX_REPLAY: usize = 1024;
/// A replay that stalls this long ends with `lagged` rather than holding the connection.
const REPLAY_STALL: Duration = Duration::from_secs(5);

/// Follows `NTA_ALERTS` with an ordered consumer (from new events at start, or from the first
/// one when the stream did not exist yet, then from where it left off after an error, so a NATS
/// outage loses nothing the stream kept) and broadcasts each
/// event with its stream sequence. Only well-formed `AlertEvent`s are relayed, re-serialised,
/// so a stray publisher cannot push arbitrary data to browsers; the others are counted.
pub async fn relay_alerts(state: AppState) {
    let js = jetstream::new(state.nats.clone());
    let mut next: Option<u64> = None;
    loop {
        match follow(&state, &js, &mut next).await {
            Ok(()) => debug!("alert stream ended; following again"),
            Err(e) => warn!(error = format!("{e:#}"), "following {}", bus::ALERTS_STREAM),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn follow(state: &AppState, js: &jetstream::Context, next: &mut Option<u64>) -> anyhow::Result<()> {
    if next.is_none() {
        // A stream created after this dashboard started holds only events it has not shown:
        // follow it from its first one (the predictor may publish before the next attempt).
        match js.get_stream(bus::ALERTS_STREAM).await {
            Err(e)
                if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(err)
                if err.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
            {
                *next = Some(1);
                return Err(anyhow!(e).context(format!("{} does not exist yet", bus::ALERTS_STREAM)));
            }
            _ => {}
        }
    }
    let deliver_policy = match *next {
        Some(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
        None => DeliverPolicy::New,
    };
    let mut msgs = ordered(js, deliver_policy).await?;
    debug!(?deliver_policy, "following {}", bus::ALERTS_STREAM);
    while let Some(msg) = msgs.next().await {
        let msg = msg.map_err(|e| anyhow!(e))?;
        let seq = msg.info().map_err(|e| anyhow!(e))?.stream_sequence;
        *next = Some(seq + 1);
        debug!(seq, "alert event");
        if let Some(text) = well_formed(&msg) {
            state.counters.alert_events.fetch_add(1, Ordering::Relaxed);
            let _ = state.alerts_tx.send((seq, text));
        }
    }
    Ok(())
}

/// An ordered consumer of every alert subject (no acks, no state on the server to clean up).
async fn ordered(js: &jetstream::Context, deliver_policy: DeliverPolicy) -> anyhow::Result<pull::Ordered> {
    let stream = js.get_stream(bus::ALERTS_STREAM).await.with_context(|| format!("finding {}", bus::ALERTS_STREAM))?;
    let config = pull::OrderedConfig {
        filter_subject: format!("{}.>", bus::ALERTS_SUBJECT_PREFIX),
        deliver_policy,
        ..Default::default()
    };
    let consumer = stream.create_consumer(config).await.context("creating an ordered consumer")?;
    consumer.messages().await.context("reading alert events")
}

fn well_formed(msg: &jetstream::Message) -> Option<Arc<str>> {
    match serde_json::from_slice::<wire::AlertEvent>(&msg.payload) {
        Ok(ev) => serde_json::to_string(&ev).ok().map(Into::into),
        Err(e) => {
            metrics::counter!("nta_dashboard_alert_events_malformed_total").increment(1);
            warn!(error = %e, subject = %msg.subject, "ignoring a malformed alert event");
            None
        }
    }
}

/// The events after stream sequence `after` up to the stream's last one when asked, at most
/// [`MAX_REPLAY`]; `true` when some are missing (aged out of the stream, too many, a stall).
async fn replay(state: &AppState, after: u64) -> anyhow::Result<(Vec<LiveEvent>, bool)> {
    let js = jetstream::new(state.nats.clone());
    let stream = js.get_stream(bus::ALERTS_STREAM).await.with_context(|| format!("finding {}", bus::ALERTS_STREAM))?;
    let info = stream.get_info().await.context("reading the stream state")?;
    let last = info.state.last_sequence;
    if last <= after {
        return Ok((Vec::new(), false));
    }
    let mut gap = info.state.first_sequence > after + 1;
    let mut msgs = ordered(&js, DeliverPolicy::ByStartSequence { start_sequence: after + 1 }).await?;
    let mut out = Vec::new();
    loop {
        let Ok(next) = tokio::time::timeout(REPLAY_STALL, msgs.next()).await else {
            gap = true;
            break;
        };
        let Some(msg) = next else { break };
        let msg = msg.map_err(|e| anyhow!(e))?;
        let seq = msg.info().map_err(|e| anyhow!(e))?.stream_sequence;
        if seq > last {
            break;
        }
        if let Some(text) = well_formed(&msg) {
            out.push((seq, text));
        }
        if seq == last {
            break;
        }
        if out.len() >= MAX_REPLAY {
            gap = true;
            break;
        }
    }
    Ok((out, gap))
}

/// `GET /api/alerts/stream`: one SSE `alert` event per alert event (data: the `AlertEvent`
/// JSON, `id`: its `NTA_ALERTS` sequence). A browser reconnecting sends the last id it saw
/// (`Last-Event-ID`) and first gets the events it missed, none twice. A `lagged` event when
/// this client fell more than 1024 events behind or missed more than the stream can replay
/// (reload the list), and keep-alive comments every 15 s. At most `max_sse_streams` at once
/// (each holds a connection and a task forever): 503 beyond.
pub async fn alerts_stream(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Ok(slot) = state.sse_slots.clone().try_acquire_owned() else {
        state.counters.sse_refused.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("nta_dashboard_sse_refused_total").increment(1);
        return Err(ApiError::Unavailable("too many live-alert streams open; try again later".into()));
    };
    // Subscribed before the replay reads the stream: every later event is in `rx`, and the ones
    // the replay also sent are skipped by sequence.
    let rx = state.alerts_tx.subscribe();
    let stop = state.shutdown.subscribe();
    let last_id = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let (missed, gap, sent) = match last_id {
        None => (Vec::new(), false, 0),
        Some(after) => match replay(&state, after).await {
            Ok((events, gap)) => {
                let sent = events.last().map_or(after, |e| e.0);
                (events, gap, sent)
            }
            Err(e) => {
                warn!(error = format!("{e:#}"), "replaying missed alert events");
                (Vec::new(), true, after)
            }
        },
    };
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
    let mut first = vec![Ok(Event::default().event("hello").data("{}"))];
    if gap {
        first.push(Ok(Event::default().event("lagged").data("replay incomplete")));
    }
    first.extend(missed.iter().map(|(seq, text)| Ok(alert_event(*seq, text))));
    let live = futures::stream::unfold((rx, stop, guard, sent), |(mut rx, mut stop, guard, mut sent)| async move {
        let item = loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Ok((seq, _)) if seq <= sent => continue,
                    Ok((seq, text)) => {
                        sent = seq;
                        break alert_event(seq, &text);
                    }
                    Err(RecvError::Lagged(n)) => break Event::default().event("lagged").data(n.to_string()),
                    Err(RecvError::Closed) => return None,
                },
                _ = stop.wait_for(|s| *s) => return None,
            }
        };
        Some((Ok(item), (rx, stop, guard, sent)))
    });
    Ok(Sse::new(futures::stream::iter(first).chain(live))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn alert_event(seq: u64, text: &str) -> Event {
    Event::default().event("alert").id(seq.to_string()).data(text)
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
const STREAMS: [&str; 4] = [bus::PACKETS_STREAM, bus::WINDOWS_STREAM, bus::ALERTS_STREAM, bus::DEADLETTER_STREAM];

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
