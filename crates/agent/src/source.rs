//! Where frames come from: a capture file (pcap, micro- or nanosecond, or pcapng) or a live
//! interface, both through libpcap so that both paths see the same link types and timestamps;
//! classic pcap files of Ethernet frames are read faster by [`crate::pcapfile`], which hands
//! over to libpcap for anything it cannot read exactly as libpcap does.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One frame as libpcap hands it over.
pub struct RawFrame<'a> {
    /// Epoch seconds (nanosecond precision where the source has it), derived from `ts_ns`.
    pub timestamp: f64,
    /// Exact capture time in epoch nanoseconds (what the frames kept for pcap exports carry;
    /// an f64 of epoch seconds cannot hold nanoseconds).
    pub ts_ns: i64,
    /// Length on the wire.
    pub wire_len: u32,
    /// Captured bytes (at most the snap length).
    pub data: &'a [u8],
}

/// Outcome of asking a source for its next frame.
pub enum Next<'a> {
    Frame(RawFrame<'a>),
    /// Live capture: no frame within the read timeout (lets the caller flush on time).
    Idle,
    /// File fully read.
    End,
}

pub struct Source {
    inner: Inner,
    /// Data link type (DLT_*) of the capture.
    pub linktype: i32,
    /// Interface name (live) or file name (offline) recorded in each record.
    pub interface: Arc<str>,
}

enum Inner {
    File(pcap::Capture<pcap::Offline>),
    Pcap(crate::pcapfile::PcapFile, PathBuf),
    Live(pcap::Capture<pcap::Active>),
}

/// Options of a live capture.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub interface: String,
    pub bpf: Option<String>,
    pub snaplen: i32,
    pub promisc: bool,
    /// Kernel buffer size in bytes.
    pub buffer_size: i32,
}

impl Source {
    pub fn open_file(path: &Path) -> Result<Source> {
        let mut source = Source::open_file_with_libpcap(path)?;
        // Opened by libpcap first: its verdict on the file (and its error) is the one given.
        if let Some(f) = crate::pcapfile::PcapFile::open(path) {
            source.inner = Inner::Pcap(f, path.to_path_buf());
        }
        Ok(source)
    }

    /// A capture file read by libpcap alone: the reference the faster reader of
    /// [`Source::open_file`] is compared with (tests, `nta bench decode`).
    pub fn open_file_with_libpcap(path: &Path) -> Result<Source> {
        let cap = pcap::Capture::from_file_with_precision(path, pcap::Precision::Nano)
            .with_context(|| format!("cannot open capture {}", path.display()))?;
        let linktype = cap.get_datalink().0;
        let interface: Arc<str> =
            Arc::from(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        Ok(Source { inner: Inner::File(cap), linktype, interface })
    }

    /// Continues the read of `path` with libpcap after the `delivered` frames already handed out.
    fn hand_over(&mut self, path: &Path, delivered: u64) -> Result<()> {
        let mut cap = pcap::Capture::from_file_with_precision(path, pcap::Precision::Nano)
            .with_context(|| format!("cannot open capture {}", path.display()))?;
        for _ in 0..delivered {
            cap.next_packet().context("reading capture")?;
        }
        self.inner = Inner::File(cap);
        Ok(())
    }

    pub fn open_live(opts: &LiveOptions) -> Result<Source> {
        let mut cap = pcap::Capture::from_device(opts.interface.as_str())
            .with_context(|| format!("no capture device {}", opts.interface))?
            .promisc(opts.promisc)
            .snaplen(opts.snaplen)
            .buffer_size(opts.buffer_size)
            .precision(pcap::Precision::Nano)
            .immediate_mode(true)
            // A short read timeout lets the batcher flush partial batches on time.
            .timeout(100)
            .open()
            .with_context(|| format!("cannot capture on {} (are you root / CAP_NET_RAW?)", opts.interface))?;
        if let Some(bpf) = &opts.bpf {
            cap.filter(bpf, true).with_context(|| format!("bad BPF filter {bpf:?}"))?;
        }
        let linktype = cap.get_datalink().0;
        Ok(Source { inner: Inner::Live(cap), linktype, interface: Arc::from(opts.interface.as_str()) })
    }

    /// For a live capture, a handle that makes a read waiting for frames return at once
    /// (libpcap's breakloop; the read then reports the end of input). In immediate mode libpcap
    /// may wait for the next frame despite the read timeout, so on a quiet interface a stop
    /// request would otherwise go unseen. Files never wait: `None`.
    pub fn waker(&mut self) -> Option<pcap::BreakLoop> {
        match &mut self.inner {
            Inner::Live(c) => Some(c.breakloop_handle()),
            Inner::File(_) | Inner::Pcap(..) => None,
        }
    }

    pub fn is_live(&self) -> bool {
        matches!(self.inner, Inner::Live(_))
    }

    pub fn next_frame(&mut self) -> Result<Next<'_>> {
        if let Inner::Pcap(f, path) = &mut self.inner {
            match f.next() {
                crate::pcapfile::Next::Frame(timestamp, ts_ns, wire_len, range) => {
                    let Inner::Pcap(f, _) = &self.inner else { unreachable!() };
                    return Ok(Next::Frame(RawFrame { timestamp, ts_ns, wire_len, data: f.data(range) }));
                }
                crate::pcapfile::Next::End => return Ok(Next::End),
                crate::pcapfile::Next::Handover => {
                    let (path, delivered) = (path.clone(), f.delivered);
                    self.hand_over(&path, delivered)?;
                }
            }
        }
        let res = match &mut self.inner {
            Inner::File(c) => c.next_packet(),
            Inner::Live(c) => c.next_packet(),
            Inner::Pcap(..) => unreachable!("handed over to libpcap above"),
        };
        match res {
            Ok(p) => {
                // With Precision::Nano libpcap puts nanoseconds in tv_usec.
                let ts = p.header.ts.tv_sec as f64 + p.header.ts.tv_usec as f64 * 1e-9;
                // time_t and suseconds_t are i64 on 64-bit Linux, not on every target.
                #[allow(clippy::unnecessary_cast)]
                let ts_ns = wire::frames::ts_ns(p.header.ts.tv_sec as i64, p.header.ts.tv_usec as i64);
                Ok(Next::Frame(RawFrame { timestamp: ts, ts_ns, wire_len: p.header.len, data: p.data }))
            }
            Err(pcap::Error::TimeoutExpired) => Ok(Next::Idle),
            Err(pcap::Error::NoMorePackets) => Ok(Next::End),
            Err(e) => Err(anyhow::Error::new(e).context("reading capture")),
        }
    }

    /// Kernel counters of a live capture: (received, dropped by kernel, dropped by interface).
    pub fn stats(&mut self) -> Option<(u32, u32, u32)> {
        match &mut self.inner {
            Inner::Live(c) => c.stats().ok().map(|s| (s.received, s.dropped, s.if_dropped)),
            Inner::File(_) | Inner::Pcap(..) => None,
        }
    }
}
