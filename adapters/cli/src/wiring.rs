//! Builds the application from settings: the composition root.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use emr_auth::{AuthPolicy, Identity, MemorySessionStore, SessionStore, SigningKeys, Tokens};
use emr_commands::{Clinic, EventStorePorts};
use emr_domain::DomainServices;
use emr_eventstore::{KeyEncryptionKey, StoreConfig};
use emr_keyring::Keyring;
use emr_nats::{NatsBackend, NatsConfig};
use emr_redis::RedisSessionStore;
use emr_sqlite::SqliteStore;

use crate::settings::{BackendKind, Settings};

fn keyring(settings: &Settings) -> anyhow::Result<Arc<dyn KeyEncryptionKey>> {
    let keyring = match &settings.keys.keyring {
        Some(inline) => Keyring::parse(inline).context("keys.keyring")?,
        None => Keyring::load_or_create(&settings.keyring_file()).context("keys.keyring_file")?,
    };
    Ok(Arc::new(keyring))
}

/// The blind index of patient search, under the deployment's index key.
pub(crate) fn blind_index(settings: &Settings) -> anyhow::Result<Arc<emr_projections::BlindIndex>> {
    let key = match &settings.keys.index_key {
        Some(inline) => emr_keyring::IndexKey::parse(inline).context("keys.index_key")?,
        None => emr_keyring::IndexKey::load_or_create(&settings.index_key_file()).context("keys.index_key_file")?,
    };
    Ok(Arc::new(emr_projections::BlindIndex::new(key.as_bytes())))
}

/// The search-index projector: it opens PHI through the key vault to hash it.
pub(crate) fn search_index(settings: &Settings, ports: &EventStorePorts) -> anyhow::Result<emr_projections::SearchIndex> {
    Ok(emr_projections::SearchIndex::new(ports.phi_codec(), blind_index(settings)?))
}

pub(crate) async fn ports(settings: &Settings) -> anyhow::Result<EventStorePorts> {
    let kek = keyring(settings)?;
    match settings.store.backend {
        BackendKind::Embedded => {
            let store = SqliteStore::open(&settings.store.data_dir).await.context("opening the embedded event store")?;
            let (log, snapshots, keys) = store.ports();
            tracing::info!(data_dir = %settings.store.data_dir.display(), "embedded event store open");
            Ok(EventStorePorts { log, snapshots, keys, kek })
        }
        BackendKind::Nats => {
            let nats = &settings.nats;
            let config = NatsConfig {
                url: nats.url.clone(),
                stream: nats.stream.clone(),
                subject_prefix: nats.subject_prefix.clone(),
                snapshot_bucket: nats.snapshot_bucket.clone(),
                key_bucket: nats.key_bucket.clone(),
                replicas: nats.replicas,
                duplicate_window: Duration::from_secs(nats.duplicate_window_secs),
                request_timeout: Duration::from_millis(nats.request_timeout_ms),
            };
            let backend = NatsBackend::connect(&config).await.context("connecting to NATS JetStream")?;
            tracing::info!(url = %nats.url, stream = %nats.stream, "JetStream event store ready");
            Ok(EventStorePorts { log: backend.log, snapshots: backend.snapshots, keys: backend.keys, kek })
        }
    }
}

pub(crate) async fn clinic(settings: &Settings) -> anyhow::Result<Clinic> {
    Ok(clinic_on(settings, ports(settings).await?))
}

pub(crate) fn clinic_on(settings: &Settings, ports: EventStorePorts) -> Clinic {
    let config = StoreConfig {
        snapshot_every: settings.store.snapshot_every,
        cache_capacity: settings.store.cache_capacity,
        cache_trust: std::time::Duration::from_millis(settings.store.cache_trust_ms),
    };
    Clinic::new(ports, config, DomainServices::default()).with_retention(settings.retention.clone())
}

/// Accounts and sessions: Redis when configured, else in process.
pub(crate) async fn identity(settings: &Settings, ports: &EventStorePorts) -> anyhow::Result<Identity> {
    let auth = &settings.auth;
    let sessions: Arc<dyn SessionStore> = match &auth.redis_url {
        Some(url) => Arc::new(RedisSessionStore::connect(url, &auth.redis_namespace).await.context("connecting to Redis")?),
        None => Arc::new(MemorySessionStore::new()),
    };
    let keys = SigningKeys::load_dir(&settings.auth_keys_dir(), auth.active_kid.as_deref()).context("auth.keys_dir")?;
    let id_token_key = emr_auth::oidc::IdTokenKey::in_dir(&settings.auth_keys_dir()).context("auth.keys_dir (id-token key)")?;
    if id_token_key.is_none() {
        tracing::warn!("no id-token key in auth.keys_dir and it is read-only: OpenID Connect is off (emr keys new-signing-key adds one)");
    }
    tracing::info!(kid = keys.active_kid(), redis = auth.redis_url.is_some(), "token signing ready");
    let policy = AuthPolicy {
        access_ttl: Duration::from_secs(auth.access_ttl_secs),
        max_failures: auth.max_failures,
        lockout: Duration::from_secs(auth.lockout_secs),
        ..AuthPolicy::default()
    };
    let identity = Identity::new(ports, sessions, Tokens::new(keys), policy, DomainServices::default())
        .with_apps(auth.smart_apps.clone())
        .with_backend_clients(auth.backend_clients.clone());
    Ok(match id_token_key {
        Some(key) => identity.with_id_token_key(key),
        None => identity,
    })
}

/// The detection worker over `ports`, saving its state in the read-model
/// database, alerting to the log (and the webhook, when set), and acting on
/// accounts through `identity`.
pub(crate) async fn detection_worker(
    settings: &Settings,
    ports: &EventStorePorts,
    db: emr_projections::ReadModelDb,
    identity: Identity,
) -> anyhow::Result<emr_detection::DetectionWorker> {
    let detection = &settings.detection;
    let mut sinks: Vec<Arc<dyn emr_detection::AlertSink>> = vec![Arc::new(emr_detection::LogSink)];
    if let Some(url) = &detection.webhook_url {
        let timeout = Duration::from_secs(detection.webhook_timeout_secs);
        sinks.push(Arc::new(emr_detection::WebhookSink::new(url, timeout).context("detection.webhook_url")?));
    }
    let config = emr_detection::WorkerConfig {
        rules: detection.rules,
        responses: detection.responses.clone(),
        batch_size: settings.read_models.batch_size,
        save_every: Duration::from_secs(detection.save_every_secs),
        respond_within: chrono::Duration::hours(detection.respond_within_hours),
    };
    let responders = emr_detection::Responders { sinks, guard: Arc::new(identity) };
    Ok(emr_detection::DetectionWorker::open(ports, db, responders, config, DomainServices::default()).await?)
}

/// Attachments in the configured blob store (an IPFS node, or the embedded
/// directory), replicated through an IPFS Cluster when configured.
pub(crate) fn attachments(settings: &Settings, clinic: Clinic) -> anyhow::Result<emr_attachments::Attachments> {
    let timeout = Duration::from_secs(settings.blobs.ipfs_timeout_secs);
    let blobs: Arc<dyn emr_attachments::BlobStore> = match &settings.blobs.ipfs_api {
        Some(api) => Arc::new(emr_ipfs::KuboBlobStore::new(api, timeout).context("blobs.ipfs_api")?),
        None => Arc::new(emr_ipfs::LocalBlobStore::open(&settings.blobs_dir()).context("blobs.dir")?),
    };
    let mut attachments = emr_attachments::Attachments::new(clinic, blobs);
    if let Some(replication) = &settings.blobs.replication {
        let policy = emr_attachments::ReplicationPolicy {
            target: replication.cluster_api.clone(),
            replication_min: replication.replication_min,
            replication_max: replication.replication_max,
        };
        let replicator = emr_ipfs::ClusterReplicator::new(policy, timeout).context("blobs.replication")?;
        attachments = attachments.with_replication(Arc::new(replicator));
    }
    Ok(attachments)
}

/// The federated-learning coordinator, keeping models and updates under `<data_dir>/models`.
pub(crate) async fn federated(settings: &Settings, ports: &EventStorePorts) -> anyhow::Result<emr_federated::Coordinator> {
    let dir = settings.store.data_dir.join("models");
    let models = emr_federated::DirectoryModelStore::open(&dir, ports.kek.as_ref())
        .await
        .with_context(|| format!("the model store {}", dir.display()))?;
    Ok(emr_federated::Coordinator::new(ports, Arc::new(models), DomainServices::default()))
}

/// Diagnosis: jobs on JetStream (or in memory, embedded), models installed
/// under `diagnosis.models_dir`, and this process's worker when it runs the role.
pub(crate) async fn diagnosis(
    settings: &Settings,
    clinic: Clinic,
    attachments: emr_attachments::Attachments,
) -> anyhow::Result<(emr_http::DiagnosisState, emr_diagnosis_jobs::DiagnosisWorker)> {
    let (queue, board): (Arc<dyn emr_eventstore::WorkQueue>, Arc<dyn emr_eventstore::StatusBoard>) = match settings.store.backend {
        BackendKind::Embedded => (Arc::new(emr_eventstore::MemoryWorkQueue::new()), Arc::new(emr_eventstore::MemoryStatusBoard::new())),
        BackendKind::Nats => {
            let config = emr_nats::JobQueueConfig { replicas: settings.nats.replicas, ..emr_nats::JobQueueConfig::new("diagnosis") };
            let timeout = Duration::from_millis(settings.nats.request_timeout_ms);
            let jobs =
                emr_nats::JetStreamJobs::connect(&settings.nats.url, timeout, &config).await.context("opening the diagnosis job queue")?;
            (Arc::new(jobs.queue), Arc::new(jobs.board))
        }
    };
    let shelf = Arc::new(emr_onnx::ModelDirectory::open(&settings.diagnosis_models_dir()));
    let jobs = emr_diagnosis_jobs::DiagnosisJobs::new(clinic, queue, board);
    let d = &settings.diagnosis;
    let worker_settings = emr_diagnosis_jobs::WorkerSettings {
        concurrency: d.concurrency,
        decode_budget: Duration::from_secs(d.decode_budget_secs),
        min_confidence: d.min_confidence,
        explanation_grid: d.explanation_grid,
        ..emr_diagnosis_jobs::WorkerSettings::default()
    };
    let worker = emr_diagnosis_jobs::DiagnosisWorker::new(jobs.clone(), attachments, shelf.clone(), worker_settings);
    Ok((emr_http::DiagnosisState { jobs, shelf }, worker))
}
