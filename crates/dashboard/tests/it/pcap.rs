//! `GET /api/pcap`: the frames kept on `NTA_FRAMES` as a pcap attachment, filtered by range,
//! host, port, BPF and alert; every bad input and every limit a 400 with a message.

use crate::common::*;
use reqwest::header::{AUTHORIZATION, CONTENT_DISPOSITION, CONTENT_TYPE};
use reqwest::StatusCode;

const TOKEN: &str = "test-token-0123456789";

/// An Ethernet + IPv4 + TCP (SYN) frame from `src:sport` to `dst:dport`.
pub fn tcp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
    f.extend_from_slice(&[0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x20, 0, 0, 0, 0, 0]);
    f
}

/// Stores `frames` (capture time in epoch ns, bytes) on `NTA_FRAMES` as agent `agent` does.
pub async fn keep_frames(nats_url: &str, agent: &str, seq: u64, frames: &[(i64, Vec<u8>)]) {
    let client = async_nats::connect(nats_url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    bus::streams::ensure_frames_stream(&js, &bus::FrameLimits::default()).await.unwrap();
    let mut b = wire::FrameBatch::new(agent, "0123456789abcdef", seq, 1);
    for (ts, data) in frames {
        b.frames.push(wire::Frame { ts_ns: *ts, wire_len: data.len() as u32, data: data.clone() });
    }
    let (min, max) = b.ts_span().unwrap();
    let mut h = async_nats::HeaderMap::new();
    h.insert(bus::FRAMES_TS_MIN_HEADER, min.to_string().as_str());
    h.insert(bus::FRAMES_TS_MAX_HEADER, max.to_string().as_str());
    h.insert(bus::FRAMES_LINKTYPE_HEADER, "1");
    js.publish_with_headers(bus::frames_subject(agent), h, b.encode().into()).await.unwrap().await.unwrap();
}

/// (seconds, nanoseconds, bytes) of each frame of a nanosecond pcap, checking its header.
fn read_pcap(body: &[u8]) -> Vec<(u32, u32, Vec<u8>)> {
    assert_eq!(&body[..4], &0xa1b2_3c4du32.to_le_bytes(), "nanosecond pcap magic");
    let mut out = Vec::new();
    let mut i = 24;
    while i < body.len() {
        let u = |o: usize| u32::from_le_bytes(body[i + o..i + o + 4].try_into().unwrap());
        let caplen = u(8) as usize;
        out.push((u(0), u(4), body[i + 16..i + 16 + caplen].to_vec()));
        i += 16 + caplen;
    }
    out
}

async fn count(f: &Fixture, q: String) -> usize {
    let (st, _, body) = fetch(f, &q).await;
    assert_eq!(st, StatusCode::OK, "{q}: {}", String::from_utf8_lossy(&body));
    read_pcap(&body).len()
}

async fn fetch(f: &Fixture, query: &str) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let r = reqwest::Client::new()
        .get(format!("{}/api/pcap?{query}", f.base))
        .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap();
    (r.status(), r.headers().clone(), r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcap_downloads_with_filters_and_clear_400s() {
    let f = Fixture::start_cfg(None, Some(TOKEN), true, |c| {
        c.pcap_max_range_s = 7200;
        c.pcap_max_mb = 0.003;
    })
    .await;
    // Nothing kept yet: a 400 that says so.
    let (st, _, body) = fetch(&f, &format!("from={}&to={}", f.now - 60.0, f.now)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("no frames are kept"), "{}", String::from_utf8_lossy(&body));

    // The alert fixture: 10.0.0.1 scanning 10.0.0.2 over the 50 s before `ws`.
    let ws = ((f.now / 5.0).floor() * 5.0) as i64 * 1_000_000_000;
    let frames: Vec<(i64, Vec<u8>)> = (0..20)
        .map(|i| {
            let ts = ws - 45_000_000_000 + i * 2_000_000_001;
            let src = if i % 4 == 3 { [10, 0, 0, 3] } else { [10, 0, 0, 1] };
            (ts, tcp_frame(src, [10, 0, 0, 2], 40000 + i as u16, if i % 2 == 0 { 80 } else { 443 }))
        })
        .collect();
    keep_frames(&f.nats.url, "sensor1", 1, &frames).await;
    let secs = |ns: i64| format!("{}.{:09}", ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    let range = format!("from={}&to={}", secs(ws - 60_000_000_000), secs(ws));

    let (st, headers, body) = fetch(&f, &range).await;
    assert_eq!(st, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers[CONTENT_TYPE], "application/vnd.tcpdump.pcap");
    let cd = headers[CONTENT_DISPOSITION].to_str().unwrap();
    assert!(cd.starts_with("attachment; filename=\"nta-") && cd.ends_with(".pcap\""), "{cd}");
    let got = read_pcap(&body);
    assert_eq!(got.len(), 20);
    for (g, (ts, data)) in got.iter().zip(&frames) {
        assert_eq!((g.0 as i64 * 1_000_000_000 + g.1 as i64, &g.2), (*ts, data), "frame and nanosecond time as kept");
    }
    // Host, port, BPF, alert.
    assert_eq!(count(&f, format!("{range}&host=10.0.0.3")).await, 5);
    assert_eq!(count(&f, format!("{range}&port=443")).await, 10);
    assert_eq!(count(&f, format!("{range}&host=10.0.0.1&port=80")).await, 10);
    assert_eq!(count(&f, format!("{range}&bpf=src%20host%2010.0.0.3%20and%20dst%20port%20443")).await, 5);
    // The alert: 10.0.0.1 from 50 s before ws to ws.
    assert_eq!(count(&f, format!("alert={}", f.alert_id)).await, 15);
    // Inside what is kept, nothing matching: an empty file.
    assert_eq!(count(&f, format!("{range}&host=192.0.2.1")).await, 0);

    for (query, message) in [
        (format!("from={}&to={}", f.now, f.now - 10.0), "is after"),
        ("from=yesterday&to=1".to_string(), "neither RFC 3339"),
        (format!("{range}&bpf=tcp%20and%20and"), "bad BPF filter"),
        (format!("{range}&host=10.0.0.999"), "not an IP address"),
        (format!("{range}&port=70000"), "not a port"),
        ("alert=987654".to_string(), "no alert with id 987654"),
        ("alert=x".to_string(), "not an alert id"),
        ("from=2000-01-01T00:00:00Z&to=2000-01-01T01:00:00Z".to_string(), "no frames kept for"),
        (format!("from={}&to={}", f.now - 86400.0, f.now), "at most 7200 s"),
        (format!("{range}&colour=red"), "unknown parameter"),
        ("to=5".to_string(), "a time range is needed"),
    ] {
        let (st, _, body) = fetch(&f, &query).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(st, StatusCode::BAD_REQUEST, "{query}: {text}");
        assert!(text.contains(message), "{query}: {text}");
    }
    // Over the size limit (3 KB here; 40 frames of 54 bytes, counted with their record headers).
    let many: Vec<(i64, Vec<u8>)> =
        (0..40).map(|i| (ws - 30_000_000_000 + i, tcp_frame([10, 0, 0, 9], [10, 0, 0, 2], 1, 2))).collect();
    keep_frames(&f.nats.url, "sensor1", 2, &many).await;
    let (st, _, body) = fetch(&f, &format!("{range}&host=10.0.0.9")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("would exceed"), "{}", String::from_utf8_lossy(&body));
    f.stop().await;
}
