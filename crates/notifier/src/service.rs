//! The notifier role (`nta run --target notifier`): a durable pull consumer on `NTA_ALERTS`
//! (`nta-notifier`, shared by replicas) hands each alert event that passes the filters and the
//! quiet period to every output.
//!
//! # Delivery
//!
//! An event stays in progress (the server's ack timer is kept alive) until every output has
//! accepted it or rejected it for good; only then is it acknowledged. Outputs that failed
//! transiently are retried, alone, with exponential backoff: an output that already accepted
//! the event is not sent it again, so one receiver down does not duplicate messages at the
//! others. A permanent rejection (a 4xx, a bad address, or an output still failing after
//! `give_up_after_s`) copies the event to `nta.deadletter` with the output and the reason, and
//! counts it. Events are handled one at a time, in stream order: a receiver that is down holds
//! the following events back (for every output) until it is back or given up on.
//!
//! # After a crash
//!
//! Delivery is at least once: a notifier killed after an output accepted an event but before the
//! acknowledgement gets the event redelivered (to itself after a restart, or to a replica after
//! `ack_wait_s`) and sends it to every output again, with the same idempotency key (the event's
//! `Nats-Msg-Id`): the `Idempotency-Key` header and body field of a webhook, the e-mail's
//! Message-ID, the syslog `idempotency_key` parameter / CEF `externalId`, the `id:` line of a
//! Telegram message. Events acknowledged before the crash are never sent again.

use anyhow::Result;
use async_nats::jetstream::{self, AckKind};
use bus::consume::{Handler, LoopOptions};
use bus::{PullConsumer, Shutdown};
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};
use tracing::{info, warn};
use wire::AlertEvent;

use crate::config::{list, NotifierConfig};
use crate::metrics as m;
use crate::notification::{Notification, Policy};
use crate::outputs::{email, syslog, telegram, webhook, Outcome, Output};

const ROLE: &str = "notifier";

/// The outputs the configuration asks for (an error if none, or if one is malformed).
pub async fn outputs(cfg: &NotifierConfig) -> Result<Vec<Output>> {
    let client = reqwest::Client::builder().timeout(cfg.timeout()).build()?;
    let mut out = Vec::new();
    for (i, url) in list(cfg.webhook.as_deref()).iter().enumerate() {
        out.push(Output::Webhook(webhook::Webhook::new(i, url, client.clone())?));
    }
    if let Some(token) = cfg.telegram_token.as_deref().filter(|t| !t.is_empty()) {
        let chats = list(cfg.telegram_chat_ids.as_deref());
        out.push(Output::Telegram(telegram::Telegram::new(&cfg.telegram_api_url, token, chats, client.clone())?));
    }
    if let Some(url) = cfg.syslog.as_deref().filter(|u| !u.is_empty()) {
        out.push(Output::Syslog(syslog::Syslog::new(url, &cfg.syslog_format, &cfg.hostname).await?));
    }
    if let Some(url) = cfg.smtp.as_deref().filter(|u| !u.is_empty()) {
        let login = cfg.smtp_user.clone().zip(cfg.smtp_password.clone());
        let to = list(cfg.mail_to.as_deref());
        out.push(Output::Email(email::Email::new(url, &cfg.mail_from, &to, login, cfg.timeout())?));
    }
    anyhow::ensure!(
        !out.is_empty(),
        "the notifier has no output: set --webhook, NTA_TELEGRAM_TOKEN + NTA_TELEGRAM_CHAT_IDS, --syslog or --smtp"
    );
    Ok(out)
}

/// Runs the notifier until `shutdown` completes (the event in hand is left unacknowledged and
/// comes back, to this or another replica).
pub async fn run(cfg: NotifierConfig, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
    m::describe();
    let outputs = outputs(&cfg).await?;
    let names: Vec<&str> = outputs.iter().map(Output::name).collect();
    m::register(&names);
    let mut shutdown = Shutdown::new(shutdown);
    bus::startup::set_ready(ROLE, false);
    let started = async {
        use bus::startup::Want;
        let wanted = [Want::Alerts(cfg.alert_limits), Want::DeadLetter];
        let c = bus::startup::connect_streams(&cfg.nats, "nta-notifier", ROLE, &wanted, &cfg.stream_limits).await?;
        let stream = c.alerts.expect("asked for NTA_ALERTS");
        let config = jetstream::consumer::pull::Config {
            description: Some("nta notifier (replicas share it)".into()),
            ..bus::streams::alerts_consumer_config(&cfg.durable, cfg.ack_wait(), 1000)
        };
        let consumer: PullConsumer =
            bus::startup::wait_for_consumer(ROLE, &format!("creating consumer {}", cfg.durable), || {
                stream.get_or_create_consumer(&cfg.durable, config.clone())
            })
            .await?;
        anyhow::Ok((c.js, consumer))
    };
    let (js, consumer) = tokio::select! {
        s = started => s?,
        _ = shutdown.wait() => return Ok(()),
    };
    bus::startup::set_ready(ROLE, true);
    info!(outputs = ?names, durable = %cfg.durable, "notifier consuming NTA_ALERTS");
    let gauges = [
        bus::consume::spawn_pending_gauge(consumer.clone(), m::CONSUMER_PENDING_MESSAGES, Duration::from_secs(5)),
        bus::streams::usage::spawn_gauges(js.clone(), vec![bus::ALERTS_STREAM]),
    ];
    let policy = Policy::new(&cfg.min_severity, list(cfg.classes.as_deref()), cfg.quiet(), cfg.notify_resolved);
    let mut notifier = Notifier { cfg, js, outputs, policy };
    let opts = LoopOptions {
        stream: bus::ALERTS_STREAM,
        max_messages_per_batch: 16,
        max_chunk: 16,
        timers: vec![Duration::from_secs(60)],
    };
    let res = bus::consume::run(&consumer, &opts, &mut notifier, &mut shutdown).await;
    gauges.iter().for_each(|g| g.abort());
    res
}

struct Notifier {
    cfg: NotifierConfig,
    js: jetstream::Context,
    outputs: Vec<Output>,
    policy: Policy,
}

impl Handler for Notifier {
    async fn handle(&mut self, chunk: Vec<jetstream::Message>, shutdown: &mut Shutdown<'_>) -> Result<()> {
        for msg in chunk {
            if shutdown.requested() {
                // Not started: let it go back at once rather than after ack_wait.
                let _ = msg.ack_with(AckKind::Nak(None)).await;
                continue;
            }
            self.process(msg, shutdown).await;
        }
        Ok(())
    }

    async fn tick(&mut self, _index: usize, _shutdown: &mut Shutdown<'_>) -> Result<()> {
        self.policy.prune(Instant::now());
        Ok(())
    }
}

impl Notifier {
    async fn process(&mut self, msg: jetstream::Message, shutdown: &mut Shutdown<'_>) {
        let alert: AlertEvent = match serde_json::from_slice(&msg.payload) {
            Ok(a) => a,
            Err(e) => {
                let reason = format!("undecodable alert event: {e}");
                bus::deadletter::poison(
                    &self.js,
                    &msg,
                    &reason,
                    &self.cfg.durable,
                    m::MALFORMED_TOTAL,
                    Duration::from_secs(5),
                )
                .await;
                return;
            }
        };
        if let Err(skip) = self.policy.admit(&alert, Instant::now()) {
            metrics::counter!(m::SKIPPED_TOTAL, "reason" => skip.label()).increment(1);
            ack(&msg).await;
            return;
        }
        let msg_id = msg.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).map(|v| v.as_str().to_string());
        let n = Notification::new(alert, msg_id.as_deref());
        let published = msg.info().ok().map(|i| SystemTime::from(i.published));
        let mut pending: Vec<usize> = (0..self.outputs.len()).collect();
        let mut backoff = self.cfg.backoff();
        let first = Instant::now();
        loop {
            let n = &n;
            let attempts = pending.iter().map(|&i| {
                let out = &self.outputs[i];
                async move {
                    let t = Instant::now();
                    let outcome = out.deliver(n).await;
                    metrics::histogram!(m::ATTEMPT_SECONDS, "output" => out.name().to_string())
                        .record(t.elapsed().as_secs_f64());
                    (i, outcome)
                }
            });
            let results = futures::future::join_all(attempts).await;
            let mut still = Vec::new();
            for (i, outcome) in results {
                let name = self.outputs[i].name().to_string();
                match outcome {
                    Outcome::Delivered => {
                        metrics::counter!(m::SENT_TOTAL, "output" => name.clone()).increment(1);
                        if let Some(p) = published {
                            let age = SystemTime::now().duration_since(p).unwrap_or_default();
                            metrics::histogram!(m::LATENCY_SECONDS, "output" => name).record(age.as_secs_f64());
                        }
                    }
                    Outcome::Retry(reason) => {
                        metrics::counter!(m::FAILED_TOTAL, "output" => name.clone()).increment(1);
                        match self.cfg.give_up_after() {
                            Some(limit) if first.elapsed() >= limit => {
                                let reason = format!("gave up after {} s: {reason}", limit.as_secs());
                                if !self.reject(&msg, &name, &reason).await {
                                    still.push(i);
                                }
                            }
                            _ => {
                                warn!(output = %name, key = %n.idempotency_key, %reason, "delivery failed; will retry");
                                still.push(i);
                            }
                        }
                    }
                    Outcome::Reject(reason) => {
                        metrics::counter!(m::FAILED_TOTAL, "output" => name.clone()).increment(1);
                        if !self.reject(&msg, &name, &reason).await {
                            still.push(i);
                        }
                    }
                }
            }
            pending = still;
            if pending.is_empty() {
                ack(&msg).await;
                return;
            }
            // Keep the event ours while waiting, so no replica starts it over.
            let _ = msg.ack_with(AckKind::Progress).await;
            let delay = backoff.next_delay().min(self.cfg.ack_wait() / 2);
            if !shutdown.sleep(delay).await {
                let _ = msg.ack_with(AckKind::Nak(None)).await;
                return;
            }
            for &i in &pending {
                metrics::counter!(m::RETRIED_TOTAL, "output" => self.outputs[i].name().to_string()).increment(1);
            }
        }
    }

    /// Dead-letters the event for output `name`; false if even that failed (then the output is
    /// retried like a transient failure, so nothing is lost).
    async fn reject(&self, msg: &jetstream::Message, name: &str, reason: &str) -> bool {
        let reason = format!("output {name}: {reason}");
        match bus::deadletter::copy(&self.js, msg, &reason, &self.cfg.durable).await {
            Ok(reason) => {
                metrics::counter!(m::DEADLETTER_TOTAL, "output" => name.to_string()).increment(1);
                warn!(output = name, %reason, "notification dead-lettered");
                true
            }
            Err(e) => {
                warn!(output = name, error = %e, "cannot dead-letter the notification; retrying the output");
                false
            }
        }
    }
}

/// Acknowledges and waits for the server to confirm it: an event counted as done is never sent
/// again after a crash.
async fn ack(msg: &jetstream::Message) {
    if let Err(e) = msg.double_ack().await {
        // The event comes back after ack_wait and is sent again with the same idempotency key.
        warn!(error = %e, "acknowledging an alert event failed");
    }
}
