//! What a replay stored, printed at the end of `nta run --target all --read FILE`.

use anyhow::Result;
use std::fmt::Write;

/// Summarises the rows stored from one agent boot (a replay), which the batch ids identify.
pub async fn landed(database_url: &str, agent: &agent::AgentSummary) -> Result<String> {
    let client = store::connect_creating(database_url).await?;
    let mut out = String::new();
    let prefix = format!("{}.{}.", agent.agent_id, agent.boot_id);
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT batch_id), min(ts)::text, max(ts)::text FROM raw_packets WHERE starts_with(batch_id, $1)",
            &[&prefix],
        )
        .await?;
    let (rows, batches): (i64, i64) = (row.get(0), row.get(1));
    writeln!(
        out,
        "raw_packets from this replay: {rows} rows from {batches} batches, {} .. {}",
        row.get::<_, Option<String>>(2).unwrap_or_default(),
        row.get::<_, Option<String>>(3).unwrap_or_default()
    )?;
    writeln!(out, "by protocol:")?;
    for r in client
        .query("SELECT protocol, count(*), sum(length)::bigint FROM raw_packets WHERE starts_with(batch_id, $1) GROUP BY 1 ORDER BY 2 DESC", &[&prefix])
        .await?
    {
        writeln!(out, "  {:<7} {:>9} packets {:>12} bytes", r.get::<_, String>(0), r.get::<_, i64>(1), r.get::<_, i64>(2))?;
    }
    writeln!(out, "top sources:")?;
    for r in client
        .query(
            "SELECT coalesce(host(src_ip), host(arp_psrc), '-'), count(*) FROM raw_packets WHERE starts_with(batch_id, $1) GROUP BY 1 ORDER BY 2 DESC LIMIT 5",
            &[&prefix],
        )
        .await?
    {
        writeln!(out, "  {:<40} {:>9} packets", r.get::<_, String>(0), r.get::<_, i64>(1))?;
    }
    Ok(out)
}

/// Open and recent alerts, most severe first (the predictor's table).
pub async fn alerts(database_url: &str) -> Result<String> {
    let client = store::connect_creating(database_url).await?;
    let mut out = String::from("alerts:\n");
    let rows = client
        .query(
            "SELECT severity, class, detected_by, summary, window_count, round(peak_confidence::numeric, 2)::text
             FROM alerts ORDER BY CASE severity WHEN 'CRITICAL' THEN 0 WHEN 'HIGH' THEN 1 WHEN 'MEDIUM' THEN 2 ELSE 3 END,
                      last_seen DESC LIMIT 20",
            &[],
        )
        .await;
    match rows {
        Ok(rows) if rows.is_empty() => out += "  none\n",
        Ok(rows) => {
            for r in rows {
                writeln!(
                    out,
                    "  {:<8} {:<11} {:<5} {} ({} windows, peak confidence {})",
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, String>(2),
                    r.get::<_, String>(3),
                    r.get::<_, i32>(4),
                    r.get::<_, String>(5)
                )?;
            }
        }
        Err(e) => writeln!(out, "  (no alerts table yet: {e})")?,
    }
    Ok(out)
}
