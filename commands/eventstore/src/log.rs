//! The port every event-log backend implements.

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

/// Identifies one aggregate instance; it maps to one log subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AggregateKey {
    aggregate_type: String,
    aggregate_id: String,
}

/// An aggregate type or id that cannot name a log subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid aggregate {part} `{value}`: {rule}")]
pub struct InvalidAggregateKey {
    /// `type` or `id`.
    pub part: &'static str,
    /// The rejected value (truncated).
    pub value: String,
    /// The rule it broke.
    pub rule: &'static str,
}

impl AggregateKey {
    /// Longest aggregate id.
    pub const MAX_ID_LEN: usize = 64;

    /// Validates both parts: they become NATS subject tokens, so dots, wildcards and
    /// spaces are refused.
    pub fn new(aggregate_type: &str, aggregate_id: &str) -> Result<Self, InvalidAggregateKey> {
        let truncated = |v: &str| v.chars().take(80).collect::<String>();
        if aggregate_type.is_empty() || aggregate_type.len() > 32 || !aggregate_type.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(InvalidAggregateKey { part: "type", value: truncated(aggregate_type), rule: "1-32 lowercase letters or '_'" });
        }
        if aggregate_id.is_empty()
            || aggregate_id.len() > Self::MAX_ID_LEN
            || !aggregate_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(InvalidAggregateKey { part: "id", value: truncated(aggregate_id), rule: "1-64 ASCII letters, digits, '-' or '_'" });
        }
        Ok(Self { aggregate_type: aggregate_type.to_owned(), aggregate_id: aggregate_id.to_owned() })
    }

    /// The aggregate type.
    pub fn aggregate_type(&self) -> &str {
        &self.aggregate_type
    }

    /// The aggregate id.
    pub fn aggregate_id(&self) -> &str {
        &self.aggregate_id
    }

    /// `<type>.<id>`, the subject suffix and the key of snapshots.
    pub fn dotted(&self) -> String {
        format!("{}.{}", self.aggregate_type, self.aggregate_id)
    }

    /// Parses `<type>.<id>` back.
    pub fn from_dotted(dotted: &str) -> Result<Self, InvalidAggregateKey> {
        let (aggregate_type, aggregate_id) = dotted.split_once('.').unwrap_or((dotted, ""));
        Self::new(aggregate_type, aggregate_id)
    }
}

/// A commit to append.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    /// The aggregate.
    pub key: AggregateKey,
    /// Position of the aggregate's last commit as the writer saw it; 0 when the
    /// writer saw no commit. Any other current value is a conflict.
    pub expected_last_position: u64,
    /// Deduplication id (the command id): an append whose id the log has seen
    /// returns the original commit's position instead of appending.
    pub commit_id: String,
    /// The encoded commit.
    pub payload: Vec<u8>,
}

/// The outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Position of the commit (the original one for a duplicate).
    pub position: u64,
    /// True when the commit id was seen before and nothing was appended.
    pub duplicate: bool,
}

/// A commit as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCommit {
    /// Global position.
    pub position: u64,
    /// The aggregate, as named by the log subject.
    pub key: AggregateKey,
    /// The encoded commit.
    pub payload: Vec<u8>,
}

/// Why the log refused or failed an operation.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Another writer appended to the aggregate first.
    #[error("concurrent write to {key}: expected last position {expected}")]
    Conflict {
        /// `<type>.<id>`.
        key: String,
        /// What the writer expected.
        expected: u64,
    },
    /// The backend could not be reached or failed.
    #[error("event log unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backend has no room left to store the commit; nothing was written.
    /// Retrying (with the same command id) succeeds once space is freed.
    #[error("event log storage is full: {0}")]
    StorageFull(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An entry that is not a commit of this store (e.g. foreign subject).
    #[error("malformed log entry at position {position}: {reason}")]
    Malformed {
        /// Where.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// Commits that [`EventLog::append_together`] cannot make one change.
    #[error("commits cannot be appended together: {0}")]
    NotTogether(&'static str),
    /// A commit larger than the backend accepts.
    #[error("commit of {size} bytes exceeds the log's limit of {limit} bytes")]
    TooLarge {
        /// Commit size.
        size: usize,
        /// Backend limit.
        limit: usize,
    },
}

impl LogError {
    /// Wraps a backend failure.
    pub fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(error))
    }
}

/// An append-only log of commits: the event store's only source of truth.
///
/// Conformance: `emr_eventstore::conformance` (feature `conformance`) is the
/// executable specification every backend must pass unchanged.
pub trait EventLog: Send + Sync + 'static {
    /// Appends a commit if the aggregate's last position is still the expected one.
    fn append(&self, request: CommitRequest) -> BoxFuture<'_, Result<Appended, LogError>>;

    /// Appends commits in the order given, each under its own expectation, as
    /// [`EventLog::append`] one after another would; a backend may pipeline them
    /// (how a restore refills a log). On an error, commits after the failing one
    /// may or may not have been appended: the caller treats the log as it finds it.
    fn append_in_order(&self, requests: Vec<CommitRequest>) -> BoxFuture<'_, Result<Vec<Appended>, LogError>> {
        async move {
            let mut appended = Vec::with_capacity(requests.len());
            for request in requests {
                appended.push(self.append(request).await?);
            }
            Ok(appended)
        }
        .boxed()
    }

    /// Appends independent commits, each under its own expectation, and answers
    /// each on its own: a refusal of one leaves the others standing. A backend may
    /// pipeline them — send every one before awaiting any acknowledgement — which
    /// is how a batch of commands reaches the log's own throughput.
    fn append_each(&self, requests: Vec<CommitRequest>) -> BoxFuture<'_, Vec<Result<Appended, LogError>>> {
        async move {
            let mut appended = Vec::with_capacity(requests.len());
            for request in requests {
                appended.push(self.append(request).await);
            }
            appended
        }
        .boxed()
    }

    /// Appends commits to several aggregates as one change: every one of them, or
    /// (on any refusal) none, including after a crash part-way — a backend that
    /// cannot write them at once finishes an interrupted change when it next opens.
    ///
    /// The contract is what every backend can keep with one subject per aggregate
    /// and no multi-subject atomic write (see [`check_together`]): one commit per
    /// aggregate, and at most one of them on an aggregate that already has commits,
    /// listed first. That one is where the change is decided: a conflict there
    /// refuses it whole; every later commit creates an aggregate nobody else writes.
    fn append_together(&self, requests: Vec<CommitRequest>) -> BoxFuture<'_, Result<Vec<Appended>, LogError>>;

    /// The aggregate's commits after `after_position`, in order. Called on every
    /// load to bring a cached aggregate up to date, so the common answer (nothing
    /// new) must be cheap.
    fn read_aggregate<'a>(&'a self, key: &'a AggregateKey, after_position: u64) -> BoxFuture<'a, Result<Vec<StoredCommit>, LogError>>;

    /// Up to `limit` commits of any aggregate from `from_position` on, in order.
    fn read_from(&self, from_position: u64, limit: usize) -> BoxFuture<'_, Result<Vec<StoredCommit>, LogError>>;

    /// Position of the last commit in the whole log (0 when empty).
    fn head(&self) -> BoxFuture<'_, Result<u64, LogError>>;

    /// Every commit from `from_position` on, then each new one as it is appended.
    fn subscribe(&self, from_position: u64) -> BoxFuture<'_, Result<BoxStream<'static, Result<StoredCommit, LogError>>, LogError>>;

    /// A durable feed of the whole log for the reader named `reader`, where the
    /// backend keeps readers' positions server-side (JetStream's durable pull
    /// consumers); `None` where it does not, and readers use [`PollingFeed`].
    fn durable_feed(&self, reader: &str) -> BoxFuture<'_, Result<Option<Box<dyn CommitFeed>>, LogError>> {
        let _ = reader;
        futures::future::ready(Ok(None)).boxed()
    }
}

/// Whether `requests` keep [`EventLog::append_together`]'s contract.
pub fn check_together(requests: &[CommitRequest]) -> Result<(), LogError> {
    if requests.is_empty() {
        return Err(LogError::NotTogether("there is nothing to append"));
    }
    if requests.iter().skip(1).any(|request| request.expected_last_position != 0) {
        return Err(LogError::NotTogether("only the first commit may be on an aggregate that already has commits"));
    }
    let keys: std::collections::BTreeSet<&AggregateKey> = requests.iter().map(|request| &request.key).collect();
    if keys.len() != requests.len() {
        return Err(LogError::NotTogether("each aggregate may have one commit in a change"));
    }
    Ok(())
}

/// A named reader's ordered delivery of the log: how projectors follow it.
///
/// The reader's own checkpoint stays the truth (it is committed with the reader's
/// effects), so each call names the position it has reached; a feed that stands
/// elsewhere (a crash between the reader's commit and its acknowledgement, a
/// rebuild that swapped tables in) repositions itself there.
pub trait CommitFeed: Send + 'static {
    /// Up to `limit` commits after `after`, in order, without waiting for new ones.
    fn next(&mut self, after: u64, limit: usize) -> BoxFuture<'_, Result<Vec<StoredCommit>, LogError>>;
    /// Everything through `through` is applied and checkpointed: the feed may forget it.
    fn applied(&mut self, through: u64) -> BoxFuture<'_, Result<(), LogError>>;
}

/// A feed over any log that reads ranges on demand and keeps no position.
pub struct PollingFeed {
    log: std::sync::Arc<dyn EventLog>,
}

impl PollingFeed {
    /// A feed over `log`.
    pub fn new(log: std::sync::Arc<dyn EventLog>) -> Self {
        Self { log }
    }

    /// The durable feed of `reader` where `log` has them, otherwise a polling one.
    pub async fn or_durable(log: std::sync::Arc<dyn EventLog>, reader: &str) -> Result<Box<dyn CommitFeed>, LogError> {
        match log.durable_feed(reader).await? {
            Some(durable) => Ok(durable),
            None => Ok(Box::new(Self::new(log))),
        }
    }
}

impl CommitFeed for PollingFeed {
    fn next(&mut self, after: u64, limit: usize) -> BoxFuture<'_, Result<Vec<StoredCommit>, LogError>> {
        self.log.read_from(after + 1, limit)
    }

    fn applied(&mut self, _through: u64) -> BoxFuture<'_, Result<(), LogError>> {
        futures::future::ready(Ok(())).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_refuse_anything_that_would_break_a_subject() {
        assert!(AggregateKey::new("patient", "0190f5c4-7d0e-7cc2-9a4e-3f1c2b6a9d10").is_ok());
        for (t, id) in [
            ("patient", "a.b"),
            ("patient", "*"),
            ("patient", ">"),
            ("patient", ""),
            ("Patient", "x"),
            ("pa.tient", "x"),
            ("patient", "a b"),
        ] {
            assert!(AggregateKey::new(t, id).is_err(), "{t}/{id}");
        }
    }

    #[test]
    fn dotted_form_round_trips() {
        let key = AggregateKey::new("medical_record", "abc-1").expect("a valid key");
        assert_eq!(AggregateKey::from_dotted(&key.dotted()), Ok(key));
    }
}
