//! Where global models and hospitals' updates are kept: content-addressed by the
//! SHA-256 of their bytes, which the task's events name. The port, and its adapter
//! for a directory of files sealed at rest.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use emr_domain::ids::PatientId;
use emr_domain::values::Sha256Digest;
use emr_eventstore::{DataKey, KeyEncryptionKey, KeyError, WrappedKey};
use futures::future::BoxFuture;

/// A stored vector: a model or an update in the clear, or a masked update.
#[derive(Debug, Clone, PartialEq)]
pub enum Vector {
    /// Parameters (a global model, or a hospital's model outside secure aggregation).
    Plain(Vec<f64>),
    /// A hospital's update, fixed-point encoded and masked (secure aggregation).
    Masked(Vec<u64>),
}

const MAGIC: &[u8; 4] = b"EMRV";

impl Vector {
    /// The stored form: a magic, a kind byte, the length, then little-endian words.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (kind, words): (u8, Vec<[u8; 8]>) = match self {
            Self::Plain(values) => (0, values.iter().map(|v| v.to_le_bytes()).collect()),
            Self::Masked(values) => (1, values.iter().map(|v| v.to_le_bytes()).collect()),
        };
        let mut bytes = Vec::with_capacity(13 + 8 * words.len());
        bytes.extend_from_slice(MAGIC);
        bytes.push(kind);
        bytes.extend_from_slice(&(words.len() as u64).to_le_bytes());
        words.iter().for_each(|w| bytes.extend_from_slice(w));
        bytes
    }

    /// Reads the stored form back.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelStoreError> {
        let corrupt = || ModelStoreError::Corrupt("not a stored vector".into());
        if bytes.len() < 13 || &bytes[..4] != MAGIC {
            return Err(corrupt());
        }
        let length = u64::from_le_bytes(bytes[5..13].try_into().map_err(|_| corrupt())?) as usize;
        let body = &bytes[13..];
        if body.len() != length.checked_mul(8).ok_or_else(corrupt)? {
            return Err(corrupt());
        }
        let words = body.chunks_exact(8).map(|c| <[u8; 8]>::try_from(c).unwrap_or_default());
        match bytes[4] {
            0 => Ok(Self::Plain(words.map(f64::from_le_bytes).collect())),
            1 => Ok(Self::Masked(words.map(u64::from_le_bytes).collect())),
            _ => Err(corrupt()),
        }
    }

    /// SHA-256 of the stored form: the name events give it.
    pub fn sha256(&self) -> Sha256Digest {
        Sha256Digest::of(&self.to_bytes())
    }
}

/// A model store failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelStoreError {
    /// Nothing stored under this digest.
    #[error("no stored model or update {0}")]
    NotFound(Sha256Digest),
    /// Stored bytes that do not read back (or do not hash to their name).
    #[error("stored vector is corrupt: {0}")]
    Corrupt(String),
    /// The storage failed.
    #[error("model store: {0}")]
    Io(#[from] std::io::Error),
    /// The store's data key could not be made or unwrapped.
    #[error("model store key: {0}")]
    Key(#[from] KeyError),
}

/// Content-addressed storage of models and updates.
pub trait ModelStore: Send + Sync {
    /// Stores `vector`; returns its digest.
    fn put<'a>(&'a self, vector: &'a Vector) -> BoxFuture<'a, Result<Sha256Digest, ModelStoreError>>;
    /// Reads the vector stored under `digest`, checking it hashes to that digest.
    fn get<'a>(&'a self, digest: &'a Sha256Digest) -> BoxFuture<'a, Result<Vector, ModelStoreError>>;
}

/// A directory of files named by the digest of the vector they hold, each sealed with
/// XChaCha20-Poly1305 under the store's data key (the digest bound as associated
/// data, so a file renamed to another digest does not open). The data key is kept
/// beside the files, wrapped by the node's key-encryption key; an update leaked
/// from the disk alone reveals nothing.
///
/// A file is written beside its final name and renamed into place, so a crash never
/// leaves a partial vector under a real name.
#[derive(Clone)]
pub struct DirectoryModelStore {
    dir: PathBuf,
    cipher: Arc<XChaCha20Poly1305>,
}

const SEALED_MAGIC: &[u8; 4] = b"EMRS";
const KEY_FILE: &str = "data-key.json";

/// The key-encryption key binds every wrapped key to a subject id; the model
/// store's key is bound to this fixed name-based (v5) id, which no patient's
/// (time-ordered, v7) id can equal.
fn store_subject() -> PatientId {
    PatientId::from(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"emr-ledger/federated-model-store"))
}

async fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), ModelStoreError> {
    let partial = dir.join(format!("{name}.{}.partial", uuid::Uuid::new_v4()));
    tokio::fs::write(&partial, bytes).await?;
    tokio::fs::File::open(&partial).await?.sync_all().await?;
    tokio::fs::rename(&partial, dir.join(name)).await?;
    Ok(())
}

impl DirectoryModelStore {
    /// A store in `dir` (created when missing), its data key wrapped by `kek`
    /// (made on first open).
    pub async fn open(dir: impl Into<PathBuf>, kek: &dyn KeyEncryptionKey) -> Result<Self, ModelStoreError> {
        let dir = dir.into();
        tokio::fs::create_dir_all(&dir).await?;
        let key_path = dir.join(KEY_FILE);
        let corrupt = |e: serde_json::Error| ModelStoreError::Corrupt(format!("{}: {e}", key_path.display()));
        let key = match tokio::fs::read(&key_path).await {
            Ok(bytes) => kek.unwrap(store_subject(), &serde_json::from_slice::<WrappedKey>(&bytes).map_err(corrupt)?)?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key = DataKey::generate();
                let wrapped = serde_json::to_vec(&kek.wrap(store_subject(), &key)?).map_err(corrupt)?;
                write_atomically(&dir, KEY_FILE, &wrapped).await?;
                key
            }
            Err(error) => return Err(error.into()),
        };
        let cipher = Arc::new(XChaCha20Poly1305::new(key.as_bytes().into()));
        Ok(Self { dir, cipher })
    }

    /// The digests of every stored vector.
    pub async fn digests(&self) -> Result<Vec<Sha256Digest>, ModelStoreError> {
        let mut digests = Vec::new();
        let mut entries = tokio::fs::read_dir(&self.dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            if let Some(digest) = entry.file_name().to_str().and_then(|name| Sha256Digest::parse_hex(name).ok()) {
                digests.push(digest);
            }
        }
        Ok(digests)
    }

    fn seal(&self, name: &Sha256Digest, plaintext: &[u8]) -> Result<Vec<u8>, ModelStoreError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(&nonce, Payload { msg: plaintext, aad: name.as_bytes() })
            .map_err(|_| ModelStoreError::Corrupt("sealing failed".into()))?;
        Ok([SEALED_MAGIC.as_slice(), nonce.as_slice(), &ciphertext].concat())
    }

    fn open_sealed(&self, name: &Sha256Digest, sealed: &[u8]) -> Result<Vec<u8>, ModelStoreError> {
        let corrupt = || ModelStoreError::Corrupt(format!("{name} does not open with this store's key"));
        if sealed.len() < 4 + 24 || &sealed[..4] != SEALED_MAGIC {
            return Err(corrupt());
        }
        let nonce = XNonce::from_slice(&sealed[4..28]);
        self.cipher.decrypt(nonce, Payload { msg: &sealed[28..], aad: name.as_bytes() }).map_err(|_| corrupt())
    }
}

impl ModelStore for DirectoryModelStore {
    fn put<'a>(&'a self, vector: &'a Vector) -> BoxFuture<'a, Result<Sha256Digest, ModelStoreError>> {
        Box::pin(async move {
            let bytes = vector.to_bytes();
            let name = Sha256Digest::of(&bytes);
            if tokio::fs::try_exists(self.dir.join(name.to_string())).await? {
                return Ok(name);
            }
            let sealed = self.seal(&name, &bytes)?;
            write_atomically(&self.dir, &name.to_string(), &sealed).await?;
            Ok(name)
        })
    }

    fn get<'a>(&'a self, digest: &'a Sha256Digest) -> BoxFuture<'a, Result<Vector, ModelStoreError>> {
        Box::pin(async move {
            let sealed = match tokio::fs::read(self.dir.join(digest.to_string())).await {
                Ok(bytes) => bytes,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Err(ModelStoreError::NotFound(*digest)),
                Err(error) => return Err(error.into()),
            };
            let bytes = self.open_sealed(digest, &sealed)?;
            if Sha256Digest::of(&bytes) != *digest {
                return Err(ModelStoreError::Corrupt(format!("{digest} does not hash to its name")));
            }
            Vector::from_bytes(&bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use emr_keyring::Keyring;

    use super::*;

    async fn store(dir: &Path, keyring: &Path) -> DirectoryModelStore {
        let kek = Keyring::load_or_create(keyring).unwrap_or_else(|e| panic!("{e}"));
        DirectoryModelStore::open(dir, &kek).await.unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn a_stored_vector_is_sealed_on_disk_and_reads_back_after_a_restart() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (dir, keyring) = (root.path().join("models"), root.path().join("keyring"));
        let vector = Vector::Plain(vec![0.125, -3.5, 1e-9]);
        let digest = store(&dir, &keyring).await.put(&vector).await.unwrap_or_else(|e| panic!("{e}"));
        let on_disk = std::fs::read(dir.join(digest.to_string())).unwrap_or_else(|e| panic!("{e}"));
        let plain = vector.to_bytes();
        assert!(!on_disk.windows(8).any(|w| w == &plain[13..21]), "a parameter's bytes are on disk in the clear");
        let reopened = store(&dir, &keyring).await;
        assert_eq!(reopened.get(&digest).await.unwrap_or_else(|e| panic!("{e}")), vector);
        assert_eq!(reopened.digests().await.unwrap_or_else(|e| panic!("{e}")), vec![digest]);
    }

    #[tokio::test]
    async fn a_file_moved_to_another_name_or_another_key_does_not_open() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (dir, keyring) = (root.path().join("models"), root.path().join("keyring"));
        let models = store(&dir, &keyring).await;
        let first = models.put(&Vector::Plain(vec![1.0])).await.unwrap_or_else(|e| panic!("{e}"));
        let second = models.put(&Vector::Plain(vec![2.0])).await.unwrap_or_else(|e| panic!("{e}"));
        std::fs::copy(dir.join(first.to_string()), dir.join(second.to_string())).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(models.get(&second).await, Err(ModelStoreError::Corrupt(_))));
        // Another node's key-encryption key cannot unwrap this store's data key.
        let other = Keyring::load_or_create(&root.path().join("other-keyring")).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(DirectoryModelStore::open(&dir, &other).await, Err(ModelStoreError::Key(_))));
    }
}
