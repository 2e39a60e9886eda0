//! `nta train`: lab captures -> labelled windows -> forests -> model file and report.

use anyhow::{Context, Result};
use predictor::model::{Model, ViewModel};
use predictor::ForestParams;
use train::{self as tr, CLASSES};
use wire::View;

use crate::cli::TrainArgs;

pub fn train(args: TrainArgs) -> Result<()> {
    let mut intervals = tr::lab::load(&args.labs)?;
    intervals.extend(tr::lab::normal_captures(&capture_files(&args.normal)?));
    let t = std::time::Instant::now();
    let data = tr::build(&intervals, &windower::WindowerConfig::default())?;
    eprintln!(
        "{} labelled intervals; {} source and {} destination windows in {:.1} s",
        intervals.len(),
        data.source.y.len(),
        data.destination.y.len(),
        t.elapsed().as_secs_f64()
    );
    let test = tr::held_out(&data.variation_class);
    eprintln!("held out {} of {} variations: {:?}", test.len(), data.variation_class.len(), test);
    if let Some(dir) = &args.export_csv {
        std::fs::create_dir_all(dir)?;
        tr::export_csv(&data.source, &test, &dir.join("source.csv"))?;
        tr::export_csv(&data.destination, &test, &dir.join("destination.csv"))?;
    }
    let params = ForestParams {
        n_trees: args.trees,
        max_depth: args.max_depth,
        min_samples_leaf: args.min_samples_leaf,
        seed: args.seed,
        ..Default::default()
    };
    let hash = tr::data_hash(&data);
    let mut report = format!(
        "# NTA model evaluation\n\nTraining data hash `{hash}`; {} variations, {} held out (split by variation, never by window): {:?}\n\n",
        data.variation_class.len(),
        test.len(),
        test
    );
    let mut views: Vec<Option<ViewModel>> = Vec::new();
    let mut metrics = serde_json::Map::new();
    for (view, ex) in [(View::Source, &data.source), (View::Destination, &data.destination)] {
        let Some(m) = tr::train_view(ex, &test, &params)? else {
            report += &format!("### {} view\n\nno training data\n\n", view.as_str());
            views.push(None);
            continue;
        };
        eprintln!("{} view: {} training rows, fit in {:.2} s", view.as_str(), m.train_rows, m.fit_seconds);
        report += &m.evaluation.markdown(&format!("{} view", view.as_str()));
        let vm = ViewModel::new(m.names, m.forest)?;
        report += "\nTop features (mean decrease in Gini impurity)\n\n| feature | importance |\n|---|---|\n";
        for (name, imp) in vm.top_features(15) {
            report += &format!("| {name} | {imp:.4} |\n");
        }
        report += "\n";
        metrics.insert(
            view.as_str().to_string(),
            serde_json::json!({
                "evaluation": m.evaluation,
                "train_rows": m.train_rows,
                "fit_seconds": m.fit_seconds,
                "importances": vm.top_features(usize::MAX),
            }),
        );
        views.push(Some(vm));
    }
    let destination = views.pop().flatten();
    let source = views.pop().flatten();
    let model = Model::new(
        source,
        destination,
        hash,
        serde_json::to_value(&params)?,
        serde_json::Value::Object(metrics.clone()),
    )?;
    let policy = predictor::decide::AlertPolicy {
        min_confidence: args.min_confidence,
        sustain_confidence: args.sustain_confidence,
        ..Default::default()
    };
    let detection = detection_report(&model, &intervals, &test, &args.benign, &policy)?;
    report += &detection.0;
    metrics.insert("detection".into(), detection.1);
    let model = Model { params: model.params.clone(), metrics: serde_json::Value::Object(metrics.clone()), ..model };
    if let Some(parent) = args.output.parent() {
        std::fs::create_dir_all(parent)?;
    }
    model.save(&args.output)?;
    eprintln!("model {} written to {} (classes {:?})", model.model_version, args.output.display(), CLASSES);
    println!("{report}");
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.md"), format!("Model `{}`\n\n{report}", model.model_version))
            .with_context(|| format!("writing {}", dir.display()))?;
        std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(&serde_json::Value::Object(metrics))?)?;
    }
    Ok(())
}

/// The operator's view of the held-out variations (alerts per 5 s window, attacks detected,
/// time to the first alert, false alerts on their Normal windows) and of the benign captures.
fn detection_report(
    model: &Model,
    intervals: &[tr::lab::Interval],
    test: &std::collections::BTreeSet<String>,
    benign: &[std::path::PathBuf],
    policy: &predictor::decide::AlertPolicy,
) -> Result<(String, serde_json::Value)> {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;
    let thresholds = predictor::RuleThresholds::default();
    let mut by_capture: BTreeMap<&std::path::Path, Vec<&tr::lab::Interval>> = BTreeMap::new();
    for iv in intervals.iter().filter(|iv| test.contains(&iv.variation)) {
        by_capture.entry(iv.capture.as_path()).or_default().push(iv);
    }
    let (mut attacks, mut false_alerts) = (Vec::new(), Vec::new());
    for (capture, ivs) in &by_capture {
        let (r, f) = tr::detect::evaluate_capture(model, capture, ivs, &thresholds, policy)?;
        attacks.extend(r);
        if !f.is_empty() {
            false_alerts.push((ivs[0].variation.clone(), f));
        }
    }
    let classes = tr::detect::per_class(&attacks);
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.0} %", v * 100.0));
    let secs = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0} s"));
    let mut md = format!(
        "## Detection on held-out variations\n\nThe alert decision of the predictor service replayed over every window of the \
         held-out captures (model >= {} opens an alert, a rule opens one, the model's probability >= {} of the class keeps an \
         open alert of the key). Window recall: share of an attack's 5 s slots (5 s windows at least half inside the attack) in \
         which a window of the attacker (or of a flood's target) raised or kept an alert of the attack's class, itself or \
         through its 30 s / 3 min parent window (inherited); then the 5 s windows' own alerts, with and without \
         sustaining. Detected: any window of the attack alerted with its class. First alert: end of the first alerting \
         window, from the attack's start.\n\n\
         | class | attacks | detected | 5 s slots | window recall | 5 s windows alone | without sustaining | worst attack | first alert (median / max) |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        policy.min_confidence, policy.sustain_confidence
    );
    for c in &classes {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
            c.class,
            c.attacks,
            c.detected,
            c.slots,
            pct(c.window_recall),
            pct(c.window_recall_own),
            pct(c.window_recall_without_sustain),
            pct(c.worst_attack_recall),
            secs(c.median_first_alert_s),
            secs(c.max_first_alert_s)
        );
    }
    md += "\nPer held-out variation:\n\n| variation | class | 5 s slots | alerted | by 5 s windows alone | detected | first alert | other classes alerted |\n|---|---|---|---|---|---|---|---|\n";
    for a in &attacks {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            a.variation,
            a.class,
            a.slots,
            a.alerted_slots,
            a.alerted_slots_own,
            if a.detected { "yes" } else { "**no**" },
            secs(a.first_alert_after_s),
            a.wrong_class.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let _ = writeln!(md, "\nAlerts on windows labelled Normal in the held-out captures: {}", false_alerts.len());
    for (v, f) in &false_alerts {
        let _ = writeln!(md, "* {v}: {f:?}");
    }
    let files = capture_files(benign)?;
    let mut noisy = Vec::new();
    for f in &files {
        let a = tr::detect::alerts_in(Some(model), f, &thresholds, policy)?;
        if !a.is_empty() {
            noisy.push((f.display().to_string(), a));
        }
    }
    // A capture also given with --normal was training data unless its variation was held out.
    let trained = |f: &std::path::Path| {
        let v = format!("benign-{}", f.file_name().unwrap_or_default().to_string_lossy());
        intervals.iter().any(|iv| iv.variation == v) && !test.contains(&v)
    };
    let held: Vec<String> = files.iter().filter(|f| !trained(f)).map(|f| f.display().to_string()).collect();
    if !files.is_empty() {
        let _ = writeln!(
            md,
            "\n## False alerts on benign captures\n\n{} captures, {} of them Normal training data (`--normal`), {} with an \
             alert. Never trained on: {}\n",
            files.len(),
            files.len() - held.len(),
            noisy.len(),
            held.join(", ")
        );
        for (f, a) in &noisy {
            let _ =
                writeln!(md, "* {f}{}: {a:?}", if trained(std::path::Path::new(f)) { " (training data)" } else { "" });
        }
    }
    md += "\n";
    let json = serde_json::json!({
        "per_class": classes,
        "attacks": attacks,
        "false_alerts_held_out": false_alerts.iter().map(|(v, f)| (v.clone(), f.len())).collect::<BTreeMap<_, _>>(),
        "benign_captures": files.len(),
        "benign_never_trained_on": held,
        "benign_with_alerts": noisy.iter().map(|(f, a)| (f.clone(), a.len())).collect::<BTreeMap<_, _>>(),
    });
    Ok((md, json))
}

/// Capture files under `paths` (files as given, directories walked), sorted.
fn capture_files(paths: &[std::path::PathBuf]) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    let mut stack: Vec<std::path::PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).with_context(|| format!("reading {}", p.display()))? {
                stack.push(e?.path());
            }
        } else if paths.contains(&p)
            || p.extension().is_some_and(|e| ["pcap", "pcapng", "cap"].contains(&e.to_string_lossy().as_ref()))
        {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}
