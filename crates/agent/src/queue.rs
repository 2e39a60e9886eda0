//! The agent's bounded in-memory send queue.
//!
//! Capture must never wait for the network: while NATS is slow or unreachable, encoded batches
//! wait here, and when the queue reaches its byte budget the *oldest* batches are dropped
//! (newest traffic is the most useful for live detection). Every drop is counted, by reason
//! (`nta_agent_dropped_records_total{reason}`): the queue overflowing because the network is
//! slow (`queue_full`) or because JetStream refuses batches into a full stream (`stream_full`),
//! batches still unsent when the agent stops (`shutdown`), gives up on a full stream
//! (`stream_full`) or on a permanent error (`publish_error`).

use bytes::Bytes;
use metrics::{counter, gauge};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use tokio::sync::Notify;

/// An encoded batch waiting to be published.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// `Nats-Msg-Id`: `<agent_id>.<boot_id>.<seq>`.
    pub msg_id: String,
    pub payload: Bytes,
    /// Records (or frames) in the batch: what a drop counts.
    pub records: usize,
    /// What the headers of a frame batch say about it (`None` for packet batches).
    pub frames: Option<FrameHeaders>,
    /// Position in the order batches were pushed (set by [`SendQueue::push`]): a retried batch
    /// goes back before the batches pushed after it.
    pub order: u64,
}

impl Outgoing {
    /// The end-of-input marker of a replay: the one empty packet batch, the last of its boot.
    pub fn is_end_of_input(&self) -> bool {
        self.records == 0 && self.frames.is_none()
    }
}

/// Headers of a frame batch: an export picks batches and decides its file format from them
/// without downloading the bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeaders {
    /// Smallest and largest capture time of its frames (epoch ns).
    pub ts_min: i64,
    pub ts_max: i64,
    /// Link type (DLT) of its frames.
    pub linktype: i32,
}

/// Metric names of one queue and its publisher: packet batches keep the names they always
/// had, frame batches have their own, so a frame dropped is never counted as a record lost.
#[derive(Debug)]
pub struct QueueMetrics {
    /// What the queue feeds, for log lines: `NTA_PACKETS` or `NTA_FRAMES`.
    pub stream: &'static str,
    pub queue_bytes: &'static str,
    pub dropped_batches: &'static str,
    pub dropped_items: &'static str,
    /// Items dropped by `reason`.
    pub dropped_by_reason: &'static str,
    pub published: &'static str,
    pub acked: &'static str,
    pub items_acked: &'static str,
    pub duplicates: &'static str,
    pub pending_acks: &'static str,
    pub publish_errors: &'static str,
}

pub static PACKET_METRICS: QueueMetrics = QueueMetrics {
    stream: bus::PACKETS_STREAM,
    queue_bytes: "nta_agent_queue_bytes",
    dropped_batches: "nta_agent_queue_dropped_batches_total",
    dropped_items: "nta_agent_queue_dropped_records_total",
    dropped_by_reason: "nta_agent_dropped_records_total",
    published: "nta_agent_batches_published_total",
    acked: "nta_agent_batches_acked_total",
    items_acked: "nta_agent_records_acked_total",
    duplicates: "nta_agent_batches_duplicate_total",
    pending_acks: "nta_agent_pending_acks",
    publish_errors: "nta_agent_publish_errors_total",
};

pub static FRAME_METRICS: QueueMetrics = QueueMetrics {
    stream: bus::FRAMES_STREAM,
    queue_bytes: "nta_agent_frames_queue_bytes",
    dropped_batches: "nta_agent_frames_queue_dropped_batches_total",
    dropped_items: "nta_agent_frames_queue_dropped_frames_total",
    dropped_by_reason: "nta_agent_dropped_frames_total",
    published: "nta_agent_frame_batches_published_total",
    acked: "nta_agent_frame_batches_acked_total",
    items_acked: "nta_agent_frames_acked_total",
    duplicates: "nta_agent_frame_batches_duplicate_total",
    pending_acks: "nta_agent_frames_pending_acks",
    publish_errors: "nta_agent_frames_publish_errors_total",
};

/// Why records were dropped (the `reason` label).
pub const QUEUE_FULL: &str = "queue_full";
pub const STREAM_FULL: &str = "stream_full";
pub const SHUTDOWN: &str = "shutdown";
pub const PUBLISH_ERROR: &str = "publish_error";

#[derive(Default)]
struct State {
    items: VecDeque<Outgoing>,
    bytes: usize,
    closed: bool,
    /// Reason of overflow drops: [`QUEUE_FULL`], or [`STREAM_FULL`] while JetStream refuses.
    overflow_reason: Option<&'static str>,
    /// Set when nothing will publish what is pushed (the frames stream cannot be had): every
    /// batch is dropped at once for this reason instead of filling the budget.
    refused: Option<&'static str>,
    /// Records dropped so far by reason (also exported as metrics).
    dropped: BTreeMap<&'static str, u64>,
    /// [`Outgoing::order`] of the next batch pushed.
    next_order: u64,
}

pub struct SendQueue {
    state: Mutex<State>,
    max_bytes: usize,
    notify: Notify,
    pub metrics: &'static QueueMetrics,
}

impl SendQueue {
    /// The queue of packet batches.
    pub fn new(max_bytes: usize) -> SendQueue {
        SendQueue::with_metrics(max_bytes, &PACKET_METRICS)
    }

    pub fn with_metrics(max_bytes: usize, metrics: &'static QueueMetrics) -> SendQueue {
        SendQueue { state: Mutex::new(State::default()), max_bytes: max_bytes.max(1), notify: Notify::new(), metrics }
    }

    /// What overflow drops are counted as from now on (`None`: [`QUEUE_FULL`]).
    pub fn set_overflow_reason(&self, reason: Option<&'static str>) {
        self.state.lock().unwrap().overflow_reason = reason;
    }

    /// Appends a batch, dropping the oldest batches if the byte budget is exceeded.
    pub fn push(&self, item: Outgoing) {
        self.insert(item, false, true)
    }

    /// Puts a batch whose publication failed back before every batch pushed after it, so it is
    /// retried first and the batches of several failures keep their order: each failure
    /// returning to the very head would store them in reverse (and an agent's end-of-input
    /// marker before its last batches).
    pub fn requeue(&self, item: Outgoing) {
        self.insert(item, true, true)
    }

    /// Puts a batch just popped back where it was, without waking the publisher: it is to be
    /// sent later (the end-of-input marker waits for the batches in flight).
    pub fn put_back(&self, item: Outgoing) {
        self.insert(item, true, false)
    }

    /// From now on drops everything pushed, and what is queued, counted as `reason`.
    pub fn refuse(&self, reason: &'static str) {
        self.state.lock().unwrap().refused = Some(reason);
        self.drain_dropped(reason);
    }

    fn insert(&self, mut item: Outgoing, back_in: bool, wake: bool) {
        let mut s = self.state.lock().unwrap();
        if let Some(reason) = s.refused {
            counter!(self.metrics.dropped_batches).increment(1);
            counter!(self.metrics.dropped_items).increment(item.records as u64);
            count_dropped(self.metrics, &mut s, reason, item.records);
            return;
        }
        s.bytes += item.payload.len();
        if back_in {
            let at = s.items.iter().position(|q| q.order > item.order).unwrap_or(s.items.len());
            s.items.insert(at, item);
        } else {
            item.order = s.next_order;
            s.next_order += 1;
            s.items.push_back(item);
        }
        // Keep at least the newest batch even if it alone exceeds the budget.
        while s.bytes > self.max_bytes && s.items.len() > 1 {
            let old = s.items.pop_front().unwrap();
            s.bytes -= old.payload.len();
            counter!(self.metrics.dropped_batches).increment(1);
            counter!(self.metrics.dropped_items).increment(old.records as u64);
            let reason = s.overflow_reason.unwrap_or(QUEUE_FULL);
            count_dropped(self.metrics, &mut s, reason, old.records);
        }
        gauge!(self.metrics.queue_bytes).set(s.bytes as f64);
        drop(s);
        if wake {
            self.notify.notify_one();
        }
    }

    /// Records dropped so far, in all.
    pub fn dropped_records(&self) -> u64 {
        self.state.lock().unwrap().dropped.values().sum()
    }

    /// Records dropped so far, by reason.
    pub fn dropped_by_reason(&self) -> BTreeMap<&'static str, u64> {
        self.state.lock().unwrap().dropped.clone()
    }

    /// Counts `records` lost outside the queue (e.g. publications never confirmed) as dropped.
    pub fn count_dropped(&self, reason: &'static str, records: usize) {
        count_dropped(self.metrics, &mut self.state.lock().unwrap(), reason, records);
    }

    pub fn pop(&self) -> Option<Outgoing> {
        let mut s = self.state.lock().unwrap();
        let item = s.items.pop_front()?;
        s.bytes -= item.payload.len();
        gauge!(self.metrics.queue_bytes).set(s.bytes as f64);
        Some(item)
    }

    /// No more batches will be pushed (the capture ended).
    pub fn close(&self) {
        self.state.lock().unwrap().closed = true;
        self.notify.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().unwrap().closed
    }

    pub fn is_empty(&self) -> bool {
        self.state.lock().unwrap().items.is_empty()
    }

    /// Removes everything left (on a forced shutdown), counting it as dropped for `reason`.
    pub fn drain_dropped(&self, reason: &'static str) -> usize {
        let mut s = self.state.lock().unwrap();
        let mut records = 0;
        for old in std::mem::take(&mut s.items) {
            counter!(self.metrics.dropped_batches).increment(1);
            counter!(self.metrics.dropped_items).increment(old.records as u64);
            records += old.records;
        }
        count_dropped(self.metrics, &mut s, reason, records);
        s.bytes = 0;
        gauge!(self.metrics.queue_bytes).set(0.0);
        records
    }

    /// Resolves after the next push or close (or immediately if one happened since the last wait).
    pub async fn changed(&self) {
        self.notify.notified().await
    }
}

fn count_dropped(metrics: &QueueMetrics, s: &mut State, reason: &'static str, records: usize) {
    if records > 0 {
        *s.dropped.entry(reason).or_default() += records as u64;
        counter!(metrics.dropped_by_reason, "reason" => reason).increment(records as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(i: usize, size: usize) -> Outgoing {
        Outgoing { msg_id: i.to_string(), payload: Bytes::from(vec![0u8; size]), records: 1, frames: None, order: 0 }
    }

    #[test]
    fn drops_oldest_when_full() {
        let q = SendQueue::new(250);
        for i in 0..5 {
            q.push(item(i, 100));
        }
        // Budget holds two batches of 100 bytes: the three oldest went.
        assert_eq!(q.pop().unwrap().msg_id, "3");
        assert_eq!(q.pop().unwrap().msg_id, "4");
        assert!(q.pop().is_none());
        assert_eq!(q.dropped_by_reason(), BTreeMap::from([(QUEUE_FULL, 3)]));
    }

    #[test]
    fn drops_are_counted_by_reason() {
        let q = SendQueue::new(150);
        q.set_overflow_reason(Some(STREAM_FULL));
        for i in 0..3 {
            q.push(item(i, 100));
        }
        q.set_overflow_reason(None);
        q.push(item(3, 100));
        assert_eq!(q.drain_dropped(SHUTDOWN), 1);
        assert_eq!(q.dropped_by_reason(), BTreeMap::from([(STREAM_FULL, 2), (QUEUE_FULL, 1), (SHUTDOWN, 1)]));
        assert_eq!(q.dropped_records(), 4);
    }

    #[test]
    fn a_refusing_queue_drops_and_counts_everything() {
        let q = SendQueue::with_metrics(10_000, &FRAME_METRICS);
        q.push(item(0, 10));
        q.refuse(PUBLISH_ERROR);
        q.push(item(1, 10));
        assert!(q.pop().is_none());
        assert_eq!(q.dropped_by_reason(), BTreeMap::from([(PUBLISH_ERROR, 2)]));
    }

    #[test]
    fn requeued_batches_come_first_in_their_order() {
        let q = SendQueue::new(10_000);
        for i in 0..5 {
            q.push(item(i, 10));
        }
        let popped: Vec<Outgoing> = (0..3).map(|_| q.pop().unwrap()).collect();
        // Their publications fail in any order: they come back before 3 and 4, in push order.
        for i in [2, 0, 1] {
            q.requeue(popped[i].clone());
        }
        let order: Vec<String> = std::iter::from_fn(|| q.pop()).map(|o| o.msg_id).collect();
        assert_eq!(order, ["0", "1", "2", "3", "4"]);
    }
}
