//! A direct reader of [`PacketBatch`] in the exact MessagePack shape agents write
//! (`rmp_serde::to_vec`: structs as arrays, `IpAddr` as a one-entry map `{"V4"|"V6": [bytes]}`,
//! [`Protocol`] and [`AppProto`] as their names, MAC addresses as 6-byte `bin`, absent values as
//! `nil`), and the shorter records of older agents, which lack the fields added since (read as
//! `None`, as `#[serde(default)]` makes `rmp_serde` read them).
//!
//! Decoding through serde cost the windower and the ingestor about 1 µs per record, 40% of the
//! windower's CPU: every field goes through `deserialize_any` and a visitor. This reader walks
//! the bytes once. It accepts only that shape and gives up (`None`) on anything else; the caller
//! then decodes with `rmp_serde`, which reads every other valid encoding and words the error of
//! an invalid one, so what is accepted and how it reads never depend on which path ran. Tests and
//! the `packet_batch` fuzz target check that whatever this reader returns equals what
//! `rmp_serde` returns for the same bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use crate::{AppProto, MacAddr, PacketBatch, PacketRecord, Protocol, TcpFlags};

/// Fields of a [`PacketRecord`] on the wire.
const RECORD_FIELDS: usize = 38;
/// Fields of the records of the first agents, up to `vlan`: each later field is optional.
const FIRST_RECORD_FIELDS: usize = 36;
/// Smallest encoded record (array header, f64, empty string, 34 one-byte fields: the shortest,
/// first form): bounds the capacity reserved for a claimed record count.
const MIN_RECORD_BYTES: usize = 3 + 9 + 1 + 34;

/// The batch in `bytes`, or `None` when they are not exactly the agents' encoding of one.
pub(crate) fn read_batch(bytes: &[u8]) -> Option<PacketBatch> {
    let mut r = Reader { buf: bytes, pos: 0 };
    if r.array_len()? != 5 {
        return None;
    }
    let v = u8::try_from(r.uint()?).ok()?;
    let agent_id = r.str()?.to_owned();
    let boot_id = r.str()?.to_owned();
    let seq = r.uint()?;
    let n = r.array_len()?;
    let mut records = Vec::with_capacity(n.min(r.remaining() / MIN_RECORD_BYTES));
    // Records of one batch nearly always share their interface: one allocation for all.
    let mut interface: Arc<str> = Arc::from("");
    for _ in 0..n {
        records.push(r.record(&mut interface)?);
    }
    (r.remaining() == 0).then_some(PacketBatch { v, agent_id, boot_id, seq, records })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn be<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// `nil` (consumed) reads as `None` of the option, anything else as `Some`.
    fn nil(&mut self) -> bool {
        if self.peek() == Some(0xc0) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn array_len(&mut self) -> Option<usize> {
        match self.byte()? {
            b @ 0x90..=0x9f => Some((b & 0x0f) as usize),
            0xdc => Some(u16::from_be_bytes(self.be()?) as usize),
            0xdd => Some(u32::from_be_bytes(self.be()?) as usize),
            _ => None,
        }
    }

    /// A non-negative integer in any of MessagePack's unsigned forms.
    fn uint(&mut self) -> Option<u64> {
        match self.byte()? {
            b @ 0x00..=0x7f => Some(b as u64),
            0xcc => Some(self.byte()? as u64),
            0xcd => Some(u16::from_be_bytes(self.be()?) as u64),
            0xce => Some(u32::from_be_bytes(self.be()?) as u64),
            0xcf => Some(u64::from_be_bytes(self.be()?)),
            _ => None,
        }
    }

    fn str(&mut self) -> Option<&'a str> {
        let n = match self.byte()? {
            b @ 0xa0..=0xbf => (b & 0x1f) as usize,
            0xd9 => self.byte()? as usize,
            0xda => u16::from_be_bytes(self.be()?) as usize,
            0xdb => u32::from_be_bytes(self.be()?) as usize,
            _ => return None,
        };
        std::str::from_utf8(self.take(n)?).ok()
    }

    fn opt_uint<T: TryFrom<u64>>(&mut self) -> Option<Option<T>> {
        if self.nil() {
            return Some(None);
        }
        Some(Some(T::try_from(self.uint()?).ok()?))
    }

    fn opt_bool(&mut self) -> Option<Option<bool>> {
        match self.byte()? {
            0xc0 => Some(None),
            0xc2 => Some(Some(false)),
            0xc3 => Some(Some(true)),
            _ => None,
        }
    }

    fn opt_string(&mut self) -> Option<Option<String>> {
        if self.nil() {
            return Some(None);
        }
        Some(Some(self.str()?.to_owned()))
    }

    fn opt_mac(&mut self) -> Option<Option<MacAddr>> {
        if self.nil() {
            return Some(None);
        }
        if self.take(2)? != [0xc4, 6] {
            return None;
        }
        Some(Some(MacAddr(self.be()?)))
    }

    /// `{"V4": [4 bytes]}` or `{"V6": [16 bytes]}`, every byte a MessagePack integer.
    fn opt_ip(&mut self) -> Option<Option<IpAddr>> {
        if self.nil() {
            return Some(None);
        }
        if self.byte()? != 0x81 {
            return None;
        }
        match self.str()? {
            "V4" => {
                if self.byte()? != 0x94 {
                    return None;
                }
                Some(Some(IpAddr::V4(Ipv4Addr::from(self.octets::<4>()?))))
            }
            "V6" => {
                if self.take(3)? != [0xdc, 0, 16] {
                    return None;
                }
                Some(Some(IpAddr::V6(Ipv6Addr::from(self.octets::<16>()?))))
            }
            _ => None,
        }
    }

    fn octets<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = u8::try_from(self.uint()?).ok()?;
        }
        Some(out)
    }

    fn protocol(&mut self) -> Option<Protocol> {
        Protocol::from_name(self.str()?)
    }

    fn opt_app_proto(&mut self) -> Option<Option<AppProto>> {
        if self.nil() {
            return Some(None);
        }
        Some(Some(AppProto::from_name(self.str()?)?))
    }

    /// One record, its fields in declaration order; `interface` is the previous record's,
    /// shared when equal.
    fn record(&mut self, interface: &mut Arc<str>) -> Option<PacketRecord> {
        let fields = self.array_len()?;
        if !(FIRST_RECORD_FIELDS..=RECORD_FIELDS).contains(&fields) || self.byte()? != 0xcb {
            return None;
        }
        let timestamp = f64::from_be_bytes(self.be()?);
        let name = self.str()?;
        if **interface != *name {
            *interface = Arc::from(name);
        }
        let mut r = PacketRecord {
            timestamp,
            interface: interface.clone(),
            src_ip: self.opt_ip()?,
            dst_ip: self.opt_ip()?,
            protocol: self.protocol()?,
            length: u32::try_from(self.uint()?).ok()?,
            src_port: self.opt_uint()?,
            dst_port: self.opt_uint()?,
            tcp_flags: self.opt_uint::<u8>()?.map(TcpFlags),
            tcp_syn: self.opt_bool()?,
            tcp_ack: self.opt_bool()?,
            tcp_fin: self.opt_bool()?,
            tcp_rst: self.opt_bool()?,
            tcp_psh: self.opt_bool()?,
            seq: self.opt_uint()?,
            ack: self.opt_uint()?,
            icmp_type: self.opt_uint()?,
            icmp_code: self.opt_uint()?,
            arp_op: self.opt_uint()?,
            arp_psrc: self.opt_ip()?,
            arp_pdst: self.opt_ip()?,
            arp_hwsrc: self.opt_mac()?,
            arp_hwdst: self.opt_mac()?,
            dns_query: self.opt_bool()?,
            dns_qname: self.opt_string()?,
            dns_qtype: self.opt_uint()?,
            dns_response: self.opt_bool()?,
            dns_answer_count: self.opt_uint()?,
            dns_answer_size: self.opt_uint()?,
            http_method: self.opt_string()?,
            http_path: self.opt_string()?,
            http_status_code: self.opt_uint()?,
            http_host: self.opt_string()?,
            src_mac: self.opt_mac()?,
            dst_mac: self.opt_mac()?,
            vlan: self.opt_uint()?,
            app_proto: None,
            tls_sni: None,
        };
        if fields > FIRST_RECORD_FIELDS {
            r.app_proto = self.opt_app_proto()?;
        }
        if fields > FIRST_RECORD_FIELDS + 1 {
            r.tls_sni = self.opt_string()?;
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random numbers (no dependency for a test).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0 >> 11
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        /// `Some` of what `f` makes, two times out of three.
        fn some<T>(&mut self, f: impl FnOnce(&mut Lcg) -> T) -> Option<T> {
            let v = f(self);
            (self.below(3) != 0).then_some(v)
        }
    }

    /// Lengths at the edges of MessagePack's string forms, and text that is not ASCII.
    /// Long ones are rare: they would make every record of the mutation test large.
    fn text(rng: &mut Lcg) -> String {
        let forms = if rng.below(50) == 0 { 8 } else { 6 };
        let len = [0, 1, 31, 32, 255, 256, 65_535, 65_536][rng.below(forms) as usize];
        let unit = ["a", "é", "名", "\u{1f600}"][rng.below(4) as usize];
        unit.repeat(len / unit.len() + 1)[..unit.len() * (len / unit.len())].to_string()
    }

    fn uint(rng: &mut Lcg, max: u64) -> u64 {
        [0, 1, 127, 128, 255, 256, 65_535, 65_536, u32::MAX as u64, rng.next()][rng.below(10) as usize]
            % max.saturating_add(1).max(1)
    }

    fn ip(rng: &mut Lcg) -> Option<IpAddr> {
        let bits = ((rng.next() as u128) << 64) | rng.next() as u128;
        rng.some(|rng| {
            if rng.below(2) == 0 {
                IpAddr::from((bits as u32).to_be_bytes())
            } else {
                IpAddr::from(bits.to_be_bytes())
            }
        })
    }

    fn record(rng: &mut Lcg) -> PacketRecord {
        let protocols =
            [Protocol::Tcp, Protocol::Udp, Protocol::Icmp, Protocol::Icmpv6, Protocol::Arp, Protocol::Other];
        let mut r = PacketRecord::new(
            [0.0, -1.5, 1.7e9 + rng.below(1_000_000) as f64 / 1e6, crate::MAX_TIMESTAMP][rng.below(4) as usize],
            uint(rng, u32::MAX as u64) as u32,
        );
        r.interface = Arc::from(["eth0", "", "capture-file-name.pcapng"][rng.below(3) as usize]);
        r.protocol = protocols[rng.below(6) as usize];
        (r.src_ip, r.dst_ip, r.arp_psrc, r.arp_pdst) = (ip(rng), ip(rng), ip(rng), ip(rng));
        r.src_port = rng.some(|rng| uint(rng, 65_535) as u16);
        r.dst_port = rng.some(|rng| uint(rng, 65_535) as u16);
        if rng.below(2) == 0 {
            r.set_tcp_flags(rng.below(256) as u8);
        }
        if rng.below(4) == 0 {
            r.tcp_psh = None;
        }
        r.seq = rng.some(|rng| uint(rng, u32::MAX as u64) as u32);
        r.ack = rng.some(|rng| uint(rng, u32::MAX as u64) as u32);
        r.icmp_type = rng.some(|rng| uint(rng, 255) as u8);
        r.icmp_code = rng.some(|rng| uint(rng, 255) as u8);
        r.arp_op = rng.some(|rng| uint(rng, 65_535) as u16);
        let mac = |rng: &mut Lcg| rng.some(|rng| MacAddr(rng.next().to_be_bytes()[2..].try_into().unwrap()));
        (r.arp_hwsrc, r.arp_hwdst, r.src_mac, r.dst_mac) = (mac(rng), mac(rng), mac(rng), mac(rng));
        r.dns_query = rng.some(|rng| rng.below(2) == 0);
        r.dns_qname = rng.some(text);
        r.dns_qtype = rng.some(|rng| uint(rng, 65_535) as u16);
        r.dns_response = rng.some(|rng| rng.below(2) == 1);
        r.dns_answer_count = rng.some(|rng| uint(rng, 65_535) as u16);
        r.dns_answer_size = rng.some(|rng| uint(rng, u32::MAX as u64) as u32);
        r.http_method = rng.some(text);
        r.http_path = rng.some(text);
        r.http_status_code = rng.some(|rng| uint(rng, 65_535) as u16);
        r.http_host = rng.some(text);
        r.vlan = rng.some(|rng| uint(rng, 4095) as u16);
        r.app_proto = rng.some(|rng| AppProto::ALL[rng.below(AppProto::ALL.len() as u64) as usize]);
        r.tls_sni = rng.some(text);
        r
    }

    fn batch(rng: &mut Lcg, records: usize) -> PacketBatch {
        let mut b = PacketBatch::new("agent-1", "boot", uint(rng, u64::MAX));
        b.records = (0..records).map(|_| record(rng)).collect();
        b
    }

    #[test]
    fn reads_what_agents_write_as_serde_does() {
        let mut rng = Lcg(7);
        for records in [0, 1, 2, 15, 16, 300, 70_000] {
            let b = batch(&mut rng, records);
            let bytes = b.encode().unwrap();
            let read = read_batch(&bytes).unwrap_or_else(|| panic!("the agents' encoding of {records} records"));
            assert_eq!(read, b);
            assert_eq!(read, PacketBatch::decode_generic(&bytes).unwrap());
        }
    }

    /// `bytes` (a batch the current encoder wrote, every record without the later fields) with
    /// its records cut to their first `fields` fields, as an older agent wrote them.
    fn shortened(b: &PacketBatch, fields: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut head = b.clone();
        head.records.clear();
        head.encode_into(&mut out);
        // Re-open the record array: the empty one is a single byte (0x90) at the end.
        assert_eq!(out.pop(), Some(0x90));
        out.push(0xdc);
        out.extend_from_slice(&(b.records.len() as u16).to_be_bytes());
        for r in &b.records {
            assert!(r.app_proto.is_none() && r.tls_sni.is_none());
            let mut rec = Vec::new();
            r.encode_msgpack(&mut rec);
            assert_eq!(rec[..3], [0xdc, 0, RECORD_FIELDS as u8]);
            // The later fields are nil, one byte each, at the end.
            rec.truncate(rec.len() - (RECORD_FIELDS - fields));
            rec[2] = fields as u8;
            out.extend_from_slice(&rec);
        }
        out
    }

    /// Older agents' records (36 fields, before `app_proto` and `tls_sni`) read with those
    /// fields `None`, by both readers alike; a count outside what any agent wrote is refused.
    #[test]
    fn reads_records_of_older_agents() {
        let mut rng = Lcg(5);
        let mut b = batch(&mut rng, 40);
        for r in &mut b.records {
            (r.app_proto, r.tls_sni) = (None, None);
        }
        for fields in FIRST_RECORD_FIELDS..=RECORD_FIELDS {
            let bytes = shortened(&b, fields);
            assert_eq!(read_batch(&bytes).as_ref(), Some(&b), "{fields} fields");
            assert_eq!(PacketBatch::decode_generic(&bytes).unwrap(), b, "{fields} fields");
            assert_eq!(PacketBatch::decode(&bytes).unwrap(), b, "{fields} fields");
        }
        assert_eq!(shortened(&b, RECORD_FIELDS), b.encode().unwrap());
        let too_short = shortened(&b, FIRST_RECORD_FIELDS - 1);
        assert_eq!(read_batch(&too_short), None);
        assert!(PacketBatch::decode(&too_short).is_err());
    }

    /// An older reader (a struct that ends before the later fields) refuses a current record
    /// rather than misreading it: what lets the fields be added without a version bump.
    #[test]
    fn older_readers_refuse_longer_records() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Old(f64, String);
        #[derive(serde::Serialize)]
        struct New(f64, String, Option<String>);
        let bytes = rmp_serde::to_vec(&New(1.0, "eth0".into(), None)).unwrap();
        let e = rmp_serde::from_slice::<Old>(&bytes).err().expect("an older reader must refuse");
        assert!(e.to_string().contains("length"), "{e}");
    }

    /// Damaged and altered encodings: whatever the direct reader accepts, `rmp_serde` reads
    /// the same way (compared through their encodings, so NaN timestamps compare too).
    #[test]
    fn accepts_nothing_serde_reads_otherwise() {
        let mut rng = Lcg(11);
        let interesting =
            [0xc0, 0xc2, 0xc3, 0xcc, 0xcd, 0xce, 0xcf, 0xcb, 0xca, 0x81, 0x94, 0xa2, 0xc4, 0xdc, 0x7f, 0xff];
        let (mut accepted, mut rejected) = (0, 0);
        for round in 0..40_000 {
            let records = 1 + rng.below(3) as usize;
            let mut bytes = batch(&mut rng, records).encode().unwrap();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(bytes.len() as u64) as usize;
                match rng.below(4) {
                    0 => bytes[at] = interesting[rng.below(interesting.len() as u64) as usize],
                    1 => bytes[at] ^= 1 << rng.below(8),
                    2 => bytes.truncate(at),
                    _ => bytes.insert(at, interesting[rng.below(interesting.len() as u64) as usize]),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            match read_batch(&bytes) {
                Some(read) => {
                    accepted += 1;
                    let generic = PacketBatch::decode_generic(&bytes)
                        .unwrap_or_else(|e| panic!("round {round}: rmp_serde refuses what the reader took: {e}"));
                    assert_eq!(read.encode().unwrap(), generic.encode().unwrap(), "round {round}");
                }
                None => rejected += 1,
            }
        }
        // Both outcomes occur, or the test proves nothing.
        eprintln!("{accepted} accepted, {rejected} rejected");
        assert!(accepted > 1000 && rejected > 1000, "{accepted} accepted, {rejected} rejected");
    }
}
