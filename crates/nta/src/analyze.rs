//! `nta analyze FILE`: the whole detection offline, in one process, no NATS or PostgreSQL:
//! decode (the agent's reader) -> windows (the windower library; composed by
//! `train::windows_from_file`) -> model and rule verdicts (the predictor library), the same
//! code paths as the services.

use anyhow::{Context, Result};
use predictor::decide::{AlertPolicy, Effect};
use predictor::model::{Model, NORMAL};
use predictor::rules::RuleThresholds;
use std::collections::BTreeMap;
use std::io::Write;
use train::detect::{judge, WindowVerdict};
use wire::WindowRecord;

use crate::cli::{AnalyzeArgs, AnalyzeFormat};

/// The class a window speaks for: its strongest alert, else the model's label.
fn label(v: &WindowVerdict) -> (&str, Option<f64>) {
    match v.alerts.iter().max_by(|a, b| a.2.total_cmp(&b.2)) {
        Some((c, _, p)) => (c, Some(*p)),
        None => match &v.model {
            Some(m) => (&m.label, Some(m.confidence)),
            None => (NORMAL, None),
        },
    }
}

pub fn analyze(args: AnalyzeArgs) -> Result<()> {
    let model = match Model::load_configured(args.model.as_deref()) {
        Ok(m) => Some(m),
        Err(e) if args.model.is_none() => {
            eprintln!("warning: no model ({e:#}); only the rule baselines will label windows");
            None
        }
        Err(e) => return Err(e),
    };
    let (windows, stats) = windows_with_progress(&args.file)?;
    let verdicts = judge(model.as_ref(), &windows, &RuleThresholds::default(), AlertPolicy::default());

    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::new(&mut out);
    match args.format {
        AnalyzeFormat::Jsonl => {
            for (w, v) in windows.iter().zip(&verdicts) {
                serde_json::to_writer(&mut out, &window_json(w, v, args.features))?;
                out.write_all(b"\n")?;
            }
        }
        AnalyzeFormat::Text => write_table(&mut out, &windows, &verdicts)?,
    }
    out.flush()?;
    eprintln!(
        "{} windows from {} records ({} late, {} without an address); model {}",
        windows.len(),
        stats.accepted,
        stats.late,
        stats.skipped_no_address,
        model.as_ref().map(|m| m.model_version.as_str()).unwrap_or("none")
    );
    Ok(())
}

/// Windows of a capture, with a progress bar on stderr (records read) for large files.
fn windows_with_progress(path: &std::path::Path) -> Result<(Vec<WindowRecord>, windower::WindowerStats)> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {human_pos} records ({per_sec}) {elapsed}")
            .expect("template"),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let out = train::windows_from_file(path, &windower::WindowerConfig::default(), |_| bar.inc(1));
    bar.finish_and_clear();
    out
}

/// One JSON line per window; `src_ip` names the key in either view (as the original's column).
pub fn window_json(w: &WindowRecord, v: &WindowVerdict, with_features: bool) -> serde_json::Value {
    let (label, confidence) = label(v);
    let by_model = v.model.as_ref().is_some_and(|m| m.label == label);
    let mut o = serde_json::json!({
        "src_ip": w.key,
        "view": w.view.as_str(),
        "window_start": w.window_start,
        "window_size": w.window_size,
        "label": label,
        "confidence": confidence,
        "detected_by": match (by_model && label != NORMAL, v.rules.is_empty()) {
            (true, true) => "model",
            (true, false) => "both",
            (false, false) => "rule",
            (false, true) => "none",
        },
        "rules": v.rules.iter().map(|h| h.rule).collect::<Vec<_>>(),
        "alerts": v.alerts.iter().map(|(c, e, p)| serde_json::json!({
            "class": c, "effect": match e { Effect::Opened => "opened", Effect::Extended => "extended" },
            "confidence": p})).collect::<Vec<_>>(),
    });
    if with_features {
        o["features"] = serde_json::to_value(&w.features).unwrap_or_default();
    }
    o
}

/// Per view, key and alerted class: windows, first and last seen, peak confidence, packets.
fn write_table(out: &mut impl Write, windows: &[WindowRecord], verdicts: &[WindowVerdict]) -> Result<()> {
    #[derive(Default)]
    struct Row {
        windows: u64,
        first: i64,
        last: i64,
        peak: f64,
        packets: f64,
    }
    let mut rows: BTreeMap<(&str, &str, &str), Row> = BTreeMap::new();
    let mut keys = std::collections::BTreeSet::new();
    for (w, v) in windows.iter().zip(verdicts) {
        keys.insert((w.view.as_str(), w.key.as_str()));
        for (class, _, p) in &v.alerts {
            let r = rows
                .entry((w.view.as_str(), w.key.as_str(), class.as_str()))
                .or_insert(Row { first: i64::MAX, ..Default::default() });
            r.windows += 1;
            r.first = r.first.min(w.window_start);
            r.last = r.last.max(w.window_start + w.window_size as i64);
            r.peak = r.peak.max(*p);
            if w.window_size == 5 {
                // 5 s windows do not overlap: their packets add up to the total exactly.
                r.packets += w.features.get("packet_count").copied().flatten().unwrap_or(0.0);
            }
        }
    }
    if rows.is_empty() {
        writeln!(out, "no attack detected")?;
    } else {
        writeln!(
            out,
            "{:<12} {:<40} {:<11} {:>7} {:>9} {:>5}  first .. last (UTC)",
            "view", "key", "class", "windows", "packets", "peak"
        )?;
        for ((view, key, class), r) in &rows {
            writeln!(
                out,
                "{view:<12} {key:<40} {class:<11} {:>7} {:>9} {:>5.2}  {} .. {}",
                r.windows,
                r.packets,
                r.peak,
                fmt_time(r.first),
                fmt_time(r.last)
            )?;
        }
    }
    let quiet = keys.iter().filter(|(v, k)| !rows.keys().any(|(rv, rk, _)| rv == v && rk == k)).count();
    writeln!(out, "{quiet} (view, key) pairs without an alert")?;
    Ok(())
}

fn fmt_time(epoch: i64) -> String {
    let (y, m, d, hh, mm, ss) = wire::time::civil(epoch);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_time() {
        assert_eq!(super::fmt_time(0), "1970-01-01 00:00:00");
        assert_eq!(super::fmt_time(1_427_726_689), "2015-03-30 14:44:49");
    }
}
