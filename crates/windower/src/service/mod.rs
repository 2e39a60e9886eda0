//! The windower service (`nta run --target windower`): consumes `NTA_PACKETS` with its own
//! durable pull consumer, feeds the records to the [`Windower`](crate::Windower), and publishes
//! every closed window exactly once to `nta.windows.<5s|30s|3m>` (stream `NTA_WINDOWS`,
//! `Nats-Msg-Id` = window id) and to PostgreSQL (`window_features`).
//!
//! # Partitions
//!
//! The keys are split into `partitions` by a fixed hash of the address ([`crate::partition`]);
//! every partition has its own durable consumer (reading the whole stream), checkpoint and
//! instance lock (a PostgreSQL session advisory lock), and at most one windower at a time. The
//! windower processes of one durable share the partitions and take over those of a process
//! that dies (`supervisor`). Everything below is per partition.
//!
//! # Exactly once, across crashes
//!
//! A partition's windower processes messages in stream order and *holds* every delivered
//! batch unacknowledged until all windows it contributed to are closed (see `tracker`). Each
//! flush, in this order:
//! 1. publishes the newly closed windows to JetStream and waits for every PubAck;
//! 2. in one transaction, inserts them (`ON CONFLICT DO NOTHING`) and writes the checkpoint:
//!    `closed_through` (per size, every window ending at or before it is emitted) and
//!    `replay_seq` (the oldest batch still held; everything before it is fully accounted for);
//! 3. acknowledges the batches whose windows are all at or before `closed_through`.
//!
//! At start the service reads the checkpoint (`resume`), calls [`Windower::resume`](crate::Windower::resume)
//! with it and recreates its durable consumer to deliver from `replay_seq`: the replayed batches
//! rebuild every open window (each record of an open window belongs to a batch not yet
//! complete, hence at or after `replay_seq`), and windows at or before the checkpoint are not
//! emitted again. A crash before the commit re-emits and re-publishes windows that NTA_WINDOWS
//! then drops as duplicates (same `Nats-Msg-Id`, 30 min duplicate window) and that are not yet
//! in the table; a crash after the commit re-emits nothing it stored. Recreating the consumer
//! (rather than waiting for the server to redeliver what the dead process held, which would
//! come only after `ack_wait` and out of order) keeps the replay in stream order.
//!
//! While alive, the consumer never redelivers: `ack_wait` (10 min) exceeds the time a batch is
//! held (the longest window plus lateness and idle timeout), held batches older than a third of
//! it get in-progress acks, and a redelivery that happens anyway is recognised by its stream
//! sequence and never fed twice.
//!
//! Poison messages (undecodable, unknown version, impossible timestamps) are copied to
//! `nta.deadletter` and terminated; they are never held, so they never block acknowledgement.

mod config;
pub mod metrics;
mod resume;
mod supervisor;
mod tracker;

pub use config::WindowerServiceConfig;
pub use store::windows::FEATURE_COLUMNS;

use anyhow::{anyhow, Context, Result};
use async_nats::jetstream::{self, consumer::pull, stream::ConsumerErrorKind, AckKind};
use bus::consume::{Handler, LoopOptions};
use bus::{Backoff, Failpoint, PullConsumer, Shutdown};
use std::future::Future;
use std::time::{Duration, Instant};
use store::windows::{self as db, Checkpoint};
use store::Reconnecting;
use tracing::{debug, error, info, warn};
use wire::WindowRecord;

use crate::{Partition, PushOutcome, Windower};
use metrics as m;
use resume::Resume;
use tracker::{Ends, Tracker};

/// Crash-test hook read once at start (see `bus::failpoint`): `after_publish` aborts after the
/// closed windows were published to NATS and before they are stored; `after_store` after the
/// windows and the checkpoint were committed and before the packet batches are acknowledged.
/// `:N` (e.g. `after_store:3`) aborts at the N-th flush that carries windows.
pub const FAILPOINT_ENV: &str = "NTA_WINDOWER_FAILPOINT";
const AFTER_PUBLISH: &str = "after_publish";
const AFTER_STORE: &str = "after_store";

const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// `role` label of `nta_ready` and of the start-up log lines.
const ROLE: &str = "windower";

/// Runs the windower service until `shutdown` completes: takes a fair share of the key
/// partitions (see `supervisor`) and runs one [`Service`] per partition held. On shutdown the
/// windows already closed are flushed and their batches acked; open windows are left to be
/// rebuilt by the next owner (from the unacked batches). Reads [`FAILPOINT_ENV`] once at start.
pub async fn run(cfg: WindowerServiceConfig, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
    m::describe();
    // 1 once a partition runs (see `Service::start`).
    bus::startup::set_ready(ROLE, false);
    let failpoint = Failpoint::from_env(FAILPOINT_ENV, &[AFTER_PUBLISH, AFTER_STORE]);
    supervisor::run(cfg, failpoint, shutdown).await
}

/// The windower of one key partition.
struct Service {
    cfg: WindowerServiceConfig,
    /// Durable consumer and checkpoint name of the partition.
    durable: String,
    failpoint: Failpoint,
    nats: async_nats::Client,
    js: jetstream::Context,
    consumer: PullConsumer,
    /// `NTA_PACKETS`, asked whether the messages of a sequence gap exist.
    stream: jetstream::stream::Stream,
    /// Holds the partition's instance lock.
    db: Reconnecting,
    windower: Windower,
    tracker: Tracker<jetstream::Message>,
    /// Last committed checkpoint.
    stored: Checkpoint,
    /// `closed_through` of the checkpoint resumed from: windows at or before it are stored.
    resumed: [i64; 3],
    /// Closed windows not yet published and stored.
    unflushed: Vec<WindowRecord>,
    backoff: Backoff,
    stopping: bool,
    background: Vec<tokio::task::JoinHandle<()>>,
}

/// The lock was lost (connection closed) and another windower took it: stop at once.
#[derive(Debug)]
struct LostLock;

impl std::fmt::Display for LostLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("another windower holds this partition's instance lock")
    }
}

impl std::error::Error for LostLock {}

impl Service {
    /// Starts partition `part` on `client`, which holds the partition's instance lock.
    async fn start(
        cfg: WindowerServiceConfig,
        part: Partition,
        client: tokio_postgres::Client,
        failpoint: Failpoint,
    ) -> Result<Service> {
        let durable = db::partition_durable(&cfg.durable, part.index, part.count);
        let rows = db::load_partition_checkpoints(&client, &cfg.durable).await?;
        let resume = resume::choose(part, &rows);

        use bus::startup::Want;
        let wanted = [Want::Packets, Want::Windows, Want::DeadLetter];
        let c = bus::startup::connect_streams(&cfg.nats, "nta-windower", ROLE, &wanted, &cfg.stream_limits).await?;
        let (nats, js, mut stream) = (c.client, c.js, c.packets.expect("asked for NTA_PACKETS"));

        // Where to replay from: the checkpoint, unless the stream was recreated behind it.
        let last_seq = stream.info().await.context("NTA_PACKETS info")?.state.last_sequence;
        let replay_seq = match resume.replay_seq() {
            seq if seq > last_seq + 1 => {
                warn!(
                    replay_seq = seq,
                    last_seq, "NTA_PACKETS is behind the checkpoint (recreated?); replaying it all"
                );
                0
            }
            seq => seq,
        };
        let deliver_policy = if replay_seq > 1 {
            jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence: replay_seq }
        } else {
            jetstream::consumer::DeliverPolicy::All
        };
        // The consumer is recreated at the replay point: what a dead predecessor held would
        // otherwise come back only after ack_wait, behind newer messages.
        let what = format!("deleting consumer {durable}");
        bus::startup::wait_for_consumer(ROLE, &what, || async {
            match stream.delete_consumer(&durable).await {
                Err(e)
                    if matches!(e.kind(), ConsumerErrorKind::JetStream(ref j)
                    if j.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND) =>
                {
                    Ok(())
                }
                res => res.map(|_| ()),
            }
        })
        .await?;
        let config = pull::Config {
            description: Some("nta windower (recreated at each start from its checkpoint)".into()),
            deliver_policy,
            ..bus::streams::packets_consumer_config(&durable, cfg.ack_wait(), cfg.max_ack_pending)
        };
        let consumer: PullConsumer =
            bus::startup::wait_for_consumer(ROLE, &format!("creating consumer {durable}"), || {
                stream.create_consumer(config.clone())
            })
            .await?;

        let mut windower = Windower::for_partition(cfg.windower.clone(), part);
        let stored = match &resume {
            Resume::Own(cp) => {
                windower.resume(cp.closed_through);
                *cp
            }
            Resume::ByOwner { checkpoints, .. } => {
                windower.resume_by_owner(checkpoints.clone());
                Checkpoint { closed_through: [i64::MIN; 3], replay_seq: 0 }
            }
            Resume::Fresh => Checkpoint { closed_through: [i64::MIN; 3], replay_seq: 0 },
        };
        let resumed = windower.closed_through();
        info!(
            %durable,
            partition = %part,
            resumed_from = %resume,
            replay_seq,
            failpoint = %failpoint,
            "windower partition started"
        );
        bus::startup::set_ready(ROLE, true);
        // Every partition polls the streams (one request each per 15 s): which partitions this
        // process holds changes as windowers come and go.
        let background = vec![
            bus::consume::spawn_pending_gauge(consumer.clone(), m::CONSUMER_PENDING_MESSAGES, cfg.pending_refresh()),
            bus::streams::usage::spawn_gauges(js.clone(), vec![bus::PACKETS_STREAM, bus::WINDOWS_STREAM]),
        ];
        let database_url = cfg.database_url.clone();
        Ok(Service {
            tracker: Tracker::new(replay_seq),
            cfg,
            durable,
            failpoint,
            nats,
            js,
            consumer,
            db: Reconnecting::new(database_url, client),
            windower,
            stored,
            stream,
            resumed,
            unflushed: Vec::new(),
            backoff: Backoff::new(MIN_BACKOFF, MAX_BACKOFF),
            stopping: false,
            background,
        })
    }

    async fn run(mut self, shutdown: &mut Shutdown<'_>) -> Result<()> {
        let consumer = self.consumer.clone();
        let opts = LoopOptions {
            stream: bus::PACKETS_STREAM,
            max_messages_per_batch: 500,
            max_chunk: self.cfg.max_messages_per_step,
            timers: vec![self.cfg.poll_interval(), (self.cfg.ack_wait() / 6).max(Duration::from_millis(100))],
        };
        let res = bus::consume::run(&consumer, &opts, &mut self, shutdown).await;
        if res.is_ok() {
            // Store and acknowledge what is already closed; open windows are rebuilt at the next
            // start from the batches left unacked.
            self.stopping = true;
            let target = self.collect();
            if let Err(e) = self.try_flush(target).await {
                warn!(error = format!("{e:#}"), "final flush failed; the next start replays it");
            }
        }
        for t in &self.background {
            t.abort();
        }
        let _ = self.nats.flush().await;
        res
    }

    async fn on_message(&mut self, msg: jetstream::Message) -> Result<()> {
        let seq = match msg.info() {
            Ok(i) => i.stream_sequence,
            Err(e) => {
                warn!(error = %e, subject = %msg.subject, "message without JetStream metadata ignored");
                return Ok(());
            }
        };
        let now = Instant::now();
        if let Some(missing) = self.tracker.gap_before(seq) {
            self.check_gap(missing, seq).await?;
        }
        if self.tracker.is_redelivery(seq) {
            // Never fed twice. A held batch just gets its fresh handle; one no longer held was
            // acked (the ack got lost) or is poison whose dead-lettering failed.
            let msg = match self.tracker.refresh(seq, msg, now) {
                None => return Ok(()),
                Some(msg) => msg,
            };
            match bus::decode_packet_batch(&msg.subject, &msg.payload) {
                Ok(_) => {
                    let _ = msg.ack().await;
                }
                Err(reason) => self.poison(&msg, &reason).await,
            }
            return Ok(());
        }
        let batch = match bus::decode_packet_batch(&msg.subject, &msg.payload) {
            Ok(b) => b,
            Err(reason) => {
                self.tracker.advance(seq);
                self.poison(&msg, &reason).await;
                return Ok(());
            }
        };
        if batch.records.is_empty() {
            // An empty batch is an agent's end-of-input marker (the end of a replayed file).
            self.windower.end_of_input(&batch.agent_id);
        }
        let mut ends = Ends::default();
        let (mut late, mut already) = (0u64, 0u64);
        let before = self.windower.stats().clone();
        for r in &batch.records {
            match self.windower.push(&batch.agent_id, r, now) {
                PushOutcome::Accepted => ends.add(r.timestamp),
                PushOutcome::Late => late += 1,
                PushOutcome::AlreadyEmitted => already += 1,
            }
        }
        ::metrics::counter!(m::RECORDS_TOTAL).increment(batch.records.len() as u64);
        if late > 0 {
            ::metrics::counter!(m::LATE_RECORDS_TOTAL).increment(late);
        }
        if already > 0 {
            ::metrics::counter!(m::ALREADY_EMITTED_RECORDS_TOTAL).increment(already);
        }
        let after = self.windower.stats();
        if after.shed_records > before.shed_records {
            ::metrics::counter!(m::SHED_RECORDS_TOTAL).increment(after.shed_records - before.shed_records);
        }
        if after.overload_periods > before.overload_periods {
            ::metrics::counter!(m::OVERLOAD_PERIODS_TOTAL).increment(after.overload_periods - before.overload_periods);
        }
        self.tracker.hold(seq, ends, msg, now);
        ::metrics::gauge!(m::HELD_MESSAGES).set(self.tracker.len() as f64);
        Ok(())
    }

    /// Messages `missing.start..seq` were skipped by the delivery of `seq`. Deleted ones (the
    /// stream's limits removed them before they were read) are counted and passed over; any
    /// that still exists was delivered and lost on the way (a NATS node died, a reconnect), and
    /// would come back only later, out of order, after the windows it belongs to were closed.
    /// The partition then stops, and whoever takes it next (normally this process, at the
    /// next claim) replays in order from the checkpoint.
    async fn check_gap(&mut self, missing: std::ops::Range<u64>, seq: u64) -> Result<()> {
        for s in [missing.start, missing.end - 1] {
            match self.stream.get_raw_message(s).await {
                Ok(_) => {
                    ::metrics::counter!(m::OUT_OF_ORDER_RESTARTS_TOTAL).increment(1);
                    return Err(anyhow!(
                        "NTA_PACKETS message {s} was skipped by the delivery of {seq} (lost in transit); \
                         replaying from the checkpoint"
                    ));
                }
                Err(e) if matches!(e.kind(), jetstream::stream::LastRawMessageErrorKind::NoMessageFound) => {}
                Err(e) => return Err(anyhow!("checking NTA_PACKETS message {s}: {e}")),
            }
        }
        let n = missing.end - missing.start;
        warn!(first = missing.start, messages = n, "NTA_PACKETS messages deleted before the windower read them");
        ::metrics::counter!(m::MISSED_MESSAGES_TOTAL).increment(n);
        Ok(())
    }

    async fn poison(&self, msg: &jetstream::Message, reason: &str) {
        bus::deadletter::poison(&self.js, msg, reason, "windower", m::DEADLETTER_TOTAL, MAX_BACKOFF).await;
    }

    /// `closed_through` never below the checkpoint resumed from.
    fn closed_through(&self) -> [i64; 3] {
        let c = self.windower.closed_through();
        [c[0].max(self.resumed[0]), c[1].max(self.resumed[1]), c[2].max(self.resumed[2])]
    }

    /// Collects the newly closed windows; returns the checkpoint a flush would write.
    fn collect(&mut self) -> Checkpoint {
        let closed = self.windower.poll_closed(Instant::now());
        self.unflushed.extend(closed);
        let closed_through = self.closed_through();
        Checkpoint { closed_through, replay_seq: self.tracker.replay_seq(closed_through) }
    }

    /// Publishes, stores and checkpoints the closed windows, then acks the complete batches;
    /// retried with backoff until it succeeds or shutdown is asked for.
    async fn flush(&mut self, shutdown: &mut Shutdown<'_>) -> Result<()> {
        loop {
            let target = self.collect();
            match self.try_flush(target).await {
                Ok(()) => {
                    self.backoff.reset();
                    return Ok(());
                }
                Err(e) if e.is::<LostLock>() => return Err(e),
                Err(e) => {
                    let delay = self.backoff.next_delay();
                    error!(error = format!("{e:#}"), backoff = ?delay, "flushing windows failed; will retry");
                    if !shutdown.sleep(delay).await {
                        // Nothing acked: the next start replays and re-emits these windows.
                        warn!(windows = self.unflushed.len(), "stopping with windows not stored");
                        self.stopping = true;
                        self.unflushed.clear();
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn try_flush(&mut self, target: Checkpoint) -> Result<()> {
        if self.unflushed.is_empty() && target == self.stored {
            if self.tracker.has_complete(target.closed_through) {
                self.ack_complete(target.closed_through).await;
            }
            return Ok(());
        }
        let started = Instant::now();
        let has_windows = !self.unflushed.is_empty();
        publish(&self.js, &self.unflushed).await?;
        if has_windows {
            self.failpoint.hit(AFTER_PUBLISH);
        }
        let durable = self.durable.clone();
        let windows = std::mem::take(&mut self.unflushed);
        let client = match self.db().await {
            Ok(c) => c,
            Err(e) => {
                self.unflushed = windows;
                return Err(e);
            }
        };
        let res: Result<u64> = async {
            let tx = client.transaction().await?;
            let inserted = db::insert_windows(&tx, &windows).await?;
            db::store_checkpoint(&tx, &durable, &target).await?;
            tx.commit().await.context("committing windows")?;
            Ok(inserted)
        }
        .await;
        self.unflushed = windows;
        let inserted = res.inspect_err(|_| {
            ::metrics::counter!(m::DB_ERRORS_TOTAL).increment(1);
        })?;
        if has_windows {
            self.failpoint.hit(AFTER_STORE);
        }
        for w in &self.unflushed {
            ::metrics::counter!(m::WINDOWS_TOTAL, "size" => wire::window::size_token(w.window_size), "view" => w.view.as_str())
                .increment(1);
        }
        if has_windows {
            ::metrics::histogram!(m::FLUSH_DURATION_SECONDS).record(started.elapsed().as_secs_f64());
            debug!(windows = self.unflushed.len(), inserted, closed_through = ?target.closed_through, "windows flushed");
        }
        self.unflushed.clear();
        self.stored = target;
        self.ack_complete(target.closed_through).await;
        ::metrics::gauge!(m::OPEN_KEYS).set(self.windower.open_keys() as f64);
        Ok(())
    }

    async fn ack_complete(&mut self, closed_through: [i64; 3]) {
        let done = self.tracker.take_complete(closed_through);
        if done.is_empty() {
            return;
        }
        for (seq, msg) in &done {
            if let Err(e) = msg.ack().await {
                // Everything of it is stored: a lost ack is a redelivery we recognise.
                debug!(seq, error = %e, "ack failed");
            }
        }
        let _ = self.nats.flush().await;
        ::metrics::gauge!(m::HELD_MESSAGES).set(self.tracker.len() as f64);
    }

    /// Resets the server's ack timer of batches held for long (e.g. behind an idle agent).
    async fn keep_alive(&mut self) {
        let now = Instant::now();
        let Some(before) = now.checked_sub(self.cfg.ack_wait() / 3) else { return };
        for msg in self.tracker.stale(before, now) {
            let _ = msg.ack_with(AckKind::Progress).await;
        }
    }

    /// The connection holding the instance lock, reconnected (and the lock retaken) if lost.
    async fn db(&mut self) -> Result<&mut tokio_postgres::Client> {
        let (client, fresh) = self.db.get().await?;
        if fresh && !db::try_lock_instance(client, &self.durable).await? {
            self.db.reset();
            return Err(anyhow::Error::new(LostLock));
        }
        let (client, _) = self.db.get().await?;
        Ok(client)
    }
}

/// Publishes every window with `Nats-Msg-Id` = its id and waits for all PubAcks.
async fn publish(js: &jetstream::Context, windows: &[WindowRecord]) -> Result<()> {
    for chunk in windows.chunks(512) {
        let mut acks = Vec::with_capacity(chunk.len());
        for w in chunk {
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Msg-Id", w.window_id().as_str());
            let payload = w.encode().context("encoding a window")?;
            let ack = js.publish_with_headers(bus::window_subject(w), h, payload.into()).await.map_err(|e| {
                ::metrics::counter!(m::PUBLISH_ERRORS_TOTAL).increment(1);
                anyhow!("publishing window {}: {e}", w.window_id())
            })?;
            acks.push(ack);
        }
        for r in futures::future::join_all(acks.into_iter().map(std::future::IntoFuture::into_future)).await {
            r.map_err(|e| {
                ::metrics::counter!(m::PUBLISH_ERRORS_TOTAL).increment(1);
                anyhow!("window not acknowledged by JetStream: {e}")
            })?;
        }
    }
    Ok(())
}

impl Handler for Service {
    async fn handle(&mut self, chunk: Vec<jetstream::Message>, shutdown: &mut Shutdown<'_>) -> Result<()> {
        for msg in chunk {
            self.on_message(msg).await?;
        }
        self.flush(shutdown).await
    }

    /// Timer 0: collect and flush what the watermark closed; timer 1: keep held batches alive.
    async fn tick(&mut self, index: usize, shutdown: &mut Shutdown<'_>) -> Result<()> {
        match index {
            0 => self.flush(shutdown).await,
            _ => {
                self.keep_alive().await;
                Ok(())
            }
        }
    }

    fn done(&self) -> bool {
        self.stopping
    }
}
