//! Snapshots and wrapped data keys in JetStream KV buckets.

use async_nats::jetstream::kv::{CreateErrorKind, Operation, Store, UpdateErrorKind};
use emr_domain::ids::PatientId;
use emr_eventstore::{AggregateKey, KeyError, KeyState, KeyStore, LogError, SnapshotStore, WrappedKey};
use futures::future::BoxFuture;
use futures::{FutureExt, TryStreamExt};

/// Snapshots, one KV entry per aggregate (`<type>.<id>`), latest only.
pub struct KvSnapshots {
    bucket: Store,
}

impl KvSnapshots {
    pub(crate) fn new(bucket: Store) -> Self {
        Self { bucket }
    }
}

impl SnapshotStore for KvSnapshots {
    fn get<'a>(&'a self, key: &'a AggregateKey) -> BoxFuture<'a, Result<Option<Vec<u8>>, LogError>> {
        async move { Ok(self.bucket.get(key.dotted()).await.map_err(LogError::unavailable)?.map(|b| b.to_vec())) }.boxed()
    }

    fn put<'a>(&'a self, key: &'a AggregateKey, snapshot: Vec<u8>) -> BoxFuture<'a, Result<(), LogError>> {
        async move {
            self.bucket.put(key.dotted(), snapshot.into()).await.map_err(LogError::unavailable)?;
            Ok(())
        }
        .boxed()
    }
}

/// Wrapped data keys, one KV entry per patient holding its [`KeyState`].
///
/// A replaced value is erased, not merely dropped: JetStream's per-subject limit
/// removes an old message without overwriting its bytes on disk, while a message
/// delete overwrites them. So the bucket keeps two values per key (see
/// [`crate::key_bucket_stream_config`]), and every write that replaces a wrapped
/// key then erases all older values of that key.
pub struct KvKeyStore {
    bucket: Store,
}

impl KvKeyStore {
    pub(crate) fn new(bucket: Store) -> Self {
        Self { bucket }
    }

    async fn read(&self, subject: PatientId) -> Result<KeyState, KeyError> {
        match self.bucket.get(subject.to_string()).await.map_err(KeyError::unavailable)? {
            None => Ok(KeyState::Absent),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| KeyError::Corrupt { reason: e.to_string() }),
        }
    }

    fn encode(state: &KeyState) -> Result<bytes::Bytes, KeyError> {
        serde_json::to_vec(state).map(Into::into).map_err(|e| KeyError::Corrupt { reason: e.to_string() })
    }

    /// Overwrites every value of `subject`'s key but the latest, on disk too.
    /// Repeating it finishes what a crash interrupted.
    async fn erase_older_values(&self, subject: PatientId) -> Result<(), KeyError> {
        let history: Vec<_> = self
            .bucket
            .history(subject.to_string())
            .await
            .map_err(KeyError::unavailable)?
            .try_collect()
            .await
            .map_err(KeyError::unavailable)?;
        let latest = history.iter().map(|entry| entry.revision).max().unwrap_or(0);
        for older in history.iter().filter(|entry| entry.revision < latest) {
            self.bucket.stream.delete_message(older.revision).await.map_err(KeyError::unavailable)?;
        }
        Ok(())
    }
}

impl KeyStore for KvKeyStore {
    fn get(&self, subject: PatientId) -> BoxFuture<'_, Result<KeyState, KeyError>> {
        self.read(subject).boxed()
    }

    fn create(&self, subject: PatientId, wrapped: WrappedKey) -> BoxFuture<'_, Result<KeyState, KeyError>> {
        async move {
            let state = KeyState::Active { wrapped };
            match self.bucket.create(subject.to_string(), Self::encode(&state)?).await {
                Ok(_) => Ok(state),
                Err(error) if error.kind() == CreateErrorKind::AlreadyExists => self.read(subject).await,
                Err(error) => Err(KeyError::unavailable(error)),
            }
        }
        .boxed()
    }

    fn destroy(&self, subject: PatientId) -> BoxFuture<'_, Result<(), KeyError>> {
        async move {
            self.bucket.put(subject.to_string(), Self::encode(&KeyState::Destroyed)?).await.map_err(KeyError::unavailable)?;
            self.erase_older_values(subject).await
        }
        .boxed()
    }

    fn subjects(&self) -> BoxFuture<'_, Result<Vec<PatientId>, KeyError>> {
        async move {
            let keys: Vec<String> =
                self.bucket.keys().await.map_err(KeyError::unavailable)?.try_collect().await.map_err(KeyError::unavailable)?;
            keys.iter()
                .map(|key| key.parse().map_err(|_| KeyError::Corrupt { reason: format!("key bucket entry `{key}` is not a patient id") }))
                .collect()
        }
        .boxed()
    }

    fn rewrap<'a>(&'a self, subject: PatientId, current: &'a WrappedKey, next: WrappedKey) -> BoxFuture<'a, Result<bool, KeyError>> {
        async move {
            let Some(entry) = self.bucket.entry(subject.to_string()).await.map_err(KeyError::unavailable)? else {
                return Ok(false);
            };
            let live = entry.operation == Operation::Put
                && serde_json::from_slice::<KeyState>(&entry.value)
                    .is_ok_and(|state| state == KeyState::Active { wrapped: current.clone() });
            if !live {
                return Ok(false);
            }
            let state = KeyState::Active { wrapped: next };
            match self.bucket.update(subject.to_string(), Self::encode(&state)?, entry.revision).await {
                Ok(_) => {}
                Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => return Ok(false),
                Err(error) => return Err(KeyError::unavailable(error)),
            }
            self.erase_older_values(subject).await?;
            Ok(true)
        }
        .boxed()
    }
}
