//! `log_format = json`: every line a role writes to stderr is one JSON object a log shipper can
//! read, with the event's fields as typed keys; a bad value is refused with the accepted ones.

mod common;

use common::*;

#[test]
fn json_logs_are_one_object_per_line_with_typed_fields() {
    let nats = NatsServer::start().unwrap();
    let capture = testkit::workspace_root().join("testdata/pcaps/arp_spoof-unsolicited-replies.pcap");
    let out = nta()
        .args(["run", "--target", "agent", "--nats-url", &nats.url, "--agent-id", "logs", "--log-format", "json"])
        .arg("--read")
        .arg(&capture)
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .env("NTA_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let events: Vec<serde_json::Value> = stderr
        .lines()
        // The replay's own summary, for people, is not a log line.
        .filter(|l| !l.starts_with("agent: "))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for e in &events {
        assert!(e["timestamp"].is_string() && e["level"].is_string() && e["target"].is_string(), "{e}");
    }
    let done = events.iter().find(|e| e["message"] == "agent finished").expect("no 'agent finished' event");
    assert_eq!(done["frames"], 36, "{done}");
    assert_eq!(done["records_acked"], 36, "{done}");
    assert_eq!(done["frames_kept"], 36, "{done}");
    assert_eq!(done["level"], "INFO");

    let bad = nta().args(["config", "--log-format", "xml"]).output().unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("log_format") && err.contains("json"), "{err}");
}
