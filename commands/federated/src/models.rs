//! Where global models and hospitals' updates are kept: content-addressed by the
//! SHA-256 of their bytes, which the task's events name. The port, and its adapter
//! for a directory of files.

use std::path::PathBuf;

use emr_domain::values::Sha256Digest;
use futures::future::BoxFuture;
use ring::digest::{SHA256, digest};

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
        sha256_of(&self.to_bytes())
    }
}

fn sha256_of(bytes: &[u8]) -> Sha256Digest {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    Sha256Digest::from_bytes(out)
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
}

/// Content-addressed storage of models and updates.
pub trait ModelStore: Send + Sync {
    /// Stores `vector`; returns its digest.
    fn put<'a>(&'a self, vector: &'a Vector) -> BoxFuture<'a, Result<Sha256Digest, ModelStoreError>>;
    /// Reads the vector stored under `digest`, checking it hashes to that digest.
    fn get<'a>(&'a self, digest: &'a Sha256Digest) -> BoxFuture<'a, Result<Vector, ModelStoreError>>;
}

/// A directory of files named by digest. A file is written beside its final name and
/// renamed into place, so a crash never leaves a partial vector under a real name.
#[derive(Debug, Clone)]
pub struct DirectoryModelStore {
    dir: PathBuf,
}

impl DirectoryModelStore {
    /// A store in `dir` (created when missing).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, ModelStoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }
}

impl ModelStore for DirectoryModelStore {
    fn put<'a>(&'a self, vector: &'a Vector) -> BoxFuture<'a, Result<Sha256Digest, ModelStoreError>> {
        Box::pin(async move {
            let bytes = vector.to_bytes();
            let name = sha256_of(&bytes);
            let path = self.dir.join(name.to_string());
            if tokio::fs::try_exists(&path).await? {
                return Ok(name);
            }
            let partial = self.dir.join(format!("{name}.{}.partial", uuid::Uuid::new_v4()));
            tokio::fs::write(&partial, &bytes).await?;
            tokio::fs::File::open(&partial).await?.sync_all().await?;
            tokio::fs::rename(&partial, &path).await?;
            Ok(name)
        })
    }

    fn get<'a>(&'a self, digest: &'a Sha256Digest) -> BoxFuture<'a, Result<Vector, ModelStoreError>> {
        Box::pin(async move {
            let bytes = match tokio::fs::read(self.dir.join(digest.to_string())).await {
                Ok(bytes) => bytes,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Err(ModelStoreError::NotFound(*digest)),
                Err(error) => return Err(error.into()),
            };
            if sha256_of(&bytes) != *digest {
                return Err(ModelStoreError::Corrupt(format!("{digest} does not hash to its name")));
            }
            Vector::from_bytes(&bytes)
        })
    }
}
