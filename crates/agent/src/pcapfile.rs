//! A reader of classic pcap files (the common case: Ethernet, micro- or nanosecond, either
//! byte order) that hands out frames straight from large buffers: libpcap's reading (two
//! `fread` calls per frame through a 4 KiB stdio buffer) was a third of a file replay's time.
//! The buffers are filled by a thread of their own, so the kernel's copy of the file overlaps
//! with decoding.
//!
//! It only takes what it can read exactly as libpcap does. Anything else — another format
//! (pcapng), another link type, a frame longer than the snap length, a file damaged
//! part-way — is left to libpcap: at open time by not claiming the file, mid-file by
//! [`Next::Handover`], after which the caller reopens the file with libpcap and skips the
//! frames already delivered, so records, timestamps and error messages stay libpcap's.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// LINKTYPE_ETHERNET, the same number as DLT_EN10MB (other link types may differ).
const LINKTYPE_ETHERNET: u32 = 1;
/// libpcap's largest snap length for Ethernet (`max_snaplen_for_dlt`).
const MAX_SNAPLEN: u32 = 262_144;
const FILE_HEADER: usize = 24;
const RECORD_HEADER: usize = 16;
/// Bytes read into one buffer: large reads cost few system calls.
const BLOCK: usize = 1 << 20;
/// Room before a buffer's bytes for the unread end of the previous buffer (at most one
/// record, which [`MAX_SNAPLEN`] bounds), so that every record lies in one buffer.
const HEADROOM: usize = RECORD_HEADER + MAX_SNAPLEN as usize;
/// Buffers in use: one being read, the others being filled.
const BUFFERS: usize = 3;

/// A buffer filled by the reading thread: bytes at `HEADROOM..HEADROOM + len`, or a failed read.
type Filled = std::io::Result<(Vec<u8>, usize)>;

pub(crate) struct PcapFile {
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
    filled: Receiver<Filled>,
    /// Buffers read out go back to the reading thread.
    empty: SyncSender<Vec<u8>>,
    swapped: bool,
    nanos: bool,
    snaplen: u32,
    /// Frames delivered so far (what libpcap skips when it takes over).
    pub(crate) delivered: u64,
}

pub(crate) enum Next {
    /// A frame: timestamp (epoch seconds, and exact epoch nanoseconds), wire length, and its
    /// bytes' range in [`PcapFile::data`].
    Frame(f64, i64, u32, std::ops::Range<usize>),
    End,
    /// Not a frame this reader can vouch for: libpcap must read from here on.
    Handover,
}

impl PcapFile {
    /// The file, if it is a classic pcap of Ethernet frames; `None` leaves it to libpcap.
    /// Only a regular file: libpcap has opened `path` already and a pipe cannot be read twice.
    pub(crate) fn open(path: &Path) -> Option<PcapFile> {
        if !std::fs::metadata(path).ok()?.is_file() {
            return None;
        }
        let mut file = File::open(path).ok()?;
        let mut h = [0u8; FILE_HEADER];
        file.read_exact(&mut h).ok()?;
        let (swapped, nanos) = match u32::from_le_bytes(h[0..4].try_into().unwrap()) {
            0xa1b2_c3d4 => (false, false),
            0xa1b2_3c4d => (false, true),
            0xd4c3_b2a1 => (true, false),
            0x4d3c_b2a1 => (true, true),
            _ => return None,
        };
        let u16_at = |i: usize| {
            let v = u16::from_le_bytes(h[i..i + 2].try_into().unwrap());
            if swapped {
                v.swap_bytes()
            } else {
                v
            }
        };
        let u32_at = |i: usize| {
            let v = u32::from_le_bytes(h[i..i + 4].try_into().unwrap());
            if swapped {
                v.swap_bytes()
            } else {
                v
            }
        };
        if (u16_at(4), u16_at(6)) != (2, 4) || u32_at(20) != LINKTYPE_ETHERNET {
            return None;
        }
        // libpcap's snapshot: a missing or excessive snap length becomes the maximum.
        let snaplen = match u32_at(16) {
            0 => MAX_SNAPLEN,
            s => s.min(MAX_SNAPLEN),
        };
        let (filled_tx, filled) = sync_channel(BUFFERS);
        let (empty, empty_rx) = sync_channel(BUFFERS);
        std::thread::Builder::new().name("nta-pcap-io".into()).spawn(move || fill(file, filled_tx, empty_rx)).ok()?;
        Some(PcapFile {
            buf: Vec::new(),
            start: 0,
            end: 0,
            eof: false,
            filled,
            empty,
            swapped,
            nanos,
            snaplen,
            delivered: 0,
        })
    }

    pub(crate) fn data(&self, range: std::ops::Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    fn u32_at(&self, i: usize) -> u32 {
        let v = u32::from_le_bytes(self.buf[i..i + 4].try_into().unwrap());
        if self.swapped {
            v.swap_bytes()
        } else {
            v
        }
    }

    pub(crate) fn next(&mut self) -> Next {
        loop {
            let avail = self.end - self.start;
            if avail >= RECORD_HEADER {
                let s = self.start;
                let caplen = self.u32_at(s + 8);
                if caplen > self.snaplen {
                    return Next::Handover;
                }
                let len = RECORD_HEADER + caplen as usize;
                if avail >= len {
                    // As libpcap fills `struct timeval`: 32-bit signed fields, microseconds
                    // scaled to nanoseconds (the source asks for nanosecond precision).
                    let secs = self.u32_at(s) as i32 as i64;
                    let frac = self.u32_at(s + 4) as i32 as i64;
                    let nanos = if self.nanos { frac } else { frac * 1000 };
                    let ts = secs as f64 + nanos as f64 * 1e-9;
                    let wire_len = self.u32_at(s + 12);
                    self.start += len;
                    self.delivered += 1;
                    return Next::Frame(ts, wire::frames::ts_ns(secs, nanos), wire_len, s + RECORD_HEADER..s + len);
                }
            }
            if self.eof {
                // Whatever is left is a cut record: libpcap words the error.
                return if avail == 0 { Next::End } else { Next::Handover };
            }
            match self.filled.recv() {
                Ok(Ok((mut next, len))) => {
                    // The unread end of this buffer goes just before the next one's bytes.
                    let from = HEADROOM - avail;
                    next[from..HEADROOM].copy_from_slice(&self.buf[self.start..self.end]);
                    let done = std::mem::replace(&mut self.buf, next);
                    (self.start, self.end) = (from, HEADROOM + len);
                    if !done.is_empty() {
                        let _ = self.empty.try_send(done);
                    }
                }
                Ok(Err(_)) => return Next::Handover,
                Err(_) => self.eof = true,
            }
        }
    }
}

/// The reading thread: fills buffers (new ones, then those handed back) from `file` until its
/// end, a read error (passed on), or the reader is dropped.
fn fill(mut file: File, filled: SyncSender<Filled>, empty: Receiver<Vec<u8>>) {
    let mut made = 0;
    loop {
        let mut buf = if made < BUFFERS {
            made += 1;
            vec![0; HEADROOM + BLOCK]
        } else {
            match empty.recv() {
                Ok(b) => b,
                Err(_) => return,
            }
        };
        let mut len = 0;
        while len < BLOCK {
            match file.read(&mut buf[HEADROOM + len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = filled.send(Err(e));
                    return;
                }
            }
        }
        if len == 0 || filled.send(Ok((buf, len))).is_err() {
            return;
        }
        if len < BLOCK {
            return; // the end of the file: dropping `filled` tells the reader
        }
    }
}
