//! Where the stored data is in time, for the "around the latest data" range: a replayed
//! capture from 2015 is invisible in "the last hour" of wall-clock time.

use super::*;

/// Longest "around the latest data" range: the dashboard's charts cap ranges at 31 days, and a
/// day of history before the newest record is what a replay or a stopped sensor leaves to read.
const LOOKBACK_S: f64 = 86400.0;
/// Shortest range, so that a capture of a few seconds still gets a readable chart (12 of the
/// smallest, 5 s, buckets).
const MIN_SPAN_S: f64 = 60.0;

/// `GET /api/data-extent`: the newest packet and 5 s window stored, the oldest record within a
/// day before the newest, and the range that covers them (`range`, null when nothing is stored).
/// Every lookup is an index scan: the newest packet is searched from the newest minute of the
/// rollup on (raw_packets has only a BRIN index on `ts`), the oldest in the rollup and windows.
pub async fn data_extent(State(state): State<AppState>) -> JsonResult {
    let empty =
        json!({"newest": null, "newest_packet": null, "newest_window_end": null, "oldest": null, "range": null});
    let r = async {
        let c = db(&state).await?;
        let newest = c
            .query_one(
                "SELECT extract(epoch from (SELECT max(ts) FROM raw_packets WHERE ts >= coalesce( \
                        (SELECT max(bucket) FROM traffic_rollup WHERE width = 60 AND dim = 'protocol'), '-infinity')))::float8, \
                        extract(epoch from (SELECT max(window_end) FROM window_features WHERE window_size = 5 \
                          AND window_start >= (SELECT max(window_start) FROM window_features) - interval '180 seconds'))::float8",
                &[],
            )
            .await?;
        let (packet, window): (Option<f64>, Option<f64>) = (newest.get(0), newest.get(1));
        let Some(latest) = packet.into_iter().chain(window).reduce(f64::max) else { return Ok(empty.clone()) };
        let since = latest - LOOKBACK_S;
        // The rollup's minutes, else (no rollup consumer ran) the packets themselves; 5 s windows
        // only, as a 3 min window starts up to 3 minutes before its first packet.
        let oldest: Option<f64> = c
            .query_one(
                "SELECT extract(epoch from least( \
                    coalesce((SELECT min(bucket) FROM traffic_rollup WHERE width = 60 AND dim = 'protocol' \
                                AND bucket >= to_timestamp($1)), \
                             (SELECT min(ts) FROM raw_packets WHERE ts >= to_timestamp($1))), \
                    (SELECT min(window_start) FROM window_features WHERE window_size = 5 \
                       AND window_start >= to_timestamp($1))))::float8",
                &[&since],
            )
            .await?
            .get(0);
        let (from, to) = around(latest, oldest);
        Ok(json!({"newest": latest, "newest_packet": packet, "newest_window_end": window, "oldest": oldest,
                  "range": {"from": from, "to": to}}))
    }
    .await;
    or_empty(r, empty)
}

/// The range ending just after `latest` (API ranges exclude their end) and starting at the
/// oldest record of the day before it, at least [`MIN_SPAN_S`] long, in whole seconds.
fn around(latest: f64, oldest: Option<f64>) -> (f64, f64) {
    let to = latest.floor() + 1.0;
    let from = oldest.unwrap_or(latest).max(to - LOOKBACK_S).floor().min(to - MIN_SPAN_S);
    (from, to)
}

#[cfg(test)]
mod tests {
    use super::around;

    #[test]
    fn ranges_cover_the_data() {
        // A 30 s capture: at least a minute, ending after its last packet.
        assert_eq!(around(1_000_030.5, Some(1_000_000.2)), (999_971.0, 1_000_031.0));
        // Ten minutes of data: from its first second.
        assert_eq!(around(1_000_600.0, Some(1_000_000.7)), (1_000_000.0, 1_000_601.0));
        // Older data beyond a day is not reached.
        assert_eq!(around(1_000_000.0, Some(1.0)), (1_000_001.0 - 86400.0, 1_000_001.0));
        assert_eq!(around(1_000_000.0, None), (1_000_001.0 - 60.0, 1_000_001.0));
    }
}
