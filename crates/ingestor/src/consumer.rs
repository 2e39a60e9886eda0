//! The service loop: pull a handful of batches, store them in one transaction, ack.

use anyhow::{Context, Result};
use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use std::borrow::Cow;
use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::Client;
use tracing::{debug, error, info, warn};
use wire::PacketBatch;

use bus::{Backoff, Failpoint, PullConsumer};
use store::conn as db;
use store::packets::{write_batches, BatchIn, PartitionCache, WriteOutcome, WriteStep};

use crate::metrics as m;
use crate::IngestorConfig;

const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

const ROLE: &str = "ingestor";

struct Started {
    nats: async_nats::Client,
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    consumer: PullConsumer,
    rollup_consumer: PullConsumer,
    client: Client,
}

async fn start(cfg: &IngestorConfig) -> Result<Started> {
    use bus::startup::Want;
    let c = bus::startup::connect_streams(
        &cfg.nats,
        "nta-ingestor",
        ROLE,
        &[Want::Packets, Want::DeadLetter],
        &cfg.stream_limits,
    )
    .await?;
    let stream = c.packets.expect("asked for NTA_PACKETS");
    let consumer = durable_consumer(&stream, cfg, &cfg.durable).await?;
    let rollup_consumer = durable_consumer(&stream, cfg, &crate::rollup_durable(&cfg.durable)).await?;
    let client =
        bus::startup::wait_for_database(ROLE, || store::open(&cfg.database_url), store::conn::unreachable).await?;
    store::packets::precreate_partitions(&client).await?;
    Ok(Started { nats: c.client, js: c.js, stream, consumer, rollup_consumer, client })
}

pub(crate) async fn run(
    cfg: IngestorConfig,
    failpoint: Failpoint,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    m::describe();
    bus::startup::set_ready(ROLE, false);
    tokio::pin!(shutdown);
    // Waiting for NATS and PostgreSQL, whichever is late; a stop request meanwhile just exits.
    let started = tokio::select! {
        r = start(&cfg) => r?,
        _ = &mut shutdown => return Ok(()),
    };
    let Started { nats, js, consumer, rollup_consumer, stream, client } = started;
    bus::startup::set_ready(ROLE, true);
    info!(durable = %cfg.durable, failpoint = %failpoint, "ingestor started");

    let background = [
        bus::consume::spawn_pending_gauge(consumer.clone(), m::CONSUMER_PENDING_MESSAGES, cfg.pending_refresh()),
        bus::consume::spawn_pending_gauge(rollup_consumer.clone(), m::CONSUMER_PENDING_MESSAGES, cfg.pending_refresh()),
        spawn_maintenance(&cfg, stream.cached_info().config.max_age)?,
        bus::streams::usage::spawn_gauges(js.clone(), vec![bus::PACKETS_STREAM, bus::DEADLETTER_STREAM]),
    ];
    let (stop_tx, stop_rx) = watch::channel(false);
    let db_cfg = store::DbConfig::parse(&cfg.database_url)?;
    let mut workers = Vec::with_capacity(cfg.writers.max(1));
    let mut first = Some(client);
    let sinks =
        std::iter::repeat_n((Sink::Packets, &consumer), cfg.writers.max(1)).chain([(Sink::Rollup, &rollup_consumer)]);
    for (sink, consumer) in sinks {
        let db = match first.take() {
            Some(c) => c,
            None => db::connect_cfg(&db_cfg).await.context("connecting to PostgreSQL")?,
        };
        workers.push(Worker {
            sink,
            nats: nats.clone(),
            js: js.clone(),
            consumer: consumer.clone(),
            db: Some(db),
            db_cfg: db_cfg.clone(),
            parts: PartitionCache::default(),
            failpoint: failpoint.clone(),
            backoff: Backoff::new(MIN_BACKOFF, MAX_BACKOFF),
            stop: stop_rx.clone(),
            cfg: cfg.clone(),
        });
    }
    let main = futures::future::try_join_all(workers.into_iter().map(Worker::run));
    tokio::pin!(main);
    let res = tokio::select! {
        r = &mut main => r.map(drop),
        _ = &mut shutdown => {
            info!("ingestor stopping after the current transactions");
            let _ = stop_tx.send(true);
            main.await.map(drop)
        }
    };
    for task in background {
        task.abort();
    }
    res
}

/// What a worker does with the batches it pulls; each sink has its own durable consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    /// Ledger + COPY into raw_packets (`cfg.writers` workers).
    Packets,
    /// Counts into traffic_rollup (one worker, large transactions; see `store::rollup`).
    Rollup,
}

async fn durable_consumer(
    stream: &jetstream::stream::Stream,
    cfg: &IngestorConfig,
    durable: &str,
) -> Result<PullConsumer> {
    let config = bus::streams::packets_consumer_config(durable, cfg.ack_wait(), cfg.max_ack_pending);
    bus::startup::wait_for_consumer(ROLE, &format!("creating consumer {durable}"), || {
        stream.get_or_create_consumer(durable, config.clone())
    })
    .await
}

struct Worker {
    sink: Sink,
    nats: async_nats::Client,
    js: jetstream::Context,
    consumer: PullConsumer,
    db: Option<Client>,
    db_cfg: store::DbConfig,
    parts: PartitionCache,
    failpoint: Failpoint,
    backoff: Backoff,
    stop: watch::Receiver<bool>,
    cfg: IngestorConfig,
}

impl Worker {
    async fn run(mut self) -> Result<()> {
        while !*self.stop.borrow() {
            let msgs = match self.fetch().await {
                Ok(msgs) => msgs,
                Err(e) => {
                    warn!(error = %e, "fetching from NTA_PACKETS failed");
                    self.pause().await;
                    continue;
                }
            };
            if !msgs.is_empty() {
                self.process(msgs).await;
            }
        }
        Ok(())
    }

    /// Batches per fetch and transaction: small for the packet COPY, large for the rollup.
    fn batch_limit(&self) -> usize {
        match self.sink {
            Sink::Packets => self.cfg.batches_per_txn.max(1),
            Sink::Rollup => self.cfg.rollup_batches_per_txn.max(1),
        }
    }

    /// Up to [`Self::batch_limit`] messages, waiting at most `fetch_wait` for them. The pull
    /// request always runs to completion: dropping it early would strand messages the server
    /// already sent to it until their ack_wait ran out.
    async fn fetch(&self) -> Result<Vec<jetstream::Message>> {
        let mut batch =
            self.consumer.batch().max_messages(self.batch_limit()).expires(self.cfg.fetch_wait()).messages().await?;
        let mut out = Vec::with_capacity(self.batch_limit());
        while let Some(item) = batch.next().await {
            match item {
                Ok(msg) => out.push(msg),
                Err(e) if out.is_empty() => return Err(anyhow::anyhow!("{e}")),
                Err(e) => debug!(error = %e, "pull request ended early"),
            }
        }
        Ok(out)
    }

    async fn process(&mut self, msgs: Vec<jetstream::Message>) {
        let mut decoded = Vec::with_capacity(msgs.len());
        for msg in msgs {
            match bus::decode_packet_batch(&msg.subject, &msg.payload) {
                Ok(batch) => decoded.push((msg, batch)),
                Err(reason) => self.poison(&msg, &reason).await,
            }
        }
        if decoded.is_empty() {
            return;
        }
        // A batch published twice can arrive twice in one fetch; the ledger only dedups across
        // statements, so keep the first copy and ack both after the commit.
        let mut seen = HashSet::new();
        let mut in_fetch_dups = 0u64;
        // owner[k] = index in `decoded` of inputs[k].
        let mut owner = Vec::with_capacity(decoded.len());
        let mut inputs = Vec::with_capacity(decoded.len());
        for (i, (_, b)) in decoded.iter().enumerate() {
            let id = b.batch_id();
            if seen.insert(id.clone()) {
                owner.push(i);
                inputs.push(BatchIn { batch_id: Cow::Owned(id), agent_id: &b.agent_id, records: &b.records });
            } else {
                in_fetch_dups += 1;
            }
        }

        match self.write(&inputs).await {
            Ok(out) => {
                record(self.sink, &out, in_fetch_dups);
                for (msg, _) in &decoded {
                    if let Err(e) = msg.ack().await {
                        // The batch is stored: a lost ack only means a redelivery we will skip.
                        warn!(error = %e, "ack failed");
                    }
                }
                let _ = self.nats.flush().await;
                self.backoff.reset();
            }
            Err(e) if is_data_error(&e) => {
                warn!(error = format!("{e:#}"), "PostgreSQL rejected data; storing batches one by one");
                self.isolate(&decoded, &owner, &inputs).await;
            }
            Err(e) => {
                metrics::counter!(m::DB_ERRORS_TOTAL).increment(1);
                error!(error = format!("{e:#}"), backoff = ?self.backoff.current(), "storing batches failed; will retry");
                for (msg, _) in &decoded {
                    let _ = msg.ack_with(AckKind::Nak(Some(self.backoff.current()))).await;
                }
                self.pause().await;
            }
        }
    }

    /// Writes each batch in its own transaction, dead-lettering those PostgreSQL refuses, so
    /// one deterministic rejection cannot stall the consumer for ever.
    async fn isolate(
        &mut self,
        decoded: &[(jetstream::Message, PacketBatch)],
        owner: &[usize],
        inputs: &[BatchIn<'_>],
    ) {
        let mut done = vec![false; decoded.len()];
        for (&i, b) in owner.iter().zip(inputs) {
            match self.write(std::slice::from_ref(b)).await {
                Ok(out) => {
                    record(self.sink, &out, 0);
                    done[i] = true;
                }
                Err(e) if is_data_error(&e) => {
                    self.poison(&decoded[i].0, &format!("rejected by PostgreSQL: {e:#}")).await;
                    done[i] = true;
                }
                Err(e) => {
                    metrics::counter!(m::DB_ERRORS_TOTAL).increment(1);
                    error!(error = format!("{e:#}"), "storing batch failed; will retry");
                }
            }
        }
        for (i, (msg, _)) in decoded.iter().enumerate() {
            // In-fetch duplicates are not in `batches`: ack them only if their twin is stored.
            let stored =
                done[i] || owner.iter().zip(inputs).any(|(&j, b)| done[j] && b.batch_id == decoded[i].1.batch_id());
            let kind = if stored { AckKind::Ack } else { AckKind::Nak(Some(self.backoff.current())) };
            let _ = msg.ack_with(kind).await;
        }
    }

    async fn write(&mut self, batches: &[BatchIn<'_>]) -> Result<WriteOutcome> {
        let client = match self.db.take() {
            Some(c) if !c.is_closed() => c,
            _ => db::connect_cfg(&self.db_cfg).await.context("reconnecting to PostgreSQL")?,
        };
        let client = self.db.insert(client);
        let res = match self.sink {
            Sink::Packets => {
                let failpoint = &self.failpoint;
                let at = move |step: WriteStep| {
                    failpoint.hit(match step {
                        WriteStep::Copied => "after_copy",
                        WriteStep::Committed => "after_commit",
                    })
                };
                write_batches(client, &mut self.parts, batches, &at).await
            }
            Sink::Rollup => store::rollup::write_rollup(client, batches).await,
        };
        if res.is_err() {
            // A partition may have been dropped by retention behind our back.
            self.parts.clear();
        }
        res
    }

    async fn poison(&self, msg: &jetstream::Message, reason: &str) {
        if self.sink == Sink::Rollup {
            // The packet workers dead-letter the same message; one copy there is enough.
            warn!(reason, "rollup skips a message it cannot count");
            metrics::counter!(m::ROLLUP_SKIPPED_TOTAL).increment(1);
            let _ = msg.ack().await;
            return;
        }
        bus::deadletter::poison(&self.js, msg, reason, "ingestor", m::DEADLETTER_TOTAL, MAX_BACKOFF).await;
    }

    /// Sleeps for the current backoff (cut short by shutdown) and doubles it.
    async fn pause(&mut self) {
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(self.backoff.next_delay()) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
}

fn record(sink: Sink, out: &WriteOutcome, extra_dups: u64) {
    if sink == Sink::Rollup {
        metrics::counter!(m::ROLLUP_BATCHES_TOTAL).increment(out.new_batches as u64);
        metrics::counter!(m::ROLLUP_ROWS_TOTAL).increment(out.rollup_rows);
        metrics::histogram!(m::ROLLUP_DURATION_SECONDS).record((out.copy_time + out.commit_time).as_secs_f64());
        debug!(new = out.new_batches, rows = out.rollup_rows, "rolled up");
        return;
    }
    metrics::counter!(m::BATCHES_TOTAL).increment(out.new_batches as u64);
    metrics::counter!(m::ROWS_TOTAL).increment(out.rows);
    metrics::counter!(m::DUPLICATE_BATCHES_TOTAL).increment(out.duplicate_batches as u64 + extra_dups);
    if out.new_batches > 0 {
        metrics::histogram!(m::COPY_DURATION_SECONDS).record(out.copy_time.as_secs_f64());
    }
    metrics::histogram!(m::COMMIT_DURATION_SECONDS).record(out.commit_time.as_secs_f64());
    debug!(new = out.new_batches, dup = out.duplicate_batches + extra_dups as usize, rows = out.rows, "stored");
}

/// SQLSTATE class 22 (data exception): the same data would fail again however often retried.
fn is_data_error(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<tokio_postgres::Error>())
        .any(|pe| pe.code().is_some_and(|c| c.code().starts_with("22")))
}

/// Retention and partition pre-creation, on their own connection so a DROP waiting for its
/// lock never delays the write path's connection.
fn spawn_maintenance(cfg: &IngestorConfig, stream_max_age: Duration) -> Result<JoinHandle<()>> {
    let db_cfg = store::DbConfig::parse(&cfg.database_url)?;
    let retention_days = cfg.retention();
    // A batch id can come back only while its message is still in the stream (a redelivery or
    // a new consumer replaying the stream), so the ledger remembers ids a day longer than the
    // stream keeps messages (as configured on the server; zero = for ever = never prune).
    let ledger_keep = (!stream_max_age.is_zero()).then(|| stream_max_age + Duration::from_secs(24 * 3600));
    let every = cfg.retention_interval().max(Duration::from_millis(100));
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut client: Option<Client> = None;
        loop {
            tick.tick().await;
            let c = match client.take() {
                Some(c) if !c.is_closed() => c,
                _ => match db::connect_cfg(&db_cfg).await {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(error = %e, "maintenance: cannot connect");
                        continue;
                    }
                },
            };
            if let Err(e) = store::packets::precreate_partitions(&c).await {
                warn!(error = format!("{e:#}"), "maintenance: creating partitions failed");
            }
            if let Some(days) = retention_days {
                match store::packets::drop_expired_partitions(&c, days).await {
                    Ok(dropped) if !dropped.is_empty() => {
                        info!(?dropped, retention_days = days, "dropped old partitions")
                    }
                    Ok(_) => {}
                    Err(e) => warn!(error = format!("{e:#}"), "maintenance: retention failed"),
                }
            }
            if let Some(keep) = ledger_keep {
                match store::packets::prune_ledger(&c, keep).await {
                    Ok(n) if n > 0 => info!(batches = n, "pruned ledger entries the stream can no longer redeliver"),
                    Ok(_) => {}
                    Err(e) => warn!(error = format!("{e:#}"), "maintenance: pruning the ledger failed"),
                }
            }
            client = Some(c);
        }
    }))
}
