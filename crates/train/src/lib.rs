//! Training (`nta train`): lab captures -> records (the agent's reader) -> windows (the
//! windower library, the same code as live scoring) -> labelled examples -> one random forest
//! per view (the predictor's forest and model file), evaluated on held-out variations.
//! [`offline`] composes the agent and the windower for `nta analyze` as well.
//!
//! This crate sits beside the pipeline, not in it: it may use every stage's library, and no
//! stage depends on it.
//!
//! The split is by variation (one capture each), never by random windows: windows of one
//! attack run are near-duplicates, and a random split would score the model on data it has
//! practically seen. Identifiers (addresses, ports as values, timestamps) are never features.

pub mod detect;
pub mod eval;
pub mod lab;
pub mod label;
pub mod offline;

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use wire::{View, WindowRecord};

use eval::Evaluation;
use lab::Interval;
use label::CaptureLabels;
use predictor::forest::{ForestParams, RandomForest};

pub use offline::windows_from_file;
pub use predictor::model::CLASSES;

/// Feature names of a view's model, in column order (`window_size` included: the same
/// behaviour looks different in 5 s and 3 min windows).
pub fn feature_names(view: View) -> Vec<String> {
    wire::features::names(view).map(String::from).chain(std::iter::once("window_size".to_string())).collect()
}

/// One window's feature row in `names` order, exactly as the predictor builds it
/// ([`predictor::model::feature_value`]): a missing feature is NaN (the forest sends it left).
pub fn feature_row(w: &WindowRecord, names: &[String]) -> Vec<f64> {
    names.iter().map(|n| predictor::model::feature_value(w, n)).collect()
}

/// Labelled rows of one view.
#[derive(Debug, Default, Clone)]
pub struct Examples {
    pub names: Vec<String>,
    pub x: Vec<Vec<f64>>,
    pub y: Vec<usize>,
    pub variation: Vec<String>,
    pub window_size: Vec<u32>,
}

#[derive(Debug, Default)]
pub struct LabData {
    pub source: Examples,
    pub destination: Examples,
    /// Variation -> the group its hold-out is drawn from: the lab scenario (nmap UDP scans,
    /// SSH guessing on other ports, ...) with its class, or the class alone when the labels
    /// name no scenario.
    pub variation_class: BTreeMap<String, String>,
}

/// Reads every capture of the lab runs and labels its windows.
pub fn build(intervals: &[Interval], cfg: &windower::WindowerConfig) -> Result<LabData> {
    let mut by_capture: BTreeMap<&Path, Vec<&Interval>> = BTreeMap::new();
    for iv in intervals {
        by_capture.entry(iv.capture.as_path()).or_default().push(iv);
    }
    let mut data = LabData {
        source: Examples { names: feature_names(View::Source), ..Default::default() },
        destination: Examples { names: feature_names(View::Destination), ..Default::default() },
        ..Default::default()
    };
    for (capture, ivs) in by_capture {
        let variation = ivs[0].variation.clone();
        let attack = ivs.iter().find(|i| i.class != "Normal").unwrap_or(&ivs[0]);
        let group = if attack.scenario.is_empty() {
            attack.class.clone()
        } else {
            format!("{}/{}", attack.class, attack.scenario)
        };
        data.variation_class.insert(variation.clone(), group);
        // The labels read only ARP frames (who claimed which address); windows stream out of
        // the file without holding its records.
        let mut arp = Vec::new();
        let (windows, _) = windows_from_file(capture, cfg, |r| {
            if r.arp_hwsrc.is_some() && r.arp_psrc.is_some() {
                arp.push(r.clone());
            }
        })?;
        let labels = CaptureLabels::new(ivs, &arp);
        for w in windows {
            let Some(class) = labels.label(&w) else { continue };
            let ex = match w.view {
                View::Source => &mut data.source,
                View::Destination => &mut data.destination,
            };
            ex.x.push(feature_row(&w, &ex.names));
            ex.y.push(CLASSES.iter().position(|c| *c == class).expect("lab class"));
            ex.variation.push(variation.clone());
            ex.window_size.push(w.window_size);
        }
    }
    Ok(data)
}

/// Held-out variations: per group (lab scenario, or class), every fourth variation in a fixed
/// pseudo-random order (at least one when the group has two or more), so each class and each
/// style of attack is tested on runs the model never saw.
pub fn held_out(variation_class: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut per_class: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for (v, c) in variation_class {
        per_class.entry(c).or_default().push(v);
    }
    let mut test = BTreeSet::new();
    for vs in per_class.values_mut() {
        vs.sort_by_key(|v| Sha256::digest(v.as_bytes()));
        if vs.len() >= 2 {
            for (i, v) in vs.iter().enumerate() {
                if i % 4 == 1 {
                    test.insert((*v).clone());
                }
            }
        }
    }
    test
}

/// A trained view model with its held-out evaluation.
pub struct ViewModel {
    pub names: Vec<String>,
    pub forest: RandomForest,
    pub evaluation: Evaluation,
    pub train_rows: usize,
    pub fit_seconds: f64,
}

/// Trains on the training variations and evaluates on the held-out ones.
pub fn train_view(ex: &Examples, test: &BTreeSet<String>, params: &ForestParams) -> Result<Option<ViewModel>> {
    use linfa::prelude::*;
    let (mut tr, mut te) = (Vec::new(), Vec::new());
    for i in 0..ex.y.len() {
        if test.contains(&ex.variation[i]) {
            te.push(i)
        } else {
            tr.push(i)
        }
    }
    if tr.is_empty() {
        return Ok(None);
    }
    let to_array = |idx: &[usize]| {
        let flat: Vec<f64> = idx.iter().flat_map(|&i| ex.x[i].iter().copied()).collect();
        ndarray::Array2::from_shape_vec((idx.len(), ex.names.len()), flat).expect("rectangular rows")
    };
    let ytr = ndarray::Array1::from_iter(tr.iter().map(|&i| ex.y[i]));
    let train = linfa::Dataset::new(to_array(&tr), ytr);
    let t = std::time::Instant::now();
    let forest = params.fit(&train)?;
    let fit_seconds = t.elapsed().as_secs_f64();
    let truth: Vec<usize> = te.iter().map(|&i| ex.y[i]).collect();
    let predicted: Vec<usize> = if te.is_empty() { Vec::new() } else { forest.predict(&to_array(&te)).to_vec() };
    let classes: Vec<String> = CLASSES.iter().map(|c| c.to_string()).collect();
    if forest.n_classes > classes.len() {
        bail!("more classes than known");
    }
    Ok(Some(ViewModel {
        names: ex.names.clone(),
        evaluation: eval::evaluate(&classes, &truth, &predicted),
        forest,
        train_rows: tr.len(),
        fit_seconds,
    }))
}

/// SHA-256 over every example (features, label, variation): the model records which data made it.
pub fn data_hash(data: &LabData) -> String {
    let mut h = Sha256::new();
    for ex in [&data.source, &data.destination] {
        for i in 0..ex.y.len() {
            for v in &ex.x[i] {
                h.update(v.to_bits().to_le_bytes());
            }
            h.update((ex.y[i] as u64).to_le_bytes());
            h.update(ex.variation[i].as_bytes());
        }
    }
    format!("{:x}", h.finalize())
}

/// CSV for the scikit-learn comparison: features, then `label`, `variation`, `split`.
pub fn export_csv(ex: &Examples, test: &BTreeSet<String>, path: &PathBuf) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "{},label,variation,split", ex.names.join(","))?;
    for i in 0..ex.y.len() {
        for v in &ex.x[i] {
            if v.is_nan() {
                write!(f, ",")?
            } else {
                write!(f, "{v},")?
            }
        }
        let split = if test.contains(&ex.variation[i]) { "test" } else { "train" };
        writeln!(f, "{},{},{split}", ex.y[i], ex.variation[i].replace(',', "_"))?;
    }
    Ok(())
}
