//! `nta bench ingest`: write throughput of the service's write path (ledger + binary COPY +
//! commit, several batches per transaction) into a throw-away database, next to PostgreSQL's
//! own text path (`COPY ... FROM STDIN (FORMAT csv)`) for the same rows into an identical
//! table, so the figure comes with a machine-independent ratio.

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::future::try_join_all;
use futures::SinkExt;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use wire::{MacAddr, PacketRecord, Protocol};

use store::conn::{connect_cfg, quote_ident};
use store::migrate;
use store::packets::{day_of_micros, pg_text, ts_micros, write_batches, BatchIn, PartitionCache, COLUMNS};

pub const DEFAULT_ROWS: usize = 2_000_000;
const BATCH_RECORDS: usize = 500;
const BATCHES_PER_TXN: usize = 16;
const ROLLUP_BATCHES_PER_TXN: usize = 256;
/// Distinct synthetic batches, reused under fresh batch ids: generating 2 M records up front
/// would cost ~1 GB of memory and measure nothing of interest.
const TEMPLATES: usize = 64;
/// Connections writing concurrently, like the service's default `writers`.
const WRITERS: usize = 2;

/// Runs the benchmark in a fresh database on the server of `database_url` (dropped at the
/// end) and returns a human-readable report.
pub async fn run_ingest_bench(database_url: &str, rows: usize) -> Result<String> {
    let base = store::DbConfig::parse(database_url)?;
    let mut admin_cfg = base.clone();
    admin_cfg.pg.dbname("postgres");
    let admin = connect_cfg(&admin_cfg).await.context("connecting to the postgres database")?;
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let name = format!("nta_bench_{}_{}", std::process::id(), nanos % 1_000_000_000);
    admin.batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name))).await?;
    let mut cfg = base.clone();
    cfg.pg.dbname(&name);
    let result = bench_in(&cfg, rows).await;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&name))).await?;
    result
}

async fn bench_in(cfg: &store::DbConfig, rows: usize) -> Result<String> {
    let mut client = connect_cfg(cfg).await?;
    migrate(&mut client).await?;
    let templates: Vec<Vec<PacketRecord>> = (0..TEMPLATES).map(|t| synth_batch(t as u64, BATCH_RECORDS)).collect();
    let nbatches = rows.div_ceil(BATCH_RECORDS);
    let boot = format!("{:x}", SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis());
    let job = Job { templates: &templates, rows, nbatches, boot: &boot };

    let start = Instant::now();
    let stored: u64 = try_join_all((0..WRITERS).map(|w| service_writer(cfg, &job, w))).await?.into_iter().sum();
    let ours = start.elapsed().as_secs_f64();
    anyhow::ensure!(stored as usize == rows, "stored {stored} rows, expected {rows}");

    let days: Vec<i32> = templates.iter().flatten().filter_map(|r| ts_micros(r.timestamp)).map(day_of_micros).collect();
    let (dmin, dmax) = (*days.iter().min().unwrap(), *days.iter().max().unwrap());
    create_reference_table(&client, dmin, dmax).await?;
    let start = Instant::now();
    try_join_all((0..WRITERS).map(|w| csv_writer(cfg, &job, w))).await?;
    let reference = start.elapsed().as_secs_f64();
    let copied: i64 = client.query_one("SELECT count(*) FROM raw_packets_ref", &[]).await?.get(0);
    anyhow::ensure!(copied as usize == rows, "reference copied {copied} rows, expected {rows}");

    // The rollup worker reads the same stream beside the writers; its rate on the same batches
    // (one connection, its default transaction size) says whether it keeps up.
    let start = Instant::now();
    let rolled = rollup_writer(cfg, &job).await?;
    let rollup_secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(rolled as usize == rows, "rolled up {rolled} rows, expected {rows}");
    let rollup_rate = rows as f64 / rollup_secs;

    let ours_rate = rows as f64 / ours;
    let ref_rate = rows as f64 / reference;
    Ok(format!(
        "ingest bench: {rows} rows, {nbatches} batches of {BATCH_RECORDS}, {BATCHES_PER_TXN} batches/txn, \
         {WRITERS} connections (as the service's default writers)\n\
         service path (ledger + binary COPY): {ours:.2} s, {ours_rate:.0} rows/s\n\
         reference (COPY FORMAT csv, no ledger): {reference:.2} s, {ref_rate:.0} rows/s\n\
         ratio service/reference: {:.2}\n\
         rollup worker (traffic_rollup, {ROLLUP_BATCHES_PER_TXN} batches/txn, 1 connection): {rollup_secs:.2} s, {rollup_rate:.0} rows/s\n\
         goal 400000 rows/s: {}",
        ours_rate / ref_rate,
        if ours_rate >= 400_000.0 { "met" } else { "NOT met" }
    ))
}

struct Job<'a> {
    templates: &'a [Vec<PacketRecord>],
    rows: usize,
    nbatches: usize,
    boot: &'a str,
}

impl Job<'_> {
    fn records(&self, i: usize) -> &[PacketRecord] {
        &self.templates[i % TEMPLATES][..BATCH_RECORDS.min(self.rows - i * BATCH_RECORDS)]
    }
    /// Transactions (as ranges of batch numbers) handled by writer `w`: round robin.
    fn chunks(&self, w: usize) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        (0..self.nbatches)
            .step_by(BATCHES_PER_TXN)
            .skip(w)
            .step_by(WRITERS)
            .map(|s| s..self.nbatches.min(s + BATCHES_PER_TXN))
    }
}

async fn service_writer(cfg: &store::DbConfig, job: &Job<'_>, w: usize) -> Result<u64> {
    let mut client = connect_cfg(cfg).await?;
    let mut parts = PartitionCache::default();
    let mut stored = 0;
    for chunk in job.chunks(w) {
        let batches: Vec<BatchIn> = chunk
            .map(|i| BatchIn {
                batch_id: Cow::Owned(wire::batch_id("bench", job.boot, i as u64)),
                agent_id: "bench",
                records: job.records(i),
            })
            .collect();
        stored += write_batches(&mut client, &mut parts, &batches, &|_| {}).await?.rows;
    }
    Ok(stored)
}

async fn rollup_writer(cfg: &store::DbConfig, job: &Job<'_>) -> Result<u64> {
    let mut client = connect_cfg(cfg).await?;
    let mut counted = 0;
    for start in (0..job.nbatches).step_by(ROLLUP_BATCHES_PER_TXN) {
        let batches: Vec<BatchIn> = (start..job.nbatches.min(start + ROLLUP_BATCHES_PER_TXN))
            .map(|i| BatchIn {
                batch_id: Cow::Owned(wire::batch_id("bench", job.boot, i as u64)),
                agent_id: "bench",
                records: job.records(i),
            })
            .collect();
        counted += store::rollup::write_rollup(&mut client, &batches).await?.rows;
    }
    Ok(counted)
}

/// The reference: the same rows as CSV text, same transaction size, into an identical table.
async fn csv_writer(cfg: &store::DbConfig, job: &Job<'_>, w: usize) -> Result<()> {
    let mut client = connect_cfg(cfg).await?;
    let mut buf = String::with_capacity(1 << 17);
    for chunk in job.chunks(w) {
        let tx = client.transaction().await?;
        let sink = tx.copy_in(&format!("COPY raw_packets_ref ({COLUMNS}) FROM STDIN (FORMAT csv)")).await?;
        futures::pin_mut!(sink);
        for i in chunk {
            let id = wire::batch_id("bench", job.boot, i as u64);
            for (idx, r) in job.records(i).iter().enumerate() {
                csv_row(&mut buf, r, "bench", &id, idx);
                if buf.len() >= 1 << 16 {
                    sink.send(Bytes::from(std::mem::take(&mut buf))).await?;
                    buf.reserve(1 << 17);
                }
            }
        }
        if !buf.is_empty() {
            sink.send(Bytes::from(std::mem::take(&mut buf))).await?;
        }
        sink.finish().await?;
        tx.commit().await?;
    }
    Ok(())
}

/// xorshift64*: deterministic, dependency-free and fast enough to not matter.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A plausible capture mix: mostly TCP (some HTTP), UDP with DNS, a little ICMP and ARP, over
/// a few hundred hosts. Batch `seed` follows batch `seed - 1` in time (1.35 s each), as an
/// agent's batches do, so the rollup sees the same minutes over and over like a live link.
pub fn synth_batch(seed: u64, n: usize) -> Vec<PacketRecord> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let iface: Arc<str> = Arc::from("eth0");
    let t0 = 1_767_225_600.0 + seed as f64 * 1.35; // 2026-01-01
    let host = |rng: &mut Rng| -> IpAddr {
        if rng.below(20) == 0 {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, rng.below(300) as u16 + 1))
        } else {
            IpAddr::V4(Ipv4Addr::new(10, 0, rng.below(4) as u8, rng.below(250) as u8 + 1))
        }
    };
    let mac = |rng: &mut Rng| MacAddr([0x02, 0, 0, 0, rng.below(4) as u8, rng.below(250) as u8]);
    (0..n)
        .map(|i| {
            let mut r = PacketRecord::new(t0 + i as f64 * 0.002_7 + rng.below(1000) as f64 * 1e-6, 60);
            r.interface = iface.clone();
            r.src_mac = Some(mac(&mut rng));
            r.dst_mac = Some(mac(&mut rng));
            let kind = rng.below(100);
            if kind < 3 {
                r.protocol = Protocol::Arp;
                r.length = 42;
                r.arp_op = Some(1 + rng.below(2) as u16);
                r.arp_psrc = Some(host(&mut rng));
                r.arp_pdst = Some(host(&mut rng));
                r.arp_hwsrc = r.src_mac;
                r.arp_hwdst = Some(MacAddr([0; 6]));
                return r;
            }
            r.src_ip = Some(host(&mut rng));
            r.dst_ip = Some(host(&mut rng));
            if kind < 73 {
                r.protocol = Protocol::Tcp;
                r.length = 54 + rng.below(1400) as u32;
                r.src_port = Some(1024 + rng.below(60000) as u16);
                r.dst_port = Some([80, 443, 22, 8080, 3306][rng.below(5) as usize]);
                r.set_tcp_flags([0x02, 0x12, 0x10, 0x18, 0x11, 0x04][rng.below(6) as usize]);
                r.seq = Some(rng.next() as u32);
                r.ack = Some(rng.next() as u32);
                if kind < 8 {
                    r.app_proto = Some(wire::AppProto::Http);
                    r.http_method = Some("GET".into());
                    r.http_path = Some(format!("/api/v1/items/{}", rng.below(10000)));
                    r.http_host = Some("intranet.example".into());
                } else if kind < 38 {
                    r.app_proto = Some(wire::AppProto::Tls);
                    if kind < 10 {
                        r.tls_sni = Some(format!("svc{}.cloud.example", rng.below(200)));
                    }
                }
            } else if kind < 95 {
                r.protocol = Protocol::Udp;
                r.length = 60 + rng.below(500) as u32;
                r.src_port = Some(1024 + rng.below(60000) as u16);
                r.dst_port = Some(53);
                r.app_proto = Some(wire::AppProto::Dns);
                r.dns_query = Some(true);
                r.dns_response = Some(false);
                r.dns_qname = Some(format!("host{}.corp.example", rng.below(500)));
                r.dns_qtype = Some(1);
                r.dns_answer_count = Some(0);
                r.dns_answer_size = Some(0);
            } else {
                r.protocol = Protocol::Icmp;
                r.length = 98;
                r.icmp_type = Some(8);
                r.icmp_code = Some(0);
            }
            r
        })
        .collect()
}

/// One CSV line in COPY's conventions: unquoted empty = NULL, text always quoted.
fn csv_row(out: &mut String, r: &PacketRecord, agent: &str, batch_id: &str, idx: usize) {
    fn q(out: &mut String, s: &str) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push_str("\",");
    }
    fn opt<T: std::fmt::Display>(out: &mut String, v: Option<T>) {
        if let Some(v) = v {
            let _ = write!(out, "{v}");
        }
        out.push(',');
    }
    fn opt_text(out: &mut String, v: Option<&str>) {
        match v {
            Some(s) => q(out, &pg_text(s)),
            None => out.push(','),
        }
    }
    let micros = ts_micros(r.timestamp).unwrap_or(0);
    let _ = write!(out, "{},", fmt_ts(micros));
    q(out, &r.interface);
    opt(out, r.src_ip);
    opt(out, r.dst_ip);
    q(out, r.protocol.as_str());
    let _ = write!(out, "{},", r.length);
    opt(out, r.src_port);
    opt(out, r.dst_port);
    opt_text(out, r.tcp_flags.map(|f| f.to_string()).as_deref());
    for b in [r.tcp_syn, r.tcp_ack, r.tcp_fin, r.tcp_rst, r.tcp_psh] {
        opt(out, b);
    }
    opt(out, r.seq);
    opt(out, r.ack);
    opt(out, r.icmp_type);
    opt(out, r.icmp_code);
    opt(out, r.arp_op);
    opt(out, r.arp_psrc);
    opt(out, r.arp_pdst);
    opt(out, r.arp_hwsrc);
    opt(out, r.arp_hwdst);
    opt(out, r.dns_query);
    opt_text(out, r.dns_qname.as_deref());
    opt(out, r.dns_qtype);
    opt(out, r.dns_response);
    opt(out, r.dns_answer_count);
    opt(out, r.dns_answer_size);
    opt_text(out, r.http_method.as_deref());
    opt_text(out, r.http_path.as_deref());
    opt(out, r.http_status_code);
    opt_text(out, r.http_host.as_deref());
    q(out, agent);
    q(out, batch_id);
    let _ = write!(out, "{idx},");
    opt(out, r.src_mac);
    opt(out, r.dst_mac);
    opt(out, r.vlan);
    opt_text(out, r.app_proto.map(|p| p.as_str()));
    opt_text(out, r.tls_sni.as_deref());
    out.pop(); // trailing comma
    out.push('\n');
}

/// `YYYY-MM-DD HH:MM:SS.ffffff+00` from Unix microseconds.
fn fmt_ts(micros: i64) -> String {
    let (y, m, d, hh, mm, ss) = wire::time::civil(micros.div_euclid(1_000_000));
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}.{:06}+00", micros.rem_euclid(1_000_000))
}

/// `raw_packets_ref`: an empty copy of `raw_packets` (indexes included) with day partitions
/// `dmin..=dmax` (days since the epoch), the target of PostgreSQL's own COPY for reference.
pub(crate) async fn create_reference_table(client: &tokio_postgres::Client, dmin: i32, dmax: i32) -> Result<()> {
    client
        .batch_execute(&format!(
            "CREATE TABLE raw_packets_ref (LIKE raw_packets INCLUDING DEFAULTS INCLUDING INDEXES) PARTITION BY RANGE (ts);
             DO $$ BEGIN FOR i IN {dmin}..{dmax} LOOP
               EXECUTE format('CREATE TABLE raw_packets_ref_%s PARTITION OF raw_packets_ref FOR VALUES FROM (%L) TO (%L)',
                 i, (DATE '1970-01-01' + i)::text || ' 00:00:00+00', (DATE '1970-01-01' + i + 1)::text || ' 00:00:00+00');
             END LOOP; END $$;"
        ))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamp_text() {
        assert_eq!(super::fmt_ts(0), "1970-01-01 00:00:00.000000+00");
        assert_eq!(super::fmt_ts(1_767_225_600_000_001), "2026-01-01 00:00:00.000001+00");
        assert_eq!(super::fmt_ts(951_782_400_500_000), "2000-02-29 00:00:00.500000+00");
    }
}
