//! NATS decentralized authentication (operator mode) for tests: an operator, accounts signed by
//! it and users signed by an account, as the JWTs `nsc` would issue, plus the user `.creds`
//! files clients load and the server configuration that trusts the operator. Everything is
//! generated per test, so no key material sits in the repository and no `nsc` is needed.
//!
//! The JWTs follow github.com/nats-io/jwt/v2, which nats-server decodes: header
//! `{"typ":"JWT","alg":"ed25519-nkey"}`, claims with the NATS-specific part under `nats`, and
//! an ed25519 signature (by the issuer's NKey) over `header.claims`, all base64url unpadded.

use anyhow::Result;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use nkeys::KeyPair;
use serde_json::{json, Value};
use sha2::{Digest, Sha512_256};
use std::path::Path;

/// The trust root: nats-server accepts accounts this operator signed, and nothing else.
pub struct Operator {
    key: KeyPair,
    pub jwt: String,
}

/// An account signed by an operator; the users it signs connect into it.
pub struct Account {
    key: KeyPair,
    pub jwt: String,
}

/// A user signed by an account: its JWT and NKey seed, the two halves of a `.creds` file.
pub struct User {
    pub public: String,
    pub jwt: String,
    pub seed: String,
}

/// Subjects a user may use; `None` leaves that direction unrestricted (the account's default).
#[derive(Debug, Clone, Default)]
pub struct Permissions {
    pub publish: Option<Vec<String>>,
    pub subscribe: Option<Vec<String>>,
}

impl Operator {
    /// A fresh, self-signed operator called `name`.
    pub fn new(name: &str) -> Result<Operator> {
        let key = KeyPair::new_operator();
        let jwt = sign(&key, &key.public_key(), name, json!({ "type": "operator", "version": 2 }))?;
        Ok(Operator { key, jwt })
    }

    pub fn public_key(&self) -> String {
        self.key.public_key()
    }

    /// A new account signed by this operator. With `jetstream`, its JetStream limits are
    /// unlimited: in operator mode an account without JetStream limits has no JetStream.
    pub fn account(&self, name: &str, jetstream: bool) -> Result<Account> {
        let key = KeyPair::new_account();
        // nsc's defaults: -1 is "no limit"; 0 would forbid (or, for JetStream, disable).
        let mut limits = json!({
            "subs": -1, "data": -1, "payload": -1,
            "imports": -1, "exports": -1, "wildcards": true, "conn": -1, "leaf": -1,
        });
        if jetstream {
            for field in ["mem_storage", "disk_storage", "streams", "consumer"] {
                limits[field] = json!(-1);
            }
        }
        let nats = json!({ "type": "account", "version": 2, "limits": limits });
        let jwt = sign(&self.key, &key.public_key(), name, nats)?;
        Ok(Account { key, jwt })
    }

    /// nats-server configuration for operator mode trusting this operator, with `accounts`
    /// known up front (the in-memory resolver has no way to learn accounts later) and `system`
    /// as the system account: without one, nats-server 2.9 refuses to start JetStream in
    /// operator mode ("system account not setup").
    pub fn server_config(&self, system: &Account, accounts: &[&Account]) -> String {
        let mut preload = String::new();
        for a in std::iter::once(system).chain(accounts.iter().copied()) {
            preload.push_str(&format!("  {}: {}\n", a.public_key(), a.jwt));
        }
        format!(
            "operator: {}\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{\n{preload}}}\n",
            self.jwt,
            system.public_key()
        )
    }
}

impl Account {
    pub fn public_key(&self) -> String {
        self.key.public_key()
    }

    /// A new user of this account, limited to `perms`.
    pub fn user(&self, name: &str, perms: &Permissions) -> Result<User> {
        let key = KeyPair::new_user();
        let mut nats = json!({ "type": "user", "version": 2, "subs": -1, "data": -1, "payload": -1 });
        for (field, allow) in [("pub", &perms.publish), ("sub", &perms.subscribe)] {
            if let Some(allow) = allow {
                nats[field] = json!({ "allow": allow });
            }
        }
        let jwt = sign(&self.key, &key.public_key(), name, nats)?;
        Ok(User { public: key.public_key(), jwt, seed: key.seed()? })
    }
}

impl User {
    /// The `.creds` file text, in the layout `nsc generate creds` writes and clients parse.
    pub fn creds(&self) -> String {
        format!(
            "-----BEGIN NATS USER JWT-----\n{}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\
             NKEYs are sensitive and should be treated as secrets.\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n\n\
             *************************************************************\n",
            self.jwt, self.seed
        )
    }

    /// Writes [`User::creds`] to `path`, readable by its owner only (it holds the seed).
    pub fn write_creds(&self, path: &Path) -> Result<()> {
        crate::pki::write_private(path, &self.creds())
    }
}

/// A JWT about `subject` issued (and signed) by `issuer`.
fn sign(issuer: &KeyPair, subject: &str, name: &str, nats: Value) -> Result<String> {
    let iat = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let mut claims = json!({ "iat": iat, "iss": issuer.public_key(), "name": name, "sub": subject, "nats": nats });
    // A unique ID made like the jwt library's (base32 SHA-512/256 of the claims without it), so
    // these JWTs look like nsc's; the server itself does not check it.
    let id = data_encoding::BASE32_NOPAD.encode(&Sha512_256::digest(serde_json::to_vec(&claims)?));
    claims["jti"] = json!(id);
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?);
    let signed = format!("{header}.{body}");
    let signature = issuer.sign(signed.as_bytes())?;
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwts_are_signed_by_their_issuer_and_name_their_subject() {
        let op = Operator::new("op").unwrap();
        let acct = op.account("acct", true).unwrap();
        let user = acct.user("u", &Permissions { publish: Some(vec!["a.b".into()]), subscribe: None }).unwrap();
        for (jwt, issuer, subject) in [
            (&op.jwt, op.public_key(), op.public_key()),
            (&acct.jwt, op.public_key(), acct.public_key()),
            (&user.jwt, acct.public_key(), user.public.clone()),
        ] {
            let parts: Vec<&str> = jwt.split('.').collect();
            assert_eq!(parts.len(), 3);
            let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
            assert_eq!(claims["iss"], json!(issuer));
            assert_eq!(claims["sub"], json!(subject));
            let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
            let signed = &jwt[..parts[0].len() + 1 + parts[1].len()];
            KeyPair::from_public_key(&issuer).unwrap().verify(signed.as_bytes(), &sig).unwrap();
        }
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(acct.jwt.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(claims["nats"]["limits"]["disk_storage"], json!(-1));
        assert!(user.creds().contains(&format!("-----BEGIN USER NKEY SEED-----\n{}\n", user.seed)));
    }
}
