//! Helpers shared by the unit tests.

use std::sync::OnceLock;

use rsa::pkcs8::{EncodePrivateKey, LineEnding};

/// One signing key for every test that does not test key creation itself:
/// RSA key generation is slow in debug builds.
pub fn shared_key_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| {
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
    })
}
