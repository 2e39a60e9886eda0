//! `raw_packets`: the write path of the ingestor and of the ingest benchmark (ledger rows and
//! binary COPY of the new batches' packets in one transaction), day partitions, retention.

use anyhow::{Context, Result};
use bytes::{BufMut, BytesMut};
use futures::pin_mut;
use postgres_types::{to_sql_checked, IsNull, ToSql, Type};
use std::borrow::Cow;
use std::collections::HashSet;
use std::error::Error as StdError;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::Client;
use wire::{MacAddr, PacketRecord};

/// Columns written by COPY, in order (`inserted_at` is left to its default).
pub const COLUMNS: &str = "ts, interface, src_ip, dst_ip, protocol, length, src_port, dst_port, \
     tcp_flags, tcp_syn, tcp_ack, tcp_fin, tcp_rst, tcp_psh, seq, ack, icmp_type, icmp_code, arp_op, \
     arp_psrc, arp_pdst, arp_hwsrc, arp_hwdst, dns_query, dns_qname, dns_qtype, dns_response, \
     dns_answer_count, dns_answer_size, http_method, http_path, http_status_code, http_host, \
     agent_id, batch_id, idx, src_mac, dst_mac, vlan, app_proto, tls_sni";

const TYPES: [Type; 41] = [
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::INET,
    Type::INET,
    Type::TEXT,
    Type::INT4,
    Type::INT4,
    Type::INT4,
    Type::TEXT,
    Type::BOOL,
    Type::BOOL,
    Type::BOOL,
    Type::BOOL,
    Type::BOOL,
    Type::INT8,
    Type::INT8,
    Type::INT4,
    Type::INT4,
    Type::INT4,
    Type::INET,
    Type::INET,
    Type::MACADDR,
    Type::MACADDR,
    Type::BOOL,
    Type::TEXT,
    Type::INT4,
    Type::BOOL,
    Type::INT4,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::MACADDR,
    Type::MACADDR,
    Type::INT4,
    Type::TEXT,
    Type::TEXT,
];

/// Microseconds between 1970-01-01 and PostgreSQL's 2000-01-01 epoch.
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// Epoch seconds -> microseconds, or `None` when the value cannot be a capture time (outside
/// the range `PacketBatch::validate` accepts: corrupt, and it would create absurd partitions).
pub fn ts_micros(ts: f64) -> Option<i64> {
    wire::timestamp_in_range(ts).then(|| (ts * 1e6).round() as i64)
}

/// One batch to store.
pub struct BatchIn<'a> {
    pub batch_id: Cow<'a, str>,
    pub agent_id: &'a str,
    pub records: &'a [PacketRecord],
}

#[derive(Debug, Default, Clone)]
pub struct WriteOutcome {
    pub new_batches: usize,
    pub duplicate_batches: usize,
    pub rows: u64,
    /// Time of the write itself: the COPY (packet workers) or the upsert (rollup worker).
    pub copy_time: Duration,
    pub commit_time: Duration,
    /// `traffic_rollup` rows created or added to (rollup worker only).
    pub rollup_rows: u64,
}

/// Points of [`write_batches`] a caller can observe (the crash tests abort there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    /// The rows are copied, the transaction is not committed yet.
    Copied,
    /// The transaction is committed.
    Committed,
}

/// Stores `batches` exactly once: ledger insert (skipping batches already there), COPY of the
/// new ones, commit; `at` is called at each [`WriteStep`]. Callers ack the messages only after
/// this returns Ok.
///
/// Batch ids must be distinct within one call.
pub async fn write_batches(
    client: &mut Client,
    parts: &mut PartitionCache,
    batches: &[BatchIn<'_>],
    at: &(dyn Fn(WriteStep) + Sync),
) -> Result<WriteOutcome> {
    let mut out = WriteOutcome::default();
    if batches.is_empty() {
        return Ok(out);
    }
    let mut days: Vec<i32> = batches
        .iter()
        .flat_map(|b| b.records.iter())
        .filter_map(|r| ts_micros(r.timestamp))
        .map(day_of_micros)
        .collect();
    days.sort_unstable();
    days.dedup();
    parts.ensure(client, days).await?;

    // Sorted ids make concurrent ingestors take the ledger row locks in the same order, which
    // rules out deadlocks between two transactions holding overlapping redelivered batches.
    let mut order: Vec<&BatchIn> = batches.iter().collect();
    order.sort_by(|a, b| a.batch_id.cmp(&b.batch_id));
    let ids: Vec<&str> = order.iter().map(|b| b.batch_id.as_ref()).collect();
    let agents: Vec<&str> = order.iter().map(|b| b.agent_id).collect();
    let counts: Vec<i32> = order.iter().map(|b| b.records.len() as i32).collect();

    let tx = client.transaction().await?;
    let fresh: HashSet<String> = tx
        .query(
            "INSERT INTO ingested_batches (batch_id, agent_id, records) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::integer[]) \
             ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id",
            &[&ids, &agents, &counts],
        )
        .await
        .context("ledger insert")?
        .iter()
        .map(|r| r.get(0))
        .collect();
    out.new_batches = fresh.len();
    out.duplicate_batches = batches.len() - fresh.len();

    if !fresh.is_empty() {
        let start = Instant::now();
        let sink = tx.copy_in(&format!("COPY raw_packets ({COLUMNS}) FROM STDIN (FORMAT binary)")).await?;
        let writer = BinaryCopyInWriter::new(sink, &TYPES);
        pin_mut!(writer);
        for b in order.iter().filter(|b| fresh.contains(b.batch_id.as_ref())) {
            for (idx, r) in b.records.iter().enumerate() {
                write_row(writer.as_mut(), b, idx as i32, r).await.context("COPY raw_packets")?;
            }
        }
        out.rows = writer.finish().await.context("COPY raw_packets")?;
        out.copy_time = start.elapsed();
    }
    at(WriteStep::Copied);

    let start = Instant::now();
    tx.commit().await.context("commit")?;
    out.commit_time = start.elapsed();
    at(WriteStep::Committed);
    Ok(out)
}

async fn write_row(
    w: std::pin::Pin<&mut BinaryCopyInWriter>,
    b: &BatchIn<'_>,
    idx: i32,
    r: &PacketRecord,
) -> Result<(), tokio_postgres::Error> {
    // PacketBatch::validate ran on every batch, so the timestamp is in range here.
    let ts = PgTimestamp(ts_micros(r.timestamp).unwrap_or(0));
    let length = i32::try_from(r.length).unwrap_or(i32::MAX);
    let src_port = r.src_port.map(i32::from);
    let dst_port = r.dst_port.map(i32::from);
    let tcp_flags = r.tcp_flags.map(|f| flag_name(f.0));
    let seq = r.seq.map(i64::from);
    let ack = r.ack.map(i64::from);
    let icmp_type = r.icmp_type.map(i32::from);
    let icmp_code = r.icmp_code.map(i32::from);
    let arp_op = r.arp_op.map(i32::from);
    let arp_hwsrc = r.arp_hwsrc.map(PgMac);
    let arp_hwdst = r.arp_hwdst.map(PgMac);
    let dns_qname = r.dns_qname.as_deref().map(pg_text);
    let dns_qtype = r.dns_qtype.map(i32::from);
    let dns_answer_count = r.dns_answer_count.map(i32::from);
    let dns_answer_size = r.dns_answer_size.map(i64::from);
    let http_method = r.http_method.as_deref().map(pg_text);
    let http_path = r.http_path.as_deref().map(pg_text);
    let http_status = r.http_status_code.map(i32::from);
    let http_host = r.http_host.as_deref().map(pg_text);
    let interface = pg_text(&r.interface);
    let src_mac = r.src_mac.map(PgMac);
    let dst_mac = r.dst_mac.map(PgMac);
    let vlan = r.vlan.map(i32::from);
    let protocol = r.protocol.as_str();
    let app_proto = r.app_proto.map(|p| p.as_str());
    let tls_sni = r.tls_sni.as_deref().map(pg_text);
    let batch_id: &str = &b.batch_id;
    let values: [&(dyn ToSql + Sync); 41] = [
        &ts,
        &interface,
        &r.src_ip as &Option<IpAddr>,
        &r.dst_ip,
        &protocol,
        &length,
        &src_port,
        &dst_port,
        &tcp_flags,
        &r.tcp_syn,
        &r.tcp_ack,
        &r.tcp_fin,
        &r.tcp_rst,
        &r.tcp_psh,
        &seq,
        &ack,
        &icmp_type,
        &icmp_code,
        &arp_op,
        &r.arp_psrc,
        &r.arp_pdst,
        &arp_hwsrc,
        &arp_hwdst,
        &r.dns_query,
        &dns_qname,
        &dns_qtype,
        &r.dns_response,
        &dns_answer_count,
        &dns_answer_size,
        &http_method,
        &http_path,
        &http_status,
        &http_host,
        &b.agent_id,
        &batch_id,
        &idx,
        &src_mac,
        &dst_mac,
        &vlan,
        &app_proto,
        &tls_sni,
    ];
    w.write(&values).await
}

/// PostgreSQL text cannot hold NUL: a frame with one in, say, a DNS name would otherwise fail
/// its transaction for ever. NUL becomes U+FFFD; other strings are passed through untouched.
pub fn pg_text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// The original's comma-joined flag names, formatted once per flag byte instead of per row.
fn flag_name(bits: u8) -> &'static str {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    &NAMES.get_or_init(|| (0..=255u8).map(|b| wire::TcpFlags(b).to_string()).collect())[bits as usize]
}

/// `timestamptz` from microseconds since the Unix epoch, encoded without a detour through
/// `SystemTime`.
#[derive(Debug)]
struct PgTimestamp(i64);

impl ToSql for PgTimestamp {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        out.put_i64(self.0 - PG_EPOCH_OFFSET_MICROS);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::TIMESTAMPTZ
    }
    to_sql_checked!();
}

/// `macaddr` (6 bytes in binary form).
#[derive(Debug)]
struct PgMac(MacAddr);

impl ToSql for PgMac {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        out.put_slice(&self.0 .0);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::MACADDR
    }
    to_sql_checked!();
}

/// Day number (days since 1970-01-01 UTC) of a timestamp in microseconds since the epoch.
pub fn day_of_micros(micros: i64) -> i32 {
    micros.div_euclid(86_400_000_000) as i32
}

/// Remembers which day partitions exist so the hot path asks PostgreSQL only for new days.
#[derive(Default)]
pub struct PartitionCache {
    known: HashSet<i32>,
}

impl PartitionCache {
    /// Creates (outside any data transaction, since creating a partition locks the parent)
    /// the partitions for `days` not known to exist.
    pub async fn ensure(&mut self, client: &Client, days: impl IntoIterator<Item = i32>) -> Result<()> {
        let mut missing: Vec<i32> = days.into_iter().filter(|d| !self.known.contains(d)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        missing.sort_unstable();
        missing.dedup();
        for &day in &missing {
            client
                .execute("SELECT nta_ensure_raw_partition(DATE '1970-01-01' + $1::integer)", &[&day])
                .await
                .with_context(|| format!("creating the raw_packets partition of day {day}"))?;
        }
        self.known.extend(missing);
        Ok(())
    }

    /// Forgets everything, e.g. after a write failed because retention dropped a partition.
    pub fn clear(&mut self) {
        self.known.clear();
    }
}

/// Drops the day partitions of `raw_packets` entirely older than `keep_days` days, and the
/// rollup rows of those days; returns the partitions' names.
pub async fn drop_expired_partitions(client: &Client, keep_days: u32) -> Result<Vec<String>> {
    let keep = i32::try_from(keep_days).unwrap_or(i32::MAX);
    let rows = client.query("SELECT nta_drop_old_raw_partitions($1)", &[&keep]).await?;
    // The rollup rows of the same days go too (the cutoff is the function's: midnight UTC,
    // keep_days ago), so no figure outlives the packets it summarises.
    client
        .execute(
            "DELETE FROM traffic_rollup WHERE bucket < \
             ((((now() AT TIME ZONE 'UTC') - make_interval(days => $1))::date)::timestamp AT TIME ZONE 'UTC')",
            &[&keep],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Forgets ledger entries (packets' and rollup's) older than `keep`; returns how many went.
pub async fn prune_ledger(client: &Client, keep: std::time::Duration) -> Result<u64> {
    let secs = keep.as_secs_f64();
    Ok(client
        .execute("DELETE FROM ingested_batches WHERE ingested_at < now() - make_interval(secs => $1)", &[&secs])
        .await?
        + client
            .execute("DELETE FROM rolled_up_batches WHERE rolled_at < now() - make_interval(secs => $1)", &[&secs])
            .await?)
}

/// Creates today's and tomorrow's partitions ahead of time so the first batch after midnight
/// does not pay for (and lock the parent for) a CREATE TABLE.
pub async fn precreate_partitions(client: &Client) -> Result<()> {
    client
        .batch_execute(
            "SELECT nta_ensure_raw_partition((now() AT TIME ZONE 'UTC')::date);
             SELECT nta_ensure_raw_partition((now() AT TIME ZONE 'UTC')::date + 1);",
        )
        .await?;
    Ok(())
}

/// What one agent boot (a replay) stored: rows, batches, time span, and the largest protocols
/// and sources. The batch ids (`<agent>.<boot>.<seq>`) identify the boot.
#[derive(Debug, Clone, Default)]
pub struct BootSummary {
    pub rows: i64,
    pub batches: i64,
    /// First and last packet time, as PostgreSQL prints a `timestamptz`.
    pub span: Option<(String, String)>,
    /// (protocol, packets, bytes), most packets first.
    pub protocols: Vec<(String, i64, i64)>,
    /// (source address, packets), the five largest.
    pub top_sources: Vec<(String, i64)>,
}

pub async fn boot_summary(client: &Client, agent_id: &str, boot_id: &str) -> Result<BootSummary> {
    let prefix = format!("{agent_id}.{boot_id}.");
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT batch_id), min(ts)::text, max(ts)::text FROM raw_packets \
             WHERE starts_with(batch_id, $1)",
            &[&prefix],
        )
        .await?;
    let span = match (row.get::<_, Option<String>>(2), row.get::<_, Option<String>>(3)) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    };
    let protocols = client
        .query(
            "SELECT protocol, count(*), sum(length)::bigint FROM raw_packets WHERE starts_with(batch_id, $1) \
             GROUP BY 1 ORDER BY 2 DESC",
            &[&prefix],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let top_sources = client
        .query(
            "SELECT coalesce(host(src_ip), host(arp_psrc), '-'), count(*) FROM raw_packets \
             WHERE starts_with(batch_id, $1) GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
            &[&prefix],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(BootSummary { rows: row.get(0), batches: row.get(1), span, protocols, top_sources })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_text() {
        assert_eq!(ts_micros(1.5), Some(1_500_000));
        assert_eq!(ts_micros(f64::NAN), None);
        assert_eq!(ts_micros(1e15), None);
        assert_eq!(pg_text("a\0b"), "a\u{FFFD}b");
        assert_eq!(flag_name(0x12), "SYN,ACK");
        assert_eq!(flag_name(0), "");
        assert_eq!(COLUMNS.split(',').count(), TYPES.len());
        assert_eq!(day_of_micros(0), 0);
        assert_eq!(day_of_micros(-1), -1);
        assert_eq!(day_of_micros(86_400_000_000), 1);
    }
}
