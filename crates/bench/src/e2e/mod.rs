//! `nta bench e2e`: end-to-end throughput of the whole stack on this machine. A capture is
//! replayed by an `nta` agent process into a private nats-server, and `nta` role processes
//! (ingestor, windower and predictor: one process, or one each) store every packet in
//! `raw_packets` and `traffic_rollup`, every window in `window_features` and a prediction per
//! window, in a throw-away database. The clock runs from the agent's start until the last of
//! those is complete; the counts are then checked exactly (rows == decoded frames, windows ==
//! what `nta analyze`'s path computes offline, one prediction per window, rollup == rows).
//!
//! For reference, the same command times each stage alone on a full stream (agent publishing
//! with nobody consuming, then the ingestor, the windower and the predictor one after the other),
//! so the bottleneck shows, and PostgreSQL's own `COPY` of the stored rows from a file into an
//! identical table (the ceiling the ingestor's write path is measured against).

pub(crate) mod stack;

use anyhow::{bail, ensure, Context, Result};
use futures::{SinkExt, StreamExt};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use stack::{BenchDb, NtaProcess, PrivateNats};
use store::packets::COLUMNS;

pub const DEFAULT_FRAMES: usize = 2_200_000;

/// Durable consumer names of the roles (their defaults; the bench reads their backlogs).
const INGESTOR: &str = "nta-ingestor";
const ROLLUP: &str = "nta-ingestor-rollup";
const WINDOWER: &str = "nta-windower";
const PREDICTOR: &str = "nta-predictor";

pub struct E2eOptions {
    /// Frames of the generated capture (ignored with `file`).
    pub frames: usize,
    pub file: Option<PathBuf>,
    /// Server to run against (a database is created per run and dropped).
    pub database_url: String,
    /// The `nta` binary whose roles are measured (normally the running one).
    pub nta_bin: PathBuf,
    /// End-to-end repetitions (each on a fresh nats-server and database).
    pub runs: usize,
    /// Also time each stage alone.
    pub stages: bool,
    /// Ingestor, windower and predictor as three processes instead of one.
    pub separate: bool,
    /// Also time PostgreSQL's own COPY of the stored rows.
    pub copy_reference: bool,
    /// Give up on a phase after this long.
    pub timeout: Duration,
}

/// What a correct run must end with.
#[derive(Debug, Clone, Copy)]
struct Expected {
    frames: u64,
    rows: i64,
    windows: i64,
}

pub async fn run_e2e_bench(o: &E2eOptions) -> Result<String> {
    let tmp = tempfile::Builder::new().prefix("nta-bench-e2e").tempdir()?;
    let mut out = String::new();
    let load_before = loadavg();
    let capture = match &o.file {
        Some(f) => f.clone(),
        None => {
            let p = tmp.path().join("capture.pcap");
            let (path, frames) = (p.clone(), o.frames);
            tokio::task::spawn_blocking(move || crate::generate_capture(&path, frames)).await??;
            p
        }
    };
    let exp = expected(&capture).await?;
    writeln!(
        out,
        "e2e bench: {} ({} frames, {} records, {} windows offline); roles: {}",
        capture.display(),
        exp.frames,
        exp.rows,
        exp.windows,
        if o.separate {
            "ingestor, windower, predictor as 3 processes"
        } else {
            "ingestor+windower+predictor in 1 process"
        }
    )?;

    let mut stage_rates = None;
    if o.stages {
        let s = stages(o, tmp.path(), &capture, exp).await.context("per-stage run")?;
        stage_rates = Some(s);
    }
    let mut rates = Vec::new();
    for run in 0..o.runs.max(1) {
        let copy = o.copy_reference && run + 1 == o.runs.max(1);
        let E2eRun { t: r, cpu, copy_reference } =
            end_to_end(o, tmp.path(), &capture, exp, run, copy).await.with_context(|| format!("run {run}"))?;
        writeln!(
            out,
            "run {}: {:.2} s, {:.0} packets/s end to end (agent done at {:.2} s; stored {:.2} s, rollup {:.2} s, \
             windows {:.2} s, predictions {:.2} s)",
            run + 1,
            r.total,
            exp.rows as f64 / r.total,
            r.agent,
            r.rows,
            r.rollup,
            r.windows,
            r.predictions
        )?;
        let total: f64 = cpu.iter().map(|(_, c)| c).sum();
        let per_packet = |c: f64| c * 1e6 / exp.rows as f64;
        let parts: Vec<String> = cpu.iter().map(|(what, c)| format!("{what} {:.2}", per_packet(*c))).collect();
        writeln!(
            out,
            "  CPU us/packet: {}; total {:.2} -> {:.0} packets/s if {} cores did nothing else",
            parts.join(", "),
            per_packet(total),
            exp.rows as f64 * cores() / total,
            cores()
        )?;
        if let Some((secs, ref_rate)) = copy_reference {
            writeln!(
                out,
                "reference: PostgreSQL COPY (FORMAT binary) of the {} stored rows from a file into an identical \
                 table, 1 connection: {secs:.2} s, {ref_rate:.0} rows/s",
                exp.rows
            )?;
        }
        rates.push(exp.rows as f64 / r.total);
    }
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    writeln!(
        out,
        "end to end: median {median:.0} packets/s over {} run(s); goal 250000: {}",
        rates.len(),
        met(median)
    )?;
    if let Some(s) = stage_rates {
        let rate = |secs: f64| exp.rows as f64 / secs;
        writeln!(out, "stages alone (packets/s, each from a full stream, process start included):")?;
        writeln!(
            out,
            "  agent publish (no consumer)  {:>9.0}   e2e/agent {:.2}",
            rate(s.agent),
            median / rate(s.agent)
        )?;
        writeln!(out, "  ingestor raw_packets         {:>9.0}", rate(s.rows))?;
        writeln!(out, "  ingestor traffic_rollup      {:>9.0}", rate(s.rollup))?;
        writeln!(out, "  windower                     {:>9.0}", rate(s.windows))?;
        writeln!(out, "  predictor ({} windows)  {:>9.0}", exp.windows, rate(s.predictions))?;
    }
    writeln!(out, "load average before/after: {load_before} / {}", loadavg())?;
    Ok(out)
}

fn met(rate: f64) -> &'static str {
    if rate >= 250_000.0 {
        "met"
    } else {
        "NOT met"
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Records and windows of the capture, through the agent's reader and the windower library
/// (what `nta analyze` does).
async fn expected(capture: &Path) -> Result<Expected> {
    let path = capture.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut rows = 0i64;
        let cfg = windower::WindowerConfig::default();
        let (windows, _) = train::windows_from_file(&path, &cfg, |_| rows += 1)?;
        let frames = agent::offline::decode_file(&path, agent::offline::OutputFormat::Msgpack, &mut std::io::sink())?;
        ensure!(frames.decoded as i64 == rows, "reader and decoder disagree on {}", path.display());
        Ok(Expected { frames: frames.frames, rows, windows: windows.len() as i64 })
    })
    .await?
}

/// Seconds from the start of a phase until each part was complete.
#[derive(Debug, Default, Clone, Copy)]
struct Timings {
    agent: f64,
    rows: f64,
    rollup: f64,
    windows: f64,
    predictions: f64,
    total: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Rows,
    Rollup,
    Windows,
    Predictions,
}

/// Polls until every part of `parts` is complete: its consumer has nothing pending or unacked
/// and the table holds the expected count. Returns the seconds since `start` at which each was
/// first seen complete. `agent`, while running, means more is coming (nothing is complete).
// One call site per phase, each naming what it waits for; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
async fn wait_parts(
    nats: &async_nats::Client,
    db: &tokio_postgres::Client,
    exp: Expected,
    parts: &[Part],
    start: Instant,
    roles: &mut [NtaProcess],
    mut agent: Option<&mut NtaProcess>,
    timeout: Duration,
) -> Result<Timings> {
    let mut t = Timings::default();
    let mut pending: Vec<Part> = parts.to_vec();
    while !pending.is_empty() {
        if start.elapsed() > timeout {
            bail!(
                "timed out after {timeout:?} waiting for {pending:?} ({}; expected {} rows, {} windows)",
                progress(db).await?,
                exp.rows,
                exp.windows
            );
        }
        for r in roles.iter_mut() {
            r.check_alive()?;
        }
        if let Some(a) = agent.as_deref_mut() {
            if !a.try_finished()? {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            t.agent = start.elapsed().as_secs_f64();
            agent = None;
        }
        let mut still = Vec::new();
        for part in pending {
            if !part_done(nats, db, exp, part).await? {
                still.push(part);
                continue;
            }
            let secs = start.elapsed().as_secs_f64();
            match part {
                Part::Rows => t.rows = secs,
                Part::Rollup => t.rollup = secs,
                Part::Windows => t.windows = secs,
                Part::Predictions => t.predictions = secs,
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    t.total = start.elapsed().as_secs_f64();
    Ok(t)
}

async fn part_done(nats: &async_nats::Client, db: &tokio_postgres::Client, exp: Expected, part: Part) -> Result<bool> {
    let (stream, durable) = match part {
        Part::Rows => (bus::PACKETS_STREAM, INGESTOR),
        Part::Rollup => (bus::PACKETS_STREAM, ROLLUP),
        Part::Windows => (bus::PACKETS_STREAM, WINDOWER),
        Part::Predictions => (bus::WINDOWS_STREAM, PREDICTOR),
    };
    // The windower acknowledges a batch only once every window it touched is closed, and may
    // keep the last ones held past the end of the replay: its windows are complete when their
    // count is the offline path's, whatever its backlog says.
    if part != Part::Windows && bus::consume::backlog(nats, stream, durable).await? != Some(0) {
        return Ok(false);
    }
    let count = |sql: &'static str| async move { db.query_one(sql, &[]).await.map(|r| r.get::<_, i64>(0)) };
    Ok(match part {
        Part::Rows => count("SELECT coalesce(sum(records), 0)::int8 FROM ingested_batches").await? == exp.rows,
        Part::Rollup => {
            count("SELECT count(*) FROM rolled_up_batches").await?
                == count("SELECT count(*) FROM ingested_batches").await?
                && count("SELECT coalesce(sum(records), 0)::int8 FROM ingested_batches").await? == exp.rows
        }
        Part::Windows => count("SELECT count(*) FROM window_features").await? == exp.windows,
        Part::Predictions => count("SELECT count(*) FROM predictions").await? == exp.windows,
    })
}

async fn progress(db: &tokio_postgres::Client) -> Result<String> {
    let r = db
        .query_one(
            "SELECT (SELECT coalesce(sum(records), 0)::int8 FROM ingested_batches), \
                    (SELECT count(*) FROM rolled_up_batches), (SELECT count(*) FROM window_features), \
                    (SELECT count(*) FROM predictions)",
            &[],
        )
        .await?;
    Ok(format!(
        "rows {}, rolled-up batches {}, windows {}, predictions {}",
        r.get::<_, i64>(0),
        r.get::<_, i64>(1),
        r.get::<_, i64>(2),
        r.get::<_, i64>(3)
    ))
}

/// Seconds each stage alone took, from its process start.
struct StageSecs {
    agent: f64,
    rows: f64,
    rollup: f64,
    windows: f64,
    predictions: f64,
}

/// Each stage alone, one after the other on one stream: the agent fills NTA_PACKETS with no
/// consumer, then the ingestor drains it, then the windower (filling NTA_WINDOWS), then the
/// predictor.
async fn stages(o: &E2eOptions, dir: &Path, capture: &Path, exp: Expected) -> Result<StageSecs> {
    let nats = PrivateNats::start(&dir.join("nats-stages")).await?;
    let db = BenchDb::create(&o.database_url, "stages").await?;
    let res = stages_in(o, dir, capture, exp, &nats, &db).await;
    nats.stop().await;
    let dropped = db.drop_db().await;
    let secs = res?;
    dropped?;
    Ok(secs)
}

async fn stages_in(
    o: &E2eOptions,
    dir: &Path,
    capture: &Path,
    exp: Expected,
    nats: &PrivateNats,
    db: &BenchDb,
) -> Result<StageSecs> {
    let client = bus::connect(&bus::Nats::new(&nats.url), "nta-bench").await?;
    let pg = db.client().await?;
    let start = Instant::now();
    replay(o, dir, capture, exp, &nats.url, &db.url).await?;
    let agent = start.elapsed().as_secs_f64();
    let alone = |target: &'static str, parts: &'static [Part]| {
        let (client, pg) = (&client, &pg);
        async move {
            let start = Instant::now();
            let mut roles = [NtaProcess::spawn(&o.nta_bin, dir, target, &nats.url, &db.url, &[])?];
            let t = wait_parts(client, pg, exp, parts, start, &mut roles, None, o.timeout).await;
            for r in roles {
                r.kill().await;
            }
            t.with_context(|| format!("{target} alone"))
        }
    };
    let ing = alone("ingestor", &[Part::Rows, Part::Rollup]).await?;
    let win = alone("windower", &[Part::Windows]).await?;
    let pred = alone("predictor", &[Part::Predictions]).await?;
    Ok(StageSecs { agent, rows: ing.rows, rollup: ing.rollup, windows: win.windows, predictions: pred.predictions })
}

/// Replays the capture with an agent process and checks its summary.
async fn replay(o: &E2eOptions, dir: &Path, capture: &Path, exp: Expected, nats: &str, db: &str) -> Result<()> {
    let agent = spawn_agent(o, dir, capture, nats, db)?;
    let log = tokio::time::timeout(o.timeout, agent.wait_success()).await.context("agent timed out")??;
    check_agent_summary(&log, exp)
}

fn spawn_agent(o: &E2eOptions, dir: &Path, capture: &Path, nats: &str, db: &str) -> Result<NtaProcess> {
    let file = capture.to_str().context("capture path is not UTF-8")?;
    NtaProcess::spawn(&o.nta_bin, dir, "agent", nats, db, &["--read", file, "--agent-id", "bench"])
}

/// The agent's own account: every frame read, every decoded record acknowledged, none dropped.
fn check_agent_summary(log: &str, exp: Expected) -> Result<()> {
    let line = log.lines().find(|l| l.starts_with("agent:")).context("no agent summary line")?;
    let nums: Vec<u64> =
        line.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).filter_map(|s| s.parse().ok()).collect();
    ensure!(nums.len() >= 6, "unexpected agent summary: {line}");
    ensure!(nums[0] == exp.frames, "agent read {} frames, expected {}: {line}", nums[0], exp.frames);
    ensure!(nums[4] as i64 == exp.rows && nums[5] == 0, "agent did not deliver every record: {line}");
    Ok(())
}

struct E2eRun {
    t: Timings,
    /// CPU seconds per component during the run.
    cpu: Vec<(String, f64)>,
    /// (seconds, rows/s) of PostgreSQL's own COPY of the same rows.
    copy_reference: Option<(f64, f64)>,
}

async fn end_to_end(
    o: &E2eOptions,
    dir: &Path,
    capture: &Path,
    exp: Expected,
    run: usize,
    copy: bool,
) -> Result<E2eRun> {
    let nats = PrivateNats::start(&dir.join(format!("nats-{run}"))).await?;
    let db = BenchDb::create(&o.database_url, "e2e").await?;
    let res = end_to_end_in(o, dir, capture, exp, &nats, &db, copy).await;
    nats.stop().await;
    let dropped = db.drop_db().await;
    let r = res?;
    dropped?;
    Ok(r)
}

async fn end_to_end_in(
    o: &E2eOptions,
    dir: &Path,
    capture: &Path,
    exp: Expected,
    nats: &PrivateNats,
    db: &BenchDb,
    copy: bool,
) -> Result<E2eRun> {
    let client = bus::connect(&bus::Nats::new(&nats.url), "nta-bench").await?;
    let pg = db.client().await?;
    let targets: &[&str] =
        if o.separate { &["ingestor", "windower", "predictor"] } else { &["ingestor,windower,predictor"] };
    let mut roles = targets
        .iter()
        .map(|t| NtaProcess::spawn(&o.nta_bin, dir, t, &nats.url, &db.url, &[]))
        .collect::<Result<Vec<_>>>()?;
    // The clock measures throughput, not start-up: wait for every role's consumer first.
    let ready = Instant::now();
    for (stream, durable) in [
        (bus::PACKETS_STREAM, INGESTOR),
        (bus::PACKETS_STREAM, ROLLUP),
        (bus::PACKETS_STREAM, WINDOWER),
        (bus::WINDOWS_STREAM, PREDICTOR),
    ] {
        while bus::consume::backlog(&client, stream, durable).await?.is_none() {
            for r in roles.iter_mut() {
                r.check_alive()?;
            }
            ensure!(ready.elapsed() < Duration::from_secs(60), "consumer {durable} not created after 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let cpu0 = CpuSample::take(&pg, nats, &roles).await?;
    let start = Instant::now();
    let mut agent = spawn_agent(o, dir, capture, &nats.url, &db.url)?;
    let all = [Part::Rows, Part::Rollup, Part::Windows, Part::Predictions];
    let t = wait_parts(&client, &pg, exp, &all, start, &mut roles, Some(&mut agent), o.timeout).await?;
    check_agent_summary(&agent.wait_success().await?, exp)?;
    let cpu = CpuSample::take(&pg, nats, &roles).await?.since(&cpu0);
    verify(&pg, exp).await?;
    for r in roles {
        r.kill().await;
    }
    let copy_reference = if copy { Some(copy_reference(&pg, dir, exp).await.context("COPY reference")?) } else { None };
    Ok(E2eRun { t, cpu, copy_reference })
}

/// The exact checks: every record stored once (each batch's rows are exactly idx 0..n-1 and n
/// is the ledger's count), the rollup adds up to the rows, every window stored and predicted.
async fn verify(pg: &tokio_postgres::Client, exp: Expected) -> Result<()> {
    let one = |sql: &'static str| async move { pg.query_one(sql, &[]).await.map(|r| r.get::<_, i64>(0)) };
    let rows = one("SELECT count(*) FROM raw_packets").await?;
    ensure!(rows == exp.rows, "raw_packets holds {rows} rows, expected {}", exp.rows);
    let bad = one(
        "SELECT count(*) FROM (SELECT batch_id, count(*) AS n, count(DISTINCT idx) AS d, min(idx) AS lo, max(idx) AS hi \
           FROM raw_packets GROUP BY batch_id) p \
         FULL JOIN ingested_batches b USING (batch_id) \
         WHERE coalesce(p.n, 0) <> coalesce(b.records, -1) OR p.d <> p.n OR p.lo <> 0 OR p.hi <> p.n - 1",
    )
    .await?;
    ensure!(bad == 0, "{bad} batches whose rows disagree with the ledger (lost or doubled packets)");
    let rolled =
        one("SELECT coalesce(sum(packets), 0)::int8 FROM traffic_rollup WHERE width = 60 AND dim = 'protocol'").await?;
    ensure!(rolled == exp.rows, "traffic_rollup counts {rolled} packets, expected {}", exp.rows);
    let windows = one("SELECT count(*) FROM window_features").await?;
    ensure!(windows == exp.windows, "{windows} windows stored, the offline path makes {}", exp.windows);
    let unpredicted = one("SELECT count(*) FROM window_features w WHERE NOT EXISTS (SELECT 1 FROM predictions p \
         WHERE (p.view, p.key, p.window_start, p.window_size) = (w.view, w.key, w.window_start, w.window_size))")
    .await?;
    ensure!(unpredicted == 0, "{unpredicted} windows without a prediction");
    Ok(())
}

/// PostgreSQL alone: the stored rows exported to a file (binary COPY), then copied from it in one
/// transaction on one connection into a table with the same columns, indexes and day partitions.
async fn copy_reference(pg: &tokio_postgres::Client, dir: &Path, exp: Expected) -> Result<(f64, f64)> {
    let file = dir.join("raw_packets.copy");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file)?);
        let stream =
            pg.copy_out(&format!("COPY (SELECT {COLUMNS} FROM raw_packets) TO STDOUT (FORMAT binary)")).await?;
        futures::pin_mut!(stream);
        while let Some(chunk) = stream.next().await {
            w.write_all(&chunk?)?;
        }
        w.flush()?;
    }
    let r = pg
        .query_one(
            "SELECT (min(ts) AT TIME ZONE 'UTC')::date - DATE '1970-01-01', (max(ts) AT TIME ZONE 'UTC')::date - DATE '1970-01-01' FROM raw_packets",
            &[],
        )
        .await?;
    let (dmin, dmax): (i32, i32) = (r.get(0), r.get(1));
    crate::ingest::create_reference_table(pg, dmin, dmax).await?;
    let start = Instant::now();
    pg.batch_execute("BEGIN").await?;
    let sink =
        pg.copy_in::<_, bytes::Bytes>(&format!("COPY raw_packets_ref ({COLUMNS}) FROM STDIN (FORMAT binary)")).await?;
    futures::pin_mut!(sink);
    let mut f = std::fs::File::open(&file)?;
    loop {
        let mut buf = vec![0u8; 1 << 20];
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        sink.send(bytes::Bytes::from(buf)).await?;
    }
    let copied = sink.finish().await?;
    pg.batch_execute("COMMIT").await?;
    let secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&file);
    ensure!(copied as i64 == exp.rows, "reference COPY wrote {copied} rows, expected {}", exp.rows);
    Ok((secs, exp.rows as f64 / secs))
}

fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()) as f64
}

/// CPU time used so far by everything a run involves, to tell where the time goes whatever
/// else the machine is doing (wall-clock figures on a shared machine are noisy; CPU seconds
/// per packet much less so).
struct CpuSample {
    /// Children already waited for (the agent, once it has exited).
    reaped: f64,
    roles: Vec<(String, f64)>,
    nats: f64,
    /// PostgreSQL backends serving the bench database, by pid.
    backends: Vec<(i32, f64)>,
    /// PostgreSQL's WAL writer, checkpointer and background writer (shared by every database
    /// on the server, so other users' work shows up here too).
    background: f64,
    bench: f64,
}

impl CpuSample {
    async fn take(pg: &tokio_postgres::Client, nats: &PrivateNats, roles: &[NtaProcess]) -> Result<CpuSample> {
        let secs = |pid: Option<u32>| pid.and_then(stack::cpu_secs).unwrap_or(0.0);
        let rows = pg
            .query(
                "SELECT pid, coalesce(datname = current_database(), false) FROM pg_stat_activity WHERE pid <> pg_backend_pid() \
                 AND (datname = current_database() OR backend_type IN ('walwriter', 'checkpointer', 'background writer'))",
                &[],
            )
            .await?;
        let mut backends = Vec::new();
        let mut background = 0.0;
        for r in rows {
            let (pid, ours): (i32, bool) = (r.get(0), r.get(1));
            let cpu = secs(u32::try_from(pid).ok());
            if ours {
                backends.push((pid, cpu));
            } else {
                background += cpu;
            }
        }
        Ok(CpuSample {
            reaped: stack::reaped_children_cpu_secs(),
            roles: roles.iter().map(|r| (r.name().to_string(), secs(r.pid()))).collect(),
            nats: secs(nats.pid()),
            backends,
            background,
            bench: secs(Some(std::process::id())),
        })
    }

    /// CPU seconds per component between `before` and `self`.
    fn since(&self, before: &CpuSample) -> Vec<(String, f64)> {
        let mut out = vec![("agent".to_string(), self.reaped - before.reaped)];
        for ((name, now), (_, then)) in self.roles.iter().zip(&before.roles) {
            out.push((format!("nta {name}"), now - then));
        }
        out.push(("nats-server".into(), self.nats - before.nats));
        let backends: f64 = self
            .backends
            .iter()
            .map(|(pid, now)| now - before.backends.iter().find(|(p, _)| p == pid).map_or(0.0, |b| b.1))
            .sum();
        out.push(("PostgreSQL backends".into(), backends));
        out.push(("PostgreSQL WAL/checkpoint (whole server)".into(), self.background - before.background));
        out.push(("bench polling".into(), self.bench - before.bench));
        out
    }
}
