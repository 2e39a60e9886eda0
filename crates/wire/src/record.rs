//! One decoded frame: the original sniffer's 33 fields (same names) plus `src_mac`, `dst_mac`,
//! `vlan`, `app_proto` and `tls_sni`. Absent values are `None` (JSON `null`), never a
//! placeholder like `0` or `"0"`.
//!
//! Values are kept in their native types (addresses, flag bits) so decoding does not allocate
//! for them; they print as the familiar strings in human-readable formats (JSON) and stay
//! compact in MessagePack.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "ICMP")]
    Icmp,
    #[serde(rename = "ICMPv6")]
    Icmpv6,
    #[serde(rename = "ARP")]
    Arp,
    #[default]
    #[serde(rename = "OTHER")]
    Other,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Icmp => "ICMP",
            Protocol::Icmpv6 => "ICMPv6",
            Protocol::Arp => "ARP",
            Protocol::Other => "OTHER",
        }
    }

    /// The protocol named `name` ([`Protocol::as_str`]'s spelling).
    pub fn from_name(name: &str) -> Option<Protocol> {
        [Protocol::Tcp, Protocol::Udp, Protocol::Icmp, Protocol::Icmpv6, Protocol::Arp, Protocol::Other]
            .into_iter()
            .find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a frame's payload speaks, recognised by its content (never by port numbers): the
/// first bytes of a TCP payload or UDP datagram, except DNS, which has no signature and is
/// what the decoder parsed as DNS on the DNS ports. Serialized as the lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppProto {
    /// An SSH identification string, `SSH-<version>-` (RFC 4253 4.2).
    Ssh,
    /// An HTTP/1.x request line or status line.
    Http,
    /// A TLS record header (content type 20 to 23, version 3.0 to 3.4, a length of at most
    /// 2^14 + 2048).
    Tls,
    /// A DNS message (UDP or TCP on ports 53, 5353, 5355).
    Dns,
    /// A QUIC long-header Initial packet of a known version (RFC 9000 17.2.2, RFC 9369).
    Quic,
}

impl AppProto {
    pub const ALL: [AppProto; 5] = [AppProto::Ssh, AppProto::Http, AppProto::Tls, AppProto::Dns, AppProto::Quic];

    pub const fn as_str(self) -> &'static str {
        match self {
            AppProto::Ssh => "ssh",
            AppProto::Http => "http",
            AppProto::Tls => "tls",
            AppProto::Dns => "dns",
            AppProto::Quic => "quic",
        }
    }

    /// The protocol named `name` ([`AppProto::as_str`]'s spelling).
    pub fn from_name(name: &str) -> Option<AppProto> {
        AppProto::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for AppProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PacketRecord {
    /// Capture time, epoch seconds.
    pub timestamp: f64,
    /// Interface (live capture) or file name (replay) the frame came from.
    pub interface: Arc<str>,
    pub src_ip: Option<IpAddr>,
    pub dst_ip: Option<IpAddr>,
    pub protocol: Protocol,
    /// Frame length on the wire (pcap `len`, tshark `frame.len`), not the captured length.
    pub length: u32,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub tcp_flags: Option<TcpFlags>,
    pub tcp_syn: Option<bool>,
    pub tcp_ack: Option<bool>,
    pub tcp_fin: Option<bool>,
    pub tcp_rst: Option<bool>,
    pub tcp_psh: Option<bool>,
    pub seq: Option<u32>,
    pub ack: Option<u32>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub arp_op: Option<u16>,
    pub arp_psrc: Option<IpAddr>,
    pub arp_pdst: Option<IpAddr>,
    pub arp_hwsrc: Option<MacAddr>,
    pub arp_hwdst: Option<MacAddr>,
    pub dns_query: Option<bool>,
    pub dns_qname: Option<String>,
    pub dns_qtype: Option<u16>,
    pub dns_response: Option<bool>,
    pub dns_answer_count: Option<u16>,
    /// Total rdata bytes of the answer section.
    pub dns_answer_size: Option<u32>,
    pub http_method: Option<String>,
    pub http_path: Option<String>,
    pub http_status_code: Option<u16>,
    pub http_host: Option<String>,
    pub src_mac: Option<MacAddr>,
    pub dst_mac: Option<MacAddr>,
    /// Outermost 802.1Q VLAN id.
    pub vlan: Option<u16>,
    // The fields below were added after the first release. `default` lets a record encoded
    // without them (an older agent's: a shorter array) read with them `None`; see
    // `crate::BATCH_FORMAT_VERSION`. New fields go after them, with the same attribute.
    /// What the payload speaks, by content.
    #[serde(default)]
    pub app_proto: Option<AppProto>,
    /// The server_name (host_name) of a TLS ClientHello carried whole or in part by this frame,
    /// in the `dns_qname` text form.
    #[serde(default)]
    pub tls_sni: Option<String>,
}

impl PacketRecord {
    pub fn new(timestamp: f64, length: u32) -> Self {
        PacketRecord { timestamp, length, ..Default::default() }
    }

    /// Sets `tcp_flags` and the five boolean flag fields from the TCP flag byte.
    pub fn set_tcp_flags(&mut self, flags: u8) {
        let f = TcpFlags(flags);
        self.tcp_flags = Some(f);
        self.tcp_fin = Some(f.fin());
        self.tcp_syn = Some(f.syn());
        self.tcp_rst = Some(f.rst());
        self.tcp_psh = Some(f.psh());
        self.tcp_ack = Some(f.ack());
    }
}

/// TCP flag bits (FIN 0x01 ... CWR 0x80). Printed as the original's comma-joined names in
/// fixed order, e.g. `SYN,ACK`; empty string when no flag is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

const FLAG_NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];

impl TcpFlags {
    pub fn fin(self) -> bool {
        self.0 & 0x01 != 0
    }
    pub fn syn(self) -> bool {
        self.0 & 0x02 != 0
    }
    pub fn rst(self) -> bool {
        self.0 & 0x04 != 0
    }
    pub fn psh(self) -> bool {
        self.0 & 0x08 != 0
    }
    pub fn ack(self) -> bool {
        self.0 & 0x10 != 0
    }

    pub fn parse(s: &str) -> Option<TcpFlags> {
        let mut bits = 0u8;
        for name in s.split(',').filter(|n| !n.is_empty()) {
            let i = FLAG_NAMES.iter().position(|f| f.eq_ignore_ascii_case(name.trim()))?;
            bits |= 1 << i;
        }
        Some(TcpFlags(bits))
    }
}

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (i, name) in FLAG_NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl Serialize for TcpFlags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_u8(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for TcpFlags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TcpFlags;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("TCP flag bits or comma-joined flag names")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TcpFlags, E> {
                u8::try_from(v).map(TcpFlags).map_err(|_| E::custom("tcp flags out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TcpFlags, E> {
                TcpFlags::parse(v).ok_or_else(|| E::custom(format!("bad tcp flags {v:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// An Ethernet MAC address, printed `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl std::str::FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in out.iter_mut() {
            let p = parts.next().ok_or_else(|| format!("bad MAC {s:?}"))?;
            *b = u8::from_str_radix(p, 16).map_err(|_| format!("bad MAC {s:?}"))?;
        }
        if parts.next().is_some() {
            return Err(format!("bad MAC {s:?}"));
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MacAddr;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("6 bytes or a colon-separated MAC address")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<MacAddr, E> {
                <[u8; 6]>::try_from(v).map(MacAddr).map_err(|_| E::invalid_length(v.len(), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MacAddr, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<MacAddr, A::Error> {
                let mut out = [0u8; 6];
                for (i, b) in out.iter_mut().enumerate() {
                    *b = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(MacAddr(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_uses_original_names_and_nulls() {
        let mut r = PacketRecord::new(1700000000.25, 74);
        r.interface = Arc::from("eth0");
        r.protocol = Protocol::Icmpv6;
        r.set_tcp_flags(0x12);
        r.arp_hwsrc = Some("00:1a:2b:3c:4d:5e".parse().unwrap());
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 38);
        assert!(obj["app_proto"].is_null() && obj["tls_sni"].is_null());
        assert_eq!(obj["protocol"], "ICMPv6");
        assert_eq!(obj["tcp_flags"], "SYN,ACK");
        assert_eq!(obj["tcp_syn"], true);
        assert_eq!(obj["arp_hwsrc"], "00:1a:2b:3c:4d:5e");
        assert!(obj["dns_qname"].is_null());
        let back: PacketRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn app_proto_names_are_lowercase() {
        for p in AppProto::ALL {
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
            assert_eq!(AppProto::from_name(p.as_str()), Some(p));
            assert_eq!(p.to_string(), p.as_str());
        }
        assert_eq!(AppProto::from_name("TLS"), None);
        assert_eq!(AppProto::from_name(""), None);
        let mut r = PacketRecord::new(1.0, 60);
        r.app_proto = Some(AppProto::Tls);
        r.tls_sni = Some("example.com".into());
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["app_proto"], "tls");
        assert_eq!(v["tls_sni"], "example.com");
    }

    /// JSON written before the two fields existed still reads, with them absent.
    #[test]
    fn records_without_the_later_fields_read() {
        let mut v = serde_json::to_value(PacketRecord::new(1.0, 60)).unwrap();
        let obj = v.as_object_mut().unwrap();
        obj.remove("app_proto");
        obj.remove("tls_sni");
        assert_eq!(serde_json::from_value::<PacketRecord>(v).unwrap(), PacketRecord::new(1.0, 60));
    }

    #[test]
    fn flags_print_in_fixed_order() {
        assert_eq!(TcpFlags(0).to_string(), "");
        assert_eq!(TcpFlags(0xff).to_string(), "FIN,SYN,RST,PSH,ACK,URG,ECE,CWR");
        assert_eq!(TcpFlags::parse("ACK,SYN"), Some(TcpFlags(0x12)));
    }
}
