//! Sharing the key partitions among the windower processes of one durable name.
//!
//! Every process registers as a member (a marked PostgreSQL connection: a process that dies
//! stops counting as soon as its connection closes) and, every `claim_interval_ms`, compares
//! the partitions it runs with its fair share, `ceil(partitions / members)`:
//! * below it, it claims free partitions: a partition is free when nobody holds its instance
//!   lock (a PostgreSQL session advisory lock, released when its holder dies), so a dead
//!   process's partitions are taken over by the survivors within one interval;
//! * above it (another process joined), it hands one partition back per interval: that
//!   partition's windower stops gracefully (closed windows stored, their batches acked) and
//!   releases the lock for the newcomer.
//!
//! Whoever takes a partition resumes from its checkpoint (see `resume`), so a takeover, a
//! rebalancing and a restart are the same event: windows identical to one windower's.

use super::{metrics as m, Service, WindowerServiceConfig};
use crate::Partition;
use anyhow::Result;
use bus::{Failpoint, Shutdown};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};
use store::windows as db;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// One partition's windower running in this process.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<()>>,
}

pub(super) async fn run(
    cfg: WindowerServiceConfig,
    failpoint: Failpoint,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let mut shutdown = Shutdown::new(shutdown);
    let count = cfg.partitions.max(1);
    let member = tokio::select! {
        c = bus::startup::wait_for_database(super::ROLE, || store::open(&cfg.database_url), store::conn::unreachable) => c?,
        _ = shutdown.wait() => return Ok(()),
    };
    db::join_members(&member, &cfg.durable).await?;
    let mut member = store::Reconnecting::new(cfg.database_url.clone(), member);
    let mut running: BTreeMap<u32, Running> = BTreeMap::new();
    // Processes starting together try different partitions first.
    let first = std::process::id() % count;
    let mut waiting_since: Option<Instant> = None;
    info!(durable = %cfg.durable, partitions = count, "windower started");
    loop {
        // Partitions whose windower ended: an error is logged and the partition is free again
        // (claimed anew below, by this process or another).
        let ended: Vec<u32> = running.iter().filter(|(_, r)| r.task.is_finished()).map(|(p, _)| *p).collect();
        for p in ended {
            let r = running.remove(&p).expect("listed above");
            match r.task.await {
                Ok(Ok(())) => info!(partition = %Partition { index: p, count }, "windower partition stopped"),
                Ok(Err(e)) => {
                    error!(partition = %Partition { index: p, count }, error = format!("{e:#}"), "windower partition failed; it is free for the next claim")
                }
                Err(e) => error!(partition = %Partition { index: p, count }, error = %e, "windower partition panicked"),
            }
        }
        let members = match members(&mut member, &cfg.durable).await {
            Ok(n) => n,
            Err(e) => {
                warn!(error = format!("{e:#}"), "cannot count the windowers; keeping the partitions held");
                running.len().max(1)
            }
        };
        let share = count.div_ceil(members as u32) as usize;
        if running.len() > share {
            // Someone joined: hand back one partition (the last), gracefully.
            if let Some((&p, r)) = running.iter_mut().next_back() {
                if let Some(stop) = r.stop.take() {
                    let part = Partition { index: p, count };
                    info!(partition = %part, members, share, "handing a partition back to a new windower");
                    ::metrics::counter!(m::PARTITION_RELEASES_TOTAL).increment(1);
                    let _ = stop.send(());
                }
            }
        } else if running.len() < share {
            for p in (0..count).map(|i| (first + i) % count) {
                if running.len() >= share || shutdown.requested() {
                    break;
                }
                if running.contains_key(&p) {
                    continue;
                }
                let part = Partition { index: p, count };
                match claim(&cfg, part).await {
                    Ok(Some(client)) => {
                        info!(partition = %part, members, "took partition");
                        ::metrics::counter!(m::PARTITION_CLAIMS_TOTAL).increment(1);
                        running.insert(p, spawn(cfg.clone(), part, client, failpoint.clone()));
                    }
                    Ok(None) => {}
                    Err(e) => warn!(partition = %part, error = format!("{e:#}"), "claiming a partition failed"),
                }
            }
        }
        ::metrics::gauge!(m::PARTITIONS_HELD).set(running.len() as f64);
        ::metrics::gauge!(m::MEMBERS).set(members as f64);
        if running.is_empty() {
            let since = *waiting_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(10) {
                info!(durable = %cfg.durable, partitions = count, members, "standing by: every partition is held by another windower");
                waiting_since = Some(Instant::now());
            }
        } else {
            waiting_since = None;
        }
        if !shutdown.sleep(cfg.claim_interval()).await {
            break;
        }
    }
    for r in running.values_mut() {
        if let Some(stop) = r.stop.take() {
            let _ = stop.send(());
        }
    }
    let mut result = Ok(());
    for (p, r) in running {
        match r.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                error!(partition = %Partition { index: p, count }, error = format!("{e:#}"), "windower partition failed");
                result = Err(e);
            }
            Err(e) => warn!(error = %e, "windower partition task"),
        }
    }
    result
}

async fn members(member: &mut store::Reconnecting, durable: &str) -> Result<usize> {
    let (client, fresh) = member.get().await?;
    if fresh {
        db::join_members(client, durable).await?;
    }
    db::count_members(client, durable).await
}

/// A connection holding `part`'s instance lock, or `None` when another windower holds it.
async fn claim(cfg: &WindowerServiceConfig, part: Partition) -> Result<Option<tokio_postgres::Client>> {
    let client = store::connect_creating(&cfg.database_url).await?;
    let durable = db::partition_durable(&cfg.durable, part.index, part.count);
    Ok(db::try_lock_instance(&client, &durable).await?.then_some(client))
}

fn spawn(cfg: WindowerServiceConfig, part: Partition, client: tokio_postgres::Client, failpoint: Failpoint) -> Running {
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut stop = Shutdown::new(async move {
            let _ = rx.await;
        });
        let svc = tokio::select! {
            s = Service::start(cfg, part, client, failpoint) => s?,
            _ = stop.wait() => return Ok(()),
        };
        svc.run(&mut stop).await
    });
    Running { stop: Some(tx), task }
}
