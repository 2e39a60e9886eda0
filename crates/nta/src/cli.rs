//! Command-line interface of the `nta` binary.

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "nta", version, about = "Network traffic analyzer with ML intrusion detection")]
pub struct Cli {
    /// TOML configuration file (NTA_* environment variables and flags override it).
    #[arg(long, global = true, env = "NTA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `agent=debug,info`; the `log`
    /// setting [env: NTA_LOG] [default: info,async_nats=warn]
    #[arg(long, global = true)]
    pub log: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// The command line: the derived one plus a flag per setting on `run` and `config`.
pub fn command() -> clap::Command {
    let cmd = Cli::command();
    // Settings whose flag the derived command already has (`--log`) keep it.
    let taken: Vec<String> = cmd.get_arguments().map(|a| a.get_id().to_string()).collect();
    cmd.mut_subcommand("run", |c| {
        crate::config::with_flags(c, &taken).mut_arg("read", |a| a.conflicts_with("agent.interface"))
    })
    .mut_subcommand("config", |c| crate::config::with_flags(c, &taken))
    .mut_subcommand("streams", |c| crate::config::with_flags(c, &crate::config::all_but_nats(&taken)))
    .mut_subcommand("rescore", |c| crate::config::with_flags(c, &crate::config::rescore_skips(&taken)))
    .mut_subcommand("export-pcap", |c| {
        let mut skip = crate::config::all_but_nats(&taken);
        skip.retain(|k| k != "database_url");
        crate::config::with_flags(c, &skip)
    })
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one or more roles (`--target agent --target ingestor`, or `--target all`).
    Run(RunArgs),
    /// Print the effective configuration (defaults < file < environment < flags) as TOML,
    /// secrets redacted; with --markdown, the reference table of every setting.
    Config(ConfigArgs),
    /// Decode a capture file into one record per frame.
    Decode(DecodeArgs),
    /// Offline analysis of a capture (no NATS, no PostgreSQL): per-key windows and features.
    Analyze(AnalyzeArgs),
    /// Train the random forests on lab captures (see infra/lab) and evaluate them.
    Train(TrainArgs),
    /// Create an NKey user for a role's NATS login: the seed goes to FILE (readable by its owner
    /// only; give it to the role as nats.nkey / NTA_NATS_NKEY), the public key to stdout (for
    /// the server's configuration, see infra/nats/nats-server.conf).
    Nkey { file: std::path::PathBuf },
    /// NTA's JetStream streams: replicas and where they are (leader, followers, lag), messages,
    /// bytes, limits, discard policy. With --replicas N, change the replica count of the
    /// existing streams (new ones get `stream.replicas`).
    Streams(StreamsArgs),
    /// Re-score the packets retained in NTA_PACKETS for a capture time range with another model,
    /// into a named run (never the live alerts), and compare its alerts with the live ones.
    Rescore(RescoreArgs),
    /// Write the frames kept on NTA_FRAMES for a time range (or an alert) to a pcap file
    /// (pcapng when several link types or agents meet), filtered by host, port and BPF.
    ExportPcap(ExportArgs),
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
    /// Alert notifications (webhook, Telegram, syslog, e-mail); part of `all` only when an
    /// output is configured.
    Notifier,
    All,
}

impl Target {
    /// Port of the metrics endpoint when `metrics_addr` is not set: one per role, so that
    /// roles started as separate processes on one host do not collide; the process running
    /// several roles (or `all`) keeps 9464.
    pub fn metrics_port(targets: &[Target]) -> u16 {
        match targets {
            [Target::Agent] => 9465,
            [Target::Ingestor] => 9466,
            [Target::Windower] => 9467,
            [Target::Predictor] => 9468,
            [Target::Dashboard] => 9469,
            [Target::Notifier] => 9470,
            _ => 9464,
        }
    }
}

// `nta run`; the settings' flags are added by `command()`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Roles to run in this process; repeat or comma-separate. `all` = every role.
    #[arg(long = "target", short = 't', value_delimiter = ',', required = true)]
    pub targets: Vec<Target>,
    /// Read frames from a pcap/pcapng file instead of an interface; the agent exits once all is acknowledged.
    #[arg(long, short = 'r', help_heading = "Agent")]
    pub read: Option<PathBuf>,
    /// With --read: pace the replay by the capture's timestamps instead of as fast as possible.
    #[arg(long, requires = "read", help_heading = "Agent")]
    pub realtime: bool,
}

// `nta config`; the settings' flags are added by `command()`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print the table of every setting (TOML key, flag, environment variable, default, meaning)
    /// as Markdown, as in the README.
    #[arg(long)]
    pub markdown: bool,
}

// `nta streams`; the NATS settings' flags are added by `command()`.
#[derive(Debug, Args)]
pub struct StreamsArgs {
    /// Set the replica count (1 to 5; at most the cluster's size) of NTA's existing streams.
    #[arg(long)]
    pub replicas: Option<usize>,
    /// With --replicas: only this stream (NTA_PACKETS, NTA_WINDOWS, NTA_DEADLETTER or NTA_FRAMES).
    #[arg(long, requires = "replicas")]
    pub stream: Option<String>,
    /// Delete this durable consumer (repeatable; e.g. nta-ingestor) with the roles that use it
    /// stopped: they create it again at the start of the stream and read everything retained,
    /// skipping what is stored (after a database restore; see Backing up).
    #[arg(long = "reset-consumer", value_name = "DURABLE")]
    pub reset_consumers: Vec<String>,
}

// `nta rescore`; the settings' flags are added by `command()`.
#[derive(Debug, Args)]
pub struct RescoreArgs {
    /// Start of the capture time range: RFC 3339 (2026-11-30T05:00:00Z) or epoch seconds.
    #[arg(long, required_unless_present = "delete")]
    pub from: Option<String>,
    /// End of the range (included), as --from.
    #[arg(long, required_unless_present = "delete")]
    pub to: Option<String>,
    /// Model file to score with.
    #[arg(long, required_unless_present = "delete")]
    pub model: Option<PathBuf>,
    /// Name of the run (1-64 of A-Z a-z 0-9 _ . -); a rerun of a name replaces its results.
    #[arg(long, required_unless_present = "delete")]
    pub run: Option<String>,
    /// Only the packets of this agent (subject nta.packets.<ID>).
    #[arg(long)]
    pub agent: Option<String>,
    /// Delete the run NAME and its results instead.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["from", "to", "model", "run", "agent"])]
    pub delete: Option<String>,
    /// Print the comparison as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

// `nta export-pcap`; the NATS and database settings' flags are added by `command()`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Start of the capture-time range: RFC 3339 (2026-11-30T05:00:00Z) or epoch seconds.
    #[arg(long)]
    pub from: Option<String>,
    /// End of the range (included), same forms.
    #[arg(long)]
    pub to: Option<String>,
    /// Frames whose outermost IP header has this source or destination.
    #[arg(long)]
    pub host: Option<std::net::IpAddr>,
    /// Frames whose TCP or UDP header has this source or destination port.
    #[arg(long)]
    pub port: Option<u16>,
    /// A libpcap filter expression (as tcpdump takes), ANDed with the others.
    #[arg(long)]
    pub bpf: Option<String>,
    /// Only this agent's frames.
    #[arg(long)]
    pub agent: Option<String>,
    /// An alert's frames: its address as --host, its first to last seen as the range.
    #[arg(long)]
    pub alert: Option<i64>,
    /// Output file.
    #[arg(short, long)]
    pub output: std::path::PathBuf,
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
    /// Captures of ordinary traffic (files, or directories read recursively for .pcap, .pcapng
    /// and .cap files) on which the new model must raise no alert: the report lists any it raises.
    #[arg(long)]
    pub benign: Vec<PathBuf>,
    /// The alert decision replayed by the report (the predictor's settings of the same names).
    #[arg(long, default_value_t = predictor::decide::MIN_CONFIDENCE)]
    pub min_confidence: f64,
    #[arg(long, default_value_t = predictor::decide::SUSTAIN_CONFIDENCE)]
    pub sustain_confidence: f64,
    /// Captures of ordinary traffic (files or directories, as --benign) used as Normal training
    /// data: every window of them is Normal; a quarter of the files is held out for evaluation.
    #[arg(long)]
    pub normal: Vec<PathBuf>,
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
    /// Alert-to-notification latency (p50/p95): alert events into a private NTA_ALERTS, an `nta`
    /// notifier process, a local webhook receiver.
    Notify {
        #[arg(long, default_value_t = 200)]
        events: usize,
        /// Milliseconds between two events.
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
        #[arg(long, default_value_t = 120)]
        timeout_s: u64,
    },
    /// Ingestor write path (ledger + binary COPY) into a throw-away database.
    Ingest {
        #[arg(long, default_value_t = 2_000_000)]
        rows: usize,
        /// Server to benchmark against (a temporary database is created and dropped)
        /// [default: the `database_url` setting]
        #[arg(long)]
        database_url: Option<String>,
    },
    /// The whole stack end to end (agent -> NATS -> ingestor, windower, predictor -> PostgreSQL) as
    /// `nta` processes on a private nats-server and a throw-away database; checks every count.
    E2e {
        #[arg(long, default_value_t = bench::e2e::DEFAULT_FRAMES)]
        frames: usize,
        /// Capture to replay; without it a synthetic capture of --frames frames is generated.
        #[arg(long)]
        file: Option<PathBuf>,
        /// End-to-end repetitions (each on a fresh nats-server and database); the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Skip the per-stage reference figures (each stage alone on a full stream).
        #[arg(long)]
        no_stages: bool,
        /// Skip PostgreSQL's own COPY of the stored rows (reference).
        #[arg(long)]
        no_copy_reference: bool,
        /// Ingestor, windower and predictor as three processes instead of one.
        #[arg(long)]
        separate: bool,
        /// Give up on a phase after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout_s: u64,
        /// Server to run against (a database per run is created and dropped)
        /// [default: the `database_url` setting]
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Live ingestor + windower throughput with and without a concurrent `nta rescore` of a
    /// stored history (private nats-server, throw-away database).
    Rescore {
        #[arg(long, default_value_t = 2_000_000)]
        history_frames: usize,
        #[arg(long, default_value_t = 500_000)]
        live_frames: usize,
        /// Pairs of live phases (alone, then with a rescore).
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Rate cap of the rescore (records/s; 0: none).
        #[arg(long, default_value_t = 0)]
        max_records_per_s: u64,
        /// Give up on a phase after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout_s: u64,
        /// [default: the `database_url` setting]
        #[arg(long)]
        database_url: Option<String>,
    },
}
