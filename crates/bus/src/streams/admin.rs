//! Replicas of NTA's streams: an existing stream keeps the count its operator gave it (a
//! warning at start says how to change it), `nta streams` shows the streams and changes it.

use anyhow::{bail, Context, Result};
use async_nats::jetstream::{self, stream};
use futures::TryStreamExt;
use std::fmt::Write;

use crate::subjects::{ALERTS_STREAM, DEADLETTER_STREAM, FRAMES_STREAM, PACKETS_STREAM, WINDOWS_STREAM};

/// Every stream NTA creates.
pub const NTA_STREAMS: [&str; 5] = [PACKETS_STREAM, WINDOWS_STREAM, DEADLETTER_STREAM, FRAMES_STREAM, ALERTS_STREAM];

/// `get_or_create_stream`, warning when the stream exists with another replica count than
/// `config` asks for. It is left as is: changing replicas moves data between nodes, which is the
/// operator's decision (`nta streams --replicas N`), not a side effect of starting a role.
/// Errors a wait may cure (no answer, a leader election) are the caller's to retry
/// (`startup::connect_streams` does).
pub(super) async fn get_or_create(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, jetstream::context::CreateStreamError> {
    let s = match js.get_or_create_stream(config.clone()).await {
        Err(e) if lost_creation_race(&e) => js.get_stream(&config.name).await.map_err(|_| e)?,
        res => res?,
    };
    let (have, want) = (s.cached_info().config.num_replicas.max(1), config.num_replicas.max(1));
    if have != want {
        tracing::warn!(
            stream = %config.name,
            replicas = have,
            configured = want,
            "the stream exists with {have} replica(s) and is left so; stream.replicas asks for {want}: \
             change it with `nta streams --replicas {want} --stream {}`",
            config.name
        );
    }
    Ok(s)
}

/// Errors of two roles creating the same stream at once (nats-server checks the name, then the
/// subjects of the other streams, and the concurrent creation lands in between): the stream now
/// exists and is the one to use. If it does not, the subjects really belong to another stream.
fn lost_creation_race(e: &jetstream::context::CreateStreamError) -> bool {
    use jetstream::ErrorCode as C;
    matches!(e.kind(), jetstream::context::CreateStreamErrorKind::JetStream(j)
        if [C::STREAM_SUBJECT_OVERLAP, C::STREAM_NAME_EXIST].contains(&j.error_code()))
}

/// What [`set_replicas`] did to one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaChange {
    Changed {
        stream: String,
        from: usize,
        to: usize,
    },
    Unchanged {
        stream: String,
        replicas: usize,
    },
    /// The stream does not exist (yet): the roles create it with `stream.replicas`.
    Missing {
        stream: String,
    },
}

impl std::fmt::Display for ReplicaChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplicaChange::Changed { stream, from, to } => write!(f, "{stream}: replicas {from} -> {to}"),
            ReplicaChange::Unchanged { stream, replicas } => write!(f, "{stream}: already {replicas} replica(s)"),
            ReplicaChange::Missing { stream } => write!(f, "{stream}: does not exist (created by the roles at start)"),
        }
    }
}

/// Sets the replica count of NTA's existing streams (only `only`, when given) to `replicas`.
/// JetStream copies the data to the new replicas (or drops the extra ones) in the background;
/// consumers, which NTA creates without a replica count of their own, follow their stream.
pub async fn set_replicas(
    client: &async_nats::Client,
    replicas: usize,
    only: Option<&str>,
) -> Result<Vec<ReplicaChange>> {
    let js = &jetstream::new(client.clone());
    if !(1..=5).contains(&replicas) {
        bail!("--replicas must be 1 to 5 (JetStream's limit), not {replicas}");
    }
    let names: Vec<&str> = match only {
        Some(name) if NTA_STREAMS.contains(&name) => vec![name],
        Some(name) => bail!("{name} is not one of NTA's streams ({})", NTA_STREAMS.join(", ")),
        None => NTA_STREAMS.to_vec(),
    };
    let mut changes = Vec::new();
    for name in names {
        let Some(info) = open(js, name).await?.map(|s| s.cached_info().clone()) else {
            changes.push(ReplicaChange::Missing { stream: name.to_string() });
            continue;
        };
        let from = info.config.num_replicas.max(1);
        if from == replicas {
            changes.push(ReplicaChange::Unchanged { stream: name.to_string(), replicas });
            continue;
        }
        let mut config = info.config;
        config.num_replicas = replicas;
        js.update_stream(&config).await.with_context(|| format!("changing the replicas of {name} to {replicas}"))?;
        changes.push(ReplicaChange::Changed { stream: name.to_string(), from, to: replicas });
    }
    Ok(changes)
}

/// Deletes the durable consumer `name` from whichever of NTA's streams holds it, so that the
/// role using it creates it again when it next starts, at the beginning of the stream (durable
/// consumers deliver everything retained): after a database restore it reads again what the
/// stream holds, and its ledger skips what the restored database has. Refused while a process
/// pulls from it: deleting a consumer under a running role would only make it recreate it.
pub async fn reset_consumer(client: &async_nats::Client, name: &str) -> Result<String> {
    use jetstream::context::ConsumerInfoErrorKind;
    let js = &jetstream::new(client.clone());
    for stream in NTA_STREAMS {
        let Some(s) = open(js, stream).await? else { continue };
        let info = s.cached_info();
        let ci = match s.consumer_info(name).await {
            Ok(ci) => ci,
            Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => continue,
            Err(e) => return Err(anyhow::anyhow!("consumer {name} of {stream}: {e}")),
        };
        if ci.num_waiting > 0 {
            bail!(
                "consumer {name} of {stream} is in use ({} pull request(s) waiting): stop the roles that use it \
                 first",
                ci.num_waiting
            );
        }
        s.delete_consumer(name).await.with_context(|| format!("deleting consumer {name} of {stream}"))?;
        return Ok(format!(
            "deleted consumer {name} of {stream} (it had delivered through stream sequence {}); the role that \
             uses it creates it again when it starts and reads the {} messages {stream} holds from sequence {}",
            ci.delivered.stream_sequence, info.state.messages, info.state.first_sequence
        ));
    }
    bail!("no consumer named {name} on NTA's streams (`nta streams` lists them)")
}

/// The stream (with its info: `get_stream` fetches it), `None` if it does not exist.
async fn open(js: &jetstream::Context, name: &str) -> Result<Option<stream::Stream>> {
    match js.get_stream(name).await {
        Ok(s) => Ok(Some(s)),
        Err(e)
            if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(ref j)
            if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
        {
            Ok(None)
        }
        Err(e) => Err(anyhow::anyhow!("{name}: {e}")),
    }
}

/// NTA's streams, one paragraph each: replicas and where they are (leader, followers with
/// whether they are current and how far behind), contents, limits and discard policy.
pub async fn report(client: &async_nats::Client) -> Result<String> {
    let js = &jetstream::new(client.clone());
    let mut out = String::new();
    for name in NTA_STREAMS {
        let Some(stream) = open(js, name).await? else {
            writeln!(out, "{name}: does not exist (created by the roles at start)")?;
            continue;
        };
        let info = stream.cached_info();
        let c = &info.config;
        write!(out, "{name}: {} replica(s)", c.num_replicas.max(1))?;
        if let Some(cluster) = &info.cluster {
            write!(out, ", leader {}", cluster.leader.as_deref().unwrap_or("none (election)"))?;
            for p in &cluster.replicas {
                let state = match (p.offline, p.current) {
                    (true, _) => "offline",
                    (false, true) => "current",
                    (false, false) => "catching up",
                };
                write!(out, ", {} {state} lag {}", p.name, p.lag.unwrap_or(0))?;
            }
        }
        writeln!(out)?;
        let s = &info.state;
        writeln!(
            out,
            "  {} messages, {} bytes (sequences {}..={})",
            s.messages, s.bytes, s.first_sequence, s.last_sequence
        )?;
        let limit = |v: i64| if v <= 0 { "unlimited".to_string() } else { v.to_string() };
        writeln!(
            out,
            "  limits: max_bytes {}, max_age {}, max_msgs {}; discard {:?}; storage {:?}; subjects {}",
            limit(c.max_bytes),
            if c.max_age.is_zero() { "unlimited".to_string() } else { format!("{}h", c.max_age.as_secs() / 3600) },
            limit(c.max_messages),
            c.discard,
            c.storage,
            c.subjects.join(" ")
        )?;
        let mut consumers = stream.consumers();
        while let Some(ci) = consumers.try_next().await.with_context(|| format!("listing the consumers of {name}"))? {
            // Ordered consumers (dashboard, exports) are ephemeral: only the durable ones matter here.
            if ci.config.durable_name.is_none() {
                continue;
            }
            writeln!(
                out,
                "  consumer {}: delivered through sequence {}, {} not yet delivered, {} unacknowledged, {} pull \
                 request(s) waiting",
                ci.name, ci.delivered.stream_sequence, ci.num_pending, ci.num_ack_pending, ci.num_waiting
            )?;
        }
    }
    Ok(out)
}
