//! `nta`: one binary, roles chosen by `--target` (see the README).

mod alloc;
mod analyze;
mod cli;
mod commands;
mod config;
mod export;
mod metrics;
mod report;
mod rescore;
mod run;
mod train;

use clap::FromArgMatches;

fn main() -> std::process::ExitCode {
    alloc::tune();
    let matches = cli::command().get_matches();
    let cli = cli::Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let cfg = match config::load(cli.config.as_deref(), &matches) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cfg.log).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr);
    match cfg.log_format {
        config::LogFormat::Text => logs.init(),
        config::LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match rt.block_on(commands::dispatch(cli, cfg)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
