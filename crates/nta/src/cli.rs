//! Command-line interface of the `nta` binary.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "nta", version, about = "Network traffic analyzer with ML intrusion detection")]
pub struct Cli {
    /// TOML configuration file (flags and NTA_* environment variables override it).
    #[arg(long, global = true, env = "NTA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `agent=debug,info`.
    #[arg(long, global = true, env = "NTA_LOG", default_value = "info,async_nats=warn")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one or more roles (`--target agent --target ingestor`, or `--target all`).
    Run(Box<RunArgs>),
    /// Decode a capture file into one record per frame.
    Decode(DecodeArgs),
    /// Offline analysis of a capture (no NATS, no PostgreSQL): per-key windows and features.
    Analyze(AnalyzeArgs),
    /// Train the random forests on lab captures (see infra/lab) and evaluate them.
    Train(TrainArgs),
    /// Benchmarks (throughput figures, compared with a reference in the same run).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Agent,
    Ingestor,
    Windower,
    Predictor,
    Dashboard,
    All,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Roles to run in this process; repeat or comma-separate. `all` = every role.
    #[arg(long = "target", short = 't', value_delimiter = ',', required = true)]
    pub targets: Vec<Target>,
    /// NATS server URL [default: nats://127.0.0.1:4222]
    #[arg(long, env = "NTA_NATS_URL")]
    pub nats_url: Option<String>,
    /// PostgreSQL URL; the database is created if missing [default: postgres://postgres@127.0.0.1:5432/nta]
    #[arg(long, env = "NTA_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Address serving Prometheus metrics [default: 127.0.0.1:9464]
    #[arg(long, env = "NTA_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    #[command(flatten)]
    pub agent: AgentArgs,
    #[command(flatten)]
    pub ingestor: IngestorArgs,
    #[command(flatten)]
    pub windower: WindowerArgs,
    #[command(flatten)]
    pub predictor: PredictorArgs,
    /// Dashboard listen address [default: 127.0.0.1:8080]. Log in with NTA_DASHBOARD_PASSWORD
    /// (browsers) or NTA_DASHBOARD_TOKEN (API clients, `Authorization: Bearer`).
    #[arg(long, env = "NTA_DASHBOARD_ADDR", help_heading = "Dashboard")]
    pub listen: Option<SocketAddr>,
    #[command(flatten)]
    pub stream: StreamArgs,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Predictor")]
pub struct PredictorArgs {
    /// Model file [default: $NTA_MODEL, else crates/predictor/models/default.nta-model]
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Durable consumer shared by predictor replicas [default: nta-predictor]
    #[arg(long)]
    pub predictor_durable: Option<String>,
    /// Smallest model confidence that raises an alert [default: 0.7]
    #[arg(long)]
    pub min_confidence: Option<f64>,
    /// An alert with no new window for this long (s) is closed [default: 300]
    #[arg(long)]
    pub alert_quiet_s: Option<u64>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Windower")]
pub struct WindowerArgs {
    /// Durable consumer of the windower (one windower per name) [default: nta-windower]
    #[arg(long)]
    pub windower_durable: Option<String>,
    /// Allowed lateness behind each agent's newest packet, in ms [default: 2000]
    #[arg(long)]
    pub allowed_lateness_ms: Option<u64>,
    /// An agent silent this long (s) stops holding windows back [default: 30]
    #[arg(long)]
    pub idle_agent_timeout_s: Option<u64>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AnalyzeFormat {
    Text,
    Jsonl,
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Capture file (pcap or pcapng).
    pub file: PathBuf,
    #[arg(long, value_enum, default_value = "text")]
    pub format: AnalyzeFormat,
    /// With jsonl: add a `features` object with every feature by name.
    #[arg(long)]
    pub features: bool,
    /// Model file [default: $NTA_MODEL, else the shipped default model]
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Output file [default: stdout]
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Agent")]
pub struct AgentArgs {
    /// Live capture interface (libpcap name, e.g. eth0).
    #[arg(long, short = 'i', env = "NTA_INTERFACE", conflicts_with = "read")]
    pub interface: Option<String>,
    /// Read frames from a pcap/pcapng file instead of an interface; exits once all is acknowledged.
    #[arg(long, short = 'r')]
    pub read: Option<PathBuf>,
    /// With --read: pace the replay by the capture's timestamps instead of as fast as possible.
    #[arg(long, requires = "read")]
    pub realtime: bool,
    /// BPF capture filter (live capture).
    #[arg(long)]
    pub bpf: Option<String>,
    /// Bytes captured per frame [default: 65535]
    #[arg(long)]
    pub snaplen: Option<i32>,
    /// Put the interface in promiscuous mode.
    #[arg(long)]
    pub promisc: bool,
    /// Agent id (subject nta.packets.<id>) [default: host name]
    #[arg(long, env = "NTA_AGENT_ID")]
    pub agent_id: Option<String>,
    /// Records per batch [default: 500]
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Longest time a partial batch waits, in ms [default: 1000]
    #[arg(long)]
    pub batch_timeout_ms: Option<u64>,
    /// In-memory send queue budget in MB (fractions allowed); the oldest batches are dropped beyond it [default: 128]
    #[arg(long)]
    pub queue_mb: Option<f64>,
    /// Publications awaiting their PubAck at once [default: 64]
    #[arg(long)]
    pub max_pending_acks: Option<usize>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Ingestor")]
pub struct IngestorArgs {
    /// Durable consumer name shared by all ingestor replicas (their rollup worker uses NAME-rollup) [default: nta-ingestor]
    #[arg(long)]
    pub ingestor_durable: Option<String>,
    /// Drop raw_packets day partitions older than this many days; unset or 0 keeps everything
    #[arg(long, env = "NTA_RETENTION_DAYS")]
    pub retention_days: Option<u32>,
    /// Batches written per transaction [default: 16]
    #[arg(long)]
    pub batches_per_txn: Option<usize>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Stream (applied when the stream is created)")]
pub struct StreamArgs {
    /// NTA_PACKETS maximum age in hours [default: 168]
    #[arg(long)]
    pub stream_max_age_hours: Option<u64>,
    /// NTA_PACKETS / NTA_WINDOWS maximum size in GB [default: 10 GiB, less if JetStream cannot reserve it]
    #[arg(long)]
    pub stream_max_gb: Option<f64>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DecodeFormat {
    Jsonl,
    Msgpack,
}

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// Capture file (pcap or pcapng).
    pub file: PathBuf,
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: DecodeFormat,
    /// Output file [default: stdout]
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Lab run directories (each with labels.jsonl and captures/); repeat for several runs.
    #[arg(long = "lab", required = true)]
    pub labs: Vec<PathBuf>,
    /// Model file to write.
    #[arg(long, short = 'o', default_value = "crates/predictor/models/default.nta-model")]
    pub output: PathBuf,
    /// Directory for the evaluation report (report.md, report.json).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Also write the labelled examples as CSV (source.csv, destination.csv) for scikit-learn.
    #[arg(long)]
    pub export_csv: Option<PathBuf>,
    #[arg(long, default_value_t = 100)]
    pub trees: usize,
    #[arg(long, default_value_t = 20)]
    pub max_depth: usize,
    /// Smallest leaf: larger leaves give smoother, less over-confident probabilities.
    #[arg(long, default_value_t = 1)]
    pub min_samples_leaf: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Decode + MessagePack encode throughput on one core.
    Decode {
        /// Capture to decode; without it a synthetic capture of --frames frames is generated.
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long, default_value_t = 2_000_000)]
        frames: usize,
    },
    /// Window features + cascade throughput on one core, and peak memory with many sources.
    Windows {
        #[arg(long, default_value_t = 4_000_000)]
        packets: usize,
        /// Distinct sources in the throughput stream (the 1 M spoofed-source memory case runs
        /// after it unless NTA_BENCH_SKIP_SPOOFED=1).
        #[arg(long, default_value_t = 1000)]
        sources: usize,
    },
    /// Write a synthetic capture for benchmarks.
    GenPcap {
        #[arg(long, default_value_t = 2_000_000)]
        frames: usize,
        #[arg(long, short = 'o')]
        output: PathBuf,
    },
    /// Ingestor write path (ledger + binary COPY) into a throw-away database.
    Ingest {
        #[arg(long, default_value_t = 2_000_000)]
        rows: usize,
        /// Server to benchmark against (a temporary database is created and dropped).
        #[arg(long, env = "NTA_DATABASE_URL")]
        database_url: Option<String>,
    },
}
