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

use crate::state::{ArpAcc, Params, SrcState};
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

    fn replay_into(&self, s: &mut SrcState, p: &Params) {
        thread_local! {
            // A record to replay into: building one per packet would cost more than the replay.
            static SCRATCH: RefCell<PacketRecord> = RefCell::new(PacketRecord::default());
        }
        SCRATCH.with_borrow_mut(|r| {
            self.fill(r);
            if self.bits & RECEIVED != 0 {
                s.add_received(r)
            } else {
                s.add_sent(r, p)
            }
        })
    }
}

/// Adds the kept packets to `s`, in arrival order.
fn replay(few: &[Mini], s: &mut SrcState, p: &Params) {
    few.iter().for_each(|m| m.replay_into(s, p));
}

/// A source key's state in one window (see the module docs).
#[derive(Debug, Clone)]
pub enum SrcSlot {
    /// The first packets, while few and plain, in arrival order.
    Few(u8, [Mini; FEW]),
    Full(Box<SrcState>),
}

impl Default for SrcSlot {
    fn default() -> Self {
        const EMPTY: Mini = Mini { ts: 0.0, len: 0, src_port: 0, dst_port: 0, dst: [0; 16], bits: 0, icmp_type: 0 };
        SrcSlot::Few(0, [EMPTY; FEW])
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
            self.full(p).add_received(r)
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
    pub fn full(&mut self, p: &Params) -> &mut SrcState {
        if let SrcSlot::Few(n, few) = *self {
            // Built in place: a state is half a kilobyte, not worth a copy through the stack.
            let mut s = Box::<SrcState>::default();
            replay(&few[..n as usize], &mut s, p);
            *self = SrcSlot::Full(s);
        }
        match self {
            SrcSlot::Full(s) => s,
            SrcSlot::Few(..) => unreachable!("just made full"),
        }
    }

    /// The state (built from the kept packets if compact), for the features.
    pub fn state(&self, p: &Params) -> Cow<'_, SrcState> {
        match self {
            SrcSlot::Full(s) => Cow::Borrowed(s),
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
            SrcSlot::Few(n, few) => few[..*n as usize].iter().any(|m| m.bits & RECEIVED == 0),
        }
    }

    pub fn arp(&self) -> Option<&ArpAcc> {
        match self {
            SrcSlot::Full(s) => s.arp.as_deref(),
            SrcSlot::Few(..) => None,
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
            (_, SrcSlot::Few(m, more)) => {
                replay(&more[..m as usize], self.full(p), p);
            }
            (SrcSlot::Full(s), SrcSlot::Full(o)) => s.merge(o, p),
            (SrcSlot::Few(..), SrcSlot::Full(mut o)) => {
                // Keep the other's allocation and merge this slot's state into it: a compact
                // slot holds no ARP, the one part of a state whose merge depends on order.
                let mine = std::mem::take(self);
                o.merge(Box::new(mine.state(p).into_owned()), p);
                *self = SrcSlot::Full(o);
            }
        }
    }
}
