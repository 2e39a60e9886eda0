//! Which delivered packet batches may be acknowledged.
//!
//! Every batch fed to the windower is *held* with its stream sequence and, per window size, the
//! end of the latest window one of its accepted records fell in. A held batch becomes
//! *complete* once, for every size, that end is at or before the windower's `closed_through`:
//! every window it contributed to has then been emitted, and (the service writes the checkpoint
//! before acking) published and stored. Complete batches are acked; the smallest sequence still
//! held is the replay point written with the checkpoint.

use std::collections::BTreeMap;
use std::time::Instant;

/// Sizes of the windows, in the order of `closed_through`.
pub(crate) const SIZES: [i64; 3] = [5, 30, 180];

/// End (epoch seconds) of the window of size `size` holding timestamp `ts`. Windows are
/// `[k*size, (k+1)*size)`.
pub(crate) fn window_end(ts: f64, size: i64) -> i64 {
    let sec = ts.floor() as i64;
    (sec.div_euclid(size) + 1) * size
}

/// Latest window end per size over some records; `i64::MIN` when nothing is held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ends(pub [i64; 3]);

impl Default for Ends {
    fn default() -> Self {
        Ends([i64::MIN; 3])
    }
}

impl Ends {
    pub fn add(&mut self, ts: f64) {
        for (e, s) in self.0.iter_mut().zip(SIZES) {
            *e = (*e).max(window_end(ts, s));
        }
    }

    pub fn covered_by(&self, closed_through: [i64; 3]) -> bool {
        self.0.iter().zip(closed_through).all(|(e, c)| *e <= c)
    }
}

pub(crate) struct Held<M> {
    pub ends: Ends,
    pub msg: M,
    /// When the message was delivered (or its ack timer last reset).
    pub since: Instant,
}

pub(crate) struct Tracker<M> {
    held: BTreeMap<u64, Held<M>>,
    /// Stream sequence after the last batch processed: the replay point when nothing is held.
    next_seq: u64,
}

impl<M> Tracker<M> {
    /// Resumes at `next_seq` (the checkpoint's replay point; 0 or 1 for a fresh start).
    pub fn new(next_seq: u64) -> Self {
        Tracker { held: BTreeMap::new(), next_seq }
    }

    /// A message at or before the last one processed is a redelivery (the ack was lost or the
    /// message was held longer than ack_wait): it must not be fed to the windower again.
    pub fn is_redelivery(&self, seq: u64) -> bool {
        seq < self.next_seq
    }

    /// Sequences skipped by a first delivery of `seq`: the stream delivers in order, so these
    /// were either deleted before being read or delivered and lost (see the service).
    pub fn gap_before(&self, seq: u64) -> Option<std::ops::Range<u64>> {
        let next = self.next_seq.max(1);
        (seq > next).then_some(next..seq)
    }

    /// Records that every message up to `seq` has been seen (processed, poisoned or skipped).
    pub fn advance(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq + 1);
    }

    pub fn hold(&mut self, seq: u64, ends: Ends, msg: M, now: Instant) {
        self.advance(seq);
        self.held.insert(seq, Held { ends, msg, since: now });
    }

    /// Swaps in the handle of a redelivered copy (whose ack subject is current); gives the
    /// message back when `seq` is not held (already acked, or poison).
    pub fn refresh(&mut self, seq: u64, msg: M, now: Instant) -> Option<M> {
        match self.held.get_mut(&seq) {
            Some(h) => {
                h.msg = msg;
                h.since = now;
                None
            }
            None => Some(msg),
        }
    }

    /// Stream sequence from which a restart must replay once the batches complete under
    /// `closed_through` are acked: the oldest one still incomplete, else the next unseen one.
    pub fn replay_seq(&self, closed_through: [i64; 3]) -> u64 {
        self.held.iter().find(|(_, h)| !h.ends.covered_by(closed_through)).map(|(&s, _)| s).unwrap_or(self.next_seq)
    }

    pub fn has_complete(&self, closed_through: [i64; 3]) -> bool {
        self.held.values().any(|h| h.ends.covered_by(closed_through))
    }

    /// Removes and returns the batches complete under `closed_through`, in stream order.
    pub fn take_complete(&mut self, closed_through: [i64; 3]) -> Vec<(u64, M)> {
        let done: Vec<u64> =
            self.held.iter().filter(|(_, h)| h.ends.covered_by(closed_through)).map(|(&s, _)| s).collect();
        done.into_iter().map(|s| (s, self.held.remove(&s).unwrap().msg)).collect()
    }

    /// Held messages delivered (or last refreshed) before `before`; their timers get reset.
    pub fn stale(&mut self, before: Instant, now: Instant) -> Vec<&M> {
        self.held
            .values_mut()
            .filter(|h| h.since < before)
            .map(|h| {
                h.since = now;
                &h.msg
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_ends() {
        assert_eq!(window_end(0.0, 5), 5);
        assert_eq!(window_end(4.999, 5), 5);
        assert_eq!(window_end(5.0, 5), 10);
        assert_eq!(window_end(179.5, 180), 180);
        assert_eq!(window_end(-0.5, 5), 0);
        let mut e = Ends::default();
        assert!(e.covered_by([i64::MIN; 3]));
        e.add(100.2);
        assert_eq!(e.0, [105, 120, 180]);
        assert!(!e.covered_by([105, 120, 0]));
        assert!(e.covered_by([105, 120, 180]));
    }

    #[test]
    fn acks_complete_batches_and_replays_from_the_oldest_open_one() {
        let now = Instant::now();
        let mut t: Tracker<&str> = Tracker::new(1);
        let ends = |ts: &[f64]| {
            let mut e = Ends::default();
            ts.iter().for_each(|&x| e.add(x));
            e
        };
        t.hold(1, ends(&[10.0]), "a", now); // ends 15, 30, 180
        t.hold(2, ends(&[200.0]), "b", now); // ends 205, 210, 360
        t.advance(3); // poison, terminated
        t.hold(4, ends(&[]), "d", now); // nothing accepted
        assert!(t.is_redelivery(3) && !t.is_redelivery(5));
        assert_eq!(t.gap_before(5), None);
        assert_eq!(t.gap_before(7), Some(5..7));
        assert_eq!(t.replay_seq([i64::MIN; 3]), 1);
        assert_eq!(t.take_complete([i64::MIN; 3]), vec![(4, "d")]);
        // The 180 s window of batch 1 is not closed yet.
        assert!(t.take_complete([100, 90, 0]).is_empty());
        assert_eq!(t.replay_seq([100, 90, 0]), 1);
        assert_eq!(t.take_complete([205, 180, 180]), vec![(1, "a")]);
        assert_eq!(t.replay_seq([205, 180, 180]), 2);
        assert_eq!(t.refresh(2, "b2", now), None);
        assert_eq!(t.refresh(1, "a2", now), Some("a2"));
        assert_eq!(t.take_complete([205, 210, 360]), vec![(2, "b2")]);
        assert_eq!(t.replay_seq([205, 210, 360]), 5);
        assert_eq!(t.len(), 0);
    }
}
