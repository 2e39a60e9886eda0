//! `nta analyze FILE`: the offline path (decode -> windows), no NATS and no PostgreSQL, through
//! the same windower code as the live service.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use wire::WindowRecord;

use crate::cli::{AnalyzeArgs, AnalyzeFormat};

pub fn analyze(args: AnalyzeArgs) -> Result<()> {
    let cfg = windower::WindowerConfig::default();
    let (windows, stats) = windower::analyze_file(&args.file, &cfg)?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::new(&mut out);
    match args.format {
        AnalyzeFormat::Jsonl => {
            for w in &windows {
                serde_json::to_writer(&mut out, &window_json(w, args.features))?;
                out.write_all(b"\n")?;
            }
        }
        AnalyzeFormat::Text => write_table(&mut out, &windows)?,
    }
    out.flush()?;
    eprintln!(
        "{} windows from {} records ({} late, {} without an address)",
        windows.len(),
        stats.accepted,
        stats.late,
        stats.skipped_no_address
    );
    Ok(())
}

/// One JSON line per window; `src_ip` names the key in either view (as the original's column).
pub fn window_json(w: &WindowRecord, with_features: bool) -> serde_json::Value {
    let mut o = serde_json::json!({
        "src_ip": w.key,
        "view": w.view.as_str(),
        "window_start": w.window_start,
        "window_size": w.window_size,
    });
    if with_features {
        o["features"] = serde_json::to_value(&w.features).unwrap_or_default();
    }
    o
}

fn feature(w: &WindowRecord, name: &str) -> f64 {
    w.features.get(name).copied().flatten().unwrap_or(0.0)
}

/// Per view and key: 5 s windows, first and last window, packets and bytes.
fn write_table(out: &mut impl Write, windows: &[WindowRecord]) -> Result<()> {
    #[derive(Default)]
    struct Row {
        windows: u64,
        first: i64,
        last: i64,
        packets: f64,
        bytes: f64,
    }
    let mut rows: BTreeMap<(&str, &str), Row> = BTreeMap::new();
    for w in windows.iter().filter(|w| w.window_size == 5) {
        let r = rows.entry((w.view.as_str(), w.key.as_str())).or_insert(Row { first: i64::MAX, ..Default::default() });
        r.windows += 1;
        r.first = r.first.min(w.window_start);
        r.last = r.last.max(w.window_start + 5);
        // Both views name their (sent or received) totals packet_count and byte_count.
        r.packets += feature(w, "packet_count");
        r.bytes += feature(w, "byte_count");
    }
    writeln!(out, "{:<12} {:<40} {:>8} {:>10} {:>12}  first .. last (UTC)", "view", "key", "windows", "packets", "bytes")?;
    for ((view, key), r) in rows {
        writeln!(
            out,
            "{view:<12} {key:<40} {:>8} {:>10} {:>12}  {} .. {}",
            r.windows,
            r.packets,
            r.bytes,
            fmt_time(r.first),
            fmt_time(r.last)
        )?;
    }
    Ok(())
}

fn fmt_time(epoch: i64) -> String {
    // Civil date from days since 1970 (Howard Hinnant's algorithm): avoids a date crate for one line.
    let (days, secs) = (epoch.div_euclid(86_400), epoch.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_time() {
        assert_eq!(super::fmt_time(0), "1970-01-01 00:00:00");
        assert_eq!(super::fmt_time(1_427_726_689), "2015-03-30 14:44:49");
    }
}
