//! The coordinator: runs a federated task's commands through the event store, keeps
//! models and updates in the model store, and combines each round's updates into the
//! next global model by the task's strategy, privacy and secure-aggregation settings.

use std::collections::BTreeMap;
use std::sync::Arc;

use emr_domain::DomainServices;
use emr_domain::federated::secure::{SecureAdvance, SecureMessage};
use emr_domain::federated::{DpMechanism, FederatedTask, ModelMetrics, TaskCommand, TaskError, TaskEvent, TaskSpec, UpdateReceipt};
use emr_domain::ids::{HospitalId, TaskId};
use emr_domain::metadata::CommandContext;
use emr_domain::values::Sha256Digest;
use emr_eventstore::{EmrEventStore, EventStorePorts, ExecuteError, StoreConfig, StoreError};
use emr_learning::model::clipped_update;
use emr_learning::strategy::{AggregationError, ClientModel, aggregate};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, Normal};

use crate::models::{ModelStore, ModelStoreError, Vector};
use crate::secure::{SecureStepError, Unmasking};

/// Why a coordinator step failed.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// The task refused the command.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The model store failed.
    #[error(transparent)]
    Models(#[from] ModelStoreError),
    /// The strategy could not combine the updates.
    #[error(transparent)]
    Aggregation(#[from] AggregationError),
    /// Secure aggregation failed.
    #[error(transparent)]
    SecureAggregation(#[from] SecureStepError),
    /// An update that does not fit the task (a masked vector where a plain one is
    /// due, a wrong length, a missing unmasking step).
    #[error("{0}")]
    Update(String),
}

/// What opening a round gave.
#[derive(Debug, Clone, PartialEq)]
pub enum RoundOpening {
    /// The round is open; hospitals train from this model.
    Opened {
        /// The round.
        round: u32,
        /// The global model's digest.
        model: Sha256Digest,
        /// ε spent once it is aggregated, where the task is private.
        epsilon_after: Option<f64>,
    },
    /// The round would pass the ε budget; the task stopped (the event says why).
    Refused {
        /// The round.
        round: u32,
        /// ε it would have reached.
        epsilon_would_be: f64,
        /// The budget.
        epsilon_budget: f64,
    },
}

/// A hospital's update as it arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The vector: the trained parameters, or (under secure aggregation) the masked contribution.
    pub vector: Vector,
    /// Training examples behind it.
    pub samples: u64,
    /// The hospital's own figures.
    pub metrics: Option<ModelMetrics>,
}

/// Runs federated tasks. Every step takes the command's context (its id makes a
/// retried step idempotent; its actor is recorded).
#[derive(Clone)]
pub struct Coordinator {
    store: EmrEventStore<FederatedTask>,
    services: DomainServices,
    models: Arc<dyn ModelStore>,
    noise_seed: Option<u64>,
}

impl Coordinator {
    /// A coordinator over the event log of `ports`, keeping vectors in `models`.
    pub fn new(ports: &EventStorePorts, models: Arc<dyn ModelStore>, services: DomainServices) -> Self {
        let store = EmrEventStore::new(ports.log.clone(), ports.phi_codec(), Some(ports.snapshots.clone()), StoreConfig::default());
        Self { store, services, models, noise_seed: None }
    }

    /// Draws the noise of client-level privacy from a generator seeded with `seed`
    /// (for repeatable experiments; a deployment leaves it to the operating system).
    pub fn with_noise_seed(mut self, seed: u64) -> Self {
        self.noise_seed = Some(seed);
        self
    }

    async fn run(&self, context: &CommandContext, task: TaskId, command: TaskCommand) -> Result<Vec<TaskEvent>, CoordinatorError> {
        match self.store.execute(&task.to_string(), command, &self.services, context).await {
            Ok(executed) => Ok(executed.events.into_iter().map(|e| e.payload).collect()),
            Err(ExecuteError::Rejected(error)) => Err(error.into()),
            Err(ExecuteError::Store(error)) => Err(error.into()),
        }
    }

    /// The task as its events leave it.
    pub async fn task(&self, task: TaskId) -> Result<FederatedTask, CoordinatorError> {
        Ok(self.store.load(&task.to_string()).await?.state().clone())
    }

    /// Creates a task whose global model starts at `initial`.
    pub async fn create(
        &self,
        context: &CommandContext,
        task: TaskId,
        spec: TaskSpec,
        initial: Vec<f64>,
    ) -> Result<Sha256Digest, CoordinatorError> {
        spec.validate().map_err(TaskError::from)?;
        let expected = spec.model.parameter_count() as usize;
        if initial.len() != expected {
            return Err(CoordinatorError::Update(format!(
                "the initial model has {} parameters; the spec's model has {expected}",
                initial.len()
            )));
        }
        let initial_model = self.models.put(&Vector::Plain(initial)).await?;
        self.run(context, task, TaskCommand::Create { task_id: task, spec, initial_model, created_by: context.actor.user_id }).await?;
        Ok(initial_model)
    }

    /// Starts a created task.
    pub async fn start(&self, context: &CommandContext, task: TaskId) -> Result<(), CoordinatorError> {
        self.run(context, task, TaskCommand::Start { started_by: context.actor.user_id }).await.map(drop)
    }

    /// Opens the next round, or records why it may not open.
    pub async fn open_round(&self, context: &CommandContext, task: TaskId) -> Result<RoundOpening, CoordinatorError> {
        let round = self.task(task).await?.rounds_aggregated() + 1;
        let events = self.run(context, task, TaskCommand::OpenRound { round }).await?;
        match events.into_iter().next() {
            Some(TaskEvent::RoundOpened { round, model, epsilon_after, .. }) => Ok(RoundOpening::Opened { round, model, epsilon_after }),
            Some(TaskEvent::RoundRefused { round, epsilon_would_be, epsilon_budget }) => {
                Ok(RoundOpening::Refused { round, epsilon_would_be, epsilon_budget })
            }
            other => Err(CoordinatorError::Update(format!("opening a round gave {other:?}"))),
        }
    }

    /// The current global model.
    pub async fn global_model(&self, task: TaskId) -> Result<Vec<f64>, CoordinatorError> {
        self.plain_model(self.task(task).await?.model()).await
    }

    /// The parameters of the global model stored under `digest`.
    async fn plain_model(&self, digest: Option<Sha256Digest>) -> Result<Vec<f64>, CoordinatorError> {
        match self.models.get(&digest.ok_or(TaskError::NotFound)?).await? {
            Vector::Plain(parameters) => Ok(parameters),
            Vector::Masked(_) => Err(CoordinatorError::Update("the global model is stored masked".into())),
        }
    }

    /// Records a hospital's update for `round`.
    pub async fn submit(
        &self,
        context: &CommandContext,
        task: TaskId,
        round: u32,
        hospital: HospitalId,
        update: Update,
    ) -> Result<Sha256Digest, CoordinatorError> {
        let state = self.task(task).await?;
        let spec = state.spec().ok_or(TaskError::NotFound)?;
        let expected = spec.model.parameter_count() as usize;
        let (secure, length) = match &update.vector {
            Vector::Plain(v) => (false, v.len()),
            Vector::Masked(v) => (true, v.len()),
        };
        if secure != spec.secure_aggregation {
            let due = if spec.secure_aggregation { "masked" } else { "plain" };
            return Err(CoordinatorError::Update(format!("this task takes {due} updates")));
        }
        if length != expected {
            return Err(CoordinatorError::Update(format!("the update has {length} values; the model has {expected}")));
        }
        let sha256 = self.models.put(&update.vector).await?;
        let receipt = UpdateReceipt { samples: update.samples, sha256, blob: None, metrics: update.metrics };
        self.run(context, task, TaskCommand::SubmitUpdate { round, hospital, update: receipt }).await?;
        Ok(sha256)
    }

    /// Relays a hospital's message for the current step of the round's secure aggregation.
    pub async fn submit_secure(
        &self,
        context: &CommandContext,
        task: TaskId,
        round: u32,
        hospital: HospitalId,
        message: SecureMessage,
    ) -> Result<(), CoordinatorError> {
        self.run(context, task, TaskCommand::SubmitSecureMessage { round, hospital, message }).await.map(drop)
    }

    /// Moves the round's secure aggregation to its next step; returns what the step fixed.
    pub async fn advance_secure(&self, context: &CommandContext, task: TaskId, round: u32) -> Result<SecureAdvance, CoordinatorError> {
        match self.run(context, task, TaskCommand::AdvanceSecureRound { round }).await?.into_iter().next() {
            Some(TaskEvent::SecureRoundAdvanced { advance, .. }) => Ok(advance),
            other => Err(CoordinatorError::Update(format!("advancing the secure round gave {other:?}"))),
        }
    }

    /// Combines the round's updates into the next global model and records it, with
    /// the figures `evaluate` gives for it on the coordinator's held-out split (if any).
    /// Returns the new model.
    pub async fn aggregate(
        &self,
        context: &CommandContext,
        task: TaskId,
        round: u32,
        evaluate: impl FnOnce(&[f64]) -> Option<ModelMetrics>,
    ) -> Result<Vec<f64>, CoordinatorError> {
        let state = self.task(task).await?;
        let spec = state.spec().ok_or(TaskError::NotFound)?.clone();
        let global = self.plain_model(state.model()).await?;
        let mut updates = Vec::new();
        for (hospital, receipt) in state.open_updates() {
            updates.push((hospital.clone(), receipt.samples, self.models.get(&receipt.sha256).await?));
        }
        let noise = match self.noise_seed {
            Some(seed) => ChaCha20Rng::seed_from_u64(seed ^ u64::from(round)),
            None => ChaCha20Rng::from_os_rng(),
        };
        let unmasking = match state.secure_round() {
            Some(view) => {
                // Refuse out of turn here, before the unmasking fails for want of shares.
                view.check_unmaskable().map_err(TaskError::from)?;
                Some(Unmasking::of(&spec, view, task, round)?)
            }
            None => None,
        };
        let next = tokio::task::spawn_blocking(move || combine(&spec, &global, updates, unmasking, noise))
            .await
            .map_err(|e| CoordinatorError::Update(format!("aggregation stopped: {e}")))??;
        let metrics = evaluate(&next);
        let model = self.models.put(&Vector::Plain(next.clone())).await?;
        self.run(context, task, TaskCommand::AggregateRound { round, model, metrics }).await?;
        Ok(next)
    }

    /// Marks a task that ran all its rounds completed.
    pub async fn complete(&self, context: &CommandContext, task: TaskId) -> Result<(), CoordinatorError> {
        self.run(context, task, TaskCommand::Complete).await.map(drop)
    }
}

/// The next global model from the round's updates.
fn combine(
    spec: &TaskSpec,
    global: &[f64],
    updates: Vec<(HospitalId, u64, Vector)>,
    unmasking: Option<Unmasking>,
    mut noise: ChaCha20Rng,
) -> Result<Vec<f64>, CoordinatorError> {
    let client_dp = spec.privacy.and_then(|p| match p.mechanism {
        DpMechanism::ClientLevel { clip_norm, noise_multiplier, .. } => Some((clip_norm, noise_multiplier)),
        DpMechanism::DpSgd { .. } => None,
    });
    let participants = updates.len() as f64;
    let mut add_noise = |mean_delta: Vec<f64>, clip_norm: f64, noise_multiplier: f64| -> Result<Vec<f64>, CoordinatorError> {
        // Noise σ·C on the sum of clipped updates is σ·C/n on their mean.
        let deviation = noise_multiplier * clip_norm / participants;
        let gaussian = Normal::new(0.0, deviation).map_err(|_| CoordinatorError::Update(format!("invalid noise deviation {deviation}")))?;
        Ok(global.iter().zip(mean_delta).map(|(g, d)| g + d + gaussian.sample(&mut noise)).collect())
    };
    if spec.secure_aggregation {
        let unmasking = unmasking.ok_or_else(|| CoordinatorError::Update("a secure round needs its unmasking step".into()))?;
        let mut masked = BTreeMap::new();
        let mut samples = 0;
        for (hospital, n, vector) in updates {
            let Vector::Masked(words) = vector else { return Err(CoordinatorError::Update("a plain update in a secure round".into())) };
            masked.insert(hospital, words);
            samples += n;
        }
        let sum = unmasking.sum(masked)?;
        return match client_dp {
            // Hospitals contributed their clipped updates w − w_global.
            Some((clip_norm, sigma)) => add_noise(sum.into_iter().map(|s| s / participants).collect(), clip_norm, sigma),
            // Hospitals contributed n·w.
            None => Ok(sum.into_iter().map(|s| s / samples as f64).collect()),
        };
    }
    let models = updates
        .into_iter()
        .map(|(_, samples, vector)| match vector {
            Vector::Plain(parameters) => Ok(ClientModel { parameters, samples }),
            Vector::Masked(_) => Err(CoordinatorError::Update("a masked update in a plain round".into())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    match client_dp {
        Some((clip_norm, sigma)) => {
            let mut mean = vec![0.0; global.len()];
            for model in &models {
                let clipped = clipped_update(&model.parameters, global, clip_norm);
                mean.iter_mut().zip(&clipped).for_each(|(m, d)| *m += d / participants);
            }
            add_noise(mean, clip_norm, sigma)
        }
        None => Ok(aggregate(&spec.strategy, &models)?),
    }
}
