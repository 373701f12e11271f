//! The NATS JetStream backend of the event store.
//!
//! - [`JetStreamLog`]: one stream (`EMR_EVENTS`) holding every commit, one subject
//!   per aggregate (`emr.events.<type>.<id>`). Appends publish with
//!   `Nats-Expected-Last-Subject-Sequence` (optimistic concurrency) and
//!   `Nats-Msg-Id` = command id (idempotency within the duplicate window).
//! - [`KvSnapshots`] and [`KvKeyStore`]: KV buckets for snapshots and for wrapped
//!   per-patient data keys (erasure writes a tombstone over the key).
//!
//! Every stream and bucket is created or updated idempotently at start-up from
//! [`NatsConfig`], so the same configuration runs on one server or an R3 cluster.

mod feed;
mod jobs;
mod kv;
mod log;
mod metrics;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};

pub use feed::DurableFeed;
pub use jobs::{JetStreamJobs, JetStreamWorkQueue, JobQueueConfig, KvStatusBoard};
pub use kv::{KvKeyStore, KvSnapshots};
pub use log::JetStreamLog;

/// Where and how the event store lives in JetStream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// Server URL(s), comma separated.
    pub url: String,
    /// Name of the event stream.
    pub stream: String,
    /// Subject prefix; aggregates live under `<prefix>.<type>.<id>`.
    pub subject_prefix: String,
    /// KV bucket of snapshots.
    pub snapshot_bucket: String,
    /// KV bucket of wrapped data keys.
    pub key_bucket: String,
    /// Replicas of every stream and bucket (1 on a single server, 3 in production).
    pub replicas: usize,
    /// How long JetStream remembers command ids to drop duplicate appends.
    pub duplicate_window: Duration,
    /// How long an append or read waits for the server before failing as
    /// unavailable (a retryable error: the caller retries with the same command id).
    pub request_timeout: Duration,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            stream: "EMR_EVENTS".into(),
            subject_prefix: "emr.events".into(),
            snapshot_bucket: "EMR_SNAPSHOTS".into(),
            key_bucket: "EMR_DATA_KEYS".into(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// Failures setting up the JetStream resources.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The server could not be reached.
    #[error("cannot connect to NATS at {url}: {source}")]
    Connect {
        /// URL tried.
        url: String,
        /// Cause.
        #[source]
        source: async_nats::ConnectError,
    },
    /// A stream or bucket could not be created or updated.
    #[error("cannot set up JetStream {what} `{name}`: {source}")]
    Resource {
        /// `stream` or `bucket`.
        what: &'static str,
        /// Its name.
        name: String,
        /// Cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The three ports of the event store, backed by one JetStream connection.
pub struct NatsBackend {
    /// The event log.
    pub log: Arc<JetStreamLog>,
    /// Snapshots.
    pub snapshots: Arc<KvSnapshots>,
    /// Wrapped data keys.
    pub keys: Arc<KvKeyStore>,
    /// The JetStream context, for health checks and consumers.
    pub context: jetstream::Context,
}

impl NatsBackend {
    /// Connects and creates (or updates) the stream and buckets.
    pub async fn connect(config: &NatsConfig) -> Result<Self, SetupError> {
        let client = async_nats::ConnectOptions::new()
            .name("emr-ledger")
            .request_timeout(Some(config.request_timeout))
            .connect(&config.url)
            .await
            .map_err(|source| SetupError::Connect { url: config.url.clone(), source })?;
        let mut context = jetstream::new(client);
        context.set_timeout(config.request_timeout);
        let resource = |what, name: &str| {
            let name = name.to_owned();
            move |source: Box<dyn std::error::Error + Send + Sync>| SetupError::Resource { what, name, source }
        };
        context.create_or_update_stream(event_stream_config(config)).await.map_err(|e| resource("stream", &config.stream)(Box::new(e)))?;
        let events = context.get_stream(&config.stream).await.map_err(|e| resource("stream", &config.stream)(Box::new(e)))?;
        let pending_config = pending_stream_config(config);
        let pending_name = pending_config.name.clone();
        context.create_or_update_stream(pending_config).await.map_err(|e| resource("stream", &pending_name)(Box::new(e)))?;
        let pending = context.get_stream(&pending_name).await.map_err(|e| resource("stream", &pending_name)(Box::new(e)))?;
        let mut buckets = Vec::new();
        for (bucket, stream_config) in [
            (&config.snapshot_bucket, bucket_stream_config(&config.snapshot_bucket, "aggregate snapshots", config.replicas)),
            (&config.key_bucket, key_bucket_stream_config(&config.key_bucket, config.replicas)),
        ] {
            let failed = |e: Box<dyn std::error::Error + Send + Sync>| resource("bucket", bucket)(e);
            context.create_or_update_stream(stream_config).await.map_err(|e| failed(Box::new(e)))?;
            buckets.push(context.get_key_value(bucket.as_str()).await.map_err(|e| failed(Box::new(e)))?);
        }
        let keys = buckets.pop().ok_or_else(|| resource("bucket", &config.key_bucket)("missing".into()))?;
        let snapshots = buckets.pop().ok_or_else(|| resource("bucket", &config.snapshot_bucket)("missing".into()))?;
        let log = Arc::new(JetStreamLog::new(context.clone(), events, config.subject_prefix.clone(), pending, config.request_timeout));
        log.finish_pending().await.map_err(|e| resource("stream", &pending_name)(Box::new(e)))?;
        Ok(Self { log, snapshots: Arc::new(KvSnapshots::new(snapshots)), keys: Arc::new(KvKeyStore::new(keys)), context })
    }
}

/// The event stream: file storage, kept forever, messages neither deletable nor
/// purgeable through the API (the log is append-only), direct gets for fast loads.
pub fn event_stream_config(config: &NatsConfig) -> stream::Config {
    stream::Config {
        name: config.stream.clone(),
        description: Some("EMR Ledger domain events: one commit per message, one subject per aggregate".into()),
        subjects: vec![format!("{}.>", config.subject_prefix)],
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        num_replicas: config.replicas,
        duplicate_window: config.duplicate_window,
        max_age: Duration::ZERO,
        deny_delete: true,
        deny_purge: true,
        allow_direct: true,
        ..Default::default()
    }
}

/// Changes appended together while they are being written (see [`JetStreamLog`]):
/// each message is deleted once its change is whole, so the stream stays empty
/// but for changes in flight or interrupted.
pub fn pending_stream_config(config: &NatsConfig) -> stream::Config {
    stream::Config {
        name: format!("{}_PENDING", config.stream),
        description: Some("EMR Ledger changes to several aggregates, kept until every commit is in the event stream".into()),
        subjects: vec![format!("{}_pending.>", config.subject_prefix)],
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        duplicate_window: config.duplicate_window,
        allow_direct: true,
        ..Default::default()
    }
}

/// The stream behind the bucket of wrapped data keys: two values per key, and
/// message deletes allowed, because erasure and KEK rotation erase the value they
/// replace (see [`KvKeyStore`]); with one value per key the limit would drop it
/// first, leaving its bytes on disk.
pub fn key_bucket_stream_config(bucket: &str, replicas: usize) -> stream::Config {
    stream::Config {
        max_messages_per_subject: 2,
        deny_delete: false,
        ..bucket_stream_config(bucket, "wrapped per-patient data keys", replicas)
    }
}

/// The stream behind a KV bucket, declared explicitly rather than through the
/// client's KV-create call: that call needs nats-server 2.10+, while Debian ships
/// 2.9, and an explicit declaration keeps the bucket's limits visible here.
/// One message per key (history 1), so an overwritten value is gone from the bucket.
pub fn bucket_stream_config(bucket: &str, description: &str, replicas: usize) -> stream::Config {
    stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(description.to_owned()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        discard: stream::DiscardPolicy::New,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        ..Default::default()
    }
}
