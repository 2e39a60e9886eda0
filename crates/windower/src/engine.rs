//! The windower: event-time tumbling windows, watermark, cascade 5 s -> 30 s -> 180 s.
//!
//! Records go into the open 5 s window of their timestamp. When the watermark (see
//! [`Windower::poll_closed`]) passes the end of 5 s windows, they are sealed, emitted, and
//! their states merged (moved) into the 30 s window containing them; a 30 s window closes
//! at the same watermark step as its last 5 s window and is merged into its 180 s window.
//! Only three states per key are therefore alive at a time, whatever the window length.

use crate::level::{source_keys, Level, Skip};
use crate::run::{ClosedWindow, Run, Spares};
use crate::state::Params;
use crate::{Partition, WindowerConfig};
use std::collections::BTreeMap;
use std::time::Instant;
use wire::{PacketRecord, WindowRecord};

/// What happened to a pushed record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Merged into the open windows (also returned for frames without any address, which are
    /// skipped and counted in [`WindowerStats::skipped_no_address`]).
    Accepted,
    /// Its 5 s window was already closed by the watermark: counted, not merged anywhere.
    Late,
    /// Belongs only to windows already emitted before a restart (see [`Windower::resume`]).
    AlreadyEmitted,
}

/// Counters of one windower (the service exports them as Prometheus metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowerStats {
    pub accepted: u64,
    pub late: u64,
    pub already_emitted: u64,
    /// Frames with neither an IP source nor an ARP sender (also in
    /// `nta_windower_skipped_records_total{reason="no_address"}`).
    pub skipped_no_address: u64,
    /// Records whose timestamp is not a finite number.
    pub skipped_bad_timestamp: u64,
    pub windows_emitted: u64,
    /// Records whose source-view part got no state because the key budget was exceeded (see
    /// [`Windower`]; `nta_windower_shed_records_total`).
    pub shed_records: u64,
    /// 3-minute periods in which the key budget was exceeded (`nta_windower_overload_periods_total`).
    pub overload_periods: u64,
}

struct AgentClock {
    max_ts: f64,
    last_seen: Instant,
    /// The agent said its input ended (a replayed file): it holds no window back.
    finished: bool,
}

/// # Key budget (overload mode)
///
/// Source-view states are bounded by [`WindowerConfig::key_budget`] per 3-minute period (the
/// 180 s window; two periods overlap only until the older one closes). Once the states of the
/// record's period reach it, the period is *frozen*: until it
/// closes, a source key that holds no state in that period (in an open 5 s window, its 30 s or
/// its 180 s accumulator) gets none; its records are counted in the window's [`Level::shed`]
/// instead. A key either has all of its period's records or none, so every emitted window stays
/// exact (5, 30 and 180 s alike), and the destination view is never shed: a spoofed flood's
/// target keeps its exact windows. The source windows of a window that shed carry
/// `shed_records` and `shed_sources`. Which keys are shed depends on arrival order.
pub struct Windower {
    cfg: WindowerConfig,
    budget: usize,
    /// Source-view states held in the open windows of each 3-minute period (recounted at each
    /// close, counted up between): the budget is per period, so the closing period's states do
    /// not freeze the next one at every boundary.
    period_states: Vec<(i64, usize)>,
    /// Starts of the frozen 3-minute periods (see the key budget above).
    frozen: Vec<i64>,
    params: Params,
    open5: BTreeMap<i64, Level>,
    acc30: BTreeMap<i64, Run>,
    acc180: BTreeMap<i64, Run>,
    /// Few agents: a vector with a cached last index beats hashing the id per record.
    agents: Vec<(String, AgentClock)>,
    last_agent: usize,
    /// Every 5 s window ending at or before this has been sealed (a multiple of 5).
    sealed: i64,
    /// Checkpoint given to `resume`: windows ending at or before it are not emitted again.
    resumed: [i64; 3],
    /// Set by [`Windower::resume_by_owner`]: (partition count, checkpoint per partition) of the
    /// windowers this one takes over from, for keys whose old owner got further than `resumed`.
    resumed_by_owner: Option<(u32, Vec<[i64; 3]>)>,
    stats: WindowerStats,
    /// (source, destination) states of the last sealed 5 s window: the room a new one gets.
    keys_hint: (usize, usize),
    /// An emptied window whose maps a new 5 s window reuses (see [`Level::into_run`]).
    spare: Option<Level>,
    /// Emptied sealed-window lists for the next ones (see [`Spares`]).
    spares: Spares,
}

const SIZES: [i64; 3] = [5, 30, 180];

#[inline]
fn floor_to(t: i64, m: i64) -> i64 {
    t.div_euclid(m) * m
}

/// `ts.floor() as i64`, without `floor`: x86-64's baseline has no rounding instruction (it
/// came with SSE4.1), so `floor` is a library call, and this runs for every record.
#[inline]
fn floor_secs(ts: f64) -> i64 {
    let t = ts as i64;
    t.saturating_sub(((t as f64) > ts) as i64)
}

impl Windower {
    pub fn new(cfg: WindowerConfig) -> Windower {
        Windower::for_partition(cfg, Partition::ALL)
    }

    /// A windower that keeps and emits only the keys of `part` (see [`crate::partition`]); the
    /// union of the outputs of partitions `0..count` is the output of [`Windower::new`].
    pub fn for_partition(cfg: WindowerConfig, part: Partition) -> Windower {
        let params = Params { cap: cfg.distinct_cap.max(2), part, few: crate::slot::FEW as u8 };
        Windower {
            budget: cfg.key_budget(),
            period_states: Vec::new(),
            frozen: Vec::new(),
            cfg,
            params,
            open5: BTreeMap::new(),
            acc30: BTreeMap::new(),
            acc180: BTreeMap::new(),
            agents: Vec::new(),
            last_agent: 0,
            sealed: i64::MIN,
            resumed: [i64::MIN; 3],
            resumed_by_owner: None,
            stats: WindowerStats::default(),
            keys_hint: (0, 0),
            spare: None,
            spares: Spares::default(),
        }
    }

    /// Gives every source key a full state from its first packet, as before compact slots
    /// existed: for tests that check both paths give the same windows.
    #[doc(hidden)]
    pub fn with_full_states(mut self) -> Windower {
        self.params.few = 0;
        self
    }

    /// Checkpoint: per window size (5, 30, 180), every window ending at or before the given
    /// epoch second has been emitted. Call before the first `push`. Records of those windows
    /// are still accepted while a longer window containing them is not yet emitted: they
    /// build the 5 s partial states that feed it, but the emitted windows are not repeated.
    pub fn resume(&mut self, closed_through: [i64; 3]) {
        self.resumed = closed_through;
    }

    /// Resumes from the checkpoints of another partitioning (`checkpoints[i]` of partition `i`
    /// of `checkpoints.len()`), e.g. after the partition count changed: a key's windows are
    /// emitted only after its old owner's checkpoint. Replay from the smallest of their replay
    /// points; records are accepted from the smallest `closed_through` on, so every window
    /// after a key's old checkpoint is rebuilt whole.
    pub fn resume_by_owner(&mut self, checkpoints: Vec<[i64; 3]>) {
        let mut min = [i64::MAX; 3];
        for cp in &checkpoints {
            for i in 0..3 {
                min[i] = min[i].min(cp[i]);
            }
        }
        if checkpoints.is_empty() {
            return;
        }
        self.resumed = min;
        self.resumed_by_owner = Some((checkpoints.len() as u32, checkpoints));
    }

    /// Feeds one record of `agent_id`. `now` is processing time (for idle-agent detection).
    pub fn push(&mut self, agent_id: &str, rec: &PacketRecord, now: Instant) -> PushOutcome {
        let ts = rec.timestamp;
        if !ts.is_finite() {
            self.stats.skipped_bad_timestamp += 1;
            metrics::counter!("nta_windower_skipped_records_total", "reason" => "bad_timestamp").increment(1);
            return PushOutcome::Accepted;
        }
        let i = match self.agents.get(self.last_agent) {
            Some((id, _)) if id == agent_id => self.last_agent,
            _ => match self.agents.iter().position(|(id, _)| id == agent_id) {
                Some(i) => i,
                None => {
                    self.agents
                        .push((agent_id.to_string(), AgentClock { max_ts: ts, last_seen: now, finished: false }));
                    self.agents.len() - 1
                }
            },
        };
        self.last_agent = i;
        let c = &mut self.agents[i].1;
        c.last_seen = now;
        c.finished = false;
        c.max_ts = c.max_ts.max(ts);
        self.push_inner(rec)
    }

    /// Feeds a batch of one agent (one agent lookup for the lot). Returns the outcome counts
    /// (accepted, late, already emitted).
    pub fn push_batch(&mut self, agent_id: &str, recs: &[PacketRecord], now: Instant) -> [u64; 3] {
        let mut out = [0u64; 3];
        for r in recs {
            let i = match self.push(agent_id, r, now) {
                PushOutcome::Accepted => 0,
                PushOutcome::Late => 1,
                PushOutcome::AlreadyEmitted => 2,
            };
            out[i] += 1;
        }
        out
    }

    fn push_inner(&mut self, rec: &PacketRecord) -> PushOutcome {
        let start = floor_to(floor_secs(rec.timestamp), 5);
        let end = start + 5;
        if end <= self.sealed {
            self.stats.late += 1;
            return PushOutcome::Late;
        }
        let r = self.resumed;
        if end <= r[0] && floor_to(start, 30) + 30 <= r[1] && floor_to(start, 180) + 180 <= r[2] {
            self.stats.already_emitted += 1;
            return PushOutcome::AlreadyEmitted;
        }
        let period = floor_to(start, 180);
        let i = match self.period_states.iter().position(|p| p.0 == period) {
            Some(i) => i,
            None => {
                self.period_states.push((period, 0));
                self.period_states.len() - 1
            }
        };
        let mut admit = [true, true];
        if self.frozen.contains(&period) || (self.period_states[i].1 >= self.budget && self.freeze(period)) {
            admit = self.admit(rec, period);
            self.stats.shed_records += admit.contains(&false) as u64;
        }
        if !self.open5.contains_key(&start) {
            self.open_window(start);
        }
        let level = self.open5.get_mut(&start).expect("just opened");
        match level.add_admitted(rec, &self.params, admit) {
            Ok(created) => {
                self.period_states[i].1 += created;
                self.stats.accepted += 1
            }
            Err(Skip::NoAddress) => {
                self.stats.skipped_no_address += 1;
                metrics::counter!("nta_windower_skipped_records_total", "reason" => "no_address").increment(1);
            }
        }
        PushOutcome::Accepted
    }

    /// Opens the 5 s window starting at `start` with room for as many keys as the latest one
    /// (still open while late records may come, so not yet in `keys_hint`) or the last sealed
    /// one holds: a flood's window does not grow its maps, copying them, a dozen times over.
    #[cold]
    fn open_window(&mut self, start: i64) {
        let latest = self.open5.values().next_back().map_or((0, 0), |l| (l.src.len(), l.dst.len()));
        let hint = (latest.0.max(self.keys_hint.0), latest.1.max(self.keys_hint.1));
        let level = match self.spare.take() {
            Some(l) => l.reuse_for(hint),
            None => Level::with_capacity(hint),
        };
        self.open5.insert(start, level);
    }

    /// Freezes `period` (see the key budget on [`Windower`]); returns true.
    #[cold]
    fn freeze(&mut self, period: i64) -> bool {
        self.frozen.push(period);
        self.stats.overload_periods += 1;
        tracing::warn!(
            budget = self.budget,
            period_start = period,
            "windower over its key budget (windower.max_open_keys): source keys new to the 3-minute \
             period are counted in aggregate (shed_records on its source windows) until it closes; \
             the destination view stays exact"
        );
        true
    }

    /// Which source-view keys of `rec` may have state in a frozen period: those already holding
    /// some there (a key gets all of the period's records or none).
    fn admit(&self, rec: &PacketRecord, period: i64) -> [bool; 2] {
        let Ok(keys) = source_keys(rec, &self.params) else { return [true, true] };
        keys.map(|k| {
            k.is_none_or(|k| {
                self.open5.range(period..period + 180).any(|(_, l)| l.src.contains_key(&k))
                    // Every 30 s window of the period: the previous one is merged into the 180 s
                    // accumulator only when its last 5 s window closes, after the next one opened.
                    || self.acc30.range(period..period + 180).any(|(_, l)| l.has_source(&k))
                    || self.acc180.get(&period).is_some_and(|l| l.has_source(&k))
            })
        })
    }

    /// Current watermark (epoch seconds): the smallest `max event time - allowed lateness`
    /// over agents heard from within `idle_agent_timeout`; when every agent is idle, the
    /// largest over all agents (so an idle system still closes its windows).
    pub fn watermark(&self, now: Instant) -> Option<f64> {
        let lateness = self.cfg.allowed_lateness().as_secs_f64();
        let active = self
            .agents
            .iter()
            .map(|(_, a)| a)
            .filter(|a| !a.finished && now.saturating_duration_since(a.last_seen) < self.cfg.idle_agent_timeout())
            .map(|a| a.max_ts - lateness)
            .reduce(f64::min);
        active.or_else(|| self.agents.iter().map(|(_, a)| a.max_ts - lateness).reduce(f64::max))
    }

    /// Closes every window the watermark has passed and returns the emitted ones, sorted by
    /// (window end, size, view, key).
    pub fn poll_closed(&mut self, now: Instant) -> Vec<WindowRecord> {
        let mut out = Vec::new();
        self.poll_closed_with(now, &mut |w| out.push(w.to_record()));
        out
    }

    /// Like [`Windower::poll_closed`], streaming compact windows to `emit` in the same order
    /// (nothing accumulates: the way to close a million keys at once in bounded memory).
    pub fn poll_closed_with(&mut self, now: Instant, emit: &mut dyn FnMut(&ClosedWindow)) {
        if !self.agents.is_empty() && self.agents.iter().all(|(_, a)| a.finished) {
            // Every input ended (replays): nothing more can arrive for the open windows.
            return self.finish_with(emit);
        }
        let Some(wm) = self.watermark(now) else { return };
        let target = floor_to(floor_secs(wm), 5);
        if target > self.sealed {
            self.advance(target, emit);
        }
    }

    /// `agent_id` says its input ended (the end of a replayed file): it stops holding windows
    /// back, and once every agent has ended, the next poll closes everything (as [`finish`]).
    /// New records from the agent make it active again.
    ///
    /// [`finish`]: Windower::finish
    pub fn end_of_input(&mut self, agent_id: &str) {
        if let Some((_, a)) = self.agents.iter_mut().find(|(id, _)| id == agent_id) {
            a.finished = true;
        }
    }

    /// Closes everything still open (end of an offline input) and returns it.
    pub fn finish(&mut self) -> Vec<WindowRecord> {
        let mut out = Vec::new();
        self.finish_with(&mut |w| out.push(w.to_record()));
        out
    }

    pub fn finish_with(&mut self, emit: &mut dyn FnMut(&ClosedWindow)) {
        let last = [self.open5.keys().next_back(), self.acc30.keys().next_back(), self.acc180.keys().next_back()]
            .iter()
            .zip(SIZES)
            .filter_map(|(k, s)| k.map(|k| floor_to(k + s - 1, 180) + 180))
            .max();
        if let Some(t) = last {
            if t > self.sealed {
                self.advance(t, emit);
            }
        }
    }

    /// Seals and closes, in increasing window end, every window ending at or before `target`;
    /// at equal ends 5 s before 30 s before 180 s, so the output order is (end, size) and a
    /// longer window is closed right after the last 5 s window that feeds it.
    fn advance(&mut self, target: i64, emit: &mut dyn FnMut(&ClosedWindow)) {
        let p = self.params;
        let by_owner = &self.resumed_by_owner;
        let mut n = 0u64;
        let mut count = |w: &ClosedWindow| {
            // ARP senders of other partitions are only here for the ARP join.
            if !p.part.owns(&w.key) {
                return;
            }
            if let Some((parts, cps)) = by_owner {
                let i = SIZES.iter().position(|&s| s == w.window_size as i64).unwrap_or(0);
                if w.window_start + (w.window_size as i64) <= cps[Partition::of(&w.key, *parts) as usize][i] {
                    return;
                }
            }
            n += 1;
            emit(w)
        };
        loop {
            let ends = [
                self.open5.keys().next().map(|s| s + 5),
                self.acc30.keys().next().map(|s| s + 30),
                self.acc180.keys().next().map(|s| s + 180),
            ];
            let Some(end) = ends.iter().flatten().copied().min() else { break };
            if end > target {
                break;
            }
            if ends[0] == Some(end) {
                let (start, mut level) = self.open5.pop_first().unwrap();
                self.keys_hint = (level.src.len(), level.dst.len());
                let run = level.into_run(&mut self.spares);
                self.spare = Some(level);
                if end > self.resumed[0] {
                    run.finalize_with(start, 5, &p, &mut count);
                }
                self.acc30.entry(floor_to(start, 30)).or_default().merge(run, &p, &mut self.spares);
                continue; // the 30 s window ending here (if any) is next
            }
            if ends[1] == Some(end) {
                let (start, run) = self.acc30.pop_first().unwrap();
                if end > self.resumed[1] {
                    run.finalize_with(start, 30, &p, &mut count);
                }
                self.acc180.entry(floor_to(start, 180)).or_default().merge(run, &p, &mut self.spares);
                continue;
            }
            let (start, level) = self.acc180.pop_first().unwrap();
            if end > self.resumed[2] {
                level.finalize_with(start, 180, &p, &mut count);
            }
            if let Some(shed) = &level.shed {
                tracing::warn!(
                    period_start = start,
                    shed_records = shed.records,
                    shed_sources = shed.sources.count(),
                    "windower key budget: source-view records counted in aggregate in this 3-minute period"
                );
            }
            level.recycle(&mut self.spares);
        }
        self.frozen.retain(|&p| p + 180 > target);
        self.period_states.clear();
        let open = self.open5.iter().map(|(s, l)| (*s, l.src.len()));
        for (start, n) in open.chain(self.acc30.iter().chain(&self.acc180).map(|(s, r)| (*s, r.src.len()))) {
            let period = floor_to(start, 180);
            match self.period_states.iter_mut().find(|p| p.0 == period) {
                Some(p) => p.1 += n,
                None => self.period_states.push((period, n)),
            }
        }
        self.sealed = target;
        self.stats.windows_emitted += n;
    }

    /// Per size (5, 30, 180): every window ending at or before this epoch second has been
    /// emitted (or was before the checkpoint given to `resume`). `i64::MIN` if none yet.
    pub fn closed_through(&self) -> [i64; 3] {
        let mut c = self.resumed;
        if self.sealed != i64::MIN {
            for (i, s) in SIZES.iter().enumerate() {
                c[i] = c[i].max(floor_to(self.sealed, *s));
            }
        }
        c
    }

    pub fn stats(&self) -> &WindowerStats {
        &self.stats
    }

    /// (view, key) states currently held over all open windows (a memory gauge).
    pub fn open_keys(&self) -> usize {
        self.open5.values().map(Level::keys).sum::<usize>()
            + self.acc30.values().chain(self.acc180.values()).map(Run::keys).sum::<usize>()
    }
}

/// Offline analysis and training: one agent, everything closed at the end. Records later
/// than the allowed lateness are dropped exactly as live (counted in the returned stats), so
/// the three paths agree.
pub fn windows_from_records_with_stats(
    records: impl IntoIterator<Item = PacketRecord>,
    cfg: &WindowerConfig,
) -> (Vec<WindowRecord>, WindowerStats) {
    Windower::new(cfg.clone()).run_to_end(records)
}

impl Windower {
    /// Feeds every record as the single agent "offline", polling as the live service would,
    /// and closes everything at the end (the offline path; also for a partitioned or resumed
    /// windower in tests).
    pub fn run_to_end(mut self, records: impl IntoIterator<Item = PacketRecord>) -> (Vec<WindowRecord>, WindowerStats) {
        let now = Instant::now();
        let mut out = Vec::new();
        let mut next_check = f64::NEG_INFINITY;
        let lateness = self.cfg.allowed_lateness().as_secs_f64();
        for r in records {
            self.push("offline", &r, now);
            // The sealing target only moves when the watermark crosses a 5 s boundary; checking
            // then is the same as polling after every record.
            if r.timestamp - lateness >= next_check {
                out.extend(self.poll_closed(now));
                next_check = (self.sealed + 5) as f64;
            }
        }
        out.extend(self.finish());
        (out, self.stats)
    }
}

pub fn windows_from_records(
    records: impl IntoIterator<Item = PacketRecord>,
    cfg: &WindowerConfig,
) -> Vec<WindowRecord> {
    windows_from_records_with_stats(records, cfg).0
}

#[cfg(test)]
mod tests {
    #[test]
    fn floor_secs_is_floor() {
        for ts in [0.0, 0.5, -0.5, -1.0, 1.0, 1_700_000_004.999_999, -3.25, 1e300, -1e300, f64::MAX, 9.3e18, -9.3e18] {
            assert_eq!(super::floor_secs(ts), ts.floor() as i64, "{ts}");
        }
    }
}
