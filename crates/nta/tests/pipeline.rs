//! Every shared capture through agent -> NATS JetStream -> ingestor -> PostgreSQL: one row per
//! decodable frame, equal to what `nta decode` says, nothing lost, nothing duplicated.

mod common;
use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn shared_captures_land_in_postgres_exactly() {
    let nats = NatsServer::start().unwrap();
    let db = TestDb::create().await.unwrap();
    let _ingestor = start_ingestor(&nats.url, &db.url, &[]);
    let client = db.client().await.unwrap();

    let mut expected_rows = 0i64;
    let mut per_file = Vec::new();
    for (i, file) in testkit::shared_pcaps().iter().enumerate() {
        let agent_id = format!("cap{i}");
        let out = replay(&nats.url, file, &agent_id);
        let decoded = decode_jsonl(file);
        let frames = tshark_frame_count(file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The agent's own account: frames = decoded + malformed, all decoded records acked.
        let line = stderr.lines().find(|l| l.starts_with("agent:")).expect("agent summary line");
        let nums: Vec<u64> =
            line.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
        let (agent_frames, agent_decoded, agent_malformed, _, acked_records, dropped) =
            (nums[0], nums[1], nums[2], nums[3], nums[4], nums[5]);
        assert_eq!(
            agent_frames as usize,
            frames,
            "{}: agent saw {agent_frames} frames, tshark {frames}",
            file.display()
        );
        assert_eq!(agent_decoded + agent_malformed, agent_frames);
        assert_eq!(agent_decoded as usize, decoded.len(), "{}: agent and nta decode disagree", file.display());
        assert_eq!(acked_records, agent_decoded, "{}: not every record acknowledged", file.display());
        assert_eq!(dropped, 0);
        expected_rows += decoded.len() as i64;
        per_file.push((file.clone(), agent_id, decoded));
    }

    let landed = wait_for(Duration::from_secs(120), || async {
        let n = count(&client, "SELECT count(*) FROM raw_packets").await;
        (n == expected_rows).then_some(n)
    })
    .await;
    assert_eq!(landed, Some(expected_rows), "rows in raw_packets");

    for (file, agent_id, decoded) in per_file {
        let stored = stored_rows(&client, &agent_id).await;
        assert_eq!(stored.len(), decoded.len(), "{}: row count", file.display());
        for (n, (d, s)) in decoded.iter().zip(&stored).enumerate() {
            if let Err(e) = same_record(d, s) {
                panic!("{} record {n}: {e}", file.display());
            }
        }
    }
    // Give a late duplicate a chance to show up, then check the total again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&client, "SELECT count(*) FROM raw_packets").await, expected_rows);

    // The dashboard's per-minute and per-hour counts, kept by the ingestor's rollup consumer,
    // add up to exactly the stored packets.
    let rolled = wait_for(Duration::from_secs(60), || async {
        let (diff, counted) = testkit::rollup_vs_packets(&client).await.ok()?;
        (counted == expected_rows).then_some(diff)
    })
    .await;
    assert_eq!(rolled, Some(0), "traffic_rollup differs from raw_packets");
}
