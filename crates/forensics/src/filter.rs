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
    /// Host and port terms, VLAN handled.
    addressing: Option<String>,
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
            format!("({t}) or (vlan and {t})")
        });
        let bpf = bpf.map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let f = Filters { addressing, bpf };
        for expr in f.exprs() {
            compile(1, expr).map_err(|e| format!("bad BPF filter {expr:?}: {e}"))?;
        }
        Ok(f)
    }

    fn exprs(&self) -> impl Iterator<Item = &str> {
        self.addressing.iter().chain(self.bpf.iter()).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.addressing.is_none() && self.bpf.is_none()
    }

    /// Keeps the frames of link type `dlt` that pass every filter; `keep(i)` tells which of
    /// `frames` pass.
    pub fn apply(&self, dlt: i32, frames: &[&[u8]]) -> Result<Vec<bool>, String> {
        let mut keep = vec![true; frames.len()];
        for expr in self.exprs() {
            let prog = compile(dlt, expr).map_err(|e| format!("BPF filter {expr:?} on link type {dlt}: {e}"))?;
            for (k, f) in keep.iter_mut().zip(frames) {
                *k = *k && prog.filter(f);
            }
        }
        Ok(keep)
    }
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
