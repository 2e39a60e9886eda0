//! Per-minute and per-hour traffic counts in `traffic_rollup` (migration `0002_traffic_rollup.sql`), so the
//! dashboard's aggregates over hours or days read thousands of rows instead of millions of
//! packets. The rollup worker is a second durable consumer on `NTA_PACKETS` rather than a step
//! of the packet transaction: upserting a few thousand shared rows per 8 000 packets halved
//! ingest throughput (the two writers queued on the current minute's row locks), while one
//! worker folding a few hundred batches per transaction costs little. Its own ledger
//! (`rolled_up_batches`) makes every batch count exactly once; it may trail the packets by a
//! fetch (about a second).

use anyhow::{Context, Result};
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;
use tokio_postgres::{Client, Transaction};
use wire::PacketRecord;

use crate::packets::{ts_micros, BatchIn, WriteOutcome};

/// Adds the counts of the `batches` not yet rolled up, and records their ids, in one
/// transaction. Callers ack the messages only after this returns Ok.
pub async fn write_rollup(client: &mut Client, batches: &[BatchIn<'_>]) -> Result<WriteOutcome> {
    let mut out = WriteOutcome::default();
    if batches.is_empty() {
        return Ok(out);
    }
    let mut ids: Vec<&str> = batches.iter().map(|b| b.batch_id.as_ref()).collect();
    ids.sort_unstable();
    let tx = client.transaction().await?;
    let fresh: HashSet<String> = tx
        .query(
            "INSERT INTO rolled_up_batches (batch_id) SELECT * FROM unnest($1::text[]) \
             ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id",
            &[&ids],
        )
        .await
        .context("rollup ledger insert")?
        .iter()
        .map(|r| r.get(0))
        .collect();
    out.new_batches = fresh.len();
    out.duplicate_batches = batches.len() - fresh.len();
    let start = Instant::now();
    let mut rollup = Rollup::default();
    for b in batches.iter().filter(|b| fresh.contains(b.batch_id.as_ref())) {
        for r in b.records {
            rollup.add(r);
        }
        out.rows += b.records.len() as u64;
    }
    out.rollup_rows = rollup.apply(&tx).await.context("traffic_rollup upsert")?;
    out.copy_time = start.elapsed();
    let start = Instant::now();
    tx.commit().await.context("commit")?;
    out.commit_time = start.elapsed();
    Ok(out)
}

/// Bucket widths in seconds: minutes for ranges up to hours, hours for days.
pub const WIDTHS: [i16; 2] = [60, 3600];

/// One rollup row's identity. The derived order is the order rows are upserted in, the same
/// in every transaction, so two rollup workers adding to the same rows never deadlock.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    width: i16,
    dim: &'static str,
    bucket: i64,
    value: String,
}

/// Packet and byte counts of a set of records, by rollup row.
#[derive(Debug, Default)]
pub struct Rollup {
    rows: BTreeMap<Key, (i64, i64)>,
}

impl Rollup {
    pub fn add(&mut self, r: &PacketRecord) {
        let Some(micros) = ts_micros(r.timestamp) else { return };
        let secs = micros.div_euclid(1_000_000);
        let length = i64::from(i32::try_from(r.length).unwrap_or(i32::MAX));
        // Each value is formatted once and counted at every width.
        let values = [
            ("protocol", Some(r.protocol.as_str().to_string())),
            ("src", r.src_ip.map(|ip| ip.to_string())),
            ("dst", r.dst_ip.map(|ip| ip.to_string())),
            ("port", r.dst_port.filter(|&p| p > 0).map(|p| p.to_string())),
        ];
        for (dim, value) in values {
            let Some(value) = value else { continue };
            for width in WIDTHS {
                let bucket = secs.div_euclid(width as i64) * width as i64;
                let e = self.rows.entry(Key { width, dim, bucket, value: value.clone() }).or_default();
                e.0 += 1;
                e.1 += length;
            }
        }
    }

    /// Adds the counts to `traffic_rollup` inside `tx`; returns the rows touched.
    pub async fn apply(&self, tx: &Transaction<'_>) -> Result<u64, tokio_postgres::Error> {
        if self.rows.is_empty() {
            return Ok(0);
        }
        let n = self.rows.len();
        let (mut widths, mut dims, mut buckets, mut values, mut packets, mut bytes) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (k, &(p, b)) in &self.rows {
            widths.push(k.width);
            dims.push(k.dim);
            buckets.push(k.bucket as f64);
            values.push(k.value.as_str());
            packets.push(p);
            bytes.push(b);
        }
        tx.execute(
            "INSERT INTO traffic_rollup (width, dim, bucket, value, packets, bytes) \
             SELECT w, d, to_timestamp(b), v, p, n \
             FROM unnest($1::int2[], $2::text[], $3::float8[], $4::text[], $5::int8[], $6::int8[]) AS u(w, d, b, v, p, n) \
             ON CONFLICT (width, dim, bucket, value) DO UPDATE \
             SET packets = traffic_rollup.packets + excluded.packets, bytes = traffic_rollup.bytes + excluded.bytes",
            &[&widths, &dims, &buckets, &values, &packets, &bytes],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_dimensions() {
        let mut r = PacketRecord { timestamp: 3_725.5, length: 100, ..Default::default() };
        r.src_ip = Some("10.0.0.1".parse().unwrap());
        r.dst_port = Some(0);
        let mut roll = Rollup::default();
        roll.add(&r);
        r.timestamp = 3_599.0;
        roll.add(&r);
        let minutes: Vec<_> =
            roll.rows.iter().filter(|(k, _)| k.width == 60 && k.dim == "src").map(|(k, v)| (k.bucket, *v)).collect();
        assert_eq!(minutes, vec![(3540, (1, 100)), (3720, (1, 100))]);
        let hours: Vec<_> =
            roll.rows.iter().filter(|(k, _)| k.width == 3600 && k.dim == "src").map(|(k, v)| (k.bucket, *v)).collect();
        assert_eq!(hours, vec![(0, (1, 100)), (3600, (1, 100))]);
        // Port 0 and absent addresses make no rows; protocol always does.
        assert!(!roll.rows.keys().any(|k| k.dim == "port" || k.dim == "dst"));
        assert_eq!(roll.rows.keys().filter(|k| k.dim == "protocol").count(), 4);
    }
}
