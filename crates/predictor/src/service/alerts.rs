//! From verdicts and rule hits to alert updates (pure logic; `db` applies them).

use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use wire::{View, WindowRecord};

pub use crate::decide::{detections, AlertPolicy};
use crate::model::Verdict;
use crate::rules::RuleHit;
pub use store::alerts::{AlertDelta, AlertKey};
pub use wire::alert::{severity, summary};

/// Index of a window size in the per-size packet and byte sums.
pub fn size_slot(window_size: u32) -> Option<usize> {
    match window_size {
        5 => Some(0),
        30 => Some(1),
        180 => Some(2),
        _ => None,
    }
}

fn count(w: &WindowRecord, name: &str) -> i64 {
    w.features.get(name).copied().flatten().filter(|v| v.is_finite()).map_or(0, |v| v.max(0.0).round() as i64)
}

/// The features (name, value) that decided a window's class, strongest first: the model's
/// evidence recorded with an alert.
pub type Explain<'e> = &'e dyn Fn(&WindowRecord, &str) -> Vec<(String, f64)>;

/// Folds the detections of some windows (already known to be new) into one delta per alert.
pub fn aggregate<'a>(
    items: impl IntoIterator<Item = (&'a WindowRecord, Option<&'a Verdict>, &'a [RuleHit])>,
    classes: &[String],
    explain: Explain<'_>,
    policy: &AlertPolicy,
) -> BTreeMap<AlertKey, AlertDelta> {
    let mut out: BTreeMap<AlertKey, AlertDelta> = BTreeMap::new();
    for (w, verdict, hits) in items {
        for (class, det) in detections(verdict, hits, classes, policy) {
            let (conf, by_model, rule_hits) = (det.confidence, det.by_model, det.rules);
            let d = out.entry((w.view, w.key.clone(), class.clone())).or_insert_with(|| AlertDelta {
                first_seen: i64::MAX,
                last_seen: i64::MIN,
                window_count: 0,
                peak_confidence: 0.0,
                by_model: false,
                by_rule: false,
                packets: [0; 3],
                bytes: [0; 3],
                distinct_sources: None,
                evidence: serde_json::Map::new(),
                rules: BTreeSet::new(),
                windows: Vec::new(),
                extend_only: true,
            });
            d.extend_only &= !det.opens;
            d.first_seen = d.first_seen.min(w.window_start);
            d.last_seen = d.last_seen.max(w.window_start + w.window_size as i64);
            d.window_count += 1;
            d.peak_confidence = d.peak_confidence.max(conf);
            d.by_model |= by_model;
            d.by_rule |= !rule_hits.is_empty();
            if let Some(s) = size_slot(w.window_size) {
                d.packets[s] += count(w, "packet_count");
                d.bytes[s] += count(w, "byte_count");
            }
            if w.view == View::Destination && w.features.contains_key("unique_src_ips") {
                let n = count(w, "unique_src_ips");
                d.distinct_sources = Some(d.distinct_sources.map_or(n, |m| m.max(n)));
            }
            for h in rule_hits {
                d.rules.insert(h.rule.to_string());
                d.evidence.insert(h.rule.to_string(), with_window(&h.evidence, w));
            }
            if by_model {
                let feats: serde_json::Map<String, serde_json::Value> = explain(w, &class)
                    .into_iter()
                    .map(|(f, v)| (f, serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into)))
                    .collect();
                d.evidence.insert("model".into(), with_window(&json!({"confidence": conf, "top_features": feats}), w));
            }
            d.windows.push((w.window_start, i32::try_from(w.window_size).unwrap_or(i32::MAX)));
        }
    }
    out
}

/// Evidence of the latest window that showed it, tagged with that window.
fn with_window(e: &serde_json::Value, w: &WindowRecord) -> serde_json::Value {
    let mut e = e.clone();
    if let Some(o) = e.as_object_mut() {
        o.insert("window_start".into(), w.window_start.into());
        o.insert("window_size".into(), w.window_size.into());
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CLASSES;

    #[test]
    fn severities_summaries_and_detections() {
        assert_eq!(severity(0.95), "CRITICAL");
        assert_eq!(severity(0.9), "CRITICAL");
        assert_eq!(severity(0.75), "HIGH");
        assert_eq!(severity(0.5), "MEDIUM");
        assert_eq!(severity(0.2), "LOW");
        assert!(wire::alert::severity_sql("x").starts_with("CASE WHEN x >= 0.9 THEN 'CRITICAL'"));
        assert_eq!(
            summary(View::Destination, "10.0.0.5", "syn_flood", Some(9600)),
            "syn_flood against 10.0.0.5 from 9,600 sources"
        );
        assert_eq!(summary(View::Destination, "h", "c", Some(1_234_567)), "c against h from 1,234,567 sources");
        assert_eq!(summary(View::Destination, "h", "c", Some(1)), "c against h from 1 source");
        assert_eq!(summary(View::Source, "10.0.0.66", "port_scan", None), "port_scan from 10.0.0.66");

        let classes: Vec<String> = CLASSES.iter().map(|s| s.to_string()).collect();
        let policy = AlertPolicy { min_confidence: 0.6, ..Default::default() };
        let mut probabilities = vec![0.0; 9];
        probabilities[7] = 0.55;
        probabilities[0] = 0.45;
        let v = Verdict { label: "syn_flood".into(), class_index: 7, confidence: 0.55, probabilities };
        // Below min_confidence and no rule: only sustains an open alert.
        let d = detections(Some(&v), &[], &classes, &policy);
        assert!(!d["syn_flood"].opens);
        let hit = RuleHit { rule: "syn_flood_victim", class: "syn_flood", evidence: json!({}) };
        let d = detections(Some(&v), std::slice::from_ref(&hit), &classes, &policy);
        assert_eq!(d["syn_flood"].confidence, 0.75);
        assert!(!d["syn_flood"].by_model);
        assert!(d["syn_flood"].opens);
    }
}
