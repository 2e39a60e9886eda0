//! Classification of windows: the random forest, training and (next) the predictor service.

pub mod forest;

pub use forest::{ForestParams, MaxFeatures, RandomForest};
pub mod train;
