//! `nta run`: starts the chosen roles in this process and stops them together.

use anyhow::{bail, Context, Result};
use futures::TryFutureExt;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::watch;

use crate::cli::{RunArgs, Target};
use crate::config::NtaConfig;

/// Everything `nta run` needs: the roles to start and the configuration.
pub struct Resolved {
    pub targets: Vec<Target>,
    pub cfg: NtaConfig,
}

type Stop = Pin<Box<dyn Future<Output = ()> + Send>>;
type RoleRun = Pin<Box<dyn Future<Output = Result<Option<agent::AgentSummary>>> + Send>>;

/// A role `nta run` can start: runs until `Stop` resolves (the agent also ends by itself after
/// a replay, with a summary).
struct Role {
    target: Target,
    name: &'static str,
    start: fn(&NtaConfig, Stop) -> RoleRun,
}

/// Every role, in start order (`--target all` starts them all).
const ROLES: &[Role] = &[
    Role {
        target: Target::Ingestor,
        name: "ingestor",
        start: |c, stop| Box::pin(ingestor::run(c.ingestor.clone(), stop).map_ok(|()| None)),
    },
    Role {
        target: Target::Windower,
        name: "windower",
        start: |c, stop| Box::pin(windower::service::run(c.windower.clone(), stop).map_ok(|()| None)),
    },
    Role {
        target: Target::Predictor,
        name: "predictor",
        start: |c, stop| Box::pin(predictor::service::run(c.predictor.clone(), stop).map_ok(|()| None)),
    },
    Role {
        target: Target::Dashboard,
        name: "dashboard",
        start: |c, stop| Box::pin(dashboard::run(c.dashboard.clone(), stop).map_ok(|()| None)),
    },
    Role {
        target: Target::Notifier,
        name: "notifier",
        start: |c, stop| Box::pin(notifier::run(c.notifier.clone(), stop).map_ok(|()| None)),
    },
    Role {
        target: Target::Agent,
        name: "agent",
        start: |c, stop| Box::pin(agent::run(c.agent.clone(), stop).map_ok(Some)),
    },
];

pub fn resolve(args: RunArgs, mut cfg: NtaConfig) -> Result<Resolved> {
    let mut targets = args.targets;
    if targets.contains(&Target::All) {
        // The notifier has nothing to do (and refuses to start) without an output.
        let notify = cfg.notifier.has_outputs();
        targets = ROLES.iter().map(|r| r.target).filter(|t| *t != Target::Notifier || notify).collect();
    }
    targets.dedup();
    cfg.agent.read = args.read;
    cfg.agent.realtime = args.realtime;
    cfg.share();
    if targets.contains(&Target::Agent) {
        // Fails now, before anything starts, without --interface or --read.
        cfg.agent.input()?;
    }
    Ok(Resolved { targets, cfg })
}

/// How long the roles get to stop after the first SIGINT/SIGTERM (beyond the agent's own
/// `drain_grace`) before the process exits anyway: a role stuck on a server that went away must
/// not turn a stop request into a SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

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
    let cfg = &r.cfg;
    let default_metrics = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), Target::metrics_port(&r.targets));
    let metrics_addr = crate::metrics::install(cfg.metrics_addr, default_metrics)?;
    tracing::info!(%metrics_addr, "serving metrics");
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move |mut rx: watch::Receiver<bool>| -> Stop {
        Box::pin(async move {
            let _ = rx.wait_for(|s| *s).await;
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    let replaying = r.targets.contains(&Target::Agent) && cfg.agent.read.is_some();
    // Signals are watched from the start, whatever the roles are doing: the first asks every
    // role to stop (the agent flushes its queue for `drain_grace`, consumers finish the batch in
    // hand); a second one, or roles still busy after the timeout, ends the process.
    {
        let (stop_tx, deadline) = (stop_tx.clone(), cfg.agent.drain_grace() + STOP_TIMEOUT);
        tokio::spawn(async move {
            signal().await;
            tracing::info!("stopping");
            let _ = stop_tx.send(true);
            tokio::select! {
                _ = signal() => tracing::warn!("second signal: exiting without waiting for the roles"),
                _ = tokio::time::sleep(deadline) => tracing::error!(?deadline, "roles did not stop in time; exiting"),
            }
            std::process::exit(130);
        });
    }
    let stop_requested = |rx: &watch::Receiver<bool>| *rx.borrow();

    let mut agent_task = None;
    for role in ROLES.iter().filter(|role| r.targets.contains(&role.target)) {
        crate::metrics::role_started(role.name);
        let running = (role.start)(cfg, stopped(stop_rx.clone()));
        let name = role.name;
        if role.target == Target::Agent {
            // Awaited on its own: a replay ends by itself and its summary is reported.
            agent_task = Some(tokio::spawn(running));
        } else {
            tasks.spawn(async move { running.await.context(name).map(|_| name) });
        }
    }

    if let Some(agent_task) = agent_task {
        let summary = tokio::select! {
            res = agent_task => res.context("agent task")?.context("agent")?.context("agent summary")?,
            _ = wait_task_failure(&mut tasks) => bail!("a role stopped unexpectedly"),
        };
        let c = &summary.capture;
        eprintln!(
            "agent: {} frames, {} decoded, {} malformed; {} batches ({} records) acknowledged by JetStream; {} records dropped{}{}",
            c.frames,
            c.decoded,
            c.malformed,
            summary.publish.batches_acked,
            summary.publish.records_acked,
            summary.dropped_records,
            drop_reasons(&summary.dropped_by_reason),
            c.file_error.as_ref().map(|e| format!("; file error: {e}")).unwrap_or_default()
        );
        if let Some(f) = &summary.frames {
            eprintln!(
                "agent: {} frames kept on {} in {} batches; {} frames dropped{}",
                f.publish.records_acked,
                bus::FRAMES_STREAM,
                f.publish.batches_acked,
                f.dropped,
                drop_reasons(&f.dropped_by_reason),
            );
        }
        if replaying && r.targets.contains(&Target::Ingestor) && !stop_requested(&stop_rx) {
            // A laptop replay (`--target all --read F`): wait until the packets are stored and
            // the windows closed so far are predicted, then say what landed.
            let drained = async {
                bus::consume::wait_drained(&cfg.nats(), bus::PACKETS_STREAM, &cfg.ingestor.durable).await?;
                // The dashboard's per-minute counts come from the ingestor's rollup consumer.
                bus::consume::wait_drained(
                    &cfg.nats(),
                    bus::PACKETS_STREAM,
                    &ingestor::rollup_durable(&cfg.ingestor.durable),
                )
                .await?;
                if r.targets.contains(&Target::Predictor) {
                    // Give the windower a flush interval to publish what the replay closed.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    bus::consume::wait_drained(&cfg.nats(), bus::WINDOWS_STREAM, &cfg.predictor.durable).await?;
                }
                anyhow::Ok(())
            };
            let mut stop = stopped(stop_rx.clone());
            tokio::select! {
                res = drained => res?,
                _ = wait_task_failure(&mut tasks) => bail!("a role stopped unexpectedly"),
                _ = &mut stop => {}
            }
            if stop_requested(&stop_rx) {
                return stop_all(&mut tasks).await;
            }
            print!("{}", crate::report::landed(&cfg.database_url, &summary).await?);
            if r.targets.contains(&Target::Predictor) {
                print!("{}", crate::report::alerts(&cfg.database_url).await?);
            }
            if r.targets.contains(&Target::Dashboard) {
                // The dashboard stays up to explore what landed.
                let login = if cfg.dashboard.password.is_some() {
                    "password from dashboard.password / NTA_DASHBOARD_PASSWORD"
                } else {
                    "open (loopback, no password set)"
                };
                // The replayed capture is rarely from the last hour: the link opens the range
                // that ends at its newest packet.
                println!(
                    "dashboard: http://{}/#/overview?range=latest (login: {login}); Ctrl-C to stop",
                    cfg.dashboard.listen
                );
            } else {
                let _ = stop_tx.send(true);
                return stop_all(&mut tasks).await;
            }
        }
        if replaying && tasks.is_empty() {
            return Ok(());
        }
    }
    tokio::select! {
        _ = stopped(stop_rx.clone()) => {}
        _ = wait_task_failure(&mut tasks) => bail!("a role stopped unexpectedly"),
    }
    let _ = stop_tx.send(true);
    stop_all(&mut tasks).await
}

/// ` (stream_full: 12, shutdown: 3)`, or nothing without drops.
fn drop_reasons(by_reason: &std::collections::BTreeMap<&'static str, u64>) -> String {
    if by_reason.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = by_reason.iter().map(|(r, n)| format!("{r}: {n}")).collect();
    format!(" ({})", parts.join(", "))
}

/// Waits for every role asked to stop.
async fn stop_all(tasks: &mut tokio::task::JoinSet<Result<&'static str>>) -> Result<()> {
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
