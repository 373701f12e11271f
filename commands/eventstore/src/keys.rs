//! Per-patient data keys, wrapped by a key-encryption key (KEK).
//!
//! Crypto-shredding: a patient's PHI is sealed with their own data key; erasure
//! replaces the wrapped key with a tombstone. The tombstone matters: without it a
//! later command could mint a fresh key and write new PHI for an erased patient.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{KeyInit, OsRng};
use emr_domain::ids::PatientId;
use futures::future::BoxFuture;
use lru::LruCache;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// A 256-bit data key, wiped from memory when dropped.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&key);
        Self(bytes)
    }

    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self(bytes)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A data key encrypted under a KEK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// Which KEK wrapped it (KEKs rotate; old ones stay to unwrap).
    pub kek_id: String,
    /// Base64 of nonce ‖ ciphertext.
    pub ciphertext: String,
}

impl WrappedKey {
    /// Builds a wrapped key from raw bytes.
    pub fn new(kek_id: impl Into<String>, ciphertext: &[u8]) -> Self {
        Self { kek_id: kek_id.into(), ciphertext: BASE64.encode(ciphertext) }
    }

    /// The raw nonce ‖ ciphertext.
    pub fn ciphertext_bytes(&self) -> Result<Vec<u8>, KeyError> {
        BASE64.decode(&self.ciphertext).map_err(|_| KeyError::Corrupt { reason: "wrapped key is not base64".into() })
    }
}

/// What the key store holds for a patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum KeyState {
    /// No key was ever created.
    Absent,
    /// The live wrapped key.
    Active {
        /// The wrapped key.
        wrapped: WrappedKey,
    },
    /// Destroyed by erasure; never replaced.
    Destroyed,
}

/// Failures of the key service.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key store could not be reached.
    #[error("key store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A key wrapped by a KEK this node does not have.
    #[error("no key-encryption key with id `{0}` in the keyring")]
    UnknownKek(String),
    /// A wrapped key that does not unwrap (wrong KEK, tampered store).
    #[error("wrapped data key is corrupt: {reason}")]
    Corrupt {
        /// What failed.
        reason: String,
    },
    /// PHI sealed for a patient who has no key at all.
    #[error("no data key exists for patient {0}")]
    Missing(PatientId),
    /// New PHI for an erased patient.
    #[error("patient {0} was erased; no new PHI can be written for them")]
    Destroyed(PatientId),
}

impl KeyError {
    /// Wraps a backend failure.
    pub fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(error))
    }
}

/// Wraps and unwraps data keys: a keyring file, an environment variable, or an HSM.
pub trait KeyEncryptionKey: Send + Sync + 'static {
    /// The KEK new keys are wrapped with.
    fn active_id(&self) -> &str;
    /// Wraps `key` for `subject` (the subject is bound as associated data).
    fn wrap(&self, subject: PatientId, key: &DataKey) -> Result<WrappedKey, KeyError>;
    /// Unwraps a key of `subject`.
    fn unwrap(&self, subject: PatientId, wrapped: &WrappedKey) -> Result<DataKey, KeyError>;
}

/// Where wrapped data keys are kept: mutable, unlike the log.
pub trait KeyStore: Send + Sync + 'static {
    /// The patient's key state.
    fn get(&self, subject: PatientId) -> BoxFuture<'_, Result<KeyState, KeyError>>;
    /// Stores `wrapped` unless a state exists; returns the state that won.
    fn create(&self, subject: PatientId, wrapped: WrappedKey) -> BoxFuture<'_, Result<KeyState, KeyError>>;
    /// Replaces the patient's key with a tombstone, for good. The store must not
    /// keep the wrapped key anywhere it can be read back (history, free pages,
    /// journals): erasure is only as good as this.
    fn destroy(&self, subject: PatientId) -> BoxFuture<'_, Result<(), KeyError>>;
    /// Every patient with a key state, live or destroyed.
    fn subjects(&self) -> BoxFuture<'_, Result<Vec<PatientId>, KeyError>>;
    /// Replaces `current` with `next` only while `current` is still the patient's
    /// live key; `false` when it is not (erased, or re-wrapped by someone else).
    fn rewrap<'a>(&'a self, subject: PatientId, current: &'a WrappedKey, next: WrappedKey) -> BoxFuture<'a, Result<bool, KeyError>>;
}

/// How many data keys each KEK wraps, and how many patients were erased.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeyCensus {
    /// Live data keys by the id of the KEK that wraps them.
    pub wrapped_by: std::collections::BTreeMap<String, usize>,
    /// Patients whose key was destroyed.
    pub destroyed: usize,
}

/// What a KEK rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rotation {
    /// The KEK every live data key is now wrapped by.
    pub active_kek: String,
    /// Data keys re-wrapped by this run.
    pub rewrapped: usize,
    /// Data keys that were already wrapped by the active KEK.
    pub already_current: usize,
    /// Erased patients, skipped: they have no key left to wrap.
    pub destroyed: usize,
}

type CachedKey = (Instant, Option<Arc<DataKey>>);

/// The key service: data keys by patient, created on first use, destroyed on erasure.
///
/// Unwrapped keys are cached for `ttl`. A process that did not perform an erasure
/// may therefore keep using a destroyed key for at most `ttl` (30 s by default).
pub struct KeyVault {
    kek: Arc<dyn KeyEncryptionKey>,
    store: Arc<dyn KeyStore>,
    cache: Mutex<LruCache<PatientId, CachedKey>>,
    ttl: Duration,
}

impl KeyVault {
    /// Default lifetime of a cached key.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

    /// A vault over a KEK and a key store.
    pub fn new(kek: Arc<dyn KeyEncryptionKey>, store: Arc<dyn KeyStore>) -> Self {
        Self::with_cache(kek, store, Self::DEFAULT_TTL, 10_000)
    }

    /// A vault with explicit cache settings (`ttl` zero disables caching).
    pub fn with_cache(kek: Arc<dyn KeyEncryptionKey>, store: Arc<dyn KeyStore>, ttl: Duration, capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self { kek, store, cache: Mutex::new(LruCache::new(capacity)), ttl }
    }

    fn cached(&self, subject: PatientId) -> Option<Option<Arc<DataKey>>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(&subject) {
            Some((at, key)) if at.elapsed() < self.ttl => Some(key.clone()),
            Some(_) => {
                cache.pop(&subject);
                None
            }
            None => None,
        }
    }

    fn remember(&self, subject: PatientId, key: Option<Arc<DataKey>>) {
        if !self.ttl.is_zero() {
            self.cache.lock().unwrap_or_else(|p| p.into_inner()).put(subject, (Instant::now(), key));
        }
    }

    async fn state(&self, subject: PatientId) -> Result<Option<Arc<DataKey>>, KeyError> {
        if let Some(hit) = self.cached(subject) {
            return Ok(hit);
        }
        let key = match self.store.get(subject).await? {
            KeyState::Absent => return Err(KeyError::Missing(subject)),
            KeyState::Active { wrapped } => Some(Arc::new(self.kek.unwrap(subject, &wrapped)?)),
            KeyState::Destroyed => None,
        };
        self.remember(subject, key.clone());
        Ok(key)
    }

    /// The key to seal new PHI of `subject`, created on first use.
    pub async fn key_for_sealing(&self, subject: PatientId) -> Result<Arc<DataKey>, KeyError> {
        match self.state(subject).await {
            Ok(Some(key)) => return Ok(key),
            Ok(None) => return Err(KeyError::Destroyed(subject)),
            Err(KeyError::Missing(_)) => {}
            Err(other) => return Err(other),
        }
        let fresh = DataKey::generate();
        let wrapped = self.kek.wrap(subject, &fresh)?;
        let key = match self.store.create(subject, wrapped.clone()).await? {
            KeyState::Active { wrapped: winner } if winner == wrapped => Arc::new(fresh),
            KeyState::Active { wrapped: winner } => Arc::new(self.kek.unwrap(subject, &winner)?),
            KeyState::Destroyed => return Err(KeyError::Destroyed(subject)),
            KeyState::Absent => return Err(KeyError::Missing(subject)),
        };
        self.remember(subject, Some(key.clone()));
        Ok(key)
    }

    /// The key to open PHI of `subject`; `None` once the patient is erased.
    pub async fn key_for_opening(&self, subject: PatientId) -> Result<Option<Arc<DataKey>>, KeyError> {
        self.state(subject).await
    }

    /// Re-wraps every live data key under the active KEK, so that older KEKs can
    /// be retired. Data keys themselves do not change, so no event and no blob is
    /// touched. Safe to run while the system serves (a key erased or re-wrapped
    /// meanwhile is re-read, never overwritten) and to repeat.
    pub async fn rotate(&self) -> Result<Rotation, KeyError> {
        let mut rotation = Rotation { active_kek: self.kek.active_id().to_owned(), ..Rotation::default() };
        for subject in self.store.subjects().await? {
            loop {
                let wrapped = match self.store.get(subject).await? {
                    KeyState::Absent => break,
                    KeyState::Destroyed => {
                        rotation.destroyed += 1;
                        break;
                    }
                    KeyState::Active { wrapped } if wrapped.kek_id == rotation.active_kek => {
                        rotation.already_current += 1;
                        break;
                    }
                    KeyState::Active { wrapped } => wrapped,
                };
                let key = self.kek.unwrap(subject, &wrapped)?;
                if self.store.rewrap(subject, &wrapped, self.kek.wrap(subject, &key)?).await? {
                    rotation.rewrapped += 1;
                    break;
                }
            }
        }
        Ok(rotation)
    }

    /// Counts live keys by wrapping KEK: a KEK may be retired once it wraps none.
    pub async fn census(&self) -> Result<KeyCensus, KeyError> {
        let mut census = KeyCensus::default();
        for subject in self.store.subjects().await? {
            match self.store.get(subject).await? {
                KeyState::Absent => {}
                KeyState::Active { wrapped } => *census.wrapped_by.entry(wrapped.kek_id).or_default() += 1,
                KeyState::Destroyed => census.destroyed += 1,
            }
        }
        Ok(census)
    }

    /// Destroys the patient's key. Irreversible.
    pub async fn destroy(&self, subject: PatientId) -> Result<(), KeyError> {
        self.store.destroy(subject).await?;
        self.remember(subject, None);
        Ok(())
    }
}
