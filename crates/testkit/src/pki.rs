//! Test certificates and NKeys: a private CA issuing server and client certificates as PEM
//! files in a temporary directory, and NKey user seeds, so TLS and authentication are tested
//! against real servers without any key material committed to the repository.

use anyhow::Result;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::path::{Path, PathBuf};

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A CA whose certificate is `ca` (PEM; its key `ca.key` beside it), able to issue more
/// certificates into `dir`.
pub struct TestCa {
    pub ca: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    dir: tempfile::TempDir,
}

impl TestCa {
    /// A fresh CA named `name`.
    pub fn new(name: &str) -> Result<TestCa> {
        let dir = tempfile::tempdir()?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, cert.pem())?;
        // Its key too, for tests that sign with other tools (openssl).
        write_private(&dir.path().join("ca.key"), &key.serialize_pem())?;
        Ok(TestCa { ca, issuer: Issuer::new(params, key), dir })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A certificate for `names` (DNS names or IP addresses), written as `<file>.pem` and
    /// `<file>.key` (mode 0600, as servers require of keys).
    pub fn issue(&self, file: &str, names: &[&str]) -> Result<CertFiles> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or(file));
        let cert = params.signed_by(&key, &self.issuer)?;
        let files = CertFiles {
            cert: self.dir.path().join(format!("{file}.pem")),
            key: self.dir.path().join(format!("{file}.key")),
        };
        std::fs::write(&files.cert, cert.pem())?;
        write_private(&files.key, &key.serialize_pem())?;
        Ok(files)
    }
}

/// An NKey user: its public key (for the server's configuration) and its seed file (for the
/// client).
#[derive(Debug, Clone)]
pub struct NkeyUser {
    pub public: String,
    pub seed_file: PathBuf,
}

impl NkeyUser {
    /// A new user key whose seed is written to `dir/<name>.nk`.
    pub fn new(dir: &Path, name: &str) -> Result<NkeyUser> {
        let kp = nkeys::KeyPair::new_user();
        let seed_file = dir.join(format!("{name}.nk"));
        write_private(&seed_file, &(kp.seed()? + "\n"))?;
        Ok(NkeyUser { public: kp.public_key(), seed_file })
    }
}

/// Writes a file only its owner may read.
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}
