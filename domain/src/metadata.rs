//! The envelope every stored event carries, beside its payload.
//!
//! cqrs-es passes metadata as a string map; [`EventMetadata`] is its typed form
//! and the single place that names the keys.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::actor::Actor;
use crate::ids::{CommandId, EventId};

/// Keys of the metadata map.
pub mod keys {
    /// UUIDv7 of the event.
    pub const EVENT_ID: &str = "event_id";
    /// Aggregate type (`patient`, `medical_record`, `access_grant`).
    pub const AGGREGATE_TYPE: &str = "aggregate_type";
    /// When the event was recorded (RFC 3339).
    pub const RECORDED_AT: &str = "recorded_at";
    /// The acting user id.
    pub const ACTOR_ID: &str = "actor_id";
    /// The acting user's role.
    pub const ACTOR_ROLE: &str = "actor_role";
    /// The command that produced the event.
    pub const COMMAND_ID: &str = "command_id";
    /// The business transaction the command belongs to.
    pub const CORRELATION_ID: &str = "correlation_id";
    /// The message that caused the command.
    pub const CAUSATION_ID: &str = "causation_id";
    /// The event's schema version, as stored (before upcasting).
    pub const SCHEMA_VERSION: &str = "schema_version";
    /// Position of the event's commit in the global log.
    pub const POSITION: &str = "position";
}

/// Who caused a command and in which business flow: given by the application
/// layer, copied into every event the command produces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandContext {
    /// The command id; a retry keeps it, which makes the command idempotent.
    pub command_id: CommandId,
    /// The author.
    pub actor: Actor,
    /// The business transaction (defaults to the command id).
    pub correlation_id: uuid::Uuid,
    /// What caused this command (defaults to the command id).
    pub causation_id: uuid::Uuid,
    /// The aggregate version (its sequence) the caller last saw, when it made its
    /// command conditional on it (HTTP `If-Match`): the command is refused as stale
    /// if the aggregate has moved on. A precondition, not a fact: never recorded.
    #[serde(skip)]
    pub expected_version: Option<u64>,
}

impl CommandContext {
    /// A context for a new command by `actor`, starting its own correlation.
    pub fn new(actor: Actor) -> Self {
        Self::with_id(CommandId::new(), actor)
    }

    /// A context for a command whose id the caller chose (an idempotency key).
    pub fn with_id(command_id: CommandId, actor: Actor) -> Self {
        let id = command_id.as_uuid();
        Self { command_id, actor, correlation_id: id, causation_id: id, expected_version: None }
    }

    /// The context of the `index`-th command of a batch sent under this context:
    /// its command id derives from the batch's (UUIDv5), so a retried batch names
    /// the same commands; the batch is its cause; it is never conditional.
    pub fn batch_entry(&self, index: usize) -> Self {
        let batch = self.command_id.as_uuid();
        let command_id = CommandId::from(uuid::Uuid::new_v5(&batch, format!("record-{index}").as_bytes()));
        Self { command_id, actor: self.actor, correlation_id: self.correlation_id, causation_id: batch, expected_version: None }
    }

    /// The same command, refused unless the aggregate is still at `version`.
    pub fn expecting(mut self, version: Option<u64>) -> Self {
        self.expected_version = version;
        self
    }

    /// A context for a command caused by another message in the same flow.
    pub fn caused_by(mut self, correlation_id: uuid::Uuid, causation_id: uuid::Uuid) -> Self {
        self.correlation_id = correlation_id;
        self.causation_id = causation_id;
        self
    }
}

/// The envelope of one stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// Event id.
    pub event_id: EventId,
    /// Aggregate type.
    pub aggregate_type: String,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
    /// Command, author, correlation and causation.
    #[serde(flatten)]
    pub context: CommandContext,
    /// Schema version of the payload as stored.
    pub schema_version: String,
    /// Global position of the commit holding this event.
    pub position: u64,
}

/// Metadata that is missing a key or holds an unparsable value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event metadata key `{key}` is missing or malformed")]
pub struct MalformedMetadata {
    /// The offending key.
    pub key: &'static str,
}

impl EventMetadata {
    /// The string map cqrs-es carries.
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut map = self.context.to_map();
        map.extend([
            (keys::EVENT_ID.to_owned(), self.event_id.to_string()),
            (keys::AGGREGATE_TYPE.to_owned(), self.aggregate_type.clone()),
            (keys::RECORDED_AT.to_owned(), self.recorded_at.to_rfc3339()),
            (keys::SCHEMA_VERSION.to_owned(), self.schema_version.clone()),
            (keys::POSITION.to_owned(), self.position.to_string()),
        ]);
        map
    }

    /// Reads the typed envelope back from a cqrs-es metadata map.
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, MalformedMetadata> {
        Ok(Self {
            event_id: parse(map, keys::EVENT_ID)?,
            aggregate_type: get(map, keys::AGGREGATE_TYPE)?.to_owned(),
            recorded_at: parse(map, keys::RECORDED_AT)?,
            context: CommandContext::from_map(map)?,
            schema_version: get(map, keys::SCHEMA_VERSION)?.to_owned(),
            position: parse(map, keys::POSITION)?,
        })
    }
}

fn get<'a>(map: &'a HashMap<String, String>, key: &'static str) -> Result<&'a str, MalformedMetadata> {
    map.get(key).map(String::as_str).ok_or(MalformedMetadata { key })
}

fn parse<T: std::str::FromStr>(map: &HashMap<String, String>, key: &'static str) -> Result<T, MalformedMetadata> {
    get(map, key)?.parse().map_err(|_| MalformedMetadata { key })
}

impl CommandContext {
    /// The string map cqrs-es passes from `execute_with_metadata` to the store.
    pub fn to_map(&self) -> HashMap<String, String> {
        // Room for an event's envelope too (`EventMetadata::to_map` adds five keys).
        let mut map = HashMap::with_capacity(10);
        map.extend([
            (keys::ACTOR_ID.to_owned(), self.actor.user_id.to_string()),
            (keys::ACTOR_ROLE.to_owned(), self.actor.role.name().to_owned()),
            (keys::COMMAND_ID.to_owned(), self.command_id.to_string()),
            (keys::CORRELATION_ID.to_owned(), self.correlation_id.to_string()),
            (keys::CAUSATION_ID.to_owned(), self.causation_id.to_string()),
        ]);
        map
    }

    /// Reads a command context back from a metadata map.
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, MalformedMetadata> {
        let role = serde_json::from_value(serde_json::Value::String(get(map, keys::ACTOR_ROLE)?.to_owned()))
            .map_err(|_| MalformedMetadata { key: keys::ACTOR_ROLE })?;
        Ok(Self {
            command_id: parse(map, keys::COMMAND_ID)?,
            actor: Actor::new(parse(map, keys::ACTOR_ID)?, role),
            correlation_id: parse(map, keys::CORRELATION_ID)?,
            causation_id: parse(map, keys::CAUSATION_ID)?,
            expected_version: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::Role;
    use crate::ids::UserId;

    #[test]
    fn metadata_survives_the_string_map_of_cqrs_es() {
        let metadata = EventMetadata {
            event_id: EventId::new(),
            aggregate_type: "patient".into(),
            recorded_at: DateTime::parse_from_rfc3339("2026-11-24T10:00:00.123456Z").unwrap().to_utc(),
            context: CommandContext::new(Actor::new(UserId::new(), Role::Physician)),
            schema_version: "1.0".into(),
            position: 42,
        };
        assert_eq!(EventMetadata::from_map(&metadata.to_map()), Ok(metadata));
    }

    #[test]
    fn a_missing_key_is_named() {
        let err = EventMetadata::from_map(&HashMap::new()).unwrap_err();
        assert_eq!(err.key, keys::EVENT_ID);
    }
}
