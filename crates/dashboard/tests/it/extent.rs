//! `/api/data-extent` (the dashboard's "around the latest data" range) against fixture rows.

use crate::api::{get_ok, TOKEN};
use crate::common::*;

/// "Around the latest data": the newest packet and window, found by index lookups, equal what
/// a full scan finds, and the range covers the day of data before them; the same after the
/// newest rows are deleted (the extent follows the data, not the clock) and on an empty database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_extent_follows_the_stored_data() {
    let f = Fixture::start(None, Some(TOKEN)).await;
    let c = f.db.client().await.unwrap();
    let scan = "SELECT extract(epoch from (SELECT max(ts) FROM raw_packets))::float8, \
                extract(epoch from (SELECT max(window_end) FROM window_features WHERE window_size = 5))::float8";
    for round in 0..2 {
        let row = c.query_one(scan, &[]).await.unwrap();
        // Round 2 has packets from a day ago but no window left.
        let (packet, window): (f64, Option<f64>) = (row.get(0), row.get(1));
        let newest = packet.max(window.unwrap_or(f64::MIN));
        let oldest: f64 = c
            .query_one(
                "SELECT extract(epoch from least((SELECT min(ts) FROM raw_packets WHERE ts >= to_timestamp($1)), \
                 (SELECT min(window_start) FROM window_features WHERE window_size = 5 AND window_start >= to_timestamp($1))))::float8",
                &[&(newest - 86400.0)],
            )
            .await
            .unwrap()
            .get(0);
        let v = get_ok(&f, "/api/data-extent").await;
        assert_eq!(v["newest_packet"].as_f64(), Some(packet), "round {round}: {v}");
        assert_eq!(v["newest_window_end"].as_f64(), window, "round {round}: {v}");
        assert_eq!(v["newest"].as_f64(), Some(newest), "round {round}: {v}");
        let (from, to) = (v["range"]["from"].as_f64().unwrap(), v["range"]["to"].as_f64().unwrap());
        assert!(to > newest && to <= newest + 1.0, "round {round}: {v}");
        // The rollup's minutes may start up to a minute before the oldest packet.
        assert!(from <= oldest && from >= oldest - 61.0, "round {round}: oldest {oldest}, {v}");
        // The same range is what the other endpoints take.
        get_ok(&f, &format!("/api/traffic?from={from}&to={to}")).await;
        // Round 2: the newest half hour gone, as if the sensor had stopped then.
        let cut = "to_timestamp($1::float8 - 1800)";
        c.execute(&format!("DELETE FROM raw_packets WHERE ts >= {cut}"), &[&f.now]).await.unwrap();
        c.execute(&format!("DELETE FROM window_features WHERE window_start >= {cut}"), &[&f.now]).await.unwrap();
        c.execute(&format!("DELETE FROM traffic_rollup WHERE bucket >= {cut}"), &[&f.now]).await.unwrap();
    }
    c.batch_execute("DELETE FROM raw_packets; DELETE FROM window_features; DELETE FROM traffic_rollup").await.unwrap();
    let v = get_ok(&f, "/api/data-extent").await;
    assert!(v["newest"].is_null() && v["range"].is_null(), "{v}");
    f.stop().await;
}
