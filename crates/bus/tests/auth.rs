//! User/password and token logins against a nats-server that requires them: given in the URL
//! (`nats://user:pass@host`, `nats://token@host`) or as `[nats]` settings, the way every role
//! connects; wrong or missing credentials are refused.

use bus::{Nats, NatsAuth};
use testkit::NatsServer;

async fn can_connect(nats: &Nats) -> bool {
    match nats.options().await {
        Ok(o) => o.connect(nats.url.as_str()).await.is_ok(),
        Err(_) => false,
    }
}

#[tokio::test]
async fn user_and_password_in_the_url_or_the_settings() {
    let server =
        NatsServer::start_with_config("authorization { users: [ { user: sensor, password: \"p@ss:word\" } ] }\n", &[])
            .unwrap();
    let hostport = server.url.trim_start_matches("nats://").to_string();
    assert!(can_connect(&Nats::new(format!("nats://sensor:p%40ss%3Aword@{hostport}"))).await, "URL user info");
    let settings = NatsAuth { user: Some("sensor".into()), password: Some("p@ss:word".into()), ..Default::default() };
    assert!(can_connect(&Nats { url: server.url.clone(), auth: settings.clone() }).await, "settings");
    // Through the roles' own connect (which retries, so success is the connected state).
    let client = bus::connect(&Nats { url: server.url.clone(), auth: settings }, "test").await.unwrap();
    client.flush().await.unwrap();
    assert!(!can_connect(&Nats::new(format!("nats://sensor:wrong@{hostport}"))).await, "wrong password accepted");
    assert!(!can_connect(&Nats::new(server.url.clone())).await, "anonymous client accepted");
}

#[tokio::test]
async fn token_in_the_url_or_the_settings() {
    let server = NatsServer::start_with_config("authorization { token: \"s3cret\" }\n", &[]).unwrap();
    let hostport = server.url.trim_start_matches("nats://").to_string();
    assert!(can_connect(&Nats::new(format!("nats://s3cret@{hostport}"))).await, "URL token");
    let auth = NatsAuth { token: Some("s3cret".into()), ..Default::default() };
    assert!(can_connect(&Nats { url: server.url.clone(), auth }).await, "token setting");
    assert!(!can_connect(&Nats::new(format!("nats://nope@{hostport}"))).await, "wrong token accepted");
    assert!(!can_connect(&Nats::new(server.url.clone())).await, "anonymous client accepted");
}

#[tokio::test]
async fn unusable_client_certificates_are_refused_at_start_with_a_reason() {
    let ca = testkit::pki::TestCa::new("NTA test CA").unwrap();
    let a = ca.issue("a", &["role-a"]).unwrap();
    let b = ca.issue("b", &["role-b"]).unwrap();
    let good = NatsAuth {
        ca: Some(ca.ca.clone()),
        cert: Some(a.cert.clone()),
        key: Some(a.key.clone()),
        ..Default::default()
    };
    assert!(Nats { url: "tls://localhost:1".into(), auth: good.clone() }.options().await.is_ok());
    // Another certificate's key.
    let mismatched = NatsAuth { key: Some(b.key.clone()), ..good.clone() };
    let err = Nats { url: "tls://localhost:1".into(), auth: mismatched }.options().await.unwrap_err().to_string();
    assert!(err.contains("nats.cert/nats.key cannot be used"), "{err}");
    // An X.509 v1 certificate, as `openssl x509 -req` makes without extensions.
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("v1.pem");
    let csr = dir.path().join("c.csr");
    let ok = std::process::Command::new("openssl")
        .args(["req", "-new", "-subj", "/CN=v1", "-key"])
        .arg(&a.key)
        .arg("-out")
        .arg(&csr)
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl req");
    let ok = std::process::Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(&ca.ca)
        .arg("-CAkey")
        .arg(ca.dir().join("ca.key"))
        .arg("-CAcreateserial")
        .arg("-out")
        .arg(&v1)
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl x509");
    let old = NatsAuth { cert: Some(v1), ..good };
    let err = Nats { url: "tls://localhost:1".into(), auth: old }.options().await.unwrap_err().to_string();
    assert!(err.contains("cannot be used"), "{err}");
}
