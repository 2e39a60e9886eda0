//! Shared helpers: publishing batches to a private nats-server and reading back what the
//! ingestor stored in a throw-away database.
#![allow(dead_code)]

use anyhow::Result;
use async_nats::jetstream;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
pub use testkit::wait_until;
use testkit::{NatsServer, TestDb};
use tokio::task::JoinHandle;
use wire::{AppProto, MacAddr, PacketBatch, PacketRecord, Protocol, TcpFlags};

pub fn config(nats: &NatsServer, db: &TestDb) -> ingestor::IngestorConfig {
    ingestor::IngestorConfig {
        nats: bus::Nats::new(nats.url.clone()),
        database_url: db.url.clone(),
        fetch_wait_ms: 200,
        pending_refresh_ms: 500,
        ..Default::default()
    }
}

/// An in-process ingestor; `stop` shuts it down gracefully and returns its result.
pub struct Running {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<Result<()>>,
}

pub fn spawn(cfg: ingestor::IngestorConfig) -> Running {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(ingestor::run(cfg, async move {
        let _ = rx.await;
    }));
    Running { stop: Some(tx), task }
}

impl Running {
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("ingestor did not stop")
            .expect("ingestor task panicked")
            .expect("ingestor failed");
    }
}

pub async fn jetstream(nats: &NatsServer) -> jetstream::Context {
    let js = jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    bus::streams::ensure_packets_stream(&js, &Default::default()).await.unwrap();
    js
}

pub async fn publish_raw(js: &jetstream::Context, subject: &str, msg_id: &str, payload: Vec<u8>) {
    let mut h = async_nats::HeaderMap::new();
    h.insert("Nats-Msg-Id", msg_id);
    js.publish_with_headers(subject.to_string(), h, payload.into()).await.unwrap().await.unwrap();
}

pub async fn publish(js: &jetstream::Context, b: &PacketBatch) {
    publish_raw(js, &bus::packets_subject(&b.agent_id), &b.batch_id(), b.encode().unwrap()).await;
}

/// Creates the durable consumer the way the ingestor would, but with a short ack_wait so
/// tests of redelivery do not wait 30 s.
pub async fn precreate_consumer(js: &jetstream::Context, durable: &str, ack_wait: Duration) {
    let stream = js.get_stream(bus::PACKETS_STREAM).await.unwrap();
    stream.create_consumer(bus::streams::packets_consumer_config(durable, ack_wait, 1024)).await.unwrap();
}

pub use testkit::count;

/// Waits until both consumers of an ingestor (packets and rollup) have nothing pending nor
/// unacked.
pub async fn wait_ingested(js: &jetstream::Context, timeout: Duration) {
    wait_drained(js, "nta-ingestor", timeout).await;
    wait_drained(js, &ingestor::rollup_durable("nta-ingestor"), timeout).await;
}

/// Waits until the durable consumer has nothing pending nor unacked.
pub async fn wait_drained(js: &jetstream::Context, durable: &str, timeout: Duration) {
    let stream = js.get_stream(bus::PACKETS_STREAM).await.unwrap();
    wait_until("consumer drained", timeout, || {
        let stream = stream.clone();
        async move {
            match stream.consumer_info(durable).await {
                Ok(i) => i.num_pending == 0 && i.num_ack_pending == 0,
                Err(_) => false,
            }
        }
    })
    .await;
}

/// A batch exercising every column: TCP with HTTP, TLS with a server name, UDP/DNS over IPv6,
/// ICMP, ARP (no IPs), a bare record with every option None, NUL in names, VLAN and MACs.
pub fn varied_batch(agent: &str, seq: u64) -> PacketBatch {
    let mut b = PacketBatch::new(agent, "boot1", seq);
    let base = 1_767_225_600.0 + seq as f64 * 10.0;
    let iface: Arc<str> = Arc::from("eth0");

    let mut tcp = PacketRecord::new(base + 0.25, 1514);
    tcp.interface = iface.clone();
    tcp.protocol = Protocol::Tcp;
    tcp.src_ip = Some("192.168.1.10".parse().unwrap());
    tcp.dst_ip = Some("93.184.216.34".parse().unwrap());
    tcp.src_port = Some(51515);
    tcp.dst_port = Some(80);
    tcp.set_tcp_flags(0x18);
    tcp.seq = Some(u32::MAX);
    tcp.ack = Some(0);
    tcp.http_method = Some("POST".into());
    tcp.http_path = Some("/login?next=%2F&q=\"x\"".into());
    tcp.http_host = Some("example.com".into());
    tcp.app_proto = Some(AppProto::Http);
    tcp.src_mac = Some(MacAddr([0x00, 0x1a, 0x2b, 0x3c, 0x4d, 0x5e]));
    tcp.dst_mac = Some(MacAddr([0xff; 6]));
    tcp.vlan = Some(100);
    b.records.push(tcp);

    let mut resp = PacketRecord::new(base + 0.5, 400);
    resp.interface = iface.clone();
    resp.protocol = Protocol::Tcp;
    resp.src_ip = Some("93.184.216.34".parse().unwrap());
    resp.dst_ip = Some("192.168.1.10".parse().unwrap());
    resp.src_port = Some(80);
    resp.dst_port = Some(51515);
    resp.tcp_flags = Some(TcpFlags(0));
    resp.http_status_code = Some(401);
    resp.app_proto = Some(AppProto::Http);
    b.records.push(resp);

    let mut tls = PacketRecord::new(base + 0.75, 583);
    tls.interface = iface.clone();
    tls.protocol = Protocol::Tcp;
    tls.src_ip = Some("192.168.1.10".parse().unwrap());
    tls.dst_ip = Some("2.16.1.1".parse().unwrap());
    tls.src_port = Some(51516);
    tls.dst_port = Some(8443);
    tls.set_tcp_flags(0x18);
    tls.app_proto = Some(AppProto::Tls);
    tls.tls_sni = Some("<b>x</b>.example\\255\"'".into());
    b.records.push(tls);

    let mut dns = PacketRecord::new(base + 0.125, 120);
    dns.interface = Arc::from("wlan0 (replay.pcap)");
    dns.protocol = Protocol::Udp;
    dns.src_ip = Some("2001:db8::1".parse().unwrap());
    dns.dst_ip = Some("2001:4860:4860::8888".parse().unwrap());
    dns.src_port = Some(5353);
    dns.dst_port = Some(53);
    dns.dns_query = Some(false);
    dns.dns_response = Some(true);
    dns.dns_qname = Some("xn--caf-dma.example.".into());
    dns.dns_qtype = Some(16);
    dns.dns_answer_count = Some(3);
    dns.dns_answer_size = Some(u32::MAX);
    dns.app_proto = Some(AppProto::Dns);
    b.records.push(dns);

    let mut icmp = PacketRecord::new(base + 1.0, 98);
    icmp.interface = iface.clone();
    icmp.protocol = Protocol::Icmpv6;
    icmp.src_ip = Some("fe80::1".parse().unwrap());
    icmp.dst_ip = Some("ff02::1".parse().unwrap());
    icmp.icmp_type = Some(135);
    icmp.icmp_code = Some(0);
    b.records.push(icmp);

    let mut arp = PacketRecord::new(base + 2.0, 42);
    arp.interface = iface.clone();
    arp.protocol = Protocol::Arp;
    arp.arp_op = Some(2);
    arp.arp_psrc = Some("10.0.0.1".parse().unwrap());
    arp.arp_pdst = Some("10.0.0.2".parse().unwrap());
    arp.arp_hwsrc = Some(MacAddr([0xde, 0xad, 0xbe, 0xef, 0, 1]));
    arp.arp_hwdst = Some(MacAddr([0; 6]));
    arp.src_mac = arp.arp_hwsrc;
    b.records.push(arp);

    // Everything absent, and a fractional timestamp not exact in binary.
    let mut bare = PacketRecord::new(base + 3.123456, 60);
    bare.interface = Arc::from("");
    b.records.push(bare);

    let mut odd = PacketRecord::new(base + 4.0, 70);
    odd.interface = iface;
    odd.protocol = Protocol::Udp;
    odd.src_ip = Some(IpAddr::from([10, 0, 0, 3]));
    odd.dns_qname = Some("a\0b".into());
    odd.app_proto = Some(AppProto::Quic);
    odd.tls_sni = Some("n\0ul".into());
    b.records.push(odd);
    b
}

/// Small batch with `n` TCP records (for volume tests).
pub fn small_batch(agent: &str, seq: u64, n: usize) -> PacketBatch {
    let mut b = PacketBatch::new(agent, "boot1", seq);
    for i in 0..n {
        let mut r = PacketRecord::new(1_767_225_600.0 + seq as f64 + i as f64 * 0.001, 60 + i as u32);
        r.interface = Arc::from("eth0");
        r.protocol = Protocol::Tcp;
        r.src_ip = Some(IpAddr::from([10, 0, (seq % 200) as u8, i as u8]));
        r.dst_ip = Some(IpAddr::from([10, 1, 0, 1]));
        r.src_port = Some(40000 + i as u16);
        r.dst_port = Some(443);
        r.set_tcp_flags(0x10);
        b.records.push(r);
    }
    b
}

/// Reads back every stored row of `batch_id`, ordered by idx, as records.
pub async fn stored_records(client: &tokio_postgres::Client, batch_id: &str) -> Vec<(String, f64, PacketRecord)> {
    let rows = client
        .query(
            "SELECT agent_id, extract(epoch FROM ts)::float8, interface, host(src_ip), host(dst_ip), protocol,
                    length, src_port, dst_port, tcp_flags, tcp_syn, tcp_ack, tcp_fin, tcp_rst, tcp_psh,
                    seq, ack, icmp_type, icmp_code, arp_op, host(arp_psrc), host(arp_pdst),
                    arp_hwsrc::text, arp_hwdst::text, dns_query, dns_qname, dns_qtype, dns_response,
                    dns_answer_count, dns_answer_size, http_method, http_path, http_status_code, http_host,
                    src_mac::text, dst_mac::text, vlan, idx, app_proto, tls_sni
             FROM raw_packets WHERE batch_id = $1 ORDER BY idx",
            &[&batch_id],
        )
        .await
        .unwrap();
    let ip = |v: Option<String>| v.map(|s| s.parse::<IpAddr>().unwrap());
    let mac = |v: Option<String>| v.map(|s| s.parse::<MacAddr>().unwrap());
    let u16_ = |v: Option<i32>| v.map(|x| u16::try_from(x).unwrap());
    let u8_ = |v: Option<i32>| v.map(|x| u8::try_from(x).unwrap());
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            assert_eq!(row.get::<_, i32>(37), i as i32, "idx");
            let name = row.get::<_, String>(5);
            let protocol = Protocol::from_name(&name).unwrap_or_else(|| panic!("protocol {name}"));
            let r = PacketRecord {
                timestamp: 0.0,
                interface: Arc::from(row.get::<_, String>(2)),
                src_ip: ip(row.get(3)),
                dst_ip: ip(row.get(4)),
                protocol,
                length: row.get::<_, i32>(6) as u32,
                src_port: u16_(row.get(7)),
                dst_port: u16_(row.get(8)),
                tcp_flags: row.get::<_, Option<String>>(9).map(|s| TcpFlags::parse(&s).unwrap()),
                tcp_syn: row.get(10),
                tcp_ack: row.get(11),
                tcp_fin: row.get(12),
                tcp_rst: row.get(13),
                tcp_psh: row.get(14),
                seq: row.get::<_, Option<i64>>(15).map(|x| x as u32),
                ack: row.get::<_, Option<i64>>(16).map(|x| x as u32),
                icmp_type: u8_(row.get(17)),
                icmp_code: u8_(row.get(18)),
                arp_op: u16_(row.get(19)),
                arp_psrc: ip(row.get(20)),
                arp_pdst: ip(row.get(21)),
                arp_hwsrc: mac(row.get(22)),
                arp_hwdst: mac(row.get(23)),
                dns_query: row.get(24),
                dns_qname: row.get(25),
                dns_qtype: u16_(row.get(26)),
                dns_response: row.get(27),
                dns_answer_count: u16_(row.get(28)),
                dns_answer_size: row.get::<_, Option<i64>>(29).map(|x| x as u32),
                http_method: row.get(30),
                http_path: row.get(31),
                http_status_code: u16_(row.get(32)),
                http_host: row.get(33),
                src_mac: mac(row.get(34)),
                dst_mac: mac(row.get(35)),
                vlan: u16_(row.get(36)),
                app_proto: row.get::<_, Option<String>>(38).map(|p| AppProto::from_name(&p).unwrap()),
                tls_sni: row.get(39),
            };
            (row.get(0), row.get(1), r)
        })
        .collect()
}

/// The incrementally maintained `traffic_rollup` equals the rollup recomputed from the stored
/// packets, row for row (and is not empty), whatever redeliveries or crashes happened.
pub async fn assert_rollup_matches_packets(client: &tokio_postgres::Client) {
    let (diff, counted) = testkit::rollup_vs_packets(client).await.unwrap();
    assert_eq!(diff, 0, "traffic_rollup differs from raw_packets");
    let packets = count(client, "SELECT count(*) FROM raw_packets").await;
    assert_eq!(counted, packets);
    assert!(packets > 0);
}
