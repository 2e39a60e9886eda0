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
