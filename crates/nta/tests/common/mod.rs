//! Shared helpers for the end-to-end tests: the real `nta` binary, a private nats-server and a
//! throw-away PostgreSQL database (see the `testkit` crate).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use testkit::{free_port, nta_bin, NatsServer, TestDb};

/// `nta` with logs quiet unless a test fails.
pub fn nta() -> Command {
    let mut c = Command::new(nta_bin());
    c.env("NTA_LOG", "warn");
    c
}

/// Runs `nta run --target agent --read FILE` to completion and returns its output.
pub fn replay(nats_url: &str, file: &Path, agent_id: &str) -> Output {
    let out = nta()
        .args(["run", "--target", "agent", "--nats-url", nats_url, "--agent-id", agent_id])
        .arg("--read")
        .arg(file)
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .output()
        .expect("running nta");
    assert!(out.status.success(), "agent failed on {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    out
}

/// A role running in the background, killed on drop.
pub struct Role(pub Child);

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start_ingestor(nats_url: &str, db_url: &str, extra_env: &[(&str, &str)]) -> Role {
    let mut c = nta();
    c.args(["run", "--target", "ingestor", "--nats-url", nats_url, "--database-url", db_url])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .stdout(Stdio::null());
    for (k, v) in extra_env {
        c.env(k, v);
    }
    Role(c.spawn().expect("starting ingestor"))
}

/// Polls `f` until it returns Some or `timeout` passes.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

// Not every test binary that includes this module counts rows.
#[allow(unused_imports)]
pub use testkit::count;

/// Frames in a capture according to tshark (the reference dissector).
pub fn tshark_frame_count(file: &Path) -> usize {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(file)
        .args(["-T", "fields", "-e", "frame.number"])
        .output()
        .expect("tshark must be installed (infra/setup.sh installs it)");
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).count()
}

/// `nta decode FILE --format jsonl`, parsed.
pub fn decode_jsonl(file: &Path) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let out = nta().arg("decode").arg(file).output().expect("nta decode");
    assert!(out.status.success(), "nta decode failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap().as_object().unwrap().clone())
        .collect()
}

/// Stored rows of one agent in batch and frame order, as JSON objects with the record's
/// field names, so they compare directly with `nta decode`.
pub async fn stored_rows(
    db: &tokio_postgres::Client,
    agent_id: &str,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let sql = "SELECT row_to_json(t)::text FROM (SELECT
            extract(epoch FROM ts)::float8 AS timestamp, interface, host(src_ip) AS src_ip,
            host(dst_ip) AS dst_ip, protocol, length, src_port, dst_port, tcp_flags, tcp_syn, tcp_ack,
            tcp_fin, tcp_rst, tcp_psh, seq, ack, icmp_type, icmp_code, arp_op, host(arp_psrc) AS arp_psrc,
            host(arp_pdst) AS arp_pdst, arp_hwsrc::text AS arp_hwsrc, arp_hwdst::text AS arp_hwdst,
            dns_query, dns_qname, dns_qtype, dns_response, dns_answer_count, dns_answer_size,
            http_method, http_path, http_status_code, http_host, src_mac::text AS src_mac,
            dst_mac::text AS dst_mac, vlan, app_proto, tls_sni
        FROM raw_packets WHERE agent_id = $1
        ORDER BY split_part(batch_id, '.', 3)::bigint, idx) t";
    db.query(sql, &[&agent_id])
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_str::<serde_json::Value>(r.get::<_, &str>(0)).unwrap().as_object().unwrap().clone())
        .collect()
}

/// Field-by-field equality of a decoded record and a stored row; `Err` names the first
/// difference. Timestamps are stored with microsecond precision (timestamptz).
pub fn same_record(
    decoded: &serde_json::Map<String, serde_json::Value>,
    stored: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), String> {
    for (k, v) in decoded {
        let s = stored.get(k).ok_or_else(|| format!("column {k} missing"))?;
        let equal = match (v, s) {
            (serde_json::Value::Number(a), serde_json::Value::Number(b)) => {
                (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() <= if k == "timestamp" { 1.5e-6 } else { 0.0 }
            }
            _ => v == s,
        };
        if !equal {
            return Err(format!("{k}: decoded {v} stored {s}"));
        }
    }
    Ok(())
}
