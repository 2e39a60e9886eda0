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
