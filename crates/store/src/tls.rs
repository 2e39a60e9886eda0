//! TLS to PostgreSQL as libpq means it: the `sslmode` of the database URL (`disable`, `prefer`
//! (the default), `require`, `verify-ca`, `verify-full`) with `sslrootcert`, and `sslcert` /
//! `sslkey` for servers that want a client certificate. tokio-postgres only knows `disable`,
//! `prefer` and `require` and no certificate parameters, so [`DbConfig::parse`] takes these out
//! of the URL and builds the rustls configuration they ask for. Modes as in
//! <https://www.postgresql.org/docs/current/libpq-ssl.html>:
//!
//! * `prefer`: TLS when the server offers it, else in clear; the certificate is not checked.
//! * `require`: TLS or fail; the certificate is checked against `sslrootcert` when given (libpq
//!   then behaves as `verify-ca`), else not.
//! * `verify-ca`: TLS, the certificate must chain to `sslrootcert`.
//! * `verify-full`: as `verify-ca`, and the certificate must name the host connected to.

use anyhow::{bail, Context, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::Config;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<SslMode> {
        Ok(match s {
            "disable" => SslMode::Disable,
            // libpq's `allow` tries clear text first; TLS when offered is the safer reading.
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => bail!("sslmode {other:?}: expected disable, prefer, require, verify-ca or verify-full"),
        })
    }
}

/// A database URL read as libpq reads it: tokio-postgres's settings plus the TLS parameters.
#[derive(Clone)]
pub struct DbConfig {
    pub pg: Config,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
}

impl std::fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig").field("sslmode", &self.sslmode).field("sslrootcert", &self.sslrootcert).finish()
    }
}

/// The URL parameters handled here rather than by tokio-postgres.
const TLS_PARAMS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];

impl DbConfig {
    /// Parses a `postgres://` URL or a `key=value` connection string.
    pub fn parse(url: &str) -> Result<DbConfig> {
        let (rest, params) = take_tls_params(url);
        let mut pg =
            Config::from_str(&rest).with_context(|| format!("bad database url {}", settings::redact_url(url)))?;
        let get = |k: &str| params.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        let sslmode = get("sslmode").map(|m| m.parse()).transpose()?.unwrap_or(SslMode::Prefer);
        pg.ssl_mode(match sslmode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            _ => PgSslMode::Require,
        });
        let path = |k: &str| get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let cfg = DbConfig {
            pg,
            sslmode,
            sslrootcert: path("sslrootcert"),
            sslcert: path("sslcert"),
            sslkey: path("sslkey"),
        };
        if matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) && cfg.sslrootcert.is_none() {
            bail!(
                "sslmode={} needs sslrootcert=FILE (the CA certificate that signed the server's)",
                mode_name(sslmode)
            );
        }
        if cfg.sslcert.is_some() != cfg.sslkey.is_some() {
            bail!("sslcert and sslkey go together");
        }
        Ok(cfg)
    }

    /// The TLS connector for tokio-postgres (also used, unused, when `sslmode=disable`).
    pub fn tls(&self) -> Result<MakeRustlsConnect> {
        let provider = Arc::new(ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        // Whether the chain is checked (against sslrootcert), and the host name too.
        let (check_chain, check_name) = match self.sslmode {
            SslMode::Disable | SslMode::Prefer => (false, false),
            SslMode::Require => (self.sslrootcert.is_some(), false),
            SslMode::VerifyCa => (true, false),
            SslMode::VerifyFull => (true, true),
        };
        let chain = match (check_chain, &self.sslrootcert) {
            (true, Some(path)) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs("sslrootcert", path)? {
                    roots.add(cert).with_context(|| format!("sslrootcert {}", path.display()))?;
                }
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .with_context(|| format!("sslrootcert {}: no usable CA certificate", path.display()))?;
                Some(webpki)
            }
            (true, None) => bail!("sslmode={} needs sslrootcert=FILE", mode_name(self.sslmode)),
            (false, _) => None,
        };
        let verifier = Arc::new(Verifier { chain, check_name, provider });
        let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
        let config = match (&self.sslcert, &self.sslkey) {
            (Some(cert), Some(key)) => {
                let certs = read_certs("sslcert", cert)?;
                let key =
                    PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading sslkey {}", key.display()))?;
                builder.with_client_auth_cert(certs, key).context("sslcert/sslkey")?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(MakeRustlsConnect::new(config))
    }
}

/// The PEM certificates in `path` (URL parameter `what`).
fn read_certs(what: &str, path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading {what} {}", path.display()))
}

fn mode_name(m: SslMode) -> &'static str {
    match m {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}

/// Removes the [`TLS_PARAMS`] from a URL's query or a `key=value` string.
fn take_tls_params(url: &str) -> (String, Vec<(String, String)>) {
    let mut found = Vec::new();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else { return (url.to_string(), found) };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if TLS_PARAMS.contains(&k) {
                found.push((k.to_string(), settings::percent_decode(v)));
            } else {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        (rest, found)
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            match word.split_once('=') {
                Some((k, v)) if TLS_PARAMS.contains(&k.trim()) => {
                    found.push((k.trim().to_string(), v.trim_matches('\'').to_string()))
                }
                _ => kept.push(word),
            }
        }
        (kept.join(" "), found)
    }
}

/// The server certificate check of every mode. `prefer` and `require` without a root
/// certificate (`chain: None`) encrypt without authenticating the server, as libpq does;
/// `verify-ca` and `verify-full` run webpki's chain check, and `verify-ca` accepts a certificate
/// issued for another name (libpq checks the name only in `verify-full`). The handshake
/// signatures are checked in every mode.
#[derive(Debug)]
struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let c =
            DbConfig::parse("postgres://u@h:5/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x")
                .unwrap();
        assert_eq!(c.sslmode, SslMode::VerifyFull);
        assert_eq!(c.sslrootcert.as_deref(), Some(std::path::Path::new("/tmp/ca.pem")));
        assert_eq!(c.pg.get_application_name(), Some("x"));
        assert_eq!(c.pg.get_ssl_mode(), PgSslMode::Require);
        let c = DbConfig::parse("host=h user=u sslmode=disable dbname=d").unwrap();
        assert_eq!((c.sslmode, c.pg.get_dbname()), (SslMode::Disable, Some("d")));
        // libpq's default.
        assert_eq!(DbConfig::parse("postgres://u@h/db").unwrap().sslmode, SslMode::Prefer);
        assert!(DbConfig::parse("postgres://u@h/db?sslmode=verify-ca")
            .unwrap_err()
            .to_string()
            .contains("sslrootcert"));
        assert!(DbConfig::parse("postgres://u@h/db?sslmode=bogus").is_err());
        assert!(DbConfig::parse("postgres://u@h/db?sslcert=/a").is_err());
    }
}
