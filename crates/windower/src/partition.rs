//! Key partitions: how several windowers share the keys of one packet stream.
//!
//! Every (view, key) state lives in exactly one partition, chosen by a fixed hash of the key's
//! address, so each partition's windows are exactly the windows a single windower emits for
//! those keys, and the union over partitions is the single windower's output. Every partition
//! still reads every record: the watermark (per-agent event time), lateness and the ARP
//! neighbourhood join need the whole stream. ARP sender states are therefore kept in every
//! partition (ARP is rare; the join in `level::Level::arp_join` relates keys of any partition),
//! and only the owner emits them.

use crate::hash::{hash_ip, mix64};
use std::net::IpAddr;

/// Partition `index` of `count` (`0 <= index < count`); `Partition::ALL` is the whole key space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Partition {
    pub index: u32,
    pub count: u32,
}

/// Salt so partition choice is independent of the sketches' use of the same address hash.
const SALT: u64 = 0x7061_7274_6974_696f; // "partitio"

impl Partition {
    pub const ALL: Partition = Partition { index: 0, count: 1 };

    /// `None` unless `index < count`.
    pub fn new(index: u32, count: u32) -> Option<Partition> {
        (index < count).then_some(Partition { index, count })
    }

    /// The partition of `count` that owns `key` (stable across processes, versions and hosts).
    #[inline]
    pub fn of(key: &IpAddr, count: u32) -> u32 {
        if count <= 1 {
            return 0;
        }
        (mix64(hash_ip(key) ^ SALT) % count as u64) as u32
    }

    #[inline]
    pub fn owns(&self, key: &IpAddr) -> bool {
        self.count <= 1 || Partition::of(key, self.count) == self.index
    }

    pub fn is_all(&self) -> bool {
        self.count <= 1
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_one_owner_and_the_split_is_even() {
        let count = 4;
        let mut per = [0u32; 4];
        for i in 0..40_000u32 {
            let ip = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            let owners: Vec<u32> = (0..count).filter(|&p| Partition::new(p, count).unwrap().owns(&ip)).collect();
            assert_eq!(owners.len(), 1);
            per[owners[0] as usize] += 1;
        }
        assert!(per.iter().all(|&n| (9_000..11_000).contains(&n)), "{per:?}");
        assert!(Partition::ALL.owns(&"::1".parse().unwrap()));
        assert_eq!(Partition::new(2, 2), None);
    }
}
