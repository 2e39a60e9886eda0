//! Labelling windows from the lab's intervals.
//!
//! A window is labelled by *who* it describes and *when*:
//! * source view: the key is an attacker of an attack interval overlapping the window -> that
//!   class. ARP spoofing forges the sender IP, so its keys are the sender addresses the
//!   attacker's MAC claimed during the interval (read from the packets).
//! * destination view: the key is the target of a flood (syn/udp/icmp) overlapping the window
//!   -> that class.
//! * any other window of a known lab host (benign clients, victims, attackers outside their
//!   attacks) -> Normal.
//! * windows of unknown keys are left out: in spoofed floods thousands of random source
//!   addresses send one packet each, which says nothing either way.

use std::collections::{HashMap, HashSet};
use wire::{PacketRecord, View, WindowRecord};

use super::lab::Interval;

pub const FLOODS: [&str; 3] = ["syn_flood", "udp_flood", "icmp_flood"];

/// What one capture's intervals say about keys.
pub struct CaptureLabels<'a> {
    intervals: Vec<&'a Interval>,
    known: HashSet<String>,
    /// Per ARP-spoof interval index: sender addresses claimed by the attacker's MACs.
    arp_claims: HashMap<usize, HashSet<String>>,
}

impl<'a> CaptureLabels<'a> {
    /// `records`: the capture's packets, of which only ARP frames with a sender MAC and address
    /// are read (for the claims).
    pub fn new(intervals: Vec<&'a Interval>, records: &[PacketRecord]) -> CaptureLabels<'a> {
        let mut known = HashSet::new();
        for iv in &intervals {
            for ip in iv.attacker_ips.iter().chain(&iv.victim_ips).chain(&iv.target_ips) {
                known.insert(ip.clone());
            }
        }
        let mut arp_claims: HashMap<usize, HashSet<String>> = HashMap::new();
        for (i, iv) in intervals.iter().enumerate().filter(|(_, iv)| iv.class == "arp_spoof") {
            let macs: HashSet<String> = iv.attacker_macs.iter().map(|m| m.to_ascii_lowercase()).collect();
            let claims = arp_claims.entry(i).or_default();
            for r in records {
                if let (Some(hw), Some(ip)) = (r.arp_hwsrc, r.arp_psrc) {
                    if macs.contains(&hw.to_string()) && r.timestamp >= iv.start_epoch && r.timestamp <= iv.end_epoch {
                        claims.insert(ip.to_string());
                    }
                }
            }
            known.extend(claims.iter().cloned());
        }
        CaptureLabels { intervals, known, arp_claims }
    }

    /// The class of a window, or `None` when it should stay out of the data set.
    pub fn label(&self, w: &WindowRecord) -> Option<&'a str> {
        let (start, end) = (w.window_start as f64, (w.window_start + w.window_size as i64) as f64);
        for (i, iv) in self.intervals.iter().enumerate() {
            if iv.class == "Normal" || !iv.overlaps(start, end) {
                continue;
            }
            let hit = match w.view {
                View::Source if iv.class == "arp_spoof" => self.arp_claims.get(&i).is_some_and(|c| c.contains(&w.key)),
                View::Source => !iv.spoofed && iv.attacker_ips.contains(&w.key),
                View::Destination => FLOODS.contains(&iv.class.as_str()) && iv.target_ips.contains(&w.key),
            };
            if hit {
                return Some(iv.class.as_str());
            }
        }
        (self.known.contains(&w.key) || self.intervals.iter().any(|iv| iv.all_keys)).then_some("Normal")
    }
}
