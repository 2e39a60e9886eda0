//! The predictor service (`nta run --target predictor`): consumes closed windows from
//! `NTA_WINDOWS` with a durable pull consumer (`nta-predictor`; every replica sharing the name
//! shares the work), classifies them in batches with the model and the rule baselines, and in
//! one PostgreSQL transaction per batch writes `predictions` and opens or extends `alerts`
//! (+ `alert_windows`, + the alert events in the `alert_events` outbox); it acknowledges the
//! messages after the commit and then relays the outbox to JetStream `NTA_ALERTS` ([`outbox`]).
//!
//! # Exactly-once effects
//!
//! A window's prediction is keyed by (view, key, window_start, window_size, model_version) and
//! inserted `ON CONFLICT DO NOTHING ... RETURNING`: only windows whose row is new in this
//! transaction touch the alerts. A redelivered window (ack lost, crash after commit, the other
//! replica took it after an `ack_wait` timeout) therefore changes nothing, and nothing is acked
//! before the commit, so a crash before it just redelivers. Alerts are upserted against the
//! partial unique index `(view, key, class) WHERE state = 'open'` (`INSERT ... ON CONFLICT DO
//! UPDATE`), atomic between replicas; keys are locked in sorted order. Alert events are
//! outbox rows of the same transaction, published with their row id as `Nats-Msg-Id` and
//! marked after JetStream's acknowledgement: a crash in between re-publishes, JetStream drops
//! the copy; replicas take turns on the outbox under an advisory lock.
//!
//! # Alert lifecycle
//!
//! open (first window labelled other than Normal: by the model with confidence >=
//! `min_confidence`, or by a rule) -> extended by later windows of the same (view, key, class)
//! -> `closed` when no window extended it for `quiet_period` of processing time (a periodic
//! task in every replica) or when a window arrives more than `quiet_period` of event time after
//! its last window (the attack stopped and came back: a new alert), or `resolved` by an
//! operator ([`resolve_alert`]). A later window of a closed or resolved alert opens a new one.

mod alerts;
mod config;
pub mod metrics;
mod outbox;

pub use alerts::{aggregate, severity, summary, AlertPolicy};
pub use config::PredictorServiceConfig;
pub use outbox::relay as relay_outbox;
pub use store::alerts::{resolve_alert, resolve_alert_event};

use anyhow::{Context, Result};
use async_nats::jetstream::{self, consumer::pull, AckKind};
use bus::consume::{Handler, LoopOptions};
use bus::{Backoff, PullConsumer, Shutdown};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::predictions::{self, PredictionRow};
use store::Reconnecting;
use tracing::{debug, error, info, warn};
use wire::WindowRecord;

use crate::model::{Model, Verdict, NORMAL};
use crate::rules::{self, RuleHit};
use metrics as m;

const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub use crate::decide::MIN_CONFIDENCE;

/// Variable arming the predictor's crash-test failpoint (see [`bus::failpoint`]).
pub const FAILPOINT_ENV: &str = "NTA_PREDICTOR_FAILPOINT";
/// After a batch's transaction (alerts and their outbox rows) committed, before the relay.
pub const AFTER_ALERT_COMMIT: &str = "after_alert_commit";
/// After JetStream acknowledged relayed alert events, before they are marked published.
pub const AFTER_ALERT_PUBLISH: &str = "after_alert_publish";

/// Runs the predictor until `shutdown` completes (the batch in hand is finished first).
/// `role` label of `nta_ready` and of the start-up log lines.
const ROLE: &str = "predictor";

pub async fn run(cfg: PredictorServiceConfig, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
    m::describe();
    let model = Model::load_configured(cfg.model.as_deref())?;
    run_with_model(cfg, Arc::new(model), shutdown).await
}

/// [`run`] with a model already in memory.
pub async fn run_with_model(
    cfg: PredictorServiceConfig,
    model: Arc<Model>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    m::describe();
    let mut shutdown = Shutdown::new(shutdown);
    bus::startup::set_ready(ROLE, false);
    let mut svc = tokio::select! {
        s = Service::start(cfg, model) => s?,
        _ = shutdown.wait() => return Ok(()),
    };
    bus::startup::set_ready(ROLE, true);
    let consumer = svc.consumer.clone();
    let opts = LoopOptions {
        stream: bus::WINDOWS_STREAM,
        max_messages_per_batch: svc.cfg.batch_size,
        max_chunk: svc.cfg.batch_size,
        timers: vec![svc.cfg.close_interval(), svc.cfg.outbox_interval()],
    };
    let res = bus::consume::run(&consumer, &opts, &mut svc, &mut shutdown).await;
    for t in &svc.background {
        t.abort();
    }
    res
}

struct Service {
    cfg: PredictorServiceConfig,
    model: Arc<Model>,
    policy: AlertPolicy,
    js: jetstream::Context,
    failpoint: bus::Failpoint,
    consumer: PullConsumer,
    db: Reconnecting,
    backoff: Backoff,
    background: Vec<tokio::task::JoinHandle<()>>,
}

/// One decoded window and the message that carried it.
struct Item {
    msg: jetstream::Message,
    window: WindowRecord,
}

impl Service {
    async fn start(cfg: PredictorServiceConfig, model: Arc<Model>) -> Result<Service> {
        use bus::startup::Want;
        let client =
            bus::startup::wait_for_database(ROLE, || store::open(&cfg.database_url), store::conn::unreachable).await?;
        let wanted = [Want::Windows, Want::DeadLetter, Want::Alerts(cfg.alert_limits)];
        let c = bus::startup::connect_streams(&cfg.nats, "nta-predictor", ROLE, &wanted, &cfg.stream_limits).await?;
        let (js, stream) = (c.js, c.windows.expect("asked for NTA_WINDOWS"));
        let config = pull::Config {
            description: Some("nta predictor (replicas share it)".into()),
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ..bus::streams::windows_consumer_config(&cfg.durable, cfg.ack_wait(), cfg.max_ack_pending)
        };
        let consumer: PullConsumer =
            bus::startup::wait_for_consumer(ROLE, &format!("creating consumer {}", cfg.durable), || {
                stream.get_or_create_consumer(&cfg.durable, config.clone())
            })
            .await?;
        for (name, vm) in [("source", &model.source), ("destination", &model.destination)] {
            if vm.is_none() {
                warn!(view = name, "the model has no forest for this view: its windows get rule verdicts only");
            }
        }
        info!(durable = %cfg.durable, model_version = %model.model_version, instance = %cfg.instance, "predictor started");
        let policy = cfg.policy();
        let background = vec![
            bus::consume::spawn_pending_gauge(consumer.clone(), m::CONSUMER_PENDING_MESSAGES, cfg.pending_refresh()),
            bus::streams::usage::spawn_gauges(js.clone(), vec![bus::WINDOWS_STREAM, bus::ALERTS_STREAM]),
        ];
        let db = Reconnecting::new(cfg.database_url.clone(), client);
        let backoff = Backoff::new(MIN_BACKOFF, MAX_BACKOFF);
        let failpoint = bus::Failpoint::from_env(FAILPOINT_ENV, &[AFTER_ALERT_COMMIT, AFTER_ALERT_PUBLISH]);
        Ok(Service { cfg, model, policy, js, failpoint, consumer, db, backoff, background })
    }

    async fn process(&mut self, chunk: Vec<jetstream::Message>) {
        let mut items = Vec::with_capacity(chunk.len());
        for msg in chunk {
            match decode(&msg.payload) {
                Ok(window) => {
                    ::metrics::counter!(m::WINDOWS_TOTAL, "view" => window.view.as_str(),
                        "size" => wire::window::size_token(window.window_size))
                    .increment(1);
                    items.push(Item { msg, window });
                }
                Err(reason) => {
                    bus::deadletter::poison(&self.js, &msg, &reason, "predictor", m::DEADLETTER_TOTAL, MAX_BACKOFF)
                        .await;
                }
            }
        }
        if items.is_empty() {
            return;
        }
        // Sorted by identity: every replica takes row locks in the same order.
        items.sort_by(|a, b| {
            (a.window.view, &a.window.key, a.window.window_start, a.window.window_size).cmp(&(
                b.window.view,
                &b.window.key,
                b.window.window_start,
                b.window.window_size,
            ))
        });

        let model = self.model.clone();
        let windows: Vec<WindowRecord> = items.iter().map(|i| i.window.clone()).collect();
        let rules_cfg = self.cfg.rules.clone();
        let classified = tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let verdicts = model.predict(&windows);
            let elapsed = t.elapsed();
            let hits: Vec<Vec<RuleHit>> = windows.iter().map(|w| rules::evaluate(w, &rules_cfg)).collect();
            (verdicts, hits, elapsed)
        })
        .await;
        let (verdicts, hits, elapsed) = match classified {
            Ok(v) => v,
            Err(e) => {
                error!(error = %e, "inference panicked; the windows will be redelivered");
                for it in &items {
                    let _ = it.msg.ack_with(AckKind::Nak(Some(MAX_BACKOFF))).await;
                }
                return;
            }
        };
        ::metrics::histogram!(m::INFERENCE_DURATION_SECONDS).record(elapsed.as_secs_f64());

        let mut attempt = 0;
        let events = loop {
            attempt += 1;
            match self.store(&items, &verdicts, &hits).await {
                Ok(()) => {
                    self.backoff.reset();
                    break Some(());
                }
                Err(e) => {
                    ::metrics::counter!(m::DB_ERRORS_TOTAL).increment(1);
                    if attempt >= 3 {
                        error!(error = format!("{e:#}"), "storing predictions failed; the windows will be redelivered");
                        break None;
                    }
                    warn!(error = format!("{e:#}"), attempt, "storing predictions failed; retrying");
                    tokio::time::sleep(self.backoff.next_delay()).await;
                }
            }
        };
        let Some(()) = events else {
            for it in &items {
                let _ = it.msg.ack_with(AckKind::Nak(Some(self.backoff.current()))).await;
            }
            return;
        };
        for it in &items {
            if let Err(e) = it.msg.ack().await {
                // Stored: a lost ack is a redelivery that finds its prediction and does nothing.
                debug!(error = %e, "ack failed");
            }
        }
        self.relay().await;
    }

    /// The transaction of one batch (predictions, alerts, their events in the outbox).
    async fn store(&mut self, items: &[Item], verdicts: &[Option<Verdict>], hits: &[Vec<RuleHit>]) -> Result<()> {
        let model = self.model.clone();
        let rows: Vec<PredictionRow> = items
            .iter()
            .zip(verdicts)
            .zip(hits)
            .map(|((it, v), h)| prediction_row(&model, &it.window, v.as_ref(), h, self.policy.rule_confidence))
            .collect();
        let instance = self.cfg.instance.clone();
        let policy = self.policy.clone();
        let client = self.db().await?;
        let tx = client.transaction().await?;
        let new = predictions::insert_predictions(&tx, &rows, &model.model_version, &instance).await?;
        // The features that decided each window's class, with their values, as model evidence.
        let explain = |w: &WindowRecord, class: &str| -> Vec<(String, f64)> {
            let k = model.classes.iter().position(|c| c == class);
            match (model.view(w.view), k) {
                (Some(vm), Some(k)) => vm.explain(w, k, 5).into_iter().map(|(f, v)| (f.to_string(), v)).collect(),
                _ => Vec::new(),
            }
        };
        let deltas = alerts::aggregate(
            new.iter().map(|&i| (&items[i].window, verdicts[i].as_ref(), hits[i].as_slice())),
            &model.classes,
            &explain,
            &policy,
        );
        let events =
            store::alerts::apply_alerts(&tx, &deltas, Some(&model.model_version), policy.quiet_period_secs).await?;
        tx.commit().await.context("committing predictions")?;
        self.failpoint.hit(AFTER_ALERT_COMMIT);

        let dups = items.len() - new.len();
        if dups > 0 {
            ::metrics::counter!(m::DUPLICATE_WINDOWS_TOTAL).increment(dups as u64);
        }
        for &i in &new {
            ::metrics::counter!(m::PREDICTIONS_TOTAL, "label" => rows[i].label.clone()).increment(1);
            for h in &hits[i] {
                ::metrics::counter!(m::RULE_HITS_TOTAL, "rule" => h.rule).increment(1);
            }
        }
        for e in &events {
            match e.event.as_str() {
                "opened" => ::metrics::counter!(m::ALERTS_OPENED_TOTAL, "class" => e.class.clone()).increment(1),
                "closed" => ::metrics::counter!(m::ALERTS_CLOSED_TOTAL).increment(1),
                _ => {}
            }
        }
        debug!(windows = items.len(), new = new.len(), events = events.len(), "batch stored");
        Ok(())
    }

    async fn close_quiet(&mut self) {
        // Published outbox rows are kept a day for inspection, then go.
        if let Ok(c) = self.db().await {
            if let Err(e) = store::alert_events::prune(c, 86_400.0).await {
                warn!(error = format!("{e:#}"), "pruning the alert-event outbox failed");
            }
        }
        let quiet = self.cfg.quiet_period().as_secs_f64();
        let res = match self.db().await {
            Ok(c) => store::alerts::close_quiet(c, quiet).await,
            Err(e) => Err(e),
        };
        match res {
            Ok(events) => {
                if !events.is_empty() {
                    ::metrics::counter!(m::ALERTS_CLOSED_TOTAL).increment(events.len() as u64);
                    info!(closed = events.len(), "closed quiet alerts");
                    self.relay().await;
                }
            }
            Err(e) => warn!(error = format!("{e:#}"), "closing quiet alerts failed"),
        }
    }

    /// Publishes the outbox (this batch's events and any left behind); failures are counted
    /// and the rows stay for the next call.
    async fn relay(&mut self) {
        let (js, failpoint) = (self.js.clone(), self.failpoint.clone());
        let res = match self.db().await {
            Ok(c) => outbox::relay_with(c, &js, &failpoint).await,
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            ::metrics::counter!(m::ALERT_OUTBOX_ERRORS_TOTAL).increment(1);
            warn!(error = format!("{e:#}"), "relaying alert events failed; retried later");
        }
    }

    /// The database connection, reconnected if lost.
    async fn db(&mut self) -> Result<&mut tokio_postgres::Client> {
        Ok(self.db.get().await?.0)
    }
}

/// The prediction row of one window: the model's verdict, or without a forest for the view,
/// the first rule's class (or Normal with confidence 0). Also `nta rescore`'s.
pub fn prediction_row<'a>(
    model: &Model,
    w: &'a WindowRecord,
    v: Option<&Verdict>,
    hits: &[RuleHit],
    rule_confidence: f64,
) -> PredictionRow<'a> {
    let rules: Vec<&'static str> = hits.iter().map(|h| h.rule).collect();
    match v {
        Some(v) => PredictionRow {
            window: w,
            label: v.label.clone(),
            confidence: v.confidence,
            probabilities: v.probabilities_json(&model.classes),
            rules,
            decided_by: "model",
        },
        None => PredictionRow {
            window: w,
            label: hits.first().map_or(NORMAL, |h| h.class).to_string(),
            confidence: if hits.is_empty() { 0.0 } else { rule_confidence },
            probabilities: serde_json::json!({}),
            rules,
            decided_by: "rules",
        },
    }
}

/// Decodes a window, rejecting what cannot be stored or means nothing.
pub fn decode(payload: &[u8]) -> Result<WindowRecord, String> {
    let w = WindowRecord::decode(payload).map_err(|e| e.to_string())?;
    w.validate()?;
    Ok(w)
}

impl Handler for Service {
    async fn handle(&mut self, chunk: Vec<jetstream::Message>, _: &mut Shutdown<'_>) -> Result<()> {
        self.process(chunk).await;
        Ok(())
    }

    /// Timer 0 closes the alerts that went quiet, timer 1 relays the outbox.
    async fn tick(&mut self, index: usize, _: &mut Shutdown<'_>) -> Result<()> {
        match index {
            0 => self.close_quiet().await,
            _ => self.relay().await,
        }
        Ok(())
    }
}
