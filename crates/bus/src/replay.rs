//! Reading retained messages of a stream again, for forensics (`nta rescore`): an ordered
//! consumer (ephemeral, no acks, recreated by the client on a gap) starting at a store time,
//! that stops at the stream's last message as of the start. It never touches the durable
//! consumers of the live roles, so the live pipeline's position and redeliveries are unaffected.

use anyhow::{anyhow, bail, Context, Result};
use async_nats::jetstream::{self, consumer::pull::OrderedConfig, consumer::DeliverPolicy};
use futures::StreamExt;
use std::time::Duration;

/// What the stream holds when the replay starts.
#[derive(Debug, Clone)]
pub struct Retained {
    pub messages: u64,
    pub bytes: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Store times (epoch seconds) of the oldest and newest message; 0 when empty.
    pub first_stored: i64,
    pub last_stored: i64,
}

/// One retained message.
pub struct Retrieved {
    pub subject: String,
    pub seq: u64,
    /// Store time (epoch seconds).
    pub stored: f64,
    pub payload: bytes::Bytes,
}

/// Messages of `stream` (on `filter_subject`, e.g. `nta.packets.>`) stored at or after
/// `start_stored` (epoch seconds), up to the stream's last message at the time of the call,
/// sent to `out` in stream order (the channel's bound paces the reading; a closed channel
/// stops it). Returns the stream's state at the start and the messages read.
pub async fn read_since(
    client: &async_nats::Client,
    stream: &str,
    filter_subject: &str,
    start_stored: f64,
    out: tokio::sync::mpsc::Sender<Retrieved>,
) -> Result<(Retained, u64)> {
    let js = jetstream::new(client.clone());
    let mut s = js.get_stream(stream).await.with_context(|| format!("opening stream {stream}"))?;
    let st = s.info().await.with_context(|| format!("reading the state of {stream}"))?.state.clone();
    let retained = Retained {
        messages: st.messages,
        bytes: st.bytes,
        first_seq: st.first_sequence,
        last_seq: st.last_sequence,
        first_stored: if st.messages == 0 { 0 } else { st.first_timestamp.unix_timestamp() },
        last_stored: if st.messages == 0 { 0 } else { st.last_timestamp.unix_timestamp() },
    };
    if st.messages == 0 {
        return Ok((retained, 0));
    }
    let start = time::OffsetDateTime::from_unix_timestamp_nanos((start_stored.max(0.0) * 1e9) as i128)
        .map_err(|e| anyhow!("start time {start_stored}: {e}"))?;
    let consumer = s
        .create_consumer(OrderedConfig {
            description: Some("nta rescore (ordered, ephemeral)".into()),
            filter_subject: filter_subject.to_string(),
            deliver_policy: DeliverPolicy::ByStartTime { start_time: start },
            ..Default::default()
        })
        .await
        .with_context(|| format!("creating an ordered consumer on {stream}"))?;
    if consumer.cached_info().num_pending == 0 {
        return Ok((retained, 0));
    }
    let mut messages = consumer.messages().await.with_context(|| format!("reading {stream}"))?;
    let mut read = 0u64;
    loop {
        // Messages are pending (num_pending > 0 up to last_seq): a long silence is a fault.
        let next = tokio::time::timeout(Duration::from_secs(60), messages.next())
            .await
            .map_err(|_| anyhow!("no message from {stream} for 60 s"))?;
        let Some(msg) = next else { bail!("the {stream} consumer ended early") };
        let msg = msg.map_err(|e| anyhow!("reading {stream}: {e}"))?;
        let info = msg.info().map_err(|e| anyhow!("message metadata: {e}"))?;
        let (seq, stored) = (info.stream_sequence, info.published.unix_timestamp_nanos() as f64 / 1e9);
        if seq > retained.last_seq {
            break;
        }
        read += 1;
        let subject = msg.subject.to_string();
        // `pending`: what matches the filter after this message now; 0 is the end of what is
        // retained (a filter may match nothing up to last_seq).
        let more = info.pending > 0 && seq < retained.last_seq;
        if out.send(Retrieved { subject, seq, stored, payload: msg.payload.clone() }).await.is_err() || !more {
            break;
        }
    }
    Ok((retained, read))
}
