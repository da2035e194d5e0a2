//! Client secrets: generated at random, stored only as a salted SHA-256 hash,
//! compared in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Random bytes in a generated secret.
const SECRET_BYTES: usize = 32;
/// Random bytes in a salt.
const SALT_BYTES: usize = 16;

/// A new client secret: 32 random bytes, base64url without padding.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; SECRET_BYTES];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `salt$hex(sha256(salt ‖ secret))`, with a fresh random hex salt.
pub fn hash_secret(secret: &str) -> String {
    let mut salt = [0u8; SALT_BYTES];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = hex::encode(salt);
    let digest = digest(&salt, secret);
    format!("{salt}${}", hex::encode(digest))
}

/// Whether `secret` matches a hash made by [`hash_secret`]. A malformed hash
/// matches nothing. The digest comparison takes the same time wherever the
/// first difference is.
pub fn verify_secret(secret: &str, hash: &str) -> bool {
    let Some((salt, expected_hex)) = hash.split_once('$') else {
        return false;
    };
    let Ok(expected) = hex::decode(expected_hex) else {
        return false;
    };
    let actual = digest(salt, secret);
    actual.as_slice().ct_eq(expected.as_slice()).into()
}

fn digest(salt: &str, secret: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update(secret.as_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_verifies_against_its_own_hash_only() {
        let secret = generate_secret();
        assert_eq!(secret.len(), 43, "32 bytes in unpadded base64url");
        let hash = hash_secret(&secret);
        assert!(verify_secret(&secret, &hash));
        assert!(!verify_secret("not-it", &hash));
        assert!(!verify_secret(&generate_secret(), &hash));
    }

    #[test]
    fn the_same_secret_hashes_differently_each_time() {
        assert_ne!(hash_secret("s"), hash_secret("s"));
    }

    #[test]
    fn malformed_hashes_match_nothing() {
        for hash in ["", "$", "nodollar", "salt$nothex", "salt$"] {
            assert!(!verify_secret("", hash), "{hash:?}");
            assert!(!verify_secret("x", hash), "{hash:?}");
        }
    }
}
