//! TLS to PostgreSQL against a private server with `ssl = on` and a certificate from a test CA
//! (for `localhost` only), each `sslmode` as libpq means it; `pg_stat_ssl` says whether the
//! session really is encrypted.

use testkit::pg::PgServer;
use testkit::pki::TestCa;

async fn session_ssl(url: &str) -> anyhow::Result<bool> {
    let client = store::connect_creating(url).await?;
    Ok(client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await?.get(0))
}

#[tokio::test]
async fn sslmodes_as_libpq_means_them() {
    let ca = TestCa::new("NTA test CA").unwrap();
    let server_cert = ca.issue("server", &["localhost"]).unwrap();
    let pg = PgServer::start_tls(&server_cert, None).unwrap();
    let other_ca = TestCa::new("Someone else's CA").unwrap();
    let root = ca.ca.display().to_string();
    let url = |host: &str, params: &str| format!("postgres://postgres@{host}:{}/nta_tls?{params}", pg.port);

    // Verified, and the database created through the same TLS settings.
    assert!(session_ssl(&url("localhost", &format!("sslmode=verify-full&sslrootcert={root}"))).await.unwrap());
    assert!(session_ssl(&url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={root}"))).await.unwrap());
    // The certificate names localhost, not 127.0.0.1: only verify-full minds.
    let wrong_name = session_ssl(&url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={root}"))).await;
    assert!(wrong_name.is_err(), "verify-full accepted a certificate for another name");
    let wrong_ca = format!("sslmode=verify-ca&sslrootcert={}", other_ca.ca.display());
    assert!(session_ssl(&url("localhost", &wrong_ca)).await.is_err(), "verify-ca accepted an unknown CA");
    // With a root certificate, require verifies like verify-ca (libpq's rule).
    let require_wrong_ca = format!("sslmode=require&sslrootcert={}", other_ca.ca.display());
    assert!(session_ssl(&url("localhost", &require_wrong_ca)).await.is_err());
    // Encrypted without verification, as libpq does it.
    assert!(session_ssl(&url("127.0.0.1", "sslmode=require")).await.unwrap());
    // The default (`prefer`) takes TLS when offered; `disable` stays in clear.
    assert!(session_ssl(&format!("postgres://postgres@127.0.0.1:{}/nta_tls", pg.port)).await.unwrap());
    assert!(!session_ssl(&url("127.0.0.1", "sslmode=disable")).await.unwrap());
    // The same URL forms work in key=value strings.
    let kv =
        format!("host=localhost port={} user=postgres dbname=nta_tls sslmode=verify-full sslrootcert={root}", pg.port);
    assert!(session_ssl(&kv).await.unwrap());
}

#[tokio::test]
async fn client_certificates_are_presented() {
    let ca = TestCa::new("NTA test CA").unwrap();
    let pg = PgServer::start_tls(&ca.issue("server", &["localhost"]).unwrap(), Some(&ca.ca)).unwrap();
    let client = ca.issue("client", &["postgres"]).unwrap();
    let url = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
        pg.port,
        ca.ca.display(),
        client.cert.display(),
        client.key.display()
    );
    let c = store::connect_creating(&url).await.unwrap();
    let row = c.query_one("SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("/CN=postgres"));
}
