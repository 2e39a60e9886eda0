//! A MessagePack encoder for [`PacketRecord`] and [`PacketBatch`] written out by hand:
//! encoding through serde was most of the time `nta decode` and the agent spent per frame.
//!
//! The output is byte for byte what `rmp_serde` 1.x writes with the derived `Serialize`
//! implementations, so old and new agents and every consumer (which still decodes with
//! `rmp_serde::from_slice`) interoperate: the tests in `tests/msgpack_identity.rs` compare both
//! on every record of the shared captures and on generated edge cases. The shapes that fixes:
//! - a struct is an array of its fields in declaration order (compact form) or a map from
//!   field name to value (named form, `rmp_serde::encode::write_named`);
//! - `None` is nil, `Some(v)` is `v`; integers take their smallest encoding; `f64` is always
//!   a float 64; `Protocol` and `AppProto` are their names as strings;
//! - `IpAddr` is serde's non-human-readable form: a one-entry map from `"V4"`/`"V6"` to an
//!   array of the address octets (each an unsigned integer);
//! - `MacAddr` is a 6-byte bin, `TcpFlags` its flag byte.

use crate::record::{MacAddr, PacketRecord};
use crate::PacketBatch;
use std::net::IpAddr;

/// `s` as a MessagePack fixstr (marker and bytes); `N` must be `s.len() + 1` (< 33).
const fn fixstr<const N: usize>(s: &str) -> [u8; N] {
    let b = s.as_bytes();
    assert!(b.len() + 1 == N && b.len() < 32);
    let mut out = [0u8; N];
    out[0] = 0xa0 | b.len() as u8;
    let mut i = 0;
    while i < b.len() {
        out[i + 1] = b[i];
        i += 1;
    }
    out
}

/// The encoded key of a field (fixstr), computed at compile time.
macro_rules! key {
    ($name:literal) => {{
        const K: [u8; $name.len() + 1] = fixstr($name);
        &K
    }};
}

const NIL: u8 = 0xc0;
/// Number of fields of [`PacketRecord`], the length of its array or map.
const RECORD_FIELDS: u16 = 38;
/// Encoded size of a record without its strings (all fields present, IPv6 addresses,
/// integers at their widest, keys included), so one reservation covers a whole record.
const RECORD_FIXED_MAX: usize = 1024;

#[inline(always)]
fn uint(out: &mut Vec<u8>, v: u64) {
    if v < 128 {
        out.push(v as u8);
    } else if v < 256 {
        out.extend_from_slice(&[0xcc, v as u8]);
    } else if v < 65536 {
        let b = (v as u16).to_be_bytes();
        out.extend_from_slice(&[0xcd, b[0], b[1]]);
    } else if v < 1 << 32 {
        out.push(0xce);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

#[inline(always)]
fn opt_uint(out: &mut Vec<u8>, v: Option<impl Into<u64>>) {
    match v {
        Some(v) => uint(out, v.into()),
        None => out.push(NIL),
    }
}

#[inline(always)]
fn opt_bool(out: &mut Vec<u8>, v: Option<bool>) {
    out.push(match v {
        Some(false) => 0xc2,
        Some(true) => 0xc3,
        None => NIL,
    });
}

/// The string header; lengths are cut to 32 bits as `rmp` does (no record string comes near).
#[inline(always)]
fn str_len(out: &mut Vec<u8>, len: usize) {
    let len = len as u32;
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len < 256 {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len < 65536 {
        let b = (len as u16).to_be_bytes();
        out.extend_from_slice(&[0xda, b[0], b[1]]);
    } else {
        out.push(0xdb);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

#[inline(always)]
fn string(out: &mut Vec<u8>, s: &str) {
    str_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

#[inline(always)]
fn opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.push(NIL),
    }
}

fn array_len(out: &mut Vec<u8>, len: usize) {
    let len = len as u32;
    if len < 16 {
        out.push(0x90 | len as u8);
    } else if len < 65536 {
        let b = (len as u16).to_be_bytes();
        out.extend_from_slice(&[0xdc, b[0], b[1]]);
    } else {
        out.push(0xdd);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

#[inline(always)]
fn opt_ip(out: &mut Vec<u8>, ip: Option<IpAddr>) {
    match ip {
        // {"V4": [a, b, c, d]}: fixmap 1, fixstr "V4", fixarray 4.
        Some(IpAddr::V4(a)) => {
            out.extend_from_slice(&[0x81, 0xa2, b'V', b'4', 0x94]);
            for o in a.octets() {
                uint(out, o.into());
            }
        }
        // {"V6": [16 octets]}: an array of 16 needs array16.
        Some(IpAddr::V6(a)) => {
            out.extend_from_slice(&[0x81, 0xa2, b'V', b'6', 0xdc, 0, 16]);
            for o in a.octets() {
                uint(out, o.into());
            }
        }
        None => out.push(NIL),
    }
}

#[inline(always)]
fn opt_mac(out: &mut Vec<u8>, m: Option<MacAddr>) {
    match m {
        Some(MacAddr(b)) => out.extend_from_slice(&[0xc4, 6, b[0], b[1], b[2], b[3], b[4], b[5]]),
        None => out.push(NIL),
    }
}

impl PacketRecord {
    /// Appends the compact MessagePack form (an array of the fields), as `rmp_serde::to_vec`
    /// encodes a record inside a [`PacketBatch`].
    pub fn encode_msgpack(&self, out: &mut Vec<u8>) {
        self.encode::<false>(out)
    }

    /// Appends the self-describing MessagePack form (a map from field name to value), as
    /// `rmp_serde::encode::write_named` encodes it; `nta decode --format msgpack` writes it.
    pub fn encode_msgpack_named(&self, out: &mut Vec<u8>) {
        self.encode::<true>(out)
    }

    #[inline(always)]
    fn encode<const NAMED: bool>(&self, out: &mut Vec<u8>) {
        // Destructured so that a new field fails to compile here rather than go missing.
        let PacketRecord {
            timestamp,
            interface,
            src_ip,
            dst_ip,
            protocol,
            length,
            src_port,
            dst_port,
            tcp_flags,
            tcp_syn,
            tcp_ack,
            tcp_fin,
            tcp_rst,
            tcp_psh,
            seq,
            ack,
            icmp_type,
            icmp_code,
            arp_op,
            arp_psrc,
            arp_pdst,
            arp_hwsrc,
            arp_hwdst,
            dns_query,
            dns_qname,
            dns_qtype,
            dns_response,
            dns_answer_count,
            dns_answer_size,
            http_method,
            http_path,
            http_status_code,
            http_host,
            src_mac,
            dst_mac,
            vlan,
            app_proto,
            tls_sni,
        } = self;
        let strings = interface.len()
            + dns_qname.as_ref().map_or(0, String::len)
            + http_method.as_ref().map_or(0, String::len)
            + http_path.as_ref().map_or(0, String::len)
            + http_host.as_ref().map_or(0, String::len)
            + tls_sni.as_ref().map_or(0, String::len);
        out.reserve(RECORD_FIXED_MAX + strings);

        macro_rules! field {
            ($name:literal) => {
                if NAMED {
                    out.extend_from_slice(key!($name));
                }
            };
        }
        let [hi, lo] = RECORD_FIELDS.to_be_bytes();
        out.extend_from_slice(&[if NAMED { 0xde } else { 0xdc }, hi, lo]);
        field!("timestamp");
        out.push(0xcb);
        out.extend_from_slice(&timestamp.to_bits().to_be_bytes());
        field!("interface");
        string(out, interface);
        field!("src_ip");
        opt_ip(out, *src_ip);
        field!("dst_ip");
        opt_ip(out, *dst_ip);
        field!("protocol");
        string(out, protocol.as_str());
        field!("length");
        uint(out, (*length).into());
        field!("src_port");
        opt_uint(out, *src_port);
        field!("dst_port");
        opt_uint(out, *dst_port);
        field!("tcp_flags");
        opt_uint(out, tcp_flags.map(|f| f.0));
        field!("tcp_syn");
        opt_bool(out, *tcp_syn);
        field!("tcp_ack");
        opt_bool(out, *tcp_ack);
        field!("tcp_fin");
        opt_bool(out, *tcp_fin);
        field!("tcp_rst");
        opt_bool(out, *tcp_rst);
        field!("tcp_psh");
        opt_bool(out, *tcp_psh);
        field!("seq");
        opt_uint(out, *seq);
        field!("ack");
        opt_uint(out, *ack);
        field!("icmp_type");
        opt_uint(out, *icmp_type);
        field!("icmp_code");
        opt_uint(out, *icmp_code);
        field!("arp_op");
        opt_uint(out, *arp_op);
        field!("arp_psrc");
        opt_ip(out, *arp_psrc);
        field!("arp_pdst");
        opt_ip(out, *arp_pdst);
        field!("arp_hwsrc");
        opt_mac(out, *arp_hwsrc);
        field!("arp_hwdst");
        opt_mac(out, *arp_hwdst);
        field!("dns_query");
        opt_bool(out, *dns_query);
        field!("dns_qname");
        opt_str(out, dns_qname.as_deref());
        field!("dns_qtype");
        opt_uint(out, *dns_qtype);
        field!("dns_response");
        opt_bool(out, *dns_response);
        field!("dns_answer_count");
        opt_uint(out, *dns_answer_count);
        field!("dns_answer_size");
        opt_uint(out, *dns_answer_size);
        field!("http_method");
        opt_str(out, http_method.as_deref());
        field!("http_path");
        opt_str(out, http_path.as_deref());
        field!("http_status_code");
        opt_uint(out, *http_status_code);
        field!("http_host");
        opt_str(out, http_host.as_deref());
        field!("src_mac");
        opt_mac(out, *src_mac);
        field!("dst_mac");
        opt_mac(out, *dst_mac);
        field!("vlan");
        opt_uint(out, *vlan);
        field!("app_proto");
        opt_str(out, app_proto.map(|p| p.as_str()));
        field!("tls_sni");
        opt_str(out, tls_sni.as_deref());
    }
}

impl PacketBatch {
    /// Appends the batch's MessagePack encoding (see [`PacketBatch::encode`]) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let PacketBatch { v, agent_id, boot_id, seq, records } = self;
        out.reserve(32 + agent_id.len() + boot_id.len());
        array_len(out, 5);
        uint(out, (*v).into());
        string(out, agent_id);
        string(out, boot_id);
        uint(out, *seq);
        array_len(out, records.len());
        for r in records {
            r.encode_msgpack(out);
        }
    }
}
