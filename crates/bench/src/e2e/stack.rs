//! What `nta bench e2e` starts: a private nats-server with JetStream, a throw-away PostgreSQL
//! database, and `nta` role processes. Small equivalents of the test harness (`testkit`), which
//! the `nta` binary must not link.

use anyhow::{bail, Context, Result};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::process::{Child, Command};

use store::conn::{connect_cfg, quote_ident};

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `nats-server -js` on a free loopback port with its store in a directory of its own; killed
/// on drop (the caller's temporary directory removes the store).
pub struct PrivateNats {
    pub url: String,
    child: Child,
}

impl PrivateNats {
    pub async fn start(dir: &Path) -> Result<PrivateNats> {
        let bin = ["nats-server", "/usr/sbin/nats-server", "/usr/local/bin/nats-server"]
            .into_iter()
            .find(|b| std::process::Command::new(b).arg("--version").stdout(Stdio::null()).status().is_ok())
            .context("nats-server not found (infra/setup.sh installs it)")?;
        std::fs::create_dir_all(dir)?;
        let port = free_port()?;
        let child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting nats-server")?;
        let start = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            if start.elapsed() > Duration::from_secs(10) {
                bail!("nats-server does not listen on port {port} after 10 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(PrivateNats { url: format!("nats://127.0.0.1:{port}"), child })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A fresh database on the server of the configured URL, with the schema applied; dropped by
/// [`BenchDb::drop_db`] (the caller does so whatever the outcome).
pub struct BenchDb {
    pub url: String,
    pub cfg: store::DbConfig,
    admin: store::DbConfig,
    name: String,
}

impl BenchDb {
    pub async fn create(base_url: &str, tag: &str) -> Result<BenchDb> {
        let base = store::DbConfig::parse(base_url)?;
        let mut admin = base.clone();
        admin.pg.dbname("postgres");
        let client = connect_cfg(&admin).await.context("connecting to the postgres database")?;
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        let name = format!("nta_bench_{tag}_{}_{}", std::process::id(), nanos % 1_000_000_000);
        client.batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name))).await?;
        let mut cfg = base;
        cfg.pg.dbname(&name);
        let db = BenchDb { url: url_with_dbname(base_url, &name)?, cfg, admin, name };
        // Migrated here so that no role's start-up (schema creation) is inside a timing.
        let mut c = db.client().await?;
        store::migrate(&mut c).await?;
        Ok(db)
    }

    pub async fn client(&self) -> Result<tokio_postgres::Client> {
        connect_cfg(&self.cfg).await
    }

    pub async fn drop_db(self) -> Result<()> {
        let client = connect_cfg(&self.admin).await?;
        client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&self.name))).await?;
        Ok(())
    }
}

/// `postgres://...host/DB?params` with DB replaced: the role processes take a URL.
fn url_with_dbname(url: &str, db: &str) -> Result<String> {
    let Some(scheme_end) = url.find("://") else {
        bail!("nta bench e2e needs a postgres:// URL, not a key=value connection string")
    };
    let rest = &url[scheme_end + 3..];
    let (path_start, query) = match rest.find('?') {
        Some(q) => (rest[..q].find('/'), &rest[q..]),
        None => (rest.find('/'), ""),
    };
    let authority = match path_start {
        Some(p) => &rest[..p],
        None => rest.split('?').next().unwrap_or(rest),
    };
    Ok(format!("{}{authority}/{db}{query}", &url[..scheme_end + 3]))
}

/// An `nta` child process (a role, or the agent replaying the capture), killed on drop; its
/// stderr goes to a file so that a failure can be explained.
pub struct NtaProcess {
    child: Child,
    log: PathBuf,
    what: String,
}

impl NtaProcess {
    /// `nta run --target <targets> --nats-url .. --database-url .. --metrics-addr <free> <extra>`.
    pub fn spawn(bin: &Path, dir: &Path, targets: &str, nats: &str, db: &str, extra: &[&str]) -> Result<NtaProcess> {
        let metrics = format!("127.0.0.1:{}", free_port()?);
        let mut args = vec!["run", "--target", targets, "--nats-url", nats, "--database-url", db, "--metrics-addr"];
        args.push(&metrics);
        args.extend_from_slice(extra);
        NtaProcess::start(bin, dir, &targets.replace(',', "+"), targets, &args)
    }

    /// `nta <command> --nats-url .. --database-url .. <args>` (a tool such as `nta rescore`).
    pub fn spawn_command(
        bin: &Path,
        dir: &Path,
        command: &str,
        nats: &str,
        db: &str,
        args: &[&str],
    ) -> Result<NtaProcess> {
        let mut all = vec![command, "--nats-url", nats, "--database-url", db];
        all.extend_from_slice(args);
        NtaProcess::start(bin, dir, command, command, &all)
    }

    /// `bin args`, its stderr in `dir/<log_name>-<n>.log`, killed when dropped.
    fn start(bin: &Path, dir: &Path, log_name: &str, what: &str, args: &[&str]) -> Result<NtaProcess> {
        let log = dir.join(format!("{log_name}-{}.log", free_port()?));
        let child = Command::new(bin)
            .args(args)
            .env("NTA_LOG", std::env::var("NTA_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} {what}", bin.display()))?;
        Ok(NtaProcess { child, log, what: what.to_string() })
    }

    /// Fails with the end of the process's log if it has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("nta {} exited ({status}): {}", self.what, self.log_tail());
        }
        Ok(())
    }

    /// Waits for a process that ends by itself (the agent after a replay); returns its stderr.
    pub async fn wait_success(mut self) -> Result<String> {
        let status = self.child.wait().await?;
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        if !status.success() {
            bail!("nta {} failed ({status}): {}", self.what, self.log_tail());
        }
        Ok(log)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The roles it runs (`--target`).
    pub fn name(&self) -> &str {
        &self.what
    }

    pub fn try_finished(&mut self) -> Result<bool> {
        Ok(self.child.try_wait()?.is_some())
    }

    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// CPU time (user + system, seconds) a live process has used so far, from `/proc/PID/stat`;
/// `None` once it is gone (or off Linux).
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name (which may hold spaces): utime and stime are
    // fields 14 and 15 of the line, i.e. 12 and 13 after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks())
}

/// `sysconf(_SC_CLK_TCK)`, the unit of `/proc` CPU times, asked once of `getconf`.
fn clock_ticks() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU time of the children this process has waited for (`cutime + cstime` of `/proc/self/stat`):
/// how a process that has exited (the agent after its replay) is accounted.
pub fn reaped_children_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let Some(close) = stat.rfind(')') else { return 0.0 };
    let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let ticks: u64 =
        f.get(13).and_then(|s| s.parse().ok()).unwrap_or(0) + f.get(14).and_then(|s| s.parse().ok()).unwrap_or(0);
    ticks as f64 / clock_ticks()
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_name_in_urls() {
        let f = super::url_with_dbname;
        assert_eq!(f("postgres://postgres@127.0.0.1:5432/nta", "x").unwrap(), "postgres://postgres@127.0.0.1:5432/x");
        assert_eq!(f("postgres://u@h/nta?sslmode=require", "x").unwrap(), "postgres://u@h/x?sslmode=require");
        assert_eq!(f("postgres://u@h:1", "x").unwrap(), "postgres://u@h:1/x");
        assert_eq!(f("postgres://u@h?sslmode=disable", "x").unwrap(), "postgres://u@h/x?sslmode=disable");
        assert!(f("host=h dbname=nta", "x").is_err());
    }
}
