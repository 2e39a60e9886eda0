//! Real services for tests, isolated per test: a private `nats-server -js` on a free port
//! with a temporary store, and a fresh PostgreSQL database dropped afterwards. State left by
//! an earlier run can therefore never make a test pass or fail.
//!
//! PostgreSQL itself must be reachable (`infra/setup.sh` starts one when none is); the admin
//! connection comes from `NTA_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).

pub mod browser;
mod cluster;
pub mod jwt;
pub mod pg;
pub mod pki;

use anyhow::{bail, Context, Result};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use cluster::NatsCluster;

/// Path of the shared test captures: `NTA_PCAPS_DIR`, else `../shared/pcaps` next to the
/// checkout, else the copy in `testdata/pcaps`.
pub fn pcaps_dir() -> PathBuf {
    if let Ok(d) = std::env::var("NTA_PCAPS_DIR") {
        return PathBuf::from(d);
    }
    let root = workspace_root();
    for cand in [root.join("../shared/pcaps"), root.join("testdata/pcaps")] {
        if cand.is_dir() {
            return cand;
        }
    }
    root.join("../shared/pcaps")
}

/// All capture files of [`pcaps_dir`], sorted by name.
pub fn shared_pcaps() -> Vec<PathBuf> {
    captures_in(&pcaps_dir())
}

/// The captures of `benign-corpus/` in [`pcaps_dir`] (ordinary application traffic; none may
/// raise an alert), sorted by name; panics when it holds fewer than 40.
pub fn benign_corpus() -> Vec<PathBuf> {
    let v = captures_in(&pcaps_dir().join("benign-corpus"));
    assert!(v.len() >= 40, "the shared benign corpus holds {} captures", v.len());
    v
}

/// The `.pcap` and `.pcapng` files of `dir`, sorted by name.
fn captures_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e} (set NTA_PCAPS_DIR to the shared captures)", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("pcap" | "pcapng")))
        .collect();
    v.sort();
    v
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Path of the `nta` binary built by cargo for integration tests.
pub fn nta_bin() -> PathBuf {
    if let Ok(p) = std::env::var("NTA_BIN") {
        return PathBuf::from(p);
    }
    let root = workspace_root();
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or(root.join("target"));
    for profile in ["debug", "release"] {
        let p = target.join(profile).join("nta");
        if p.exists() {
            return p;
        }
    }
    panic!("nta binary not built; run `cargo build -p nta` first or set NTA_BIN")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn wait_for_port(port: u16, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("nothing listens on 127.0.0.1:{port} after {timeout:?}")
}

/// A private JetStream-enabled nats-server, killed and its store deleted on drop.
pub struct NatsServer {
    pub url: String,
    pub port: u16,
    child: Child,
    _store: tempfile::TempDir,
}

impl NatsServer {
    pub fn start() -> Result<NatsServer> {
        Self::start_on(free_port())
    }

    /// Starts on a given port (e.g. to bring NATS up late for a client already retrying it).
    pub fn start_on(port: u16) -> Result<NatsServer> {
        Self::spawn(port, None, &[])
    }

    /// Starts with JetStream's file store capped at `bytes`, like a server on a small disk.
    pub fn start_with_store_limit(bytes: u64) -> Result<NatsServer> {
        Self::spawn(free_port(), Some(format!("jetstream {{ max_file_store: {bytes} }}\n")), &[])
    }

    /// Starts with the configuration file `conf` (e.g. TLS and per-user permissions), its
    /// `$VARIABLES` taken from `env` (nats-server reads undefined variables from the
    /// environment). The port and the JetStream store are set on the command line, which
    /// overrides the file. `url` is then `tls://` when the file configures TLS.
    pub fn start_with_config(conf: &str, env: &[(&str, String)]) -> Result<NatsServer> {
        let mut s = Self::spawn(free_port(), Some(conf.to_string()), env)?;
        if conf.contains("tls {") || conf.contains("tls:") {
            s.url = format!("tls://localhost:{}", s.port);
        }
        Ok(s)
    }

    fn spawn(port: u16, conf: Option<String>, env: &[(&str, String)]) -> Result<NatsServer> {
        let store = tempfile::tempdir()?;
        let mut cmd = Command::new(nats_server_bin()?);
        cmd.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"]).arg(store.path());
        if let Some(text) = conf {
            // Settings without a command-line flag (store cap, TLS, users) come from a file.
            let conf = store.path().join("server.conf");
            std::fs::write(&conf, text)?;
            cmd.arg("-c").arg(&conf);
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let log = std::env::var_os("NTA_TEST_NATS_LOG").map(std::fs::File::create).transpose()?;
        let stderr = log.map_or(Stdio::null(), Stdio::from);
        let child = cmd.stdout(Stdio::null()).stderr(stderr).spawn().context("spawning nats-server")?;
        let server = NatsServer { url: format!("nats://127.0.0.1:{port}"), port, child, _store: store };
        wait_for_port(port, Duration::from_secs(10))?;
        Ok(server)
    }
}

/// The installed nats-server binary.
fn nats_server_bin() -> Result<&'static str> {
    ["nats-server", "/usr/sbin/nats-server", "/usr/local/bin/nats-server"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").stdout(Stdio::null()).status().is_ok())
        .context("nats-server not found (run infra/setup.sh)")
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `options` with an event callback that forwards every error the server reports (a refused
/// subject, an authorization violation) to the returned channel, as text.
pub fn watch_server_errors(
    options: async_nats::ConnectOptions,
) -> (async_nats::ConnectOptions, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let options = options.event_callback(move |event| {
        let tx = tx.clone();
        async move {
            if let async_nats::Event::ServerError(e) = event {
                let _ = tx.send(e.to_string());
            }
        }
    });
    (options, rx)
}

/// Admin connection string for the test PostgreSQL server.
pub fn pg_admin_url() -> String {
    std::env::var("NTA_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A fresh database `nta_test_<random>`, dropped (with its connections) on drop.
pub struct TestDb {
    pub url: String,
    pub name: String,
    admin: String,
}

impl TestDb {
    pub async fn create() -> Result<TestDb> {
        let admin = pg_admin_url();
        let name = format!("nta_test_{:016x}", rand::random::<u64>());
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connecting to test PostgreSQL at {admin} (run infra/setup.sh)"))?;
        let task = tokio::spawn(conn);
        client.batch_execute(&format!("CREATE DATABASE {name}")).await?;
        drop(client);
        let _ = task.await;
        let url = replace_dbname(&admin, &name);
        Ok(TestDb { url, name, admin })
    }

    pub async fn client(&self) -> Result<tokio_postgres::Client> {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        Ok(client)
    }
}

fn replace_dbname(url: &str, db: &str) -> String {
    match url.rfind('/') {
        Some(i) if url.contains("://") && i > url.find("://").unwrap() + 2 => {
            let (base, rest) = url.split_at(i + 1);
            let query = rest.find('?').map(|q| &rest[q..]).unwrap_or("");
            format!("{base}{db}{query}")
        }
        _ => format!("{url} dbname={db}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs outside any runtime guarantee, so use a private thread and runtime.
        let admin = self.admin.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                if let Ok((client, conn)) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await {
                    tokio::spawn(conn);
                    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            })
        })
        .join();
    }
}

/// Waits up to `timeout` for `child` to exit.
pub fn wait_exit_quietly(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` to exit; kills it and panics after `timeout`.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("polling child") {
            return st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("child process did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `cond` every 100 ms until it holds; panics naming `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Rows by which the ingestor's incrementally kept `traffic_rollup` differs from the rollup
/// recomputed from `raw_packets` (0 when exact), and the packets the rollup counts.
pub async fn rollup_vs_packets(client: &tokio_postgres::Client) -> Result<(i64, i64)> {
    let diff: i64 = client
        .query_one(
            "SELECT count(*) FROM ((SELECT * FROM traffic_rollup EXCEPT ALL \
               SELECT * FROM nta_traffic_rollup_of('-infinity', 'infinity')) \
              UNION ALL (SELECT * FROM nta_traffic_rollup_of('-infinity', 'infinity') EXCEPT ALL \
               SELECT * FROM traffic_rollup)) d",
            &[],
        )
        .await?
        .get(0);
    let counted: i64 = client
        .query_one(
            "SELECT coalesce(sum(packets), 0)::int8 FROM traffic_rollup WHERE width = 60 AND dim = 'protocol'",
            &[],
        )
        .await?
        .get(0);
    Ok((diff, counted))
}

/// `SELECT count(*) ...` (any query returning one bigint), or -1 while its table does not exist
/// yet (a role under test has not migrated the database so far).
pub async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    match client.query_one(sql, &[]).await {
        Ok(r) => r.get(0),
        Err(_) => -1,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dbname_replacement() {
        assert_eq!(super::replace_dbname("postgres://u@h:5432/postgres", "x"), "postgres://u@h:5432/x");
        assert_eq!(super::replace_dbname("postgres://u@h/p?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
    }
}
