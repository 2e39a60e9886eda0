//! All keys' states of one open 5 s window (both views), in hash maps while records arrive:
//! routing a record to its keys, and sealing the window into a sorted [`Run`] (which merges
//! and finalises it).
//!
//! Routing (see the crate docs): an IP packet updates the source state of its src_ip and the
//! destination state of its dst_ip; if it is an answer (DNS response, HTTP response, SYN-ACK)
//! it also updates the "received" part of the source state of its dst_ip. An ARP frame updates
//! the source state of its sender (arp_psrc) and no destination state. A frame with neither an
//! IP source nor an ARP sender is skipped and counted.

pub use crate::features::{SHED_RECORDS, SHED_SOURCES};
use crate::hash::{hash_ip, BuildFast, FastMap};
use crate::run::{Run, Spares};
use crate::sketch::BottomK;
use crate::slot::SrcSlot;
use crate::state::{DstState, Params, SrcState};
use indexmap::IndexMap;
use std::net::IpAddr;
use wire::{PacketRecord, Protocol, WindowRecord};

#[derive(Debug, Default, Clone)]
pub struct Level {
    /// Compact slots (see [`crate::slot`]) in an index map: the hash table holds 8-byte
    /// indices and the entries sit in one dense vector, so a million one-packet keys cost
    /// about 130 bytes each, not a sparse table of slots (half empty after it grows, and
    /// copied whole when it does).
    pub src: IndexMap<IpAddr, SrcSlot, BuildFast>,
    /// Destination states, each with the index in `src` of the same address's source slot
    /// once an answer it received put one there ([`NO_SLOT`] until then): an answer updates
    /// both, and this saves the second lookup (answers are a third to a half of the records).
    pub dst: FastMap<IpAddr, (DstState, u32)>,
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

/// No source slot index cached (see [`Level::dst`]).
const NO_SLOT: u32 = u32::MAX;

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
        let mut dst = None;
        if r.protocol != Protocol::Arp {
            if let Some(d) = r.dst_ip {
                if p.part.owns(&d) {
                    let e = self.dst.entry(d).or_insert((DstState::default(), NO_SLOT));
                    e.0.add(r, p);
                    dst = Some(&mut e.1);
                }
            }
        }
        if let Some(d) = recv {
            if admit[1] {
                // A received answer's address has its destination state (same partition test,
                // never ARP); the slot index cached there holds until the window seals (slots
                // are only ever added).
                let slot = match dst {
                    Some(&mut i) if i != NO_SLOT => &mut self.src[i as usize],
                    Some(i) => {
                        let e = self.src.entry(d);
                        *i = e.index() as u32;
                        e.or_default()
                    }
                    None => self.src.entry(d).or_default(),
                };
                slot.add_received(r, p);
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

    /// Seals the window (order-dependent parts, see [`SrcSlot::seal`]) and moves its states
    /// out sorted by key into lists from `spares`, leaving the maps empty with their room for
    /// the next window.
    pub fn into_run(&mut self, spares: &mut Spares) -> Run {
        self.src.values_mut().for_each(|s| s.seal());
        // Keys sorted with their indices, then each state moved once: a state is up to a few
        // hundred bytes, and sorting them in place would move each a dozen times.
        let mut src = spares.src.take(self.src.len());
        src.extend(key_order(self.src.keys()).into_iter().map(|i| {
            let (k, s) = self.src.get_index_mut(i).expect("index from the map");
            (*k, std::mem::take(s))
        }));
        self.src.clear();
        let mut unsorted: Vec<(IpAddr, DstState)> = self.dst.drain().map(|(k, (s, _))| (k, s)).collect();
        let mut dst = spares.dst.take(unsorted.len());
        dst.extend(key_order(unsorted.iter().map(|e| &e.0)).into_iter().map(|i| {
            let (k, s) = &mut unsorted[i];
            (*k, std::mem::take(s))
        }));
        Run { src, dst, shed: self.shed.take() }
    }
}

/// Positions of `keys` in key order (`IpAddr`'s: every v4 address before every v6 one),
/// sorted as plain integers, position included (faster than comparing addresses). A v4
/// address and its position share one 64-bit word: a window's map never holds 2^32 keys.
fn key_order<'a>(keys: impl Iterator<Item = &'a IpAddr>) -> Vec<usize> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for (i, k) in keys.enumerate() {
        match k {
            IpAddr::V4(a) => v4.push((u32::from(*a) as u64) << 32 | i as u64),
            IpAddr::V6(a) => v6.push((u128::from(*a), i)),
        }
    }
    v4.sort_unstable();
    v6.sort_unstable();
    v4.iter().map(|&x| x as u32 as usize).chain(v6.iter().map(|e| e.1)).collect()
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
    l.into_run(&mut Spares::default()).finalize(start, size, &p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_is_address_order() {
        let mut keys: Vec<IpAddr> = ["::1", "10.0.0.2", "2001:db8::5", "0.0.0.1", "::", "255.255.255.255", "10.0.0.1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        keys.extend((0..300u32).map(|i| IpAddr::from((crate::hash::mix64(i as u64) as u32).to_be_bytes())));
        let order: Vec<IpAddr> = key_order(keys.iter()).into_iter().map(|i| keys[i]).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(order, sorted);
    }
}
