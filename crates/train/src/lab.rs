//! The lab's output: captures plus `labels.jsonl`, one line per labelled interval (see
//! `infra/lab`). Several lab runs can be combined.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::PathBuf;

/// One labelled interval of one capture.
#[derive(Debug, Clone, Deserialize)]
pub struct Interval {
    /// Capture path, relative to the lab run directory in the file; made absolute on load.
    pub capture: PathBuf,
    /// Variation name: the unit of the train/test split (one capture per variation and run).
    pub variation: String,
    #[serde(default)]
    pub scenario: String,
    pub class: String,
    #[serde(default)]
    pub attacker_ips: Vec<String>,
    #[serde(default)]
    pub attacker_macs: Vec<String>,
    #[serde(default)]
    pub victim_ips: Vec<String>,
    #[serde(default)]
    pub target_ips: Vec<String>,
    #[serde(default)]
    pub spoofed: bool,
    pub start_epoch: f64,
    pub end_epoch: f64,
    /// Every window of the capture is Normal, whatever its key (captures of ordinary traffic
    /// given with `nta train --normal`; lab labels name their hosts instead).
    #[serde(default)]
    pub all_keys: bool,
}

impl Interval {
    pub fn overlaps(&self, start: f64, end: f64) -> bool {
        start < self.end_epoch && end > self.start_epoch
    }
}

/// Reads `labels.jsonl` of each lab run directory.
pub fn load(dirs: &[PathBuf]) -> Result<Vec<Interval>> {
    let mut out = Vec::new();
    for dir in dirs {
        let path = dir.join("labels.jsonl");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let mut iv: Interval =
                serde_json::from_str(line).with_context(|| format!("{}:{}: bad label line", path.display(), n + 1))?;
            if iv.capture.is_relative() {
                iv.capture = dir.join(&iv.capture);
            }
            // The same variation run twice (two lab runs) stays one split unit: its captures are
            // near-twins, so one in training and one in test would leak.
            out.push(iv);
        }
    }
    Ok(out)
}

/// Captures of ordinary traffic as Normal intervals: one variation per file (scenario
/// `benign-captures`, so a quarter of them is held out like any group).
pub fn normal_captures(files: &[PathBuf]) -> Vec<Interval> {
    files
        .iter()
        .map(|f| Interval {
            capture: f.clone(),
            variation: format!("benign-{}", f.file_name().unwrap_or_default().to_string_lossy()),
            scenario: "benign-captures".into(),
            class: "Normal".into(),
            attacker_ips: vec![],
            attacker_macs: vec![],
            victim_ips: vec![],
            target_ips: vec![],
            spoofed: false,
            start_epoch: f64::NEG_INFINITY,
            end_epoch: f64::INFINITY,
            all_keys: true,
        })
        .collect()
}
