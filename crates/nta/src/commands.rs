//! Dispatch of subcommands to the crates that do the work.

use anyhow::{Context, Result};
use std::io::Write;

use crate::cli::{BenchCommand, Cli, Command, DecodeArgs, DecodeFormat, StreamsArgs};
use crate::config::NtaConfig;

pub async fn dispatch(cli: Cli, cfg: NtaConfig) -> Result<()> {
    match cli.command {
        Command::Run(args) => crate::run::run(crate::run::resolve(args, cfg)?).await,
        Command::Config(args) => {
            crate::config::print(&cfg, args.markdown);
            Ok(())
        }
        Command::Decode(args) => tokio::task::spawn_blocking(move || decode(args)).await?,
        Command::Train(args) => tokio::task::spawn_blocking(move || crate::train::train(args)).await?,
        Command::Analyze(args) => tokio::task::spawn_blocking(move || crate::analyze::analyze(args)).await?,
        Command::Streams(args) => streams(args, &cfg.nats()).await,
        Command::Rescore(args) => crate::rescore::rescore(args, cfg).await,
        Command::ExportPcap(args) => crate::export::export_pcap(args, &cfg).await,
        Command::Nkey { file } => {
            println!("{}", bus::connect::create_nkey_user(&file)?);
            Ok(())
        }
        Command::Bench(BenchCommand::Windows { packets, sources }) => {
            let report = tokio::task::spawn_blocking(move || bench::run_window_bench(packets, sources)).await?;
            println!("{report}");
            Ok(())
        }
        Command::Bench(BenchCommand::Decode { file, frames }) => {
            let report =
                tokio::task::spawn_blocking(move || bench::run_decode_bench(frames, file.as_deref())).await??;
            println!("{report}");
            Ok(())
        }
        Command::Bench(BenchCommand::GenPcap { frames, output }) => {
            tokio::task::spawn_blocking(move || bench::generate_capture(&output, frames)).await??;
            Ok(())
        }
        Command::Bench(BenchCommand::Notify { events, interval_ms, timeout_s }) => {
            let opts = bench::NotifyBenchOptions {
                events: events.max(1),
                interval: std::time::Duration::from_millis(interval_ms),
                nta_bin: std::env::current_exe().context("locating the nta binary")?,
                timeout: std::time::Duration::from_secs(timeout_s),
            };
            println!("{}", bench::run_notify_bench(&opts).await?);
            Ok(())
        }
        Command::Bench(BenchCommand::Ingest { rows, database_url }) => {
            let url = database_url.unwrap_or(cfg.database_url);
            println!("{}", bench::run_ingest_bench(&url, rows).await?);
            Ok(())
        }
        Command::Bench(BenchCommand::E2e {
            frames,
            file,
            runs,
            no_stages,
            no_copy_reference,
            separate,
            timeout_s,
            database_url,
        }) => {
            let opts = bench::E2eOptions {
                frames,
                file,
                database_url: database_url.unwrap_or(cfg.database_url),
                // The roles measured are this binary's.
                nta_bin: std::env::current_exe().context("locating the nta binary")?,
                runs,
                stages: !no_stages,
                separate,
                copy_reference: !no_copy_reference,
                timeout: std::time::Duration::from_secs(timeout_s),
            };
            println!("{}", bench::run_e2e_bench(&opts).await?);
            Ok(())
        }
        Command::Bench(BenchCommand::Rescore {
            history_frames,
            live_frames,
            rounds,
            max_records_per_s,
            timeout_s,
            database_url,
        }) => {
            let opts = bench::RescoreBenchOptions {
                history_frames,
                live_frames,
                rounds,
                max_records_per_s,
                model: predictor::model::default_model_path()?,
                database_url: database_url.unwrap_or(cfg.database_url),
                nta_bin: std::env::current_exe().context("locating the nta binary")?,
                timeout: std::time::Duration::from_secs(timeout_s),
            };
            println!("{}", bench::run_rescore_bench(&opts).await?);
            Ok(())
        }
    }
}

/// `nta streams`: the report, after the replica change if one is asked for.
async fn streams(args: StreamsArgs, nats: &bus::Nats) -> Result<()> {
    // An administrator's command: fail rather than wait for NATS as the roles do.
    let client = tokio::time::timeout(std::time::Duration::from_secs(15), bus::connect(nats, "nta-streams"))
        .await
        .with_context(|| format!("NATS at {} not reachable", nats.redacted_url()))??;
    if let Some(n) = args.replicas {
        for change in bus::streams::set_replicas(&client, n, args.stream.as_deref()).await? {
            println!("{change}");
        }
    }
    for name in &args.reset_consumers {
        println!("{}", bus::streams::reset_consumer(&client, name).await?);
    }
    print!("{}", bus::streams::report(&client).await?);
    Ok(())
}

fn decode(args: DecodeArgs) -> Result<()> {
    let format = match args.format {
        DecodeFormat::Jsonl => agent::offline::OutputFormat::Jsonl,
        DecodeFormat::Msgpack => agent::offline::OutputFormat::Msgpack,
    };
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::with_capacity(1 << 16, &mut out);
    let stats = agent::offline::decode_file(&args.file, format, &mut out)?;
    out.flush()?;
    // Keep stdout for records only; the tally goes to stderr.
    eprintln!("{} frames: {} decoded, {} malformed (skipped)", stats.frames, stats.decoded, stats.malformed);
    if let Some(e) = &stats.file_error {
        eprintln!("warning: the capture file ends with an error after frame {}: {e}", stats.frames);
    }
    Ok(())
}
