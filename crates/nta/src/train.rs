//! `nta train`: lab captures -> labelled windows -> forests -> model file and report.

use anyhow::{Context, Result};
use predictor::model::{Model, ViewModel};
use predictor::ForestParams;
use train::{self as tr, CLASSES};
use wire::View;

use crate::cli::TrainArgs;

pub fn train(args: TrainArgs) -> Result<()> {
    let intervals = tr::lab::load(&args.labs)?;
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
