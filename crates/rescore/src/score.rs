//! Windows -> verdicts -> alerts of a run, with the predictor's own code: the model, the rules,
//! the prediction row of a window ([`predictor::service::prediction_row`]), the alert decision
//! with its hysteresis ([`Tracker`]) and the per-alert aggregation of windows
//! ([`predictor::service::aggregate`]). The live service keeps its open alerts in PostgreSQL;
//! a run keeps them here, in memory, and writes them once the range is done.

use predictor::decide::{AlertPolicy, Effect, Tracker};
use predictor::model::{Model, Verdict};
use predictor::rules::{self, RuleHit, RuleThresholds};
use std::collections::HashMap;
use store::alerts::{AlertDelta, AlertKey};
use store::predictions::PredictionRow;
use wire::WindowRecord;

/// Verdicts of one chunk of windows, in the order given.
pub struct Verdicts {
    pub model: Vec<Option<Verdict>>,
    pub rules: Vec<Vec<RuleHit>>,
}

pub struct Scorer {
    model: Model,
    policy: AlertPolicy,
    thresholds: RuleThresholds,
    tracker: Tracker,
    /// Alerts in the order they opened.
    alerts: Vec<(AlertKey, AlertDelta)>,
    /// The open alert of each (view, key, class): index into `alerts`.
    open: HashMap<AlertKey, usize>,
}

impl Scorer {
    pub fn new(model: Model, policy: AlertPolicy, thresholds: RuleThresholds) -> Scorer {
        let tracker = Tracker::new(policy.clone());
        Scorer { model, policy, thresholds, tracker, alerts: Vec::new(), open: HashMap::new() }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Sorts `windows` into the order the windower emits them (by end, shorter first; then by
    /// identity, so the run does not depend on the order of a poll's output), classifies them
    /// and folds them into the run's alerts.
    pub fn score(&mut self, windows: &mut [WindowRecord]) -> Verdicts {
        windows.sort_by(|a, b| {
            let k = |w: &WindowRecord| (w.window_start + w.window_size as i64, w.window_size, w.view, w.key.clone());
            k(a).cmp(&k(b))
        });
        let v = Verdicts {
            model: self.model.predict(windows),
            rules: windows.iter().map(|w| rules::evaluate(w, &self.thresholds)).collect(),
        };
        for (i, w) in windows.iter().enumerate() {
            let (verdict, hits) = (v.model[i].as_ref(), v.rules[i].as_slice());
            let effects = self.tracker.observe(w, verdict, hits, &self.model.classes);
            if effects.is_empty() {
                continue;
            }
            let model = &self.model;
            let explain = |w: &WindowRecord, class: &str| -> Vec<(String, f64)> {
                let k = model.classes.iter().position(|c| c == class);
                match (model.view(w.view), k) {
                    (Some(vm), Some(k)) => vm.explain(w, k, 5).into_iter().map(|(f, v)| (f.to_string(), v)).collect(),
                    _ => Vec::new(),
                }
            };
            let mut deltas =
                predictor::service::aggregate([(w, verdict, hits)], &model.classes, &explain, &self.policy);
            for (class, effect, _) in effects {
                let key = (w.view, w.key.clone(), class);
                let Some(d) = deltas.remove(&key) else { continue };
                match (effect, self.open.get(&key)) {
                    (Effect::Extended, Some(&i)) => merge(&mut self.alerts[i].1, d),
                    _ => {
                        self.open.insert(key.clone(), self.alerts.len());
                        self.alerts.push((key, d));
                    }
                }
            }
        }
        v
    }

    /// The prediction rows of a chunk scored by [`Scorer::score`].
    pub fn rows<'w>(&self, windows: &'w [WindowRecord], v: &Verdicts) -> Vec<PredictionRow<'w>> {
        windows
            .iter()
            .enumerate()
            .map(|(i, w)| {
                predictor::service::prediction_row(
                    &self.model,
                    w,
                    v.model[i].as_ref(),
                    &v.rules[i],
                    self.policy.rule_confidence,
                )
            })
            .collect()
    }

    /// The run's alerts in their stored order: by first_seen, view, key, class, last_seen.
    pub fn into_alerts(self) -> Vec<(AlertKey, AlertDelta)> {
        let mut a = self.alerts;
        a.sort_by(|x, y| (x.1.first_seen, &x.0, x.1.last_seen).cmp(&(y.1.first_seen, &y.0, y.1.last_seen)));
        a
    }
}

/// Extends an alert with a window's delta, as the live upsert does (`store::alerts`): times
/// widen, counts and per-size sums add, the peak and the distinct sources take the maximum,
/// evidence and rules accumulate.
fn merge(a: &mut AlertDelta, d: AlertDelta) {
    a.first_seen = a.first_seen.min(d.first_seen);
    a.last_seen = a.last_seen.max(d.last_seen);
    a.window_count += d.window_count;
    a.peak_confidence = a.peak_confidence.max(d.peak_confidence);
    a.by_model |= d.by_model;
    a.by_rule |= d.by_rule;
    for i in 0..3 {
        a.packets[i] += d.packets[i];
        a.bytes[i] += d.bytes[i];
    }
    a.distinct_sources = match (a.distinct_sources, d.distinct_sources) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    };
    a.evidence.extend(d.evidence);
    a.rules.extend(d.rules);
    a.windows.extend(d.windows);
    a.extend_only &= d.extend_only;
}
