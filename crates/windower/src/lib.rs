//! The windower: turns packet records into per-key window features.
//!
//! One code path serves live scoring (the `nta run --target windower` service), offline
//! analysis (`nta analyze`) and training, so identical inputs give identical windows.
//!
//! API contract (implementation in progress):
//! * [`Windower::push`] feeds one record of one agent;
//! * [`Windower::poll_closed`] returns the windows the watermark has closed;
//! * [`Windower::finish`] closes everything (end of an offline input);
//! * [`Windower::closed_through`] tells, per window size, up to which end every window has
//!   been emitted (the service acknowledges packet batches against it);
//! * [`Windower::resume`] restarts from such a checkpoint: windows ending at or before it are
//!   not emitted again, but their 5 s partial states still feed the longer windows.

use std::time::{Duration, Instant};
use wire::{PacketRecord, WindowRecord};

#[derive(Debug, Clone)]
pub struct WindowerConfig {
    /// Watermark = largest event time seen from an agent minus this.
    pub allowed_lateness: Duration,
    /// An agent silent (in processing time) for this long stops holding windows back.
    pub idle_agent_timeout: Duration,
}

impl Default for WindowerConfig {
    fn default() -> Self {
        WindowerConfig { allowed_lateness: Duration::from_secs(2), idle_agent_timeout: Duration::from_secs(30) }
    }
}

/// What happened to a pushed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Accepted,
    /// Older than the watermark allows: counted, not merged.
    Late,
    /// Belongs only to windows already emitted before a restart (see [`Windower::resume`]).
    AlreadyEmitted,
}

pub struct Windower {
    _cfg: WindowerConfig,
}

impl Windower {
    pub fn new(cfg: WindowerConfig) -> Windower {
        Windower { _cfg: cfg }
    }

    /// Checkpoint: per window size (5, 30, 180), every window ending at or before the given
    /// epoch second has been emitted.
    pub fn resume(&mut self, _closed_through: [i64; 3]) {}

    pub fn push(&mut self, _agent_id: &str, _rec: &PacketRecord, _now: Instant) -> PushOutcome {
        PushOutcome::Accepted
    }

    pub fn poll_closed(&mut self, _now: Instant) -> Vec<WindowRecord> {
        Vec::new()
    }

    pub fn finish(&mut self) -> Vec<WindowRecord> {
        Vec::new()
    }

    pub fn closed_through(&self) -> [i64; 3] {
        [i64::MIN; 3]
    }
}
