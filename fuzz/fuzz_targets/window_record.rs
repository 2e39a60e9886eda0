//! A MessagePack `WindowRecord` as the predictor takes it off NATS (`predictor::service::decode`:
//! decode + validate); what passes is classified by the shipped model and the rules, as the
//! predictor does next.
#![no_main]

use libfuzzer_sys::fuzz_target;
use predictor::{Model, RuleThresholds};
use std::sync::LazyLock;

static MODEL: LazyLock<Model> = LazyLock::new(|| Model::from_bytes(nta_fuzz::DEFAULT_MODEL).expect("default model"));
static RULES: LazyLock<RuleThresholds> = LazyLock::new(RuleThresholds::default);

fuzz_target!(|data: &[u8]| {
    let Ok(w) = predictor::service::decode(data) else { return };
    let _ = w.window_id();
    let verdicts = MODEL.predict(std::slice::from_ref(&w));
    assert_eq!(verdicts.len(), 1);
    if let Some(v) = &verdicts[0] {
        assert!(v.class_index < MODEL.classes.len());
        if let Some(vm) = MODEL.view(w.view) {
            let _ = vm.explain(&w, v.class_index, 5);
        }
    }
    let _ = predictor::rules::evaluate(&w, &RULES);
});
