//! Connecting to NATS: the server URL plus the `[nats]` credentials and TLS settings, the same
//! for every role, so a server that requires authentication or TLS serves the whole pipeline.

use anyhow::{bail, Context, Result};
use async_nats::{ConnectOptions, Event};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

settings::settings! {
    /// Credentials and TLS of the connection to NATS (`[nats]`), used by every role. At most
    /// one way to authenticate: user/password, token, NKey seed or credentials file.
    #[derive(Debug, Clone, PartialEq)]
    pub struct NatsAuth {
        /// User name (with `password`); `nats://user:password@host` in `nats_url` works too.
        pub user: Option<String> = None,
        /// Password of `user`. A secret: environment or file only.
        #[setting(secret = true)]
        pub password: Option<String> = None,
        /// Authentication token; `nats://token@host` in `nats_url` works too. A secret:
        /// environment or file only.
        #[setting(secret = true)]
        pub token: Option<String> = None,
        /// File holding an NKey user seed (`SU...`, as `nta nkey FILE`, `nk -gen user` or `nsc` write it).
        pub nkey: Option<PathBuf> = None,
        /// Credentials file (`.creds`: user JWT and NKey seed) of a server in operator mode.
        pub creds: Option<PathBuf> = None,
        /// CA certificate (PEM) that signed the server's certificate; setting it requires TLS.
        pub ca: Option<PathBuf> = None,
        /// Client certificate (PEM) for servers that verify clients (`verify: true`), with `key`.
        pub cert: Option<PathBuf> = None,
        /// Private key (PEM) of `cert`.
        pub key: Option<PathBuf> = None,
        /// Require TLS even without `ca` (the certificate is then checked against the system's
        /// roots); a `tls://` URL requires it too.
        pub tls: bool = false,
    }
}

/// Where a role finds NATS and how it proves who it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Nats {
    /// `nats://host:port` (several comma-separated), `tls://...` for TLS.
    pub url: String,
    pub auth: NatsAuth,
}

impl Nats {
    /// The server at `url`, with no credentials beyond what the URL carries.
    pub fn new(url: impl Into<String>) -> Nats {
        Nats { url: url.into(), auth: NatsAuth::default() }
    }

    /// The URL with any password or token hidden, for messages and logs.
    pub fn redacted_url(&self) -> String {
        settings::redact_nats_url(&self.url)
    }

    /// The servers of the (comma-separated) URL without their user info: async-nats logs in to
    /// every server with the credentials of the options, which [`Nats::options`] takes from it.
    pub fn servers(&self) -> Result<Vec<async_nats::ServerAddr>> {
        let servers = self
            .url
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|entry| {
                let (bare, _) = split_userinfo(entry);
                bare.parse::<async_nats::ServerAddr>()
                    .with_context(|| format!("nats_url: bad server {}", settings::redact_nats_url(entry)))
            })
            .collect::<Result<Vec<_>>>()?;
        if servers.is_empty() {
            bail!("nats_url names no server");
        }
        Ok(servers)
    }

    /// The client options these settings ask for (everything but the server address).
    pub async fn options(&self) -> Result<ConnectOptions> {
        let a = &self.auth;
        let (url_user, url_pass) = url_userinfo(&self.url)?;
        let user = a.user.clone().filter(|u| !u.is_empty()).or(url_user.clone().filter(|_| url_pass.is_some()));
        let password = a.password.clone().filter(|p| !p.is_empty()).or(url_pass);
        // `nats://token@host`: userinfo without a password is a token, as nats-server reads it.
        let token = a.token.clone().filter(|t| !t.is_empty()).or(url_user.filter(|_| user.is_none()));
        let methods = [user.is_some(), token.is_some(), a.nkey.is_some(), a.creds.is_some()];
        if methods.iter().filter(|m| **m).count() > 1 {
            bail!("NATS: set only one of user/password, token, nkey and creds");
        }
        if a.password.is_some() && user.is_none() {
            bail!("NATS: nats.password is set without nats.user");
        }
        let mut o = ConnectOptions::new();
        if let Some(user) = user {
            o = o.user_and_password(user, password.unwrap_or_default());
        }
        if let Some(token) = token {
            o = o.token(token);
        }
        if let Some(path) = &a.nkey {
            let seed =
                std::fs::read_to_string(path).with_context(|| format!("reading NKey seed {}", path.display()))?;
            // A seed file may hold comments or a public key too (nsc output): take the seed line.
            let seed = seed
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with('S'))
                .with_context(|| format!("{}: no NKey seed (a line starting with S)", path.display()))?;
            nkeys::KeyPair::from_seed(seed).with_context(|| format!("{}: not a valid NKey seed", path.display()))?;
            o = o.nkey(seed.to_string());
        }
        if let Some(path) = &a.creds {
            o = o
                .credentials_file(path)
                .await
                .with_context(|| format!("reading NATS credentials {}", path.display()))?;
        }
        // The files are read here too, so that a bad one is an error with a reason at start:
        // async-nats only reports "TLS error", at every connection attempt.
        if let Some(ca) = &a.ca {
            if read_certs("nats.ca", ca)?.is_empty() {
                bail!("nats.ca: no PEM certificate in {}", ca.display());
            }
            o = o.add_root_certificates(ca.clone()).require_tls(true);
        }
        match (&a.cert, &a.key) {
            (Some(cert), Some(key)) => {
                check_client_identity(cert, key)?;
                o = o.add_client_certificate(cert.clone(), key.clone()).require_tls(true)
            }
            (None, None) => {}
            _ => bail!("NATS: nats.cert and nats.key go together"),
        }
        if a.tls {
            o = o.require_tls(true);
        }
        Ok(o)
    }
}

/// The PEM certificates in `path` (setting `what`).
fn read_certs(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("{what}: reading {}", path.display()))
}

/// Checks `nats.cert` and `nats.key` as rustls will use them: a certificate without X.509 v3
/// extensions (what `openssl x509 -req` makes without `-extfile`) or a key of another
/// certificate is refused with a reason here.
fn check_client_identity(cert: &Path, key: &Path) -> Result<()> {
    let certs = read_certs("nats.cert", cert)?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("nats.key: reading {}", key.display()))?;
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_client_auth_cert(certs, key)
        .map_err(|e| {
            anyhow::anyhow!(
                "nats.cert/nats.key cannot be used: {e} (the certificate must be X.509 v3 and belong to the key)"
            )
        })?;
    Ok(())
}

/// Creates an NKey user: writes its seed to `path` (a new file only its owner may read) and
/// returns the public key the server's configuration names it by.
pub fn create_nkey_user(path: &Path) -> Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let kp = nkeys::KeyPair::new_user();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {} (an existing file is never overwritten)", path.display()))?;
    writeln!(f, "{}", kp.seed()?)?;
    Ok(kp.public_key())
}

/// Connects to NATS under a client `name`, waiting for the server rather than failing when a
/// role starts before it (the client keeps reconnecting afterwards too). Refusals by the server
/// (bad credentials, a subject outside the role's permissions) are logged as errors: with
/// retries on, they would otherwise only show as a role that never makes progress.
pub async fn connect(nats: &Nats, name: &str) -> Result<async_nats::Client> {
    Ok(connect_with_refusals(nats, name).await?.0)
}

/// The last errors the server sent this connection (`-ERR`), for callers that must tell a
/// refused publication (a permissions violation only arrives this way: the publication itself
/// just gets no reply) from a slow one.
#[derive(Debug, Clone, Default)]
pub struct Refusals(Arc<std::sync::Mutex<std::collections::VecDeque<String>>>);

impl Refusals {
    const KEPT: usize = 16;

    fn record(&self, error: String) {
        let mut v = self.0.lock().unwrap();
        if v.len() == Self::KEPT {
            v.pop_front();
        }
        v.push_back(error);
    }

    /// The server's "Permissions Violation for Publish to <subject>", if it sent one.
    pub fn publish_denied(&self, subject: &str) -> Option<String> {
        let v = self.0.lock().unwrap();
        v.iter()
            .rev()
            .find(|e| e.to_ascii_lowercase().contains("permissions violation for publish") && e.contains(subject))
            .cloned()
    }
}

/// [`connect`], also returning what the server refuses on this connection.
pub async fn connect_with_refusals(nats: &Nats, name: &str) -> Result<(async_nats::Client, Refusals)> {
    let client_name = name.to_string();
    let refusals = Refusals::default();
    let seen = refusals.clone();
    let options = nats.options().await?.name(name).retry_on_initial_connect().event_callback(move |event| {
        let name = client_name.clone();
        let seen = seen.clone();
        async move {
            match event {
                Event::ServerError(e) => {
                    metrics::counter!("nta_nats_server_errors_total", "client" => name.clone()).increment(1);
                    tracing::error!(client = name, error = %e, "NATS server refused a request");
                    if let async_nats::ServerError::Other(text) = e {
                        seen.record(text);
                    }
                }
                Event::ClientError(e) => tracing::warn!(client = name, error = %e, "NATS client error"),
                Event::Disconnected => tracing::warn!(client = name, "disconnected from NATS"),
                Event::Connected => tracing::info!(client = name, "connected to NATS"),
                other => tracing::debug!(client = name, event = %other, "NATS event"),
            }
        }
    });
    // Reconnects never give up (async-nats' default, stated here because losing a node of a
    // cluster must cost a pause, never a role): each attempt tries the next server of the list
    // and those the cluster announces.
    let options = options.max_reconnects(None);
    let servers = nats.servers()?;
    let client =
        options.connect(servers).await.with_context(|| format!("connecting to NATS at {}", nats.redacted_url()))?;
    Ok((client, refusals))
}

/// `entry` (one server) without its user info, and the user info.
fn split_userinfo(entry: &str) -> (String, Option<&str>) {
    let (scheme, rest) = entry.split_once("://").map_or(("", entry), |(s, r)| (s, r));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let bare =
                if scheme.is_empty() { rest[at + 1..].to_string() } else { format!("{scheme}://{}", &rest[at + 1..]) };
            (bare, Some(&rest[..at]))
        }
        None => (entry.to_string(), None),
    }
}

/// The user and password in the servers of `url`, percent-decoded. The client logs in to every
/// server of the list the same way, so servers that carry user info must all carry the same.
fn url_userinfo(url: &str) -> Result<(Option<String>, Option<String>)> {
    let mut found: Option<&str> = None;
    for entry in url.split(',').map(str::trim) {
        let (_, Some(userinfo)) = split_userinfo(entry) else { continue };
        match found {
            Some(f) if f != userinfo => bail!(
                "nats_url: its servers carry different credentials ({}); a client logs in to every \
                 server the same way",
                settings::redact_nats_url(url)
            ),
            _ => found = Some(userinfo),
        }
    }
    let Some(userinfo) = found else { return Ok((None, None)) };
    let (user, pass) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (userinfo, None),
    };
    let user = Some(settings::percent_decode(user)).filter(|u| !u.is_empty());
    Ok((user, pass.map(settings::percent_decode)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_in_urls() {
        let info = |u: &str| url_userinfo(u).unwrap();
        assert_eq!(info("nats://127.0.0.1:4222"), (None, None));
        assert_eq!(info("nats://u:p%40ss@h:4222"), (Some("u".into()), Some("p@ss".into())));
        assert_eq!(info("u:p@h"), (Some("u".into()), Some("p".into())));
        // A list: the credentials may be on any server, the same on every one that has them.
        assert_eq!(info("nats://h1:4222, nats://tok@h2:4222,tls://tok@h3"), (Some("tok".into()), None));
        let err = url_userinfo("tls://tok@h:4222,nats://x:secret@h2").unwrap_err().to_string();
        assert!(err.contains("different credentials") && !err.contains("secret") && !err.contains("tok@"), "{err}");
    }

    #[test]
    fn url_lists_name_every_server_without_credentials() {
        let n = Nats::new("nats://u:p@a:4222, nats://u:p@b:4223,c:4224,tls://d,");
        let servers: Vec<String> = n.servers().unwrap().iter().map(|s| format!("{}:{}", s.host(), s.port())).collect();
        assert_eq!(servers, ["a:4222", "b:4223", "c:4224", "d:4222"]);
        assert!(n.servers().unwrap().iter().all(|s| !s.has_user_pass()));
        assert!(n.servers().unwrap()[3].tls_required());
        assert!(Nats::new(" , ").servers().is_err());
        let err = Nats::new("nats://a,http://u:secret@b").servers().unwrap_err();
        assert!(!format!("{err:#}").contains("secret"), "{err:#}");
        assert_eq!(n.redacted_url(), "nats://u:***@a:4222, nats://u:***@b:4223,c:4224,tls://d,");
    }

    #[tokio::test]
    async fn created_nkey_users_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("role.nk");
        let public = create_nkey_user(&path).unwrap();
        assert!(public.starts_with('U'), "{public}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(create_nkey_user(&path).is_err(), "overwrote a seed");
        let n = Nats { url: "nats://h".into(), auth: NatsAuth { nkey: Some(path), ..Default::default() } };
        assert!(n.options().await.is_ok());
    }

    #[tokio::test]
    async fn conflicting_or_missing_credentials_are_errors() {
        let mut n = Nats::new("nats://u:p@h");
        n.auth.token = Some("t".into());
        assert!(n.options().await.unwrap_err().to_string().contains("only one"));
        let mut n = Nats::new("nats://h");
        n.auth.password = Some("p".into());
        assert!(n.options().await.is_err());
        n.auth = NatsAuth { nkey: Some("/nonexistent/seed".into()), ..Default::default() };
        assert!(n.options().await.unwrap_err().to_string().contains("NKey seed"));
        n.auth = NatsAuth { cert: Some("/etc/hostname".into()), ..Default::default() };
        assert!(n.options().await.unwrap_err().to_string().contains("go together"));
        n.auth = NatsAuth { ca: Some("/etc/hostname".into()), ..Default::default() };
        assert!(n.options().await.unwrap_err().to_string().contains("no PEM certificate"));
        assert!(Nats::new("nats://u:p@h").options().await.is_ok());
    }
}
