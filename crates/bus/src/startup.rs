//! Starting a role whatever came up first: every role waits for NATS (and PostgreSQL) rather
//! than exiting, says so in the log at a modest interval, and exports `nta_ready{role}` (0 while
//! waiting, 1 once the role has everything it needs) so that an orchestrator or an operator can
//! tell a waiting role from a working one. Only errors that waiting cannot cure (a refusal by
//! the server, a bad configuration) end the wait.

use anyhow::{anyhow, Context, Result};
use async_nats::jetstream::stream::{ConsumerError, ConsumerErrorKind};
use async_nats::jetstream::{self, context::CreateStreamErrorKind, stream, ErrorCode};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

use crate::streams::{self, StreamLimits};
use crate::Nats;

/// Gauge `nta_ready{role}`: 1 once the role is connected and its streams exist.
pub const READY: &str = "nta_ready";

/// How often a role still waiting repeats that it is.
const LOG_EVERY: Duration = Duration::from_secs(10);
const MIN_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(2);

/// Sets `nta_ready{role}`.
pub fn set_ready(role: &'static str, ready: bool) {
    metrics::gauge!(READY, "role" => role).set(if ready { 1.0 } else { 0.0 });
}

/// Registers `counters` at 0 when a role starts: Prometheus' `increase()` needs a sample before
/// the first event, or an alert on it never fires on the first one (see infra/monitoring/).
pub fn counters_from_zero(counters: &[&'static str]) {
    for &name in counters {
        metrics::counter!(name).increment(0);
    }
}

/// Calls `attempt` until it succeeds or fails with an error `transient` does not accept,
/// logging the wait at once and then every [`LOG_EVERY`]. Cancel-safe: a role stopped while
/// waiting drops this future and exits.
pub async fn wait_for<T, F, Fut>(
    role: &'static str,
    what: &str,
    mut attempt: F,
    transient: impl Fn(&anyhow::Error) -> bool,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = Instant::now();
    let mut logged: Option<Instant> = None;
    let mut delay = MIN_DELAY;
    loop {
        match attempt().await {
            Ok(v) => {
                if logged.is_some() {
                    tracing::info!(role, waited = ?started.elapsed(), "{what} is reachable");
                }
                return Ok(v);
            }
            Err(e) if transient(&e) => {
                if logged.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
                    tracing::warn!(role, waited_s = started.elapsed().as_secs(), error = %format!("{e:#}"),
                        "waiting for {what}");
                    logged = Some(Instant::now());
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
            Err(e) => return Err(e),
        }
    }
}

/// The streams a role writes to or reads from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Want {
    Packets,
    Windows,
    DeadLetter,
    /// `NTA_ALERTS`, created with these limits (its own `[alerts]` settings).
    Alerts(streams::AlertLimits),
}

/// A connection whose streams exist.
pub struct Connected {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    /// What the server refused on this connection (see [`crate::connect::Refusals`]).
    pub refusals: crate::connect::Refusals,
    /// `NTA_PACKETS`, if [`Want::Packets`] was asked for.
    pub packets: Option<stream::Stream>,
    /// `NTA_WINDOWS`, if [`Want::Windows`] was asked for.
    pub windows: Option<stream::Stream>,
    /// `NTA_ALERTS`, if [`Want::Alerts`] was asked for.
    pub alerts: Option<stream::Stream>,
}

/// Connects as `client_name` and ensures the `wanted` streams, waiting for NATS (and JetStream)
/// as long as it takes. Streams with a configuration NTA would not create are kept, with a
/// warning where it matters (see [`streams::warn_discard_old`]).
pub async fn connect_streams(
    nats: &Nats,
    client_name: &str,
    role: &'static str,
    wanted: &[Want],
    limits: &StreamLimits,
) -> Result<Connected> {
    let (client, refusals) = crate::connect::connect_with_refusals(nats, client_name).await?;
    let js = jetstream::new(client.clone());
    let what = format!("NATS JetStream at {}", nats.redacted_url());
    let mut out = Connected { client, js: js.clone(), refusals, packets: None, windows: None, alerts: None };
    for want in wanted {
        let ensure = || async {
            let r = match want {
                Want::Packets => streams::ensure_packets_stream(&js, limits).await,
                Want::Windows => streams::ensure_windows_stream(&js, limits).await,
                Want::DeadLetter => streams::ensure_deadletter_stream(&js, limits).await,
                Want::Alerts(alerts) => streams::ensure_alerts_stream(&js, alerts).await,
            };
            r.map_err(|e| {
                let transient = create_error_is_transient(e.kind());
                let e = anyhow!(e).context(format!("ensuring stream {}", stream_name(*want)));
                if transient {
                    e.context(Transient)
                } else {
                    e
                }
            })
        };
        let s = wait_for(role, &what, ensure, |e| e.downcast_ref::<Transient>().is_some()).await?;
        match want {
            Want::Packets => {
                streams::warn_discard_old(&s, role);
                out.packets = Some(s);
            }
            Want::Windows => out.windows = Some(s),
            Want::Alerts(_) => out.alerts = Some(s),
            Want::DeadLetter => {}
        }
    }
    Ok(out)
}

/// Ensures `NTA_FRAMES` on a connection made by [`connect_streams`], waiting like it does.
pub async fn ensure_frames(
    js: &jetstream::Context,
    nats: &Nats,
    role: &'static str,
    limits: &streams::FrameLimits,
) -> Result<stream::Stream> {
    let what = format!("NATS JetStream at {}", nats.redacted_url());
    let ensure = || async {
        streams::ensure_frames_stream(js, limits).await.map_err(|e| {
            let transient = create_error_is_transient(e.kind());
            let e = anyhow!(e).context(format!("ensuring stream {}", crate::FRAMES_STREAM));
            if transient {
                e.context(Transient)
            } else {
                e
            }
        })
    };
    wait_for(role, &what, ensure, |e| e.downcast_ref::<Transient>().is_some()).await
}

/// Runs a consumer request (create, find, delete) of `role`, waiting as long as JetStream does
/// not answer or a cluster elects the consumer's leader (a node just died): a role starting
/// then must not fail for it. Other refusals (permissions, a bad configuration) are errors.
pub async fn wait_for_consumer<T, F, Fut>(role: &'static str, what: &str, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ConsumerError>>,
{
    let request = || {
        let fut = attempt();
        async move {
            fut.await.map_err(|e| {
                let transient = consumer_error_is_transient(e.kind());
                let e = anyhow!(e).context(what.to_string());
                if transient {
                    e.context(Transient)
                } else {
                    e
                }
            })
        }
    };
    wait_for(role, "NATS JetStream", request, |e| e.downcast_ref::<Transient>().is_some()).await
}

fn consumer_error_is_transient(kind: ConsumerErrorKind) -> bool {
    match kind {
        ConsumerErrorKind::TimedOut | ConsumerErrorKind::Request => true,
        ConsumerErrorKind::JetStream(e) => cluster_unavailable(e.error_code()),
        _ => false,
    }
}

fn stream_name(want: Want) -> &'static str {
    match want {
        Want::Packets => crate::PACKETS_STREAM,
        Want::Windows => crate::WINDOWS_STREAM,
        Want::DeadLetter => crate::DEADLETTER_STREAM,
        Want::Alerts(_) => crate::ALERTS_STREAM,
    }
}

/// Marks an error that waiting may cure.
#[derive(Debug)]
struct Transient;

impl std::fmt::Display for Transient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not reachable yet")
    }
}

/// Server not reachable, JetStream not answering (yet) or a cluster without a leader: waiting
/// helps. Any other answer from JetStream (a configured size it cannot reserve, a permission
/// error) will not change by itself.
fn create_error_is_transient(kind: CreateStreamErrorKind) -> bool {
    match kind {
        CreateStreamErrorKind::TimedOut
        | CreateStreamErrorKind::JetStreamUnavailable
        | CreateStreamErrorKind::Response => true,
        CreateStreamErrorKind::JetStream(e) => cluster_unavailable(e.error_code()),
        _ => false,
    }
}

/// JetStream error codes of a cluster electing leaders or missing peers.
pub fn cluster_unavailable(code: ErrorCode) -> bool {
    [
        ErrorCode::CLUSTER_NOT_AVAILABLE,
        ErrorCode::CLUSTER_NOT_LEADER,
        ErrorCode::CLUSTER_INCOMPLETE,
        ErrorCode::CLUSTER_NO_PEERS,
        ErrorCode::CLUSTER_NOT_ACTIVE,
        ErrorCode::STREAM_OFFLINE,
    ]
    .contains(&code)
}

/// `wait_for` with the error context the roles print when they give up.
pub async fn wait_for_database<T, F, Fut>(
    role: &'static str,
    attempt: F,
    transient: impl Fn(&anyhow::Error) -> bool,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    wait_for(role, "PostgreSQL", attempt, transient).await.context("opening the database")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jetstream_error(code: u64) -> jetstream::Error {
        serde_json::from_value(serde_json::json!({"code": 503, "err_code": code})).unwrap()
    }

    #[test]
    fn consumer_requests_wait_out_elections_only() {
        assert!(consumer_error_is_transient(ConsumerErrorKind::TimedOut));
        // JSClusterNotAvailErr, JSClusterNotLeaderErr: a leader is being elected.
        assert!(consumer_error_is_transient(ConsumerErrorKind::JetStream(jetstream_error(10008))));
        assert!(consumer_error_is_transient(ConsumerErrorKind::JetStream(jetstream_error(10009))));
        // JSConsumerNotFoundErr, JSStreamNotFoundErr: waiting changes nothing.
        assert!(!consumer_error_is_transient(ConsumerErrorKind::JetStream(jetstream_error(10014))));
        assert!(!consumer_error_is_transient(ConsumerErrorKind::JetStream(jetstream_error(10059))));
        assert!(!consumer_error_is_transient(ConsumerErrorKind::InvalidName));
    }
}
