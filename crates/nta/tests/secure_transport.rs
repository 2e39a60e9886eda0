//! The pipeline over authenticated, encrypted transport, each role a separate `nta` process:
//! nats-server runs `infra/nats/nats-server.conf` as shipped (TLS with client certificates, one
//! NKey user per role with only the permissions it needs) and PostgreSQL has `ssl = on` with a
//! test CA, every role connecting with `sslmode=verify-full`.

mod common;
use common::*;
use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;
use testkit::pg::PgServer;
use testkit::pki::{CertFiles, NkeyUser, TestCa};
use tokio::sync::mpsc;

const ROLES: [&str; 6] = ["agent", "ingestor", "windower", "predictor", "dashboard", "notifier"];
const AGENT_ID: &str = "sensor1";

struct Secure {
    ca: TestCa,
    client: CertFiles,
    users: HashMap<&'static str, NkeyUser>,
    nats: NatsServer,
    pg: PgServer,
}

impl Secure {
    fn start() -> Secure {
        let ca = TestCa::new("NTA test CA").unwrap();
        let server = ca.issue("server", &["localhost"]).unwrap();
        let client = ca.issue("client", &["nta-role"]).unwrap();
        // Each role's NKey made as the README says, with `nta nkey`.
        let users: HashMap<_, _> = ROLES
            .iter()
            .map(|r| {
                let seed_file = ca.dir().join(format!("{r}.nk"));
                let out = nta().arg("nkey").arg(&seed_file).output().unwrap();
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                (*r, NkeyUser { public: String::from_utf8(out.stdout).unwrap().trim().to_string(), seed_file })
            })
            .collect();
        let conf = std::fs::read_to_string(testkit::workspace_root().join("infra/nats/nats-server.conf")).unwrap();
        let mut env = vec![
            ("NTA_NATS_SERVER_CERT", server.cert.display().to_string()),
            ("NTA_NATS_SERVER_KEY", server.key.display().to_string()),
            ("NTA_NATS_CA", ca.ca.display().to_string()),
        ];
        for (role, var) in ROLES.iter().zip([
            "NTA_AGENT_NKEY",
            "NTA_INGESTOR_NKEY",
            "NTA_WINDOWER_NKEY",
            "NTA_PREDICTOR_NKEY",
            "NTA_DASHBOARD_NKEY",
            "NTA_NOTIFIER_NKEY",
        ]) {
            env.push((var, users[role].public.clone()));
        }
        let nats = NatsServer::start_with_config(&conf, &env).unwrap();
        let pg = PgServer::start_tls(&server, None).unwrap();
        Secure { ca, client, users, nats, pg }
    }

    fn db_url(&self) -> String {
        format!(
            "postgres://postgres@localhost:{}/nta?sslmode=verify-full&sslrootcert={}",
            self.pg.port,
            self.ca.ca.display()
        )
    }

    /// The `[nats]` settings of `role` as its environment.
    fn role_env(&self, role: &str) -> Vec<(&'static str, String)> {
        vec![
            ("NTA_NATS_NKEY", self.users[role].seed_file.display().to_string()),
            ("NTA_NATS_CA", self.ca.ca.display().to_string()),
            ("NTA_NATS_CERT", self.client.cert.display().to_string()),
            ("NTA_NATS_KEY", self.client.key.display().to_string()),
        ]
    }

    fn start_role(&self, role: &str, extra: &[&str]) -> Role {
        let mut c = nta();
        c.args(["run", "--target", role, "--nats-url", &self.nats.url, "--database-url", &self.db_url()])
            .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
            .args(extra)
            .envs(self.role_env(role))
            .stdout(Stdio::null());
        Role(c.spawn().expect("starting nta"))
    }

    /// A client with `role`'s credentials (the same `bus` code the roles use) and the server
    /// errors it receives.
    async fn client(&self, role: &str) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
        let mut nats = bus::Nats::new(self.nats.url.clone());
        nats.auth = bus::NatsAuth {
            nkey: Some(self.users[role].seed_file.clone()),
            ca: Some(self.ca.ca.clone()),
            cert: Some(self.client.cert.clone()),
            key: Some(self.client.key.clone()),
            ..Default::default()
        };
        let (options, rx) = testkit::watch_server_errors(nats.options().await.unwrap());
        let client = options.connect(&self.nats.url).await.unwrap_or_else(|e| panic!("{role} cannot connect: {e}"));
        (client, rx)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pipeline_runs_with_per_role_credentials_over_tls() {
    let s = Secure::start();
    let dash_port = free_port();
    // The notifier, with its own NKey user, sends the alert to a syslog socket of the test.
    let syslog = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    syslog.set_read_timeout(Some(Duration::from_secs(180))).unwrap();
    let syslog_url = format!("udp://{}", syslog.local_addr().unwrap());
    let _roles = [
        s.start_role("notifier", &["--syslog", &syslog_url]),
        s.start_role("ingestor", &[]),
        s.start_role("windower", &[]),
        s.start_role("predictor", &[]),
        s.start_role("dashboard", &["--listen", &format!("127.0.0.1:{dash_port}")]),
    ];
    let capture = testkit::pcaps_dir().join("port_scan-syn-1000ports.pcap");
    let out = nta()
        .args(["run", "--target", "agent", "--agent-id", AGENT_ID, "--nats-url", &s.nats.url])
        .arg("--read")
        .arg(&capture)
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .envs(s.role_env("agent"))
        .output()
        .unwrap();
    assert!(out.status.success(), "agent: {}", String::from_utf8_lossy(&out.stderr));
    // The agent kept the frames, and the dashboard's user may export them.
    let pcap = s.ca.dir().join("export.pcap");
    let out = nta()
        .args(["export-pcap", "--from", "0", "--to", "4000000000", "--nats-url", &s.nats.url, "-o"])
        .arg(&pcap)
        .envs(s.role_env("dashboard"))
        .output()
        .unwrap();
    assert!(out.status.success(), "export-pcap: {}", String::from_utf8_lossy(&out.stderr));
    let frames =
        pcap::Capture::from_file(&pcap).map(|mut c| std::iter::from_fn(|| c.next_packet().ok().map(|_| ())).count());
    let input =
        pcap::Capture::from_file(&capture).map(|mut c| std::iter::from_fn(|| c.next_packet().ok().map(|_| ())).count());
    assert_eq!(frames.unwrap(), input.unwrap(), "frames exported through the dashboard's NATS user");

    // A session in clear of the test's own, to check on the roles' sessions.
    let plain = format!("host=127.0.0.1 port={} user=postgres dbname=nta sslmode=disable", s.pg.port);
    let client = wait_for(Duration::from_secs(60), || async {
        let (client, conn) = tokio_postgres::connect(&plain, tokio_postgres::NoTls).await.ok()?;
        tokio::spawn(conn);
        Some(client)
    })
    .await
    .expect("the roles created the database");
    let frames = tshark_frame_count(&capture) as i64;
    let stored = wait_for(Duration::from_secs(120), || async {
        (count(&client, "SELECT count(*) FROM raw_packets").await == frames).then_some(())
    })
    .await;
    assert!(stored.is_some(), "every packet stored through TLS and per-role credentials");
    let alerted = wait_for(Duration::from_secs(120), || async {
        (count(&client, "SELECT count(*) FROM alerts WHERE class = 'port_scan'").await > 0).then_some(())
    })
    .await;
    assert!(alerted.is_some(), "the scan raised an alert through windower and predictor");
    // Its events reached NTA_ALERTS within the predictor's permissions (marked only on PubAck).
    let relayed = wait_for(Duration::from_secs(60), || async {
        (count(&client, "SELECT count(*) FROM alert_events WHERE published_at IS NULL").await == 0
            && count(&client, "SELECT count(*) FROM alert_events").await > 0)
            .then_some(())
    })
    .await;
    assert!(relayed.is_some(), "alert events not published on NTA_ALERTS with the predictor's credentials");
    let mut buf = vec![0u8; 65536];
    loop {
        let n = syslog.recv(&mut buf).expect("the notifier sent the scan's alert to syslog");
        let line = String::from_utf8_lossy(&buf[..n]);
        if line.contains("class=\"port_scan\"") && line.contains("event=\"opened\"") {
            break;
        }
    }

    // Every role's database sessions are encrypted (this test's own checking session excepted).
    let (tls, clear): (i64, i64) = {
        let r = client
            .query_one(
                "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
                 FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
                 WHERE a.datname = 'nta' AND a.pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(clear, 0, "a role connected to PostgreSQL in clear");
    assert!(tls >= 4, "expected sessions of ingestor, windower, predictor and dashboard, saw {tls}");

    // The dashboard reads through its read-only NATS user: it reports NATS connected.
    let health: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{dash_port}/health")).await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "healthy", "{health}");
}

/// Publishes on `subject` and says whether the server refused it.
async fn refused(client: &async_nats::Client, errors: &mut mpsc::UnboundedReceiver<String>, subject: &str) -> bool {
    client.publish(subject.to_string(), "x".into()).await.unwrap();
    client.flush().await.unwrap();
    match tokio::time::timeout(Duration::from_secs(3), errors.recv()).await {
        Ok(Some(e)) => {
            assert!(e.to_lowercase().contains("permissions violation"), "{e}");
            assert!(e.contains(subject), "{e}");
            true
        }
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_are_confined_and_strangers_refused() {
    let s = Secure::start();
    // Allowed subjects pass without error, the others are refused.
    for (role, allowed, denied) in [
        (
            "agent",
            "nta.packets.sensor1",
            vec!["nta.packets.sensor2", "nta.alerts.x", "nta.windows.5s", "nta.deadletter"],
        ),
        ("agent", "nta.frames.sensor1", vec!["nta.frames.sensor2"]),
        ("ingestor", "nta.deadletter", vec!["nta.packets.sensor1", "nta.alerts.x", "nta.windows.5s"]),
        ("windower", "nta.windows.5s", vec!["nta.packets.sensor1", "nta.alerts.x"]),
        ("predictor", "nta.alerts.port_scan", vec!["nta.packets.sensor1", "nta.windows.5s", "nta.alerts"]),
        (
            "dashboard",
            "$JS.API.STREAM.INFO.NTA_ALERTS",
            vec![
                "nta.alerts.port_scan",
                "nta.alerts.resolved",
                "nta.packets.sensor1",
                "nta.deadletter",
                "nta.frames.sensor1",
            ],
        ),
    ] {
        let (client, mut errors) = s.client(role).await;
        assert!(!refused(&client, &mut errors, allowed).await, "{role} refused on {allowed}");
        for subject in denied {
            assert!(refused(&client, &mut errors, subject).await, "{role} allowed to publish on {subject}");
        }
    }
    // Reading the packet stream's messages is no one's business but the consumers'.
    let (dash, mut errors) = s.client("dashboard").await;
    let _sub = dash.subscribe("nta.packets.>").await.unwrap();
    dash.flush().await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(3), errors.recv()).await.ok().flatten();
    assert!(e.is_some_and(|e| e.contains("Subscription")), "dashboard subscribed to packets");

    // No NKey: refused, though TLS and the client certificate are right.
    let mut nats = bus::Nats::new(s.nats.url.clone());
    nats.auth.ca = Some(s.ca.ca.clone());
    nats.auth.cert = Some(s.client.cert.clone());
    nats.auth.key = Some(s.client.key.clone());
    let err = nats.options().await.unwrap().connect(&s.nats.url).await.expect_err("anonymous client accepted");
    assert!(err.to_string().to_lowercase().contains("authorization"), "{err}");
    // An unknown NKey: refused.
    nats.auth.nkey = Some(NkeyUser::new(s.ca.dir(), "stranger").unwrap().seed_file);
    assert!(nats.options().await.unwrap().connect(&s.nats.url).await.is_err(), "unknown NKey accepted");
    // A known NKey without a client certificate: the TLS handshake fails.
    nats.auth = bus::NatsAuth {
        nkey: Some(s.users["agent"].seed_file.clone()),
        ca: Some(s.ca.ca.clone()),
        ..Default::default()
    };
    assert!(nats.options().await.unwrap().connect(&s.nats.url).await.is_err(), "client without certificate accepted");
    // In clear: the server requires TLS.
    let clear = s.nats.url.replace("tls://", "nats://");
    nats.auth = bus::NatsAuth { nkey: Some(s.users["agent"].seed_file.clone()), ..Default::default() };
    assert!(nats.options().await.unwrap().connect(&clear).await.is_err(), "client in clear accepted");
}
