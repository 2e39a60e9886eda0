//! The live alert view resumes after a dropped connection: events come from `NTA_ALERTS` with
//! their stream sequence as SSE `id`, and a client reconnecting with `Last-Event-ID` gets
//! exactly the events it missed, then the live ones, none twice.

use crate::common::*;
use serde_json::Value;
use std::time::Duration;

const TOKEN: &str = "live-token-0123456789";

/// The next SSE `alert` event: its `id` (stream sequence) and its data.
async fn next(rx: &mut tokio::sync::mpsc::UnboundedReceiver<SseAlert>) -> (u64, Value) {
    let (_, id, data) =
        tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("no alert event").expect("stream ended");
    (id, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_with_last_event_id_gets_exactly_the_missed_events() {
    let f = Fixture::start(None, Some(TOKEN)).await;
    let nats = async_nats::connect(&f.nats.url).await.unwrap();
    let mut db = f.db.client().await.unwrap();
    wait_for_follower(&nats).await;

    // Connected: two alerts arrive live, with increasing ids.
    let (mut rx, task) = sse_alerts(&f, TOKEN, None).await;
    let a1 = raise_alert(&mut db, &nats, "10.0.1.1", "syn_flood", "CRITICAL").await;
    let a2 = raise_alert(&mut db, &nats, "10.0.1.2", "port_scan", "HIGH").await;
    let (s1, e1) = next(&mut rx).await;
    let (s2, e2) = next(&mut rx).await;
    assert_eq!((e1["id"].as_i64(), e2["id"].as_i64()), (Some(a1), Some(a2)));
    assert!(s1 < s2, "{s1} {s2}");
    assert!(e1["event_id"].as_i64().is_some(), "{e1}");

    // Dropped; three events happen meanwhile (two openings, one resolution).
    task.abort();
    drop(rx);
    let a3 = raise_alert(&mut db, &nats, "10.0.1.3", "syn_flood", "CRITICAL").await;
    let a4 = raise_alert(&mut db, &nats, "10.0.1.4", "dns_tunnel", "MEDIUM").await;
    assert!(store::alerts::resolve_alert(&mut db, a1).await.unwrap());
    assert_eq!(relay(&mut db, &nats).await, 1);

    // Back with the last id seen: exactly the missed ones, in order, then live ones.
    let (mut rx, _task) = sse_alerts(&f, TOKEN, Some(s2)).await;
    let missed = [next(&mut rx).await, next(&mut rx).await, next(&mut rx).await];
    let got: Vec<(i64, &str)> =
        missed.iter().map(|(_, e)| (e["id"].as_i64().unwrap(), e["event"].as_str().unwrap())).collect();
    assert_eq!(got, vec![(a3, "opened"), (a4, "opened"), (a1, "resolved")]);
    assert!(missed.windows(2).all(|w| w[0].0 < w[1].0) && missed[0].0 > s2, "{missed:?}");
    let a5 = raise_alert(&mut db, &nats, "10.0.1.5", "port_scan", "HIGH").await;
    // The next event is the new one: nothing replayed twice in between.
    let (s5, e5) = next(&mut rx).await;
    assert_eq!(e5["id"].as_i64(), Some(a5), "{e5}");
    assert!(s5 > missed[2].0);
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_events_carry_their_outbox_id_once_on_the_stream() {
    let f = Fixture::start(None, Some(TOKEN)).await;
    let nats = async_nats::connect(&f.nats.url).await.unwrap();
    let mut db = f.db.client().await.unwrap();
    let a = raise_alert(&mut db, &nats, "10.0.2.1", "syn_flood", "CRITICAL").await;
    let js = async_nats::jetstream::new(nats.clone());
    let stream = js.get_stream(bus::ALERTS_STREAM).await.unwrap();
    let msg = stream.get_last_raw_message_by_subject(&bus::alert_subject("syn_flood")).await.unwrap();
    let ev: Value = serde_json::from_slice(&msg.payload).unwrap();
    let event_id = ev["event_id"].as_i64().unwrap();
    assert_eq!(ev["id"].as_i64(), Some(a));
    assert_eq!(msg.headers.get("Nats-Msg-Id").unwrap().as_str(), bus::alert_event_msg_id(event_id));
    // Marked published: a second relay run sends nothing.
    assert_eq!(store::alert_events::unpublished_count(&db).await.unwrap(), 0);
    assert_eq!(relay(&mut db, &nats).await, 0);
    // Published rows are pruned after their keep time; the unpublished never.
    assert_eq!(store::alert_events::prune(&db, 0.0).await.unwrap(), 1);
    f.stop().await;
}
