//! Testing hook for crash tests: `NTA_INGESTOR_FAILPOINT=after_copy` aborts the process after
//! the COPY and before the commit; `after_commit` aborts after the commit and before the acks.
//! Both must leave the database with every packet exactly once after a restart.

/// Name of the environment variable read at start by [`crate::run`].
pub const FAILPOINT_ENV: &str = "NTA_INGESTOR_FAILPOINT";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Failpoint {
    #[default]
    None,
    AfterCopy,
    AfterCommit,
}

impl Failpoint {
    pub fn from_env() -> Failpoint {
        match std::env::var(FAILPOINT_ENV).as_deref() {
            Ok("after_copy") => Failpoint::AfterCopy,
            Ok("after_commit") => Failpoint::AfterCommit,
            Ok("") | Err(_) => Failpoint::None,
            Ok(other) => {
                tracing::warn!(value = other, "unknown {FAILPOINT_ENV}, ignored");
                Failpoint::None
            }
        }
    }

    /// Aborts the process (no unwinding, no destructors: like a kill) when `at` is armed.
    pub(crate) fn hit(self, at: Failpoint) {
        if self != Failpoint::None && self == at {
            eprintln!("{FAILPOINT_ENV}: aborting at {at:?}");
            std::process::abort();
        }
    }
}
