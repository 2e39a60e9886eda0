//! Frame filters: `--host` and `--port` compiled to BPF (what libpcap, the reference
//! dissector for BPF, selects), `--bpf` as given; all ANDed.
//!
//! `--host IP` selects frames whose outermost IP header (IPv4 or IPv6 as the address is, also
//! under one VLAN tag) has it as source or destination; `--port N` frames whose TCP or UDP
//! header right after that IP header has it as source or destination port (IPv4 fragments
//! but the first have none; nor do ports quoted inside ICMP errors).
//!
//! A compiled program is not `Send` (raw pointers into libpcap), so filters are kept as text,
//! checked once up front, and compiled per link type where they run, in synchronous code.

use std::net::IpAddr;

/// The filters of an export.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Host and port terms: as they are, and with the VLAN-tagged case too (for the link
    /// types that have VLAN tags; libpcap refuses `vlan` on the others, e.g. Linux cooked).
    addressing: Option<(String, String)>,
    /// The user's BPF expression.
    bpf: Option<String>,
}

impl Filters {
    /// Checks that every expression compiles (on Ethernet: syntax errors are errors before
    /// anything is read).
    pub fn new(host: Option<IpAddr>, port: Option<u16>, bpf: Option<&str>) -> Result<Filters, String> {
        let mut terms = Vec::new();
        if let Some(h) = host {
            terms.push(match h {
                IpAddr::V4(a) => format!("ip host {a}"),
                IpAddr::V6(a) => format!("ip6 host {a}"),
            });
        }
        if let Some(p) = port {
            terms.push(format!("(tcp port {p} or udp port {p})"));
        }
        // `vlan` shifts the offsets of everything after it in an expression, so the tagged
        // case repeats the terms after it instead of sharing them.
        let addressing = (!terms.is_empty()).then(|| {
            let t = terms.join(" and ");
            (t.clone(), format!("({t}) or (vlan and {t})"))
        });
        let bpf = bpf.map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let f = Filters { addressing, bpf };
        // On Ethernet: syntax errors are errors before anything is read.
        for expr in f.addressing.iter().map(|a| &a.1).chain(&f.bpf) {
            compile(1, expr).map_err(|e| format!("bad BPF filter {expr:?}: {e}"))?;
        }
        Ok(f)
    }

    /// The programs for link type `dlt`.
    fn programs(&self, dlt: i32) -> Result<Vec<pcap::BpfProgram>, String> {
        let mut out = Vec::new();
        if let Some((plain, tagged)) = &self.addressing {
            let p = compile(dlt, tagged).or_else(|_| compile(dlt, plain));
            out.push(p.map_err(|e| format!("BPF filter {plain:?} on link type {dlt}: {e}"))?);
        }
        if let Some(expr) = &self.bpf {
            out.push(compile(dlt, expr).map_err(|e| format!("BPF filter {expr:?} on link type {dlt}: {e}"))?);
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.addressing.is_none() && self.bpf.is_none()
    }

    /// Which of `frames` (bytes and wire length) of link type `dlt` pass every filter.
    pub fn apply(&self, dlt: i32, frames: &[(&[u8], u32)]) -> Result<Vec<bool>, String> {
        let mut keep = vec![true; frames.len()];
        for prog in self.programs(dlt)? {
            for (k, (data, wire_len)) in keep.iter_mut().zip(frames) {
                *k = *k && matches(&prog, data, *wire_len);
            }
        }
        Ok(keep)
    }
}

/// `pcap_pkthdr` as libpcap declares it.
#[repr(C)]
struct PktHdr {
    ts: libc::timeval,
    caplen: u32,
    len: u32,
}

extern "C" {
    fn pcap_offline_filter(prog: *const std::ffi::c_void, h: *const PktHdr, pkt: *const u8) -> std::ffi::c_int;
}

/// Whether `prog` accepts the frame. `BpfProgram::filter` passes the captured length as the
/// wire length, so `len`, `greater` and `less` would judge a cut frame by its cut size;
/// libpcap's own call with the real header judges it as tcpdump does.
fn matches(prog: &pcap::BpfProgram, data: &[u8], wire_len: u32) -> bool {
    let h = PktHdr { ts: libc::timeval { tv_sec: 0, tv_usec: 0 }, caplen: data.len() as u32, len: wire_len };
    // SAFETY: `BpfProgram` is `repr(transparent)` over libpcap's `struct bpf_program`, which
    // stays alive for the call; the header's caplen is the length of `data`, which libpcap's
    // filter machine never reads beyond.
    unsafe { pcap_offline_filter(prog as *const pcap::BpfProgram as *const std::ffi::c_void, &h, data.as_ptr()) > 0 }
}

fn compile(dlt: i32, expr: &str) -> Result<pcap::BpfProgram, pcap::Error> {
    pcap::Capture::dead(pcap::Linktype(dlt))?.compile(expr, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_are_caught_up_front() {
        assert!(Filters::new(None, None, Some("tcp and")).unwrap_err().contains("tcp and"));
        assert!(Filters::new(None, None, Some("host 10.0.0.999")).is_err());
        let f = Filters::new(Some("10.0.0.1".parse().unwrap()), Some(80), Some("tcp")).unwrap();
        assert!(!f.is_empty());
        assert!(Filters::new(None, None, Some("  ")).unwrap().is_empty());
    }
}
