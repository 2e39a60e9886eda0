//! A model file as the predictor loads it at startup (`Model::load` = read + `Model::from_bytes`).
//! A model that loads must then classify any window without panicking or looping: loading is
//! where a broken file has to be refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use predictor::Model;
use std::collections::BTreeMap;
use wire::{View, WindowRecord};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Model::from_bytes(data) else { return };
    let _ = m.content_hash();
    let mut windows = Vec::new();
    for view in [View::Source, View::Destination] {
        let Some(vm) = m.view(view) else { continue };
        let _ = vm.unknown_features(view);
        let _ = vm.top_features(10);
        // Each of the forest's features missing (NaN), tiny, huge and ordinary: every branch kind.
        for value in [None, Some(f64::MIN), Some(0.0), Some(1.0), Some(f64::MAX)] {
            let features: BTreeMap<String, Option<f64>> = vm.features.iter().map(|f| (f.clone(), value)).collect();
            windows.push(WindowRecord {
                v: wire::BATCH_FORMAT_VERSION,
                view,
                key: "10.0.0.1".into(),
                window_start: 1_767_225_600,
                window_size: 5,
                features,
            });
        }
    }
    let verdicts = m.predict(&windows);
    for (w, v) in windows.iter().zip(&verdicts) {
        let v = v.as_ref().expect("a view with a forest gives a verdict");
        let _ = m.view(w.view).unwrap().explain(w, v.class_index, 5);
    }
});
