//! Projection failures.

use emr_eventstore::{CodecError, LogError, PhiError, StoreError};

/// Why a batch could not be projected. The batch's transaction is rolled back:
/// nothing of it is visible, and the projector retries from its checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The read-model database failed.
    #[error("read-model database: {0}")]
    Database(#[from] sqlx::Error),
    /// The event log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// An event in the log cannot be decoded: the projector stops rather than skip it.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Reading the log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// PHI a projector must read (the search index) could not be opened: the key
    /// service failed, or a sealed value does not authenticate.
    #[error("opening PHI of patient {subject}: {source}")]
    Phi {
        /// The data subject.
        subject: String,
        /// Cause.
        #[source]
        source: PhiError,
    },
    /// The task applying a batch ended without an outcome (it panicked).
    #[error("projection batch aborted: {0}")]
    BatchAborted(String),
    /// No projection of that name.
    #[error("no projection named `{0}`")]
    UnknownProjection(String),
    /// A wait for a position ran out.
    #[error("read model `{projection}` did not reach position {position} within {waited_ms} ms (it is at {reached})")]
    WaitTimedOut {
        /// The projection waited on.
        projection: String,
        /// The position asked for.
        position: u64,
        /// Where it was when the wait ended.
        reached: u64,
        /// How long the wait lasted.
        waited_ms: u128,
    },
}
