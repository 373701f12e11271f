//! Configuration: built-in defaults, then a TOML file (`--config`, or `emr.toml`
//! in the working directory if present), then environment variables
//! `EMR__<SECTION>__<KEY>` (e.g. `EMR__STORE__BACKEND=nats`). Later sources win.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// Which event-store backend to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BackendKind {
    /// SQLite in `store.data_dir`: nothing to install.
    Embedded,
    /// NATS JetStream at `nats.url`.
    Nats,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreSettings {
    pub(crate) backend: BackendKind,
    pub(crate) data_dir: PathBuf,
    pub(crate) snapshot_every: u64,
    pub(crate) cache_capacity: usize,
    /// Milliseconds a cached aggregate is used without asking the log ([`emr_eventstore::StoreConfig::cache_trust`]).
    pub(crate) cache_trust_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NatsSettings {
    pub(crate) url: String,
    pub(crate) stream: String,
    pub(crate) subject_prefix: String,
    pub(crate) snapshot_bucket: String,
    pub(crate) key_bucket: String,
    pub(crate) replicas: usize,
    pub(crate) duplicate_window_secs: u64,
    /// How long an append or a read waits for JetStream (a read: for its next
    /// commit) before the request fails as retryable (503).
    pub(crate) request_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeySettings {
    /// The keyring file; created with a fresh KEK when absent. Default: `<data_dir>/keyring`.
    pub(crate) keyring_file: Option<PathBuf>,
    /// The keyring inline (`<kek-id>:<base64>,…`), e.g. from a secret; wins over the file.
    pub(crate) keyring: Option<String>,
    /// The search-index key file; created with a fresh key when absent. Default:
    /// `<data_dir>/search-index.key`. Every API and projector process must share it.
    #[serde(default)]
    pub(crate) index_key_file: Option<PathBuf>,
    /// The search-index key inline (`<id>:<base64>`), e.g. from a secret; wins over the file.
    #[serde(default)]
    pub(crate) index_key: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpSettings {
    pub(crate) listen: SocketAddr,
    /// The built web application served at `/` (`npm --prefix web run build`
    /// makes it). Default: `web/dist` when that folder exists.
    #[serde(default)]
    pub(crate) web_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrpcSettings {
    /// Where the gRPC API listens; none: no gRPC.
    pub(crate) listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadModelSettings {
    /// MySQL/MariaDB URL of the read models; none: they live in a SQLite file.
    pub(crate) mysql_url: Option<String>,
    /// The embedded read models' SQLite file. Default: `<data_dir>/read-models.db`.
    pub(crate) sqlite_file: Option<PathBuf>,
    /// Commits folded per transaction.
    pub(crate) batch_size: usize,
}

/// An EVM chain mirroring the anchored roots.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EvmChainSettings {
    /// A name for logs and reports (`ethereum`, `polygon`, `bsc`).
    pub(crate) name: String,
    /// JSON-RPC URL.
    pub(crate) url: String,
    /// Address of the deployed MerkleAnchor contract.
    pub(crate) contract: String,
    /// Environment variable holding the relayer's private key (never the key itself).
    pub(crate) private_key_env: Option<String>,
    /// Blocks to wait before an anchor counts as final.
    pub(crate) confirmations: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditSettings {
    /// EVM chains the relayer mirrors tree heads to, and verification checks.
    #[serde(default)]
    pub(crate) evm: Vec<EvmChainSettings>,
    /// Node key, leaf file and embedded ledger. Default: `<data_dir>/audit`.
    pub(crate) dir: Option<PathBuf>,
    /// Commits per tree head at most.
    pub(crate) batch_commits: usize,
    /// A partial batch is anchored after this many milliseconds.
    pub(crate) max_delay_ms: u64,
    /// The anchor role re-verifies the whole log this often (0: never), for
    /// the `AuditVerificationFailed` alert.
    pub(crate) verify_every_secs: u64,
    /// Hyperledger Fabric as the ledger of signed tree heads, instead of the
    /// embedded file ledger.
    pub(crate) fabric: Option<FabricSettings>,
}

/// The cross-chain bridge (`emr bridge validator`, `emr bridge relay`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BridgeSettings {
    /// Target chains and their BridgeAnchor contracts (`[[bridge.chains]]`).
    #[serde(default)]
    pub(crate) chains: Vec<emr_evm::bridge::ChainConfig>,
    /// Environment variable holding this validator's secp256k1 key.
    pub(crate) validator_key_env: String,
    /// Environment variable holding the relayer's key (it pays gas, signs nothing else).
    pub(crate) relayer_key_env: String,
    /// Anchor node keys (hex Ed25519) whose tree heads validators vouch for; none: any validly signed head.
    #[serde(default)]
    pub(crate) trusted_anchor_keys: Vec<String>,
    /// Pause between steps.
    pub(crate) poll_ms: u64,
}

/// A Fabric channel's `emr-ledger` chaincode, reached through a peer's Gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FabricSettings {
    /// The peer's Gateway (`https://peer0.org1.example.com:7051`).
    pub(crate) gateway_url: String,
    /// CA certificate (PEM) of the peer's TLS certificate, for `https`.
    pub(crate) tls_ca_file: Option<PathBuf>,
    /// The name in the peer's TLS certificate, when not the URL's host.
    pub(crate) tls_server_name: Option<String>,
    /// The client's MSP id (`Org1MSP`).
    pub(crate) msp_id: String,
    /// The client's certificate (PEM).
    pub(crate) certificate_file: PathBuf,
    /// The client's private key (PKCS#8 PEM).
    pub(crate) private_key_file: PathBuf,
    /// Channel.
    #[serde(default = "default_channel")]
    pub(crate) channel: String,
    /// Chaincode name.
    #[serde(default = "default_chaincode")]
    pub(crate) chaincode: String,
    /// Per-call deadline, seconds.
    #[serde(default = "default_fabric_timeout")]
    pub(crate) timeout_secs: u64,
}

fn default_channel() -> String {
    "mychannel".into()
}

fn default_chaincode() -> String {
    "emr-ledger".into()
}

fn default_fabric_timeout() -> u64 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthSettings {
    /// Redis for sessions (`redis://127.0.0.1:6379`); none: sessions in process.
    pub(crate) redis_url: Option<String>,
    /// Key prefix in Redis.
    pub(crate) redis_namespace: String,
    /// Token signing keys (`<kid>.pk8`). Default: `<data_dir>/auth-keys`.
    pub(crate) keys_dir: Option<PathBuf>,
    /// The key id that signs; default: the last by name.
    pub(crate) active_kid: Option<String>,
    /// Access-token lifetime.
    pub(crate) access_ttl_secs: u64,
    /// Failed logins that lock an account.
    pub(crate) max_failures: u64,
    /// Lockout length.
    pub(crate) lockout_secs: u64,
    /// Login, MFA and self-registration attempts per client address per minute.
    pub(crate) login_attempts_per_minute: u64,
    /// The SMART apps registered to launch against `/fhir/r4` (`[[auth.smart_apps]]`).
    #[serde(default)]
    pub(crate) smart_apps: Vec<emr_auth::apps::SmartApp>,
    /// The backend services allowed client credentials with a signed JWT
    /// (`[[auth.backend_clients]]`: `client_id`, `name`, `scopes`, and `jwks` —
    /// their public keys as a JWKS table).
    #[serde(default)]
    pub(crate) backend_clients: Vec<emr_auth::backend::BackendClient>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BlobSettings {
    /// The embedded blob store's directory. Default: `<data_dir>/blobs`.
    pub(crate) dir: Option<PathBuf>,
    /// An IPFS node's Kubo RPC API (`http://127.0.0.1:5001`); unset: the embedded store.
    pub(crate) ipfs_api: Option<String>,
    /// Per-call timeout towards the node.
    pub(crate) ipfs_timeout_secs: u64,
    /// An IPFS Cluster to replicate every blob to; unset: the blob store alone holds them.
    pub(crate) replication: Option<ReplicationSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplicationSettings {
    /// The cluster's REST API (`http://127.0.0.1:9094`).
    pub(crate) cluster_api: String,
    /// Fewest peers that must hold each blob.
    pub(crate) replication_min: u32,
    /// Most peers to allocate each blob to.
    pub(crate) replication_max: u32,
}

/// What one `emr serve` process does. Every process answers `/health`,
/// `/ready` and `/metrics`; a deployment may run each role in its own processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Role {
    /// The command and query API (HTTP and gRPC).
    Api,
    /// The projectors folding the log into the read models; any number of
    /// processes share the work through the checkpoint lock and durable consumer.
    Projector,
    /// The anchor worker and EVM relayer: one active process per deployment.
    Anchor,
    /// Threat detection and its responses: one active process per deployment
    /// (the detector's state lives in that process between saves).
    Detector,
    /// Diagnosis workers: any number of processes share the job queue
    /// (embedded: the queue lives in memory, so in the API's own process).
    Diagnosis,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServeSettings {
    /// The roles this process runs (`EMR__SERVE__ROLES=api,projector`).
    pub(crate) roles: Vec<Role>,
}

impl ServeSettings {
    pub(crate) fn runs(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Threat detection (the `detector` role).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DetectionConfig {
    /// How often the detector's state is saved (a restart re-reads the log after it).
    pub(crate) save_every_secs: u64,
    /// Security events older than this when first seen get no automatic response.
    pub(crate) respond_within_hours: i64,
    /// Alerts are also POSTed as JSON here (they always go to the process log).
    pub(crate) webhook_url: Option<String>,
    /// How long one webhook delivery may take.
    pub(crate) webhook_timeout_secs: u64,
    /// The rules' thresholds and windows.
    #[serde(default)]
    pub(crate) rules: emr_domain::detection::DetectionSettings,
    /// Responses per severity.
    #[serde(default)]
    pub(crate) responses: emr_detection::ResponsePolicy,
}

/// Bulk Data export jobs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportSettings {
    /// Patients a job reads per page; it records its progress after each page,
    /// and holds at most one page in memory.
    pub(crate) page_size: u32,
}

/// AI-assisted diagnosis: the installed model artifacts and the workers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiagnosisSettings {
    /// Where installed model artifacts are kept. Default: `<data_dir>/diagnosis-models`.
    pub(crate) models_dir: Option<PathBuf>,
    /// Jobs one worker process runs at the same time.
    pub(crate) concurrency: usize,
    /// The longest one image may take to decode before its job fails.
    pub(crate) decode_budget_secs: u64,
    /// The probability a top class needs; below it a suggestion is inconclusive.
    pub(crate) min_confidence: f32,
    /// Cells per side of an explanation's occlusion grid (2–16; each cell costs one model run).
    pub(crate) explanation_grid: usize,
}

/// Traces over OpenTelemetry's OTLP; off unless an endpoint is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TelemetrySettings {
    /// The collector's OTLP/gRPC endpoint (`http://otel-collector:4317`); unset: no traces.
    pub(crate) otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub(crate) service_name: String,
    /// How long one export may take.
    pub(crate) export_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    pub(crate) serve: ServeSettings,
    pub(crate) telemetry: TelemetrySettings,
    pub(crate) blobs: BlobSettings,
    pub(crate) auth: AuthSettings,
    pub(crate) store: StoreSettings,
    pub(crate) nats: NatsSettings,
    pub(crate) keys: KeySettings,
    pub(crate) http: HttpSettings,
    pub(crate) grpc: GrpcSettings,
    pub(crate) read_models: ReadModelSettings,
    pub(crate) audit: AuditSettings,
    pub(crate) detection: DetectionConfig,
    pub(crate) bridge: BridgeSettings,
    pub(crate) diagnosis: DiagnosisSettings,
    pub(crate) export: ExportSettings,
    /// Retention policies per jurisdiction (`[[retention]]`); none: no retention duty.
    #[serde(default)]
    pub(crate) retention: emr_domain::retention::RetentionSchedule,
}

/// A setting outside what it may be, named by its key.
#[derive(Debug, thiserror::Error)]
#[error("{key} {problem}")]
pub(crate) struct InvalidSetting {
    key: &'static str,
    problem: String,
}

/// The defaults, as a TOML document (also shipped as `deploy/emr.example.toml`).
pub(crate) const DEFAULTS: &str = r#"
[serve]
roles = ["api", "projector", "anchor", "detector", "diagnosis"]

[telemetry]
service_name = "emr-ledger"
export_timeout_secs = 10

[store]
backend = "embedded"
data_dir = "./data"
snapshot_every = 100
cache_capacity = 10000
cache_trust_ms = 250

[nats]
url = "nats://127.0.0.1:4222"
stream = "EMR_EVENTS"
subject_prefix = "emr.events"
snapshot_bucket = "EMR_SNAPSHOTS"
key_bucket = "EMR_DATA_KEYS"
replicas = 1
duplicate_window_secs = 120
request_timeout_ms = 5000

[keys]

[http]
listen = "127.0.0.1:8080"

[grpc]
listen = "127.0.0.1:50051"

[read_models]
batch_size = 1000

[blobs]
ipfs_timeout_secs = 30

[auth]
redis_namespace = "emr"
access_ttl_secs = 900
max_failures = 5
lockout_secs = 900
login_attempts_per_minute = 30

[detection]
save_every_secs = 30
respond_within_hours = 24
webhook_timeout_secs = 5

[audit]
batch_commits = 1000
max_delay_ms = 2000
verify_every_secs = 3600

[bridge]
validator_key_env = "EMR_BRIDGE_VALIDATOR_KEY"
relayer_key_env = "EMR_BRIDGE_RELAYER_KEY"
poll_ms = 2000

[export]
page_size = 200

[diagnosis]
concurrency = 2
decode_budget_secs = 30
min_confidence = 0.5
explanation_grid = 6
"#;

impl Settings {
    pub(crate) fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        match file {
            Some(path) => builder = builder.add_source(config::File::from(path).required(true)),
            None => builder = builder.add_source(config::File::with_name("emr").required(false)),
        }
        let environment = config::Environment::with_prefix("EMR")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("serve.roles");
        builder = builder.add_source(environment);
        let settings: Self = builder.build().and_then(config::Config::try_deserialize).context("invalid configuration")?;
        settings.validate().context("invalid configuration")?;
        Ok(settings)
    }

    /// What serde cannot check: ranges, and values other parts would only refuse
    /// later (or never), each named by its key.
    fn validate(&self) -> Result<(), InvalidSetting> {
        let check = |holds: bool, key: &'static str, rule: &str, value: &dyn std::fmt::Display| {
            if holds { Ok(()) } else { Err(InvalidSetting { key, problem: format!("{rule} (got {value})") }) }
        };
        check(!self.serve.roles.is_empty(), "serve.roles", "must name at least one of api, projector, anchor, detector, diagnosis", &"[]")?;
        check((1..=1000).contains(&self.export.page_size), "export.page_size", "must be 1 to 1000", &self.export.page_size)?;
        let retention = self.retention.problems();
        check(retention.is_empty(), "retention", "must give each hospital one policy with a jurisdiction", &retention.join("; "))?;
        let rules = self.detection.rules.problems();
        check(rules.is_empty(), "detection.rules", "must be consistent", &rules.join("; "))?;
        let responses = self.detection.responses.problems();
        check(responses.is_empty(), "detection.responses", "must lock accounts on critical events only", &responses.join("; "))?;
        check(self.detection.save_every_secs > 0, "detection.save_every_secs", "must be positive", &self.detection.save_every_secs)?;
        check(
            self.detection.respond_within_hours > 0,
            "detection.respond_within_hours",
            "must be positive",
            &self.detection.respond_within_hours,
        )?;
        check((1..=5).contains(&self.nats.replicas), "nats.replicas", "must be between 1 and 5", &self.nats.replicas)?;
        check(self.nats.request_timeout_ms > 0, "nats.request_timeout_ms", "must be positive", &self.nats.request_timeout_ms)?;
        check(self.nats.duplicate_window_secs > 0, "nats.duplicate_window_secs", "must be positive", &self.nats.duplicate_window_secs)?;
        let nats_url = self.nats.url.starts_with("nats://") || self.nats.url.starts_with("tls://");
        check(nats_url, "nats.url", "must start with nats:// or tls://", &self.nats.url)?;
        check(self.read_models.batch_size > 0, "read_models.batch_size", "must be positive", &self.read_models.batch_size)?;
        if let Some(url) = &self.read_models.mysql_url {
            check(
                url.starts_with("mysql://") || url.starts_with("mariadb://"),
                "read_models.mysql_url",
                "must be a mysql:// URL",
                &"<redacted>",
            )?;
        }
        if let Some(url) = &self.auth.redis_url {
            check(url.starts_with("redis://") || url.starts_with("rediss://"), "auth.redis_url", "must be a redis:// URL", &"<redacted>")?;
        }
        check(self.auth.access_ttl_secs > 0, "auth.access_ttl_secs", "must be positive", &self.auth.access_ttl_secs)?;
        check(self.auth.max_failures > 0, "auth.max_failures", "must be positive", &self.auth.max_failures)?;
        check(self.audit.batch_commits > 0, "audit.batch_commits", "must be positive", &self.audit.batch_commits)?;
        if let Some(endpoint) = &self.telemetry.otlp_endpoint {
            let http = endpoint.starts_with("http://") || endpoint.starts_with("https://");
            check(http, "telemetry.otlp_endpoint", "must be an http(s) URL of an OTLP/gRPC collector", endpoint)?;
        }
        check(self.blobs.ipfs_timeout_secs > 0, "blobs.ipfs_timeout_secs", "must be positive", &self.blobs.ipfs_timeout_secs)?;
        if let Some(replication) = &self.blobs.replication {
            let ordered = 1 <= replication.replication_min && replication.replication_min <= replication.replication_max;
            let range = format!("{}..{}", replication.replication_min, replication.replication_max);
            check(ordered, "blobs.replication.replication_min", "must be at least 1 and at most replication_max", &range)?;
        }
        for chain in &self.audit.evm {
            let http = chain.url.starts_with("http://") || chain.url.starts_with("https://");
            check(http, "audit.evm.url", "must be an http(s) JSON-RPC URL", &chain.url)?;
        }
        for chain in &self.bridge.chains {
            let http = chain.url.starts_with("http://") || chain.url.starts_with("https://");
            check(http, "bridge.chains.url", "must be an http(s) JSON-RPC URL", &chain.url)?;
            check(
                emr_evm::parse_address(&chain.contract).is_ok(),
                "bridge.chains.contract",
                "must be a 0x contract address",
                &chain.contract,
            )?;
        }
        check(self.bridge.poll_ms > 0, "bridge.poll_ms", "must be positive", &self.bridge.poll_ms)?;
        let diagnosis = &self.diagnosis;
        check((1..=64).contains(&diagnosis.concurrency), "diagnosis.concurrency", "must be between 1 and 64", &diagnosis.concurrency)?;
        check(diagnosis.decode_budget_secs > 0, "diagnosis.decode_budget_secs", "must be positive", &diagnosis.decode_budget_secs)?;
        check(
            (0.0..=1.0).contains(&diagnosis.min_confidence),
            "diagnosis.min_confidence",
            "must be between 0 and 1",
            &diagnosis.min_confidence,
        )?;
        check(
            (2..=16).contains(&diagnosis.explanation_grid),
            "diagnosis.explanation_grid",
            "must be between 2 and 16",
            &diagnosis.explanation_grid,
        )?;
        Ok(())
    }

    pub(crate) fn audit_dir(&self) -> PathBuf {
        self.audit.dir.clone().unwrap_or_else(|| self.store.data_dir.join("audit"))
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.blobs.dir.clone().unwrap_or_else(|| self.store.data_dir.join("blobs"))
    }

    pub(crate) fn auth_keys_dir(&self) -> PathBuf {
        self.auth.keys_dir.clone().unwrap_or_else(|| self.store.data_dir.join("auth-keys"))
    }

    pub(crate) fn read_models_file(&self) -> PathBuf {
        self.read_models.sqlite_file.clone().unwrap_or_else(|| self.store.data_dir.join("read-models.db"))
    }

    pub(crate) fn diagnosis_models_dir(&self) -> PathBuf {
        self.diagnosis.models_dir.clone().unwrap_or_else(|| self.store.data_dir.join("diagnosis-models"))
    }

    /// Bulk Data export jobs and their NDJSON files (a node's own: its jobs resume there).
    pub(crate) fn exports_dir(&self) -> PathBuf {
        self.store.data_dir.join("exports")
    }

    pub(crate) fn keyring_file(&self) -> PathBuf {
        self.keys.keyring_file.clone().unwrap_or_else(|| self.store.data_dir.join("keyring"))
    }

    /// The web application's folder, when there is one to serve.
    pub(crate) fn web_dir(&self) -> Option<PathBuf> {
        let dir = self.http.web_dir.clone().unwrap_or_else(|| PathBuf::from("web/dist"));
        dir.join("index.html").is_file().then_some(dir)
    }

    pub(crate) fn index_key_file(&self) -> PathBuf {
        self.keys.index_key_file.clone().unwrap_or_else(|| self.store.data_dir.join("search-index.key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_run_embedded_on_loopback() {
        let settings = Settings::load(None).unwrap();
        assert_eq!(settings.store.backend, BackendKind::Embedded);
        assert!(settings.http.listen.ip().is_loopback());
        assert_eq!(settings.keyring_file(), PathBuf::from("./data/keyring"));
        assert_eq!(settings.read_models.mysql_url, None, "read models embedded too");
        assert_eq!(settings.read_models_file(), PathBuf::from("./data/read-models.db"));
    }

    #[test]
    fn a_file_overrides_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("emr.toml");
        std::fs::write(&path, "[store]\nbackend = \"nats\"\n[nats]\nreplicas = 3\n").unwrap();
        let settings = Settings::load(Some(&path)).unwrap();
        assert_eq!(settings.store.backend, BackendKind::Nats);
        assert_eq!(settings.nats.replicas, 3);
        assert_eq!(settings.nats.stream, "EMR_EVENTS", "unset keys keep their defaults");
    }

    fn load_from(toml: &str) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("emr.toml");
        std::fs::write(&path, toml).unwrap();
        Settings::load(Some(&path))
    }

    #[test]
    fn backend_services_register_their_public_keys_as_a_jwks_table() {
        let toml = r#"
[[auth.backend_clients]]
client_id = "population-health"
name = "Population health"
scopes = ["system/*.rs"]
[[auth.backend_clients.jwks.keys]]
kty = "EC"
crv = "P-384"
kid = "es384-2026"
alg = "ES384"
x = "qMQbNh_lUymy6uU2s_8NYtoY0PWMsvAkOxJ3KXc4TOLsOlR7hJDNBPNFHCs-Ca-l"
y = "pGN6bTyYuoOWj9l1H9Zw5ol1ffXxGEV3dNKcTFTsr6RvJKLNHhMwuT9Y_IrDb1Fg"
"#;
        let settings = load_from(toml).unwrap();
        let client = &settings.auth.backend_clients[0];
        assert_eq!((client.client_id.as_str(), client.jwks.keys.len()), ("population-health", 1));
        assert!(client.jwks.find("es384-2026").is_some());
        assert!(Settings::load(None).unwrap().auth.backend_clients.is_empty(), "none by default");
    }

    #[test]
    fn smart_apps_are_registered_in_the_auth_section() {
        let toml = "[[auth.smart_apps]]\nclient_id = \"growth-chart\"\nname = \"Growth chart\"\n\
                    redirect_uris = [\"https://apps.example.org/cb\"]\nscopes = [\"launch/patient\", \"patient/Condition.rs\"]\n";
        let settings = load_from(toml).unwrap();
        assert_eq!(settings.auth.smart_apps.len(), 1);
        assert_eq!(settings.auth.smart_apps[0].grantable("patient/Condition.rs user/*.cruds"), ["patient/Condition.rs"]);
        assert!(Settings::load(None).unwrap().auth.smart_apps.is_empty(), "none by default");
    }

    #[test]
    fn a_misspelt_key_is_refused_by_name() {
        let error = format!("{:#}", load_from("[store]\nbakend = \"nats\"\n").unwrap_err());
        assert!(error.contains("bakend"), "{error}");
    }

    #[test]
    fn an_out_of_range_value_is_refused_naming_its_key() {
        let error = format!("{:#}", load_from("[nats]\nreplicas = 0\n").unwrap_err());
        assert!(error.contains("nats.replicas must be between 1 and 5 (got 0)"), "{error}");
        let error = format!("{:#}", load_from("[read_models]\nmysql_url = \"postgres://secret@db/emr\"\n").unwrap_err());
        assert!(error.contains("read_models.mysql_url must be a mysql:// URL"), "{error}");
        assert!(!error.contains("secret"), "credentials never appear in the error: {error}");
        let error = format!("{:#}", load_from("[serve]\nroles = []\n").unwrap_err());
        assert!(error.contains("serve.roles"), "{error}");
    }

    #[test]
    fn a_process_runs_every_role_unless_told_otherwise() {
        let settings = Settings::load(None).unwrap();
        assert!([Role::Api, Role::Projector, Role::Anchor, Role::Detector, Role::Diagnosis].iter().all(|role| settings.serve.runs(*role)));
        let settings = load_from("[serve]\nroles = [\"projector\"]\n").unwrap();
        assert_eq!(settings.serve.roles, vec![Role::Projector]);
        let error = format!("{:#}", load_from("[serve]\nroles = [\"janitor\"]\n").unwrap_err());
        assert!(error.contains("janitor"), "{error}");
    }

    #[test]
    fn the_shipped_example_is_the_defaults() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/emr.example.toml");
        let settings = Settings::load(Some(&example)).unwrap();
        let defaults = Settings::load(None).unwrap();
        assert_eq!(format!("{settings:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn an_unknown_backend_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("emr.toml");
        std::fs::write(&path, "[store]\nbackend = \"oracle\"\n").unwrap();
        let error = format!("{:#}", Settings::load(Some(&path)).unwrap_err());
        assert!(error.contains("oracle") || error.contains("backend"), "{error}");
    }
}
