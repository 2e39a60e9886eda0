//! Configuration: flags > environment (`NTA_*`) > TOML file (`--config`) > defaults.
//!
//! Clap handles flags and environment; every value it leaves unset falls back to the file,
//! then to the built-in default, so one setting has exactly one name in each place.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;

pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/nta";
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";

/// The optional TOML file. Keys mirror the long flag names (with `_`), grouped by role.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub nats_url: Option<String>,
    pub database_url: Option<String>,
    pub metrics_addr: Option<SocketAddr>,
    #[serde(default)]
    pub agent: AgentFile,
    #[serde(default)]
    pub ingestor: IngestorFile,
    #[serde(default)]
    pub windower: WindowerFile,
    #[serde(default)]
    pub predictor: PredictorFile,
    #[serde(default)]
    pub stream: StreamFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictorFile {
    pub model: Option<std::path::PathBuf>,
    pub durable: Option<String>,
    pub min_confidence: Option<f64>,
    pub alert_quiet_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowerFile {
    pub durable: Option<String>,
    pub allowed_lateness_ms: Option<u64>,
    pub idle_agent_timeout_s: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFile {
    pub agent_id: Option<String>,
    pub interface: Option<String>,
    pub bpf: Option<String>,
    pub snaplen: Option<i32>,
    pub promisc: Option<bool>,
    pub batch_size: Option<usize>,
    pub batch_timeout_ms: Option<u64>,
    pub queue_mb: Option<f64>,
    pub max_pending_acks: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestorFile {
    pub durable: Option<String>,
    pub retention_days: Option<u32>,
    pub batches_per_txn: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamFile {
    pub max_age_hours: Option<u64>,
    pub max_gb: Option<f64>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> Result<FileConfig> {
        let Some(path) = path else { return Ok(FileConfig::default()) };
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grouped_file_and_rejects_typos() {
        let c: FileConfig = toml::from_str(
            "nats_url = 'nats://x:1'\n[agent]\ninterface = 'eth0'\nbatch_size = 100\n[ingestor]\nretention_days = 3\n",
        )
        .unwrap();
        assert_eq!(c.agent.interface.as_deref(), Some("eth0"));
        assert_eq!(c.ingestor.retention_days, Some(3));
        assert!(toml::from_str::<FileConfig>("[agent]\ninterfac = 'eth0'\n").is_err());
    }
}
