//! Per-name DNS measures (the original system's DNS feature group, see `FEATURES.md`),
//! computed once per query and then only summed, so they merge exactly across windows.

/// Shannon entropy (bits, log2) of the character frequencies of the whole name. The original
/// used Python `len`/`Counter` over code points; we count Unicode scalar values likewise (the
/// ASCII fast path gives the same numbers). The empty (root) name has entropy 0.
pub fn entropy(name: &str) -> f64 {
    if name.is_empty() {
        return 0.0;
    }
    if name.is_ascii() {
        let mut counts = [0u32; 128];
        // Which characters occur: the sum visits only those, in the same (code) order as a
        // scan of all 128 would, so the floating-point result is the same.
        let mut seen = 0u128;
        for &b in name.as_bytes() {
            counts[b as usize] += 1;
            seen |= 1 << b;
        }
        let present = std::iter::from_fn(|| {
            (seen != 0).then(|| {
                let c = seen.trailing_zeros() as usize;
                seen &= seen - 1;
                counts[c]
            })
        });
        return entropy_of(present, name.len());
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
    entropy_of(counts.into_iter().map(|e| e.1), n)
}

fn entropy_of(counts: impl Iterator<Item = u32>, n: usize) -> f64 {
    let n = n as f64;
    -counts
        .map(|c| {
            let p = c as f64 / n;
            p * p.log2()
        })
        .sum::<f64>()
}

/// The original's "subdomain length": with more than two labels, the length of the first n-2
/// labels joined by dots (what precedes the registered domain); otherwise the length of the
/// first label. Characters, not bytes.
pub fn subdomain_length(name: &str) -> u64 {
    let labels = name.split('.').count();
    if labels > 2 {
        // Everything before the second-to-last dot.
        let cut = name.rmatch_indices('.').nth(1).map(|(i, _)| i).unwrap_or(0);
        name[..cut].chars().count() as u64
    } else {
        name.split('.').next().unwrap_or("").chars().count() as u64
    }
}

/// Number of labels: dots + 1, and 0 for the root (empty) name (the original said 1).
pub fn label_count(name: &str) -> u64 {
    if name.is_empty() {
        0
    } else {
        name.bytes().filter(|&b| b == b'.').count() as u64 + 1
    }
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
        assert_eq!(subdomain_length("www.example.com"), 3);
        assert_eq!(subdomain_length("a.b.example.com"), 3);
        assert_eq!(subdomain_length("example.com"), 7);
        assert_eq!(subdomain_length("localhost"), 9);
        assert_eq!(subdomain_length(""), 0);
        assert_eq!(label_count("a.b.c"), 3);
        assert_eq!(label_count(""), 0);
    }
}
