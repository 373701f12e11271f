//! Snapshots and wrapped data keys in JetStream KV buckets.

use async_nats::jetstream::kv::{CreateErrorKind, Store};
use emr_domain::ids::PatientId;
use emr_eventstore::{AggregateKey, KeyError, KeyState, KeyStore, LogError, SnapshotStore, WrappedKey};
use futures::FutureExt;
use futures::future::BoxFuture;

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

/// Wrapped data keys, one KV entry per patient holding its [`KeyState`]. With a
/// history of one, writing the tombstone removes the wrapped key from the bucket.
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
            Ok(())
        }
        .boxed()
    }
}
