//! A sealed window: every key's state sorted by key. Closing emits windows in key order, and
//! merging a window into the longer one that contains it (5 s into 30 s, 30 s into 180 s) is
//! one sequential pass over two sorted lists, a merge join, instead of a hash probe per key:
//! with a flood's million keys the probes were cache misses and the growing map copies, the
//! better part of the cost of the cascade.

use crate::features::{destination_features, source_features, ArpBinding, Values, SOURCE_FEATURES, SOURCE_NAMES};
use crate::hash::FastMap;
use crate::level::Shed;
use crate::slot::SrcSlot;
use crate::state::{DstState, Params, SrcState};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::LazyLock;
use wire::features::DESTINATION_FEATURES;
use wire::{View, WindowRecord, BATCH_FORMAT_VERSION};

/// A closed window in compact form: its values in place with static names, in the order of
/// [`crate::ORIGINAL_FEATURES`] + [`crate::EXTRA_SOURCE_FEATURES`] (+ the shedding flag when
/// the window shed) for the source view, [`crate::DESTINATION_FEATURES`] for the destination
/// view. Cheaper than a `WindowRecord` (no per-feature `String`); [`ClosedWindow::to_record`]
/// converts. Closing hands out one `ClosedWindow` by reference, refilled for every window (a
/// flood closes millions).
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedWindow {
    pub view: View,
    pub key: IpAddr,
    pub window_start: i64,
    pub window_size: u32,
    names: &'static [&'static str],
    values: Values,
}

impl ClosedWindow {
    fn new(view: View, window_start: i64, window_size: u32) -> ClosedWindow {
        ClosedWindow {
            view,
            key: IpAddr::from([0u8; 4]),
            window_start,
            window_size,
            names: &[],
            values: [None; SOURCE_NAMES.len()],
        }
    }

    /// (name, value) of every feature, in order.
    pub fn features(&self) -> impl Iterator<Item = (&'static str, Option<f64>)> + '_ {
        self.names.iter().copied().zip(self.values.iter().copied())
    }

    pub fn get(&self, name: &str) -> Option<Option<f64>> {
        self.names.iter().position(|n| *n == name).map(|i| self.values[i])
    }

    pub fn to_record(&self) -> WindowRecord {
        WindowRecord {
            v: BATCH_FORMAT_VERSION,
            view: self.view,
            key: self.key.to_string(),
            window_start: self.window_start,
            window_size: self.window_size,
            // In name order: a map built from sorted input skips its sort (which cost as much
            // as the rest of the conversion).
            features: BTreeMap::from_iter(self.sorted_features()),
        }
    }

    /// (name, value) of every feature in name order, in a vector of the exact size (the map
    /// collects into one, and a filtered iterator made it grow six times).
    fn sorted_features(&self) -> Vec<(String, Option<f64>)> {
        let mut v = Vec::with_capacity(self.names.len());
        v.extend(self.name_order().map(|i| (self.names[i].to_string(), self.values[i])));
        v
    }

    /// Indices of `names` in alphabetical order of the names.
    fn name_order(&self) -> impl Iterator<Item = usize> + '_ {
        static SOURCE: LazyLock<Vec<usize>> = LazyLock::new(|| alphabetical(&SOURCE_NAMES));
        static DESTINATION: LazyLock<Vec<usize>> = LazyLock::new(|| alphabetical(&DESTINATION_FEATURES));
        let all: &[usize] = if self.view == View::Destination { &DESTINATION } else { &SOURCE };
        // A source window without the shedding flags holds a prefix of `SOURCE_NAMES`.
        all.iter().copied().filter(|&i| i < self.names.len())
    }
}

fn alphabetical(names: &[&str]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by_key(|&i| names[i]);
    order
}

/// A sealed window's states (both views), each list sorted by key without duplicates.
#[derive(Debug, Default, Clone)]
pub struct Run {
    pub src: Vec<(IpAddr, SrcSlot)>,
    pub dst: Vec<(IpAddr, DstState)>,
    /// Source-view traffic refused state by the key budget (see [`crate::Windower`]).
    pub shed: Option<Box<Shed>>,
}

impl Run {
    /// Number of (view, key) states held.
    pub fn keys(&self) -> usize {
        self.src.len() + self.dst.len()
    }

    /// The source key `k` holds a state here.
    pub fn has_source(&self, k: &IpAddr) -> bool {
        self.src.binary_search_by(|e| e.0.cmp(k)).is_ok()
    }

    /// Merges `later` (the states of a later window) into this one: states of the same key
    /// are merged in time order, as the ARP sequence requires. Emptied lists go to `spares`.
    pub fn merge(&mut self, later: Run, p: &Params, spares: &mut Spares) {
        match (self.shed.as_mut(), later.shed) {
            (_, None) => {}
            (None, Some(o)) => self.shed = Some(o),
            (Some(a), Some(b)) => {
                a.records += b.records;
                a.sources.merge(b.sources, p.cap);
            }
        }
        merge_sorted(&mut self.src, later.src, |a, b| a.merge(b, p), &mut spares.src);
        merge_sorted(&mut self.dst, later.dst, |a, b| a.merge(b, p), &mut spares.dst);
    }

    /// Gives the lists' room to `spares` (the window is done).
    pub fn recycle(self, spares: &mut Spares) {
        spares.src.put(self.src);
        spares.dst.put(self.dst);
    }

    /// The window's records, sorted by (view, key). Source keys that only received answers
    /// (no packet sent) are not emitted.
    pub fn finalize(&self, start: i64, size: u32, p: &Params) -> Vec<WindowRecord> {
        let mut out = Vec::new();
        self.finalize_with(start, size, p, &mut |w| out.push(w.to_record()));
        out
    }

    /// Like [`Run::finalize`], handing each window to `emit` as it is computed (no
    /// `WindowRecord` maps are built unless the caller wants them).
    pub fn finalize_with(&self, start: i64, size: u32, p: &Params, emit: &mut dyn FnMut(&ClosedWindow)) {
        let d = size as f64;
        let arp = self.arp_join();
        let mut arp = arp.iter().peekable();
        let shed = self.shed.as_deref().map(|x| (x.records as f64, x.sources.count()));
        let mut w = ClosedWindow::new(View::Source, start, size);
        w.names = &SOURCE_NAMES[..SOURCE_FEATURES + if shed.is_some() { 2 } else { 0 }];
        for (i, (k, s)) in self.src.iter().enumerate() {
            // The join's bindings are in list order: the next one is this key's, or a later one's.
            let binding = arp.next_if(|(j, _)| *j == i).map(|(_, b)| b);
            if !s.sent_any() {
                continue;
            }
            let s: Cow<SrcState> = s.state(p);
            w.key = *k;
            source_features(&s, d, binding, &mut w.values);
            if let Some((records, sources)) = shed {
                // Every source window of a window that shed says so: the ranking of this
                // window's sources is missing some of them.
                w.values[SOURCE_FEATURES] = Some(records);
                w.values[SOURCE_FEATURES + 1] = Some(sources);
            }
            emit(&w);
        }
        w.view = View::Destination;
        w.names = &DESTINATION_FEATURES;
        for (k, s) in &self.dst {
            w.key = *k;
            destination_features(s, d, &mut w.values);
            emit(&w);
        }
    }

    /// Window-wide IP <-> MAC join over ARP sender bindings. For key k with MAC set M(k),
    /// the neighbourhood N(k) is every IP claimed (in this window) by a MAC of M(k), k
    /// included; the original's per-group map statistics are taken over N(k). Results depend
    /// only on the merged MAC sets, so cascaded windows equal direct ones.
    ///
    /// Returns the bindings with the index in `self.src` of their key, ascending. Keys are
    /// numbered in list order, which is key order, so every list below is sorted as built
    /// and the sums over a neighbourhood run in key order.
    fn arp_join(&self) -> Vec<(usize, ArpBinding)> {
        // The senders with MACs: (index in `self.src`, range of their sorted MAC hashes in
        // `macs`, their MAC count), and for each MAC the senders (positions in `senders`).
        let mut senders: Vec<(usize, std::ops::Range<usize>, f64)> = Vec::new();
        let mut macs: Vec<u64> = Vec::new();
        let mut mac_senders: FastMap<u64, Vec<u32>> = FastMap::default();
        let mut asked: FastMap<IpAddr, u64> = FastMap::default();
        for (i, (_, s)) in self.src.iter().enumerate() {
            let Some(a) = s.arp() else { continue };
            for (t, n) in &a.asked {
                *asked.entry(*t).or_default() += n;
            }
            if a.macs.stored() == 0 {
                continue;
            }
            let from = macs.len();
            a.macs.for_each_hash(|h| macs.push(h));
            macs[from..].sort_unstable();
            for &m in &macs[from..] {
                mac_senders.entry(m).or_default().push(senders.len() as u32);
            }
            senders.push((i, from..macs.len(), a.macs.count()));
        }
        let mut out = Vec::with_capacity(senders.len());
        // Keys with the same MAC set have the same neighbourhood: compute it once.
        let mut memo: FastMap<&[u64], ArpBinding> = FastMap::default();
        let (mut nb, mut all_macs) = (Vec::new(), Vec::new());
        for (i, range, _) in &senders {
            let requests_for_key = asked.get(&self.src[*i].0).copied().unwrap_or(0) as f64;
            let m = &macs[range.clone()];
            if let Some(b) = memo.get(m) {
                out.push((*i, ArpBinding { requests_for_key, ..*b }));
                continue;
            }
            nb.clear();
            m.iter().for_each(|h| nb.extend_from_slice(&mac_senders[h]));
            if m.len() > 1 {
                nb.sort_unstable();
                nb.dedup();
            }
            all_macs.clear();
            nb.iter().for_each(|&q| all_macs.extend_from_slice(&macs[senders[q as usize].1.clone()]));
            all_macs.sort_unstable();
            all_macs.dedup();
            let sizes = || nb.iter().map(|&q| senders[q as usize].2);
            let n = nb.len() as f64;
            let b = ArpBinding {
                unique_macs_per_ip_max: sizes().fold(0.0, f64::max),
                avg_macs_per_ip: Some(sizes().sum::<f64>() / n),
                suspicious_mac_changes: sizes().filter(|&c| c > 1.0).count() as f64,
                duplicate_mac_ips: m.iter().map(|h| mac_senders[h].len()).filter(|&c| c > 1).sum::<usize>() as f64,
                mac_ip_ratio: Some(all_macs.len() as f64 / n),
                requests_for_key,
            };
            memo.insert(m, b);
            out.push((*i, b));
        }
        out
    }
}

/// Emptied lists kept for the next windows' lists: a flood's lists hold a million states,
/// and memory handed back to the system returns as fresh pages the kernel must zero (measured:
/// a quarter of a spoofed flood's time went to that).
#[derive(Debug, Default)]
pub struct Spares {
    pub src: Spare<SrcSlot>,
    pub dst: Spare<DstState>,
}

/// Emptied lists of one view (see [`Spares`]).
#[derive(Debug)]
pub struct Spare<V>(Vec<Vec<(IpAddr, V)>>);

impl<V> Default for Spare<V> {
    fn default() -> Self {
        Spare(Vec::new())
    }
}

/// Lists kept per view: a window's 5 s list, its 30 s and 180 s lists being merged.
const SPARES: usize = 3;

impl<V> Spare<V> {
    /// An empty list with room for `n` states: a kept one that fits (and is not far larger,
    /// so memory goes back after a flood), or a new one.
    pub fn take(&mut self, n: usize) -> Vec<(IpAddr, V)> {
        match self.0.iter().position(|v| v.capacity() >= n && v.capacity() <= 4 * n + 4096) {
            Some(i) => self.0.swap_remove(i),
            None => Vec::with_capacity(n),
        }
    }

    pub fn put(&mut self, mut v: Vec<(IpAddr, V)>) {
        v.clear();
        if v.capacity() == 0 {
            return;
        }
        self.0.push(v);
        if self.0.len() > SPARES {
            let smallest = (0..self.0.len()).min_by_key(|&i| self.0[i].capacity()).expect("not empty");
            self.0.swap_remove(smallest);
        }
    }
}

/// Merges the sorted list `b` into the sorted list `a`, combining the values of a key in both
/// with `f(a's, b's)`. When every key of `b` is already in `a` (steady traffic: the same hosts
/// window after window) it works in place; otherwise it builds the union once, at its exact size.
fn merge_sorted<V>(
    a: &mut Vec<(IpAddr, V)>,
    mut b: Vec<(IpAddr, V)>,
    mut f: impl FnMut(&mut V, V),
    spare: &mut Spare<V>,
) {
    if b.is_empty() {
        return spare.put(b);
    }
    if a.is_empty() {
        return spare.put(std::mem::replace(a, b));
    }
    let (mut i, mut j, mut union) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            Ordering::Less => i += 1,
            Ordering::Greater => j += 1,
            Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
        union += 1;
    }
    union += (a.len() - i) + (b.len() - j);
    if union == a.len() {
        let mut i = 0;
        for (k, v) in b.drain(..) {
            while a[i].0 < k {
                i += 1;
            }
            f(&mut a[i].1, v);
        }
        return spare.put(b);
    }
    let mut out = spare.take(union);
    let mut old = std::mem::take(a);
    let mut x = old.drain(..).peekable();
    let mut y = b.drain(..).peekable();
    loop {
        let order = match (x.peek(), y.peek()) {
            (Some(l), Some(r)) => l.0.cmp(&r.0),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => break,
        };
        match order {
            Ordering::Less => out.extend(x.next()),
            Ordering::Greater => out.extend(y.next()),
            Ordering::Equal => {
                let (k, mut v) = x.next().expect("peeked");
                f(&mut v, y.next().expect("peeked").1);
                out.push((k, v));
            }
        }
    }
    drop((x, y));
    spare.put(old);
    spare.put(b);
    *a = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record holds every feature of the window under its name, with its value, whatever
    /// order the names are visited in.
    #[test]
    fn record_holds_every_feature() {
        let mut run = Run::default();
        let mut r = wire::PacketRecord::new(1.0, 60);
        r.src_ip = Some(IpAddr::from([10, 0, 0, 1]));
        r.dst_ip = Some(IpAddr::from([10, 0, 0, 2]));
        r.protocol = wire::Protocol::Udp;
        r.dst_port = Some(53);
        let p = Params { cap: 64, part: crate::Partition::ALL, few: crate::slot::FEW as u8 };
        let mut level = crate::level::Level::default();
        level.add(&r, &p).unwrap();
        run.merge(level.into_run(&mut Spares::default()), &p, &mut Spares::default());
        run.shed = Some(Box::default());
        let mut seen = 0;
        run.finalize_with(0, 5, &p, &mut |w| {
            seen += 1;
            let rec = w.to_record();
            assert_eq!(rec.features.len(), w.names.len());
            for (name, value) in w.features() {
                assert_eq!(rec.features.get(name), Some(&value), "{name}");
            }
        });
        assert_eq!(seen, 2);
    }

    /// The join against its definition, written plainly, on ARP senders sharing MACs in
    /// overlapping groups (one MAC, several, a MAC claimed by many addresses).
    #[test]
    fn arp_join_matches_its_definition() {
        use std::collections::{BTreeMap, BTreeSet};
        let p = Params { cap: 64, part: crate::Partition::ALL, few: crate::slot::FEW as u8 };
        let mut level = crate::level::Level::default();
        let mut claims: BTreeMap<IpAddr, BTreeSet<u8>> = BTreeMap::new();
        let mut asked: BTreeMap<IpAddr, u64> = BTreeMap::new();
        let mut x = 7u64;
        for i in 0..400u64 {
            x = crate::hash::mix64(x + i);
            let ip = IpAddr::from([10, 0, 0, (x % 23) as u8]);
            let target = IpAddr::from([10, 0, 0, (x >> 8) as u8 % 23]);
            let mac = if x.is_multiple_of(5) { (x >> 16) as u8 % 6 } else { (x % 23) as u8 % 4 };
            let mut r = wire::PacketRecord::new(i as f64 * 0.01, 42);
            r.protocol = wire::Protocol::Arp;
            r.arp_op = Some(1);
            r.arp_psrc = Some(ip);
            r.arp_pdst = Some(target);
            r.arp_hwsrc = Some(wire::MacAddr([2, 0, 0, 0, 0, mac]));
            level.add(&r, &p).unwrap();
            claims.entry(ip).or_default().insert(mac);
            *asked.entry(target).or_default() += 1;
        }
        let run = level.into_run(&mut Spares::default());
        let join = run.arp_join();
        assert_eq!(join.len(), claims.len());
        for (i, b) in join {
            let k = run.src[i].0;
            let mine = &claims[&k];
            let nb: Vec<&BTreeSet<u8>> = claims.values().filter(|m| !m.is_disjoint(mine)).collect();
            let n = nb.len() as f64;
            let sizes: Vec<f64> = nb.iter().map(|m| m.len() as f64).collect();
            let all: BTreeSet<u8> = nb.iter().flat_map(|m| m.iter().copied()).collect();
            let sharing = |mac: &u8| claims.values().filter(|m| m.contains(mac)).count();
            assert_eq!(b.unique_macs_per_ip_max, sizes.iter().copied().fold(0.0, f64::max), "{k}");
            assert_eq!(b.avg_macs_per_ip, Some(sizes.iter().sum::<f64>() / n), "{k}");
            assert_eq!(b.suspicious_mac_changes, sizes.iter().filter(|&&c| c > 1.0).count() as f64);
            assert_eq!(b.duplicate_mac_ips, mine.iter().map(sharing).filter(|&c| c > 1).sum::<usize>() as f64);
            assert_eq!(b.mac_ip_ratio, Some(all.len() as f64 / n), "{k}");
            assert_eq!(b.requests_for_key, asked.get(&k).copied().unwrap_or(0) as f64, "{k}");
        }
    }
}
