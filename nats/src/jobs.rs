//! Background jobs on JetStream: a work-queue stream (a message is removed once
//! a worker acknowledges it) read through one durable pull consumer that all
//! workers share, and a KV bucket of job statuses.
//!
//! A worker that dies without acknowledging leaves its job to be delivered
//! again when the consumer's acknowledgement wait runs out; a worker still
//! busy says so ([`Settle::in_progress`]) to keep it. Submissions carry the job
//! id as `Nats-Msg-Id`, so a retried submission within the stream's duplicate
//! window enqueues nothing.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::kv::{CreateErrorKind, Store, UpdateErrorKind};
use async_nats::jetstream::message::{AckKind, Message, PublishMessage};
use async_nats::jetstream::{self, stream};
use emr_eventstore::{Delivery, LogError, Settle, StatusBoard, WorkQueue};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use crate::SetupError;

/// How a queue of jobs is laid out in JetStream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobQueueConfig {
    /// The work-queue stream (`EMR_JOBS_<KIND>`), its subject `emr.jobs.<kind>`,
    /// its consumer and its status bucket (`EMR_JOB_STATUS_<KIND>`) are named after it.
    pub kind: String,
    /// How long a delivered job stays with its worker without word from it.
    pub ack_wait: Duration,
    /// Deliveries before JetStream gives up on a job.
    pub max_deliver: i64,
    /// Replicas of the stream and the bucket.
    pub replicas: usize,
}

impl JobQueueConfig {
    /// A queue of `kind` jobs with the defaults: 60 s acknowledgement wait, five deliveries, one replica.
    pub fn new(kind: &str) -> Self {
        Self { kind: kind.to_owned(), ack_wait: Duration::from_secs(60), max_deliver: 5, replicas: 1 }
    }

    fn stream_name(&self) -> String {
        format!("EMR_JOBS_{}", self.kind.to_ascii_uppercase())
    }

    fn subject(&self) -> String {
        format!("emr.jobs.{}", self.kind)
    }

    fn bucket(&self) -> String {
        format!("EMR_JOB_STATUS_{}", self.kind.to_ascii_uppercase())
    }
}

/// The queue and the status board of one kind of job.
pub struct JetStreamJobs {
    /// The queue.
    pub queue: JetStreamWorkQueue,
    /// The statuses.
    pub board: KvStatusBoard,
}

impl JetStreamJobs {
    /// Connects to the server at `url` and opens the jobs of `config`.
    pub async fn connect(url: &str, request_timeout: Duration, config: &JobQueueConfig) -> Result<Self, SetupError> {
        let client = async_nats::ConnectOptions::new()
            .name("emr-ledger-jobs")
            .request_timeout(Some(request_timeout))
            .connect(url)
            .await
            .map_err(|source| SetupError::Connect { url: url.to_owned(), source })?;
        let mut context = jetstream::new(client);
        context.set_timeout(request_timeout);
        Self::open(&context, config).await
    }

    /// Creates (or updates) the stream, its consumer and the bucket.
    pub async fn open(context: &jetstream::Context, config: &JobQueueConfig) -> Result<Self, SetupError> {
        let failed = |what: &'static str, name: String| {
            move |e: Box<dyn std::error::Error + Send + Sync>| SetupError::Resource { what, name, source: e }
        };
        let stream_name = config.stream_name();
        context
            .create_or_update_stream(stream::Config {
                name: stream_name.clone(),
                description: Some(format!("EMR Ledger {} jobs: each removed once a worker has finished it", config.kind)),
                subjects: vec![config.subject()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                num_replicas: config.replicas,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| failed("stream", stream_name.clone())(Box::new(e)))?;
        let stream = context.get_stream(&stream_name).await.map_err(|e| failed("stream", stream_name.clone())(Box::new(e)))?;
        let consumer = stream
            .get_or_create_consumer::<pull::Config>(
                "workers",
                pull::Config {
                    durable_name: Some("workers".into()),
                    description: Some("every worker of this kind of job pulls from here".into()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: config.ack_wait,
                    max_deliver: config.max_deliver,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| failed("consumer", format!("{stream_name}/workers"))(Box::new(e)))?;
        let bucket = config.bucket();
        context
            .create_or_update_stream(crate::bucket_stream_config(&bucket, &format!("statuses of {} jobs", config.kind), config.replicas))
            .await
            .map_err(|e| failed("bucket", bucket.clone())(Box::new(e)))?;
        let store = context.get_key_value(bucket.as_str()).await.map_err(|e| failed("bucket", bucket.clone())(Box::new(e)))?;
        Ok(Self {
            queue: JetStreamWorkQueue { context: context.clone(), subject: config.subject(), consumer },
            board: KvStatusBoard { bucket: store },
        })
    }
}

/// A work queue on a JetStream work-queue stream.
pub struct JetStreamWorkQueue {
    context: jetstream::Context,
    subject: String,
    consumer: PullConsumer,
}

impl WorkQueue for JetStreamWorkQueue {
    fn submit<'a>(&'a self, job_id: &'a str, payload: Vec<u8>) -> BoxFuture<'a, Result<(), LogError>> {
        async move {
            let publish = PublishMessage::build().payload(payload.into()).message_id(job_id);
            let ack = self.context.send_publish(self.subject.clone(), publish).await.map_err(LogError::unavailable)?;
            ack.await.map_err(LogError::unavailable)?;
            Ok(())
        }
        .boxed()
    }

    fn next(&self, wait: Duration) -> BoxFuture<'_, Result<Option<Delivery>, LogError>> {
        async move {
            let mut batch = self
                .consumer
                .fetch()
                .max_messages(1)
                .expires(wait.max(Duration::from_millis(100)))
                .messages()
                .await
                .map_err(LogError::unavailable)?;
            let Some(message) = batch.next().await else { return Ok(None) };
            let message = message.map_err(LogError::Unavailable)?;
            let attempt = message.info().map(|info| u64::try_from(info.delivered).unwrap_or(1)).unwrap_or(1);
            let job_id = message
                .headers
                .as_ref()
                .and_then(|headers| headers.get("Nats-Msg-Id"))
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default();
            let payload = message.payload.to_vec();
            Ok(Some(Delivery::new(job_id, payload, attempt, Box::new(JetStreamSettle { message }))))
        }
        .boxed()
    }
}

struct JetStreamSettle {
    message: Message,
}

impl JetStreamSettle {
    fn send(&self, kind: AckKind) -> BoxFuture<'_, Result<(), LogError>> {
        async move { self.message.ack_with(kind).await.map_err(LogError::Unavailable) }.boxed()
    }
}

impl Settle for JetStreamSettle {
    fn done(&self) -> BoxFuture<'_, Result<(), LogError>> {
        // A double acknowledgement waits for the server to confirm, so a job
        // reported done is not delivered again.
        async move { self.message.double_ack().await.map_err(LogError::Unavailable) }.boxed()
    }

    fn in_progress(&self) -> BoxFuture<'_, Result<(), LogError>> {
        self.send(AckKind::Progress)
    }

    fn retry_after(&self, delay: Duration) -> BoxFuture<'_, Result<(), LogError>> {
        self.send(AckKind::Nak(Some(delay)))
    }
}

/// A status board in a JetStream KV bucket: revisions are the bucket's.
pub struct KvStatusBoard {
    bucket: Store,
}

impl StatusBoard for KvStatusBoard {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<emr_eventstore::Versioned>, LogError>> {
        async move {
            let entry = self.bucket.entry(key).await.map_err(LogError::unavailable)?;
            Ok(entry.map(|entry| (entry.value.to_vec(), entry.revision)))
        }
        .boxed()
    }

    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>, expected: u64) -> BoxFuture<'a, Result<u64, LogError>> {
        async move {
            let conflict = || LogError::Conflict { key: key.to_owned(), expected };
            if expected == 0 {
                return match self.bucket.create(key, value.into()).await {
                    Ok(revision) => Ok(revision),
                    Err(error) if error.kind() == CreateErrorKind::AlreadyExists => Err(conflict()),
                    Err(error) => Err(LogError::unavailable(error)),
                };
            }
            match self.bucket.update(key, value.into(), expected).await {
                Ok(revision) => Ok(revision),
                Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => Err(conflict()),
                Err(error) => Err(LogError::unavailable(error)),
            }
        }
        .boxed()
    }
}
