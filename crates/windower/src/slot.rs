//! A source key's state in one window, small while the key is: most sources of a spoofed
//! flood send one or two packets, and a full [`SrcState`] (about half a kilobyte) for each is
//! what made a million of them cost gigabytes.
//!
//! A key's slot keeps up to [`FEW`] *plain* packets themselves (40 bytes each, inline, no
//! heap allocation) and becomes a full state only when it sees more, or a packet a summary
//! does not hold (DNS, HTTP, ARP, SSH). A state is a function of the packets added to it, so
//! replaying the summaries through [`SrcState::add_sent`] / [`SrcState::add_received`] builds
//! exactly the state the full path would have built: every feature comes from a full state,
//! and the windows are the same whether a key was ever compact or not.

use crate::state::{ArpAcc, Params, RecvAcc, SrcState};
use std::borrow::Cow;
use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use wire::{AppProto, PacketRecord, Protocol};

/// Packets a compact slot holds before it becomes a full state (two: a spoofed source's SYN
/// and retransmission, or one packet in each of two 5 s windows of a 30 s window).
pub const FEW: usize = 2;

/// What [`SrcState`] reads of a plain packet (see [`Mini::of`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mini {
    ts: f64,
    len: u32,
    src_port: u16,
    dst_port: u16,
    dst: [u8; 16],
    bits: u16,
    icmp_type: u8,
}

const HAS_DST: u16 = 1;
const DST_V6: u16 = 1 << 1;
const HAS_SPORT: u16 = 1 << 2;
const HAS_DPORT: u16 = 1 << 3;
const HAS_ICMP: u16 = 1 << 4;
/// The packet was addressed to the key (an answer it received), not sent by it.
const RECEIVED: u16 = 1 << 5;
const SYN: u16 = 1 << 6;
const ACK: u16 = 1 << 7;
const RST: u16 = 1 << 8;
const FIN: u16 = 1 << 9;
const PSH: u16 = 1 << 10;
/// Protocol in bits 12..15.
const PROTO_SHIFT: u16 = 12;
const PROTOCOLS: [Protocol; 4] = [Protocol::Tcp, Protocol::Udp, Protocol::Icmp, Protocol::Icmpv6];

impl Mini {
    const EMPTY: Mini = Mini { ts: 0.0, len: 0, src_port: 0, dst_port: 0, dst: [0; 16], bits: 0, icmp_type: 0 };

    /// The summary of `r`, if `r` is plain: a packet whose effect on a source state is fully
    /// described by the fields kept here. Sent packets with DNS queries, HTTP requests or
    /// responses, ARP or SSH payloads, and received DNS or HTTP answers are not.
    #[inline]
    fn of(r: &PacketRecord, received: bool) -> Option<Mini> {
        let plain = if received {
            r.dns_response != Some(true) && r.http_status_code.is_none()
        } else {
            r.dns_query != Some(true)
                && r.http_method.is_none()
                && r.http_status_code.is_none()
                && r.app_proto != Some(AppProto::Ssh)
        };
        let proto = PROTOCOLS.iter().position(|&p| p == r.protocol).map_or(PROTOCOLS.len(), |i| i);
        if !plain || r.protocol == Protocol::Arp {
            return None;
        }
        let flag = |f: Option<bool>, bit: u16| if f == Some(true) { bit } else { 0 };
        let mut bits = (proto as u16) << PROTO_SHIFT
            | flag(Some(received), RECEIVED)
            | flag(r.tcp_syn, SYN)
            | flag(r.tcp_ack, ACK)
            | flag(r.tcp_rst, RST)
            | flag(r.tcp_fin, FIN)
            | flag(r.tcp_psh, PSH);
        let mut dst = [0u8; 16];
        match r.dst_ip {
            Some(IpAddr::V4(a)) => {
                bits |= HAS_DST;
                dst[..4].copy_from_slice(&a.octets());
            }
            Some(IpAddr::V6(a)) => {
                bits |= HAS_DST | DST_V6;
                dst = a.octets();
            }
            None => {}
        }
        bits |= flag(Some(r.src_port.is_some()), HAS_SPORT)
            | flag(Some(r.dst_port.is_some()), HAS_DPORT)
            | flag(Some(r.icmp_type.is_some()), HAS_ICMP);
        Some(Mini {
            ts: r.timestamp,
            len: r.length,
            src_port: r.src_port.unwrap_or(0),
            dst_port: r.dst_port.unwrap_or(0),
            dst,
            bits,
            icmp_type: r.icmp_type.unwrap_or(0),
        })
    }

    /// Writes the kept fields into `r`, a record whose other fields are all empty.
    fn fill(&self, r: &mut PacketRecord) {
        let has = |bit: u16| self.bits & bit != 0;
        let flag = |bit: u16| Some(has(bit));
        r.timestamp = self.ts;
        r.length = self.len;
        r.protocol = PROTOCOLS.get((self.bits >> PROTO_SHIFT) as usize).copied().unwrap_or(Protocol::Other);
        r.dst_ip = match (has(HAS_DST), has(DST_V6)) {
            (false, _) => None,
            (true, true) => Some(IpAddr::V6(Ipv6Addr::from(self.dst))),
            (true, false) => Some(IpAddr::V4(Ipv4Addr::new(self.dst[0], self.dst[1], self.dst[2], self.dst[3]))),
        };
        r.src_port = has(HAS_SPORT).then_some(self.src_port);
        r.dst_port = has(HAS_DPORT).then_some(self.dst_port);
        r.icmp_type = has(HAS_ICMP).then_some(self.icmp_type);
        r.tcp_syn = flag(SYN);
        r.tcp_ack = flag(ACK);
        r.tcp_rst = flag(RST);
        r.tcp_fin = flag(FIN);
        r.tcp_psh = flag(PSH);
    }

    fn received(&self) -> bool {
        self.bits & RECEIVED != 0
    }

    /// Calls `f` with the packet as a record.
    fn with_record(&self, f: impl FnOnce(&PacketRecord)) {
        thread_local! {
            // A record to replay into: building one per packet would cost more than the replay.
            static SCRATCH: RefCell<PacketRecord> = RefCell::new(PacketRecord::default());
        }
        SCRATCH.with_borrow_mut(|r| {
            self.fill(r);
            f(r)
        })
    }
}

/// Adds the kept packets to `s`, in arrival order.
fn replay(few: &[Mini], s: &mut SrcState, p: &Params) {
    for m in few {
        m.with_record(|r| if m.received() { s.add_received(r) } else { s.add_sent(r, p) })
    }
}

/// Adds kept packets the key received (all of `few`) to `a`.
fn replay_received(few: &[Mini], a: &mut RecvAcc) {
    debug_assert!(few.iter().all(Mini::received));
    few.iter().for_each(|m| m.with_record(|r| a.add(r)));
}

/// A source key's state in one window (see the module docs).
#[derive(Debug, Clone)]
pub enum SrcSlot {
    /// The first packets, while few and plain, in arrival order.
    Few(u8, [Mini; FEW]),
    /// A key that has only received answers, more than [`FEW`] or not plain: all its state
    /// is what a full state keeps in `recv`. Many keys never send (the hosts a scan or a
    /// spoofed flood's backscatter answers to), emit no source window, and need no more.
    Received(Box<RecvAcc>),
    Full(Box<SrcState>),
}

impl Default for SrcSlot {
    fn default() -> Self {
        SrcSlot::Few(0, [Mini::EMPTY; FEW])
    }
}

impl SrcSlot {
    /// Adds one packet sent by the key ([`SrcState::add_sent`]).
    #[inline]
    pub fn add_sent(&mut self, r: &PacketRecord, p: &Params) {
        if !self.push(r, false, p) {
            self.full(p).add_sent(r, p)
        }
    }

    /// Adds one packet the key received ([`SrcState::add_received`]).
    #[inline]
    pub fn add_received(&mut self, r: &PacketRecord, p: &Params) {
        if !self.push(r, true, p) {
            self.recv_acc(p).add(r)
        }
    }

    /// Where a received packet goes once the slot cannot keep it: the `Received` box, or
    /// the full state's part for received packets (a compact slot becomes one or the other).
    fn recv_acc(&mut self, p: &Params) -> &mut RecvAcc {
        if let SrcSlot::Few(n, few) = self {
            let few = &few[..*n as usize];
            // `few == 0` turns compact slots off altogether (the tests' reference path).
            if p.few == 0 || !few.iter().all(Mini::received) {
                return self.full(p).recv.get_or_insert_with(Default::default);
            }
            let mut a = Box::<RecvAcc>::default();
            replay_received(few, &mut a);
            *self = SrcSlot::Received(a);
        }
        match self {
            SrcSlot::Received(a) => a,
            SrcSlot::Full(s) => s.recv.get_or_insert_with(Default::default),
            SrcSlot::Few(..) => unreachable!("just made received"),
        }
    }

    /// Keeps `r` in a compact slot with room for it; false when the full state must take it.
    #[inline]
    fn push(&mut self, r: &PacketRecord, received: bool, p: &Params) -> bool {
        let SrcSlot::Few(n, few) = self else { return false };
        let Some(m) = (*n < p.few).then(|| Mini::of(r, received)).flatten() else { return false };
        few[*n as usize] = m;
        *n += 1;
        true
    }

    /// The full state, built from the kept packets if the slot is compact.
    #[inline]
    pub fn full(&mut self, p: &Params) -> &mut SrcState {
        if !matches!(self, SrcSlot::Full(_)) {
            self.make_full(p);
        }
        match self {
            SrcSlot::Full(s) => s,
            _ => unreachable!("just made full"),
        }
    }

    #[cold]
    fn make_full(&mut self, p: &Params) {
        *self = SrcSlot::Full(std::mem::take(self).into_full(p));
    }

    /// The slot as a full state (built from the kept packets or the received part). States
    /// are built in place: half a kilobyte, not worth a copy through the stack.
    fn into_full(self, p: &Params) -> Box<SrcState> {
        match self {
            SrcSlot::Full(s) => s,
            SrcSlot::Few(n, few) => {
                let mut s = Box::<SrcState>::default();
                replay(&few[..n as usize], &mut s, p);
                s
            }
            SrcSlot::Received(a) => {
                let mut s = Box::<SrcState>::default();
                s.recv = Some(a);
                s
            }
        }
    }

    /// The state (built from the kept packets if compact), for the features.
    pub fn state(&self, p: &Params) -> Cow<'_, SrcState> {
        match self {
            SrcSlot::Full(s) => Cow::Borrowed(s),
            SrcSlot::Received(a) => Cow::Owned(SrcState { recv: Some(a.clone()), ..SrcState::default() }),
            SrcSlot::Few(n, few) => {
                let mut s = SrcState::default();
                replay(&few[..*n as usize], &mut s, p);
                Cow::Owned(s)
            }
        }
    }

    /// The key sent something (a key that only received answers emits no source window).
    pub fn sent_any(&self) -> bool {
        match self {
            SrcSlot::Full(s) => s.packets > 0,
            SrcSlot::Received(_) => false,
            SrcSlot::Few(n, few) => few[..*n as usize].iter().any(|m| !m.received()),
        }
    }

    pub fn arp(&self) -> Option<&ArpAcc> {
        match self {
            SrcSlot::Full(s) => s.arp.as_deref(),
            SrcSlot::Few(..) | SrcSlot::Received(_) => None,
        }
    }

    /// Seals order-dependent parts (a compact slot has none: no ARP, see [`crate::arp::ArpSeq`]).
    pub fn seal(&mut self) {
        if let SrcSlot::Full(s) = self {
            s.seal()
        }
    }

    /// Merges the state of the same key in a later window ([`SrcState::merge`]).
    pub fn merge(&mut self, other: SrcSlot, p: &Params) {
        match (&mut *self, other) {
            (SrcSlot::Few(n, few), SrcSlot::Few(m, more)) if *n + m <= p.few => {
                few[*n as usize..(*n + m) as usize].copy_from_slice(&more[..m as usize]);
                *n += m;
            }
            (SrcSlot::Received(a), SrcSlot::Few(m, more)) if more[..m as usize].iter().all(Mini::received) => {
                replay_received(&more[..m as usize], a)
            }
            (_, SrcSlot::Few(m, more)) => {
                replay(&more[..m as usize], self.full(p), p);
            }
            (_, SrcSlot::Received(b)) => {
                // Received packets merge in any order (sums and sets).
                let a = self.recv_acc(p);
                a.merge(*b);
            }
            (SrcSlot::Full(s), SrcSlot::Full(o)) => s.merge(o, p),
            (_, SrcSlot::Full(mut o)) => {
                // Keep the other's allocation and merge this slot's state into it: a compact
                // or received-only slot holds no ARP, the one part of a state whose merge
                // depends on order.
                o.merge(std::mem::take(self).into_full(p), p);
                *self = SrcSlot::Full(o);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{source_features, Values, SOURCE_NAMES};
    use crate::hash::mix64;

    fn features(s: &SrcState) -> Vec<Option<u64>> {
        let mut v: Values = [None; SOURCE_NAMES.len()];
        source_features(s, 30.0, None, &mut v);
        // Bit patterns: NaN-safe exact comparison.
        v.iter().map(|x| x.map(f64::to_bits)).collect()
    }

    /// One key's packets, sent and received, plain and not (DNS answers, HTTP), cut into
    /// consecutive windows whose slots are merged in order: every mix of compact, received-only
    /// and full slots gives the state of adding every packet to a full state.
    #[test]
    fn merged_slots_equal_one_full_state() {
        let p = Params { cap: 64, part: crate::Partition::ALL, few: FEW as u8 };
        let key = IpAddr::from([10, 0, 0, 1]);
        for seed in 0..400u64 {
            let mut x = mix64(seed + 1);
            let n = 1 + (x % 9) as usize;
            let mut packets = Vec::new();
            for i in 0..n {
                x = mix64(x);
                let mut r = PacketRecord::new(i as f64, 60 + (x % 100) as u32);
                r.protocol = if x & 1 == 0 { Protocol::Tcp } else { Protocol::Udp };
                r.src_port = Some(1000 + (x >> 8) as u16 % 4);
                r.dst_port = Some(80 + (x >> 16) as u16 % 3);
                r.tcp_syn = Some(x & 2 != 0);
                r.tcp_ack = Some(x & 4 != 0);
                r.tcp_rst = Some(x & 8 != 0);
                // Sent by the key (to 10.0.0.2) or received by it (an answer from 10.0.0.2).
                let received = !(x >> 24).is_multiple_of(3);
                let peer = IpAddr::from([10, 0, 0, 2]);
                (r.src_ip, r.dst_ip) = if received { (Some(peer), Some(key)) } else { (Some(key), Some(peer)) };
                if (x >> 32).is_multiple_of(5) {
                    r.protocol = Protocol::Udp;
                    r.dns_response = Some(received);
                    r.dns_query = Some(!received);
                    r.dns_qname = Some("a.example.com".into());
                    r.dns_answer_size = Some(40);
                }
                packets.push((r, received));
            }
            let mut full = SrcState::default();
            for (r, received) in &packets {
                if *received {
                    full.add_received(r)
                } else {
                    full.add_sent(r, &p)
                }
            }
            let mut merged: Option<SrcSlot> = None;
            let mut rest = &packets[..];
            while !rest.is_empty() {
                x = mix64(x);
                let (chunk, more) = rest.split_at(1 + (x % rest.len() as u64) as usize);
                rest = more;
                let mut slot = SrcSlot::default();
                for (r, received) in chunk {
                    if *received {
                        slot.add_received(r, &p)
                    } else {
                        slot.add_sent(r, &p)
                    }
                }
                match &mut merged {
                    None => merged = Some(slot),
                    Some(m) => m.merge(slot, &p),
                }
            }
            let merged = merged.unwrap();
            assert_eq!(features(&merged.state(&p)), features(&full), "seed {seed}");
            assert_eq!(merged.sent_any(), full.packets > 0, "seed {seed}");
        }
    }
}
