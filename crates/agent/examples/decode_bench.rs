//! Runs the decode benchmark without the `nta` CLI:
//!   cargo run --release -p agent --example decode_bench -- [--frames N] [--file F] [--gen OUT]
//! `--gen OUT` only writes a synthetic capture of N frames to OUT.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut frames = agent::bench::DEFAULT_FRAMES;
    let mut file: Option<PathBuf> = None;
    let mut gen: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))
        };
        match a.as_str() {
            "--frames" => frames = val()?.parse()?,
            "--file" => file = Some(val()?.into()),
            "--gen" | "-o" => gen = Some(val()?.into()),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    if let Some(out) = gen {
        agent::bench::generate_capture(&out, frames)?;
        println!("wrote {frames} frames to {}", out.display());
        return Ok(());
    }
    print!(
        "{}",
        agent::bench::run_decode_bench(frames, file.as_deref())?
    );
    Ok(())
}
