//! When a window raises or keeps an alert: the decision shared by the predictor service (which
//! keeps the open alerts in PostgreSQL), `nta analyze` and the training report (which replay it
//! over a capture with [`Tracker`]).
//!
//! A window *opens* (or extends) the alert of (view, key, class) when the model labels it with
//! that class at confidence >= `min_confidence`, or when a rule of that class fires. It
//! *sustains* an alert already open for its key when the model gives that class a probability
//! of at least `sustain_confidence`: two thresholds (hysteresis), so an attack must be clear to
//! raise an alert, and the quieter windows of a slow attack keep it instead of making it flicker
//! off and on. The alert itself is the context a window inherits: it was usually opened by the
//! 30 s or 3 min window that saw the whole pattern.

use std::collections::{BTreeMap, HashMap};
use wire::{View, WindowRecord};

use crate::model::{Verdict, NORMAL};
use crate::rules::RuleHit;

/// How verdicts become detections.
#[derive(Debug, Clone)]
pub struct AlertPolicy {
    /// A model verdict other than Normal opens or extends an alert from this probability on.
    pub min_confidence: f64,
    /// An open alert of the key is extended by a window whose probability of its class
    /// reaches this (below `min_confidence`: it never opens one).
    pub sustain_confidence: f64,
    /// Confidence credited to a rule hit (the model's probability of the class when higher).
    pub rule_confidence: f64,
    /// Event-time gap after which a window opens a new alert instead of extending the open one.
    pub quiet_period_secs: f64,
}

/// Smallest model confidence that raises an alert on its own (rules raise alerts regardless).
/// 0.7 is the HIGH severity line: below it, single windows of ordinary traffic (one SSH login,
/// a burst of mDNS) were sometimes labelled as attacks with 0.6-0.7, while the attacks of the
/// lab's held-out runs and of the shared captures peak above it.
pub const MIN_CONFIDENCE: f64 = 0.7;
pub const SUSTAIN_CONFIDENCE: f64 = 0.3;
pub const RULE_CONFIDENCE: f64 = 0.75;
pub const QUIET_PERIOD_SECS: f64 = 300.0;

impl Default for AlertPolicy {
    fn default() -> Self {
        AlertPolicy {
            min_confidence: MIN_CONFIDENCE,
            sustain_confidence: SUSTAIN_CONFIDENCE,
            rule_confidence: RULE_CONFIDENCE,
            quiet_period_secs: QUIET_PERIOD_SECS,
        }
    }
}

/// One class a window speaks for.
#[derive(Debug, Clone)]
pub struct Detection<'a> {
    pub confidence: f64,
    /// The model's verdict took part (label and confidence over the threshold).
    pub by_model: bool,
    pub rules: Vec<&'a RuleHit>,
    /// False: only the sustain threshold was reached; the window extends an open alert of the
    /// class and never opens one.
    pub opens: bool,
}

/// Detections of one window, by class.
pub fn detections<'a>(
    verdict: Option<&Verdict>,
    hits: &'a [RuleHit],
    classes: &[String],
    policy: &AlertPolicy,
) -> BTreeMap<String, Detection<'a>> {
    let mut out: BTreeMap<String, Detection<'a>> = BTreeMap::new();
    if let Some(v) = verdict {
        if v.label != NORMAL && v.confidence >= policy.min_confidence {
            out.insert(
                v.label.clone(),
                Detection { confidence: v.confidence, by_model: true, rules: vec![], opens: true },
            );
        }
    }
    let model_p = |class: &str| {
        verdict
            .and_then(|v| {
                classes.iter().position(|c| c == class).map(|i| v.probabilities.get(i).copied().unwrap_or(0.0))
            })
            .unwrap_or(0.0)
    };
    for h in hits {
        let e = out.entry(h.class.to_string()).or_insert(Detection {
            confidence: 0.0,
            by_model: false,
            rules: vec![],
            opens: true,
        });
        e.confidence = e.confidence.max(policy.rule_confidence).max(model_p(h.class));
        e.rules.push(h);
    }
    if let Some(v) = verdict {
        for (i, c) in classes.iter().enumerate() {
            let p = v.probabilities.get(i).copied().unwrap_or(0.0);
            if c != NORMAL && p >= policy.sustain_confidence && !out.contains_key(c) {
                out.insert(c.clone(), Detection { confidence: p, by_model: true, rules: vec![], opens: false });
            }
        }
    }
    out
}

/// What a window did to an alert of one class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Opened,
    Extended,
}

/// The open alerts of a replay (what the service keeps in the `alerts` table), for offline use.
/// Feed windows in the order the windower emits them (by end, then size).
#[derive(Debug, Default)]
pub struct Tracker {
    policy: AlertPolicy,
    /// (view, key, class) -> last_seen (end of its latest window).
    open: HashMap<(View, String, String), i64>,
}

impl Tracker {
    pub fn new(policy: AlertPolicy) -> Tracker {
        Tracker { policy, open: HashMap::new() }
    }

    /// The alerts `w` opens or extends, by class.
    pub fn observe(
        &mut self,
        w: &WindowRecord,
        verdict: Option<&Verdict>,
        hits: &[RuleHit],
        classes: &[String],
    ) -> Vec<(String, Effect, f64)> {
        let mut out = Vec::new();
        for (class, d) in detections(verdict, hits, classes, &self.policy) {
            let k = (w.view, w.key.clone(), class);
            let end = w.window_start + w.window_size as i64;
            let live =
                self.open.get(&k).is_some_and(|&last| (w.window_start - last) as f64 <= self.policy.quiet_period_secs);
            if !live && !d.opens {
                continue;
            }
            let effect = if live { Effect::Extended } else { Effect::Opened };
            let last = self.open.entry(k.clone()).or_insert(end);
            *last = (*last).max(end);
            out.push((k.2, effect, d.confidence));
        }
        out
    }
}

/// Windows in the order a windower emits them: by end time, shorter first.
pub fn emission_order(windows: &[WindowRecord]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..windows.len()).collect();
    idx.sort_by_key(|&i| (windows[i].window_start + windows[i].window_size as i64, windows[i].window_size));
    idx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CLASSES;

    fn verdict(class: usize, p: f64) -> Verdict {
        let mut probabilities = vec![0.0; CLASSES.len()];
        probabilities[class] = p;
        probabilities[0] = 1.0 - p;
        let (label, confidence) = if p > 0.5 { (CLASSES[class], p) } else { (NORMAL, 1.0 - p) };
        Verdict { label: label.into(), class_index: if p > 0.5 { class } else { 0 }, confidence, probabilities }
    }

    fn window(start: i64, size: u32) -> WindowRecord {
        WindowRecord {
            v: wire::BATCH_FORMAT_VERSION,
            view: View::Source,
            key: "10.0.0.66".into(),
            window_start: start,
            window_size: size,
            features: Default::default(),
        }
    }

    #[test]
    fn a_clear_window_opens_weaker_ones_sustain_and_nothing_below() {
        let classes: Vec<String> = CLASSES.iter().map(|s| s.to_string()).collect();
        let ssh = CLASSES.iter().position(|c| *c == "ssh_brute").unwrap();
        let mut t = Tracker::new(AlertPolicy::default());
        // 0.55 before any alert: nothing (sustain never opens).
        assert!(t.observe(&window(0, 5), Some(&verdict(ssh, 0.55)), &[], &classes).is_empty());
        // The 30 s window sees the pattern: opened.
        let o = t.observe(&window(0, 30), Some(&verdict(ssh, 0.9)), &[], &classes);
        assert_eq!(o, vec![("ssh_brute".to_string(), Effect::Opened, 0.9)]);
        // Later 5 s windows at 0.45 keep it; at 0.2 they do not.
        assert_eq!(t.observe(&window(30, 5), Some(&verdict(ssh, 0.45)), &[], &classes)[0].1, Effect::Extended);
        assert!(t.observe(&window(35, 5), Some(&verdict(ssh, 0.2)), &[], &classes).is_empty());
        // After the quiet period the alert is gone: sustain alone no longer counts.
        assert!(t.observe(&window(1000, 5), Some(&verdict(ssh, 0.45)), &[], &classes).is_empty());
        // Another key's alert is its own.
        let mut other = window(40, 5);
        other.key = "10.0.0.67".into();
        assert!(t.observe(&other, Some(&verdict(ssh, 0.6)), &[], &classes).is_empty());
        // A rule opens like a confident model.
        let hit = RuleHit { rule: "ssh_guessing", class: "ssh_brute", evidence: serde_json::json!({}) };
        let o = t.observe(&other, Some(&verdict(ssh, 0.2)), std::slice::from_ref(&hit), &classes);
        assert_eq!(o, vec![("ssh_brute".to_string(), Effect::Opened, 0.75)]);
    }

    #[test]
    fn emission_order_is_by_end_then_size() {
        let ws = vec![window(0, 30), window(25, 5), window(0, 5), window(5, 5)];
        assert_eq!(emission_order(&ws), vec![2, 3, 1, 0]);
    }
}
