//! The event log on a JetStream stream.

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{DirectGetErrorKind, Stream};
use async_nats::jetstream::{self};
use emr_eventstore::{AggregateKey, Appended, CommitFeed, CommitRequest, EventLog, LogError, StoredCommit};

use crate::feed::DurableFeed;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};

/// The event log on JetStream.
pub struct JetStreamLog {
    context: jetstream::Context,
    stream: Stream,
    prefix: String,
}

impl JetStreamLog {
    pub(crate) fn new(context: jetstream::Context, stream: Stream, prefix: String) -> Self {
        Self { context, stream, prefix }
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
        while let Some(message) = messages.next().await {
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
            match stream.next().await {
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
