//! Secrets at rest: AES-256-GCM under a ring of master keys.
//!
//! Stored form: `version (1) | key id length (1) | key id | nonce (12) | ciphertext+tag`.
//! The key id says which master key decrypts, so `STEWRD_MASTER_KEYS` can hold
//! several keys (the first encrypts, all decrypt) and rotation needs no downtime.
//! The associated data binds each ciphertext to its header, its project and its
//! field: a ciphertext copied into another project's row, or into another column,
//! does not decrypt.

use std::fmt;

use aes_gcm::{
    Aes256Gcm, Key, Nonce,
    aead::{Aead, KeyInit, Payload},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::domain::id::ProjectId;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;
const MAX_KEY_ID_LEN: usize = 32;

/// Which stored secret a ciphertext is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretField {
    /// A project's provider API key.
    ProviderKey,
    /// A project's webhook signing secret.
    WebhookSecret,
    /// The data key of one of a project's files.
    FileKey,
    /// The header values a project sends its MCP servers.
    McpHeaders,
    /// A run's browser state (its cookies and local storage).
    BrowserState,
}

impl SecretField {
    fn label(self) -> &'static [u8] {
        match self {
            Self::ProviderKey => b"provider_key",
            Self::WebhookSecret => b"webhook_secret",
            Self::FileKey => b"file_key",
            Self::McpHeaders => b"mcp_headers",
            Self::BrowserState => b"browser_state",
        }
    }
}

/// Why a ciphertext did not decrypt. Never carries key material.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("the secret was encrypted under master key {0:?}, which is not in STEWRD_MASTER_KEYS")]
    UnknownKey(String),
    #[error("the stored secret is not in a format this version of stewrd reads")]
    Malformed,
    #[error("the stored secret failed authentication (altered, or bound to another project)")]
    Rejected,
}

/// Why `STEWRD_MASTER_KEYS` cannot be used. Names the entry, never key material.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    #[error("entry {0} is not `id:base64-key`")]
    NotAnEntry(usize),
    #[error(
        "entry {0}: the key id must be 1-{MAX_KEY_ID_LEN} characters of A-Z, a-z, 0-9, '-' or '_'"
    )]
    BadId(usize),
    #[error("entry {0}: key id {1:?} appears twice")]
    RepeatedId(usize, String),
    #[error("entry {0} ({1}): the key is not valid base64")]
    NotBase64(usize, String),
    #[error("entry {0} ({1}): the key must be {KEY_LEN} bytes, got {2}")]
    WrongLength(usize, String, usize),
    #[error("no key given")]
    Empty,
}

/// One master key. Its bytes live only inside the cipher, which zeroizes them.
struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The master keys: the first encrypts, every one decrypts.
pub struct MasterKeyRing {
    keys: Vec<MasterKey>,
}

impl fmt::Debug for MasterKeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("MasterKeyRing")
            .field("key_ids", &ids)
            .field("keys", &"[redacted]")
            .finish()
    }
}

impl MasterKeyRing {
    /// Parses `id:base64(32 bytes)[,id:base64…]`. The error says what is wrong
    /// without repeating any key material.
    pub fn parse(text: &str) -> Result<Self, KeyRingError> {
        let mut keys: Vec<MasterKey> = Vec::new();
        for (position, entry) in text.split(',').map(str::trim).enumerate() {
            let n = position + 1;
            let (id, encoded) = entry.split_once(':').ok_or(KeyRingError::NotAnEntry(n))?;
            let id = id.trim();
            if id.is_empty()
                || id.len() > MAX_KEY_ID_LEN
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(KeyRingError::BadId(n));
            }
            if keys.iter().any(|key| key.id == id) {
                return Err(KeyRingError::RepeatedId(n, id.to_owned()));
            }
            let bytes = Zeroizing::new(
                STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| KeyRingError::NotBase64(n, id.to_owned()))?,
            );
            if bytes.len() != KEY_LEN {
                return Err(KeyRingError::WrongLength(n, id.to_owned(), bytes.len()));
            }
            keys.push(MasterKey {
                id: id.to_owned(),
                cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
            });
        }
        if keys.is_empty() {
            return Err(KeyRingError::Empty);
        }
        Ok(Self { keys })
    }

    /// A new random key, as one `id:base64` entry for `STEWRD_MASTER_KEYS`.
    pub fn generate_entry(id: &str) -> SecretString {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::fill(&mut bytes[..]);
        SecretString::from(format!("{id}:{}", STANDARD.encode(bytes.as_slice())))
    }

    /// The id of the key new ciphertexts use.
    pub fn active_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Encrypts `plaintext` under the active key, bound to `project` and `field`.
    pub fn encrypt(&self, plaintext: &[u8], project: ProjectId, field: SecretField) -> Vec<u8> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let mut out = header(&key.id);
        let sealed = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &associated_data(&out, project, field),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts a stored secret of `project`'s `field`.
    pub fn decrypt(
        &self,
        stored: &[u8],
        project: ProjectId,
        field: SecretField,
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let parsed = Parsed::read(stored)?;
        let key = self
            .keys
            .iter()
            .find(|key| key.id.as_bytes() == parsed.key_id)
            .ok_or_else(|| {
                CryptoError::UnknownKey(String::from_utf8_lossy(parsed.key_id).into())
            })?;
        key.cipher
            .decrypt(
                Nonce::from_slice(parsed.nonce),
                Payload {
                    msg: parsed.sealed,
                    aad: &associated_data(parsed.header, project, field),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Rejected)
    }

    /// Decrypts a stored secret that is UTF-8 text (every secret stewrd stores).
    pub fn decrypt_text(
        &self,
        stored: &[u8],
        project: ProjectId,
        field: SecretField,
    ) -> Result<SecretString, CryptoError> {
        let bytes = self.decrypt(stored, project, field)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| CryptoError::Malformed)?;
        Ok(SecretString::from(text))
    }

    /// Whether a stored secret is under a key other than the active one.
    pub fn needs_rotation(&self, stored: &[u8]) -> bool {
        Parsed::read(stored).map_or(true, |parsed| parsed.key_id != self.active_id().as_bytes())
    }
}

fn header(key_id: &str) -> Vec<u8> {
    let mut header = Vec::with_capacity(2 + key_id.len() + NONCE_LEN + 64);
    header.push(VERSION);
    header.push(key_id.len() as u8);
    header.extend_from_slice(key_id.as_bytes());
    header
}

fn associated_data(header: &[u8], project: ProjectId, field: SecretField) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + 16 + 16);
    aad.extend_from_slice(header);
    aad.extend_from_slice(project.0.as_bytes());
    aad.extend_from_slice(field.label());
    aad
}

struct Parsed<'a> {
    header: &'a [u8],
    key_id: &'a [u8],
    nonce: &'a [u8],
    sealed: &'a [u8],
}

impl<'a> Parsed<'a> {
    fn read(stored: &'a [u8]) -> Result<Self, CryptoError> {
        let (&version, rest) = stored.split_first().ok_or(CryptoError::Malformed)?;
        let (&id_len, rest) = rest.split_first().ok_or(CryptoError::Malformed)?;
        let id_len = usize::from(id_len);
        // A tag alone is 16 bytes; anything shorter cannot be ours.
        if version != VERSION || rest.len() < id_len + NONCE_LEN + 16 {
            return Err(CryptoError::Malformed);
        }
        let (key_id, rest) = rest.split_at(id_len);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        Ok(Self {
            header: &stored[..2 + id_len],
            key_id,
            nonce,
            sealed,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use secrecy::ExposeSecret;

    /// Compiles only if `T` wipes itself when dropped.
    fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}

    #[test]
    fn the_expanded_master_key_is_wiped_on_drop() {
        // Aes256Gcm keeps its key as an expanded AES-256 key schedule.
        wiped_on_drop::<aes::Aes256>();
    }

    use super::*;

    fn ring(text: &str) -> MasterKeyRing {
        MasterKeyRing::parse(text).expect("a valid ring")
    }

    fn entry(id: &str) -> String {
        MasterKeyRing::generate_entry(id).expose_secret().to_owned()
    }

    #[test]
    fn a_secret_round_trips() {
        let keys = ring(&entry("k1"));
        let project = ProjectId::new();
        let stored = keys.encrypt(b"sk-live-123", project, SecretField::ProviderKey);
        let plain = keys
            .decrypt(&stored, project, SecretField::ProviderKey)
            .expect("decrypts");
        assert_eq!(plain.as_slice(), b"sk-live-123");
        assert!(!stored.windows(11).any(|w| w == b"sk-live-123"));
    }

    #[test]
    fn any_altered_byte_is_rejected() {
        let keys = ring(&entry("k1"));
        let project = ProjectId::new();
        let stored = keys.encrypt(b"sk-live-123", project, SecretField::ProviderKey);
        for index in 0..stored.len() {
            let mut altered = stored.clone();
            altered[index] ^= 0x01;
            assert!(
                keys.decrypt(&altered, project, SecretField::ProviderKey)
                    .is_err(),
                "flipping byte {index} went unnoticed"
            );
        }
        assert!(
            keys.decrypt(
                &stored[..stored.len() - 1],
                project,
                SecretField::ProviderKey
            )
            .is_err()
        );
        assert_eq!(
            keys.decrypt(&[], project, SecretField::ProviderKey).err(),
            Some(CryptoError::Malformed)
        );
    }

    #[test]
    fn a_ciphertext_does_not_decrypt_for_another_project_or_field() {
        let keys = ring(&entry("k1"));
        let owner = ProjectId::new();
        let stored = keys.encrypt(b"sk-live-123", owner, SecretField::ProviderKey);
        assert_eq!(
            keys.decrypt(&stored, ProjectId::new(), SecretField::ProviderKey)
                .err(),
            Some(CryptoError::Rejected)
        );
        assert_eq!(
            keys.decrypt(&stored, owner, SecretField::WebhookSecret)
                .err(),
            Some(CryptoError::Rejected)
        );
    }

    #[test]
    fn every_key_of_the_ring_decrypts_and_only_the_first_encrypts() {
        let (a, b, c) = (entry("a"), entry("b"), entry("c"));
        let project = ProjectId::new();
        let under = |first: &str| ring(first).encrypt(b"secret", project, SecretField::ProviderKey);
        let (by_a, by_b, by_c) = (under(&a), under(&b), under(&c));
        let all = ring(&format!("{c},{a},{b}"));
        assert_eq!(all.active_id(), "c");
        for stored in [&by_a, &by_b, &by_c] {
            let plain = all
                .decrypt(stored, project, SecretField::ProviderKey)
                .expect("decrypts");
            assert_eq!(plain.as_slice(), b"secret");
        }
        assert!(!all.needs_rotation(&by_c));
        assert!(all.needs_rotation(&by_a) && all.needs_rotation(&by_b));
        let without_a = ring(&format!("{c},{b}"));
        assert_eq!(
            without_a
                .decrypt(&by_a, project, SecretField::ProviderKey)
                .err(),
            Some(CryptoError::UnknownKey("a".into()))
        );
    }

    #[test]
    fn a_hundred_thousand_encryptions_use_distinct_nonces() {
        let keys = ring(&entry("k1"));
        let project = ProjectId::new();
        let header_len = 2 + "k1".len();
        let nonces: HashSet<Vec<u8>> = (0..100_000)
            .map(|_| {
                let stored = keys.encrypt(b"x", project, SecretField::ProviderKey);
                stored[header_len..header_len + NONCE_LEN].to_vec()
            })
            .collect();
        assert_eq!(nonces.len(), 100_000);
    }

    #[test]
    fn bad_rings_are_refused_without_echoing_key_material() {
        let short = format!("k1:{}", STANDARD.encode([7u8; 16]));
        for (text, expected) in [
            ("", "not `id:base64-key`"),
            ("k1", "not `id:base64-key`"),
            ("k1:@@@notbase64", "not valid base64"),
            (short.as_str(), "must be 32 bytes"),
            ("bad id:AAAA", "key id"),
        ] {
            let error = MasterKeyRing::parse(text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains(expected), "{text:?} → {error}");
            assert!(!error.contains("@@@") && !error.contains(&STANDARD.encode([7u8; 16])));
        }
        let twice = format!("{},{}", entry("k1"), entry("k1"));
        assert!(matches!(
            MasterKeyRing::parse(&twice),
            Err(KeyRingError::RepeatedId(2, _))
        ));
    }

    #[test]
    fn debug_output_shows_ids_only() {
        let text = entry("prod-2026");
        let keys = ring(&text);
        let debug = format!("{keys:?}");
        assert!(debug.contains("prod-2026"));
        assert!(!debug.contains(text.split(':').nth(1).unwrap_or_default()));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn any_bytes_are_refused_as_a_ciphertext_without_panicking(stored in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let ring = MasterKeyRing::parse(MasterKeyRing::generate_entry("k1").expose_secret()).expect("a ring");
            proptest::prop_assert!(ring.decrypt(&stored, ProjectId::new(), SecretField::ProviderKey).is_err());
            let _ = ring.needs_rotation(&stored);
        }

        #[test]
        fn any_altered_ciphertext_is_refused(secret in "[!-~]{1,64}", at in 0..200usize, flip in 1..=255u8) {
            let ring = MasterKeyRing::parse(MasterKeyRing::generate_entry("k1").expose_secret()).expect("a ring");
            let project = ProjectId::new();
            let mut stored = ring.encrypt(secret.as_bytes(), project, SecretField::ProviderKey);
            let at = at % stored.len();
            stored[at] ^= flip;
            proptest::prop_assert!(ring.decrypt(&stored, project, SecretField::ProviderKey).is_err());
        }
    }
}
