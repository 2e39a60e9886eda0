//! `nta bench e2e` at a small size, so that the benchmark and its exact checks cannot rot: a
//! generated capture through agent -> JetStream -> ingestor, windower, predictor (one process,
//! then three) must leave one row per record, the rollup adding up to them, the windows of the
//! offline path and a prediction per window; the command fails otherwise.

mod common;
use common::*;

fn bench(extra: &[&str]) -> String {
    let out = nta()
        .args(["bench", "e2e", "--frames", "20000", "--runs", "1", "--timeout-s", "120"])
        .args(["--database-url", &testkit::pg_admin_url()])
        .args(extra)
        .output()
        .expect("running nta bench e2e");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "nta bench e2e failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// `nta bench notify` delivers every event once and reports the latency percentiles.
#[test]
fn notify_bench_reports_latency() {
    let out = nta().args(["bench", "notify", "--events", "30", "--interval-ms", "5"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "nta bench notify failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("30 alert events") && stdout.contains("latency: p50 "), "{stdout}");
    assert!(stdout.contains("0 keys received more than once"), "{stdout}");
}

#[test]
fn e2e_bench_checks_every_count_with_one_role_process() {
    let report = bench(&[]);
    assert!(report.contains("20000 frames, 20000 records"), "{report}");
    assert!(report.contains("run 1:") && report.contains("end to end: median"), "{report}");
    // The per-stage references and PostgreSQL's own COPY ran too.
    assert!(report.contains("agent publish (no consumer)") && report.contains("predictor ("), "{report}");
    assert!(report.contains("reference: PostgreSQL COPY"), "{report}");
    assert!(report.contains("CPU us/packet: agent"), "{report}");
}

#[test]
fn e2e_bench_checks_every_count_with_separate_role_processes() {
    let report = bench(&["--separate", "--no-stages", "--no-copy-reference"]);
    assert!(report.contains("as 3 processes") && report.contains("end to end: median"), "{report}");
    assert!(report.contains("nta windower") && report.contains("nta predictor"), "{report}");
}
