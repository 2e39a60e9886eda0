//! Classification of windows: the random forest ([`forest`]), the model file ([`model`]), the
//! rule baselines ([`rules`]) and the predictor service ([`service`]). See `README.md` in this
//! crate for the rule thresholds and the alert lifecycle.

pub mod forest;
pub mod model;
pub mod rules;
pub mod service;
pub mod train;

pub use forest::{ForestParams, MaxFeatures, RandomForest};
pub use model::{Model, ModelError, Verdict, ViewModel, CLASSES};
pub use rules::{RuleHit, RuleThresholds};
pub use service::{resolve_alert, PredictorServiceConfig};
