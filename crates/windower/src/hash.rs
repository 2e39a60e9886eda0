//! Fixed, seedless 64-bit hashing.
//!
//! Distinct-count sketches ([`crate::sketch::BottomK`]) store item hashes, so the hash must be
//! (a) deterministic across processes and runs, so live, offline and training paths agree and a
//! restarted service rebuilds identical state, and (b) well mixed, because bottom-k estimation
//! assumes hashes uniform on [0, 2^64). std's `RandomState` fails (a); a plain FNV fails (b); a
//! splitmix64 finaliser over the item's words gives both and costs a few nanoseconds.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

/// splitmix64 finaliser: a bijection on u64 with full avalanche.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hash of an address; v4 and v6 never share a value space (different tags).
#[inline]
pub fn hash_ip(ip: &IpAddr) -> u64 {
    match ip {
        IpAddr::V4(a) => mix64(u32::from(*a) as u64 ^ 0x4_0000_0000_0000),
        IpAddr::V6(a) => {
            let v = u128::from(*a);
            mix64((v as u64) ^ mix64((v >> 64) as u64 ^ 0x6_0000_0000_0000))
        }
    }
}

/// Hash of (address, port) and similar tuples: chain the parts through the mixer. Takes the
/// address's [`hash_ip`], which the caller usually needs for another set too.
#[inline]
pub fn hash_ip_port(ip_hash: u64, port: u16) -> u64 {
    mix64(ip_hash ^ (port as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Hash of (address, port, port), from the address's [`hash_ip`].
#[inline]
pub fn hash_ip_port_port(ip_hash: u64, a: u16, b: u16) -> u64 {
    mix64(hash_ip_port(ip_hash, a) ^ (b as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f).rotate_left(17))
}

#[inline]
pub fn hash_mac(mac: &[u8; 6]) -> u64 {
    let mut w = [0u8; 8];
    w[..6].copy_from_slice(mac);
    mix64(u64::from_le_bytes(w) ^ 0x3ac0_0000_0000_0000)
}

/// Strings (DNS names): 8 bytes at a time through the mixer, length folded in.
pub fn hash_str(s: &str) -> u64 {
    let b = s.as_bytes();
    let mut h = 0x5157_0000_0000_0000u64 ^ (b.len() as u64);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        h = mix64(h ^ u64::from_le_bytes(c.try_into().unwrap()));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = mix64(h ^ u64::from_le_bytes(w) ^ 0xff);
    }
    mix64(h)
}

/// Hasher for maps keyed by already-mixed u64 values (sketch contents): identity.
#[derive(Default, Clone, Copy)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Default, Clone, Copy)]
pub struct BuildIdentity;

impl BuildHasher for BuildIdentity {
    type Hasher = IdentityHasher;
    #[inline]
    fn build_hasher(&self) -> IdentityHasher {
        IdentityHasher(0)
    }
}

/// Fast hasher for the per-key maps (keys are addresses): multiply-rotate per word, mixed at
/// the end. Not DoS-resistant, which is acceptable here because keys are bounded per window
/// by memory and an adversary cannot choose our (fixed) internal layout to much effect.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        mix64(self.0)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().unwrap()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // One round for the tail (an IPv4 address is all tail), its length folded in.
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(w) ^ (rest.len() as u64) << 59);
        }
    }
    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.write_u64(n as u64)
    }
    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64)
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(23);
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64)
    }
    #[inline]
    fn write_isize(&mut self, n: isize) {
        self.write_u64(n as u64)
    }
}

#[derive(Default, Clone, Copy)]
pub struct BuildFast;

impl BuildHasher for BuildFast {
    type Hasher = FastHasher;
    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher(0)
    }
}

pub type FastMap<K, V> = std::collections::HashMap<K, V, BuildFast>;
