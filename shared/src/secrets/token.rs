//! Project API keys: `sk-stw_` followed by 32 random bytes in URL-safe base64.
//! Only a SHA-256 hash and a short display prefix are stored; the key itself is
//! shown once, at creation. A fast hash is right here (unlike for passwords):
//! the input has 256 bits of entropy, so there is nothing to brute-force.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::id::ApiKeyId;

/// Every project API key starts with this.
pub const API_KEY_PREFIX: &str = "sk-stw_";
/// Characters of the key kept for display (`sk-stw_` and 4 more), enough to tell
/// keys apart, far too few to guess the rest.
const DISPLAY_LEN: usize = API_KEY_PREFIX.len() + 4;

/// A freshly generated key: the secret for the caller, the rest for the database.
pub struct NewApiKey {
    /// The key's id (not secret).
    pub id: ApiKeyId,
    /// The key itself, shown once.
    pub secret: SecretString,
    /// The first characters, for lists and logs.
    pub display_prefix: String,
    /// SHA-256 of the whole key: what is stored and looked up.
    pub hash: [u8; 32],
}

/// Makes a new random key.
pub fn generate_api_key() -> NewApiKey {
    let mut random = [0u8; 32];
    rand::fill(&mut random);
    let key = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
    NewApiKey {
        id: ApiKeyId::new(),
        display_prefix: key[..DISPLAY_LEN].to_owned(),
        hash: hash_api_key(&key),
        secret: SecretString::from(key),
    }
}

/// The stored form of a key.
pub fn hash_api_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Whether `presented` is the key whose stored hash is `stored`, compared in
/// constant time.
pub fn api_key_matches(presented: &str, stored: &[u8]) -> bool {
    hash_api_key(presented).ct_eq(stored).into()
}

/// Compares a presented bearer token with a configured one (the admin token, the
/// metrics token) without revealing, through timing, how many leading bytes
/// matched or their length.
pub fn secret_token_matches(presented: &str, expected: &SecretString) -> bool {
    let presented = Sha256::digest(presented.as_bytes());
    let expected = Sha256::digest(expected.expose_secret().as_bytes());
    presented.ct_eq(&expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_has_the_prefix_and_256_bits_of_randomness() {
        let key = generate_api_key();
        let text = key.secret.expose_secret();
        assert!(text.starts_with(API_KEY_PREFIX));
        let body = URL_SAFE_NO_PAD
            .decode(&text[API_KEY_PREFIX.len()..])
            .unwrap_or_default();
        assert_eq!(body.len(), 32);
        assert!(text.starts_with(&key.display_prefix));
        assert_eq!(key.display_prefix.len(), 11);
    }

    #[test]
    fn two_keys_differ() {
        let a = generate_api_key();
        let b = generate_api_key();
        assert_ne!(a.secret.expose_secret(), b.secret.expose_secret());
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn only_the_right_key_matches_its_hash() {
        let key = generate_api_key();
        assert!(api_key_matches(key.secret.expose_secret(), &key.hash));
        assert!(!api_key_matches("sk-stw_wrong", &key.hash));
        assert!(!api_key_matches(
            key.secret.expose_secret(),
            &key.hash[..31]
        ));
    }

    #[test]
    fn the_admin_token_must_match_exactly() {
        let expected = SecretString::from("admin-secret");
        assert!(secret_token_matches("admin-secret", &expected));
        assert!(!secret_token_matches("admin-secre", &expected));
        assert!(!secret_token_matches("", &expected));
    }
}
