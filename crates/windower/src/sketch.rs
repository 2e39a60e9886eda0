//! Mergeable sets: [`BottomK`] for unbounded domains (addresses, (address, port) pairs, DNS
//! names, MACs) and [`PortSet`] for the 16-bit port domain.
//!
//! `BottomK` is a bottom-k ("KMV") sketch over 64-bit item hashes that is *exact* while a set
//! holds at most `cap` distinct items (it stores them all) and keeps the `cap` smallest hashes
//! beyond that. Two properties make the cascade exact even for sketches:
//!
//! * the sketch of a union is a function of the union only: merging the sketches of the parts
//!   gives bit-for-bit the sketch built directly from all items (so 30 s / 180 s windows built
//!   from 5 s states equal windows computed from the raw packets, sketch or not);
//! * a map variant keeps, for every retained item, the complete merged value (if an item is
//!   among the `cap` smallest hashes of the union, it is among them in every part, so no part
//!   dropped it). Per-connection first/last times and flags therefore stay exact for the
//!   sampled connections.
//!
//! Error above the cap: the distinct count estimate `(k-1) / U_(k)` (U_(k) the k-th smallest
//! hash scaled to [0,1)) is unbiased with relative standard error below `1/sqrt(k-2)` (1.6 %
//! for the default k = 4096). Fractions taken over the retained items (e.g. the share of
//! connections that are half-open) are those of a uniform random sample of k items, absolute
//! standard error `sqrt(p(1-p)/k)` (at most 0.8 % for k = 4096). Below the cap, results are
//! exact up to 64-bit hash collisions (probability < n^2 / 2^65, about 5e-13 for n = 4096).

use crate::hash::BuildIdentity;
use std::collections::{BTreeMap, HashMap};

/// A value attached to a set member, merged when the same member is seen in several parts.
pub trait Cell: Default {
    fn merge(&mut self, other: Self);
}

impl Cell for () {
    fn merge(&mut self, _other: ()) {}
}

/// Up to this many members are kept in a plain vector (no hashing, one or two small
/// allocations): most keys of most windows touch only a handful of peers, and a scan of 16
/// hashes costs less than a hash table's probe (measured: 2 % fewer instructions per record).
const SMALL: usize = 16;

#[derive(Debug, Clone)]
pub enum BottomK<V> {
    /// One member, inline: most sets of most keys (a source's peers and connections, a
    /// destination's sources) hold one, and a flood makes a million such keys.
    One(u64, V),
    /// Empty, or 2..=[`SMALL`] members.
    Small(Vec<(u64, V)>),
    Exact(HashMap<u64, V, BuildIdentity>),
    /// Exactly `cap` smallest hashes of the set.
    Sample(BTreeMap<u64, V>),
}

impl<V> Default for BottomK<V> {
    fn default() -> Self {
        BottomK::Small(Vec::new())
    }
}

impl<V: Cell> BottomK<V> {
    /// Finds or creates the member `h` and lets `f` update its value. `cap` >= 1.
    #[inline]
    pub fn upsert(&mut self, h: u64, cap: usize, f: impl FnOnce(&mut V)) {
        // The common cases inline at the call: the member is the one inline, or in the small
        // list; the rest (creating members, changing representation) is out of line.
        match self {
            BottomK::One(x, val) if *x == h => return f(val),
            BottomK::Small(v) => {
                if let Some(e) = v.iter_mut().find(|e| e.0 == h) {
                    return f(&mut e.1);
                }
            }
            // Above the threshold (the largest retained hash): not among the `cap` smallest,
            // now or ever (a flood's target sees this for nearly every packet).
            BottomK::Sample(m) if m.last_key_value().is_some_and(|(&max, _)| h > max) => return,
            _ => {}
        }
        self.upsert_slow(h, cap, f)
    }

    /// [`BottomK::upsert`] past its common cases: `h` is not the inline member nor in the
    /// small list, and not above a sample's threshold.
    #[inline(never)]
    fn upsert_slow(&mut self, h: u64, cap: usize, f: impl FnOnce(&mut V)) {
        match self {
            BottomK::One(..) => {
                let BottomK::One(x, val) = std::mem::take(self) else { unreachable!() };
                // Room for half the small range at once: growing 1 -> 4 -> 8 is two more
                // allocations for the many sets that reach a few members.
                let mut v = Vec::with_capacity((SMALL / 2).min(cap.max(2)));
                v.push((x, val));
                *self = BottomK::Small(v);
                self.upsert(h, cap, f)
            }
            BottomK::Small(v) if v.is_empty() => {
                let mut val = V::default();
                f(&mut val);
                *self = BottomK::One(h, val);
            }
            BottomK::Small(v) => {
                if v.len() < SMALL.min(cap) {
                    let mut val = V::default();
                    f(&mut val);
                    v.push((h, val));
                    return;
                }
                let items = std::mem::take(v);
                *self = if items.len() >= cap {
                    BottomK::Sample(items.into_iter().collect())
                } else {
                    let mut m = HashMap::with_capacity_and_hasher(SMALL * 2, BuildIdentity);
                    m.extend(items);
                    BottomK::Exact(m)
                };
                self.upsert(h, cap, f)
            }
            BottomK::Exact(m) => {
                if let Some(val) = m.get_mut(&h) {
                    f(val);
                    return;
                }
                if m.len() < cap {
                    let mut val = V::default();
                    f(&mut val);
                    m.insert(h, val);
                    return;
                }
                let items = std::mem::take(m);
                *self = BottomK::Sample(items.into_iter().collect());
                self.upsert(h, cap, f)
            }
            BottomK::Sample(m) => {
                // At or below the threshold (the largest retained hash; `upsert` turned away
                // anything above it, which is not among the `cap` smallest and never will be:
                // the threshold only decreases).
                if let Some(val) = m.get_mut(&h) {
                    f(val);
                    return;
                }
                let mut val = V::default();
                f(&mut val);
                m.insert(h, val);
                while m.len() > cap {
                    m.pop_last();
                }
            }
        }
    }

    /// Union (values merged). The result equals the sketch built from all items directly.
    pub fn merge(&mut self, other: BottomK<V>, cap: usize) {
        if self.is_exact() && other.is_exact() {
            if self.stored() < other.stored() {
                // Insert the smaller side into the larger one.
                let mine = std::mem::replace(self, other);
                return self.merge(mine, cap);
            }
            let mut put = |h: u64, v: V| {
                let mut v = Some(v);
                self.upsert(h, cap, |cur| cur.merge(v.take().unwrap()));
            };
            match other {
                BottomK::One(h, x) => put(h, x),
                BottomK::Small(v) => v.into_iter().for_each(|(h, x)| put(h, x)),
                BottomK::Exact(m) => m.into_iter().for_each(|(h, x)| put(h, x)),
                BottomK::Sample(_) => unreachable!(),
            }
            return;
        }
        // A sampled side means the union exceeds the cap: the result is the `cap` smallest
        // hashes of the union (inserting into a sample one by one would also work, but an
        // exact side must not stay "exact" when the other side had more members).
        let mut m = std::mem::take(self).into_btree();
        for (h, v) in other.into_btree() {
            match m.entry(h) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(v);
                }
                std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(v),
            }
        }
        while m.len() > cap {
            m.pop_last();
        }
        *self = BottomK::Sample(m);
    }

    fn into_btree(self) -> BTreeMap<u64, V> {
        match self {
            BottomK::One(h, v) => BTreeMap::from([(h, v)]),
            BottomK::Small(v) => v.into_iter().collect(),
            BottomK::Exact(m) => m.into_iter().collect(),
            BottomK::Sample(m) => m,
        }
    }

    /// Members actually stored (equals the distinct count while exact).
    pub fn stored(&self) -> usize {
        match self {
            BottomK::One(..) => 1,
            BottomK::Small(v) => v.len(),
            BottomK::Exact(m) => m.len(),
            BottomK::Sample(m) => m.len(),
        }
    }

    pub fn is_exact(&self) -> bool {
        !matches!(self, BottomK::Sample(_))
    }

    /// Distinct count: exact below the cap, the KMV estimate above it.
    pub fn count(&self) -> f64 {
        match self {
            BottomK::Sample(m) => {
                let k = m.len() as f64;
                let max = *m.last_key_value().unwrap().0 as f64;
                // U_(k) = (max + 1) / 2^64
                (k - 1.0) / ((max + 1.0) / 18_446_744_073_709_551_616.0)
            }
            _ => self.stored() as f64,
        }
    }

    /// Members satisfying `pred`: exact below the cap; above it, the sample share times the
    /// estimated total.
    pub fn count_where(&self, mut pred: impl FnMut(&V) -> bool) -> f64 {
        self.estimate(self.fold_values(0usize, |n, v| n + pred(v) as usize))
    }

    /// `n` of the stored members scaled to the whole set: `n` itself below the cap; above it,
    /// the sample share times the estimated total.
    pub fn estimate(&self, n: usize) -> f64 {
        let n = n as f64;
        match self {
            BottomK::Sample(m) => n / m.len() as f64 * self.count(),
            _ => n,
        }
    }

    /// Folds over the stored values (no boxed iterator: this runs for every window).
    pub fn fold_values<A>(&self, init: A, mut f: impl FnMut(A, &V) -> A) -> A {
        match self {
            BottomK::One(_, v) => f(init, v),
            BottomK::Small(v) => v.iter().map(|e| &e.1).fold(init, f),
            BottomK::Exact(m) => m.values().fold(init, f),
            BottomK::Sample(m) => m.values().fold(init, f),
        }
    }

    /// Calls `f` with every stored member's hash (no iterator to allocate).
    pub fn for_each_hash(&self, mut f: impl FnMut(u64)) {
        match self {
            BottomK::One(h, _) => f(*h),
            BottomK::Small(v) => v.iter().for_each(|e| f(e.0)),
            BottomK::Exact(m) => m.keys().for_each(|&h| f(h)),
            BottomK::Sample(m) => m.keys().for_each(|&h| f(h)),
        }
    }
}

/// Remote-access ports (as the original system counted them): telnet, ssh, rlogin, RDP,
/// VNC and X11 displays 0-63.
pub fn is_remote_access_port(p: u16) -> bool {
    matches!(p, 22 | 23 | 513 | 3389 | 5900 | 6000..=6063)
}

/// Exact set of ports: inline up to [`PORTS_INLINE`] ports (no allocation: a spoofed source's
/// sets hold one port each), then a short vector, then a 8 KiB bitmap (the domain is only
/// 65 536).
#[derive(Debug, Clone)]
pub enum PortSet {
    Inline(u8, [u16; PORTS_INLINE]),
    Small(Vec<u16>),
    Bits(Box<Bitmap>),
}

/// All 65 536 ports as bits, with a summary of which 64-port words are non-empty: most
/// bitmaps hold a few dozen to a few hundred ports, and merging, counting or listing them
/// visits only their words, not all 1 024.
#[derive(Debug, Clone)]
pub struct Bitmap {
    words: [u64; 1024],
    /// Bit w set when `words[w]` is not zero (words only ever gain bits).
    used: [u64; 16],
    len: u32,
}

impl Bitmap {
    fn new() -> Box<Bitmap> {
        Box::new(Bitmap { words: [0; 1024], used: [0; 16], len: 0 })
    }

    #[inline]
    fn contains(&self, p: u16) -> bool {
        self.words[p as usize >> 6] & (1 << (p & 63)) != 0
    }

    #[inline]
    fn insert(&mut self, p: u16) {
        let (w, m) = (p as usize >> 6, 1u64 << (p & 63));
        if self.words[w] & m == 0 {
            self.words[w] |= m;
            self.used[w >> 6] |= 1 << (w & 63);
            self.len += 1;
        }
    }

    /// Indices of the non-empty words, ascending.
    fn used_words(&self) -> impl Iterator<Item = usize> + '_ {
        self.used.iter().enumerate().flat_map(|(i, &u)| {
            let mut u = u;
            std::iter::from_fn(move || {
                (u != 0).then(|| {
                    let b = u.trailing_zeros() as usize;
                    u &= u - 1;
                    i * 64 + b
                })
            })
        })
    }

    fn union(&mut self, o: &Bitmap) {
        for w in o.used_words() {
            let y = o.words[w];
            self.len += (y & !self.words[w]).count_ones();
            self.words[w] |= y;
        }
        for (u, ou) in self.used.iter_mut().zip(o.used.iter()) {
            *u |= ou;
        }
    }
}

/// Ports held in the enum itself (as many as fit beside a vector's size).
pub const PORTS_INLINE: usize = 11;

/// Linear search (8 ports per compare) beats hashing up to here; a set that outgrows it
/// becomes the bitmap. Small sets grow only by merges past the 5 s level, and an 8 KiB bitmap
/// for a few dozen ports cost more to create than the longer scans (a client's 30 s set of
/// UDP destination ports is typically 30 to 60).
const PORTS_SMALL: usize = 64;

/// `p` among the first `n` ports of `a`: every slot compared at once, then masked, which beats
/// a search loop on the hottest path of a record. On x86-64 (where SSE2 is always present)
/// two 8-lane compares cover the eleven slots (lanes 0..8 and 3..11); elsewhere the compiler
/// vectorises the portable form below as it can.
#[cfg(target_arch = "x86_64")]
#[inline]
fn inline_contains(a: &[u16; PORTS_INLINE], n: usize, p: u16) -> bool {
    use std::arch::x86_64::{_mm_cmpeq_epi16, _mm_movemask_epi8, _mm_set1_epi16, _mm_set_epi16};
    let v = |i: usize| a[i] as i16;
    // SAFETY: these intrinsics only require SSE2, which every x86-64 processor has (it is in
    // the target's baseline features); they take values, no pointers.
    let (lo, hi) = unsafe {
        let lo = _mm_set_epi16(v(7), v(6), v(5), v(4), v(3), v(2), v(1), v(0));
        let hi = _mm_set_epi16(v(10), v(9), v(8), v(7), v(6), v(5), v(4), v(3));
        let needle = _mm_set1_epi16(p as i16);
        (_mm_movemask_epi8(_mm_cmpeq_epi16(lo, needle)), _mm_movemask_epi8(_mm_cmpeq_epi16(hi, needle)))
    };
    // Two mask bits per lane; lane i of `hi` is slot 3 + i.
    (lo as u32 | (hi as u32) << 6) & ((1u32 << (2 * n)) - 1) != 0
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn inline_contains(a: &[u16; PORTS_INLINE], n: usize, p: u16) -> bool {
    let mut hits = 0u32;
    for (i, &x) in a.iter().enumerate() {
        hits |= ((x == p) as u32) << i;
    }
    hits & ((1u32 << n) - 1) != 0
}

/// `p` in `v` (at most [`PORTS_SMALL`] ports), compared as [`inline_contains`] does.
#[inline]
fn small_contains(v: &[u16], p: u16) -> bool {
    let mut chunks = v.chunks_exact(8);
    let found = chunks.by_ref().any(|c| c.iter().fold(false, |f, &x| f | (x == p)));
    found || chunks.remainder().contains(&p)
}

impl Default for PortSet {
    fn default() -> Self {
        PortSet::Inline(0, [0; PORTS_INLINE])
    }
}

impl PortSet {
    /// The members of a set not (yet) a bitmap, in insertion order.
    #[inline]
    fn listed(&self) -> Option<&[u16]> {
        match self {
            PortSet::Inline(n, a) => Some(&a[..*n as usize]),
            PortSet::Small(v) => Some(v),
            PortSet::Bits(_) => None,
        }
    }

    #[inline]
    pub fn insert(&mut self, p: u16) {
        // The common cases inline at the call (a member already there, or room for one more
        // inline); growing into a vector or the bitmap is the out-of-line rest.
        if let PortSet::Inline(n, a) = self {
            let k = *n as usize;
            if inline_contains(a, k, p) {
                return;
            }
            if k < PORTS_INLINE {
                a[k] = p;
                *n += 1;
                return;
            }
        }
        self.insert_slow(p)
    }

    /// [`PortSet::insert`] past its common cases: an inline set here is full without `p`.
    #[inline(never)]
    fn insert_slow(&mut self, p: u16) {
        match self {
            PortSet::Inline(_, a) => {
                let mut v = Vec::with_capacity(PORTS_SMALL / 2);
                v.extend_from_slice(a);
                *self = PortSet::Small(v);
                self.insert(p)
            }
            PortSet::Small(v) => {
                if small_contains(v, p) {
                    return;
                }
                if v.len() < PORTS_SMALL {
                    v.push(p);
                    return;
                }
                let mut bits = Bitmap::new();
                v.iter().for_each(|&q| bits.insert(q));
                bits.insert(p);
                *self = PortSet::Bits(bits);
            }
            PortSet::Bits(b) => b.insert(p),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            PortSet::Bits(b) => b.len as usize,
            _ => self.listed().map_or(0, <[u16]>::len),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Members of `self` not in `other` (all of them when `other` is None).
    pub fn count_missing_from(&self, other: Option<&PortSet>) -> usize {
        let Some(o) = other else { return self.len() };
        match (self, self.listed(), o) {
            (_, Some(v), _) => v.iter().filter(|&&p| !o.contains(p)).count(),
            (PortSet::Bits(b), None, PortSet::Bits(ob)) => {
                b.used_words().map(|w| (b.words[w] & !ob.words[w]).count_ones() as usize).sum()
            }
            (_, None, _) => self.len() - o.listed().unwrap_or(&[]).iter().filter(|&&p| self.contains(p)).count(),
        }
    }

    pub fn contains(&self, p: u16) -> bool {
        match self {
            PortSet::Bits(b) => b.contains(p),
            PortSet::Inline(n, a) => inline_contains(a, *n as usize, p),
            PortSet::Small(v) => small_contains(v, p),
        }
    }

    pub fn merge(&mut self, other: &PortSet) {
        match other {
            PortSet::Bits(ob) => {
                if let Some(v) = self.listed() {
                    let mine = v.to_vec();
                    *self = other.clone();
                    mine.into_iter().for_each(|p| self.insert(p));
                    return;
                }
                if let PortSet::Bits(b) = self {
                    b.union(ob);
                }
            }
            _ => other.listed().unwrap_or(&[]).iter().for_each(|&p| self.insert(p)),
        }
    }

    /// Ports in ascending order.
    pub fn sorted(&self) -> Vec<u16> {
        match self {
            PortSet::Bits(b) => {
                let mut out = Vec::with_capacity(b.len as usize);
                for i in b.used_words() {
                    let mut w = b.words[i];
                    while w != 0 {
                        let t = w.trailing_zeros();
                        out.push((i * 64) as u16 + t as u16);
                        w &= w - 1;
                    }
                }
                out
            }
            _ => {
                let mut s = self.listed().unwrap_or(&[]).to_vec();
                s.sort_unstable();
                s
            }
        }
    }

    /// Number of members p with p + 1 also a member, without allocating (every window asks).
    pub fn sequential_pairs(&self) -> usize {
        match self {
            PortSet::Bits(b) => {
                // Pairs inside each word, and across into the next word (its bit 0).
                b.used_words()
                    .map(|i| {
                        let w = b.words[i];
                        let across = w >> 63 == 1 && b.words.get(i + 1).is_some_and(|n| n & 1 == 1);
                        (w & (w >> 1)).count_ones() as usize + across as usize
                    })
                    .sum()
            }
            _ => {
                let v = self.listed().unwrap_or(&[]);
                let mut a = [0u16; PORTS_SMALL];
                let a = &mut a[..v.len()];
                a.copy_from_slice(v);
                a.sort_unstable();
                sequential_pairs(a)
            }
        }
    }

    /// Members that are not remote-access ports.
    pub fn count_not_remote_access(&self) -> usize {
        match self.listed() {
            Some(v) => v.iter().filter(|&&p| !is_remote_access_port(p)).count(),
            None => {
                let ra = [22u16, 23, 513, 3389, 5900].into_iter().chain(6000..=6063);
                self.len() - ra.filter(|&p| self.contains(p)).count()
            }
        }
    }
}

/// Number of ports p of the sorted, duplicate-free list with p + 1 also present.
pub fn sequential_pairs(sorted: &[u16]) -> usize {
    sorted.windows(2).filter(|w| w[1] as u32 == w[0] as u32 + 1).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::mix64;

    #[test]
    fn bottomk_is_exact_below_cap_and_merge_equals_direct() {
        let cap = 64;
        let mut direct = BottomK::<()>::default();
        let mut a = BottomK::<()>::default();
        let mut b = BottomK::<()>::default();
        for i in 0..1000u64 {
            let h = mix64(i);
            direct.upsert(h, cap, |_| {});
            if i % 3 == 0 {
                a.upsert(h, cap, |_| {})
            } else {
                b.upsert(h, cap, |_| {})
            }
            if i == 40 {
                assert_eq!(direct.count(), 41.0);
            }
        }
        a.merge(b, cap);
        let hashes = |s: &BottomK<()>| {
            let mut v = Vec::new();
            s.for_each_hash(|h| v.push(h));
            v
        };
        let (x, y) = (hashes(&a), hashes(&direct));
        assert_eq!(x, y);
        let est = direct.count();
        assert!((est - 1000.0).abs() < 1000.0 * 4.0 / (62f64).sqrt(), "{est}");
    }

    /// Every representation (inline, vector, bitmap) against every other gives the set
    /// operations of plain sets.
    #[test]
    fn portset_representations_agree() {
        use std::collections::BTreeSet;
        let sizes = [0usize, 1, PORTS_INLINE, PORTS_INLINE + 1, PORTS_SMALL + 1, 300];
        let build = |n: usize, off: u16| {
            let mut s = PortSet::default();
            let mut b = BTreeSet::new();
            for i in 0..n as u16 {
                let p = off.wrapping_add(i.wrapping_mul(7));
                s.insert(p);
                s.insert(p);
                b.insert(p);
            }
            (s, b)
        };
        for &n in &sizes {
            for &m in &sizes {
                let (a, ab) = build(n, 20);
                let (c, cb) = build(m, 41);
                assert_eq!(a.len(), ab.len());
                assert_eq!(a.sorted(), ab.iter().copied().collect::<Vec<_>>());
                assert_eq!(a.count_missing_from(Some(&c)), ab.difference(&cb).count(), "{n} vs {m}");
                assert_eq!(a.count_missing_from(None), ab.len());
                let mut u = a.clone();
                u.merge(&c);
                assert_eq!(u.sorted(), ab.union(&cb).copied().collect::<Vec<_>>(), "{n} + {m}");
                assert_eq!(u.len(), ab.union(&cb).count());
                let seq = ab.iter().filter(|&&p| p < u16::MAX && ab.contains(&(p + 1))).count();
                assert_eq!(u.sequential_pairs(), sequential_pairs(&u.sorted()), "{n} + {m}");
                assert_eq!(a.sequential_pairs(), seq, "{n}");
                let ra = ab.iter().filter(|&&p| !is_remote_access_port(p)).count();
                assert_eq!(a.count_not_remote_access(), ra);
            }
        }
    }

    #[test]
    fn portset_switches_to_bitmap() {
        let mut s = PortSet::default();
        for p in (0..200u16).chain(0..10) {
            s.insert(p);
        }
        assert_eq!(s.len(), 200);
        assert_eq!(sequential_pairs(&s.sorted()), 199);
        assert_eq!(s.sequential_pairs(), 199);
        // Pairs across the bitmap's 64-bit words: 63-64 and 127-128.
        let mut w = PortSet::default();
        (60..70u16).chain(127..129).chain(300..340).for_each(|p| w.insert(p));
        assert_eq!(w.sequential_pairs(), 9 + 1 + 39);
        assert_eq!(s.count_not_remote_access(), 198);
    }
}
