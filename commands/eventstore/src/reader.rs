//! Reading the global log without knowing aggregate types, and without opening PHI:
//! what audits, replays and the CLI's log listing need.

use std::sync::Arc;

use emr_domain::metadata::EventMetadata;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use cqrs_es::persist::EventUpcaster;
use emr_domain::upcasting::EventSchema;

use crate::codec::{CommitRecord, EventRecord, decode_event};
use crate::error::{CodecError, StoreError};
use crate::log::{AggregateKey, EventLog, LogError, StoredCommit};
use emr_domain::ids::EventId;
use futures::StreamExt;
use futures::stream::BoxStream;

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

/// An aggregate key (owned or borrowed) as its dotted string.
fn dotted<S: serde::Serializer>(key: &impl std::borrow::Borrow<AggregateKey>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&key.borrow().dotted())
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

    /// A reader that follows the log forward batch by batch (see [`LogFollower`]).
    pub fn follower(&self) -> LogFollower {
        LogFollower { log: self.log.clone(), subscription: None }
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
            for event in &record.events {
                events.push(RecordedEvent {
                    key: commit.key.clone(),
                    sequence: event.sequence,
                    event_type: event.event_type.clone(),
                    metadata: record.metadata_of(event, commit.position),
                    payload: event.payload.clone(),
                });
            }
        }
        Ok(events)
    }
}

/// Reads the log forward in batches over one subscription, kept between calls.
///
/// [`LogReader::read`] opens a reader on the log per call, and opening one at a
/// position costs the log (JetStream) more the longer it is, so a poller that
/// reads batch after batch — the anchor worker — would slow as the log grows.
/// The follower opens one when asked for what does not follow its last batch
/// (a first call, a batch given up, an error), and otherwise continues it.
pub struct LogFollower {
    log: Arc<dyn EventLog>,
    subscription: Option<Subscription>,
}

struct Subscription {
    commits: BoxStream<'static, Result<StoredCommit, LogError>>,
    /// The position of the last commit taken from `commits`.
    last_read: u64,
}

impl LogFollower {
    /// The events of up to `limit` commits after position `after`, up to the log's
    /// head as it is now; none when nothing follows `after`.
    pub async fn events_after(&mut self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let head = self.log.head().await?;
        if limit == 0 || after >= head {
            return Ok(Vec::new());
        }
        let mut subscription = match self.subscription.take() {
            Some(subscription) if subscription.last_read == after => subscription,
            _ => Subscription { commits: self.log.subscribe(after + 1).await?, last_read: after },
        };
        let mut commits = Vec::new();
        while commits.len() < limit && subscription.last_read < head {
            // An error or an ended subscription drops it: the next call opens another.
            let Some(commit) = subscription.commits.next().await.transpose()? else { return LogReader::flatten(commits) };
            subscription.last_read = commit.position;
            commits.push(commit);
        }
        self.subscription = Some(subscription);
        LogReader::flatten(commits)
    }
}

/// The canonical bytes of each event of a stored commit, with the event's id,
/// taken without building its payload: the payload's stored bytes stand as they
/// are. They equal [`RecordedEvent::canonical_bytes`] whenever the payload was
/// stored as this store writes it (compact JSON, keys sorted), which is what
/// makes a full pass over the log cheap; a checker that finds them differ from
/// what it expects must ask `canonical_bytes` again before it calls an event
/// altered.
pub fn stored_canonical_bytes(commit: &StoredCommit) -> Result<Vec<(EventId, Vec<u8>)>, CodecError> {
    let record = CommitRecord::<Box<RawValue>>::decode_as(commit)?;
    let mut events = Vec::with_capacity(record.events.len());
    for event in &record.events {
        let metadata = serde_json::to_value(record.metadata_of(event, commit.position)).unwrap_or(Value::Null);
        events.push((event.event_id, CanonicalForm::write(&event.event_type, &commit.key, metadata, &event.payload, event.sequence)));
    }
    Ok(events)
}

/// An event as its canonical bytes spell it: the fields in the order of their
/// names, as a JSON object with sorted keys has them; the envelope (small) as a
/// JSON value, whose maps are sorted (serde_json without `preserve_order`).
#[derive(Serialize)]
struct CanonicalForm<'a, P: ?Sized> {
    event_type: &'a str,
    #[serde(serialize_with = "dotted")]
    key: &'a AggregateKey,
    metadata: Value,
    payload: &'a P,
    sequence: u64,
}

impl<P: Serialize + ?Sized> CanonicalForm<'_, P> {
    fn write(event_type: &str, key: &AggregateKey, metadata: Value, payload: &P, sequence: u64) -> Vec<u8> {
        let form = CanonicalForm { event_type, key, metadata, payload, sequence };
        let mut bytes = b"emr-event/1\n".to_vec();
        // Serializing these types cannot fail: no map has non-string keys.
        serde_json::to_writer(&mut bytes, &form).unwrap_or_default();
        bytes
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
        let metadata = serde_json::to_value(&self.metadata).unwrap_or(Value::Null);
        CanonicalForm::write(&self.event_type, &self.key, metadata, &self.payload, self.sequence)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use emr_domain::actor::{Actor, Role};
    use emr_domain::ids::{CommandId, UserId};
    use serde_json::json;

    use crate::codec::ENVELOPE_SCHEMA;

    fn commit(payloads: Vec<Value>) -> StoredCommit {
        let key = AggregateKey::new("medical_record", "0190f5c4-7d0e-7cc2-9a4e-3f1c2b6a9d10").unwrap();
        let record = CommitRecord {
            schema: ENVELOPE_SCHEMA,
            aggregate_type: key.aggregate_type().to_owned(),
            aggregate_id: key.aggregate_id().to_owned(),
            command_id: CommandId::new(),
            correlation_id: uuid::Uuid::now_v7(),
            causation_id: uuid::Uuid::now_v7(),
            actor: Actor::new(UserId::new(), Role::Physician),
            recorded_at: chrono::Utc::now(),
            events: payloads
                .into_iter()
                .zip(1..)
                .map(|(payload, sequence)| EventRecord {
                    event_id: EventId::new(),
                    sequence,
                    event_type: "RecordAmended".into(),
                    event_version: "1.0".into(),
                    payload,
                })
                .collect(),
        };
        StoredCommit { position: 7, key, payload: record.encode().unwrap() }
    }

    fn payloads() -> Vec<Value> {
        vec![
            json!({"z": 1, "a": {"y": [3, 2.5, -1e300, null], "b": "é \" \\ \u{1}"}, "m": true}),
            json!({"data": {"sealed": {"ciphertext": "AAEC", "key": "p", "v": 1}}, "version": 2}),
            json!([]),
        ]
    }

    #[test]
    fn canonical_bytes_are_the_event_as_json_with_sorted_keys() {
        for event in LogReader::flatten(vec![commit(payloads())]).unwrap() {
            // Version 1's definition, written the slow way it was first written.
            let mut expected = b"emr-event/1\n".to_vec();
            expected.extend(serde_json::to_vec(&serde_json::to_value(&event).unwrap()).unwrap());
            assert_eq!(event.canonical_bytes(), expected);
        }
    }

    #[test]
    fn stored_bytes_give_the_canonical_bytes_of_what_this_store_writes() {
        let commit = commit(payloads());
        let events = LogReader::flatten(vec![commit.clone()]).unwrap();
        let stored = stored_canonical_bytes(&commit).unwrap();
        assert_eq!(stored.len(), events.len());
        for ((event_id, bytes), event) in stored.iter().zip(&events) {
            assert_eq!(*event_id, event.metadata.event_id);
            assert_eq!(*bytes, event.canonical_bytes());
        }
    }

    #[test]
    fn stored_bytes_written_otherwise_differ_so_a_checker_must_look_again() {
        let mut commit = commit(vec![json!({"b": 1, "a": 2})]);
        let text = String::from_utf8(commit.payload.clone()).unwrap().replace(r#"{"a":2,"b":1}"#, r#"{ "b": 1, "a": 2 }"#);
        commit.payload = text.into_bytes();
        let event = &LogReader::flatten(vec![commit.clone()]).unwrap()[0];
        let (_, stored) = &stored_canonical_bytes(&commit).unwrap()[0];
        assert_ne!(*stored, event.canonical_bytes(), "the stored form is not canonical");
        assert!(event.canonical_bytes().ends_with(br#""payload":{"a":2,"b":1},"sequence":1}"#));
    }
}
