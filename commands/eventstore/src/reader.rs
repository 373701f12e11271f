//! Reading the global log without knowing aggregate types, and without opening PHI:
//! what audits, replays and the CLI's log listing need.

use std::sync::Arc;

use emr_domain::metadata::{CommandContext, EventMetadata};
use serde::Serialize;
use serde_json::Value;

use cqrs_es::persist::EventUpcaster;
use emr_domain::upcasting::EventSchema;

use crate::codec::{CommitRecord, EventRecord, decode_event};
use crate::error::{CodecError, StoreError};
use crate::log::{AggregateKey, EventLog};

/// One event as stored: envelope and payload, PHI still sealed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedEvent {
    /// The aggregate.
    #[serde(serialize_with = "dotted")]
    pub key: AggregateKey,
    /// Per-aggregate sequence.
    pub sequence: u64,
    /// Event type.
    pub event_type: String,
    /// Envelope.
    pub metadata: EventMetadata,
    /// Payload with PHI sealed.
    pub payload: Value,
}

fn dotted<S: serde::Serializer>(key: &AggregateKey, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&key.dotted())
}

/// Reads the log in global order.
#[derive(Clone)]
pub struct LogReader {
    log: Arc<dyn EventLog>,
}

impl LogReader {
    /// A reader over a log.
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Self { log }
    }

    /// Position of the last commit.
    pub async fn head(&self) -> Result<u64, StoreError> {
        Ok(self.log.head().await?)
    }

    /// Events of up to `limit` commits from `from_position` on.
    pub async fn read(&self, from_position: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        Self::flatten(self.log.read_from(from_position, limit).await?)
    }

    /// The full history of one aggregate, in order: who did what, when, under
    /// which command and causation; PHI sealed.
    pub async fn history(&self, key: &AggregateKey) -> Result<Vec<RecordedEvent>, StoreError> {
        Self::flatten(self.log.read_aggregate(key, 0).await?)
    }

    /// The events of `commits`, in order, with their metadata.
    pub fn flatten(commits: Vec<crate::log::StoredCommit>) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut events = Vec::new();
        for commit in commits {
            let record = CommitRecord::decode(&commit)?;
            let context = CommandContext::with_id(record.command_id, record.actor).caused_by(record.correlation_id, record.causation_id);
            for event in record.events {
                events.push(RecordedEvent {
                    key: commit.key.clone(),
                    sequence: event.sequence,
                    event_type: event.event_type.clone(),
                    metadata: EventMetadata {
                        event_id: event.event_id,
                        aggregate_type: record.aggregate_type.clone(),
                        recorded_at: record.recorded_at,
                        context: context.clone(),
                        schema_version: event.event_version.clone(),
                        position: commit.position,
                    },
                    payload: event.payload.clone(),
                });
            }
        }
        Ok(events)
    }
}

/// Version of [`RecordedEvent::canonical_bytes`]; the bytes of a version never change.
pub const CANONICAL_VERSION: u32 = 1;

impl RecordedEvent {
    /// The bytes that stand for this event in the Merkle log (version
    /// [`CANONICAL_VERSION`]): `emr-event/1\n` then the event as JSON with object
    /// keys sorted — position, aggregate, sequence, type, envelope and the payload
    /// exactly as stored (PHI sealed, so erasure never changes them).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        let mut bytes = b"emr-event/1\n".to_vec();
        // serde_json's map is ordered by key (no `preserve_order`), so this is canonical.
        bytes.extend(serde_json::to_vec(&value).unwrap_or_default());
        bytes
    }

    /// The typed event with its PHI left sealed ([`emr_domain::phi::Phi::Sealed`]),
    /// upcast to the current schema: what read models and audits work on.
    pub fn decode<A: EventSchema>(&self, upcasters: &[Box<dyn EventUpcaster>]) -> Result<A::Event, CodecError> {
        let stored = EventRecord {
            event_id: self.metadata.event_id,
            sequence: self.sequence,
            event_type: self.event_type.clone(),
            event_version: self.metadata.schema_version.clone(),
            payload: self.payload.clone(),
        };
        decode_event(upcasters, self.key.aggregate_type(), self.key.aggregate_id(), self.metadata.position, &stored)
    }
}
