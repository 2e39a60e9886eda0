//! Load benchmark (ignored by default; run with `crates/dashboard/bench.sh`): fills a
//! throw-away database with NTA_BENCH_PACKETS raw packets (default 10 M) over the last 24 h and
//! NTA_BENCH_WINDOWS 5 s windows (default 1 M) with predictions and alerts, through
//! generate_series, then measures the latency of the default API views (p50 / p95 / max over
//! NTA_BENCH_REQUESTS requests each, default 20).

use crate::common::*;
use std::time::{Duration, Instant};

fn env_num(name: &str, default: i64) -> i64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "load benchmark: crates/dashboard/bench.sh"]
async fn bench_default_views() {
    let packets = env_num("NTA_BENCH_PACKETS", 10_000_000);
    let windows = env_num("NTA_BENCH_WINDOWS", 1_000_000);
    let requests = env_num("NTA_BENCH_REQUESTS", 20) as usize;
    let f = Fixture::start_with(None, Some("bench"), false).await;
    let mut c = f.db.client().await.unwrap();
    store::migrate(&mut c).await.unwrap();
    let now = now().floor();
    for d in 0..3 {
        c.execute(
            "SELECT nta_ensure_raw_partition((to_timestamp($1::float8 - $2::float8 * 86400) AT TIME ZONE 'UTC')::date)",
            &[&now, &(d as f64)],
        )
        .await
        .unwrap();
    }
    let t = Instant::now();
    // In time order, like the ingestor writes them (BRIN relies on it): 1000 sources, 200
    // destinations, 70% TCP, 20% UDP (half of it DNS), 10% ICMP.
    let chunk = 1_000_000i64;
    let mut start = 0;
    while start < packets {
        let end = (start + chunk).min(packets);
        c.execute(
            "INSERT INTO raw_packets (ts, interface, src_ip, dst_ip, protocol, length, src_port, dst_port, tcp_flags, tcp_syn,
                                      dns_query, dns_qname, agent_id, batch_id, idx)
             SELECT to_timestamp($1::float8 - 86400 + g * 86400.0 / $2::float8), 'eth0',
                    ('10.1.' || (g % 1000 / 250) || '.' || (g % 250))::inet,
                    ('192.168.0.' || (g % 200))::inet,
                    CASE WHEN g % 10 < 7 THEN 'TCP' WHEN g % 10 < 9 THEN 'UDP' ELSE 'ICMP' END,
                    60 + (g % 1400)::int,
                    CASE WHEN g % 10 < 9 THEN 1024 + (g % 60000)::int END,
                    CASE WHEN g % 10 < 7 THEN (ARRAY[80, 443, 22, 8080, 3389])[1 + g % 5] WHEN g % 10 < 8 THEN 53 WHEN g % 10 < 9 THEN 123 END,
                    CASE WHEN g % 10 < 7 THEN 'ACK' END, CASE WHEN g % 10 < 7 THEN g % 50 = 0 END,
                    CASE WHEN g % 10 = 7 THEN true END, CASE WHEN g % 10 = 7 THEN 'host' || (g % 5000) || '.example.com' END,
                    'bench', 'b' || (g / 500), (g % 500)::int
             FROM generate_series($3::int8, $4::int8 - 1) g",
            &[&now, &(packets as f64), &start, &end],
        )
        .await
        .unwrap();
        start = end;
    }
    eprintln!("{packets} packets inserted in {:?}", t.elapsed());
    let t = Instant::now();
    // The per-minute and per-hour counts the ingestor would have kept while storing them.
    c.execute("INSERT INTO traffic_rollup SELECT * FROM nta_traffic_rollup_of('-infinity', 'infinity')", &[])
        .await
        .unwrap();
    eprintln!("traffic_rollup built in {:?}", t.elapsed());
    let t = Instant::now();
    let keys = 58i64;
    let starts = windows / keys;
    let ws = (now / 5.0).floor() * 5.0;
    c.execute(
        "INSERT INTO window_features (view, key, window_start, window_end, window_size, packet_count, byte_count, packet_rate_pps,
                                      byte_rate_bps, tcp_count, udp_count, unique_dst_ips, unique_dst_ports, tcp_syn_count)
         SELECT 'source', '10.1.0.' || k, to_timestamp($1::float8 - 5 * s), to_timestamp($1::float8 - 5 * s + 5), 5,
                10 + k, 7000 + k, (10 + k) / 5.0, (7000 + k) * 8 / 5.0, 7, 2, 3, 4, 1
         FROM generate_series(1, $2::int8) s, generate_series(0, $3::int8 - 1) k",
        &[&ws, &starts, &keys],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO predictions (view, key, window_start, window_size, label, confidence, probabilities, model_version)
         SELECT view, key, window_start, window_size, CASE WHEN packet_count > 60 THEN 'port_scan' ELSE 'Normal' END, 0.9,
                '{}'::jsonb, 'rf-bench' FROM window_features",
        &[],
    )
    .await
    .unwrap();
    c.execute(
        "INSERT INTO alerts (view, key, class, state, severity, detected_by, first_seen, last_seen, peak_confidence, summary)
         SELECT 'source', '10.1.0.' || (g % 58), (ARRAY['port_scan', 'syn_flood', 'dns_tunnel'])[1 + g % 3],
                CASE WHEN g % 58 = g THEN 'open' ELSE 'closed' END, (ARRAY['LOW', 'MEDIUM', 'HIGH', 'CRITICAL'])[1 + g % 4],
                'model', to_timestamp($1::float8 - g * 60), to_timestamp($1::float8 - g * 60 + 30), 0.9, 'bench alert ' || g
         FROM generate_series(1, 5000) g",
        &[&now],
    )
    .await
    .unwrap();
    // Steady state: visibility map set and statistics fresh, so autovacuum of the bulk load
    // does not run during the measurements.
    c.batch_execute("VACUUM (ANALYZE)").await.unwrap();
    eprintln!("{} windows + predictions + 5000 alerts inserted and analysed in {:?}", starts * keys, t.elapsed());

    let http = reqwest::Client::new();
    let views = [
        "/api/traffic?range=1h",
        "/api/protocols?range=1h",
        "/api/top-sources?range=1h",
        "/api/top-destinations?range=1h",
        "/api/top-ports?range=1h",
        "/api/alerts/summary",
        "/api/alerts?state=open",
        "/api/pipeline",
        "/api/last10",
        "/api/packets?range=1h",
        "/api/packets?range=1h&ip=10.1.0.7",
        "/api/packets?range=1h&dns=host42.",
        "/api/hosts/10.1.0.7?range=1h",
        "/api/traffic?range=24h",
        "/api/protocols?range=24h",
        "/api/top-sources?range=24h",
        "/api/top-destinations?range=24h",
        "/api/top-ports?range=24h",
        "/api/hosts/10.1.0.7?range=24h",
    ];
    println!("\n{:<42} {:>9} {:>9} {:>9}", "view", "p50 ms", "p95 ms", "max ms");
    for v in views {
        let mut lat = Vec::with_capacity(requests);
        for _ in 0..requests {
            let t = Instant::now();
            let r = http.get(format!("{}{v}", f.base)).bearer_auth("bench").send().await.unwrap();
            assert!(r.status().is_success(), "{v}: {}", r.status());
            let _ = r.bytes().await.unwrap();
            lat.push(t.elapsed());
        }
        lat.sort();
        let q = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!("{:<42} {:>9.1} {:>9.1} {:>9.1}", v, ms(q(0.5)), ms(q(0.95)), ms(*lat.last().unwrap()));
    }
    f.stop().await;
}
