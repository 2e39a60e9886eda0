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
    pub records: usize,
}

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
    /// Records dropped so far by reason (also exported as metrics).
    dropped: BTreeMap<&'static str, u64>,
}

pub struct SendQueue {
    state: Mutex<State>,
    max_bytes: usize,
    notify: Notify,
}

impl SendQueue {
    pub fn new(max_bytes: usize) -> SendQueue {
        SendQueue { state: Mutex::new(State::default()), max_bytes: max_bytes.max(1), notify: Notify::new() }
    }

    /// What overflow drops are counted as from now on (`None`: [`QUEUE_FULL`]).
    pub fn set_overflow_reason(&self, reason: Option<&'static str>) {
        self.state.lock().unwrap().overflow_reason = reason;
    }

    /// Appends a batch, dropping the oldest batches if the byte budget is exceeded.
    pub fn push(&self, item: Outgoing) {
        self.insert(item, false)
    }

    /// Puts a batch whose publication failed back at the head, so it is retried first.
    pub fn requeue(&self, item: Outgoing) {
        self.insert(item, true)
    }

    fn insert(&self, item: Outgoing, front: bool) {
        let mut s = self.state.lock().unwrap();
        s.bytes += item.payload.len();
        if front {
            s.items.push_front(item);
        } else {
            s.items.push_back(item);
        }
        // Keep at least the newest batch even if it alone exceeds the budget.
        while s.bytes > self.max_bytes && s.items.len() > 1 {
            let old = s.items.pop_front().unwrap();
            s.bytes -= old.payload.len();
            counter!("nta_agent_queue_dropped_batches_total").increment(1);
            counter!("nta_agent_queue_dropped_records_total").increment(old.records as u64);
            let reason = s.overflow_reason.unwrap_or(QUEUE_FULL);
            count_dropped(&mut s, reason, old.records);
        }
        gauge!("nta_agent_queue_bytes").set(s.bytes as f64);
        drop(s);
        self.notify.notify_one();
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
        count_dropped(&mut self.state.lock().unwrap(), reason, records);
    }

    pub fn pop(&self) -> Option<Outgoing> {
        let mut s = self.state.lock().unwrap();
        let item = s.items.pop_front()?;
        s.bytes -= item.payload.len();
        gauge!("nta_agent_queue_bytes").set(s.bytes as f64);
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
            counter!("nta_agent_queue_dropped_batches_total").increment(1);
            counter!("nta_agent_queue_dropped_records_total").increment(old.records as u64);
            records += old.records;
        }
        count_dropped(&mut s, reason, records);
        s.bytes = 0;
        gauge!("nta_agent_queue_bytes").set(0.0);
        records
    }

    /// Resolves after the next push or close (or immediately if one happened since the last wait).
    pub async fn changed(&self) {
        self.notify.notified().await
    }
}

fn count_dropped(s: &mut State, reason: &'static str, records: usize) {
    if records > 0 {
        *s.dropped.entry(reason).or_default() += records as u64;
        counter!("nta_agent_dropped_records_total", "reason" => reason).increment(records as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(i: usize, size: usize) -> Outgoing {
        Outgoing { msg_id: i.to_string(), payload: Bytes::from(vec![0u8; size]), records: 1 }
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
    fn requeued_batch_comes_first() {
        let q = SendQueue::new(10_000);
        q.push(item(1, 10));
        q.requeue(item(0, 10));
        assert_eq!(q.pop().unwrap().msg_id, "0");
    }
}
