//! Per-name DNS measures (the original system's DNS feature group, see `FEATURES.md`),
//! computed once per query and then only summed, so they merge exactly across windows.

use std::sync::LazyLock;

/// What the DNS features need of one query name, from one pass over its bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NameMeasures {
    /// Shannon entropy (bits) of the name's character frequencies (see [`entropy`]).
    pub entropy: f64,
    /// The original's "subdomain length": with more than two labels, the length of the first
    /// n-2 labels joined by dots (what precedes the registered domain); otherwise the length
    /// of the first label. Characters, not bytes.
    pub subdomain_length: u64,
    /// Number of labels: dots + 1, and 0 for the root (empty) name (the original said 1).
    pub labels: u64,
}

/// `c * log2(c)` for the counts an ASCII name of up to 255 bytes can have (DNS names are at
/// most 253 characters): a table lookup instead of a logarithm per distinct character.
static C_LOG2_C: LazyLock<[f64; 256]> = LazyLock::new(|| std::array::from_fn(|c| c_log2_c(c as u32)));

fn c_log2_c(c: u32) -> f64 {
    if c == 0 {
        0.0
    } else {
        c as f64 * (c as f64).log2()
    }
}

/// The three measures of `name`.
pub fn measure(name: &str) -> NameMeasures {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return NameMeasures { entropy: 0.0, subdomain_length: 0, labels: 0 };
    }
    let mut counts = [0u8; 128];
    let mut ascii = true;
    // Byte offsets of the first and the last two dots.
    let (mut dots, mut first, mut last, mut second_last) = (0u64, usize::MAX, 0usize, 0usize);
    for (i, &b) in bytes.iter().enumerate() {
        ascii &= b < 128;
        let c = &mut counts[(b & 127) as usize];
        *c = c.wrapping_add(1);
        if b == b'.' {
            dots += 1;
            first = first.min(i);
            second_last = last;
            last = i;
        }
    }
    // The original counted characters (code points); a UTF-8 continuation byte is not one.
    let chars = |s: &[u8]| if ascii { s.len() } else { s.iter().filter(|&&b| b & 0xc0 != 0x80).count() } as u64;
    let subdomain_length = if dots >= 2 {
        // More than two labels: everything before the second-to-last dot.
        chars(&bytes[..second_last])
    } else {
        chars(&bytes[..first.min(bytes.len())])
    };
    let entropy = if ascii && bytes.len() < 256 {
        // Counts fit the table (and the u8 counters).
        let table = &*C_LOG2_C;
        let mut sum = 0.0;
        // Each distinct character once: its count is taken, then cleared.
        for &b in bytes {
            let c = std::mem::take(&mut counts[b as usize]);
            if c != 0 {
                sum += table[c as usize];
            }
        }
        entropy_from(sum, bytes.len())
    } else {
        entropy(name)
    };
    NameMeasures { entropy, subdomain_length, labels: dots + 1 }
}

/// `-sum(p log2 p)` with `p = c / n`, as `log2 n - sum(c log2 c) / n` (one logarithm per name;
/// rounding can leave a name of one repeated character a hair below zero, hence the clamp).
fn entropy_from(sum_c_log2_c: f64, n: usize) -> f64 {
    let n = n as f64;
    (n.log2() - sum_c_log2_c / n).max(0.0)
}

/// Shannon entropy (bits, log2) of the character frequencies of the whole name. The original
/// used Python `len`/`Counter` over code points; we count Unicode scalar values likewise.
/// The empty (root) name has entropy 0.
pub fn entropy(name: &str) -> f64 {
    if name.is_ascii() && name.len() < 256 {
        return measure(name).entropy;
    }
    let mut counts: Vec<(char, u32)> = Vec::new();
    let mut n = 0;
    for ch in name.chars() {
        n += 1;
        match counts.iter_mut().find(|e| e.0 == ch) {
            Some(e) => e.1 += 1,
            None => counts.push((ch, 1)),
        }
    }
    entropy_from(counts.into_iter().map(|e| c_log2_c(e.1)).sum(), n)
}

/// Entropy above which a name counts as high-entropy (the original's threshold).
pub const HIGH_ENTROPY_BITS: f64 = 3.5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures() {
        assert_eq!(entropy(""), 0.0);
        assert_eq!(entropy("aaaa"), 0.0);
        assert!((entropy("ab") - 1.0).abs() < 1e-12);
        let sub = |n| measure(n).subdomain_length;
        assert_eq!(sub("www.example.com"), 3);
        assert_eq!(sub("a.b.example.com"), 3);
        assert_eq!(sub("example.com"), 7);
        assert_eq!(sub("localhost"), 9);
        assert_eq!(sub(""), 0);
        assert_eq!(measure("a.b.c").labels, 3);
        assert_eq!(measure("").labels, 0);
    }

    /// The measures as the original defined them, written plainly.
    fn reference(name: &str) -> (f64, u64, u64) {
        let mut counts = std::collections::BTreeMap::<char, u32>::new();
        name.chars().for_each(|c| *counts.entry(c).or_default() += 1);
        let n = name.chars().count() as f64;
        let entropy = -counts.values().map(|&c| c as f64 / n * (c as f64 / n).log2()).sum::<f64>();
        let labels: Vec<&str> = name.split('.').collect();
        let sub = if labels.len() > 2 { labels[..labels.len() - 2].join(".") } else { labels[0].to_string() };
        let label_count = if name.is_empty() { 0 } else { labels.len() as u64 };
        (if name.is_empty() { 0.0 } else { entropy }, sub.chars().count() as u64, label_count)
    }

    #[test]
    fn one_pass_measures_match_the_definitions() {
        let long = "x1.".repeat(100) + "example.com";
        let names = [
            "",
            ".",
            "..",
            "a",
            "aaaa",
            "example.com",
            "www.example.com",
            "a.b.example.com",
            "h3f2a9c.example.com",
            "dGhpcyBpcyBhIHR1bm5lbA.t.example.org",
            "bücher.example.de",
            "ä.ö.ü.example",
            "日本.jp",
            long.as_str(),
            "trailing.dot.",
            ".leading.dot",
        ];
        for name in names {
            let m = measure(name);
            let (e, sub, labels) = reference(name);
            assert!((m.entropy - e).abs() < 1e-12, "{name}: {} vs {e}", m.entropy);
            assert_eq!((m.subdomain_length, m.labels), (sub, labels), "{name}");
            assert_eq!(m.entropy, entropy(name), "{name}");
        }
    }
}
