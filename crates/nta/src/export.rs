//! `nta export-pcap`: a thin wrapper over the `forensics` crate with a progress bar on stderr.

use anyhow::{Context, Result};
use std::io::Write;

use crate::cli::ExportArgs;
use crate::config::NtaConfig;

pub async fn export_pcap(args: ExportArgs, cfg: &NtaConfig) -> Result<()> {
    let time = |what: &str, v: &Option<String>| v.as_deref().map(|t| forensics::parse_time(what, t)).transpose();
    let req = forensics::ExportRequest {
        from_ns: time("--from", &args.from)?,
        to_ns: time("--to", &args.to)?,
        host: args.host,
        port: args.port,
        bpf: args.bpf.clone(),
        agent: args.agent.clone(),
        alert: args.alert,
        max_bytes: None,
        max_range_ns: None,
    };
    let nats = cfg.nats();
    let js = bus::frames::connect(&nats, "nta-export-pcap", std::time::Duration::from_secs(15)).await?;
    let db = match args.alert {
        Some(_) => Some(store::open(&cfg.database_url).await.context("connecting to PostgreSQL for --alert")?),
        None => None,
    };
    // Written to a temporary file renamed at the end: a failed export leaves no partial pcap.
    let tmp = args.output.with_extension("pcap.partial");
    let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    let result = forensics::export(&js, db.as_ref(), &req, &mut out, |p| match p {
        forensics::Progress::Scanning { scanned } => bar.set_message(format!("scanning: {scanned} batches")),
        forensics::Progress::Fetching { fetched, total } => {
            if bar.length() != Some(total) {
                bar.set_style(
                    indicatif::ProgressStyle::with_template("fetching frames {bar:30} {pos}/{len} batches")
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                bar.set_length(total);
            }
            bar.set_position(fetched);
        }
    })
    .await;
    bar.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            drop(out);
            let _ = std::fs::remove_file(&tmp);
            return Err(anyhow::anyhow!("{e}"));
        }
    };
    out.flush().context("writing the pcap")?;
    drop(out);
    std::fs::rename(&tmp, &args.output).with_context(|| format!("writing {}", args.output.display()))?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    eprintln!(
        "{}: {} frames ({} bytes, {}) captured {} to {}{}; scanned {} batch headers, fetched {} bodies ({} bytes) \
         of a stream of {} messages ({} bytes)",
        args.output.display(),
        report.frames_written,
        report.bytes_written,
        report.format,
        wire::time::format_ns(report.from_ns),
        wire::time::format_ns(report.to_ns),
        report.host.map(|h| format!(", host {h}")).unwrap_or_default(),
        report.batches_scanned,
        report.bodies_fetched,
        report.bytes_fetched,
        report.stream_messages,
        report.stream_bytes,
    );
    Ok(())
}
