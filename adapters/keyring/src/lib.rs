//! Key-encryption keys (KEKs) from a keyring file or an environment variable.
//!
//! Format, for both: one KEK per line (or comma-separated in the variable),
//! `<kek-id>:<base64 of 32 bytes>`; the first is active (wraps new data keys), the
//! others only unwrap keys wrapped before a rotation. Lines starting with `#` are
//! comments. An HSM would implement the same [`KeyEncryptionKey`] port.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use emr_domain::ids::PatientId;
use emr_eventstore::{DataKey, KeyEncryptionKey, KeyError, WrappedKey};
use zeroize::Zeroizing;

const AAD_PREFIX: &[u8] = b"emr-dek/1|";
const NONCE_LEN: usize = 24;

/// A keyring that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The file cannot be read or created.
    #[error("keyring file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// An entry is not `<id>:<base64 of 32 bytes>`.
    #[error("keyring entry {entry} is malformed: expected <kek-id>:<base64 of 32 bytes>")]
    Malformed {
        /// 1-based entry number.
        entry: usize,
    },
    /// No entries at all.
    #[error("the keyring holds no key-encryption key")]
    Empty,
}

/// KEKs by id, the first one active.
pub struct Keyring {
    active: String,
    keys: HashMap<String, Zeroizing<[u8; 32]>>,
}

impl Keyring {
    /// Parses the keyring text format.
    pub fn parse(text: &str) -> Result<Self, KeyringError> {
        let mut active = None;
        let mut keys = HashMap::new();
        let entries = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.starts_with('#'))
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|entry| !entry.is_empty());
        for (index, entry) in entries.enumerate() {
            let malformed = || KeyringError::Malformed { entry: index + 1 };
            let (id, encoded) = entry.split_once(':').ok_or_else(malformed)?;
            let bytes = Zeroizing::new(BASE64.decode(encoded.trim()).map_err(|_| malformed())?);
            let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| malformed())?;
            let id = id.trim();
            if id.is_empty() {
                return Err(malformed());
            }
            active.get_or_insert_with(|| id.to_owned());
            keys.insert(id.to_owned(), Zeroizing::new(key));
        }
        Ok(Self { active: active.ok_or(KeyringError::Empty)?, keys })
    }

    /// Reads a keyring file.
    pub fn load(path: &Path) -> Result<Self, KeyringError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| KeyringError::Io { path: path.to_owned(), source })?);
        Self::parse(&text)
    }

    /// Reads a keyring file, first creating it with one fresh KEK (mode 0600) if it
    /// does not exist: the embedded default.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyringError> {
        create_key_file(path, "kek-1", "EMR Ledger keyring: <kek-id>:<base64 key>, first line active. Losing this file loses all PHI.")?;
        Self::load(path)
    }

    fn cipher(&self, id: &str) -> Result<XChaCha20Poly1305, KeyError> {
        let key = self.keys.get(id).ok_or_else(|| KeyError::UnknownKek(id.to_owned()))?;
        Ok(XChaCha20Poly1305::new(key.as_slice().into()))
    }
}

/// Writes `path` with one fresh random key named `id` (mode 0600) unless it exists.
fn create_key_file(path: &Path, id: &str, comment: &str) -> Result<(), KeyringError> {
    if path.exists() {
        return Ok(());
    }
    let io = |source| KeyringError::Io { path: path.to_owned(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let key = XChaCha20Poly1305::generate_key(&mut OsRng);
    let text = Zeroizing::new(format!("# {comment}\n{id}:{}\n", BASE64.encode(key)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).and_then(|mut file| file.write_all(text.as_bytes()).and_then(|()| file.sync_all())).map_err(io)
}

/// The secret of the patient search index: keyed hashes of names, birth dates and
/// identifiers are computed with it, so the read models can be searched without
/// holding the values. Kept apart from the KEKs because it does not rotate with
/// them: a new index key means rebuilding the `search_index` projection.
///
/// Same format as a keyring (`<id>:<base64 of 32 bytes>`); the first entry is used.
pub struct IndexKey {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

impl IndexKey {
    /// Parses `<id>:<base64 of 32 bytes>` (e.g. from a secret).
    pub fn parse(text: &str) -> Result<Self, KeyringError> {
        let mut ring = Keyring::parse(text)?;
        let key = ring.keys.remove(&ring.active).ok_or(KeyringError::Empty)?;
        Ok(Self { id: ring.active, key })
    }

    /// Reads the key file, first creating it with a fresh key (mode 0600) if it does
    /// not exist: the embedded default.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyringError> {
        create_key_file(path, "index-1", "EMR Ledger search-index key: <id>:<base64 key>. A new key means rebuilding search_index.")?;
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| KeyringError::Io { path: path.to_owned(), source })?);
        Self::parse(&text)
    }

    /// Its id (for logs; never the key).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.key
    }
}

fn aad(subject: PatientId) -> Vec<u8> {
    [AAD_PREFIX, subject.to_string().as_bytes()].concat()
}

impl KeyEncryptionKey for Keyring {
    fn active_id(&self) -> &str {
        &self.active
    }

    fn wrap(&self, subject: PatientId, key: &DataKey) -> Result<WrappedKey, KeyError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher(&self.active)?
            .encrypt(&nonce, Payload { msg: key.as_bytes(), aad: &aad(subject) })
            .map_err(|_| KeyError::Corrupt { reason: "wrapping failed".into() })?;
        Ok(WrappedKey::new(&self.active, &[nonce.as_slice(), &sealed].concat()))
    }

    fn unwrap(&self, subject: PatientId, wrapped: &WrappedKey) -> Result<DataKey, KeyError> {
        let bytes = wrapped.ciphertext_bytes()?;
        if bytes.len() < NONCE_LEN {
            return Err(KeyError::Corrupt { reason: "wrapped key too short".into() });
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plain = Zeroizing::new(
            self.cipher(&wrapped.kek_id)?
                .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad(subject) })
                .map_err(|_| KeyError::Corrupt { reason: format!("wrapped key of {subject} does not authenticate") })?,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            return Err(KeyError::Corrupt { reason: "unwrapped key is not 32 bytes".into() });
        }
        key.copy_from_slice(&plain);
        Ok(DataKey::from_bytes(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(entries: &str) -> Keyring {
        Keyring::parse(entries).unwrap()
    }

    const K1: &str = "kek-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "kek-2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    #[test]
    fn a_wrapped_key_unwraps_only_for_its_subject() {
        let ring = keyring(K1);
        let (alice, bob) = (PatientId::new(), PatientId::new());
        let key = DataKey::generate();
        let wrapped = ring.wrap(alice, &key).unwrap();
        assert_eq!(ring.unwrap(alice, &wrapped).unwrap().as_bytes(), key.as_bytes());
        assert!(matches!(ring.unwrap(bob, &wrapped), Err(KeyError::Corrupt { .. })));
    }

    #[test]
    fn after_rotation_old_keys_still_unwrap_and_new_ones_use_the_new_kek() {
        let subject = PatientId::new();
        let key = DataKey::generate();
        let old = keyring(K1).wrap(subject, &key).unwrap();
        let rotated = keyring(&format!("{K2}\n{K1}"));
        assert_eq!(rotated.unwrap(subject, &old).unwrap().as_bytes(), key.as_bytes());
        assert_eq!(rotated.wrap(subject, &key).unwrap().kek_id, "kek-2");
    }

    #[test]
    fn a_key_wrapped_by_an_unknown_kek_is_a_clear_error() {
        let subject = PatientId::new();
        let wrapped = keyring(K2).wrap(subject, &DataKey::generate()).unwrap();
        assert!(matches!(keyring(K1).unwrap(subject, &wrapped), Err(KeyError::UnknownKek(id)) if id == "kek-2"));
    }

    #[test]
    fn malformed_keyrings_are_refused() {
        assert!(matches!(Keyring::parse(""), Err(KeyringError::Empty)));
        assert!(matches!(Keyring::parse("# only a comment"), Err(KeyringError::Empty)));
        assert!(matches!(Keyring::parse("no-colon"), Err(KeyringError::Malformed { entry: 1 })));
        assert!(matches!(Keyring::parse("k:c2hvcnQ="), Err(KeyringError::Malformed { entry: 1 })));
        assert!(matches!(Keyring::parse(&format!("{K1},:AAAA")), Err(KeyringError::Malformed { entry: 2 })));
    }

    #[test]
    fn the_index_key_file_is_made_once_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("search-index.key");
        let first = IndexKey::load_or_create(&path).unwrap();
        let again = IndexKey::load_or_create(&path).unwrap();
        assert_eq!(first.as_bytes(), again.as_bytes());
        assert_eq!(first.id(), "index-1");
        let other = IndexKey::load_or_create(&dir.path().join("other.key")).unwrap();
        assert_ne!(first.as_bytes(), other.as_bytes(), "each deployment draws its own key");
        assert!(matches!(IndexKey::parse("index-1:c2hvcnQ="), Err(KeyringError::Malformed { entry: 1 })));
    }

    #[test]
    fn the_embedded_default_creates_a_private_keyring_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/keyring");
        let first = Keyring::load_or_create(&path).unwrap();
        let again = Keyring::load_or_create(&path).unwrap();
        let subject = PatientId::new();
        let wrapped = first.wrap(subject, &DataKey::generate()).unwrap();
        assert!(again.unwrap(subject, &wrapped).is_ok(), "the same KEK is read back");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
