//! The model file: one random forest per view (source, destination), the feature names each
//! forest reads (in order), the class names, and where the model came from.
//!
//! # File format
//!
//! `NTAMODEL` (8 bytes) + format version (u32, little endian) + the [`Model`] as compact
//! MessagePack (structs as arrays). The version is read before anything else, so a file from
//! another format version fails with [`ModelError::Version`] instead of a garbled decode.
//! [`MODEL_FORMAT_VERSION`] is bumped whenever `Model`, `ViewModel` or the forest change shape.
//!
//! # Features
//!
//! A forest reads the windower's features by name ([`wire::WindowRecord::features`]); a
//! feature that is absent or `None` is `NaN`, which the forest sends left (as in training).
//! `window_size` (5, 30 or 180) may be a feature: it is read from the record itself.
//! Identifiers (addresses, ports as values, timestamps) must never be features; [`Model::validate`]
//! rejects the names that would smuggle them in.

use ndarray::Array2;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::borrow::Borrow;
use std::path::{Path, PathBuf};
use wire::{View, WindowRecord};

use crate::forest::{argmax, RandomForest};

/// First bytes of every model file.
pub const MODEL_MAGIC: &[u8; 8] = b"NTAMODEL";
/// Version of the model file layout this build reads and writes.
pub const MODEL_FORMAT_VERSION: u32 = 1;
/// The classes, in the order of the forests' class indices.
pub const CLASSES: [&str; 9] = [
    "Normal",
    "arp_spoof",
    "dns_tunnel",
    "icmp_flood",
    "port_scan",
    "slowloris",
    "ssh_brute",
    "syn_flood",
    "udp_flood",
];
pub const NORMAL: &str = "Normal";
/// Pseudo-feature read from [`WindowRecord::window_size`].
pub const WINDOW_SIZE_FEATURE: &str = "window_size";
/// Names that would make a forest learn identities instead of behaviour.
pub const FORBIDDEN_FEATURES: [&str; 12] = [
    "key",
    "view",
    "window_start",
    "window_end",
    "window_id",
    "timestamp",
    "ts",
    "src_ip",
    "dst_ip",
    "src_port",
    "dst_port",
    "mac",
];
/// Environment variable naming the model file when none is configured.
pub const MODEL_ENV: &str = "NTA_MODEL";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("not an NTA model file (missing the NTAMODEL header)")]
    NotAModel,
    #[error(
        "model file format version {found}, but this build reads version {MODEL_FORMAT_VERSION}: \
         retrain the model with this build (or use a build of the matching version)"
    )]
    Version { found: u32 },
    #[error("cannot decode the model: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("cannot encode the model: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("invalid model: {0}")]
    Invalid(String),
}

/// The forest of one view and the features it reads, in column order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ViewModel {
    pub features: Vec<String>,
    pub forest: RandomForest,
}

impl ViewModel {
    pub fn new(features: Vec<String>, forest: RandomForest) -> Result<ViewModel, ModelError> {
        let vm = ViewModel { features, forest };
        vm.validate()?;
        Ok(vm)
    }

    fn validate(&self) -> Result<(), ModelError> {
        if self.features.len() != self.forest.n_features {
            return Err(ModelError::Invalid(format!(
                "{} feature names for a forest of {} features",
                self.features.len(),
                self.forest.n_features
            )));
        }
        if self.forest.n_classes > CLASSES.len() {
            return Err(ModelError::Invalid(format!("forest of {} classes", self.forest.n_classes)));
        }
        self.forest.check().map_err(ModelError::Invalid)?;
        for f in &self.features {
            if FORBIDDEN_FEATURES.contains(&f.as_str()) {
                return Err(ModelError::Invalid(format!("{f:?} is an identifier, not a feature")));
            }
        }
        Ok(())
    }

    /// The features this forest reads that windows of `view` never carry (see
    /// [`wire::features::names`]): always NaN, so most likely a model trained on other names.
    pub fn unknown_features(&self, view: View) -> Vec<&str> {
        let known: Vec<&str> = wire::features::names(view).chain([WINDOW_SIZE_FEATURE]).collect();
        self.features.iter().map(String::as_str).filter(|f| !known.contains(f)).collect()
    }

    /// The rows of `windows` in this forest's feature order (NaN where missing).
    pub fn matrix<W: Borrow<WindowRecord>>(&self, windows: &[W]) -> Array2<f64> {
        feature_matrix(&self.features, windows)
    }

    /// The `n` features that weighed most in giving `w` the class `class` (see
    /// [`RandomForest::decision_weights`]), with the window's values.
    pub fn explain(&self, w: &WindowRecord, class: usize, n: usize) -> Vec<(&str, f64)> {
        let row: Vec<f64> = self.features.iter().map(|f| feature_value(w, f)).collect();
        let weights = self.forest.decision_weights(&row, class);
        let mut idx: Vec<usize> = (0..self.features.len()).filter(|&i| weights[i] > 0.0).collect();
        idx.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
        idx.into_iter().take(n).map(|i| (self.features[i].as_str(), row[i])).collect()
    }

    /// The `n` most important features and their importances, most important first.
    pub fn top_features(&self, n: usize) -> Vec<(&str, f64)> {
        let mut v: Vec<(&str, f64)> =
            self.features.iter().map(String::as_str).zip(self.forest.importances.iter().copied()).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v.truncate(n);
        v
    }
}

/// Value of one feature of a window: `window_size` from the record, a missing or `None`
/// feature as NaN.
pub fn feature_value(w: &WindowRecord, name: &str) -> f64 {
    if name == WINDOW_SIZE_FEATURE {
        return w.window_size as f64;
    }
    w.features.get(name).copied().flatten().unwrap_or(f64::NAN)
}

/// One row per window, one column per feature name (what training and prediction both use).
pub fn feature_matrix<W: Borrow<WindowRecord>>(features: &[String], windows: &[W]) -> Array2<f64> {
    let mut x = Array2::<f64>::from_elem((windows.len(), features.len()), f64::NAN);
    for (i, w) in windows.iter().enumerate() {
        let w = w.borrow();
        for (j, f) in features.iter().enumerate() {
            x[[i, j]] = feature_value(w, f);
        }
    }
    x
}

/// What the model says about one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The most probable class.
    pub label: String,
    /// Index of `label` in [`Model::classes`].
    pub class_index: usize,
    /// Probability of `label`.
    pub confidence: f64,
    /// Probability of every class, in the order of [`Model::classes`].
    pub probabilities: Vec<f64>,
}

impl Verdict {
    pub fn is_attack(&self) -> bool {
        self.label != NORMAL
    }

    /// `{"Normal": 0.1, "syn_flood": 0.9, ...}` for the `predictions.probabilities` column.
    pub fn probabilities_json(&self, classes: &[String]) -> serde_json::Value {
        let m: serde_json::Map<String, serde_json::Value> = classes
            .iter()
            .zip(&self.probabilities)
            .map(|(c, p)| (c.clone(), serde_json::Number::from_f64(*p).map_or(serde_json::Value::Null, Into::into)))
            .collect();
        serde_json::Value::Object(m)
    }
}

/// A trained model (see the module documentation for the file format).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Model {
    pub format_version: u32,
    /// `<UTC creation time>-<first 12 hex digits of the content hash>`, e.g.
    /// `20260101T120000Z-3fa2c81b09de`; stored with every prediction.
    pub model_version: String,
    /// Exactly [`CLASSES`], in that order.
    pub classes: Vec<String>,
    /// Forest of the source view; `None`: source windows get no model verdict.
    pub source: Option<ViewModel>,
    /// Forest of the destination view; `None`: destination windows get no model verdict.
    pub destination: Option<ViewModel>,
    /// Hash of the training data (whatever the trainer chose, e.g. SHA-256 of the labelled
    /// window ids and labels), to tell which data a model came from.
    pub training_data_hash: String,
    /// Training parameters (free-form JSON).
    pub params: serde_json::Value,
    /// Evaluation metrics (free-form JSON).
    pub metrics: serde_json::Value,
    /// Creation time, epoch seconds.
    pub created_at: i64,
}

impl Model {
    /// Assembles a model, stamping its creation time and content-hash version.
    pub fn new(
        source: Option<ViewModel>,
        destination: Option<ViewModel>,
        training_data_hash: impl Into<String>,
        params: serde_json::Value,
        metrics: serde_json::Value,
    ) -> Result<Model, ModelError> {
        let created_at =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let mut m = Model {
            format_version: MODEL_FORMAT_VERSION,
            model_version: String::new(),
            classes: CLASSES.iter().map(|c| c.to_string()).collect(),
            source,
            destination,
            training_data_hash: training_data_hash.into(),
            params,
            metrics,
            created_at,
        };
        m.validate()?;
        m.model_version = format!("{}-{}", compact_utc(created_at), &m.content_hash()?[..12]);
        Ok(m)
    }

    /// SHA-256 (hex) of the forests, their features, the classes and the training data hash.
    pub fn content_hash(&self) -> Result<String, ModelError> {
        let body = rmp_serde::to_vec(&(&self.classes, &self.source, &self.destination, &self.training_data_hash))?;
        let digest = Sha256::digest(&body);
        Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        if self.classes.iter().map(String::as_str).ne(CLASSES.iter().copied()) {
            return Err(ModelError::Invalid(format!("classes {:?}, expected {:?}", self.classes, CLASSES)));
        }
        for vm in [&self.source, &self.destination].into_iter().flatten() {
            vm.validate()?;
        }
        Ok(())
    }

    pub fn view(&self, view: View) -> Option<&ViewModel> {
        match view {
            View::Source => self.source.as_ref(),
            View::Destination => self.destination.as_ref(),
        }
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, ModelError> {
        let mut out = Vec::with_capacity(1 << 16);
        out.extend_from_slice(MODEL_MAGIC);
        out.extend_from_slice(&self.format_version.to_le_bytes());
        rmp_serde::encode::write(&mut out, self)?;
        Ok(out)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Model, ModelError> {
        if bytes.len() < 12 || &bytes[..8] != MODEL_MAGIC {
            return Err(ModelError::NotAModel);
        }
        let found = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        if found != MODEL_FORMAT_VERSION {
            return Err(ModelError::Version { found });
        }
        let m: Model = rmp_serde::from_slice(&bytes[12..])?;
        if m.format_version != found {
            return Err(ModelError::Version { found: m.format_version });
        }
        m.validate()?;
        Ok(m)
    }

    /// Writes the model (to a temporary file renamed into place: never a half-written model).
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let io = |source| ModelError::Io { path: path.to_path_buf(), source };
        let bytes = self.to_bytes()?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    pub fn load(path: &Path) -> Result<Model, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
        Model::from_bytes(&bytes)
    }

    /// Loads `path`, or when `None` the [`default_model_path`].
    pub fn load_configured(path: Option<&Path>) -> anyhow::Result<Model> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => default_model_path()?,
        };
        let m = Model::load(&path).map_err(|e| anyhow::anyhow!("loading model {}: {e}", path.display()))?;
        // Which file, not only which version: the default is looked up in several places.
        tracing::info!(model = %path.display(), version = %m.model_version, "model loaded");
        for view in [View::Source, View::Destination] {
            let unknown = m.view(view).map(|vm| vm.unknown_features(view)).unwrap_or_default();
            if !unknown.is_empty() {
                tracing::warn!(
                    model = %path.display(), view = view.as_str(), ?unknown,
                    "the model reads features windows of this view never carry (always missing)"
                );
            }
        }
        Ok(m)
    }

    /// Verdicts for a batch of windows, in order: one matrix and one forest pass per view.
    /// `None` for a window whose view has no forest in this model (rules still apply to it).
    pub fn predict<W: Borrow<WindowRecord>>(&self, windows: &[W]) -> Vec<Option<Verdict>> {
        let mut out: Vec<Option<Verdict>> = vec![None; windows.len()];
        for view in [View::Source, View::Destination] {
            let Some(vm) = self.view(view) else { continue };
            let idx: Vec<usize> = (0..windows.len()).filter(|&i| windows[i].borrow().view == view).collect();
            if idx.is_empty() {
                continue;
            }
            let rows: Vec<&WindowRecord> = idx.iter().map(|&i| windows[i].borrow()).collect();
            let proba = vm.forest.predict_proba(vm.matrix(&rows).view());
            for (row, &i) in proba.rows().into_iter().zip(&idx) {
                let mut probabilities = vec![0.0; self.classes.len()];
                probabilities.iter_mut().zip(row.iter()).for_each(|(d, s)| *d = *s);
                let k = argmax(probabilities.iter().copied());
                out[i] = Some(Verdict {
                    label: self.classes[k].clone(),
                    class_index: k,
                    confidence: probabilities[k],
                    probabilities,
                });
            }
        }
        out
    }
}

/// Where the model comes from when none is configured: `$NTA_MODEL`, else the first file of
/// [`default_model_candidates`] that exists.
pub fn default_model_path() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(MODEL_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let candidates = default_model_candidates();
    if let Some(found) = candidates.iter().find(|c| c.is_file()) {
        return Ok(found.clone());
    }
    anyhow::bail!(
        "no model configured and no default model found (tried {}); train one or pass --model / set {MODEL_ENV}",
        candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
    )
}

/// The places a default model is looked for, in order (the one list the docs describe):
/// 1. `../share/nta/models/default.nta-model` beside the running binary: the installed layout
///    (`/usr/bin/nta` finds `/usr/share/nta/models/default.nta-model`, as the Debian package and
///    the container image install it). First, so that an installed binary uses the model it was
///    installed with even when a checkout sits on the same machine; a binary in `target/` has
///    no such file and falls through to the repository's.
/// 2. The repository's `crates/predictor/models/default.nta-model`, next to this crate's
///    sources (a build from a checkout), then relative to the working directory.
/// 3. `/usr/share/nta/models/default.nta-model` itself, for a packaged model with a binary
///    copied elsewhere.
pub fn default_model_candidates() -> Vec<PathBuf> {
    const INSTALLED: &str = "share/nta/models/default.nta-model";
    let mut candidates = Vec::new();
    if let Some(prefix) = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf())) {
        candidates.push(prefix.join(INSTALLED));
    }
    candidates.extend([
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default.nta-model"),
        PathBuf::from("crates/predictor/models/default.nta-model"),
        PathBuf::from("models/default.nta-model"),
        Path::new("/usr").join(INSTALLED),
    ]);
    candidates
}

/// `YYYYMMDDTHHMMSSZ` of an epoch time.
fn compact_utc(epoch: i64) -> String {
    let (y, m, d, hh, mm, ss) = wire::time::civil(epoch);
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forest::ForestParams;
    use linfa::prelude::*;
    use std::collections::BTreeMap;

    fn window(view: View, size: u32, feats: &[(&str, Option<f64>)]) -> WindowRecord {
        WindowRecord {
            v: wire::BATCH_FORMAT_VERSION,
            view,
            key: "10.0.0.1".into(),
            window_start: 1_767_225_600,
            window_size: size,
            features: feats.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        }
    }

    /// Class 0 (Normal) when syn_rate_pps is low, 7 (syn_flood) when high.
    fn tiny_model() -> Model {
        let features = vec!["syn_rate_pps".to_string(), WINDOW_SIZE_FEATURE.to_string(), "avg_answer_size".to_string()];
        let mut rows = Vec::new();
        let mut y = Vec::new();
        for i in 0..200 {
            let attack = i % 2 == 1;
            let rate = if attack { 500.0 + i as f64 } else { i as f64 / 10.0 };
            rows.push(window(
                View::Destination,
                [5, 30, 180][i % 3],
                &[("syn_rate_pps", Some(rate)), ("avg_answer_size", None)],
            ));
            y.push(if attack { 7usize } else { 0 });
        }
        let x = feature_matrix(&features, &rows);
        assert!(x[[0, 2]].is_nan());
        assert_eq!(x[[1, 1]], 30.0);
        let forest =
            ForestParams { n_trees: 5, ..Default::default() }.fit(&Dataset::new(x, ndarray::Array1::from(y))).unwrap();
        let vm = ViewModel::new(features, forest).unwrap();
        Model::new(None, Some(vm), "test-data", serde_json::json!({"n_trees": 5}), serde_json::json!({"f1": 1.0}))
            .unwrap()
    }

    #[test]
    fn predicts_per_view_and_round_trips() {
        let m = tiny_model();
        assert!(m.model_version.len() == "20260101T000000Z-".len() + 12, "{}", m.model_version);
        let ws = vec![
            window(View::Destination, 5, &[("syn_rate_pps", Some(2000.0))]),
            window(View::Source, 5, &[("syn_rate_pps", Some(2000.0))]),
            window(View::Destination, 30, &[("syn_rate_pps", Some(0.5))]),
        ];
        let v = m.predict(&ws);
        let flood = v[0].as_ref().unwrap();
        assert_eq!(flood.label, "syn_flood");
        assert_eq!(flood.probabilities.len(), 9);
        assert!((flood.probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(v[1].is_none(), "no source forest: no verdict");
        assert_eq!(v[2].as_ref().unwrap().label, "Normal");
        assert_eq!(flood.probabilities_json(&m.classes)["syn_flood"], serde_json::json!(flood.confidence));

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.nta-model");
        m.save(&p).unwrap();
        let back = Model::load(&p).unwrap();
        assert_eq!(back.model_version, m.model_version);
        assert_eq!(back.params, m.params);
        assert_eq!(back.metrics, m.metrics);
        assert_eq!(back.content_hash().unwrap(), m.content_hash().unwrap());
        assert_eq!(back.predict(&ws), v);
    }

    #[test]
    fn shipped_model_passes_the_load_checks() {
        // Loading checks the forests' structure (RandomForest::check): the model in the
        // repository, made by the trainer, must pass them.
        let m = Model::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default.nta-model")).unwrap();
        assert!(m.source.is_some() || m.destination.is_some());
    }

    #[test]
    fn rejects_other_versions_garbage_and_identifiers() {
        let m = tiny_model();
        let mut bytes = m.to_bytes().unwrap();
        bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
        let e = Model::from_bytes(&bytes).unwrap_err();
        assert!(matches!(e, ModelError::Version { found: 7 }));
        assert!(e.to_string().contains("this build reads version 1"), "{e}");
        assert!(matches!(Model::from_bytes(b"PK\x03\x04 not a model"), Err(ModelError::NotAModel)));
        let good = m.to_bytes().unwrap();
        assert!(matches!(Model::from_bytes(&good[..good.len() / 2]), Err(ModelError::Decode(_))));
        let vm = m.destination.clone().unwrap();
        let mut feats = vm.features.clone();
        feats[0] = "src_port".into();
        assert!(ViewModel::new(feats, vm.forest.clone()).is_err());
        assert!(ViewModel::new(vec!["a".into()], vm.forest).is_err());
        assert_eq!(compact_utc(1_427_726_689), "20150330T144449Z");
    }

    #[test]
    fn names_features_windows_never_carry() {
        let vm = tiny_model().destination.unwrap();
        // `syn_rate_pps` is a source-view feature; destination windows carry `syn_in_rate_pps`.
        assert_eq!(vm.unknown_features(View::Destination), ["syn_rate_pps", "avg_answer_size"]);
        assert!(vm.unknown_features(View::Source).is_empty());
    }
}
