//! The snapshot port. Snapshots are derived data: losing one costs a replay,
//! never correctness, so failures to read or write them are logged, not raised.

use futures::future::BoxFuture;

use crate::log::{AggregateKey, LogError};

/// Where aggregate snapshots are kept (latest only).
pub trait SnapshotStore: Send + Sync + 'static {
    /// The latest snapshot of the aggregate.
    fn get<'a>(&'a self, key: &'a AggregateKey) -> BoxFuture<'a, Result<Option<Vec<u8>>, LogError>>;
    /// Replaces the aggregate's snapshot.
    fn put<'a>(&'a self, key: &'a AggregateKey, snapshot: Vec<u8>) -> BoxFuture<'a, Result<(), LogError>>;
}
