//! Durable pull consumers: how projectors follow the event stream.
//!
//! Each reader has a durable consumer on the event stream (acknowledge-all, so
//! acknowledging a batch's last message acknowledges the batch). It lives on the
//! server, so `nats consumer info` shows each projector's delivered and pending
//! counts, and a projector that restarts cleanly resumes where the consumer
//! stands. The reader's checkpoint, committed with its effects, stays the truth:
//! when the consumer would deliver anything but the commit right after it (a
//! crash between commit and acknowledgement, a rebuild that swapped tables in,
//! two instances taking turns), the consumer is recreated at the checkpoint.

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::message::Message;
use async_nats::jetstream::stream::Stream;
use emr_eventstore::{CommitFeed, LogError, StoredCommit};
use futures::future::BoxFuture;
use futures::{FutureExt, TryStreamExt};

use crate::log::{JetStreamLog, head_of};

/// A reader's durable consumer on the event stream.
pub struct DurableFeed {
    stream: Stream,
    name: String,
    prefix: String,
    consumer: Option<PullConsumer>,
    /// The last commit of the batch being applied and its message, acknowledged once it is.
    unacknowledged: Option<(u64, Message)>,
}

/// How long a fetch may wait for the server's answer.
const FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A consumer name from a reader name: JetStream forbids `.`, `*`, `>` and whitespace.
fn consumer_name(reader: &str) -> String {
    reader.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

impl DurableFeed {
    pub(crate) fn new(stream: Stream, reader: &str, prefix: String) -> Self {
        Self { stream, name: consumer_name(reader), prefix, consumer: None, unacknowledged: None }
    }

    /// The consumer, created at `start` if it is missing or `reposition` is asked.
    async fn consumer(&mut self, start: u64, reposition: bool) -> Result<PullConsumer, LogError> {
        if !reposition && let Some(consumer) = &self.consumer {
            return Ok(consumer.clone());
        }
        if !reposition && let Ok(existing) = self.stream.get_consumer::<pull::Config>(&self.name).await {
            self.consumer = Some(existing.clone());
            return Ok(existing);
        }
        match self.stream.delete_consumer(&self.name).await {
            Ok(_) => {}
            Err(error) if error.to_string().contains("not found") => {}
            Err(error) => return Err(LogError::unavailable(error)),
        }
        let config = pull::Config {
            durable_name: Some(self.name.clone()),
            description: Some("EMR Ledger projector: positioned at its read model's checkpoint".into()),
            filter_subject: format!("{}.>", self.prefix),
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: start.max(1) },
            ack_policy: AckPolicy::All,
            max_ack_pending: -1,
            ..Default::default()
        };
        let consumer = self.stream.create_consumer(config).await.map_err(LogError::unavailable)?;
        tracing::debug!(consumer = %self.name, start, "durable consumer positioned");
        self.consumer = Some(consumer.clone());
        Ok(consumer)
    }

    /// The next batch from the consumer, as commits beside their messages.
    async fn fetch(&mut self, after: u64, limit: usize, reposition: bool) -> Result<(Vec<StoredCommit>, Vec<Message>), LogError> {
        let consumer = self.consumer(after + 1, reposition).await?;
        // A pull request to a consumer deleted meanwhile (another instance
        // repositioning it) is never answered: bound the wait, and the caller
        // retries from its checkpoint.
        let fetched = tokio::time::timeout(FETCH_TIMEOUT, async {
            let batch = consumer.fetch().max_messages(limit).messages().await.map_err(LogError::unavailable)?;
            batch.map_err(LogError::Unavailable).try_collect::<Vec<Message>>().await
        })
        .await;
        let messages = match fetched {
            Ok(messages) => messages?,
            Err(_) => {
                self.consumer = None;
                return Err(LogError::Unavailable(format!("consumer {} did not answer within {FETCH_TIMEOUT:?}", self.name).into()));
            }
        };
        let commits = messages.iter().map(|message| JetStreamLog::commit_of(&self.prefix, message)).collect::<Result<_, _>>()?;
        Ok((commits, messages))
    }

    /// True when `commits` are exactly the commits after `after`, in order.
    fn follows(commits: &[StoredCommit], after: u64) -> bool {
        (after + 1..).zip(commits).all(|(expected, commit)| commit.position == expected)
    }

    async fn next_batch(&mut self, after: u64, limit: usize) -> Result<Vec<StoredCommit>, LogError> {
        let mut batch = self.fetch(after, limit, false).await?;
        if !Self::follows(&batch.0, after) || (batch.0.is_empty() && self.lags_behind(after).await?) {
            batch = self.fetch(after, limit, true).await?;
        }
        let (commits, mut messages) = batch;
        // The last message knows how many more wait for this consumer.
        let pending = match messages.last().map(Message::info) {
            Some(Ok(info)) => info.pending,
            _ => 0,
        };
        crate::metrics::consumer_pending(&self.name, pending);
        self.unacknowledged = commits.last().map(|commit| commit.position).zip(messages.pop());
        Ok(commits)
    }

    /// An empty fetch is either the end of the log or a consumer that delivered
    /// past `after` (its messages await redelivery): the stream's head tells.
    async fn lags_behind(&self, after: u64) -> Result<bool, LogError> {
        Ok(head_of(&self.stream).await? > after)
    }
}

impl CommitFeed for DurableFeed {
    fn next(&mut self, after: u64, limit: usize) -> BoxFuture<'_, Result<Vec<StoredCommit>, LogError>> {
        self.next_batch(after, limit).boxed()
    }

    fn applied(&mut self, through: u64) -> BoxFuture<'_, Result<(), LogError>> {
        async move {
            if let Some((position, message)) = self.unacknowledged.take() {
                if position == through {
                    // Confirmed by the server (one round trip per batch): once
                    // `applied` returns, the consumer's floor is where the
                    // checkpoint is, so a restart resumes there and nowhere earlier.
                    message.double_ack().await.map_err(LogError::Unavailable)?;
                } else {
                    self.unacknowledged = Some((position, message));
                }
            }
            Ok(())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_names_become_valid_consumer_names() {
        assert_eq!(consumer_name("projection-record_index-emr"), "projection-record_index-emr");
        assert_eq!(consumer_name("a.b*c>d e"), "a_b_c_d_e");
    }
}
