//! `emr fl`: federated learning from the command line — the ε of a privacy
//! configuration, and the reference experiment.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use emr_domain::DomainServices;
use emr_domain::federated::privacy::SampledGaussian;
use emr_domain::federated::{DifferentialPrivacy, DpMechanism, ModelKind, Strategy};
use emr_eventstore::EventStorePorts;
use emr_federated::simulate::{Baseline, Report, Simulation, run_baseline, run_federated};
use emr_federated::{Coordinator, DirectoryModelStore};
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
    let models = DirectoryModelStore::open(dir.join("models")).context("the simulation's model store")?;
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
