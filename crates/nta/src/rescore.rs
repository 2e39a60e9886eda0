//! `nta rescore`: runs the `rescore` crate and prints the run's comparison with live alerts;
//! `nta rescore --delete NAME` deletes a run.

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::cli::RescoreArgs;
use crate::config::NtaConfig;

pub async fn rescore(args: RescoreArgs, mut cfg: NtaConfig) -> Result<()> {
    cfg.share();
    if let Some(name) = &args.delete {
        store::runs::validate_name(name).map_err(anyhow::Error::msg)?;
        let db = store::open(&cfg.database_url).await?;
        if !store::runs::delete_run(&db, name).await? {
            bail!("no run named {name:?}");
        }
        println!("deleted run {name}");
        return Ok(());
    }
    let (Some(from), Some(to), Some(model), Some(run)) = (args.from, args.to, args.model, args.run) else {
        bail!("--from, --to, --model and --run are required");
    };
    let req = rescore::Request {
        run,
        model,
        from: rescore::parse_time(&from).context("--from")?,
        to: rescore::parse_time(&to).context("--to")?,
        agent: args.agent,
    };
    rescore::validate(&req)?;
    let out = rescore::rescore(&cfg.rescore, &req).await?;
    let c = &out.counts;
    eprintln!(
        "run {}: model {}; {} batches read ({} undecodable), {} records in the range ({} late), {} windows, \
         {} alerts in {:.1} s",
        req.run,
        out.model_version,
        c.messages,
        out.malformed_batches,
        c.records,
        c.late_records,
        c.windows,
        c.alerts,
        out.elapsed.as_secs_f64()
    );
    // Only when the stream has let messages go (its first sequence is past 1); store time says
    // nothing about capture time (a replayed capture), so only a note.
    if out.stream.first_seq > 1 && out.stream.first_stored > 0 && req.from < out.stream.first_stored as f64 {
        eprintln!(
            "note: {} holds batches stored since {}; packets of the range stored before that are no longer retained",
            bus::PACKETS_STREAM,
            time(&serde_json::json!(out.stream.first_stored))
        );
    }
    let db = store::open(&cfg.database_url).await?;
    let cmp = store::runs::comparison(&db, &req.run).await?.context("the run vanished")?;
    if args.json {
        println!("{cmp}");
    } else {
        print!("{}", table(&cmp));
    }
    Ok(())
}

/// Per class counts, then the alerts only in the run and only live.
fn table(c: &Value) -> String {
    let mut s = format!(
        "alerts: {} in the run, {} live in the range\n{:<12} {:>8} {:>9} {:>5}\n",
        c["run_alerts"], c["live_alerts"], "class", "run only", "live only", "both"
    );
    for (class, n) in c["per_class"].as_object().into_iter().flatten() {
        s += &format!(
            "{:<12} {:>8} {:>9} {:>5}\n",
            text(&Value::String(class.clone())),
            n["run_only"].as_u64().unwrap_or(0),
            n["live_only"].as_u64().unwrap_or(0),
            n["both"].as_u64().unwrap_or(0)
        );
    }
    for (title, list, id) in [("only in the run", "run_only", "seq"), ("only live", "live_only", "id")] {
        let list = c[list].as_array().map(Vec::as_slice).unwrap_or_default();
        if list.is_empty() {
            continue;
        }
        s += &format!("{title}:\n");
        for a in list {
            s += &format!(
                "  {:<8} {:<11} {:<12} {:<40} {} .. {}  {} {}\n",
                text(&a["severity"]),
                text(&a["view"]),
                text(&a["class"]),
                text(&a["key"]),
                time(&a["first_seen"]),
                time(&a["last_seen"]),
                if id == "seq" { "run alert" } else { "alert id" },
                a[id]
            );
        }
    }
    s
}

/// A string field with control characters escaped (keys come from captured traffic).
fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().chars().flat_map(char::escape_default).collect::<String>()
}

fn time(v: &Value) -> String {
    let (y, m, d, hh, mm, ss) = wire::time::civil(v.as_f64().unwrap_or(0.0).floor() as i64);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
}
