//! Detection as an operator sees it, replayed offline: the model, the rules and the alert
//! decision of the predictor service ([`predictor::decide::Tracker`]) over every window of a
//! capture. [`judge`] is what `nta analyze` prints; [`evaluate_capture`] scores one lab capture
//! against its labels: per attack, the share of its 5 s windows that raise or keep an alert of
//! the right class, whether it is detected at all, how long after its start the first alert
//! comes, and the alerts raised on windows labelled Normal.

use anyhow::Result;
use predictor::decide::{emission_order, AlertPolicy, Effect, Tracker};
use predictor::model::{Model, Verdict};
use predictor::rules::{self, RuleHit, RuleThresholds};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use wire::{View, WindowRecord};

use crate::lab::Interval;
use crate::label::CaptureLabels;
use crate::offline::windows_from_file;

/// The verdict on one window: the model's, the rules that fired, and the alerts it opened or
/// kept (class, effect, confidence).
pub struct WindowVerdict {
    pub model: Option<Verdict>,
    pub rules: Vec<RuleHit>,
    pub alerts: Vec<(String, Effect, f64)>,
}

/// Model, rules and alert decisions for every window (in the windows' order); the windows are
/// replayed in the order the windower emits them.
pub fn judge(
    model: Option<&Model>,
    windows: &[WindowRecord],
    thresholds: &RuleThresholds,
    policy: AlertPolicy,
) -> Vec<WindowVerdict> {
    let classes: Vec<String> = match model {
        Some(m) => m.classes.clone(),
        None => predictor::CLASSES.iter().map(|c| c.to_string()).collect(),
    };
    let model_verdicts: Vec<Option<Verdict>> = match model {
        Some(m) => m.predict(windows),
        None => windows.iter().map(|_| None).collect(),
    };
    let mut out: Vec<WindowVerdict> = model_verdicts
        .into_iter()
        .zip(windows)
        .map(|(v, w)| WindowVerdict { model: v, rules: rules::evaluate(w, thresholds), alerts: Vec::new() })
        .collect();
    let alerts = replay(&out, windows, &classes, policy);
    for (v, alerts) in out.iter_mut().zip(alerts) {
        v.alerts = alerts;
    }
    out
}

/// The alerts each window opens or keeps under `policy`, from verdicts already made (model and
/// rules are not run again), the windows replayed in the order the windower emits them.
pub fn replay(
    verdicts: &[WindowVerdict],
    windows: &[WindowRecord],
    classes: &[String],
    policy: AlertPolicy,
) -> Vec<Vec<(String, Effect, f64)>> {
    let mut out = vec![Vec::new(); windows.len()];
    let mut tracker = Tracker::new(policy);
    for i in emission_order(windows) {
        out[i] = tracker.observe(&windows[i], verdicts[i].model.as_ref(), &verdicts[i].rules, classes);
    }
    out
}

/// One attack of a lab capture, scored.
#[derive(Debug, Clone, Serialize)]
pub struct AttackResult {
    pub variation: String,
    pub class: String,
    /// 5 s time slots, at least half inside the attack, in which a window of the attacker
    /// (source view) or of a flood's target (destination view) is labelled with the attack.
    pub slots: usize,
    /// Slots in which one of those windows raised or kept an alert of the attack's class, or
    /// inherited one: its 30 s or 3 min parent window (of the same key) did.
    pub alerted_slots: usize,
    /// Same, counting the 5 s windows' own alerts only (raised or kept).
    pub alerted_slots_own: usize,
    /// Same, counting only alerts raised by the window itself (no sustaining of an open alert).
    pub alerted_slots_without_sustain: usize,
    /// Some window (any size) of the attack raised an alert of its class.
    pub detected: bool,
    /// Seconds from the attack's start to the end of the first window that alerted (a window
    /// is emitted once it ends, plus the windower's lateness).
    pub first_alert_after_s: Option<f64>,
    /// Alerts of another class on the attack's own windows.
    pub wrong_class: BTreeSet<String>,
}

/// A capture's alerts on windows labelled Normal: (view, key, class).
pub type FalseAlerts = BTreeSet<(String, String, String)>;

/// Scores one lab capture: its attacks, and the alerts raised on its Normal windows.
pub fn evaluate_capture(
    model: &Model,
    capture: &Path,
    intervals: &[&Interval],
    thresholds: &RuleThresholds,
    policy: &AlertPolicy,
) -> Result<(Vec<AttackResult>, FalseAlerts)> {
    let mut arp = Vec::new();
    let (windows, _) = windows_from_file(capture, &windower::WindowerConfig::default(), |r| {
        if r.arp_hwsrc.is_some() && r.arp_psrc.is_some() {
            arp.push(r.clone());
        }
    })?;
    let labels = CaptureLabels::new(intervals.to_vec(), &arp);
    let verdicts = judge(Some(model), &windows, thresholds, policy.clone());
    let no_sustain = replay(
        &verdicts,
        &windows,
        &model.classes,
        AlertPolicy { sustain_confidence: f64::INFINITY, ..policy.clone() },
    );
    let mut false_alerts = FalseAlerts::new();
    let mut results = Vec::new();
    for iv in intervals.iter().filter(|iv| iv.class != "Normal") {
        let mut slots: BTreeMap<i64, (bool, bool)> = BTreeMap::new();
        // Spans of the attack's 30 s and 3 min windows that alerted with its class.
        let mut parents: Vec<(i64, i64)> = Vec::new();
        let mut first: Option<f64> = None;
        let mut wrong = BTreeSet::new();
        for ((w, v), v0) in windows.iter().zip(&verdicts).zip(&no_sustain) {
            if !attack_window(&labels, iv, w) {
                continue;
            }
            let hit = v.alerts.iter().any(|(c, _, _)| *c == iv.class);
            wrong.extend(v.alerts.iter().filter(|(c, _, _)| *c != iv.class).map(|(c, _, _)| c.clone()));
            if hit {
                let end = (w.window_start + w.window_size as i64) as f64 - iv.start_epoch;
                first = Some(first.map_or(end, |f: f64| f.min(end)));
                if w.window_size > 5 {
                    parents.push((w.window_start, w.window_start + w.window_size as i64));
                }
            }
            // A slot is one of the attack's 5 s windows when at least half of it lies inside the
            // attack (the partial windows at its edges hold a few packets of it).
            let inside = (w.window_start as f64 + 5.0).min(iv.end_epoch) - (w.window_start as f64).max(iv.start_epoch);
            if w.window_size == 5 && inside >= 2.5 {
                let s = slots.entry(w.window_start).or_default();
                s.0 |= hit;
                s.1 |= v0.iter().any(|(c, _, _)| *c == iv.class);
            }
        }
        let inherited = |start: &i64| parents.iter().any(|(a, b)| a <= start && *start < *b);
        results.push(AttackResult {
            variation: iv.variation.clone(),
            class: iv.class.clone(),
            slots: slots.len(),
            alerted_slots: slots.iter().filter(|(start, s)| s.0 || inherited(start)).count(),
            alerted_slots_own: slots.values().filter(|s| s.0).count(),
            alerted_slots_without_sustain: slots.values().filter(|s| s.1).count(),
            detected: first.is_some(),
            first_alert_after_s: first.map(|f| f.max(0.0)),
            wrong_class: wrong,
        });
    }
    for (w, v) in windows.iter().zip(&verdicts) {
        if labels.label(w) == Some("Normal") {
            for (c, _, _) in &v.alerts {
                false_alerts.insert((w.view.as_str().to_string(), w.key.clone(), c.clone()));
            }
        }
    }
    Ok((results, false_alerts))
}

/// Whether `w` is one of the attack's own windows (labelled with it by [`CaptureLabels`]).
fn attack_window(labels: &CaptureLabels, iv: &Interval, w: &WindowRecord) -> bool {
    if labels.label(w) != Some(iv.class.as_str()) {
        return false;
    }
    let (start, end) = (w.window_start as f64, (w.window_start + w.window_size as i64) as f64);
    iv.overlaps(start, end)
        && match w.view {
            View::Source => iv.attacker_ips.contains(&w.key) || iv.class == "arp_spoof",
            View::Destination => iv.target_ips.contains(&w.key),
        }
}

/// Alerts raised anywhere in a capture that holds no attack: (view, key, class).
pub fn alerts_in(
    model: Option<&Model>,
    capture: &Path,
    thresholds: &RuleThresholds,
    policy: &AlertPolicy,
) -> Result<FalseAlerts> {
    let (windows, _) = windows_from_file(capture, &windower::WindowerConfig::default(), |_| {})?;
    let verdicts = judge(model, &windows, thresholds, policy.clone());
    Ok(windows
        .iter()
        .zip(&verdicts)
        .flat_map(|(w, v)| {
            v.alerts.iter().map(move |(c, _, _)| (w.view.as_str().to_string(), w.key.clone(), c.clone()))
        })
        .collect())
}

/// Per class over some attacks: 5 s window recall (with and without sustaining), attacks
/// detected, time to the first alert (median and worst).
#[derive(Debug, Clone, Serialize)]
pub struct ClassDetection {
    pub class: String,
    pub attacks: usize,
    pub detected: usize,
    pub slots: usize,
    /// 5 s slots alerted by their own window or inherited from its 30 s / 3 min parent.
    pub window_recall: Option<f64>,
    /// 5 s windows' own alerts (raised or sustained).
    pub window_recall_own: Option<f64>,
    pub window_recall_without_sustain: Option<f64>,
    /// The lowest per-attack window recall.
    pub worst_attack_recall: Option<f64>,
    pub median_first_alert_s: Option<f64>,
    pub max_first_alert_s: Option<f64>,
}

pub fn per_class(results: &[AttackResult]) -> Vec<ClassDetection> {
    let mut by: BTreeMap<&str, Vec<&AttackResult>> = BTreeMap::new();
    for r in results {
        by.entry(r.class.as_str()).or_default().push(r);
    }
    by.into_iter()
        .map(|(class, rs)| {
            let slots: usize = rs.iter().map(|r| r.slots).sum();
            let ratio = |n: usize| (slots > 0).then(|| n as f64 / slots as f64);
            let mut delays: Vec<f64> = rs.iter().filter_map(|r| r.first_alert_after_s).collect();
            delays.sort_by(f64::total_cmp);
            ClassDetection {
                class: class.to_string(),
                attacks: rs.len(),
                detected: rs.iter().filter(|r| r.detected).count(),
                slots,
                window_recall: ratio(rs.iter().map(|r| r.alerted_slots).sum()),
                window_recall_own: ratio(rs.iter().map(|r| r.alerted_slots_own).sum()),
                window_recall_without_sustain: ratio(rs.iter().map(|r| r.alerted_slots_without_sustain).sum()),
                worst_attack_recall: rs
                    .iter()
                    .filter(|r| r.slots > 0)
                    .map(|r| r.alerted_slots as f64 / r.slots as f64)
                    .min_by(f64::total_cmp),
                median_first_alert_s: delays.get(delays.len() / 2).copied(),
                max_first_alert_s: delays.last().copied(),
            }
        })
        .collect()
}
