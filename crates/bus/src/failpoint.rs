//! Testing hooks for crash tests, the same way in every role: an environment variable read
//! once at start names a point (`after_copy`, `after_store:3`, ...) where the process aborts
//! like a SIGKILL (no unwinding, no destructors, no acks). The optional `:N` aborts at the N-th
//! time the point is reached instead of the first. Every point must leave, after a restart,
//! every effect exactly once; the crash tests check that.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// An armed (or unarmed) failpoint; clones share the hit count.
#[derive(Debug, Clone, Default)]
pub struct Failpoint {
    /// (variable, point, n): abort at the n-th hit of `point`.
    armed: Option<(&'static str, &'static str, u64)>,
    hits: Arc<AtomicU64>,
}

impl Failpoint {
    /// Reads `var`; `points` are the names this role knows (anything else is ignored with a
    /// warning, so a typo never aborts a production process).
    pub fn from_env(var: &'static str, points: &[&'static str]) -> Failpoint {
        Self::parse(var, std::env::var(var).ok().as_deref().unwrap_or(""), points)
    }

    pub fn parse(var: &'static str, value: &str, points: &[&'static str]) -> Failpoint {
        let (name, nth) = match value.split_once(':') {
            Some((n, k)) => (n.trim(), k.trim().parse::<u64>().unwrap_or(1).max(1)),
            None => (value.trim(), 1),
        };
        let armed = match points.iter().find(|p| **p == name) {
            Some(p) => Some((var, *p, nth)),
            None => {
                if !name.is_empty() {
                    tracing::warn!(value, "unknown {var}, ignored");
                }
                None
            }
        };
        Failpoint { armed, hits: Arc::default() }
    }

    /// Aborts the process when `point` is the armed one and this is its chosen hit.
    pub fn hit(&self, point: &str) {
        let Some((var, armed, nth)) = self.armed else { return };
        if armed == point && self.hits.fetch_add(1, Ordering::SeqCst) + 1 == nth {
            eprintln!("{var}: aborting at {point} (hit {nth})");
            std::process::abort();
        }
    }
}

/// `off`, or the armed point with its hit number (`after_store:3`), for start-up logs.
impl std::fmt::Display for Failpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.armed {
            None => f.write_str("off"),
            Some((_, point, nth)) => write!(f, "{point}:{nth}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_points_and_counts() {
        let f = Failpoint::parse("X", "after_store:3", &["after_publish", "after_store"]);
        assert_eq!(f.armed, Some(("X", "after_store", 3)));
        assert_eq!(Failpoint::parse("X", "after_publish", &["after_publish"]).armed, Some(("X", "after_publish", 1)));
        assert!(Failpoint::parse("X", "", &["a"]).armed.is_none());
        assert_eq!(Failpoint::parse("X", "", &["a"]).to_string(), "off");
        assert_eq!(Failpoint::parse("X", "a", &["a"]).to_string(), "a:1");
        assert!(Failpoint::parse("X", "bogus", &["a"]).armed.is_none());
        // Hits of other points and hits before the n-th do not abort.
        let f = Failpoint::parse("X", "b:2", &["a", "b"]);
        f.hit("a");
        f.hit("b");
        assert_eq!(f.hits.load(Ordering::SeqCst), 1);
    }
}
