//! The bytes of a commit in the log. Defined once; a change of shape means a new
//! [`ENVELOPE_SCHEMA`], never an edit of stored bytes.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use cqrs_es::persist::{EventUpcaster, SemanticVersion, SerializedEvent};
use emr_domain::actor::Actor;
use emr_domain::ids::{CommandId, EventId};
use emr_domain::metadata::{CommandContext, EventMetadata};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::str::FromStr;

use crate::error::CodecError;
use crate::log::StoredCommit;

/// Version of the commit envelope written today.
pub const ENVELOPE_SCHEMA: u32 = 1;

/// One command's events on one aggregate, with the envelope they share. Payloads
/// are JSON values, or (`CommitRecord<Box<RawValue>>`) their stored bytes as they
/// are, for readers that only hash them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitRecord<P = Value> {
    /// Envelope schema ([`ENVELOPE_SCHEMA`]).
    pub schema: u32,
    /// Aggregate type.
    pub aggregate_type: String,
    /// Aggregate id.
    pub aggregate_id: String,
    /// The command that produced the events.
    pub command_id: CommandId,
    /// Business transaction.
    pub correlation_id: uuid::Uuid,
    /// What caused the command.
    pub causation_id: uuid::Uuid,
    /// Who.
    pub actor: Actor,
    /// When.
    pub recorded_at: DateTime<Utc>,
    /// The events, in order.
    pub events: Vec<EventRecord<P>>,
}

/// One event inside a commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRecord<P = Value> {
    /// UUIDv7.
    pub event_id: EventId,
    /// Per-aggregate sequence (1, 2, 3, … across commits).
    pub sequence: u64,
    /// Event type, e.g. `RecordAmended`.
    pub event_type: String,
    /// Payload schema version, e.g. `1.0`.
    pub event_version: String,
    /// The payload, PHI sealed.
    pub payload: P,
}

impl CommitRecord {
    /// The bytes written to the log.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        serde_json::to_vec(self).map_err(|e| CodecError::Encode(e.to_string()))
    }

    /// Decodes a stored commit and checks it against the subject it was stored under.
    pub fn decode(commit: &StoredCommit) -> Result<Self, CodecError> {
        Self::decode_as(commit)
    }
}

impl<P> CommitRecord<P> {
    /// The envelope of `event`, one of this commit's, stored at `position`.
    pub fn metadata_of(&self, event: &EventRecord<P>, position: u64) -> EventMetadata {
        EventMetadata {
            event_id: event.event_id,
            aggregate_type: self.aggregate_type.clone(),
            recorded_at: self.recorded_at,
            context: CommandContext::with_id(self.command_id, self.actor).caused_by(self.correlation_id, self.causation_id),
            schema_version: event.event_version.clone(),
            position,
        }
    }
}

impl<P: DeserializeOwned> CommitRecord<P> {
    /// [`CommitRecord::decode`] with payloads of type `P`.
    pub fn decode_as(commit: &StoredCommit) -> Result<Self, CodecError> {
        let malformed = |reason: String| CodecError::Malformed { position: commit.position, reason };
        let record: Self = serde_json::from_slice(&commit.payload).map_err(|e| malformed(e.to_string()))?;
        if record.schema != ENVELOPE_SCHEMA {
            return Err(CodecError::UnsupportedEnvelope { position: commit.position, schema: record.schema });
        }
        if record.aggregate_type != commit.key.aggregate_type() || record.aggregate_id != commit.key.aggregate_id() {
            return Err(malformed(format!(
                "commit names {}.{} but is stored under {}",
                record.aggregate_type,
                record.aggregate_id,
                commit.key.dotted()
            )));
        }
        if record.events.is_empty() {
            return Err(malformed("a commit holds no events".into()));
        }
        let contiguous = record.events.windows(2).all(|w| w[1].sequence == w[0].sequence + 1);
        if !contiguous {
            return Err(malformed("event sequences inside the commit are not contiguous".into()));
        }
        Ok(record)
    }

    /// Sequence of the first event.
    pub fn first_sequence(&self) -> u64 {
        self.events.first().map_or(0, |e| e.sequence)
    }

    /// Sequence of the last event.
    pub fn last_sequence(&self) -> u64 {
        self.events.last().map_or(0, |e| e.sequence)
    }
}

/// Upcasts one event's payload to the current schema and decodes it, checking that
/// the (upcast) stored version is the version this build writes. PHI in the payload
/// may be clear (the store opened it) or sealed (read models never open it).
pub(crate) fn decode_event<E: DomainEvent + DeserializeOwned>(
    upcasters: &[Box<dyn EventUpcaster>],
    aggregate_type: &str,
    aggregate_id: &str,
    position: u64,
    stored: &EventRecord,
) -> Result<E, CodecError> {
    let serialized = SerializedEvent::new(
        aggregate_id.to_owned(),
        usize::try_from(stored.sequence).unwrap_or(usize::MAX),
        aggregate_type.to_owned(),
        stored.event_type.clone(),
        stored.event_version.clone(),
        stored.payload.clone(),
        Value::Null,
    );
    let upcast = upcasters.iter().fold(serialized, |event, upcaster| {
        if upcaster.can_upcast(&event.event_type, &event.event_version) { upcaster.upcast(event) } else { event }
    });
    let unsupported =
        || CodecError::UnsupportedEventVersion { position, event_type: upcast.event_type.clone(), version: upcast.event_version.clone() };
    let stored_version = SemanticVersion::from_str(&upcast.event_version).map_err(|_| unsupported())?;
    let event: E = serde_json::from_value(upcast.payload.clone()).map_err(|e| CodecError::BadPayload {
        position,
        event_type: upcast.event_type.clone(),
        reason: e.to_string(),
    })?;
    if event.event_type() != upcast.event_type || SemanticVersion::from_str(&event.event_version()).ok() != Some(stored_version) {
        return Err(unsupported());
    }
    Ok(event)
}
