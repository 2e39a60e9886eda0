//! `nta bench rescore`: how much a concurrent `nta rescore` slows the live pipeline. On a
//! private nats-server and a throw-away database, `nta` role processes (ingestor and windower,
//! one process) first store a "history" capture; then, alternately, a "live" capture of the
//! same traffic shifted to later days is replayed alone (baseline) or while `nta rescore`
//! re-scores the whole history (optionally rate-capped). Each live phase is timed from the
//! agent's start until the ingestor (rows and rollup) and the windower have acknowledged every
//! batch; its packets/s with and without the rescore are compared.

use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::e2e::stack::{BenchDb, NtaProcess, PrivateNats};

pub struct RescoreBenchOptions {
    pub history_frames: usize,
    pub live_frames: usize,
    /// Baseline + concurrent pairs.
    pub rounds: usize,
    /// `rescore.max_records_per_s` of the rescore (0: no cap).
    pub max_records_per_s: u64,
    pub model: PathBuf,
    pub database_url: String,
    pub nta_bin: PathBuf,
    pub timeout: Duration,
}

/// Durables whose backlog a live phase waits for.
const DURABLES: [&str; 3] = ["nta-ingestor", "nta-ingestor-rollup", "nta-windower"];
/// First capture second of `generate_capture`.
const CAPTURE_START: i64 = 1_700_000_000;
const DAY: i64 = 86_400;

pub async fn run_rescore_bench(o: &RescoreBenchOptions) -> Result<String> {
    let tmp = tempfile::Builder::new().prefix("nta-bench-rescore").tempdir()?;
    let dir = tmp.path();
    let history = dir.join("history.pcap");
    let (h, n) = (history.clone(), o.history_frames);
    tokio::task::spawn_blocking(move || crate::generate_capture(&h, n)).await??;
    let live_base = dir.join("live.pcap");
    let (l, n) = (live_base.clone(), o.live_frames);
    tokio::task::spawn_blocking(move || crate::generate_capture(&l, n)).await??;

    let nats = PrivateNats::start(dir).await?;
    let db = BenchDb::create(&o.database_url, "rescore").await?;
    let res = rounds(o, dir, &history, &live_base, &nats.url, &db.url).await;
    nats.stop().await;
    db.drop_db().await?;
    if res.is_err() {
        // The processes' logs explain a failure.
        let kept = tmp.keep();
        return res.with_context(|| format!("logs kept in {}", kept.display()));
    }
    res
}

async fn rounds(
    o: &RescoreBenchOptions,
    dir: &Path,
    history: &Path,
    live: &Path,
    nats: &str,
    db: &str,
) -> Result<String> {
    let client = async_nats::connect(nats).await?;
    let mut roles = NtaProcess::spawn(&o.nta_bin, dir, "ingestor,windower", nats, db, &[])?;
    let mut out = String::new();
    let t = replay(o, dir, history, "history", nats, db, &client, &mut roles).await?;
    writeln!(out, "history: {} frames stored and windowed in {t:.2} s", o.history_frames)?;
    let (mut alone, mut with) = (Vec::new(), Vec::new());
    for round in 0..o.rounds.max(1) {
        for concurrent in [false, true] {
            // Each live phase on days of its own: its windows are new, never late.
            let day = 1 + 2 * round as i64 + concurrent as i64;
            let file = dir.join(format!("live-{day}.pcap"));
            shift_capture(live, &file, day * DAY)?;
            let mut rescore = concurrent.then(|| spawn_rescore(o, dir, nats, db)).transpose()?;
            let started = Instant::now();
            let secs = replay(o, dir, &file, &format!("live{day}"), nats, db, &client, &mut roles).await?;
            let rate = o.live_frames as f64 / secs;
            let Some(r) = rescore.take() else {
                writeln!(out, "round {}: live alone {secs:.2} s, {rate:.0} packets/s", round + 1)?;
                eprint!("{}", out.lines().last().map(|l| format!("{l}\n")).unwrap_or_default());
                alone.push(rate);
                continue;
            };
            let log = tokio::time::timeout(o.timeout, r.wait_success()).await.context("rescore timed out")??;
            // The rescore's own time, from its summary line ("... in 4.7 s").
            let rescore_secs = log
                .lines()
                .find(|l| l.starts_with("run bench:"))
                .and_then(|l| l.rsplit_once(" in "))
                .and_then(|(_, t)| t.trim().trim_end_matches(" s").parse::<f64>().ok())
                .unwrap_or(f64::NAN);
            let waited = started.elapsed().as_secs_f64();
            writeln!(
                out,
                "round {}: live with rescore {secs:.2} s, {rate:.0} packets/s; the rescore of {} records took \
                 {rescore_secs:.2} s{}",
                round + 1,
                o.history_frames,
                if rescore_secs < secs { " (ended before the live phase: partial overlap)" } else { "" }
            )?;
            if waited > secs + 0.5 {
                writeln!(out, "  (the rescore ended {:.2} s after the live phase)", waited - secs)?;
            }
            if !log.contains(&format!("{} records in the range", o.history_frames)) {
                bail!("the rescore did not read the whole history: {log}");
            }
            eprintln!("{}", out.lines().rev().find(|l| l.starts_with("round")).unwrap_or_default());
            with.push(rate);
        }
    }
    roles.kill().await;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        (v[(n - 1) / 2] + v[n / 2]) / 2.0
    };
    let (a, w) = (median(&mut alone), median(&mut with));
    writeln!(
        out,
        "live ingestor+windower: median {a:.0} packets/s alone, {w:.0} with a concurrent rescore{} ({:.2}x, {:.0}% \
         slower)",
        if o.max_records_per_s > 0 { format!(" capped at {} records/s", o.max_records_per_s) } else { String::new() },
        w / a,
        (1.0 - w / a) * 100.0
    )?;
    Ok(out)
}

fn spawn_rescore(o: &RescoreBenchOptions, dir: &Path, nats: &str, db: &str) -> Result<NtaProcess> {
    let (from, to) = (CAPTURE_START.to_string(), (CAPTURE_START + DAY - 1).to_string());
    let model = o.model.to_str().context("model path is not UTF-8")?;
    let cap = o.max_records_per_s.to_string();
    let args = ["--from", &from, "--to", &to, "--model", model, "--run", "bench", "--rescore-max-records-per-s", &cap];
    NtaProcess::spawn_command(&o.nta_bin, dir, "rescore", nats, db, &args)
}

/// Replays `file` as agent `agent` and waits until every role has acknowledged every batch;
/// returns the seconds from the agent's start.
#[allow(clippy::too_many_arguments)]
async fn replay(
    o: &RescoreBenchOptions,
    dir: &Path,
    file: &Path,
    agent: &str,
    nats: &str,
    db: &str,
    client: &async_nats::Client,
    roles: &mut NtaProcess,
) -> Result<f64> {
    let start = Instant::now();
    let path = file.to_str().context("capture path is not UTF-8")?;
    let a = NtaProcess::spawn(&o.nta_bin, dir, "agent", nats, db, &["--read", path, "--agent-id", agent])?;
    tokio::time::timeout(o.timeout, a.wait_success()).await.context("agent timed out")??;
    let mut last = (Vec::new(), Instant::now());
    loop {
        roles.check_alive()?;
        let mut backlogs = Vec::new();
        for d in DURABLES {
            backlogs.push(bus::consume::backlog(client, bus::PACKETS_STREAM, d).await?);
        }
        if backlogs.iter().all(|b| *b == Some(0)) {
            return Ok(start.elapsed().as_secs_f64());
        }
        if backlogs != last.0 {
            last = (backlogs, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(60) {
            // Seen with an earlier agent, which retried failed publications in reverse order:
            // its end-of-input marker stored before its last batches made the agent active
            // again for the windower, whose last windows then waited for more packets.
            bail!(
                "no progress for 60 s (backlogs of {DURABLES:?}: {:?}) replaying {}: windows left open?",
                last.0,
                file.display()
            );
        }
        if start.elapsed() > o.timeout {
            bail!("the roles did not catch up with {} within {:?}", file.display(), o.timeout);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A copy of a classic pcap file (as `generate_capture` writes) with every timestamp moved by
/// `secs`.
fn shift_capture(src: &Path, dst: &Path, secs: i64) -> Result<()> {
    let mut b = std::fs::read(src)?;
    let mut at = 24;
    while at + 16 <= b.len() {
        let ts = u32::from_le_bytes(b[at..at + 4].try_into()?) as i64 + secs;
        b[at..at + 4].copy_from_slice(&u32::try_from(ts)?.to_le_bytes());
        let caplen = u32::from_le_bytes(b[at + 8..at + 12].try_into()?) as usize;
        at += 16 + caplen;
    }
    std::fs::write(dst, b)?;
    Ok(())
}
