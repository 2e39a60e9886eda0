//! What a replay stored, printed at the end of `nta run --target all --read FILE`.

use anyhow::Result;
use std::fmt::Write;

/// Summarises the rows stored from one agent boot (a replay).
pub async fn landed(database_url: &str, agent: &agent::AgentSummary) -> Result<String> {
    let client = store::connect_creating(database_url).await?;
    let s = store::packets::boot_summary(&client, &agent.agent_id, &agent.boot_id).await?;
    let (first, last) = s.span.unwrap_or_default();
    let mut out = String::new();
    writeln!(out, "raw_packets from this replay: {} rows from {} batches, {first} .. {last}", s.rows, s.batches)?;
    writeln!(out, "by protocol:")?;
    for (protocol, packets, bytes) in &s.protocols {
        writeln!(out, "  {protocol:<7} {packets:>9} packets {bytes:>12} bytes")?;
    }
    writeln!(out, "top sources:")?;
    for (source, packets) in &s.top_sources {
        writeln!(out, "  {source:<40} {packets:>9} packets")?;
    }
    Ok(out)
}

/// Open and recent alerts, most severe first.
pub async fn alerts(database_url: &str) -> Result<String> {
    let client = store::connect_creating(database_url).await?;
    let mut out = String::from("alerts:\n");
    match store::alerts::most_severe(&client, 20).await {
        Ok(rows) if rows.is_empty() => out += "  none\n",
        Ok(rows) => {
            for a in rows {
                writeln!(
                    out,
                    "  {:<8} {:<11} {:<5} {} ({} windows, peak confidence {:.2})",
                    a.severity, a.class, a.detected_by, a.summary, a.window_count, a.peak_confidence
                )?;
            }
        }
        Err(e) => writeln!(out, "  (no alerts table yet: {e:#})")?,
    }
    Ok(out)
}
