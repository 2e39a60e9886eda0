//! The agent's bounded in-memory send queue.
//!
//! Capture must never wait for the network: while NATS is slow or unreachable, encoded batches
//! wait here, and when the queue reaches its byte budget the *oldest* batches are dropped
//! (newest traffic is the most useful for live detection). Every drop is counted.

use bytes::Bytes;
use metrics::{counter, gauge};
use std::collections::VecDeque;
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

#[derive(Default)]
struct State {
    items: VecDeque<Outgoing>,
    bytes: usize,
    closed: bool,
}

pub struct SendQueue {
    state: Mutex<State>,
    /// Records dropped so far (also exported as a metric).
    dropped_records: std::sync::atomic::AtomicU64,
    max_bytes: usize,
    notify: Notify,
}

impl SendQueue {
    pub fn new(max_bytes: usize) -> SendQueue {
        SendQueue {
            state: Mutex::new(State::default()),
            dropped_records: Default::default(),
            max_bytes: max_bytes.max(1),
            notify: Notify::new(),
        }
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
            self.count_dropped(old.records);
        }
        gauge!("nta_agent_queue_bytes").set(s.bytes as f64);
        drop(s);
        self.notify.notify_one();
    }

    fn count_dropped(&self, records: usize) {
        self.dropped_records.fetch_add(records as u64, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn dropped_records(&self) -> u64 {
        self.dropped_records.load(std::sync::atomic::Ordering::Relaxed)
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

    /// Removes everything left (on a forced shutdown), counting it as dropped.
    pub fn drain_dropped(&self) -> usize {
        let mut s = self.state.lock().unwrap();
        let mut records = 0;
        for old in s.items.drain(..) {
            counter!("nta_agent_queue_dropped_batches_total").increment(1);
            counter!("nta_agent_queue_dropped_records_total").increment(old.records as u64);
            records += old.records;
        }
        self.count_dropped(records);
        s.bytes = 0;
        gauge!("nta_agent_queue_bytes").set(0.0);
        records
    }

    /// Resolves after the next push or close (or immediately if one happened since the last wait).
    pub async fn changed(&self) {
        self.notify.notified().await
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
    }

    #[test]
    fn requeued_batch_comes_first() {
        let q = SendQueue::new(10_000);
        q.push(item(1, 10));
        q.requeue(item(0, 10));
        assert_eq!(q.pop().unwrap().msg_id, "0");
    }
}
