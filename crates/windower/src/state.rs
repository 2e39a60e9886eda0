//! Partial window states: everything a window's features need, in a form that merges exactly.
//!
//! A state is built from the packets of one 5 s window (or, for the direct reference path used
//! by the tests, of any span) and merged into the 30 s and 180 s states. Every field is a sum,
//! a min/max, a mergeable set ([`BottomK`], [`PortSet`]) or an ordered segment list
//! ([`ArpSeq`]); nothing is an average, so merging never averages averages. Rarely used groups
//! (DNS, HTTP, ARP, what a host receives) are boxed options so the million-spoofed-sources case
//! pays only for the core counters.

use crate::arp::ArpSeq;
use crate::dns;
use crate::hash::{hash_ip, hash_ip_port, hash_ip_port_port, hash_mac, hash_str};
use crate::sketch::{is_remote_access_port, BottomK, Cell, PortSet};
use wire::{PacketRecord, Protocol};

/// Construction parameters shared by all states of one windower.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Distinct members kept exactly per set before switching to a bottom-k sample.
    pub cap: usize,
    /// Keys whose states this windower keeps (see [`crate::partition`]).
    pub part: crate::Partition,
    /// Packets a source key's compact slot keeps before it becomes a full state
    /// ([`crate::slot::FEW`]; 0 only where tests compare the compact path with the full one).
    pub few: u8,
}

/// Ports whose TCP connections count towards `partial_http_count` (the original's list).
pub fn is_web_port(p: u16) -> bool {
    matches!(p, 80 | 8080 | 8000 | 3000 | 443)
}

pub const C_SYN: u8 = 1;
pub const C_ACK: u8 = 2;
pub const C_HTTP: u8 = 4;
pub const C_WEB: u8 = 8;
/// The key sent a SYN without ACK on this group: it opened a connection there.
pub const C_INIT: u8 = 16;

/// One TCP "connection" of the source view: all TCP packets from the key to one
/// (dst_ip, dst_port) (the original's grouping). Flags are ORed, times are min/max.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    pub first: f64,
    pub last: f64,
    pub flags: u8,
}

impl Default for Conn {
    fn default() -> Self {
        Conn { first: f64::INFINITY, last: f64::NEG_INFINITY, flags: 0 }
    }
}

impl Cell for Conn {
    #[inline]
    fn merge(&mut self, o: Conn) {
        self.first = self.first.min(o.first);
        self.last = self.last.max(o.last);
        self.flags |= o.flags;
    }
}

impl Cell for u8 {
    #[inline]
    fn merge(&mut self, o: u8) {
        *self |= o;
    }
}

#[derive(Debug, Clone)]
pub struct DnsAcc {
    /// Queries sent (`dns_query == true`).
    pub queries: u64,
    pub first_ts: f64,
    pub last_ts: f64,
    pub qnames: BottomK<()>,
    /// Queries that carry a name (the denominators of the name measures).
    pub named: u64,
    pub entropy_sum: f64,
    pub high_entropy: u64,
    pub sub_len_sum: u64,
    pub sub_len_max: u64,
    pub label_sum: u64,
    pub txt: u64,
    pub null: u64,
    pub qtypes: PortSet,
}

impl Default for DnsAcc {
    fn default() -> Self {
        DnsAcc {
            queries: 0,
            first_ts: f64::INFINITY,
            last_ts: f64::NEG_INFINITY,
            qnames: BottomK::default(),
            named: 0,
            entropy_sum: 0.0,
            high_entropy: 0,
            sub_len_sum: 0,
            sub_len_max: 0,
            label_sum: 0,
            txt: 0,
            null: 0,
            qtypes: PortSet::default(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ArpAcc {
    pub requests: u64,
    pub replies: u64,
    pub gratuitous: u64,
    /// Requests the key sent, by the address asked for (at most `cap` addresses; an ARP
    /// sweep beyond that is not tracked further): whose replies were solicited.
    pub asked: std::collections::BTreeMap<std::net::IpAddr, u64>,
    /// Distinct sender MACs that claimed the key IP (hashes; see features' ARP join).
    pub macs: BottomK<()>,
    pub seq: ArpSeq,
}

/// What the key *received*: answers to its DNS queries, HTTP responses, SYN-ACKs, and the
/// refusals a scanner collects (RSTs, ICMP unreachables) or the silence it meets (UDP ports
/// that never answer). Filled from packets whose dst_ip is the key; these packets do not count
/// as the key's traffic.
#[derive(Debug, Clone, Default)]
pub struct RecvAcc {
    pub dns_responses: u64,
    pub answer_sum: u64,
    pub answer_n: u64,
    pub http_responses: u64,
    pub failed_login: u64,
    pub synack: u64,
    /// TCP packets with PSH received: data the key's peers sent it (answers, encrypted or not).
    pub psh: u64,
    pub rst: u64,
    /// Source ports of the RSTs received: the ports that refused the key.
    pub rst_ports: PortSet,
    /// ICMP destination unreachable (ICMPv4 type 3, ICMPv6 type 1) received.
    pub unreachable: u64,
    /// Source ports of UDP packets received: the UDP services that answered the key.
    pub udp_reply_ports: PortSet,
}

impl RecvAcc {
    /// Adds a packet addressed to the key (see [`SrcState::add_received`]).
    pub fn add(&mut self, r: &PacketRecord) {
        let v = self;
        if r.dns_response == Some(true) {
            v.dns_responses += 1;
            if let Some(s) = r.dns_answer_size {
                v.answer_sum += s as u64;
                v.answer_n += 1;
            }
        }
        if let Some(code) = r.http_status_code {
            v.http_responses += 1;
            v.failed_login += matches!(code, 401 | 403) as u64;
        }
        if r.protocol == Protocol::Tcp && r.tcp_psh == Some(true) {
            v.psh += 1;
        }
        match r.protocol {
            Protocol::Tcp if r.tcp_rst == Some(true) => {
                v.rst += 1;
                if let Some(sp) = r.src_port {
                    v.rst_ports.insert(sp);
                }
            }
            Protocol::Tcp if r.tcp_syn == Some(true) && r.tcp_ack == Some(true) => v.synack += 1,
            Protocol::Udp => {
                if let Some(sp) = r.src_port {
                    v.udp_reply_ports.insert(sp);
                }
            }
            _ => v.unreachable += is_unreachable(r) as u64,
        }
    }

    pub fn merge(&mut self, b: RecvAcc) {
        let a = self;
        a.dns_responses += b.dns_responses;
        a.answer_sum += b.answer_sum;
        a.answer_n += b.answer_n;
        a.http_responses += b.http_responses;
        a.failed_login += b.failed_login;
        a.synack += b.synack;
        a.psh += b.psh;
        a.rst += b.rst;
        a.rst_ports.merge(&b.rst_ports);
        a.unreachable += b.unreachable;
        a.udp_reply_ports.merge(&b.udp_reply_ports);
    }
}

/// ICMP echo reply: v4 type 0, v6 type 129.
pub fn is_echo_reply(r: &PacketRecord) -> bool {
    match r.protocol {
        Protocol::Icmp => r.icmp_type == Some(0),
        Protocol::Icmpv6 => r.icmp_type == Some(129),
        _ => false,
    }
}

/// ICMP "destination unreachable": v4 type 3, v6 type 1 (RFC 792, RFC 4443).
fn is_unreachable(r: &PacketRecord) -> bool {
    match r.protocol {
        Protocol::Icmp => r.icmp_type == Some(3),
        Protocol::Icmpv6 => r.icmp_type == Some(1),
        _ => false,
    }
}

/// Source view state (key = src_ip, or the ARP sender for ARP frames).
#[derive(Debug, Clone, Default)]
pub struct SrcState {
    pub packets: u64,
    pub bytes: u64,
    /// Sum of squared lengths, exact in integers: variance merges without rounding.
    pub sum_sq: u128,
    pub tcp: u64,
    pub udp: u64,
    pub icmp: u64,
    pub arp_frames: u64,
    pub tcp_bytes: u64,
    pub dst_ips: BottomK<()>,
    pub tcp_ports: PortSet,
    pub udp_ports: PortSet,
    pub src_ports: PortSet,
    /// Source ports of TCP packets sent: the key's connections (a client's ephemeral ports).
    pub tcp_src_ports: PortSet,
    /// Source ports of TCP packets sent with PSH: connections on which the key sent data
    /// (keepalive probes and pure ACKs carry none).
    pub tcp_data_ports: PortSet,
    pub remote_hits: u64,
    pub syn: u64,
    pub ack: u64,
    pub synack: u64,
    pub rst: u64,
    pub fin: u64,
    pub ssh: u64,
    pub ftp: u64,
    pub udp53: u64,
    /// TCP segments with none of SYN, ACK, RST (NULL, FIN, Xmas probes: after the handshake
    /// every legitimate segment but a RST carries an ACK, RFC 9293 3.10.7.4).
    pub nosyn_noack: u64,
    /// SSH identification strings the key sent on connections it opened, whatever the port:
    /// sessions with an SSH server (a guesser opens one per few passwords).
    pub ssh_sessions: u64,
    /// ICMP echo replies sent (type 0 / ICMPv6 129): answers, not traffic the key chose to send.
    pub echo_replies: u64,
    /// Destination ports of the SYN-ACKs sent: a server's RSTs received from these ports are
    /// clients going away, not ports refusing the key.
    pub synack_ports: PortSet,
    pub conns: BottomK<Conn>,
    pub http_requests: u64,
    pub http_login: u64,
    pub http_responses_sent: u64,
    pub dns: Option<Box<DnsAcc>>,
    pub arp: Option<Box<ArpAcc>>,
    pub recv: Option<Box<RecvAcc>>,
}

fn login_path(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    // "authenticate" contains "auth"; listed for fidelity with the original's pattern.
    ["login", "signin", "auth", "authenticate"].iter().any(|w| p.contains(w))
}

impl SrcState {
    /// Adds one packet sent by the key.
    pub fn add_sent(&mut self, r: &PacketRecord, p: &Params) {
        let len = r.length as u64;
        self.packets += 1;
        self.bytes += len;
        self.sum_sq += (len as u128) * (len as u128);
        let dst_hash = r.dst_ip.as_ref().map(hash_ip);
        if let Some(h) = dst_hash {
            self.dst_ips.upsert(h, p.cap, |_| {});
        }
        if let Some(sp) = r.src_port {
            self.src_ports.insert(sp);
        }
        if let Some(dp) = r.dst_port {
            if is_remote_access_port(dp) {
                self.remote_hits += 1;
            }
        }
        match r.protocol {
            Protocol::Tcp => self.add_tcp(r, p, dst_hash),
            Protocol::Udp => {
                self.udp += 1;
                if let Some(dp) = r.dst_port {
                    self.udp_ports.insert(dp);
                    if dp == 53 {
                        self.udp53 += 1;
                    }
                }
            }
            Protocol::Icmp | Protocol::Icmpv6 => {
                self.icmp += 1;
                self.echo_replies += is_echo_reply(r) as u64;
            }
            Protocol::Arp => self.add_arp(r, p),
            Protocol::Other => {}
        }
        if r.dns_query == Some(true) {
            self.add_dns_query(r, p);
        }
        if r.http_method.is_some() {
            self.http_requests += 1;
            if r.http_path.as_deref().is_some_and(login_path) {
                self.http_login += 1;
            }
        }
        if r.http_status_code.is_some() {
            self.http_responses_sent += 1;
        }
    }

    /// `dst_hash`: the [`hash_ip`] of `r.dst_ip`.
    fn add_tcp(&mut self, r: &PacketRecord, p: &Params, dst_hash: Option<u64>) {
        self.tcp += 1;
        if let Some(sp) = r.src_port {
            self.tcp_src_ports.insert(sp);
            if r.tcp_psh == Some(true) {
                self.tcp_data_ports.insert(sp);
            }
        }
        self.tcp_bytes += r.length as u64;
        let syn = r.tcp_syn == Some(true);
        let ack = r.tcp_ack == Some(true);
        self.syn += syn as u64;
        self.ack += ack as u64;
        self.synack += (syn && ack) as u64;
        if let (true, true, Some(dp)) = (syn, ack, r.dst_port) {
            self.synack_ports.insert(dp);
        }
        let rst = r.tcp_rst == Some(true);
        self.rst += rst as u64;
        self.fin += (r.tcp_fin == Some(true)) as u64;
        self.nosyn_noack += (!syn && !ack && !rst) as u64;
        let Some(dp) = r.dst_port else { return };
        self.tcp_ports.insert(dp);
        let mut flags = 0;
        if syn && !ack {
            // Connection attempts: SYNs without ACK (not every packet of a session).
            self.ssh += (dp == 22) as u64;
            self.ftp += (dp == 20 || dp == 21) as u64;
            flags |= C_INIT;
        }
        let Some(dst_hash) = dst_hash else { return };
        if syn {
            flags |= C_SYN;
        }
        if ack {
            flags |= C_ACK;
        }
        if r.http_method.is_some() || r.http_status_code.is_some() {
            flags |= C_HTTP;
        }
        if is_web_port(dp) {
            flags |= C_WEB;
        }
        let ts = r.timestamp;
        let mut opened = false;
        self.conns.upsert(hash_ip_port(dst_hash, dp), p.cap, |c| {
            c.first = c.first.min(ts);
            c.last = c.last.max(ts);
            c.flags |= flags;
            opened = c.flags & C_INIT != 0;
        });
        // The client's identification string (the server's goes the other way, on a
        // connection the server did not open).
        if opened && r.app_proto == Some(wire::AppProto::Ssh) {
            self.ssh_sessions += 1;
        }
    }

    fn add_arp(&mut self, r: &PacketRecord, p: &Params) {
        self.arp_frames += 1;
        let a = self.arp.get_or_insert_with(Default::default);
        match r.arp_op {
            Some(1) => {
                a.requests += 1;
                if let Some(t) = r.arp_pdst {
                    if a.asked.len() < p.cap || a.asked.contains_key(&t) {
                        *a.asked.entry(t).or_default() += 1;
                    }
                }
            }
            Some(2) => a.replies += 1,
            _ => {}
        }
        if r.arp_psrc.is_some() && r.arp_psrc == r.arp_pdst {
            a.gratuitous += 1;
        }
        if let Some(mac) = &r.arp_hwsrc {
            let h = hash_mac(&mac.0);
            // MAC sets of one IP are tiny in practice; the cap bounds a forged-MAC flood.
            a.macs.upsert(h, p.cap, |_| {});
            a.seq.push(r.timestamp, h);
        }
    }

    fn add_dns_query(&mut self, r: &PacketRecord, p: &Params) {
        let d = self.dns.get_or_insert_with(Default::default);
        d.queries += 1;
        d.first_ts = d.first_ts.min(r.timestamp);
        d.last_ts = d.last_ts.max(r.timestamp);
        if let Some(t) = r.dns_qtype {
            d.qtypes.insert(t);
            d.txt += (t == 16) as u64;
            d.null += (t == 10) as u64;
        }
        if let Some(name) = &r.dns_qname {
            d.qnames.upsert(hash_str(name), p.cap, |_| {});
            d.named += 1;
            let m = dns::measure(name);
            d.entropy_sum += m.entropy;
            d.high_entropy += (m.entropy > dns::HIGH_ENTROPY_BITS) as u64;
            d.sub_len_sum += m.subdomain_length;
            d.sub_len_max = d.sub_len_max.max(m.subdomain_length);
            d.label_sum += m.labels;
        }
    }

    /// Adds what a packet addressed to the key tells about the key (answers it received).
    /// Returns false when the packet carries nothing of interest (no state needed).
    pub fn wants_received(r: &PacketRecord) -> bool {
        r.dns_response == Some(true)
            || r.http_status_code.is_some()
            || r.protocol == Protocol::Udp
            || (r.protocol == Protocol::Tcp
                && (r.tcp_syn == Some(true) && r.tcp_ack == Some(true) || r.tcp_rst == Some(true)))
            || is_unreachable(r)
    }

    pub fn add_received(&mut self, r: &PacketRecord) {
        self.recv.get_or_insert_with(Default::default).add(r)
    }

    /// Seals order-dependent parts (ARP sequence) at the end of a 5 s window.
    pub fn seal(&mut self) {
        if let Some(a) = &mut self.arp {
            a.seq.seal();
        }
    }

    /// Merges the state of the same key in a later window. Takes the box: its fields move
    /// out one by one, never the half-kilobyte state as a whole.
    pub fn merge(&mut self, o: Box<SrcState>, p: &Params) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.sum_sq += o.sum_sq;
        self.tcp += o.tcp;
        self.udp += o.udp;
        self.icmp += o.icmp;
        self.arp_frames += o.arp_frames;
        self.tcp_bytes += o.tcp_bytes;
        self.dst_ips.merge(o.dst_ips, p.cap);
        self.tcp_ports.merge(&o.tcp_ports);
        self.udp_ports.merge(&o.udp_ports);
        self.src_ports.merge(&o.src_ports);
        self.tcp_src_ports.merge(&o.tcp_src_ports);
        self.tcp_data_ports.merge(&o.tcp_data_ports);
        self.remote_hits += o.remote_hits;
        self.syn += o.syn;
        self.ack += o.ack;
        self.synack += o.synack;
        self.rst += o.rst;
        self.fin += o.fin;
        self.ssh += o.ssh;
        self.ftp += o.ftp;
        self.udp53 += o.udp53;
        self.nosyn_noack += o.nosyn_noack;
        self.ssh_sessions += o.ssh_sessions;
        self.echo_replies += o.echo_replies;
        self.synack_ports.merge(&o.synack_ports);
        self.conns.merge(o.conns, p.cap);
        self.http_requests += o.http_requests;
        self.http_login += o.http_login;
        self.http_responses_sent += o.http_responses_sent;
        merge_opt(&mut self.dns, o.dns, |a, b| {
            a.queries += b.queries;
            a.first_ts = a.first_ts.min(b.first_ts);
            a.last_ts = a.last_ts.max(b.last_ts);
            a.qnames.merge(b.qnames, p.cap);
            a.named += b.named;
            a.entropy_sum += b.entropy_sum;
            a.high_entropy += b.high_entropy;
            a.sub_len_sum += b.sub_len_sum;
            a.sub_len_max = a.sub_len_max.max(b.sub_len_max);
            a.label_sum += b.label_sum;
            a.txt += b.txt;
            a.null += b.null;
            a.qtypes.merge(&b.qtypes);
        });
        merge_opt(&mut self.arp, o.arp, |a, b| {
            a.requests += b.requests;
            for (t, n) in b.asked {
                if a.asked.len() < p.cap || a.asked.contains_key(&t) {
                    *a.asked.entry(t).or_default() += n;
                }
            }
            a.replies += b.replies;
            a.gratuitous += b.gratuitous;
            a.macs.merge(b.macs, p.cap);
            a.seq.merge(b.seq);
        });
        self.merge_received(o.recv);
    }

    /// Merges what the key received in a later window.
    pub fn merge_received(&mut self, o: Option<Box<RecvAcc>>) {
        merge_opt(&mut self.recv, o, |a, b| a.merge(b));
    }
}

fn merge_opt<T>(a: &mut Option<Box<T>>, b: Option<Box<T>>, f: impl FnOnce(&mut T, T)) {
    match (a.as_mut(), b) {
        (_, None) => {}
        (None, Some(b)) => *a = Some(b),
        (Some(x), Some(b)) => f(x, *b),
    }
}

/// Inbound TCP tuple flags of the destination view.
pub const IN_SYN: u8 = 1;
pub const IN_ACK: u8 = 2;

/// Destination view state (key = dst_ip): what a host receives, whoever sends it.
#[derive(Debug, Clone, Default)]
pub struct DstState {
    pub packets: u64,
    pub bytes: u64,
    pub tcp: u64,
    pub udp: u64,
    pub icmp: u64,
    /// SYN without ACK (connection attempts towards the key).
    pub syn: u64,
    pub src_ips: BottomK<()>,
    pub dst_ports: PortSet,
    /// Inbound TCP (src_ip, src_port, dst_port) tuples with their SYN/ACK flags.
    pub inbound: BottomK<u8>,
    /// ICMP echo replies received (answers to the key's own pings).
    pub echo_replies: u64,
}

impl DstState {
    pub fn add(&mut self, r: &PacketRecord, p: &Params) {
        self.packets += 1;
        self.bytes += r.length as u64;
        let src_hash = r.src_ip.as_ref().map(hash_ip);
        if let Some(h) = src_hash {
            self.src_ips.upsert(h, p.cap, |_| {});
        }
        if let Some(dp) = r.dst_port {
            self.dst_ports.insert(dp);
        }
        match r.protocol {
            Protocol::Tcp => {
                self.tcp += 1;
                let syn = r.tcp_syn == Some(true);
                let ack = r.tcp_ack == Some(true);
                self.syn += (syn && !ack) as u64;
                if let (Some(h), Some(sp), Some(dp)) = (src_hash, r.src_port, r.dst_port) {
                    let f = if syn && !ack { IN_SYN } else { 0 } | if ack { IN_ACK } else { 0 };
                    self.inbound.upsert(hash_ip_port_port(h, sp, dp), p.cap, |v| *v |= f);
                }
            }
            Protocol::Udp => self.udp += 1,
            Protocol::Icmp | Protocol::Icmpv6 => {
                self.icmp += 1;
                self.echo_replies += is_echo_reply(r) as u64;
            }
            _ => {}
        }
    }

    pub fn merge(&mut self, o: DstState, p: &Params) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.tcp += o.tcp;
        self.udp += o.udp;
        self.icmp += o.icmp;
        self.syn += o.syn;
        self.src_ips.merge(o.src_ips, p.cap);
        self.dst_ports.merge(&o.dst_ports);
        self.inbound.merge(o.inbound, p.cap);
        self.echo_replies += o.echo_replies;
    }
}
