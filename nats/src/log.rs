//! The event log on a JetStream stream.

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{DirectGetErrorKind, Stream};
use async_nats::jetstream::{self};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use emr_eventstore::{AggregateKey, Appended, CommitFeed, CommitRequest, EventLog, LogError, StoredCommit, check_together};
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::feed::DurableFeed;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};

/// The event log on JetStream.
///
/// Commits appended together ([`EventLog::append_together`]) go to several
/// subjects, which JetStream 2.9 cannot write at once; so the change is first
/// written whole, as one message, to a pending stream, then its commits are
/// appended in order, then the pending message is deleted. The first commit
/// decides: refused, the change is dropped; once it is in, the change is finished
/// by whoever gets there — the writer, or [`JetStreamLog::finish_pending`] when a
/// process next connects — and every step of finishing is idempotent.
pub struct JetStreamLog {
    context: jetstream::Context,
    stream: Stream,
    prefix: String,
    pending: Stream,
    request_timeout: Duration,
}

/// A bounded read that made no progress for the request timeout: the server is
/// away. An ordered consumer recreates itself for as long as that lasts, which
/// suits a follower but not a read that answers a request.
#[derive(Debug, thiserror::Error)]
#[error("no commit arrived within {0:?} while reading the log; the server may be away")]
struct ReadStalled(Duration);

/// A change appended together, as the pending stream keeps it until it is whole.
#[derive(Serialize, Deserialize)]
struct PendingChange {
    commits: Vec<PendingCommit>,
}

#[derive(Serialize, Deserialize)]
struct PendingCommit {
    key: String,
    expected_last_position: u64,
    commit_id: String,
    payload: String,
}

impl PendingChange {
    fn of(requests: &[CommitRequest]) -> Self {
        let commits = requests
            .iter()
            .map(|r| PendingCommit {
                key: r.key.dotted(),
                expected_last_position: r.expected_last_position,
                commit_id: r.commit_id.clone(),
                payload: BASE64.encode(&r.payload),
            })
            .collect();
        Self { commits }
    }

    fn requests(self, position: u64) -> Result<Vec<CommitRequest>, LogError> {
        let malformed = |reason: String| LogError::Malformed { position, reason: format!("pending change: {reason}") };
        self.commits
            .into_iter()
            .map(|c| {
                Ok(CommitRequest {
                    key: AggregateKey::from_dotted(&c.key).map_err(|e| malformed(e.to_string()))?,
                    expected_last_position: c.expected_last_position,
                    commit_id: c.commit_id,
                    payload: BASE64.decode(c.payload).map_err(|e| malformed(e.to_string()))?,
                })
            })
            .collect()
    }
}

/// How many times a writer tries to finish a decided change before leaving it to
/// the next start-up's [`JetStreamLog::finish_pending`].
const FINISH_ATTEMPTS: u32 = 3;

impl JetStreamLog {
    pub(crate) fn new(context: jetstream::Context, stream: Stream, prefix: String, pending: Stream, request_timeout: Duration) -> Self {
        Self { context, stream, prefix, pending, request_timeout }
    }

    /// The next item of a bounded read's stream, or unavailable when none comes
    /// within the request timeout.
    async fn next_within<S: futures::Stream + Unpin>(&self, stream: &mut S) -> Result<Option<S::Item>, LogError> {
        tokio::time::timeout(self.request_timeout, stream.next())
            .await
            .map_err(|_| LogError::unavailable(ReadStalled(self.request_timeout)))
    }

    fn pending_subject(&self, commit_id: &str) -> String {
        format!("{}_pending.{commit_id}", self.prefix)
    }

    /// Appends a change together: written whole to the pending stream, then its
    /// commits in order, then the pending message deleted.
    async fn append_change(&self, requests: Vec<CommitRequest>) -> Result<Vec<Appended>, LogError> {
        check_together(&requests)?;
        let change = serde_json::to_vec(&PendingChange::of(&requests)).map_err(LogError::unavailable)?;
        // No message id: a change retried after a refusal is a new change to keep.
        let subject = self.pending_subject(&requests[0].commit_id);
        let sent = self.context.publish(subject, change.into()).await.map_err(LogError::unavailable)?;
        let pending = sent.await.map_err(LogError::unavailable)?.sequence;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.finish(&requests).await {
                Ok(appended) => {
                    self.forget_pending(pending).await;
                    return Ok(appended);
                }
                Err(Unfinished::Refused(error)) => {
                    self.forget_pending(pending).await;
                    return Err(error);
                }
                Err(Unfinished::Interrupted(error)) if attempt >= FINISH_ATTEMPTS => return Err(error),
                Err(Unfinished::Interrupted(_)) => tokio::time::sleep(Duration::from_millis(100 << attempt)).await,
            }
        }
    }

    /// Appends each commit of a change that is not in the log yet. A commit is in
    /// when a duplicate append says so, or when the aggregate holds its very bytes
    /// (a duplicate window may have passed since a crash).
    async fn finish(&self, requests: &[CommitRequest]) -> Result<Vec<Appended>, Unfinished> {
        let mut appended = Vec::with_capacity(requests.len());
        for (index, request) in requests.iter().enumerate() {
            match self.append_commit(request.clone()).await {
                Ok(done) => appended.push(done),
                Err(LogError::Conflict { key, expected }) => {
                    let later = self.read_subject(&request.key, request.expected_last_position).await.map_err(Unfinished::Interrupted)?;
                    match later.iter().find(|commit| commit.payload == request.payload) {
                        Some(ours) => appended.push(Appended { position: ours.position, duplicate: true }),
                        None if index == 0 => return Err(Unfinished::Refused(LogError::Conflict { key, expected })),
                        None => {
                            return Err(Unfinished::Interrupted(LogError::Malformed {
                                position: later.first().map_or(0, |c| c.position),
                                reason: format!("{key} was written by another writer during a change that created it"),
                            }));
                        }
                    }
                }
                Err(error @ (LogError::TooLarge { .. } | LogError::NotTogether(_))) if index == 0 => {
                    return Err(Unfinished::Refused(error));
                }
                Err(error) => return Err(Unfinished::Interrupted(error)),
            }
        }
        Ok(appended)
    }

    async fn forget_pending(&self, sequence: u64) {
        if let Err(error) = self.pending.delete_message(sequence).await {
            // Harmless: finishing it again finds every commit in place.
            tracing::warn!(%error, sequence, "could not delete a finished pending change");
        }
    }

    /// Finishes every change a crash (or an outage) left part-way: each is whole
    /// afterwards, or, when its first commit was refused, dropped. Run when a
    /// process connects; returns how many changes it found.
    pub async fn finish_pending(&self) -> Result<usize, LogError> {
        let info = self.pending.get_info().await.map_err(LogError::unavailable)?;
        if info.state.messages == 0 {
            return Ok(0);
        }
        let last = info.state.last_sequence;
        let consumer = self
            .pending
            .create_consumer(pull::OrderedConfig { deliver_policy: DeliverPolicy::All, ..Default::default() })
            .await
            .map_err(LogError::unavailable)?;
        let mut messages = consumer.messages().await.map_err(LogError::unavailable)?;
        let mut found = 0;
        while let Some(message) = self.next_within(&mut messages).await? {
            let message = message.map_err(LogError::unavailable)?;
            let sequence = position_of(&message)?;
            found += 1;
            let requests = serde_json::from_slice::<PendingChange>(&message.payload)
                .map_err(|e| LogError::Malformed { position: sequence, reason: format!("pending change: {e}") })
                .and_then(|change| change.requests(sequence));
            let finished = match requests {
                Ok(requests) => self.finish(&requests).await,
                Err(malformed) => Err(Unfinished::Interrupted(malformed)),
            };
            match finished {
                Ok(_) | Err(Unfinished::Refused(_)) => self.forget_pending(sequence).await,
                Err(Unfinished::Interrupted(error @ LogError::Unavailable(_))) => return Err(error),
                // Kept for an operator, and tried again at every start: one change
                // that cannot be finished must not keep the event store from opening.
                Err(Unfinished::Interrupted(error)) => {
                    tracing::error!(%error, sequence, "a change appended together cannot be finished; it stays pending");
                }
            }
            if sequence >= last {
                break;
            }
        }
        Ok(found)
    }

    fn subject(&self, key: &AggregateKey) -> String {
        format!("{}.{}", self.prefix, key.dotted())
    }

    fn key_of(prefix: &str, subject: &str, position: u64) -> Result<AggregateKey, LogError> {
        let malformed = |reason: String| LogError::Malformed { position, reason };
        let dotted = subject
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('.'))
            .ok_or_else(|| malformed(format!("subject `{subject}` is outside `{prefix}`")))?;
        AggregateKey::from_dotted(dotted).map_err(|e| malformed(e.to_string()))
    }

    /// The commit a message of the event stream carries.
    pub(crate) fn commit_of(prefix: &str, message: &jetstream::Message) -> Result<StoredCommit, LogError> {
        let position = position_of(message)?;
        Ok(StoredCommit { position, key: Self::key_of(prefix, message.subject.as_str(), position)?, payload: message.payload.to_vec() })
    }

    /// Sends one commit; the returned future is its acknowledgement. What to
    /// report if it fails travels with it.
    async fn publish(&self, request: CommitRequest) -> Result<(PublishAckFuture, Refusal), LogError> {
        let refusal = Refusal { key: request.key.dotted(), expected: request.expected_last_position, size: request.payload.len() };
        let publish = PublishMessage::build()
            .payload(request.payload.into())
            .message_id(&request.commit_id)
            .expected_last_subject_sequence(request.expected_last_position);
        match self.context.send_publish(self.subject(&request.key), publish).await {
            Ok(ack) => Ok((ack, refusal)),
            Err(error) => Err(self.refused(error, refusal)),
        }
    }

    fn refused(&self, error: PublishError, refusal: Refusal) -> LogError {
        match error.kind() {
            PublishErrorKind::WrongLastSequence => LogError::Conflict { key: refusal.key, expected: refusal.expected },
            PublishErrorKind::MaxPayloadExceeded => {
                LogError::TooLarge { size: refusal.size, limit: self.context.client().server_info().max_payload }
            }
            _ => LogError::unavailable(error),
        }
    }

    async fn acknowledged(&self, (ack, refusal): (PublishAckFuture, Refusal)) -> Result<Appended, LogError> {
        match ack.await {
            Ok(ack) => Ok(Appended { position: ack.sequence, duplicate: ack.duplicate }),
            Err(error) => Err(self.refused(error, refusal)),
        }
    }

    async fn append_commit(&self, request: CommitRequest) -> Result<Appended, LogError> {
        let sent = self.publish(request).await?;
        self.acknowledged(sent).await
    }

    /// Every commit sent before any acknowledgement is awaited: one connection
    /// keeps them in order, and each still carries its expectation.
    async fn append_pipelined(&self, requests: Vec<CommitRequest>) -> Result<Vec<Appended>, LogError> {
        let mut sent = Vec::with_capacity(requests.len());
        for request in requests {
            sent.push(self.publish(request).await?);
        }
        let mut appended = Vec::with_capacity(sent.len());
        for sent in sent {
            appended.push(self.acknowledged(sent).await?);
        }
        Ok(appended)
    }

    /// Every commit sent before any acknowledgement is awaited, each answered on
    /// its own: independent commits (a batch of commands), one refusal apart.
    async fn append_each_pipelined(&self, requests: Vec<CommitRequest>) -> Vec<Result<Appended, LogError>> {
        let mut sent = Vec::with_capacity(requests.len());
        for request in requests {
            sent.push(self.publish(request).await);
        }
        let mut appended = Vec::with_capacity(sent.len());
        for sent in sent {
            appended.push(match sent {
                Ok(sent) => self.acknowledged(sent).await,
                Err(refused) => Err(refused),
            });
        }
        appended
    }

    async fn read_subject(&self, key: &AggregateKey, after_position: u64) -> Result<Vec<StoredCommit>, LogError> {
        // Direct gets first: one round trip answers the common case (nothing new, or a
        // few commits). A longer history is streamed by an ordered consumer filtered on
        // the subject, which costs one setup instead of one round trip per commit.
        const DIRECT_GETS: usize = 16;
        let subject = self.subject(key);
        let mut commits = Vec::new();
        let mut next = after_position + 1;
        for _ in 0..DIRECT_GETS {
            match self.stream.direct_get_next_for_subject(subject.as_str(), Some(next)).await {
                Ok(message) => {
                    next = message.sequence + 1;
                    commits.push(StoredCommit { position: message.sequence, key: key.clone(), payload: message.payload.to_vec() });
                }
                Err(error) if error.kind() == DirectGetErrorKind::NotFound => return Ok(commits),
                Err(error) => return Err(LogError::unavailable(error)),
            }
        }
        let last = match self.stream.direct_get_last_for_subject(subject.as_str()).await {
            Ok(message) => message.sequence,
            Err(error) if error.kind() == DirectGetErrorKind::NotFound => return Ok(commits),
            Err(error) => return Err(LogError::unavailable(error)),
        };
        if last < next {
            return Ok(commits);
        }
        let consumer = self
            .stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: subject.clone(),
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: next },
                ..Default::default()
            })
            .await
            .map_err(LogError::unavailable)?;
        let mut messages = consumer.messages().await.map_err(LogError::unavailable)?;
        while let Some(message) = self.next_within(&mut messages).await? {
            let message = message.map_err(LogError::unavailable)?;
            let position = position_of(&message)?;
            commits.push(StoredCommit { position, key: key.clone(), payload: message.payload.to_vec() });
            if position >= last {
                break;
            }
        }
        Ok(commits)
    }

    async fn last_sequence(&self) -> Result<u64, LogError> {
        head_of(&self.stream).await
    }

    async fn ordered_from(&self, from_position: u64) -> Result<BoxStream<'static, Result<StoredCommit, LogError>>, LogError> {
        let consumer = self
            .stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: format!("{}.>", self.prefix),
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: from_position.max(1) },
                ..Default::default()
            })
            .await
            .map_err(LogError::unavailable)?;
        let messages = consumer.messages().await.map_err(LogError::unavailable)?;
        let prefix = self.prefix.clone();
        Ok(messages
            .map_err(LogError::unavailable)
            .and_then(move |message| futures::future::ready(Self::commit_of(&prefix, &message)))
            .boxed())
    }

    async fn read_range(&self, from_position: u64, limit: usize) -> Result<Vec<StoredCommit>, LogError> {
        let head = self.last_sequence().await?;
        let from = from_position.max(1);
        if limit == 0 || from > head {
            return Ok(Vec::new());
        }
        let wanted = limit.min(usize::try_from(head - from + 1).unwrap_or(usize::MAX));
        let mut commits = Vec::with_capacity(wanted);
        let mut stream = self.ordered_from(from).await?;
        while commits.len() < wanted {
            match self.next_within(&mut stream).await? {
                Some(commit) => {
                    let commit = commit?;
                    let last = commit.position >= head;
                    commits.push(commit);
                    if last {
                        break;
                    }
                }
                None => break,
            }
        }
        Ok(commits)
    }
}

/// A stream message's position in the stream.
fn position_of(message: &jetstream::Message) -> Result<u64, LogError> {
    Ok(message.info().map_err(|e| LogError::Malformed { position: 0, reason: e.to_string() })?.stream_sequence)
}

/// The position of the stream's last message (0 when empty).
pub(crate) async fn head_of(stream: &Stream) -> Result<u64, LogError> {
    Ok(stream.get_info().await.map_err(LogError::unavailable)?.state.last_sequence)
}

/// Why a change appended together is not whole.
enum Unfinished {
    /// Its first commit was refused: nothing of it is in the log.
    Refused(LogError),
    /// Its first commit is in; the rest must still be appended.
    Interrupted(LogError),
}

/// What a refused publish is reported as.
struct Refusal {
    key: String,
    expected: u64,
    size: usize,
}

impl EventLog for JetStreamLog {
    fn append(&self, request: CommitRequest) -> BoxFuture<'_, Result<Appended, LogError>> {
        self.append_commit(request).boxed()
    }

    fn append_in_order(&self, requests: Vec<CommitRequest>) -> BoxFuture<'_, Result<Vec<Appended>, LogError>> {
        self.append_pipelined(requests).boxed()
    }

    fn append_each(&self, requests: Vec<CommitRequest>) -> BoxFuture<'_, Vec<Result<Appended, LogError>>> {
        self.append_each_pipelined(requests).boxed()
    }

    fn append_together(&self, requests: Vec<CommitRequest>) -> BoxFuture<'_, Result<Vec<Appended>, LogError>> {
        self.append_change(requests).boxed()
    }

    fn read_aggregate<'a>(&'a self, key: &'a AggregateKey, after_position: u64) -> BoxFuture<'a, Result<Vec<StoredCommit>, LogError>> {
        self.read_subject(key, after_position).boxed()
    }

    fn read_from(&self, from_position: u64, limit: usize) -> BoxFuture<'_, Result<Vec<StoredCommit>, LogError>> {
        self.read_range(from_position, limit).boxed()
    }

    fn head(&self) -> BoxFuture<'_, Result<u64, LogError>> {
        self.last_sequence().boxed()
    }

    fn subscribe(&self, from_position: u64) -> BoxFuture<'_, Result<BoxStream<'static, Result<StoredCommit, LogError>>, LogError>> {
        self.ordered_from(from_position).boxed()
    }

    fn durable_feed(&self, reader: &str) -> BoxFuture<'_, Result<Option<Box<dyn CommitFeed>>, LogError>> {
        let feed: Box<dyn CommitFeed> = Box::new(DurableFeed::new(self.stream.clone(), reader, self.prefix.clone()));
        futures::future::ready(Ok(Some(feed))).boxed()
    }
}
