//! The reference experiment: a whole federated task in one process, through the real
//! code paths — hospitals training on their own rows, the coordinator running the
//! task's commands into the event log and keeping vectors in the model store,
//! secure sums for standardisation and (when asked) for the updates.
//!
//! The default protocol (reproducible to the last printed digit):
//! - the breast cancer data in file order; test rows are those whose 0-based index
//!   i has i % 5 == 0, the rest train;
//! - features z-scored with the train rows' mean and population deviation, from
//!   the hospitals' secure sums of n, Σx and Σx²;
//! - 3 hospitals, label-skewed: each class's train rows, in file order, cut into
//!   contiguous chunks — malignant 60 % / 30 % / rest, benign 10 % / 30 % / rest
//!   (chunk sizes ⌊fraction × class count⌋);
//! - logistic regression from zero, float64, 5 full-batch steps at rate 0.5 per
//!   hospital per round, 50 rounds.

use std::collections::BTreeSet;

use emr_domain::actor::{Actor, Role};
use emr_domain::federated::{DifferentialPrivacy, ModelKind, ModelMetrics, ModelSpec, Precision, Strategy, TaskSpec};
use emr_domain::ids::{HospitalId, TaskId, UserId};
use emr_domain::metadata::CommandContext;
use emr_learning::data::{Dataset, Moments, Scaler};
use emr_learning::metrics::evaluate;
use emr_learning::model::{LocalTraining, Model, ModelError};
use emr_learning::secure::{self, InProcessRound, SecureAggregationError};
use serde::Serialize;

use crate::coordinator::{Coordinator, CoordinatorError, RoundOpening, Update};
use crate::hospital::Hospital;
use crate::models::Vector;
use crate::secure::{SecureMember, SecureStepError};

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    /// The aggregation strategy.
    pub strategy: Strategy,
    /// Hospitals taking part.
    pub hospitals: usize,
    /// Shares of the malignant train rows for hospitals 1 … n−1 (the last takes the rest).
    pub malignant_split: Vec<f64>,
    /// Shares of the benign train rows for hospitals 1 … n−1.
    pub benign_split: Vec<f64>,
    /// A hospital (1-based) that sends w_g − 10·(w_local − w_g) instead of its model.
    pub byzantine: Option<usize>,
    /// Rounds.
    pub rounds: u32,
    /// Local steps per round.
    pub local_steps: u32,
    /// The learning rate.
    pub learning_rate: f64,
    /// The model.
    pub model: ModelKind,
    /// The precision.
    pub precision: Precision,
    /// Differential privacy.
    pub privacy: Option<DifferentialPrivacy>,
    /// Secure aggregation of the updates.
    pub secure_aggregation: bool,
    /// Seeds the perceptron's initial weights, DP-SGD and the coordinator's noise.
    pub seed: u64,
}

impl Simulation {
    /// The default protocol with `hospitals` hospitals (the reference split for 3,
    /// equal shares otherwise).
    pub fn reference(hospitals: usize) -> Self {
        let (malignant_split, benign_split) = if hospitals == 3 {
            (vec![0.6, 0.3], vec![0.1, 0.3])
        } else {
            let equal = vec![1.0 / hospitals.max(1) as f64; hospitals.saturating_sub(1)];
            (equal.clone(), equal)
        };
        Self {
            strategy: Strategy::FedAvg,
            hospitals,
            malignant_split,
            benign_split,
            byzantine: None,
            rounds: 50,
            local_steps: 5,
            learning_rate: 0.5,
            model: ModelKind::LogisticRegression,
            precision: Precision::F64,
            privacy: None,
            secure_aggregation: false,
            seed: 0,
        }
    }
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    /// The options do not describe a runnable experiment.
    #[error("{0}")]
    Options(String),
    /// The coordinator failed.
    #[error(transparent)]
    Coordinator(#[from] CoordinatorError),
    /// Training failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A secure sum failed.
    #[error(transparent)]
    SecureAggregation(#[from] SecureAggregationError),
    /// A hospital's step of a secure round failed.
    #[error(transparent)]
    SecureStep(#[from] SecureStepError),
}

/// One round's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundFigures {
    /// The round.
    pub round: u32,
    /// Mean cross-entropy of the new global model on all train rows.
    pub train_loss: f64,
    /// Its accuracy on the test rows.
    pub test_accuracy: f64,
    /// Its AUC on the test rows.
    pub test_auc: f64,
    /// ε spent so far, where the task is private.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
}

/// Final parameters of a logistic regression, or a perceptron's flat vector.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FinalWeights {
    /// Logistic regression.
    Logistic {
        /// One weight per feature.
        weights: Vec<f64>,
        /// The bias.
        bias: f64,
    },
    /// Any other model.
    Flat {
        /// Every parameter.
        parameters: Vec<f64>,
    },
}

impl FinalWeights {
    fn of(kind: &ModelKind, parameters: Vec<f64>) -> Self {
        match kind {
            ModelKind::LogisticRegression => {
                let mut weights = parameters;
                let bias = weights.pop().unwrap_or_default();
                Self::Logistic { weights, bias }
            }
            ModelKind::Mlp { .. } => Self::Flat { parameters },
        }
    }
}

/// What a simulation printed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `federated`, `centralized` or `hospital N`.
    pub run: String,
    /// The strategy (federated runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Train rows per hospital.
    pub hospital_rows: Vec<usize>,
    /// Per round (federated) or once at the end (baselines).
    pub rounds: Vec<RoundFigures>,
    /// Why the task stopped early, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// The final parameters.
    #[serde(rename = "final")]
    pub final_weights: FinalWeights,
}

/// A baseline to compare a federated run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Baseline {
    /// One model on every train row, rounds × local steps full-batch steps.
    Centralized,
    /// One hospital (1-based) alone, as many steps.
    Alone(usize),
}

/// The split of the reference data for `simulation`.
struct Split {
    hospitals: Vec<Hospital>,
    train: Dataset,
    test: Dataset,
}

fn split(simulation: &Simulation) -> Result<Split, SimulationError> {
    let n = simulation.hospitals;
    if !(1..=255).contains(&n) {
        return Err(SimulationError::Options("between 1 and 255 hospitals".into()));
    }
    for (name, shares) in [("malignant", &simulation.malignant_split), ("benign", &simulation.benign_split)] {
        if shares.len() != n - 1 || shares.iter().any(|s| !(0.0..=1.0).contains(s)) || shares.iter().sum::<f64>() > 1.0 + 1e-12 {
            return Err(SimulationError::Options(format!("the {name} split needs {} shares in [0, 1] summing to at most 1", n - 1)));
        }
    }
    let data = Dataset::breast_cancer();
    let train_rows: Vec<usize> = (0..data.len()).filter(|i| i % 5 != 0).collect();
    let test_rows: Vec<usize> = (0..data.len()).filter(|i| i % 5 == 0).collect();
    let mut chunks: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (label, shares) in [(0.0, &simulation.malignant_split), (1.0, &simulation.benign_split)] {
        let rows: Vec<usize> = train_rows.iter().copied().filter(|&i| data.labels[i] == label).collect();
        let mut start = 0;
        for (h, chunk) in chunks.iter_mut().enumerate() {
            let size = if h + 1 == n { rows.len() - start } else { (shares[h] * rows.len() as f64).floor() as usize };
            chunk.extend(&rows[start..start + size]);
            start += size;
        }
    }
    // Each hospital keeps its rows in file order.
    chunks.iter_mut().for_each(|c| c.sort_unstable());
    if let Some(empty) = chunks.iter().position(Vec::is_empty) {
        return Err(SimulationError::Options(format!("hospital {} would hold no rows", empty + 1)));
    }
    let mut hospitals: Vec<Hospital> = Vec::new();
    let mut parts: Vec<Dataset> = chunks.iter().map(|c| data.select(c)).collect();
    let scaler = federated_scaler(&parts)?;
    for (h, part) in parts.iter_mut().enumerate() {
        part.standardize(&scaler);
        let id = HospitalId::parse(&format!("HOSP-{}", h + 1)).map_err(|e| SimulationError::Options(e.to_string()))?;
        hospitals.push(Hospital::new(id, part.clone()));
    }
    let mut train = data.select(&train_rows);
    train.standardize(&scaler);
    let mut test = data.select(&test_rows);
    test.standardize(&scaler);
    Ok(Split { hospitals, train, test })
}

/// The scaler from the hospitals' moments, summed securely where there are at least
/// two hospitals (a lone hospital has no one to hide its sums from).
fn federated_scaler(parts: &[Dataset]) -> Result<Scaler, SimulationError> {
    let vectors: Vec<Vec<f64>> = parts.iter().map(|p| p.moments().to_vector()).collect();
    let total = if vectors.len() >= 2 {
        let session = InProcessRound::new(vectors.len(), b"standardisation")?;
        let masked = session.mask_all(&vectors)?;
        let revealed = session.reveal(&masked.keys().copied().collect())?;
        secure::unmask(session.roster(), &masked, &revealed)?
    } else {
        vectors[0].clone()
    };
    Ok(Scaler::from_moments(&Moments::from_vector(&total)))
}

fn figures(model: &Model, parameters: &[f64], split: &Split, round: u32, epsilon: Option<f64>) -> Result<RoundFigures, ModelError> {
    let train = evaluate(&model.predict(parameters, &split.train)?, &split.train.labels);
    let test = evaluate(&model.predict(parameters, &split.test)?, &split.test.labels);
    Ok(RoundFigures { round, train_loss: train.loss, test_accuracy: test.accuracy, test_auc: test.auc, epsilon })
}

/// A new command by `actor`.
fn step(actor: Actor) -> CommandContext {
    CommandContext::new(actor)
}

fn spec_of(simulation: &Simulation, split: &Split) -> TaskSpec {
    TaskSpec {
        name: format!("breast cancer, {} hospitals, {}", simulation.hospitals, simulation.strategy.name()),
        model: ModelSpec {
            kind: simulation.model.clone(),
            precision: simulation.precision,
            features: split.train.features.clone(),
            label: "benign".into(),
        },
        hospitals: split.hospitals.iter().map(|h| h.id().clone()).collect(),
        strategy: simulation.strategy.clone(),
        rounds: simulation.rounds,
        local_steps: simulation.local_steps,
        learning_rate: simulation.learning_rate,
        min_participants: simulation.hospitals as u32,
        round_deadline_secs: 3600,
        privacy: simulation.privacy,
        secure_aggregation: simulation.secure_aggregation,
    }
}

/// Runs `simulation` as a federated task through `coordinator`.
pub async fn run_federated(coordinator: &Coordinator, simulation: &Simulation) -> Result<Report, SimulationError> {
    let split = split(simulation)?;
    let spec = spec_of(simulation, &split);
    let model = Model::new(&spec.model);
    let actor = Actor::new(UserId::new(), Role::Researcher);
    let task = TaskId::new();
    coordinator.create(&step(actor), task, spec.clone(), model.initial_parameters(simulation.seed)).await?;
    coordinator.start(&step(actor), task).await?;
    let mut rounds = Vec::new();
    let mut stopped = None;
    for _ in 0..simulation.rounds {
        let round = match coordinator.open_round(&step(actor), task).await? {
            RoundOpening::Opened { round, .. } => round,
            RoundOpening::Refused { round, epsilon_would_be, epsilon_budget } => {
                stopped =
                    Some(format!("round {round} refused: it would bring ε to {epsilon_would_be:.4}, over the budget of {epsilon_budget}"));
                break;
            }
        };
        let global = coordinator.global_model(task).await?;
        let mut contributions = Vec::new();
        for (index, hospital) in split.hospitals.iter().enumerate() {
            let mut trained = hospital.train(&spec, &global, simulation.seed ^ ((u64::from(round) << 8) | index as u64))?;
            if simulation.byzantine == Some(index + 1) {
                trained.parameters = global.iter().zip(&trained.parameters).map(|(g, w)| g - 10.0 * (w - g)).collect();
            }
            let parameters =
                if spec.secure_aggregation { Hospital::secure_contribution(&spec, &global, &trained) } else { trained.parameters };
            let update = Update { vector: Vector::Plain(parameters), samples: trained.samples, metrics: Some(trained.metrics) };
            contributions.push((hospital.id().clone(), update));
        }
        if spec.secure_aggregation {
            run_secure_round(coordinator, actor, task, round, contributions, &BTreeSet::new()).await?;
        } else {
            for (hospital, update) in contributions {
                coordinator.submit(&step(actor), task, round, hospital, update).await?;
            }
        }
        let mut evaluated = None;
        coordinator
            .aggregate(&step(actor), task, round, |next| {
                evaluated = Some(figures(&model, next, &split, round, None));
                let f = evaluated.as_ref()?.as_ref().ok()?;
                Some(ModelMetrics { loss: f.train_loss, accuracy: f.test_accuracy, auc: f.test_auc })
            })
            .await?;
        let mut figures = evaluated.ok_or_else(|| SimulationError::Options("the round was not evaluated".into()))??;
        figures.epsilon = coordinator.task(task).await?.epsilon_spent();
        rounds.push(figures);
    }
    if stopped.is_none() {
        coordinator.complete(&step(actor), task).await?;
    }
    let final_parameters = coordinator.global_model(task).await?;
    Ok(Report {
        run: "federated".into(),
        strategy: Some(simulation.strategy.name().into()),
        hospital_rows: split.hospitals.iter().map(|h| h.data().len()).collect(),
        rounds,
        stopped,
        final_weights: FinalWeights::of(&simulation.model, final_parameters),
    })
}

/// Runs every hospital's part of a secure round of `task` in this process, through
/// the task's relayed messages: each hospital joins, shares, masks its plain
/// contribution and reveals — except those in `vanish_after_sharing`, which go
/// silent once the others have masked against them (their updates never arrive).
/// Leaves the round ready to aggregate. Each step is its own command by `actor`.
pub async fn run_secure_round(
    coordinator: &Coordinator,
    actor: Actor,
    task: TaskId,
    round: u32,
    contributions: Vec<(HospitalId, Update)>,
    vanish_after_sharing: &BTreeSet<HospitalId>,
) -> Result<(), SimulationError> {
    let spec = coordinator.task(task).await?.spec().cloned().ok_or_else(|| SimulationError::Options("no such task".into()))?;
    let view = || async {
        coordinator.task(task).await?.secure_round().cloned().ok_or_else(|| SimulationError::Options("the round is not secure".into()))
    };
    let mut members = Vec::new();
    for (hospital, update) in contributions {
        let (member, keys) = SecureMember::join(&spec, task, round, hospital.clone())?;
        coordinator.submit_secure(&step(actor), task, round, hospital.clone(), keys).await?;
        members.push((hospital, member, update));
    }
    coordinator.advance_secure(&step(actor), task, round).await?;
    let sharing = view().await?;
    for (hospital, member, _) in &members {
        coordinator.submit_secure(&step(actor), task, round, hospital.clone(), member.share(&spec, &sharing)?).await?;
    }
    coordinator.advance_secure(&step(actor), task, round).await?;
    let masking = view().await?;
    members.retain(|(hospital, ..)| !vanish_after_sharing.contains(hospital));
    for (hospital, member, update) in &mut members {
        let Vector::Plain(values) = &update.vector else { return Err(SimulationError::Options("contributions are plain vectors".into())) };
        let masked =
            Update { vector: Vector::Masked(member.mask(&spec, &masking, values)?), samples: update.samples, metrics: update.metrics };
        coordinator.submit(&step(actor), task, round, hospital.clone(), masked).await?;
    }
    coordinator.advance_secure(&step(actor), task, round).await?;
    let unmasking = view().await?;
    for (hospital, member, _) in &members {
        coordinator.submit_secure(&step(actor), task, round, hospital.clone(), member.reveal(&spec, &unmasking)?).await?;
    }
    Ok(())
}

/// Runs a baseline of `simulation`: the same model, data split and step count
/// (rounds × local steps), trained in one place.
pub fn run_baseline(simulation: &Simulation, baseline: Baseline) -> Result<Report, SimulationError> {
    let split = split(simulation)?;
    let spec = spec_of(simulation, &split);
    let model = Model::new(&spec.model);
    let (run, data) = match baseline {
        Baseline::Centralized => ("centralized".to_owned(), &split.train),
        Baseline::Alone(h) => {
            let hospital = split.hospitals.get(h.wrapping_sub(1)).ok_or_else(|| SimulationError::Options(format!("no hospital {h}")))?;
            (format!("hospital {h} alone"), hospital.data())
        }
    };
    let steps = simulation.rounds * simulation.local_steps;
    let start = model.initial_parameters(simulation.seed);
    let training = LocalTraining { steps, learning_rate: simulation.learning_rate, proximal_mu: 0.0, dp_sgd: None };
    let parameters = model.train(&start, &start, data, &training)?;
    Ok(Report {
        run,
        strategy: None,
        hospital_rows: split.hospitals.iter().map(|h| h.data().len()).collect(),
        rounds: vec![figures(&model, &parameters, &split, steps, None)?],
        stopped: None,
        final_weights: FinalWeights::of(&simulation.model, parameters),
    })
}
