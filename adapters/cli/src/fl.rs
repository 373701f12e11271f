//! `emr fl`: federated learning from the command line — the ε of a privacy
//! configuration, the reference experiment, and a hospital's client.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use emr_domain::DomainServices;
use emr_domain::federated::privacy::SampledGaussian;
use emr_domain::federated::secure::{SecureRound, SecureStep};
use emr_domain::federated::{DifferentialPrivacy, DpMechanism, ModelKind, Strategy, TaskSpec};
use emr_eventstore::EventStorePorts;
use emr_federated::simulate::{Baseline, Report, Simulation, run_baseline, run_federated};
use emr_federated::{Coordinator, DirectoryModelStore, Hospital, SecureMember, SecureStepError, Trained};
use emr_keyring::Keyring;
use emr_sqlite::SqliteStore;

#[derive(Subcommand)]
pub(crate) enum FlAction {
    /// Print ε (and the best Rényi order) of the Poisson-subsampled Gaussian
    /// mechanism run `steps` times, for planning a task's privacy budget.
    Epsilon {
        /// Sampling rate, in [0, 1].
        #[arg(long)]
        q: f64,
        /// Noise multiplier (noise deviation over the clipping norm).
        #[arg(long)]
        sigma: f64,
        /// Mechanism runs (DP-SGD steps, or rounds under client-level DP).
        #[arg(long)]
        steps: u64,
        /// δ, in (0, 1).
        #[arg(long)]
        delta: f64,
    },
    /// Run the reference experiment (breast cancer data, hospitals, coordinator,
    /// events) in one process and print its figures as JSON.
    Simulate(SimulateArgs),
    /// Run a hospital's client against `emr serve`: train on local rows each round
    /// and submit the update, until the task ends.
    Client(ClientArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum StrategyName {
    Fedavg,
    Fedprox,
    Median,
    TrimmedMean,
    Krum,
    MultiKrum,
}

#[derive(Clone, Copy, ValueEnum)]
enum DpKind {
    /// Clip each hospital's update, add noise to the aggregate.
    Client,
    /// DP-SGD in each hospital's local training.
    Sgd,
}

#[derive(Args)]
pub(crate) struct SimulateArgs {
    /// Aggregation strategy.
    #[arg(long, value_enum, default_value = "fedavg")]
    strategy: StrategyName,
    /// FedProx's proximal weight μ.
    #[arg(long, default_value_t = 0.1)]
    mu: f64,
    /// Trimmed mean: the share cut from each end.
    #[arg(long, default_value_t = 0.2)]
    beta: f64,
    /// Krum and Multi-Krum: Byzantine hospitals tolerated.
    #[arg(long, default_value_t = 0)]
    krum_byzantine: u32,
    /// Multi-Krum: models averaged.
    #[arg(long, default_value_t = 2)]
    krum_selected: u32,
    /// Hospitals (the reference split for 3, equal shares otherwise).
    #[arg(long, default_value_t = 3)]
    hospitals: usize,
    /// Shares of the malignant train rows for hospitals 1 … n−1, comma-separated.
    #[arg(long, value_delimiter = ',')]
    malignant_split: Option<Vec<f64>>,
    /// Shares of the benign train rows for hospitals 1 … n−1, comma-separated.
    #[arg(long, value_delimiter = ',')]
    benign_split: Option<Vec<f64>>,
    /// Hospital K (1-based) sends w_g − 10·(w_local − w_g).
    #[arg(long)]
    byzantine: Option<usize>,
    /// Rounds.
    #[arg(long, default_value_t = 50)]
    rounds: u32,
    /// Local steps per round.
    #[arg(long, default_value_t = 5)]
    local_steps: u32,
    /// Learning rate.
    #[arg(long, default_value_t = 0.5)]
    learning_rate: f64,
    /// Train a perceptron with these hidden widths (comma-separated) instead of logistic regression.
    #[arg(long, value_delimiter = ',')]
    mlp: Option<Vec<u32>>,
    /// Differential privacy.
    #[arg(long, value_enum)]
    dp: Option<DpKind>,
    /// DP: clipping norm.
    #[arg(long, default_value_t = 1.0)]
    dp_clip: f64,
    /// DP: noise multiplier.
    #[arg(long, default_value_t = 1.0)]
    dp_sigma: f64,
    /// DP: sampling rate (examples for DP-SGD, hospitals for client-level).
    #[arg(long, default_value_t = 1.0)]
    dp_q: f64,
    /// DP: δ.
    #[arg(long, default_value_t = 1e-5)]
    dp_delta: f64,
    /// DP: the ε budget; a round that would pass it is refused.
    #[arg(long, default_value_t = 10.0)]
    epsilon_budget: f64,
    /// Mask updates (secure aggregation); fedavg and fedprox only.
    #[arg(long)]
    secure: bool,
    /// Seeds the perceptron's initial weights and the DP noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train one baseline instead: `centralized`, or `hospital:K` for hospital K alone.
    #[arg(long)]
    baseline: Option<String>,
    /// Keep the task's event log and models here instead of a temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

impl SimulateArgs {
    fn simulation(&self) -> Simulation {
        let mut simulation = Simulation::reference(self.hospitals);
        simulation.strategy = match self.strategy {
            StrategyName::Fedavg => Strategy::FedAvg,
            StrategyName::Fedprox => Strategy::FedProx { mu: self.mu },
            StrategyName::Median => Strategy::Median,
            StrategyName::TrimmedMean => Strategy::TrimmedMean { beta: self.beta },
            StrategyName::Krum => Strategy::Krum { byzantine: self.krum_byzantine },
            StrategyName::MultiKrum => Strategy::MultiKrum { byzantine: self.krum_byzantine, selected: self.krum_selected },
        };
        if let Some(split) = &self.malignant_split {
            simulation.malignant_split = split.clone();
        }
        if let Some(split) = &self.benign_split {
            simulation.benign_split = split.clone();
        }
        simulation.byzantine = self.byzantine;
        simulation.rounds = self.rounds;
        simulation.local_steps = self.local_steps;
        simulation.learning_rate = self.learning_rate;
        if let Some(hidden) = &self.mlp {
            simulation.model = ModelKind::Mlp { hidden: hidden.clone() };
        }
        simulation.privacy = self.dp.map(|kind| {
            let (clip_norm, noise_multiplier, sample_rate) = (self.dp_clip, self.dp_sigma, self.dp_q);
            let mechanism = match kind {
                DpKind::Client => DpMechanism::ClientLevel { clip_norm, noise_multiplier, sample_rate },
                DpKind::Sgd => DpMechanism::DpSgd { clip_norm, noise_multiplier, sample_rate },
            };
            DifferentialPrivacy { mechanism, delta: self.dp_delta, epsilon_budget: self.epsilon_budget }
        });
        simulation.secure_aggregation = self.secure;
        simulation.seed = self.seed;
        simulation
    }

    fn baseline(&self) -> anyhow::Result<Option<Baseline>> {
        Ok(match self.baseline.as_deref() {
            None => None,
            Some("centralized") => Some(Baseline::Centralized),
            Some(other) => match other.strip_prefix("hospital:").map(str::parse::<usize>) {
                Some(Ok(k)) => Some(Baseline::Alone(k)),
                _ => anyhow::bail!("--baseline takes `centralized` or `hospital:K`, not `{other}`"),
            },
        })
    }
}

pub(crate) fn epsilon(q: f64, sigma: f64, steps: u64, delta: f64) -> anyhow::Result<serde_json::Value> {
    let guarantee = SampledGaussian { sample_rate: q, noise_multiplier: sigma, steps }.epsilon(delta)?;
    Ok(serde_json::json!({
        "q": q, "sigma": sigma, "steps": steps, "delta": delta,
        "epsilon": guarantee.epsilon, "order": guarantee.order,
    }))
}

/// A fresh embedded event store and model directory for one simulated task.
async fn embedded(dir: &std::path::Path) -> anyhow::Result<(EventStorePorts, DirectoryModelStore)> {
    let store = SqliteStore::open(&dir.join("events")).await.context("opening the simulation's event store")?;
    let (log, snapshots, keys) = store.ports();
    let kek = Arc::new(Keyring::load_or_create(&dir.join("keyring")).context("the simulation's keyring")?);
    let models = DirectoryModelStore::open(dir.join("models"), kek.as_ref()).await.context("the simulation's model store")?;
    Ok((EventStorePorts { log, snapshots, keys, kek }, models))
}

pub(crate) async fn simulate(args: &SimulateArgs) -> anyhow::Result<Report> {
    let simulation = args.simulation();
    if let Some(baseline) = args.baseline()? {
        return Ok(run_baseline(&simulation, baseline)?);
    }
    let temporary;
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temporary = tempfile::tempdir().context("a temporary directory for the simulation")?;
            temporary.path().to_path_buf()
        }
    };
    let (ports, models) = embedded(&dir).await?;
    let coordinator = Coordinator::new(&ports, Arc::new(models), DomainServices::default()).with_noise_seed(simulation.seed);
    Ok(run_federated(&coordinator, &simulation).await?)
}

/// How a hospital's client reaches the coordinator.
#[derive(Args)]
pub(crate) struct ClientArgs {
    /// The API's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// The task to train for.
    #[arg(long)]
    task: String,
    /// This hospital's code (its service account's username).
    #[arg(long)]
    hospital: String,
    /// The hospital's rows: CSV with a header of column names, the label last.
    #[arg(long)]
    data: PathBuf,
    /// The service account's access token.
    #[arg(long, env = "EMR_ACCESS_TOKEN", hide_env_values = true)]
    token: String,
    /// Pause between polls of the task, in milliseconds.
    #[arg(long, default_value_t = 200)]
    poll_ms: u64,
    /// Seeds DP-SGD's sampling and noise where the task uses it.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(serde::Deserialize)]
struct TaskView {
    status: String,
    open_round: Option<u32>,
    updates_received: Vec<String>,
    spec: TaskSpec,
}

#[derive(serde::Deserialize)]
struct GlobalModel {
    parameters: Vec<f64>,
}

/// What a client did, printed when its task ends.
#[derive(serde::Serialize)]
pub(crate) struct ClientReport {
    hospital: String,
    status: String,
    rounds_submitted: Vec<u32>,
    rows: usize,
}

async fn fetch<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str, token: &str) -> Result<T, Attempt> {
    let (status, body) = get(http, url, token).await?;
    parsed(status, url, &body)
}

/// [`fetch`], with none for a 404: what a client reads of something that may have
/// closed since it last looked.
async fn fetch_if_found<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str, token: &str) -> Result<Option<T>, Attempt> {
    let (status, body) = get(http, url, token).await?;
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    parsed(status, url, &body).map(Some)
}

async fn get(http: &reqwest::Client, url: &str, token: &str) -> Result<(reqwest::StatusCode, String), Attempt> {
    let response = http.get(url).bearer_auth(token).send().await.map_err(|e| Attempt::Retry(format!("GET {url}: {e}")))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| Attempt::Retry(format!("GET {url}: {e}")))?;
    Ok((status, body))
}

/// The answer to `GET url` as `T`, or why it is not one (a refusal keeps its problem text).
fn parsed<T: serde::de::DeserializeOwned>(status: reqwest::StatusCode, url: &str, body: &str) -> Result<T, Attempt> {
    if !status.is_success() {
        return Err(Attempt::failed_with(status, format!("GET {url}: {status}: {body}"), body));
    }
    serde_json::from_str(body).map_err(|e| Attempt::Fatal(format!("GET {url}: unexpected answer: {e}")))
}

/// Why a step of the client did not go through.
enum Attempt {
    /// Worth trying again: the server is down or restarting, or another
    /// hospital's update raced this one (409 concurrent-update).
    Retry(String),
    /// A refusal that will not change.
    Fatal(String),
}

impl Attempt {
    fn failed_with(status: reqwest::StatusCode, message: String, body: &str) -> Self {
        let retryable =
            serde_json::from_str::<serde_json::Value>(body).ok().and_then(|problem| problem["retryable"].as_bool()).unwrap_or(false);
        if retryable || status.is_server_error() { Self::Retry(message) } else { Self::Fatal(message) }
    }
}

/// POSTs `body` to `url` with an idempotency key derived from `url` and `what`, so a
/// retried step is recorded once.
async fn post(http: &reqwest::Client, token: &str, url: &str, what: &str, body: &serde_json::Value) -> Result<(), Attempt> {
    let key = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("{url}#{what}").as_bytes());
    let request = http.post(url).bearer_auth(token).header("idempotency-key", key.to_string()).json(body);
    let response = request.send().await.map_err(|e| Attempt::Retry(format!("POST {url}: {e}")))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(Attempt::failed_with(status, format!("POST {url}: {status}: {text}"), &text));
    }
    Ok(())
}

/// One hospital's client: its rows, and its part in the current secure round.
struct HospitalClient<'a> {
    args: &'a ClientArgs,
    http: reqwest::Client,
    task_url: String,
    hospital: Hospital,
    submitted: Vec<u32>,
    secure: Option<SecureMember>,
}

impl HospitalClient<'_> {
    /// Trains for `round` from the current global model.
    async fn train(&self, spec: &TaskSpec, round: u32) -> Result<(Vec<f64>, Trained), Attempt> {
        let global: GlobalModel = fetch(&self.http, &format!("{}/model", self.task_url), &self.args.token).await?;
        let trained =
            self.hospital.train(spec, &global.parameters, self.args.seed ^ u64::from(round)).map_err(|e| Attempt::Fatal(e.to_string()))?;
        Ok((global.parameters, trained))
    }

    async fn submit(&mut self, round: u32, body: serde_json::Value) -> Result<(), Attempt> {
        let url = format!("{}/rounds/{round}/updates", self.task_url);
        post(&self.http, &self.args.token, &url, &self.args.hospital, &body).await?;
        tracing::info!(round, "update submitted");
        self.submitted.push(round);
        Ok(())
    }

    /// One poll: the task's status once it has ended, else whatever this hospital owes the open round.
    async fn step(&mut self) -> Result<Option<String>, Attempt> {
        let task: TaskView = fetch(&self.http, &self.task_url, &self.args.token).await?;
        if !matches!(task.status.as_str(), "created" | "running") {
            return Ok(Some(task.status));
        }
        let Some(round) = task.open_round else { return Ok(None) };
        let owed = !task.updates_received.contains(&self.args.hospital) && !self.submitted.contains(&round);
        if task.spec.secure_aggregation {
            self.secure_step(&task.spec, round, owed).await?;
        } else if owed {
            let (_, trained) = self.train(&task.spec, round).await?;
            self.submit(
                round,
                serde_json::json!({"parameters": trained.parameters, "samples": trained.samples, "metrics": trained.metrics}),
            )
            .await?;
        }
        Ok(None)
    }

    /// This hospital's part in the secure round's current step. Its secrets live in
    /// this process only: a client that restarts mid-round sits the round out, and
    /// the others' reveals remove its masks.
    async fn secure_step(&mut self, spec: &TaskSpec, round: u32, update_owed: bool) -> Result<(), Attempt> {
        let round_url = format!("{}/rounds/{round}/secure", self.task_url);
        // The other hospitals may have finished the round since the task was read:
        // the next poll finds the next round, or the task's end.
        let Some(view) = fetch_if_found::<SecureRound>(&self.http, &round_url, &self.args.token).await? else {
            tracing::info!(round, "the round closed before this step");
            return Ok(());
        };
        let me = self.hospital.id().clone();
        let fatal = |e: SecureStepError| Attempt::Fatal(e.to_string());
        let member = self.secure.as_mut().filter(|member| member.round() == round);
        let message = match (view.step, member) {
            (SecureStep::Advertising, _) if !view.keys.contains_key(&me) => {
                let task_id = self.args.task.parse().map_err(|_| Attempt::Fatal(format!("{} is not a task id", self.args.task)))?;
                let (member, keys) = SecureMember::join(spec, task_id, round, me).map_err(fatal)?;
                self.secure = Some(member);
                keys
            }
            (SecureStep::Sharing, Some(member)) if !view.shares.contains_key(&me) => member.share(spec, &view).map_err(fatal)?,
            (SecureStep::Masking, Some(_)) if update_owed && view.sharers.contains(&me) => {
                let (global, trained) = self.train(spec, round).await?;
                let contribution = Hospital::secure_contribution(spec, &global, &trained);
                let member = self.secure.as_mut().ok_or_else(|| Attempt::Fatal("the round's secrets are gone".into()))?;
                let masked = member.mask(spec, &view, &contribution).map_err(fatal)?;
                return self
                    .submit(round, serde_json::json!({"masked": masked, "samples": trained.samples, "metrics": trained.metrics}))
                    .await;
            }
            (SecureStep::Unmasking, Some(member)) if view.survivors.contains(&me) && !view.reveals.contains_key(&me) => {
                member.reveal(spec, &view).map_err(fatal)?
            }
            _ => return Ok(()),
        };
        let what = format!("{}#{}", self.args.hospital, message.step().as_str());
        let body = serde_json::to_value(&message).map_err(|e| Attempt::Fatal(e.to_string()))?;
        post(&self.http, &self.args.token, &format!("{round_url}/messages"), &what, &body).await?;
        tracing::info!(round, step = message.step().as_str(), "secure-aggregation message sent");
        Ok(())
    }
}

/// Runs one hospital's side of a task through the HTTP API until the task ends:
/// for each round it pulls the global model, trains on its own rows (standardised
/// with its own mean and deviation; no row leaves this process) and submits the
/// parameters — or, under secure aggregation, takes its part in the round's
/// key exchange and submits only its masked vector. Transient failures are
/// retried for up to a minute.
pub(crate) async fn client(args: &ClientArgs) -> anyhow::Result<ClientReport> {
    let text = std::fs::read_to_string(&args.data).with_context(|| format!("reading {}", args.data.display()))?;
    let mut data = emr_learning::data::Dataset::from_csv(&text).with_context(|| format!("parsing {}", args.data.display()))?;
    data.standardize(&emr_learning::data::Scaler::from_moments(&data.moments()));
    let rows = data.len();
    let mut client = HospitalClient {
        args,
        http: reqwest::Client::new(),
        task_url: format!("{}/v1/federated/tasks/{}", args.url.trim_end_matches('/'), args.task),
        hospital: Hospital::new(emr_domain::ids::HospitalId::parse(&args.hospital)?, data),
        submitted: Vec::new(),
        secure: None,
    };
    let mut failing_since: Option<std::time::Instant> = None;
    loop {
        match client.step().await {
            Ok(Some(status)) => {
                return Ok(ClientReport { hospital: args.hospital.clone(), status, rounds_submitted: client.submitted, rows });
            }
            Ok(None) => failing_since = None,
            Err(Attempt::Fatal(message)) => anyhow::bail!(message),
            Err(Attempt::Retry(message)) => {
                let since = *failing_since.get_or_insert_with(std::time::Instant::now);
                anyhow::ensure!(since.elapsed() < std::time::Duration::from_secs(60), "giving up after a minute of failures: {message}");
                tracing::warn!(%message, "retrying");
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(args.poll_ms)).await;
    }
}
