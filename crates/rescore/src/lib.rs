//! `nta rescore`: what another model would have said about a past time range. The packet
//! batches retained in `NTA_PACKETS` are read again (an ordered, ephemeral consumer starting
//! at the range's start minus a margin, stopping at the stream's last message as of the start;
//! [`bus::replay`]), their records whose *capture* time lies in the range go through the
//! windower library as the windower service feeds it (per agent, in stream order, the same
//! settings), and the windows through the predictor's model, rules and alert decision. The
//! results go to run-scoped tables ([`store::runs`]) in one transaction; nothing is published
//! on NATS and the live tables are not written.
//!
//! The live pipeline is only read from: no durable consumer of a role is touched, and the
//! reading can be capped (`rescore.max_records_per_s`) to bound its share of nats-server.

mod score;

pub use score::Scorer;

use anyhow::{bail, Context, Result};
use predictor::decide::AlertPolicy;
use predictor::model::Model;
use predictor::rules::RuleThresholds;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use store::runs::{RunCounts, RunInputs, RunTx};
use windower::{PushOutcome, Windower, WindowerConfig};
use wire::WindowRecord;

settings::settings! {
    /// Settings of `nta rescore` (`[rescore]`).
    #[derive(Debug, Clone)]
    pub struct RescoreConfig {
        /// Reading of NTA_PACKETS starts at the range's start minus this (s): batches are stored
        /// after their packets were captured, so this only covers clock skew between agents and
        /// the NATS server (records are then kept by capture time).
        pub start_margin_s: u64 = 300,
        /// Records per second a rescore reads at most (of every batch read, in the range or not),
        /// to bound its share of nats-server and of the machine while the live pipeline runs;
        /// 0: no cap.
        pub max_records_per_s: u64 = 0,
    }
    runtime {
        /// NATS server and credentials.
        pub nats: bus::Nats = bus::Nats::new(settings::DEFAULT_NATS_URL),
        /// PostgreSQL (the top-level `database_url`).
        pub database_url: String = settings::DEFAULT_DATABASE_URL.into(),
        /// The live windower's engine settings (`[windower]`), so windows equal the live ones.
        pub windower: WindowerConfig = WindowerConfig::default(),
        /// Messages the live windower takes before it collects closed windows (`[windower]`).
        pub windower_step: usize = 256,
        /// The live predictor's alert decision (`[predictor]`).
        pub policy: AlertPolicy = AlertPolicy::default(),
        /// Rule baselines (tuned in code, not settings).
        pub rules: RuleThresholds = RuleThresholds::default(),
    }
}

/// What to re-score.
#[derive(Debug, Clone)]
pub struct Request {
    pub run: String,
    pub model: PathBuf,
    /// Capture time range, epoch seconds, both ends included.
    pub from: f64,
    pub to: f64,
    pub agent: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub counts: RunCounts,
    pub model_version: String,
    /// Batches that could not be decoded (skipped, as the live consumers dead-letter them).
    pub malformed_batches: u64,
    pub stream: bus::replay::Retained,
    pub elapsed: Duration,
}

/// Windows of one chunk are predicted and written together.
const WRITE_CHUNK: usize = 4096;
/// Batches buffered between the stream reader and the scorer.
const READ_AHEAD: usize = 64;

/// Checks a request before anything is read or written.
pub fn validate(req: &Request) -> Result<()> {
    store::runs::validate_name(&req.run).map_err(anyhow::Error::msg)?;
    if !(req.from.is_finite() && req.to.is_finite()) || req.from > req.to {
        bail!("--from must not be after --to");
    }
    if let Some(a) = &req.agent {
        if a.is_empty() || a.bytes().any(|b| matches!(b, b'.' | b'*' | b'>') || b.is_ascii_whitespace()) {
            bail!("agent id {a:?} is not a subject token (agents publish on nta.packets.<agent_id>)");
        }
    }
    Ok(())
}

/// Runs the request (see the crate documentation) and returns what it did. The run's rows are
/// replaced only if it completes; otherwise nothing changes.
pub async fn rescore(cfg: &RescoreConfig, req: &Request) -> Result<Outcome> {
    validate(req)?;
    let bytes = std::fs::read(&req.model).with_context(|| format!("reading model file {}", req.model.display()))?;
    let model = Model::from_bytes(&bytes).with_context(|| format!("loading model file {}", req.model.display()))?;
    let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let inputs = RunInputs {
        name: req.run.clone(),
        model_version: model.model_version.clone(),
        model_path: req.model.display().to_string(),
        model_sha256: sha,
        from: req.from,
        to: req.to,
        agent_id: req.agent.clone(),
    };
    let nats = tokio::time::timeout(Duration::from_secs(15), bus::connect(&cfg.nats, "nta-rescore"))
        .await
        .with_context(|| format!("NATS at {} not reachable", cfg.nats.redacted_url()))??;
    let mut db = store::open(&cfg.database_url).await?;

    let started = Instant::now();
    let subject = match &req.agent {
        Some(a) => bus::packets_subject(a),
        None => format!("{}.>", bus::PACKETS_SUBJECT_PREFIX),
    };
    let (tx_msgs, mut rx_msgs) = tokio::sync::mpsc::channel(READ_AHEAD);
    let start_stored = req.from - cfg.start_margin_s as f64;
    let reader = tokio::spawn(async move {
        bus::replay::read_since(&nats, bus::PACKETS_STREAM, &subject, start_stored, tx_msgs).await
    });

    let tx = db.transaction().await?;
    let run = RunTx::begin(&tx, &inputs).await?;
    let mut scorer = Scorer::new(model, cfg.policy.clone(), cfg.rules.clone());
    let mut windower = Windower::new(cfg.windower.clone());
    let mut clock = EventClock::default();
    let mut counts = RunCounts::default();
    let mut malformed = 0u64;
    let mut pending: Vec<WindowRecord> = Vec::new();
    let mut since_poll = 0usize;
    // Every record read, in the range or not: what the cap bounds is the load of reading.
    let mut read_records = 0u64;
    while let Some(m) = rx_msgs.recv().await {
        counts.messages += 1;
        let batch = match bus::decode_packet_batch(&m.subject, &m.payload) {
            Ok(b) => b,
            Err(reason) => {
                tracing::warn!(seq = m.seq, %reason, "skipping an undecodable batch");
                malformed += 1;
                continue;
            }
        };
        if batch.records.is_empty() {
            // An agent's end-of-input marker (the end of a replayed file), as the windower reads it.
            windower.end_of_input(&batch.agent_id);
        }
        read_records += batch.records.len() as u64;
        let mut kept = 0u64;
        for r in batch.records.iter().filter(|r| r.timestamp >= req.from && r.timestamp <= req.to) {
            let now = clock.at(r.timestamp);
            kept += 1;
            if windower.push(&batch.agent_id, r, now) == PushOutcome::Late {
                counts.late_records += 1;
            }
        }
        counts.records += kept as i64;
        since_poll += 1;
        if since_poll >= cfg.windower_step.max(1) {
            since_poll = 0;
            pending.extend(windower.poll_closed(clock.now()));
            if pending.len() >= WRITE_CHUNK {
                counts.windows += write(&run, &mut scorer, &mut pending).await?;
            }
        }
        pace(cfg.max_records_per_s, read_records, started).await;
    }
    let (retained, _) = reader.await.context("stream reader")??;
    pending.extend(windower.finish());
    counts.windows += write(&run, &mut scorer, &mut pending).await?;
    if counts.records == 0 {
        // Nothing to compare: say what the stream still holds instead of storing an empty run.
        tx.rollback().await?;
        bail!("{}", nothing_retained(req, &retained, counts.messages));
    }
    let model_version = scorer.model().model_version.clone();
    let alerts = scorer.into_alerts();
    counts.alerts = alerts.len() as i64;
    run.alerts(&alerts).await?;
    run.finish(&counts).await?;
    tx.commit().await.context("committing the run")?;
    Ok(Outcome { counts, model_version, malformed_batches: malformed, stream: retained, elapsed: started.elapsed() })
}

/// Scores and stores the windows collected so far.
async fn write(run: &RunTx<'_, '_>, scorer: &mut Scorer, pending: &mut Vec<WindowRecord>) -> Result<i64> {
    if pending.is_empty() {
        return Ok(0);
    }
    let mut windows = std::mem::take(pending);
    let verdicts = scorer.score(&mut windows);
    let rows = scorer.rows(&windows, &verdicts);
    for chunk in rows.chunks(WRITE_CHUNK) {
        run.predictions(chunk).await?;
    }
    Ok(windows.len() as i64)
}

/// Sleeps as long as `done` records are ahead of `cap` per second since `started`.
async fn pace(cap: u64, done: u64, started: Instant) {
    if cap == 0 {
        return;
    }
    let due = Duration::from_secs_f64(done as f64 / cap as f64);
    let elapsed = started.elapsed();
    if due > elapsed + Duration::from_millis(5) {
        tokio::time::sleep(due - elapsed).await;
    }
}

/// The windower's processing-time clock, driven by event time: the live windower sees an agent
/// as idle when it has been silent for `idle_agent_timeout` of wall time, which for a live
/// capture is that much capture time. Read back at full speed, wall time means nothing, so the
/// run advances its clock with the newest capture time seen: deterministic, and an agent whose
/// packets stopped stops holding windows back as it did live.
#[derive(Default)]
struct EventClock {
    base: Option<(Instant, f64)>,
    newest: f64,
}

impl EventClock {
    fn at(&mut self, ts: f64) -> Instant {
        let (_, first) = *self.base.get_or_insert((Instant::now(), ts));
        self.newest = self.newest.max(ts).max(first);
        self.now()
    }

    fn now(&self) -> Instant {
        match self.base {
            Some((base, first)) => base + Duration::from_secs_f64((self.newest - first).max(0.0)),
            None => Instant::now(),
        }
    }
}

/// The error of a range without any retained record: what the stream holds.
fn nothing_retained(req: &Request, s: &bus::replay::Retained, messages: i64) -> String {
    let agent = req.agent.as_deref().map(|a| format!(" of agent {a:?}")).unwrap_or_default();
    let range = format!("{} .. {}", fmt_time(req.from), fmt_time(req.to));
    if s.messages == 0 {
        return format!("no packets{agent} captured in {range}: {} is empty", bus::PACKETS_STREAM);
    }
    let held = format!(
        "{} holds {} batches ({:.1} MB) stored {} .. {}",
        bus::PACKETS_STREAM,
        s.messages,
        s.bytes as f64 / 1e6,
        fmt_time(s.first_stored as f64),
        fmt_time(s.last_stored as f64)
    );
    if req.from < s.first_stored as f64 {
        format!(
            "no packets{agent} captured in {range} are retained (beyond the stream's retention?); {held}; \
             {messages} batches read from {} on",
            fmt_time(req.from)
        )
    } else {
        format!("no packets{agent} captured in {range}; {held}; {messages} batches read")
    }
}

/// Epoch seconds of a TIME argument: RFC 3339 or epoch seconds (`wire::time::parse_ns`).
pub fn parse_time(text: &str) -> Result<f64> {
    wire::time::parse_ns(text).map(|ns| ns as f64 / 1e9).map_err(anyhow::Error::msg)
}

/// RFC 3339 in UTC, to the second.
fn fmt_time(epoch: f64) -> String {
    let (y, m, d, hh, mm, ss) = wire::time::civil(epoch.floor() as i64);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_arguments() {
        assert_eq!(super::parse_time("2015-03-30T14:44:49Z").unwrap(), 1_427_726_689.0);
        assert_eq!(super::parse_time("1427726689.5").unwrap(), 1_427_726_689.5);
        assert!(super::parse_time("last tuesday").unwrap_err().to_string().contains("neither RFC 3339"));
        assert_eq!(super::fmt_time(1_427_726_689.9), "2015-03-30T14:44:49Z");
    }
}
