//! The `[nats] creds` setting end to end, against a nats-server in operator (decentralized
//! JWT) mode with JetStream: a `.creds` user gets exactly its permissions, JetStream included,
//! and the server refuses users it cannot trace back to its operator.

use async_nats::{jetstream, ConnectErrorKind};
use bus::streams::ensure_packets_stream;
use bus::{Nats, NatsAuth, StreamLimits, PACKETS_STREAM};
use std::path::{Path, PathBuf};
use std::time::Duration;
use testkit::jwt::{Operator, Permissions, User};

/// A sensor's permissions, as an agent's would be: publish its own packet subject, use the
/// JetStream API (stream creation, acks come back to `_INBOX`), nothing else.
fn sensor(sensor: &str) -> Permissions {
    Permissions {
        publish: Some(vec![format!("nta.packets.{sensor}"), "$JS.API.>".into()]),
        subscribe: Some(vec!["_INBOX.>".into()]),
    }
}

fn creds(dir: &Path, name: &str, user: &User) -> Nats {
    let path: PathBuf = dir.join(format!("{name}.creds"));
    user.write_creds(&path).unwrap();
    Nats { url: String::new(), auth: NatsAuth { creds: Some(path), ..Default::default() } }
}

#[tokio::test]
async fn creds_users_get_jetstream_within_their_permissions_and_strangers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let operator = Operator::new("nta-test").unwrap();
    let system = operator.account("SYS", false).unwrap();
    let nta = operator.account("NTA", true).unwrap();
    let server = testkit::NatsServer::start_with_config(&operator.server_config(&system, &[&nta]), &[]).unwrap();
    let with_url = |mut n: Nats| {
        n.url = server.url.clone();
        n
    };

    // Sensor 1 through the path every role takes: bus::connect with the creds file.
    let sensor1 = with_url(creds(dir.path(), "sensor1", &nta.user("sensor1", &sensor("sensor1")).unwrap()));
    let client = tokio::time::timeout(Duration::from_secs(10), bus::connect(&sensor1, "sensor1"))
        .await
        .expect("connecting with valid creds")
        .unwrap();
    let js = jetstream::new(client.clone());
    let mut stream = ensure_packets_stream(&js, &StreamLimits::default()).await.unwrap();
    let ack = js.publish("nta.packets.sensor1", "batch 1".into()).await.unwrap().await.unwrap();
    assert_eq!(ack.stream, PACKETS_STREAM);
    assert_eq!(stream.info().await.unwrap().state.messages, 1);

    // Sensor 2 may publish its own subject into the same stream, so what refuses sensor 1 on
    // that subject below is its permissions, not the subject itself.
    let sensor2 = with_url(creds(dir.path(), "sensor2", &nta.user("sensor2", &sensor("sensor2")).unwrap()));
    let js2 = jetstream::new(bus::connect(&sensor2, "sensor2").await.unwrap());
    js2.publish("nta.packets.sensor2", "batch 2".into()).await.unwrap().await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2);

    // Sensor 1 publishing as sensor 2: the server drops the message and says why.
    let (options, mut errors) = testkit::watch_server_errors(sensor1.options().await.unwrap());
    let watched = options.connect(server.url.as_str()).await.unwrap();
    watched.publish("nta.packets.sensor2", "forged".into()).await.unwrap();
    watched.flush().await.unwrap();
    let error = tokio::time::timeout(Duration::from_secs(5), errors.recv()).await.expect("no server error").unwrap();
    assert!(error.contains("Permissions Violation") && error.contains("nta.packets.sensor2"), "{error}");
    assert_eq!(stream.info().await.unwrap().state.messages, 2);

    // Users the operator never vouched for: one of an account the server was not given, one
    // of another operator's account, and no credentials at all.
    let unknown = operator.account("unknown", true).unwrap();
    let stranger = Operator::new("stranger").unwrap().account("NTA", true).unwrap();
    for (name, account) in [("unknown-account", &unknown), ("other-operator", &stranger)] {
        let nats = with_url(creds(dir.path(), name, &account.user(name, &sensor("sensor1")).unwrap()));
        let err = nats.options().await.unwrap().connect(server.url.as_str()).await.unwrap_err();
        assert_eq!(err.kind(), ConnectErrorKind::AuthorizationViolation, "{name}: {err}");
    }
    let err = async_nats::connect(server.url.as_str()).await.unwrap_err();
    assert_eq!(err.kind(), ConnectErrorKind::AuthorizationViolation, "{err}");
}
