//! Classification of windows: the random forest ([`forest`]), the model file ([`model`]), the
//! rule baselines ([`rules`]) and the predictor service ([`service`]). See `README.md` in this
//! crate for the rule thresholds and the alert lifecycle. Training (lab captures -> model file)
//! is the `train` crate (`crates/train`), so the service links no capture code.

pub mod decide;
pub mod forest;
pub mod model;
pub mod rules;
pub mod service;

pub use forest::{ForestParams, MaxFeatures, RandomForest};
pub use model::{Model, ModelError, Verdict, ViewModel, CLASSES};
pub use rules::{RuleHit, RuleThresholds};
pub use service::{resolve_alert, PredictorServiceConfig};
