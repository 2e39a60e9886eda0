//! All keys' states of one window (both views): routing a record to its keys, merging whole
//! windows, and finalising them into `WindowRecord`s.
//!
//! Routing (see the crate docs): an IP packet updates the source state of its src_ip and the
//! destination state of its dst_ip; if it is an answer (DNS response, HTTP response, SYN-ACK)
//! it also updates the "received" part of the source state of its dst_ip. An ARP frame updates
//! the source state of its sender (arp_psrc) and no destination state. A frame with neither an
//! IP source nor an ARP sender is skipped and counted.

use crate::features::{destination_features, source_features, ArpBinding, Values, SOURCE_FEATURES, SOURCE_NAMES};
pub use crate::features::{SHED_RECORDS, SHED_SOURCES};
use crate::hash::{hash_ip, BuildFast, FastMap};
use crate::sketch::BottomK;
use crate::slot::SrcSlot;
use crate::state::{DstState, Params, SrcState};
use indexmap::IndexMap;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use wire::features::DESTINATION_FEATURES;
use wire::{PacketRecord, Protocol, View, WindowRecord, BATCH_FORMAT_VERSION};

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
            features: self.features().map(|(k, v)| (k.to_string(), v)).collect::<BTreeMap<_, _>>(),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Level {
    /// Compact slots (see [`crate::slot`]) in an index map: the hash table holds 8-byte
    /// indices and the entries sit in one dense vector, so a million one-packet keys cost
    /// about 130 bytes each, not a sparse table of slots (half empty after it grows, and
    /// copied whole when it does).
    pub src: IndexMap<IpAddr, SrcSlot, BuildFast>,
    pub dst: FastMap<IpAddr, DstState>,
    /// Source-view traffic refused state by the key budget (see [`crate::Windower`]).
    pub shed: Option<Box<Shed>>,
}

/// What the key budget kept out of a window's source view: counted, never silently lost.
#[derive(Debug, Default, Clone)]
pub struct Shed {
    /// Records whose source-view part (sent, or an answer received) got no state.
    pub records: u64,
    /// The keys refused (a bottom-k sketch: exact up to the cap, an estimate above).
    pub sources: BottomK<()>,
}

/// The source-view keys a record updates, each only if this windower keeps it: the sender
/// (IP source, or ARP sender) and the receiver of an answer (see [`SrcState::wants_received`]).
pub fn source_keys(r: &PacketRecord, p: &Params) -> Result<[Option<IpAddr>; 2], Skip> {
    if r.protocol == Protocol::Arp {
        // ARP senders are kept in every partition (the ARP join needs them all).
        return Ok([Some(r.arp_psrc.ok_or(Skip::NoAddress)?), None]);
    }
    let k = r.src_ip.ok_or(Skip::NoAddress)?;
    let recv = r.dst_ip.filter(|d| p.part.owns(d) && SrcState::wants_received(r));
    Ok([Some(k).filter(|k| p.part.owns(k)), recv])
}

/// Why a record contributed to no key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Neither an IP source address nor an ARP sender address (e.g. LLDP, STP).
    NoAddress,
}

impl Level {
    /// An empty window with room for `keys` (source, destination) states: sized from the
    /// previous 5 s window, a flood's window does not grow its maps (and copy them) a dozen
    /// times over.
    pub fn with_capacity(keys: (usize, usize)) -> Level {
        Level {
            src: IndexMap::with_capacity_and_hasher(keys.0, BuildFast),
            dst: FastMap::with_capacity_and_hasher(keys.1, BuildFast),
            shed: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.src.is_empty() && self.dst.is_empty()
    }

    /// Number of (view, key) states held.
    pub fn keys(&self) -> usize {
        self.src.len() + self.dst.len()
    }

    /// Routes `r` to the states of its keys that belong to `p.part`. ARP senders are kept in
    /// every partition: the window's ARP join relates keys of all partitions (only the owner
    /// emits them, see `Windower`).
    pub fn add(&mut self, r: &PacketRecord, p: &Params) -> Result<(), Skip> {
        self.add_admitted(r, p, [true, true]).map(|_| ())
    }

    /// Like [`Level::add`], but the source-view keys of [`source_keys`] whose `admit` is false
    /// get no state: the record is counted in [`Level::shed`] instead. Returns the number of
    /// source-view states created.
    pub fn add_admitted(&mut self, r: &PacketRecord, p: &Params, admit: [bool; 2]) -> Result<usize, Skip> {
        let [sent, recv] = source_keys(r, p)?;
        let before = self.src.len();
        let mut shed = false;
        if let Some(k) = sent {
            if admit[0] {
                self.src.entry(k).or_default().add_sent(r, p);
            } else {
                self.shed_key(&k, p);
                shed = true;
            }
        }
        if r.protocol != Protocol::Arp {
            if let Some(d) = r.dst_ip {
                if p.part.owns(&d) {
                    self.dst.entry(d).or_default().add(r, p);
                }
            }
        }
        if let Some(d) = recv {
            if admit[1] {
                self.src.entry(d).or_default().add_received(r, p);
            } else {
                self.shed_key(&d, p);
                shed = true;
            }
        }
        if shed {
            self.shed.get_or_insert_with(Default::default).records += 1;
        }
        Ok(self.src.len() - before)
    }

    fn shed_key(&mut self, k: &IpAddr, p: &Params) {
        self.shed.get_or_insert_with(Default::default).sources.upsert(hash_ip(k), p.cap, |_| {});
    }

    /// Seals order-dependent parts; called once when a 5 s window closes.
    pub fn seal(&mut self) {
        self.src.values_mut().for_each(|s| s.seal());
    }

    /// Merges `other` (the same keys' states in a later window) into this window and leaves
    /// `other` empty with its maps' room, for the engine to reuse: a flood's maps hold a
    /// million entries, and allocating them afresh for every 5 s window costs more page faults
    /// (the allocator returns freed memory to the system) than the merge itself.
    pub fn merge(&mut self, other: &mut Level, p: &Params) {
        if self.is_empty() && self.shed.is_none() {
            std::mem::swap(self, other);
            return;
        }
        match (self.shed.as_mut(), other.shed.take()) {
            (_, None) => {}
            (None, Some(o)) => self.shed = Some(o),
            (Some(a), Some(b)) => {
                a.records += b.records;
                a.sources.merge(b.sources, p.cap);
            }
        }
        if self.src.capacity() - self.src.len() < other.src.len() {
            // Room for exactly the new keys: letting the map double holds the old and the new
            // entries at once, a flood's million of them (measured: 444 MB peak instead of 544).
            let new = other.src.keys().filter(|k| !self.src.contains_key(*k)).count();
            self.src.reserve(new);
        }
        for (k, s) in other.src.drain(..) {
            match self.src.get_mut(&k) {
                Some(x) => x.merge(s, p),
                None => {
                    self.src.insert(k, s);
                }
            }
        }
        for (k, s) in other.dst.drain() {
            match self.dst.get_mut(&k) {
                Some(x) => x.merge(s, p),
                None => {
                    self.dst.insert(k, s);
                }
            }
        }
    }

    /// Makes this (empty) window ready for `keys` (source, destination) states, keeping the
    /// room it has unless that is far more than needed (memory goes back after a flood).
    pub fn reuse_for(mut self, keys: (usize, usize)) -> Level {
        debug_assert!(self.is_empty() && self.shed.is_none());
        if self.src.capacity() > 4 * keys.0 + 1024 || self.dst.capacity() > 4 * keys.1 + 1024 {
            return Level::with_capacity(keys);
        }
        self.src.reserve(keys.0);
        self.dst.reserve(keys.1);
        self
    }

    /// The window's records, sorted by (view, key). Source keys that only received answers
    /// (no packet sent) are not emitted.
    pub fn finalize(&self, start: i64, size: u32, p: &Params) -> Vec<WindowRecord> {
        let mut out = Vec::new();
        self.finalize_with(start, size, p, &mut |w| out.push(w.to_record()));
        out
    }

    /// Like [`Level::finalize`], handing each window to `emit` as it is computed (no
    /// `WindowRecord` maps are built unless the caller wants them).
    pub fn finalize_with(&self, start: i64, size: u32, p: &Params, emit: &mut dyn FnMut(&ClosedWindow)) {
        let d = size as f64;
        let arp = self.arp_join();
        // Sized up front: growing a vector of a million keys copies it a dozen times.
        let mut src: Vec<(&IpAddr, &SrcSlot)> = Vec::with_capacity(self.src.len());
        src.extend(self.src.iter().filter(|(_, s)| s.sent_any()));
        src.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut dst: Vec<(&IpAddr, &DstState)> = Vec::with_capacity(self.dst.len());
        dst.extend(self.dst.iter());
        dst.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let shed = self.shed.as_deref().map(|x| (x.records as f64, x.sources.count()));
        let mut w = ClosedWindow::new(View::Source, start, size);
        w.names = &SOURCE_NAMES[..SOURCE_FEATURES + if shed.is_some() { 2 } else { 0 }];
        for (k, s) in src {
            let s: Cow<SrcState> = s.state(p);
            w.key = *k;
            source_features(&s, d, arp.get(k), &mut w.values);
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
        for (k, s) in dst {
            w.key = *k;
            destination_features(s, d, &mut w.values);
            emit(&w);
        }
    }

    /// Window-wide IP <-> MAC join over ARP sender bindings. For key k with MAC set M(k),
    /// the neighbourhood N(k) is every IP claimed (in this window) by a MAC of M(k), k
    /// included; the original's per-group map statistics are taken over N(k). Results depend
    /// only on the merged MAC sets, so cascaded windows equal direct ones.
    fn arp_join(&self) -> HashMap<IpAddr, ArpBinding> {
        let mut ip_macs: HashMap<IpAddr, (Vec<u64>, f64)> = HashMap::new();
        let mut mac_ips: HashMap<u64, Vec<IpAddr>> = HashMap::new();
        let mut asked: HashMap<IpAddr, u64> = HashMap::new();
        for (ip, s) in &self.src {
            let Some(a) = s.arp() else { continue };
            for (t, n) in &a.asked {
                *asked.entry(*t).or_default() += n;
            }
            if a.macs.stored() == 0 {
                continue;
            }
            let mut macs: Vec<u64> = a.macs.hashes().collect();
            macs.sort_unstable();
            for &m in &macs {
                mac_ips.entry(m).or_default().push(*ip);
            }
            ip_macs.insert(*ip, (macs, a.macs.count()));
        }
        let mut out = HashMap::with_capacity(ip_macs.len());
        // Keys with the same MAC set have the same neighbourhood: compute it once.
        let mut memo: HashMap<&[u64], ArpBinding> = HashMap::new();
        for (ip, (macs, _)) in &ip_macs {
            let requests_for_key = asked.get(ip).copied().unwrap_or(0) as f64;
            if let Some(b) = memo.get(macs.as_slice()) {
                out.insert(*ip, ArpBinding { requests_for_key, ..*b });
                continue;
            }
            let mut nb: Vec<IpAddr> = macs.iter().flat_map(|m| mac_ips[m].iter().copied()).collect();
            nb.sort_unstable();
            nb.dedup();
            let sizes: Vec<f64> = nb.iter().map(|i| ip_macs[i].1).collect();
            let mut all_macs: Vec<u64> = nb.iter().flat_map(|i| ip_macs[i].0.iter().copied()).collect();
            all_macs.sort_unstable();
            all_macs.dedup();
            let n = nb.len() as f64;
            let b = ArpBinding {
                unique_macs_per_ip_max: sizes.iter().copied().fold(0.0, f64::max),
                avg_macs_per_ip: Some(sizes.iter().sum::<f64>() / n),
                suspicious_mac_changes: sizes.iter().filter(|&&c| c > 1.0).count() as f64,
                duplicate_mac_ips: macs.iter().map(|m| mac_ips[m].len()).filter(|&c| c > 1).sum::<usize>() as f64,
                mac_ip_ratio: Some(all_macs.len() as f64 / n),
                requests_for_key,
            };
            memo.insert(macs.as_slice(), b);
            out.insert(*ip, b);
        }
        out
    }
}

/// Reference path: every record in one state, finalised as one window of `size` seconds
/// starting at `start` (records are not checked against the bounds). The cascade must give
/// the same features as this; the property tests compare them.
pub fn direct_window(records: &[PacketRecord], start: i64, size: u32, cap: usize) -> Vec<WindowRecord> {
    let p = Params { cap, part: crate::Partition::ALL, few: crate::slot::FEW as u8 };
    let mut l = Level::default();
    for r in records {
        let _ = l.add(r, &p);
    }
    l.finalize(start, size, &p)
}
