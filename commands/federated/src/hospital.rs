//! A hospital's side of a task: its rows stay here; it trains from the global model
//! and hands back only parameters (or, under secure aggregation, the vector it masks).

use emr_domain::federated::{DpMechanism, ModelMetrics, TaskSpec};
use emr_domain::ids::HospitalId;
use emr_learning::data::Dataset;
use emr_learning::metrics::evaluate;
use emr_learning::model::{DpSgd, LocalTraining, Model, ModelError, clipped_update};

/// One hospital's data and model.
#[derive(Debug, Clone)]
pub struct Hospital {
    id: HospitalId,
    data: Dataset,
}

/// What local training produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Trained {
    /// The trained parameters.
    pub parameters: Vec<f64>,
    /// Rows trained on.
    pub samples: u64,
    /// The trained model's figures on the hospital's own rows.
    pub metrics: ModelMetrics,
}

impl Hospital {
    /// A hospital holding `data` (already standardised with the federation's scaler).
    pub fn new(id: HospitalId, data: Dataset) -> Self {
        Self { id, data }
    }

    /// Its id.
    pub fn id(&self) -> &HospitalId {
        &self.id
    }

    /// Its rows (never sent anywhere; the simulation's evaluation reads them).
    pub fn data(&self) -> &Dataset {
        &self.data
    }

    /// Trains the task's model from `global` for one round. `seed` seeds DP-SGD's
    /// sampling and noise where the task uses it.
    pub fn train(&self, spec: &TaskSpec, global: &[f64], seed: u64) -> Result<Trained, ModelError> {
        let model = Model::new(&spec.model);
        let dp_sgd = spec.privacy.and_then(|p| match p.mechanism {
            DpMechanism::DpSgd { clip_norm, noise_multiplier, sample_rate } => {
                Some(DpSgd { clip_norm, noise_multiplier, sample_rate, seed })
            }
            DpMechanism::ClientLevel { .. } => None,
        });
        let training =
            LocalTraining { steps: spec.local_steps, learning_rate: spec.learning_rate, proximal_mu: spec.strategy.proximal_mu(), dp_sgd };
        let parameters = model.train(global, global, &self.data, &training)?;
        let metrics = evaluate(&model.predict(&parameters, &self.data)?, &self.data.labels);
        Ok(Trained { parameters, samples: self.data.len() as u64, metrics })
    }

    /// The vector this hospital masks under secure aggregation: its update clipped
    /// to the norm where the task has client-level privacy (the sum then has
    /// sensitivity C), else its parameters times its sample count (the sum over
    /// the total count is FedAvg).
    pub fn secure_contribution(spec: &TaskSpec, global: &[f64], trained: &Trained) -> Vec<f64> {
        match spec.privacy.map(|p| p.mechanism) {
            Some(DpMechanism::ClientLevel { clip_norm, .. }) => clipped_update(&trained.parameters, global, clip_norm),
            _ => trained.parameters.iter().map(|w| w * trained.samples as f64).collect(),
        }
    }
}
