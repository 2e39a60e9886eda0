//! Frame decoding: link layer -> IP -> transport -> DNS / HTTP, into a [`wire::PacketRecord`].
//!
//! * Link layers: Ethernet (with 802.1Q / 802.1ad / QinQ tags), Linux cooked capture v1 and v2,
//!   raw IP, BSD loopback (NULL, host byte order) and OpenBSD LOOP (network byte order).
//! * IP is sliced with `etherparse` in lax mode (IPv6 extension headers are walked; a payload
//!   cut by the snap length is kept); the transport header is read from what was captured.
//! * Tunnels (IP-in-IP, 6in4, 4in6, 6in6): addresses and transport come from the innermost
//!   packet, as Zeek does. ICMP error messages quote an IP header: that quote is never
//!   followed, addresses come from the header carrying the ICMP message.
//! * Fragments: only the first fragment (offset 0) carries the transport header; later
//!   fragments keep the protocol of the IP header but have no ports.
//! * DNS (UDP and single-segment TCP on 53, 5353, 5355 either side) is parsed with
//!   `simple-dns`, HTTP/1.x request and status lines (any TCP port) with `httparse`.
//!
//! * `app_proto` by content (never by port, see [`ident`]): SSH identification strings, TLS
//!   records (with the server name of a ClientHello in `tls_sni`), HTTP lines, QUIC Initial
//!   packets; DNS is what was parsed as DNS.
//! * String fields are cut to the caps of [`wire::limits`] (see [`bounded`]).
//!
//! A frame is an error ([`DecodeError`]) only when its link or network header is truncated or
//! invalid, or its capture time is impossible, i.e. when no meaningful record can be made. A damaged upper layer keeps the
//! record with what could be read.

mod app;
mod ident;
pub(crate) use app::bounded;

use etherparse::{ip_number, ArpPacketSlice, IpNumber, LaxIpSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use wire::{MacAddr, PacketRecord, Protocol};

/// Why a frame could not be decoded into a record.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The frame ends inside the named header.
    #[error("frame truncated in the {0} header")]
    Truncated(&'static str),
    /// The named header is present but invalid (e.g. bad IP version or header length).
    #[error("invalid {0} header: {1}")]
    Invalid(&'static str, &'static str),
    /// The capture time lies outside [`wire::MIN_TIMESTAMP`]..=[`wire::MAX_TIMESTAMP`] (a
    /// corrupt pcapng timestamp can reach the year 500000): consumers reject such a record, and
    /// with it the whole batch it travels in.
    #[error("capture time {0} out of range")]
    Timestamp(f64),
    /// The capture's data link type is not one the decoder understands.
    #[error("unsupported data link type {0} (supported: EN10MB 1, RAW 12/14/101, IPV4 228, IPV6 229, NULL 0, LOOP 108, LINUX_SLL 113, LINUX_SLL2 276)")]
    UnsupportedLinktype(i32),
}

impl DecodeError {
    /// Short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::Truncated(_) => "truncated",
            DecodeError::Invalid(..) => "invalid",
            DecodeError::Timestamp(_) => "timestamp",
            DecodeError::UnsupportedLinktype(_) => "unsupported_linktype",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Ethernet,
    Sll,
    Sll2,
    /// Raw IP, version from the first nibble.
    RawIp,
    /// BSD loopback: 4-byte address family in the capturing host's byte order.
    Null,
    /// OpenBSD loopback: 4-byte address family in network byte order.
    Loop,
    Unsupported(i32),
}

/// DLT numbers.
pub mod dlt {
    pub const NULL: i32 = 0;
    pub const EN10MB: i32 = 1;
    pub const RAW_OPENBSD: i32 = 12;
    pub const RAW_BSDOS: i32 = 14;
    pub const RAW: i32 = 101;
    pub const LOOP: i32 = 108;
    pub const LINUX_SLL: i32 = 113;
    pub const IPV4: i32 = 228;
    pub const IPV6: i32 = 229;
    pub const LINUX_SLL2: i32 = 276;
}

/// Decodes frames of one data link type.
pub struct Decoder {
    link: Link,
}

const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];
/// Maximum number of nested IP headers followed (tunnels).
const MAX_IP_DEPTH: usize = 4;

impl Decoder {
    pub fn new(linktype: i32) -> Decoder {
        let link = match linktype {
            dlt::EN10MB => Link::Ethernet,
            dlt::LINUX_SLL => Link::Sll,
            dlt::LINUX_SLL2 => Link::Sll2,
            dlt::RAW | dlt::RAW_OPENBSD | dlt::RAW_BSDOS | dlt::IPV4 | dlt::IPV6 => Link::RawIp,
            dlt::NULL => Link::Null,
            dlt::LOOP => Link::Loop,
            other => Link::Unsupported(other),
        };
        Decoder { link }
    }

    /// Whether frames of `linktype` can be decoded (otherwise every frame is an
    /// [`DecodeError::UnsupportedLinktype`] error): lets a caller refuse a capture up front.
    pub fn supports(linktype: i32) -> bool {
        !matches!(Decoder::new(linktype).link, Link::Unsupported(_))
    }

    /// Decodes one frame. `interface` is left empty: the caller sets it.
    pub fn decode(&self, timestamp: f64, wire_len: u32, data: &[u8]) -> Result<PacketRecord, DecodeError> {
        let mut rec = PacketRecord::default();
        self.decode_into(timestamp, wire_len, data, &mut rec)?;
        Ok(rec)
    }

    /// [`Decoder::decode`] into `rec` (overwritten whole, `interface` included): a record
    /// built where it is kept is not copied around, which is a measurable part of decoding.
    /// On an error `rec` holds a partial record. Inlined so that the record a caller has just
    /// initialised is not written twice.
    #[inline]
    pub fn decode_into(
        &self,
        timestamp: f64,
        wire_len: u32,
        data: &[u8],
        rec: &mut PacketRecord,
    ) -> Result<(), DecodeError> {
        if !wire::timestamp_in_range(timestamp) {
            return Err(DecodeError::Timestamp(timestamp));
        }
        *rec = PacketRecord::new(timestamp, wire_len);
        match self.link {
            Link::Ethernet => {
                if data.len() < 14 {
                    return Err(DecodeError::Truncated("ethernet"));
                }
                rec.dst_mac = Some(mac(&data[0..6]));
                rec.src_mac = Some(mac(&data[6..12]));
                let mut ether_type = be16(data, 12);
                let mut rest = &data[14..];
                while ETH_VLAN.contains(&ether_type) {
                    if rest.len() < 4 {
                        return Err(DecodeError::Truncated("vlan"));
                    }
                    if rec.vlan.is_none() {
                        rec.vlan = Some(be16(rest, 0) & 0x0fff);
                    }
                    ether_type = be16(rest, 2);
                    rest = &rest[4..];
                }
                decode_ether_type(rec, ether_type, rest)?;
            }
            Link::Sll => {
                // packet type(2) ARPHRD type(2) address length(2) address(8) protocol(2)
                if data.len() < 16 {
                    return Err(DecodeError::Truncated("linux_sll"));
                }
                let hatype = be16(data, 2);
                let halen = be16(data, 4);
                sll_source(rec, hatype, halen as usize, &data[6..14]);
                decode_sll_protocol(rec, hatype, be16(data, 14), &data[16..])?;
            }
            Link::Sll2 => {
                // protocol(2) reserved(2) ifindex(4) ARPHRD type(2) packet type(1) addr len(1) addr(8)
                if data.len() < 20 {
                    return Err(DecodeError::Truncated("linux_sll2"));
                }
                let hatype = be16(data, 8);
                sll_source(rec, hatype, data[11] as usize, &data[12..20]);
                decode_sll_protocol(rec, hatype, be16(data, 0), &data[20..])?;
            }
            Link::RawIp => match data.first().map(|b| b >> 4) {
                Some(4) | Some(6) => decode_ip(rec, data)?,
                Some(_) => return Err(DecodeError::Invalid("ip", "unknown IP version")),
                None => return Err(DecodeError::Truncated("ip")),
            },
            Link::Null | Link::Loop => {
                if data.len() < 4 {
                    return Err(DecodeError::Truncated("loopback"));
                }
                let b = [data[0], data[1], data[2], data[3]];
                let family = if self.link == Link::Loop {
                    u32::from_be_bytes(b)
                } else if b[0] == 0 && b[1] == 0 {
                    // Written by a big-endian host: small value in the last bytes.
                    u32::from_be_bytes(b)
                } else {
                    u32::from_le_bytes(b)
                };
                match family {
                    // AF_INET; AF_INET6 of Linux (10), NetBSD/OpenBSD (24), FreeBSD (28), macOS (30)
                    2 => decode_ip_checked(rec, &data[4..], 4)?,
                    10 | 24 | 28 | 30 => decode_ip_checked(rec, &data[4..], 6)?,
                    _ => {} // other family: an OTHER record
                }
            }
            Link::Unsupported(dlt) => return Err(DecodeError::UnsupportedLinktype(dlt)),
        }
        Ok(())
    }
}

#[inline]
fn be16(d: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([d[off], d[off + 1]])
}

#[inline]
fn be32(d: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([d[off], d[off + 1], d[off + 2], d[off + 3]])
}

#[inline]
fn mac(b: &[u8]) -> MacAddr {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[..6]);
    MacAddr(m)
}

/// Source link address of a cooked capture, when it is a 6-byte (Ethernet-like) address.
fn sll_source(rec: &mut PacketRecord, hatype: u16, halen: usize, addr: &[u8]) {
    // ARPHRD_ETHER (1), ARPHRD_IEEE80211 (801) and friends carry 6-byte MACs; loopback (772)
    // has a zero-length address.
    if halen == 6 && hatype != 772 {
        rec.src_mac = Some(mac(addr));
    }
}

fn decode_sll_protocol(rec: &mut PacketRecord, hatype: u16, protocol: u16, rest: &[u8]) -> Result<(), DecodeError> {
    match hatype {
        // IP-over-GRE / tunnels / netlink and similar carry the protocol as an EtherType too,
        // except for a few hardware types where it is something else.
        824 => Ok(()),                    // ARPHRD_NETLINK: netlink family, not an EtherType
        _ if protocol < 0x0600 => Ok(()), // Linux "protocol" values (802.2, 802.3 ...): OTHER
        _ => decode_ether_type(rec, protocol, rest),
    }
}

fn decode_ether_type(rec: &mut PacketRecord, ether_type: u16, payload: &[u8]) -> Result<(), DecodeError> {
    match ether_type {
        ETH_IPV4 => decode_ip_checked(rec, payload, 4),
        ETH_IPV6 => decode_ip_checked(rec, payload, 6),
        ETH_ARP => decode_arp(rec, payload),
        // 802.3 length field (LLC/SNAP), EAPOL, LLDP, ...: a record without IP fields.
        _ => Ok(()),
    }
}

fn decode_arp(rec: &mut PacketRecord, payload: &[u8]) -> Result<(), DecodeError> {
    let arp = ArpPacketSlice::from_slice(payload).map_err(|_| DecodeError::Truncated("arp"))?;
    rec.protocol = Protocol::Arp;
    rec.arp_op = Some(arp.operation().0);
    if arp.hw_addr_size() == 6 {
        rec.arp_hwsrc = Some(mac(arp.sender_hw_addr()));
        rec.arp_hwdst = Some(mac(arp.target_hw_addr()));
    }
    match arp.proto_addr_size() {
        4 => {
            rec.arp_psrc = Some(IpAddr::V4(ip4(arp.sender_protocol_addr())));
            rec.arp_pdst = Some(IpAddr::V4(ip4(arp.target_protocol_addr())));
        }
        16 => {
            rec.arp_psrc = Some(IpAddr::V6(ip6(arp.sender_protocol_addr())));
            rec.arp_pdst = Some(IpAddr::V6(ip6(arp.target_protocol_addr())));
        }
        _ => {}
    }
    Ok(())
}

fn ip4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn ip6(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

/// IP announced by the link layer: the version nibble must agree.
fn decode_ip_checked(rec: &mut PacketRecord, data: &[u8], version: u8) -> Result<(), DecodeError> {
    match data.first() {
        None => Err(DecodeError::Truncated(if version == 4 { "ipv4" } else { "ipv6" })),
        Some(b) if b >> 4 != version => Err(DecodeError::Invalid(
            if version == 4 { "ipv4" } else { "ipv6" },
            "IP version does not match the link layer type",
        )),
        Some(_) => decode_ip(rec, data),
    }
}

fn decode_ip(rec: &mut PacketRecord, data: &[u8]) -> Result<(), DecodeError> {
    let (mut ip, _) = LaxIpSlice::from_slice(data).map_err(ip_error)?;
    let mut depth = 1;
    loop {
        rec.src_ip = Some(ip.source_addr());
        rec.dst_ip = Some(ip.destination_addr());
        let payload = ip.payload();
        // Only the first fragment (offset 0) starts with the upper-layer header.
        let mut proto = payload.ip_number.0;
        let first_fragment = match &ip {
            LaxIpSlice::Ipv4(v4) => v4.header().fragments_offset().value() == 0,
            LaxIpSlice::Ipv6(v6) => match later_fragment(v6.header().next_header(), v6.extensions().slice()) {
                // What follows a later fragment's header is data, not more extension
                // headers: the protocol is the fragment header's.
                Some(next) => {
                    proto = next;
                    false
                }
                None => true,
            },
        };
        // Tunnels: IP-in-IP (4) and IPv6-in-IP (41); the inner packet wins when it parses.
        if (proto == 4 || proto == 41) && first_fragment && depth < MAX_IP_DEPTH {
            let want = if proto == 4 { 4 } else { 6 };
            if payload.payload.first().map(|b| b >> 4) == Some(want) {
                if let Ok((inner, _)) = LaxIpSlice::from_slice(payload.payload) {
                    ip = inner;
                    depth += 1;
                    continue;
                }
            }
        }
        let body = if first_fragment { Some(payload.payload) } else { None };
        decode_transport(rec, proto, body);
        return Ok(());
    }
}

/// The next header of the IPv6 fragment header among the extension headers `exts` (starting
/// with header number `first`) when it is a later fragment (offset not 0).
///
/// Walks the headers with etherparse's checked slicing instead of iterating
/// `Ipv6ExtensionsSlice`: that iterator (etherparse 0.21) trusts the last header's "next
/// header" number and, after a lax parse stopped at a header it rejected (a hop-by-hop header
/// not in first place, say), reads a header beyond the end of the slice (undefined behaviour,
/// found by fuzzing).
fn later_fragment(first: IpNumber, exts: &[u8]) -> Option<u8> {
    use etherparse::{IpAuthHeaderSlice, Ipv6FragmentHeaderSlice, Ipv6RawExtHeaderSlice};
    let (mut next, mut rest) = (first, exts);
    while !rest.is_empty() {
        let len = match next {
            ip_number::IPV6_HOP_BY_HOP | ip_number::IPV6_ROUTE | ip_number::IPV6_DEST_OPTIONS => {
                let h = Ipv6RawExtHeaderSlice::from_slice(rest).ok()?;
                next = h.next_header();
                h.slice().len()
            }
            ip_number::IPV6_FRAG => {
                let f = Ipv6FragmentHeaderSlice::from_slice(rest).ok()?;
                if f.fragment_offset().value() != 0 {
                    return Some(f.next_header().0);
                }
                next = f.next_header();
                f.slice().len()
            }
            ip_number::AUTH => {
                let h = IpAuthHeaderSlice::from_slice(rest).ok()?;
                next = h.next_header();
                h.slice().len()
            }
            _ => return None,
        };
        rest = &rest[len..];
    }
    None
}

fn ip_error(e: etherparse::err::ip::LaxHeaderSliceError) -> DecodeError {
    use etherparse::err::ip::{HeaderError, LaxHeaderSliceError};
    match e {
        LaxHeaderSliceError::Len(l) => match l.layer {
            etherparse::err::Layer::Ipv6Header => DecodeError::Truncated("ipv6"),
            etherparse::err::Layer::Ipv4Header => DecodeError::Truncated("ipv4"),
            _ => DecodeError::Truncated("ip"),
        },
        LaxHeaderSliceError::Content(HeaderError::UnsupportedIpVersion { .. }) => {
            DecodeError::Invalid("ip", "unknown IP version")
        }
        LaxHeaderSliceError::Content(HeaderError::Ipv4HeaderLengthSmallerThanHeader { .. }) => {
            DecodeError::Invalid("ipv4", "header length (IHL) below 5")
        }
    }
}

/// Transport layer. `body` is `None` for non-first fragments (protocol only).
fn decode_transport(rec: &mut PacketRecord, proto: u8, body: Option<&[u8]>) {
    match proto {
        6 => {
            rec.protocol = Protocol::Tcp;
            if let Some(b) = body {
                decode_tcp(rec, b);
            }
        }
        17 => {
            rec.protocol = Protocol::Udp;
            if let Some(b) = body {
                decode_udp(rec, b);
            }
        }
        1 | 58 => {
            rec.protocol = if proto == 1 { Protocol::Icmp } else { Protocol::Icmpv6 };
            if let Some(b) = body {
                rec.icmp_type = b.first().copied();
                rec.icmp_code = b.get(1).copied();
            }
        }
        _ => rec.protocol = Protocol::Other,
    }
}

fn decode_tcp(rec: &mut PacketRecord, b: &[u8]) {
    // Fixed fields are read as far as they were captured (a header cut by the snap length
    // still yields its ports).
    if b.len() >= 4 {
        rec.src_port = Some(be16(b, 0));
        rec.dst_port = Some(be16(b, 2));
    }
    if b.len() >= 8 {
        rec.seq = Some(be32(b, 4));
    }
    if b.len() >= 12 {
        rec.ack = Some(be32(b, 8));
    }
    if b.len() >= 14 {
        rec.set_tcp_flags(b[13]);
    }
    // Payload only when the whole header (with options) is there and its length is valid.
    let Ok(tcp) = etherparse::TcpSlice::from_slice(b) else {
        return;
    };
    let payload = tcp.payload();
    if payload.is_empty() {
        return;
    }
    let (sp, dp) = (tcp.source_port(), tcp.destination_port());
    if app::is_dns_port(sp) || app::is_dns_port(dp) {
        // DNS over TCP: 2-byte length prefix; only a message complete in this segment.
        if payload.len() >= 2 {
            let len = be16(payload, 0) as usize;
            if len >= 12 && payload.len() >= 2 + len {
                app::decode_dns(rec, &payload[2..2 + len]);
                return;
            }
        }
    }
    if !ident::identify_tcp(rec, payload) {
        app::decode_http(rec, payload);
    }
}

fn decode_udp(rec: &mut PacketRecord, b: &[u8]) {
    if b.len() >= 4 {
        rec.src_port = Some(be16(b, 0));
        rec.dst_port = Some(be16(b, 2));
    }
    let Ok(udp) = etherparse::UdpSlice::from_slice_lax(b) else {
        return;
    };
    let (sp, dp) = (udp.source_port(), udp.destination_port());
    if app::is_dns_port(sp) || app::is_dns_port(dp) {
        app::decode_dns(rec, udp.payload());
    } else {
        ident::identify_udp(rec, udp.payload());
    }
}
