//! NTA's streams on a 3-node JetStream cluster (testkit::NatsCluster), reached through a URL
//! list: replicas applied at creation, an existing stream left as it is, `nta streams`'
//! replica change, and publishing through the SIGKILL of the stream's leader losing and
//! doubling nothing.

use async_nats::jetstream::{self, message::PublishMessage};
use bus::streams::{
    ensure_deadletter_stream, ensure_packets_stream, ensure_windows_stream, report, set_replicas, ReplicaChange,
};
use bus::{Nats, StreamLimits, PACKETS_STREAM, WINDOWS_STREAM};
use std::time::{Duration, Instant};
use testkit::NatsCluster;

fn limits(replicas: usize) -> StreamLimits {
    StreamLimits { replicas, max_gb: Some(0.1), ..Default::default() }
}

/// The stream's leader and its followers that are current, once it has a leader.
async fn placement(js: &jetstream::Context, name: &str) -> (String, usize) {
    let start = Instant::now();
    loop {
        if let Ok(mut s) = js.get_stream(name).await {
            if let Ok(info) = s.info().await {
                if let Some(c) = &info.cluster {
                    if let Some(leader) = c.leader.clone().filter(|l| !l.is_empty()) {
                        return (leader, c.replicas.iter().filter(|p| p.current && !p.offline).count());
                    }
                }
            }
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{name} has no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Publishes with `Nats-Msg-Id` until JetStream acknowledges, as the roles do.
async fn publish_until_acked(js: &jetstream::Context, subject: &str, id: &str) -> u32 {
    let mut failures = 0;
    loop {
        let msg = PublishMessage::build().payload(id.to_string().into()).message_id(id);
        let res = match js.send_publish(subject.to_string(), msg).await {
            Ok(ack) => ack.await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match res {
            Ok(_) => return failures,
            Err(_) => {
                failures += 1;
                assert!(failures < 300, "{id} never acknowledged");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replicated_streams_on_a_cluster() {
    let mut cluster = NatsCluster::start(3).unwrap();
    // A list whose first server is down: the client takes the next one.
    let dead = format!("nats://127.0.0.1:{}", testkit::free_port());
    let first_down = bus::connect(&Nats::new(format!("{dead}, {}", cluster.url(2))), "test").await.unwrap();
    // `connect` returns at once (retry_on_initial_connect); a flush waits for the connection.
    tokio::time::timeout(Duration::from_secs(10), first_down.flush()).await.unwrap().unwrap();
    assert_eq!(first_down.server_info().server_name, cluster.name(2));
    drop(first_down);
    let nats = Nats::new(cluster.urls());
    let client = bus::connect(&nats, "test").await.unwrap();
    let mut js = jetstream::new(client.clone());
    js.set_timeout(Duration::from_secs(2));

    // An operator's existing single-replica stream is left alone (with a warning) ...
    let s = ensure_packets_stream(&js, &limits(1)).await.unwrap();
    assert_eq!(s.cached_info().config.num_replicas, 1);
    let s = ensure_packets_stream(&js, &limits(3)).await.unwrap();
    assert_eq!(s.cached_info().config.num_replicas, 1, "an existing stream was changed");
    // ... until asked: `nta streams --replicas 3`.
    let changes = set_replicas(&client, 3, None).await.unwrap();
    assert!(changes.contains(&ReplicaChange::Changed { stream: PACKETS_STREAM.into(), from: 1, to: 3 }), "{changes:?}");
    assert!(changes.contains(&ReplicaChange::Missing { stream: WINDOWS_STREAM.into() }), "{changes:?}");
    assert!(set_replicas(&client, 3, Some("OTHER")).await.is_err(), "only NTA's streams");
    assert!(set_replicas(&client, 0, None).await.is_err());
    // New streams get the configured replicas.
    let mut w = ensure_windows_stream(&js, &limits(3)).await.unwrap();
    assert_eq!(w.info().await.unwrap().config.num_replicas, 3);
    let d = ensure_deadletter_stream(&js, &limits(3)).await.unwrap();
    assert_eq!(d.cached_info().config.num_replicas, 3);
    let (leader, current) = placement(&js, PACKETS_STREAM).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while placement(&js, PACKETS_STREAM).await.1 < 2 {
        assert!(Instant::now() < deadline, "followers of {PACKETS_STREAM} never current ({current})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = report(&client).await.unwrap();
    assert!(text.contains(&format!("NTA_PACKETS: 3 replica(s), leader {leader}")), "{text}");
    assert!(text.contains("NTA_DEADLETTER: 3 replica(s)") && text.contains("discard Old"), "{text}");

    // A consumer made without a replica count follows its stream.
    let stream = js.get_stream(PACKETS_STREAM).await.unwrap();
    let mut consumer = stream
        .create_consumer(bus::streams::packets_consumer_config("probe", Duration::from_secs(5), 100))
        .await
        .unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!(info.cluster.as_ref().map(|c| c.replicas.len()), Some(2), "{info:?}");

    // Publishing through the loss of the stream's leader: retried with the same id, nothing
    // lost, nothing doubled.
    let total = 600;
    let mut failures = 0;
    for i in 0..total {
        if i == 200 {
            cluster.kill(cluster.index_of(&leader).unwrap());
        }
        if i == 400 {
            cluster.restart(cluster.index_of(&leader).unwrap()).unwrap();
        }
        failures += publish_until_acked(&js, "nta.packets.probe", &format!("m{i}")).await;
        // Re-publishing an acknowledged message is what a retry after a lost PubAck does.
        if i % 50 == 0 {
            publish_until_acked(&js, "nta.packets.probe", &format!("m{i}")).await;
        }
    }
    let (new_leader, _) = placement(&js, PACKETS_STREAM).await;
    assert_ne!(new_leader, leader, "no election after the leader's death");
    let mut s = js.get_stream(PACKETS_STREAM).await.unwrap();
    let state = s.info().await.unwrap().state.clone();
    assert_eq!(state.messages, total, "failures retried: {failures}");
    let mut seen = std::collections::BTreeSet::new();
    for seq in state.first_sequence..=state.last_sequence {
        let m = s.get_raw_message(seq).await.unwrap();
        assert!(seen.insert(m.payload.to_vec()), "duplicate at {seq}");
    }
    // The restarted node catches up.
    let deadline = Instant::now() + Duration::from_secs(30);
    while placement(&js, PACKETS_STREAM).await.1 < 2 {
        assert!(Instant::now() < deadline, "the restarted node never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
