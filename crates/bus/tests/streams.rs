//! Stream creation against a real nats-server whose file store is smaller than the defaults.

use async_nats::jetstream;
use bus::streams::{ensure_packets_stream, ensure_windows_stream, StreamLimits, DEFAULT_MAX_BYTES};

const GIB: u64 = 1024 * 1024 * 1024;

#[tokio::test]
async fn default_sizes_fit_a_small_store_and_explicit_sizes_are_kept() {
    // 3 GiB of store: neither default 10 GiB stream fits, both must still be created.
    let nats = testkit::NatsServer::start_with_store_limit(3 * GIB).unwrap();
    let js = jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    let mut packets = ensure_packets_stream(&js, &StreamLimits::default()).await.unwrap();
    let mut windows = ensure_windows_stream(&js, &StreamLimits::default()).await.unwrap();
    let p = packets.info().await.unwrap().config.max_bytes;
    let w = windows.info().await.unwrap().config.max_bytes;
    assert!(p > 0 && p < DEFAULT_MAX_BYTES && w > 0 && w < DEFAULT_MAX_BYTES, "{p} {w}");
    assert!((p + w) as u64 <= 3 * GIB, "reserved {p} + {w}");

    // An explicit size that does not fit is an error, never silently shrunk.
    let nats = testkit::NatsServer::start_with_store_limit(GIB).unwrap();
    let js = jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    let limits = StreamLimits { max_gb: Some(2.0), ..Default::default() };
    let err = ensure_packets_stream(&js, &limits).await.unwrap_err();
    assert!(err.to_string().contains("insufficient storage"), "{err}");
    let limits = StreamLimits { max_gb: Some(0.5), ..Default::default() };
    let mut s = ensure_packets_stream(&js, &limits).await.unwrap();
    assert_eq!(s.info().await.unwrap().config.max_bytes, 500_000_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_starting_together_all_get_the_stream() {
    // Roles started at once each create NTA_PACKETS; nats-server may answer all but the first
    // "subjects overlap", which must not stop a role. Each round starts from no stream.
    let nats = testkit::NatsServer::start().unwrap();
    let mut contexts = Vec::new();
    for _ in 0..16 {
        contexts.push(jetstream::new(async_nats::connect(&nats.url).await.unwrap()));
    }
    for round in 0..100 {
        let creations =
            contexts.iter().map(|js| async move { ensure_packets_stream(js, &StreamLimits::default()).await });
        for (role, created) in futures::future::join_all(creations).await.into_iter().enumerate() {
            if let Err(e) = created {
                panic!("round {round}: role {role} could not get the stream: {e}");
            }
        }
        contexts[0].delete_stream(bus::subjects::PACKETS_STREAM).await.unwrap();
    }
}
