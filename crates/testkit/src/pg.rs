//! A private PostgreSQL server for tests that need a server configured differently from the
//! shared one (TLS with a test CA): `initdb` into a temporary directory, started on a free
//! port, stopped and deleted on drop. Needs PostgreSQL's server binaries (`infra/setup.sh`
//! installs them).

use anyhow::{bail, Context, Result};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::pki::CertFiles;

pub struct PgServer {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl PgServer {
    /// A server with `ssl = on` presenting `cert` (clients may still connect in clear); with
    /// `client_ca`, it asks clients for a certificate signed by that CA.
    pub fn start_tls(cert: &CertFiles, client_ca: Option<&Path>) -> Result<PgServer> {
        let bin = server_bin_dir()?;
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        // PostgreSQL refuses to run as root: as root, run it as the `postgres` user.
        let owner = if is_root() { Some(postgres_ids()?) } else { None };
        let as_owner = |cmd: &mut Command| {
            if let Some((uid, gid)) = owner {
                cmd.uid(uid).gid(gid);
            }
        };
        let key = dir.path().join("server.key");
        let crt = dir.path().join("server.pem");
        std::fs::copy(&cert.cert, &crt)?;
        std::fs::copy(&cert.key, &key)?;
        let ca = dir.path().join("client-ca.pem");
        if let Some(p) = client_ca {
            std::fs::copy(p, &ca)?;
        }
        if let Some((uid, gid)) = owner {
            for p in [dir.path().to_path_buf(), key.clone(), crt.clone()] {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid))?;
            }
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb.arg("-D").arg(&data).args(["-U", "postgres", "-A", "trust", "--no-sync"]);
        as_owner(&mut initdb);
        let out = initdb.output().context("running initdb")?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let port = crate::free_port();
        let mut pg = Command::new(bin.join("postgres"));
        pg.arg("-D").arg(&data).args(["-p", &port.to_string()]);
        for setting in [
            "listen_addresses=127.0.0.1".to_string(),
            format!("unix_socket_directories={}", dir.path().display()),
            "ssl=on".into(),
            format!("ssl_cert_file={}", crt.display()),
            format!("ssl_key_file={}", key.display()),
            "fsync=off".into(),
        ]
        .into_iter()
        .chain(client_ca.map(|_| format!("ssl_ca_file={}", ca.display())))
        {
            pg.arg("-c").arg(setting);
        }
        as_owner(&mut pg);
        let child = pg.stdout(Stdio::null()).stderr(Stdio::null()).spawn().context("starting postgres")?;
        let mut server = PgServer { port, child, _dir: dir };
        // The port opens before the server accepts sessions ("the database system is starting
        // up"): wait until pg_isready says it accepts them.
        let start = std::time::Instant::now();
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("postgres exited during start-up: {status}");
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!("postgres did not accept sessions within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's fast shutdown: backends end, no shared memory is left behind.
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        if crate::wait_exit_quietly(&mut self.child, Duration::from_secs(10)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0\n")).unwrap_or(false)
}

fn postgres_ids() -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().context("no `postgres` user (install postgresql)")
    };
    Ok((id("-u")?, id("-g")?))
}

fn server_bin_dir() -> Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.pop().context("PostgreSQL server binaries (initdb) not found under /usr/lib/postgresql (run infra/setup.sh)")
}
