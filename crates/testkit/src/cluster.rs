//! A private JetStream cluster: several nats-server processes joined by routes on free loopback
//! ports, each with its own store, so that a test can SIGKILL a node and bring it back.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{nats_server_bin, wait_for_port};

struct Node {
    /// `server_name`, which JetStream reports as stream and meta leaders.
    name: String,
    port: u16,
    http_port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

/// A JetStream cluster of nats-server processes, killed and their stores deleted on drop.
pub struct NatsCluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts `size` nodes (`n0`, `n1`, ...) and returns once every node sees a JetStream meta
    /// leader, i.e. once streams can be created.
    pub fn start(size: usize) -> Result<NatsCluster> {
        // Placeholders, moved to free ports by `start_with_configs`.
        let ports: Vec<u16> = (1..=size as u16 * 3).collect();
        let routes: Vec<String> = (0..size).map(|i| format!("nats-route://127.0.0.1:{}", ports[3 * i + 1])).collect();
        let cluster_name = format!("nta-test-{:08x}", rand::random::<u32>());
        let configs: Vec<String> = (0..size)
            .map(|i| {
                format!(
                    "server_name: n{i}\nlisten: 127.0.0.1:{}\nhttp: 127.0.0.1:{}\njetstream {{ store_dir: \"x\" }}\n\
                     cluster {{\n  name: {cluster_name}\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n",
                    ports[3 * i],
                    ports[3 * i + 2],
                    ports[3 * i + 1],
                    routes.join(", ")
                )
            })
            .collect();
        Self::start_with_configs(&configs, &ports)
    }

    /// Starts one node per configuration text (each with `server_name`, a top-level `listen:
    /// host:port`, `http: host:port` for monitoring and a `store_dir` line), after moving every
    /// `host:port` of `fixed_ports` to a free port and every store into a temporary directory:
    /// the way to start the cluster files a user gets (infra/nats/cluster) in a test.
    pub fn start_with_configs(configs: &[String], fixed_ports: &[u16]) -> Result<NatsCluster> {
        let dir = tempfile::tempdir()?;
        // Held until all are chosen, so that no port is handed out twice.
        let listeners: Vec<TcpListener> =
            fixed_ports.iter().map(|_| TcpListener::bind("127.0.0.1:0")).collect::<std::io::Result<_>>()?;
        let free: Vec<u16> = listeners.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<Result<_, _>>()?;
        drop(listeners);
        let mut nodes = Vec::with_capacity(configs.len());
        for (i, text) in configs.iter().enumerate() {
            let store = dir.path().join(format!("store{i}"));
            std::fs::create_dir_all(&store)?;
            let mut out = String::new();
            for line in text.lines() {
                let mut line = move_ports(line, fixed_ports, &free);
                // The store is set in the file and not with `-sd`: nats-server refuses both.
                if let Some(at) = line.find("store_dir:") {
                    let rest = line[at..].find('}').map_or("", |b| &line[at + b..]);
                    line = format!("{}store_dir: \"{}\" {rest}", &line[..at], store.display());
                }
                out.push_str(&line);
                out.push('\n');
            }
            let value = |key: &str| {
                out.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .map(|v| v.trim().trim_matches('"').to_string())
                    .with_context(|| format!("configuration {i} has no top-level `{key}`"))
            };
            let port_of = |key: &str| -> Result<u16> {
                let v = value(key)?;
                v.rsplit(':').next().unwrap_or_default().parse().with_context(|| format!("`{key} {v}`: no port"))
            };
            let (name, port, http_port) = (value("server_name:")?, port_of("listen:")?, port_of("http:")?);
            let conf = dir.path().join(format!("{name}.conf"));
            std::fs::write(&conf, &out)?;
            nodes.push(Node { name, port, http_port, conf, child: None });
        }
        let mut cluster = NatsCluster { nodes, _dir: dir };
        for i in 0..configs.len() {
            cluster.spawn(i)?;
        }
        for i in 0..configs.len() {
            cluster.wait_ready(i, Duration::from_secs(30))?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        let log = match std::env::var_os("NTA_TEST_NATS_LOG") {
            Some(p) => {
                let mut p = p;
                p.push(format!(".{}", node.name));
                Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(p)?)
            }
            None => Stdio::null(),
        };
        let child = Command::new(nats_server_bin()?)
            .arg("-c")
            .arg(&node.conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawning nats-server")?;
        node.child = Some(child);
        wait_for_port(node.port, Duration::from_secs(10))
    }

    /// Waits until node `i` answers and knows the JetStream meta leader.
    fn wait_ready(&self, i: usize, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.meta_leader_seen_by(i).is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("nats-server {} has no JetStream meta leader after {timeout:?}", self.nodes[i].name)
    }

    /// The meta leader according to node `i` (its `/jsz` monitoring page).
    fn meta_leader_seen_by(&self, i: usize) -> Option<String> {
        let jsz = http_get_json(self.nodes[i].http_port, "/jsz").ok()?;
        let leader = jsz.get("meta_cluster")?.get("leader")?.as_str()?;
        (!leader.is_empty()).then(|| leader.to_string())
    }

    /// Number of nodes.
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// Every node's client URL, comma-separated (what `nats_url` accepts).
    pub fn urls(&self) -> String {
        (0..self.nodes.len()).map(|i| self.url(i)).collect::<Vec<_>>().join(",")
    }

    /// Client URL of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].port)
    }

    /// Client port of node `i`.
    pub fn port(&self, i: usize) -> u16 {
        self.nodes[i].port
    }

    /// `server_name` of node `i` (`n<i>`).
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// Index of the node named `server_name` (e.g. a stream's leader).
    pub fn index_of(&self, server_name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == server_name)
    }

    /// Whether node `i` is running (not killed).
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// The JetStream meta leader as a running node sees it.
    pub fn meta_leader(&self) -> Option<String> {
        (0..self.nodes.len()).filter(|&i| self.is_running(i)).find_map(|i| self.meta_leader_seen_by(i))
    }

    /// SIGKILLs node `i` (no lame-duck mode, no goodbye to its routes or clients).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` again on the same ports with the same store, and waits until it has
    /// rejoined (sees a meta leader).
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        self.spawn(i)?;
        self.wait_ready(i, Duration::from_secs(30))
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// `line` with every `:<port>` whose port is `from[k]` changed to `:<to[k]>`, in one pass (a
/// free port given to one node may equal a fixed port of another).
fn move_ports(line: &str, from: &[u16], to: &[u16]) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(colon) = rest.find(':') {
        out.push_str(&rest[..=colon]);
        rest = &rest[colon + 1..];
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let moved = rest[..digits].parse::<u16>().ok().and_then(|p| from.iter().position(|&f| f == p));
        match moved {
            Some(k) => out.push_str(&to[k].to_string()),
            None => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// GET `path` of the monitoring server on `port`, as JSON (plain HTTP/1.0, no client needed).
fn http_get_json(port: u16, path: &str) -> Result<serde_json::Value> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).context("no HTTP body")?;
    Ok(serde_json::from_str(body)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_move_in_one_pass() {
        let line = "routes: [nats-route://127.0.0.1:6222, nats-route://h:6223] # :62220 :1";
        assert_eq!(
            super::move_ports(line, &[6222, 6223, 1], &[6223, 40000, 2]),
            "routes: [nats-route://127.0.0.1:6223, nats-route://h:40000] # :62220 :2"
        );
    }
}
