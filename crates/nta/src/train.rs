//! `nta train`: lab captures -> labelled windows -> forests -> model file and report.

use anyhow::{Context, Result};
use predictor::train::{self as tr, CLASSES};
use predictor::ForestParams;
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
    let params = ForestParams { n_trees: args.trees, max_depth: args.max_depth, seed: args.seed, ..Default::default() };
    let mut report = format!("# NTA model evaluation\n\nData hash `{}`; classes {:?}\n\n", tr::data_hash(&data), CLASSES);
    for (view, ex) in [(View::Source, &data.source), (View::Destination, &data.destination)] {
        let Some(m) = tr::train_view(ex, &test, &params)? else {
            report += &format!("### {} view\n\nno training data\n\n", view.as_str());
            continue;
        };
        eprintln!("{} view: {} training rows, fit in {:.2} s", view.as_str(), m.train_rows, m.fit_seconds);
        report += &m.evaluation.markdown(&format!("{} view", view.as_str()));
        report += "\n";
    }
    println!("{report}");
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.md"), &report).with_context(|| format!("writing {}", dir.display()))?;
    }
    Ok(())
}
