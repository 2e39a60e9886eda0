//! `nta run`: starts the chosen roles in this process and stops them together.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;
use wire::streams::StreamLimits;

use crate::cli::{RunArgs, Target};
use crate::config::{FileConfig, DEFAULT_DATABASE_URL, DEFAULT_METRICS_ADDR, DEFAULT_NATS_URL};

/// Everything `nta run` needs, resolved from flags, environment, file and defaults.
pub struct Resolved {
    pub targets: Vec<Target>,
    pub nats_url: String,
    pub database_url: String,
    pub metrics_addr: std::net::SocketAddr,
    pub agent: Option<agent::AgentConfig>,
    pub ingestor: ingestor::IngestorConfig,
    pub windower: windower::service::WindowerServiceConfig,
    pub predictor: predictor::PredictorServiceConfig,
    pub dashboard: dashboard::DashboardConfig,
}

pub fn resolve(args: RunArgs, config: Option<PathBuf>) -> Result<Resolved> {
    let file = FileConfig::load(config.as_deref())?;
    let mut targets = args.targets.clone();
    if targets.contains(&Target::All) {
        // Every role that exists today; later roles join here as they land.
        targets = vec![Target::Agent, Target::Ingestor, Target::Windower, Target::Predictor, Target::Dashboard];
    }
    targets.dedup();
    let nats_url = args.nats_url.or(file.nats_url).unwrap_or_else(|| DEFAULT_NATS_URL.into());
    let database_url = args.database_url.or(file.database_url).unwrap_or_else(|| DEFAULT_DATABASE_URL.into());
    let metrics_addr = args.metrics_addr.or(file.metrics_addr).unwrap_or_else(|| DEFAULT_METRICS_ADDR.parse().unwrap());
    let stream_limits = StreamLimits {
        max_age_hours: args.stream.stream_max_age_hours.or(file.stream.max_age_hours).unwrap_or(StreamLimits::default().max_age_hours),
        max_gb: args.stream.stream_max_gb.or(file.stream.max_gb),
    };

    let agent = if targets.contains(&Target::Agent) {
        let a = args.agent;
        let fa = file.agent;
        let mut cfg = agent::AgentConfig {
            nats_url: nats_url.clone(),
            stream_limits: stream_limits.clone(),
            read: a.read,
            realtime: a.realtime,
            interface: a.interface.or(fa.interface),
            bpf: a.bpf.or(fa.bpf),
            promisc: a.promisc || fa.promisc.unwrap_or(false),
            ..Default::default()
        };
        if let Some(v) = a.agent_id.or(fa.agent_id) { cfg.agent_id = v; }
        if let Some(v) = a.snaplen.or(fa.snaplen) { cfg.snaplen = v; }
        if let Some(v) = a.batch_size.or(fa.batch_size) { cfg.batch_size = v; }
        if let Some(v) = a.batch_timeout_ms.or(fa.batch_timeout_ms) { cfg.batch_timeout_ms = v; }
        if let Some(v) = a.queue_mb.or(fa.queue_mb) { cfg.queue_mb = v; }
        if let Some(v) = a.max_pending_acks.or(fa.max_pending_acks) { cfg.max_pending_acks = v; }
        cfg.input()?;
        Some(cfg)
    } else {
        None
    };

    let mut ing = ingestor::IngestorConfig {
        nats_url: nats_url.clone(),
        database_url: database_url.clone(),
        stream_limits,
        ..Default::default()
    };
    if let Some(d) = args.ingestor.ingestor_durable.or(file.ingestor.durable) {
        ing.durable = d;
    }
    if let Some(days) = args.ingestor.retention_days.or(file.ingestor.retention_days) {
        ing.retention_days = days;
    }
    if let Some(n) = args.ingestor.batches_per_txn.or(file.ingestor.batches_per_txn) {
        ing.batches_per_txn = n.max(1);
    }
    let fw = file.windower;
    let mut win = windower::service::WindowerServiceConfig {
        nats_url: nats_url.clone(),
        database_url: database_url.clone(),
        stream_limits: ing.stream_limits.clone(),
        ..Default::default()
    };
    if let Some(d) = args.windower.windower_durable.or(fw.durable) {
        win.durable = d;
    }
    if let Some(ms) = args.windower.allowed_lateness_ms.or(fw.allowed_lateness_ms) {
        win.windower.allowed_lateness_ms = ms;
    }
    if let Some(s) = args.windower.idle_agent_timeout_s.or(fw.idle_agent_timeout_s) {
        win.windower.idle_agent_timeout_s = s;
    }
    let fp = file.predictor;
    let mut pred = predictor::PredictorServiceConfig {
        nats_url: nats_url.clone(),
        database_url: database_url.clone(),
        stream_limits: ing.stream_limits.clone(),
        ..Default::default()
    };
    pred.model = args.predictor.model.or(fp.model);
    if let Some(d) = args.predictor.predictor_durable.or(fp.durable) {
        pred.durable = d;
    }
    if let Some(c) = args.predictor.min_confidence.or(fp.min_confidence) {
        pred.min_confidence = c;
    }
    if let Some(s) = args.predictor.alert_quiet_s.or(fp.alert_quiet_s) {
        pred.alert_quiet_s = s;
    }
    let dashboard = dashboard::DashboardConfig {
        listen: args.listen.unwrap_or_else(|| dashboard::DEFAULT_LISTEN.parse().expect("default address")),
        database_url: database_url.clone(),
        nats_url: nats_url.clone(),
        // Secrets come from the environment only: flags would show in `ps`.
        password: std::env::var("NTA_DASHBOARD_PASSWORD").ok().filter(|s| !s.is_empty()),
        token: std::env::var("NTA_DASHBOARD_TOKEN").ok().filter(|s| !s.is_empty()),
    };
    Ok(Resolved { targets, nats_url, database_url, metrics_addr, agent, ingestor: ing, windower: win, predictor: pred, dashboard })
}

/// Resolves on SIGINT or SIGTERM.
async fn signal() {
    let term = async {
        #[cfg(unix)]
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

pub async fn run(r: Resolved) -> Result<()> {
    crate::metrics::install(r.metrics_addr)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut tasks = tokio::task::JoinSet::new();
    let replaying = r.agent.as_ref().is_some_and(|a| a.read.is_some());

    if r.targets.contains(&Target::Ingestor) {
        let cfg = r.ingestor.clone();
        let stop = stopped(stop_rx.clone());
        tasks.spawn(async move { ingestor::run(cfg, stop).await.context("ingestor").map(|_| "ingestor") });
    }
    if r.targets.contains(&Target::Windower) {
        let cfg = r.windower.clone();
        let stop = stopped(stop_rx.clone());
        tasks.spawn(async move { windower::service::run(cfg, stop).await.context("windower").map(|_| "windower") });
    }
    if r.targets.contains(&Target::Predictor) {
        let cfg = r.predictor.clone();
        let stop = stopped(stop_rx.clone());
        tasks.spawn(async move { predictor::service::run(cfg, stop).await.context("predictor").map(|_| "predictor") });
    }
    if r.targets.contains(&Target::Dashboard) {
        let cfg = r.dashboard.clone();
        let stop = stopped(stop_rx.clone());
        tasks.spawn(async move { dashboard::run(cfg, stop).await.context("dashboard").map(|_| "dashboard") });
    }
    let agent_task = r.agent.clone().map(|cfg| {
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move { agent::run(cfg, stop).await })
    });

    let sig = tokio::spawn(signal());
    if let Some(agent_task) = agent_task {
        let summary = tokio::select! {
            res = agent_task => res.context("agent task")?.context("agent")?,
            _ = wait_task_failure(&mut tasks) => bail!("a role stopped unexpectedly"),
        };
        let c = &summary.capture;
        eprintln!(
            "agent: {} frames, {} decoded, {} malformed; {} batches ({} records) acknowledged by JetStream; {} records dropped{}",
            c.frames,
            c.decoded,
            c.malformed,
            summary.publish.batches_acked,
            summary.publish.records_acked,
            summary.dropped_records,
            c.file_error.as_ref().map(|e| format!("; file error: {e}")).unwrap_or_default()
        );
        if replaying && r.targets.contains(&Target::Ingestor) {
            // A laptop replay (`--target all --read F`): wait until the packets are stored and
            // the windows closed so far are predicted, then say what landed.
            let drained = async {
                wait_consumer_drained(&r.nats_url, wire::PACKETS_STREAM, &r.ingestor.durable).await?;
                // The dashboard's per-minute counts come from the ingestor's rollup consumer.
                wait_consumer_drained(&r.nats_url, wire::PACKETS_STREAM, &ingestor::rollup_durable(&r.ingestor.durable)).await?;
                if r.targets.contains(&Target::Predictor) {
                    // Give the windower a flush interval to publish what the replay closed.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    wait_consumer_drained(&r.nats_url, wire::window::WINDOWS_STREAM, &r.predictor.durable).await?;
                }
                anyhow::Ok(())
            };
            tokio::select! {
                res = drained => res?,
                _ = wait_task_failure(&mut tasks) => bail!("a role stopped unexpectedly"),
            }
            print!("{}", crate::report::landed(&r.database_url, &summary).await?);
            if r.targets.contains(&Target::Predictor) {
                print!("{}", crate::report::alerts(&r.database_url).await?);
            }
            if r.targets.contains(&Target::Dashboard) {
                // The dashboard stays up to explore what landed.
                let login = if r.dashboard.password.is_some() { "password from NTA_DASHBOARD_PASSWORD" } else { "open (loopback, no password set)" };
                println!("dashboard: http://{} (login: {login}); Ctrl-C to stop", r.dashboard.listen);
            } else {
                let _ = stop_tx.send(true);
                while let Some(res) = tasks.join_next().await {
                    res??;
                }
                return Ok(());
            }
        }
        if replaying && tasks.is_empty() {
            return Ok(());
        }
    }
    tokio::select! {
        _ = sig => tracing::info!("stopping"),
        _ = wait_task_failure(&mut tasks) => bail!("a role stopped unexpectedly"),
    }
    let _ = stop_tx.send(true);
    while let Some(res) = tasks.join_next().await {
        res??;
    }
    Ok(())
}

/// Resolves with the first role that ends (with an error, or unexpectedly without one).
async fn wait_task_failure(tasks: &mut tokio::task::JoinSet<Result<&'static str>>) {
    if tasks.is_empty() {
        return std::future::pending().await;
    }
    match tasks.join_next().await {
        Some(Ok(Ok(role))) => tracing::error!(role, "role exited"),
        Some(Ok(Err(e))) => tracing::error!(error = %format!("{e:#}"), "role failed"),
        Some(Err(e)) => tracing::error!(error = %e, "role panicked"),
        None => {}
    }
}

/// Waits until the durable consumer has delivered and seen acknowledged every message.
async fn wait_consumer_drained(nats_url: &str, stream: &str, durable: &str) -> Result<()> {
    let client = async_nats::connect(nats_url).await?;
    let js = async_nats::jetstream::new(client);
    loop {
        if let Ok(stream) = js.get_stream(stream).await {
            if let Ok(mut consumer) =
                stream.get_consumer::<async_nats::jetstream::consumer::pull::Config>(durable).await
            {
                let info = consumer.info().await?;
                if info.num_pending == 0 && info.num_ack_pending == 0 {
                    return Ok(());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
