//! What a federated task trains and how: the model, the hospitals, the aggregation
//! strategy and the privacy configuration. Validated once, when the task is created.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::privacy::{Guarantee, PrivacyError, SampledGaussian};
use crate::ids::HospitalId;

/// The model every hospital trains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelKind {
    /// Logistic regression: one weight per feature and a bias.
    LogisticRegression,
    /// A multi-layer perceptron with ReLU hidden layers and one logistic output.
    Mlp {
        /// The width of each hidden layer, input side first.
        hidden: Vec<u32>,
    },
}

/// The floating-point precision of training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// 32-bit floats.
    F32,
    /// 64-bit floats.
    #[default]
    F64,
}

/// The model and the features it reads (names only: values never leave a hospital).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The architecture.
    pub kind: ModelKind,
    /// The training precision.
    #[serde(default)]
    pub precision: Precision,
    /// The feature columns, in order.
    pub features: Vec<String>,
    /// The label column (binary: 0 or 1).
    pub label: String,
}

impl ModelSpec {
    /// How many parameters the model has (weights and biases of every layer).
    pub fn parameter_count(&self) -> u64 {
        let mut widths: Vec<u64> = vec![self.features.len() as u64];
        if let ModelKind::Mlp { hidden } = &self.kind {
            widths.extend(hidden.iter().map(|&w| u64::from(w)));
        }
        widths.push(1);
        widths.windows(2).map(|pair| pair[0] * pair[1] + pair[1]).sum()
    }
}

/// How the coordinator combines the hospitals' models into the next global model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum Strategy {
    /// The average weighted by sample count (McMahan et al. 2017).
    #[serde(rename = "fedavg")]
    FedAvg,
    /// FedAvg with a proximal term μ/2·‖w − w_global‖² in each hospital's objective (Li et al. 2020).
    #[serde(rename = "fedprox")]
    FedProx {
        /// The proximal weight μ (≥ 0).
        mu: f64,
    },
    /// The coordinate-wise median.
    Median,
    /// The coordinate-wise mean after cutting a fraction β from each end.
    TrimmedMean {
        /// The fraction cut from each end, in [0, 0.5).
        beta: f64,
    },
    /// The one model closest to its n − f − 2 nearest neighbours (Blanchard et al. 2017).
    Krum {
        /// Byzantine hospitals tolerated.
        byzantine: u32,
    },
    /// The weighted average of the m models Krum scores best.
    MultiKrum {
        /// Byzantine hospitals tolerated.
        byzantine: u32,
        /// Models averaged.
        selected: u32,
    },
}

impl Strategy {
    /// Whether the strategy must see each hospital's model on its own (so it cannot
    /// run under secure aggregation, which reveals only the sum).
    pub fn needs_individual_models(&self) -> bool {
        !matches!(self, Self::FedAvg | Self::FedProx { .. })
    }

    /// The proximal weight hospitals train with (0 outside FedProx).
    pub fn proximal_mu(&self) -> f64 {
        match self {
            Self::FedProx { mu } => *mu,
            _ => 0.0,
        }
    }

    /// The strategy's name as the command line and metrics spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::FedAvg => "fedavg",
            Self::FedProx { .. } => "fedprox",
            Self::Median => "median",
            Self::TrimmedMean { .. } => "trimmed-mean",
            Self::Krum { .. } => "krum",
            Self::MultiKrum { .. } => "multi-krum",
        }
    }

    /// The fewest models a round needs for the strategy's guarantee.
    fn fewest_models(&self) -> u64 {
        match self {
            // Krum's analysis needs n > 2f + 2.
            Self::Krum { byzantine } => 2 * u64::from(*byzantine) + 3,
            Self::MultiKrum { byzantine, selected } => (2 * u64::from(*byzantine) + 3).max(u64::from(*selected)),
            _ => 1,
        }
    }
}

/// Where the noise of differential privacy is added.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DpMechanism {
    /// Client-level DP on the aggregate: each hospital's update is clipped to L2 norm
    /// `clip_norm`, and Gaussian noise of deviation `noise_multiplier · clip_norm` is
    /// added to their sum. One mechanism run per round; `sample_rate` is the share of
    /// hospitals taking part in a round.
    ClientLevel {
        /// The L2 norm each update is clipped to.
        clip_norm: f64,
        /// Noise deviation over the clipping norm.
        noise_multiplier: f64,
        /// The share of hospitals sampled per round, in (0, 1].
        sample_rate: f64,
    },
    /// DP-SGD in each hospital's local training: Poisson sampling of examples with rate
    /// `sample_rate`, per-example clipping to `clip_norm`, Gaussian noise. One mechanism
    /// run per local step.
    DpSgd {
        /// The L2 norm each example's gradient is clipped to.
        clip_norm: f64,
        /// Noise deviation over the clipping norm.
        noise_multiplier: f64,
        /// Each example's probability of taking part in a step, in (0, 1].
        sample_rate: f64,
    },
}

/// A task's differential-privacy configuration and its ε budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DifferentialPrivacy {
    /// Where and how noise is added.
    pub mechanism: DpMechanism,
    /// δ of the (ε, δ) guarantee, in (0, 1).
    pub delta: f64,
    /// The largest ε the task may spend; a round that would pass it is refused.
    pub epsilon_budget: f64,
}

impl DifferentialPrivacy {
    /// The ε spent once `rounds` rounds of `local_steps` each have run.
    pub fn spent_after(&self, rounds: u32, local_steps: u32) -> Result<Guarantee, PrivacyError> {
        let (sample_rate, noise_multiplier, steps_per_round) = match self.mechanism {
            DpMechanism::ClientLevel { noise_multiplier, sample_rate, .. } => (sample_rate, noise_multiplier, 1),
            DpMechanism::DpSgd { noise_multiplier, sample_rate, .. } => (sample_rate, noise_multiplier, u64::from(local_steps)),
        };
        SampledGaussian { sample_rate, noise_multiplier, steps: steps_per_round * u64::from(rounds) }.epsilon(self.delta)
    }

    /// The clipping norm of the mechanism.
    pub fn clip_norm(&self) -> f64 {
        match self.mechanism {
            DpMechanism::ClientLevel { clip_norm, .. } | DpMechanism::DpSgd { clip_norm, .. } => clip_norm,
        }
    }
}

/// Everything a coordinator fixes when creating a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// A name for dashboards.
    pub name: String,
    /// The model and its features.
    pub model: ModelSpec,
    /// The hospitals enrolled; only they may submit updates.
    pub hospitals: BTreeSet<HospitalId>,
    /// How updates are combined.
    pub strategy: Strategy,
    /// Rounds to run.
    pub rounds: u32,
    /// Local gradient steps per hospital per round.
    pub local_steps: u32,
    /// The local learning rate.
    pub learning_rate: f64,
    /// The fewest updates a round is aggregated with.
    pub min_participants: u32,
    /// Seconds a round stays open for updates.
    pub round_deadline_secs: u32,
    /// Differential privacy, if any.
    #[serde(default)]
    pub privacy: Option<DifferentialPrivacy>,
    /// Whether hospitals mask their updates so the coordinator sees only the sum.
    #[serde(default)]
    pub secure_aggregation: bool,
}

/// Why a task specification was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// A field outside its range; names the field and the range.
    #[error("`{field}` must be {expected}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// What a valid value looks like.
        expected: &'static str,
    },
    /// A strategy that needs every model on its own, under secure aggregation.
    #[error("the {0} strategy needs each hospital's model on its own, so it cannot run under secure aggregation; use fedavg or fedprox")]
    RobustUnderSecureAggregation(&'static str),
    /// Client-level DP, which noises the sum, with a strategy that does not sum.
    #[error("client-level differential privacy noises a weighted sum, so it needs fedavg or fedprox, not {0}")]
    ClientDpWithoutAveraging(&'static str),
    /// Fewer hospitals than the strategy needs.
    #[error("the {strategy} strategy needs at least {needed} models per round; min_participants is {min_participants}")]
    TooFewForStrategy {
        /// The strategy.
        strategy: &'static str,
        /// The models it needs.
        needed: u64,
        /// The configured minimum.
        min_participants: u32,
    },
}

fn check(ok: bool, field: &'static str, expected: &'static str) -> Result<(), SpecError> {
    if ok { Ok(()) } else { Err(SpecError::OutOfRange { field, expected }) }
}

fn positive_finite(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

impl TaskSpec {
    /// Longest task name.
    pub const MAX_NAME_LEN: usize = 200;
    /// Most rounds a task may run.
    pub const MAX_ROUNDS: u32 = 10_000;
    /// Most local steps per round.
    pub const MAX_LOCAL_STEPS: u32 = 100_000;
    /// Most hospitals per task.
    pub const MAX_HOSPITALS: usize = 1_000;
    /// Most parameters a model may have.
    pub const MAX_PARAMETERS: u64 = 100_000_000;

    /// A hospital's number in the secure-aggregation protocol: its place among the
    /// enrolled hospitals, from 1 (an evaluation point of the secret shares).
    pub fn member_number(&self, hospital: &HospitalId) -> Option<u8> {
        let index = self.hospitals.iter().position(|h| h == hospital)?;
        u8::try_from(index + 1).ok()
    }

    /// Checks every field and every combination the coordinator cannot run.
    pub fn validate(&self) -> Result<(), SpecError> {
        check(!self.name.trim().is_empty() && self.name.chars().count() <= Self::MAX_NAME_LEN, "name", "1 to 200 characters")?;
        let column = |name: &String| !name.trim().is_empty() && name.len() <= 128;
        check(!self.model.features.is_empty() && self.model.features.len() <= 10_000, "model.features", "1 to 10,000 column names")?;
        check(self.model.features.iter().all(column) && column(&self.model.label), "model.features", "column names of 1 to 128 bytes")?;
        if let ModelKind::Mlp { hidden } = &self.model.kind {
            check(
                !hidden.is_empty() && hidden.len() <= 16 && hidden.iter().all(|&w| (1..=65_536).contains(&w)),
                "model.kind.hidden",
                "1 to 16 layers of 1 to 65,536 units",
            )?;
        }
        check(self.model.parameter_count() <= Self::MAX_PARAMETERS, "model", "at most 100,000,000 parameters")?;
        check(!self.hospitals.is_empty() && self.hospitals.len() <= Self::MAX_HOSPITALS, "hospitals", "1 to 1,000 hospitals")?;
        check((1..=Self::MAX_ROUNDS).contains(&self.rounds), "rounds", "1 to 10,000")?;
        check((1..=Self::MAX_LOCAL_STEPS).contains(&self.local_steps), "local_steps", "1 to 100,000")?;
        check(positive_finite(self.learning_rate), "learning_rate", "a positive number")?;
        check(
            self.min_participants >= 1 && self.min_participants as usize <= self.hospitals.len(),
            "min_participants",
            "between 1 and the number of hospitals",
        )?;
        check((1..=7 * 24 * 3600).contains(&self.round_deadline_secs), "round_deadline_secs", "1 second to 7 days")?;
        self.validate_strategy()?;
        self.validate_privacy()
    }

    fn validate_strategy(&self) -> Result<(), SpecError> {
        match &self.strategy {
            Strategy::FedProx { mu } => check(mu.is_finite() && *mu >= 0.0, "strategy.mu", "a non-negative number")?,
            Strategy::TrimmedMean { beta } => check((0.0..0.5).contains(beta), "strategy.beta", "in [0, 0.5)")?,
            Strategy::MultiKrum { selected, .. } => check(*selected >= 1, "strategy.selected", "at least 1")?,
            Strategy::FedAvg | Strategy::Median | Strategy::Krum { .. } => {}
        }
        let needed = self.strategy.fewest_models();
        if u64::from(self.min_participants) < needed {
            return Err(SpecError::TooFewForStrategy { strategy: self.strategy.name(), needed, min_participants: self.min_participants });
        }
        if self.secure_aggregation && self.strategy.needs_individual_models() {
            return Err(SpecError::RobustUnderSecureAggregation(self.strategy.name()));
        }
        // Secret shares are taken over GF(256): one evaluation point per hospital.
        check(!self.secure_aggregation || self.hospitals.len() <= 255, "hospitals", "at most 255 hospitals under secure aggregation")?;
        // A secret shared among fewer than two hospitals is not shared.
        check(!self.secure_aggregation || self.min_participants >= 2, "min_participants", "at least 2 under secure aggregation")?;
        Ok(())
    }

    fn validate_privacy(&self) -> Result<(), SpecError> {
        let Some(privacy) = &self.privacy else { return Ok(()) };
        let (DpMechanism::ClientLevel { clip_norm, noise_multiplier, sample_rate }
        | DpMechanism::DpSgd { clip_norm, noise_multiplier, sample_rate }) = privacy.mechanism;
        check(positive_finite(clip_norm), "privacy.mechanism.clip_norm", "a positive number")?;
        check(noise_multiplier.is_finite() && noise_multiplier >= 0.0, "privacy.mechanism.noise_multiplier", "a non-negative number")?;
        check(sample_rate > 0.0 && sample_rate <= 1.0, "privacy.mechanism.sample_rate", "in (0, 1]")?;
        check(privacy.delta > 0.0 && privacy.delta < 1.0, "privacy.delta", "in (0, 1)")?;
        check(positive_finite(privacy.epsilon_budget), "privacy.epsilon_budget", "a positive number")?;
        if matches!(privacy.mechanism, DpMechanism::ClientLevel { .. }) && self.strategy.needs_individual_models() {
            return Err(SpecError::ClientDpWithoutAveraging(self.strategy.name()));
        }
        Ok(())
    }
}
