//! pcap and pcapng writers. Both formats are a few fixed headers; writing them here keeps the
//! timestamps exact (nanoseconds) and lets one file hold several link types and agents.

use std::io::{self, Write};

/// The largest frame any link type may carry (libpcap's `MAXIMUM_SNAPLEN`).
const SNAPLEN: u32 = 262_144;

/// A frame ready to be written.
#[derive(Debug, Clone)]
pub struct OutFrame {
    pub ts_ns: i64,
    pub wire_len: u32,
    pub data: Vec<u8>,
    /// Index into the interfaces list passed to [`write`].
    pub iface: usize,
}

/// An interface of the output: one agent's capture of one link type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Iface {
    pub agent: String,
    /// libpcap DLT_* value.
    pub dlt: i32,
}

/// Which format [`write`] chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pcap,
    Pcapng,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Pcap => "pcap (nanosecond)",
            Format::Pcapng => "pcapng",
        }
    }
}

/// The file header's link type of a DLT: they are the same number but for the few DLTs whose
/// values differ between systems (libpcap's `dlt_to_linktype`).
pub fn linktype_of(dlt: i32) -> u32 {
    match dlt {
        11 => 100,      // DLT_ATM_RFC1483
        12 | 14 => 101, // DLT_RAW (Linux, BSD/OS values)
        15 => 102,      // DLT_SLIP_BSDOS
        16 => 103,      // DLT_PPP_BSDOS
        d => d as u32,
    }
}

/// Whether a capture time fits a classic pcap record (signed 32-bit seconds, as libpcap reads).
pub fn fits_pcap(ts_ns: i64) -> bool {
    i32::try_from(ts_ns.div_euclid(1_000_000_000)).is_ok()
}

/// The file header of a classic nanosecond pcap of link type `dlt`.
pub fn pcap_header(dlt: i32) -> Vec<u8> {
    let mut h = Vec::with_capacity(24);
    h.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes()); // nanosecond magic
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&0i32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&SNAPLEN.to_le_bytes());
    h.extend_from_slice(&linktype_of(dlt).to_le_bytes());
    h
}

/// The record header of a frame in a classic nanosecond pcap (its bytes follow).
pub fn pcap_record(ts_ns: i64, caplen: usize, wire_len: u32) -> [u8; 16] {
    let (secs, nanos) = (ts_ns.div_euclid(1_000_000_000), ts_ns.rem_euclid(1_000_000_000));
    let mut r = [0u8; 16];
    r[0..4].copy_from_slice(&(secs as i32).to_le_bytes());
    r[4..8].copy_from_slice(&(nanos as u32).to_le_bytes());
    r[8..12].copy_from_slice(&(caplen as u32).to_le_bytes());
    r[12..16].copy_from_slice(&wire_len.to_le_bytes());
    r
}

/// Classic pcap when every frame comes from one interface and its seconds fit the format's
/// signed 32 bits, else pcapng.
pub fn choose(ifaces: &[Iface], frames: &[OutFrame]) -> Format {
    let fits = frames.iter().all(|f| fits_pcap(f.ts_ns));
    if ifaces.len() <= 1 && fits {
        Format::Pcap
    } else {
        Format::Pcapng
    }
}

/// Writes `frames` (in the given order) to `out`; returns the bytes written.
pub fn write(out: &mut impl Write, format: Format, ifaces: &[Iface], frames: &[OutFrame]) -> io::Result<u64> {
    let mut n = 0u64;
    let mut put = |b: &[u8], out: &mut dyn Write| -> io::Result<()> {
        n += b.len() as u64;
        out.write_all(b)
    };
    match format {
        Format::Pcap => {
            // With no frame at all, Ethernet: a valid empty file.
            put(&pcap_header(ifaces.first().map_or(1, |i| i.dlt)), out)?;
            for f in frames {
                put(&pcap_record(f.ts_ns, f.data.len(), f.wire_len), out)?;
                put(&f.data, out)?;
            }
        }
        Format::Pcapng => {
            let mut shb = Vec::new();
            shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
            shb.extend_from_slice(&1u16.to_le_bytes());
            shb.extend_from_slice(&0u16.to_le_bytes());
            shb.extend_from_slice(&(-1i64).to_le_bytes()); // section length unknown
            put(&block(0x0a0d_0d0a, &shb), out)?;
            for i in ifaces {
                let mut idb = Vec::new();
                idb.extend_from_slice(&(linktype_of(i.dlt) as u16).to_le_bytes());
                idb.extend_from_slice(&0u16.to_le_bytes());
                idb.extend_from_slice(&SNAPLEN.to_le_bytes());
                option(&mut idb, 2, i.agent.as_bytes()); // if_name: the agent id
                option(&mut idb, 9, &[9]); // if_tsresol: nanoseconds
                option(&mut idb, 0, &[]);
                put(&block(1, &idb), out)?;
            }
            for f in frames {
                // pcapng times are unsigned: a frame before 1970 is written at the epoch.
                let ts = f.ts_ns.max(0) as u64;
                let mut epb = Vec::with_capacity(20 + f.data.len() + 3);
                epb.extend_from_slice(&(f.iface as u32).to_le_bytes());
                epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
                epb.extend_from_slice(&(ts as u32).to_le_bytes());
                epb.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
                epb.extend_from_slice(&f.wire_len.to_le_bytes());
                epb.extend_from_slice(&f.data);
                pad(&mut epb);
                put(&block(6, &epb), out)?;
            }
        }
    }
    Ok(n)
}

fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let len = (12 + body.len()) as u32;
    let mut b = Vec::with_capacity(len as usize);
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(body);
    b.extend_from_slice(&len.to_le_bytes());
    b
}

fn option(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    buf.extend_from_slice(&code.to_le_bytes());
    buf.extend_from_slice(&(value.len() as u16).to_le_bytes());
    buf.extend_from_slice(value);
    pad(buf);
}

fn pad(buf: &mut Vec<u8>) {
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}
