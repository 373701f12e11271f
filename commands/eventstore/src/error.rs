//! Errors of the event store, and how they become cqrs-es errors.

use cqrs_es::AggregateError;

use crate::keys::KeyError;
use crate::log::{InvalidAggregateKey, LogError};
use crate::phi::PhiError;

/// A commit that cannot be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Serialization failed (a bug, never user input).
    #[error("cannot encode commit: {0}")]
    Encode(String),
    /// The bytes at a position are not a valid commit.
    #[error("malformed commit at position {position}: {reason}")]
    Malformed {
        /// Where.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// The commit envelope is of an unknown schema.
    #[error("commit at position {position} has envelope schema {schema}, which this build does not know")]
    UnsupportedEnvelope {
        /// Where.
        position: u64,
        /// Its schema.
        schema: u32,
    },
    /// An event whose (upcast) version is not the one this build decodes.
    #[error("event {event_type} version {version} at position {position} is not supported by this build")]
    UnsupportedEventVersion {
        /// Where.
        position: u64,
        /// Event type.
        event_type: String,
        /// Stored version after upcasting.
        version: String,
    },
    /// The payload does not match the event type's schema.
    #[error("event {event_type} at position {position} does not decode: {reason}")]
    BadPayload {
        /// Where.
        position: u64,
        /// Event type.
        event_type: String,
        /// Decoder's message.
        reason: String,
    },
    /// The events of an aggregate are out of sequence.
    #[error("aggregate {key} expected event sequence {expected} at position {position}, found {found}")]
    OutOfSequence {
        /// `<type>.<id>`.
        key: String,
        /// Where.
        position: u64,
        /// Next expected sequence.
        expected: u64,
        /// What was stored.
        found: u64,
    },
}

/// Any failure of the event store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The aggregate type or id cannot be stored.
    #[error(transparent)]
    InvalidKey(#[from] InvalidAggregateKey),
    /// The log refused or failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// Stored bytes are not a valid commit or event.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// PHI could not be sealed or opened.
    #[error(transparent)]
    Phi(#[from] PhiError),
    /// Key service failure.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A command id already used for another aggregate.
    #[error("command id {command_id} was already used for {original}")]
    CommandIdReused {
        /// The reused id.
        command_id: String,
        /// `<type>.<id>` it was first used on.
        original: String,
    },
    /// The command was conditional on a version the aggregate has moved past.
    #[error("the command expected version {expected} but the aggregate is at version {actual}")]
    Stale {
        /// The version the caller last saw.
        expected: u64,
        /// The aggregate's version now.
        actual: u64,
    },
    /// Command metadata passed to `commit` is incomplete.
    #[error("command metadata: {0}")]
    Metadata(String),
}

impl StoreError {
    /// True when retrying the whole command (reload, decide, commit) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Log(LogError::Conflict { .. } | LogError::Unavailable(_) | LogError::StorageFull(_))
                | Self::Key(KeyError::Unavailable(_))
        )
    }
}

impl<E: std::error::Error> From<StoreError> for AggregateError<E> {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Log(LogError::Conflict { .. }) => AggregateError::AggregateConflict,
            StoreError::Log(LogError::Unavailable(_) | LogError::StorageFull(_)) | StoreError::Key(KeyError::Unavailable(_)) => {
                AggregateError::DatabaseConnectionError(Box::new(error))
            }
            StoreError::Codec(_) | StoreError::Phi(PhiError::Corrupt { .. }) => AggregateError::DeserializationError(Box::new(error)),
            other => AggregateError::UnexpectedError(Box::new(other)),
        }
    }
}
