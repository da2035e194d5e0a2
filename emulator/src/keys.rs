//! The local issuer's signing key: RSA 2048, generated on first run, kept as
//! a PKCS#8 PEM file readable by its owner only, and published as a JWK whose
//! `kid` is its RFC 7638 thumbprint.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::EncodingKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// File name of the key inside the data directory.
pub const KEY_FILE: &str = "issuer-key.pem";

/// Modulus size of a generated key.
const KEY_BITS: usize = 2048;

/// A loaded signing key, ready to sign and to be published.
pub struct SigningKey {
    encoding: EncodingKey,
    public: RsaPublicKey,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads `data_dir/issuer-key.pem`, or generates a key and writes it there
    /// (mode 0600, written to a temporary file then renamed into place).
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<SigningKey> {
        let path = data_dir.join(KEY_FILE);
        match fs::read_to_string(&path) {
            Ok(pem) => {
                warn_if_readable_by_others(&path);
                Self::from_pkcs8_pem(&pem)
                    .with_context(|| format!("cannot read the signing key {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(data_dir).with_context(|| {
                    format!("cannot create the data directory {}", data_dir.display())
                })?;
                let key = RsaPrivateKey::new(&mut rand::thread_rng(), KEY_BITS)
                    .context("cannot generate an RSA key")?;
                let pem = key
                    .to_pkcs8_pem(LineEnding::LF)
                    .context("cannot encode the signing key")?;
                write_private(&path, pem.as_bytes())?;
                tracing::info!(path = %path.display(), "generated a new issuer signing key");
                Self::from_pkcs8_pem(&pem)
            }
            Err(e) => {
                Err(e).with_context(|| format!("cannot read the signing key {}", path.display()))
            }
        }
    }

    /// A key from PKCS#8 PEM text.
    pub fn from_pkcs8_pem(pem: &str) -> anyhow::Result<SigningKey> {
        let private = RsaPrivateKey::from_pkcs8_pem(pem).context("not a PKCS#8 RSA private key")?;
        let encoding =
            EncodingKey::from_rsa_pem(pem.as_bytes()).context("jsonwebtoken rejects the key")?;
        let public = private.to_public_key();
        let kid = thumbprint(&public);
        Ok(SigningKey {
            encoding,
            public,
            kid,
        })
    }

    /// The key id: the RFC 7638 SHA-256 thumbprint, base64url.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key for `jsonwebtoken::encode`.
    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    /// The public key as a JWK (`kty`, `kid`, `use`, `alg`, `n`, `e`).
    pub fn jwk(&self) -> Value {
        let (n, e) = components(&self.public);
        json!({
            "kty": "RSA",
            "kid": self.kid,
            "use": "sig",
            "alg": "RS256",
            "n": n,
            "e": e,
        })
    }
}

/// `n` and `e` as unpadded base64url of their big-endian bytes.
fn components(public: &RsaPublicKey) -> (String, String) {
    (
        URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    )
}

/// RFC 7638: SHA-256 over the required members in lexicographic order, no
/// whitespace.
fn thumbprint(public: &RsaPublicKey) -> String {
    let (n, e) = components(public);
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Writes `bytes` to `path` so that no other user can ever read them: a
/// sibling temporary file created with mode 0600, synced, then renamed.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = temp_sibling(path);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| -> std::io::Result<()> {
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "the issuer signing key is readable by other users; chmod 600 it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        // The example key of RFC 7638 §3.1 and its published thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let e = "AQAB";
        let n = rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(n).unwrap());
        let e = rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(e).unwrap());
        let public = RsaPublicKey::new(n, e).unwrap();
        assert_eq!(
            thumbprint(&public),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
