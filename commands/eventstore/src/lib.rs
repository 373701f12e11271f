//! The event store of EMR Ledger.
//!
//! [`EmrEventStore`] implements cqrs-es's [`cqrs_es::EventStore`] for any aggregate,
//! over three small ports that the backends implement:
//! - [`EventLog`]: an append-only log of commits, one subject per aggregate, with
//!   optimistic concurrency (expected last position) and idempotent appends (the
//!   command id); NATS JetStream in production, SQLite embedded;
//! - [`KeyStore`]: wrapped per-patient data keys, which erasure destroys;
//! - [`SnapshotStore`]: aggregate snapshots, so loads do not replay everything.
//!
//! A *commit* is what one command produced: one or more events of one aggregate,
//! stored as one log entry so that a command is atomic. Its *position* is its place
//! in the global log (the JetStream stream sequence).
//!
//! Before a commit leaves the process every PHI value ([`emr_domain::phi::Phi`]) in
//! it is sealed with its patient's data key ([`PhiCodec`]); loading opens it, or
//! marks it shredded when the patient was erased.

mod cache;
mod codec;
mod error;
mod jobs;
mod keys;
mod log;
mod phi;
mod reader;
mod snapshot;
mod store;
pub mod trace;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use cache::AggregateCache;
pub use codec::{CommitRecord, ENVELOPE_SCHEMA, EventRecord};
pub use error::{CodecError, StoreError};
pub use jobs::{Delivery, MemoryStatusBoard, MemoryWorkQueue, Settle, StatusBoard, Versioned, WorkQueue};
pub use keys::{DataKey, KeyCensus, KeyEncryptionKey, KeyError, KeyState, KeyStore, KeyVault, Rotation, WrappedKey};
pub use log::{
    AggregateKey, Appended, CommitFeed, CommitRequest, EventLog, InvalidAggregateKey, LogError, PollingFeed, StoredCommit, check_together,
};
pub use phi::{PhiCodec, PhiError};
pub use reader::{CANONICAL_VERSION, LogFollower, LogReader, RecordedEvent, stored_canonical_bytes};
pub use snapshot::SnapshotStore;
pub use store::{CommitSummary, Cutoff, EmrAggregateContext, EmrEventStore, ExecuteError, Executed, Outcome, Prepared, StoreConfig};

use std::sync::Arc;

/// The ports a backend provides: everything the event store needs from outside.
#[derive(Clone)]
pub struct EventStorePorts {
    /// The event log.
    pub log: Arc<dyn EventLog>,
    /// Snapshots.
    pub snapshots: Arc<dyn SnapshotStore>,
    /// Wrapped data keys.
    pub keys: Arc<dyn KeyStore>,
    /// The key-encryption key.
    pub kek: Arc<dyn KeyEncryptionKey>,
}

impl EventStorePorts {
    /// The codec that seals and opens PHI with the patients' data keys.
    pub fn phi_codec(&self) -> Arc<PhiCodec> {
        Arc::new(PhiCodec::new(Arc::new(KeyVault::new(self.kek.clone(), self.keys.clone()))))
    }
}
