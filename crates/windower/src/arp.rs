//! ARP binding flaps: how often the MAC claiming an IP changes, in event-time order.
//!
//! Definition (per key = ARP sender IP, per window): sort the window's ARP frames of that
//! sender by (timestamp, MAC) and count adjacent pairs whose sender MACs differ. This needs
//! order, so it cannot be a plain sum; instead each sealed time span is summarised as a
//! [`Segment`] (first MAC, last MAC, changes inside). Segments of consecutive 5 s windows do
//! not overlap in time, so concatenating them in time order and adding one change per
//! boundary where last != first gives exactly the count over the longer window.
//!
//! Within one open 5 s window the frames are buffered (they may arrive out of order from
//! several agents) and sorted when the window is sealed. If one sender sends more than
//! [`PENDING_CAP`] ARP frames in one 5 s window, the buffer is sealed early into a segment;
//! the count stays exact unless a later frame of that window is older than the early-sealed
//! ones (then it is ordered after them). This bounds memory under ARP floods.

use std::cmp::Ordering;

pub const PENDING_CAP: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub t0: f64,
    pub t1: f64,
    pub first: u64,
    pub last: u64,
    pub changes: u64,
}

#[derive(Debug, Clone, Default)]
pub struct ArpSeq {
    pending: Vec<(f64, u64)>,
    segs: Vec<Segment>,
}

fn cmp_event(a: &(f64, u64), b: &(f64, u64)) -> Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

fn summarise(events: &mut [(f64, u64)]) -> Option<Segment> {
    events.sort_unstable_by(cmp_event);
    let (first, last) = (events.first()?, events.last()?);
    let changes = events.windows(2).filter(|w| w[0].1 != w[1].1).count() as u64;
    Some(Segment { t0: first.0, t1: last.0, first: first.1, last: last.1, changes })
}

/// Inserts `s` keeping segments sorted by start, and fuses neighbours that do not overlap
/// (the common case: consecutive windows), so a long window holds one segment.
fn insert_segment(segs: &mut Vec<Segment>, s: Segment) {
    let pos = segs.partition_point(|x| x.t0.total_cmp(&s.t0) != Ordering::Greater);
    segs.insert(pos, s);
    let mut out: Vec<Segment> = Vec::with_capacity(segs.len());
    for s in segs.drain(..) {
        match out.last_mut() {
            Some(p) if s.t0 >= p.t1 => {
                p.changes += s.changes + (p.last != s.first) as u64;
                p.t1 = s.t1;
                p.last = s.last;
            }
            _ => out.push(s),
        }
    }
    *segs = out;
}

impl ArpSeq {
    #[inline]
    pub fn push(&mut self, ts: f64, mac: u64) {
        self.pending.push((ts, mac));
        if self.pending.len() >= PENDING_CAP {
            self.seal();
        }
    }

    /// Sorts and summarises the buffered frames (called when a 5 s window closes).
    pub fn seal(&mut self) {
        if let Some(s) = summarise(&mut self.pending) {
            insert_segment(&mut self.segs, s);
        }
        self.pending = Vec::new();
    }

    pub fn merge(&mut self, mut other: ArpSeq) {
        self.seal();
        other.seal();
        for s in other.segs {
            insert_segment(&mut self.segs, s);
        }
    }

    /// Number of MAC changes in time order.
    pub fn flaps(&self) -> u64 {
        let mut segs = self.segs.clone();
        if let Some(s) = summarise(&mut self.pending.clone()) {
            insert_segment(&mut segs, s);
        }
        let inner: u64 = segs.iter().map(|s| s.changes).sum();
        inner + segs.windows(2).filter(|w| w[0].last != w[1].first).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flaps_merge_across_windows() {
        let events = [(1.0, 1), (2.0, 2), (3.0, 2), (6.0, 1), (7.0, 1), (11.0, 3), (12.0, 1)];
        let mut direct = ArpSeq::default();
        events.iter().rev().for_each(|e| direct.push(e.0, e.1));
        assert_eq!(direct.flaps(), 4);
        let mut parts: Vec<ArpSeq> = vec![ArpSeq::default(); 3];
        for e in events {
            parts[(e.0 / 5.0) as usize].push(e.0, e.1);
        }
        let mut acc = ArpSeq::default();
        for mut p in parts {
            p.seal();
            acc.merge(p);
        }
        assert_eq!(acc.flaps(), 4);
        assert_eq!(acc.segs.len(), 1);
    }
}
