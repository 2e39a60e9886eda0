//! Testing hook for crash tests, read once at start from `NTA_WINDOWER_FAILPOINT`:
//! * `after_publish`: abort after the closed windows were published to NATS, before they are
//!   stored (and the checkpoint written);
//! * `after_store`: abort after the windows and the checkpoint were committed, before the packet
//!   batches are acknowledged.
//!
//! An optional `:N` suffix (e.g. `after_store:3`) aborts at the N-th flush that stores windows
//! instead of the first. Both points must leave, after a restart, every window stored and
//! published exactly once.

/// Name of the environment variable read at start by [`super::run`].
pub const FAILPOINT_ENV: &str = "NTA_WINDOWER_FAILPOINT";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Point {
    #[default]
    None,
    AfterPublish,
    AfterStore,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Failpoint {
    point: Point,
    /// Abort at the `nth` flush (1-based) carrying windows.
    nth: u64,
    seen: u64,
}

impl Failpoint {
    pub fn from_env() -> Failpoint {
        Self::parse(std::env::var(FAILPOINT_ENV).ok().as_deref().unwrap_or(""))
    }

    pub fn parse(s: &str) -> Failpoint {
        let (name, nth) = match s.split_once(':') {
            Some((n, k)) => (n, k.trim().parse::<u64>().unwrap_or(1).max(1)),
            None => (s, 1),
        };
        let point = match name.trim() {
            "after_publish" => Point::AfterPublish,
            "after_store" => Point::AfterStore,
            "" => Point::None,
            other => {
                tracing::warn!(value = other, "unknown {FAILPOINT_ENV}, ignored");
                Point::None
            }
        };
        Failpoint { point, nth, seen: 0 }
    }

    pub fn armed(&self) -> bool {
        self.point != Point::None
    }

    /// Counts one flush carrying windows (call once per flush, before the points).
    pub(crate) fn count_flush(&mut self) {
        self.seen += 1;
    }

    /// Aborts the process (no unwinding, no destructors: like SIGKILL) when `at` is armed and
    /// this is the chosen flush.
    pub(crate) fn hit(&self, at: Point) {
        if self.point != Point::None && self.point == at && self.seen == self.nth {
            eprintln!("{FAILPOINT_ENV}: aborting at {at:?} (flush {})", self.seen);
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let f = Failpoint::parse("after_store:3");
        assert_eq!((f.point, f.nth), (Point::AfterStore, 3));
        let f = Failpoint::parse("after_publish");
        assert_eq!((f.point, f.nth), (Point::AfterPublish, 1));
        assert!(!Failpoint::parse("").armed());
        assert!(!Failpoint::parse("bogus").armed());
    }
}
