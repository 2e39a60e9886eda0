//! A replay into an `NTA_PACKETS` too small for it: JetStream refuses what does not fit
//! (`DiscardPolicy::New`) and the agent counts every record it could not publish, in its
//! summary and in `nta_agent_dropped_records_total{reason="stream_full"}`; nothing stored is
//! deleted to make room.

use agent::queue::STREAM_FULL;
use agent::AgentConfig;
use async_nats::jetstream::stream::DiscardPolicy;
use bus::StreamLimits;
use testkit::NatsServer;

/// Messages stored in NTA_PACKETS and the records they hold.
async fn stream_records(nats_url: &str) -> (DiscardPolicy, usize) {
    let js = async_nats::jetstream::new(async_nats::connect(nats_url).await.unwrap());
    let mut stream = js.get_stream(bus::PACKETS_STREAM).await.unwrap();
    let info = stream.info().await.unwrap().clone();
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    assert_eq!(info.state.messages, last - first + 1, "no message deleted from the stream");
    let mut records = 0;
    for seq in first..=last {
        let m = stream.get_raw_message(seq).await.unwrap();
        records += wire::PacketBatch::decode(&m.payload).unwrap().records.len();
    }
    (info.config.discard, records)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_stream_refuses_and_every_record_is_stored_or_counted() {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder().unwrap();
    let nats = NatsServer::start().unwrap();
    let cfg = AgentConfig {
        read: Some(testkit::pcaps_dir().join("port_scan-syn-1000ports.pcap")),
        nats: bus::Nats::new(&nats.url),
        agent_id: "full".into(),
        batch_size: 100,
        drain_grace_s: 1,
        // 100 kB: a fraction of the ~5 k records of the capture.
        stream_limits: StreamLimits { max_gb: Some(0.0001), ..Default::default() },
        ..Default::default()
    };
    let summary = agent::run(cfg, std::future::pending()).await.expect("a full stream is not an error");

    let (discard, stored) = stream_records(&nats.url).await;
    assert_eq!(discard, DiscardPolicy::New);
    let decoded = summary.capture.decoded as usize;
    let dropped = summary.dropped_records as usize;
    assert!(stored > 0 && dropped > 0, "stored {stored}, dropped {dropped}: the stream should be partly full");
    assert_eq!(stored + dropped, decoded, "every record stored or counted: {summary:?}");
    assert_eq!(summary.dropped_by_reason.get(STREAM_FULL).copied().unwrap_or(0), dropped as u64, "{summary:?}");
    let rendered = metrics.render();
    let line = rendered
        .lines()
        .find(|l| l.starts_with("nta_agent_dropped_records_total{reason=\"stream_full\"}"))
        .unwrap_or_else(|| panic!("no stream_full drop counter in\n{rendered}"));
    assert_eq!(line.rsplit(' ').next().unwrap().parse::<usize>().unwrap(), dropped, "{line}");
}

/// A server too small for `NTA_FRAMES` (its 64 MiB minimum) costs the frames only: the replay
/// publishes every record and counts every frame as dropped (`publish_error`).
#[tokio::test(flavor = "multi_thread")]
async fn no_room_for_frames_costs_the_frames_only() {
    let nats = NatsServer::start_with_store_limit(32 * 1024 * 1024).unwrap();
    let cfg = AgentConfig {
        read: Some(testkit::pcaps_dir().join("ssh_brute-guessing.pcap")),
        nats: bus::Nats::new(&nats.url),
        agent_id: "small".into(),
        drain_grace_s: 1,
        stream_limits: StreamLimits { max_gb: Some(0.01), ..Default::default() },
        ..Default::default()
    };
    let summary = agent::run(cfg, std::future::pending()).await.expect("frames are not the agent's job");
    assert_eq!(summary.publish.records_acked, summary.capture.decoded, "{summary:?}");
    assert_eq!(summary.dropped_records, 0);
    let frames = summary.frames.expect("frames were to be kept");
    assert_eq!(frames.dropped, summary.capture.frames, "{frames:?}");
    assert_eq!(frames.dropped_by_reason.get(agent::queue::PUBLISH_ERROR).copied(), Some(summary.capture.frames));
}
