//! The models hospitals train, on candle tensors: logistic regression and a small
//! multi-layer perceptron with a logistic output, trained by full-batch gradient
//! descent (optionally with FedProx's proximal term) or by DP-SGD.
//!
//! Parameters travel as one flat vector: for each layer, input side first, its
//! weight matrix (inputs × outputs, row-major) and then its biases.

use candle_core::{DType, Device, Tensor, Var};
use emr_domain::federated::{ModelKind, ModelSpec, Precision};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, Normal};

use crate::data::Dataset;

/// Why training or prediction failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A parameter vector of the wrong length.
    #[error("the model has {expected} parameters; got {got}")]
    Parameters {
        /// The model's count.
        expected: usize,
        /// The count given.
        got: usize,
    },
    /// Rows of the wrong width.
    #[error("the model reads {expected} features; the data has {got}")]
    Features {
        /// The model's width.
        expected: usize,
        /// The data's width.
        got: usize,
    },
    /// A computation candle refused.
    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    /// An invalid noise configuration.
    #[error("invalid noise deviation {0}")]
    Noise(f64),
}

/// DP-SGD's parameters for local training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DpSgd {
    /// The L2 norm each example's gradient is clipped to.
    pub clip_norm: f64,
    /// Noise deviation over the clipping norm.
    pub noise_multiplier: f64,
    /// Each example's probability of joining a step (Poisson sampling).
    pub sample_rate: f64,
    /// Seeds the sampling and the noise, so a run can be repeated.
    pub seed: u64,
}

/// How one hospital trains in one round.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalTraining {
    /// Gradient steps.
    pub steps: u32,
    /// The learning rate.
    pub learning_rate: f64,
    /// FedProx's μ: the weight of μ/2·‖w − w_global‖² (0 for plain gradient descent).
    pub proximal_mu: f64,
    /// DP-SGD in place of full-batch steps.
    pub dp_sgd: Option<DpSgd>,
}

/// A model of a given architecture (its parameters travel separately).
#[derive(Debug, Clone)]
pub struct Model {
    widths: Vec<usize>,
    dtype: DType,
    device: Device,
}

impl Model {
    /// The model `spec` describes, on the CPU.
    pub fn new(spec: &ModelSpec) -> Self {
        let mut widths = vec![spec.features.len()];
        if let ModelKind::Mlp { hidden } = &spec.kind {
            widths.extend(hidden.iter().map(|&w| w as usize));
        }
        widths.push(1);
        let dtype = match spec.precision {
            Precision::F32 => DType::F32,
            Precision::F64 => DType::F64,
        };
        Self { widths, dtype, device: Device::Cpu }
    }

    /// Parameters in all.
    pub fn parameter_count(&self) -> usize {
        self.widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }

    /// The starting parameters: all zero for logistic regression; for a perceptron,
    /// hidden weights drawn He-uniform from a ChaCha20 generator seeded with `seed`
    /// (candle's own generator cannot be seeded), biases and output weights zero.
    pub fn initial_parameters(&self, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let layers = self.widths.len() - 1;
        let mut parameters = Vec::with_capacity(self.parameter_count());
        for (layer, pair) in self.widths.windows(2).enumerate() {
            let (inputs, outputs) = (pair[0], pair[1]);
            let bound = (6.0 / inputs as f64).sqrt();
            let hidden = layer + 1 < layers;
            parameters.extend((0..inputs * outputs).map(|_| if hidden { rng.random_range(-bound..bound) } else { 0.0 }));
            parameters.extend(std::iter::repeat_n(0.0, outputs));
        }
        parameters
    }

    fn check(&self, parameters: &[f64], data: &Dataset) -> Result<(), ModelError> {
        if parameters.len() != self.parameter_count() {
            return Err(ModelError::Parameters { expected: self.parameter_count(), got: parameters.len() });
        }
        if data.features.len() != self.widths[0] {
            return Err(ModelError::Features { expected: self.widths[0], got: data.features.len() });
        }
        Ok(())
    }

    /// The layers' weights and biases as trainable variables.
    fn variables(&self, parameters: &[f64]) -> Result<Vec<(Var, Var)>, ModelError> {
        let mut offset = 0;
        let mut layers = Vec::new();
        for pair in self.widths.windows(2) {
            let (inputs, outputs) = (pair[0], pair[1]);
            let weights = Tensor::from_slice(&parameters[offset..offset + inputs * outputs], (inputs, outputs), &self.device)?;
            offset += inputs * outputs;
            let biases = Tensor::from_slice(&parameters[offset..offset + outputs], outputs, &self.device)?;
            offset += outputs;
            layers.push((Var::from_tensor(&weights.to_dtype(self.dtype)?)?, Var::from_tensor(&biases.to_dtype(self.dtype)?)?));
        }
        Ok(layers)
    }

    fn flatten(&self, tensors: impl Iterator<Item = Tensor>) -> Result<Vec<f64>, ModelError> {
        let mut flat = Vec::with_capacity(self.parameter_count());
        for tensor in tensors {
            flat.extend(tensor.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?);
        }
        Ok(flat)
    }

    fn inputs(&self, data: &Dataset) -> Result<(Tensor, Tensor), ModelError> {
        let flat: Vec<f64> = data.rows.iter().flatten().copied().collect();
        let x = Tensor::from_vec(flat, (data.len(), self.widths[0]), &self.device)?.to_dtype(self.dtype)?;
        let y = Tensor::from_slice(&data.labels, (data.len(), 1), &self.device)?.to_dtype(self.dtype)?;
        Ok((x, y))
    }

    /// The logits of `x` (rows × 1).
    fn logits(layers: &[(Var, Var)], x: &Tensor) -> Result<Tensor, ModelError> {
        let mut h = x.clone();
        for (i, (weights, biases)) in layers.iter().enumerate() {
            h = h.matmul(weights.as_tensor())?.broadcast_add(biases.as_tensor())?;
            if i + 1 < layers.len() {
                h = h.relu()?;
            }
        }
        Ok(h)
    }

    /// Mean binary cross-entropy from logits, in its overflow-free form:
    /// max(z, 0) − z·y + log(1 + e^−|z|).
    fn loss(logits: &Tensor, y: &Tensor) -> Result<Tensor, ModelError> {
        let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
        Ok((logits.relu()? - (logits * y)? + softplus)?.mean_all()?)
    }

    /// Trains from `parameters` on `data`; `global` is the round's global model (the
    /// anchor of FedProx's proximal term).
    pub fn train(&self, parameters: &[f64], global: &[f64], data: &Dataset, training: &LocalTraining) -> Result<Vec<f64>, ModelError> {
        self.check(parameters, data)?;
        self.check(global, data)?;
        let layers = self.variables(parameters)?;
        let anchor = self.variables(global)?;
        let (x, y) = self.inputs(data)?;
        let mut rng = training.dp_sgd.map(|dp| ChaCha20Rng::seed_from_u64(dp.seed));
        for _ in 0..training.steps {
            let gradient = match (&training.dp_sgd, &mut rng) {
                (Some(dp), Some(rng)) => self.private_gradient(&layers, &x, &y, dp, rng)?,
                _ => self.gradient(&Self::loss(&Self::logits(&layers, &x)?, &y)?, &layers)?,
            };
            self.descend(&layers, &anchor, &gradient, training)?;
        }
        self.flatten(layers.iter().flat_map(|(w, b)| [w.as_tensor().clone(), b.as_tensor().clone()]))
    }

    /// ∂loss/∂w for every parameter, flattened (zero where the loss does not depend on it).
    fn gradient(&self, loss: &Tensor, layers: &[(Var, Var)]) -> Result<Vec<f64>, ModelError> {
        let grads = loss.backward()?;
        let mut flat = Vec::with_capacity(self.parameter_count());
        for var in layers.iter().flat_map(|(w, b)| [w, b]) {
            match grads.get(var.as_tensor()) {
                Some(g) => flat.extend(g.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?),
                None => flat.extend(std::iter::repeat_n(0.0, var.elem_count())),
            }
        }
        Ok(flat)
    }

    /// w ← w − lr·(g + μ·(w − w_global)).
    fn descend(&self, layers: &[(Var, Var)], anchor: &[(Var, Var)], gradient: &[f64], training: &LocalTraining) -> Result<(), ModelError> {
        let mut offset = 0;
        for ((w, b), (w0, b0)) in layers.iter().zip(anchor) {
            for (var, origin) in [(w, w0), (b, b0)] {
                let count = var.elem_count();
                let g = Tensor::from_slice(&gradient[offset..offset + count], var.shape(), &self.device)?.to_dtype(self.dtype)?;
                offset += count;
                let proximal = ((var.as_tensor() - origin.as_tensor())? * training.proximal_mu)?;
                let step = ((g + proximal)? * training.learning_rate)?;
                var.set(&(var.as_tensor() - step)?)?;
            }
        }
        Ok(())
    }

    /// One DP-SGD gradient: Poisson-sample the rows, clip each row's gradient to the
    /// norm, add Gaussian noise of deviation σ·C to the sum, divide by the expected
    /// batch size q·n (as Opacus does).
    fn private_gradient(
        &self,
        layers: &[(Var, Var)],
        x: &Tensor,
        y: &Tensor,
        dp: &DpSgd,
        rng: &mut ChaCha20Rng,
    ) -> Result<Vec<f64>, ModelError> {
        let rows = x.dim(0)?;
        let mut sum = vec![0.0; self.parameter_count()];
        for row in 0..rows {
            if rng.random::<f64>() >= dp.sample_rate {
                continue;
            }
            let (xi, yi) = (x.narrow(0, row, 1)?, y.narrow(0, row, 1)?);
            let g = self.gradient(&Self::loss(&Self::logits(layers, &xi)?, &yi)?, layers)?;
            let scale = clip_factor(&g, dp.clip_norm);
            sum.iter_mut().zip(&g).for_each(|(s, gi)| *s += gi * scale);
        }
        let deviation = dp.noise_multiplier * dp.clip_norm;
        let noise = Normal::new(0.0, deviation).map_err(|_| ModelError::Noise(deviation))?;
        let expected_batch = (dp.sample_rate * rows as f64).max(1.0);
        Ok(sum.into_iter().map(|s| (s + noise.sample(rng)) / expected_batch).collect())
    }

    /// The probability of label 1 for each row.
    pub fn predict(&self, parameters: &[f64], data: &Dataset) -> Result<Vec<f64>, ModelError> {
        self.check(parameters, data)?;
        let layers = self.variables(parameters)?;
        let (x, _) = self.inputs(data)?;
        let logits = Self::logits(&layers, &x)?.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        Ok(logits.into_iter().map(|z| 1.0 / (1.0 + (-z).exp())).collect())
    }
}

/// A model's change from `global`, w − w_global, scaled to L2 norm at most `bound`:
/// what client-level privacy adds up (its sum then has sensitivity `bound`).
pub fn clipped_update(parameters: &[f64], global: &[f64], bound: f64) -> Vec<f64> {
    let delta: Vec<f64> = parameters.iter().zip(global).map(|(w, g)| w - g).collect();
    let scale = clip_factor(&delta, bound);
    delta.into_iter().map(|d| d * scale).collect()
}

/// The factor that scales `vector` to L2 norm at most `bound`.
pub fn clip_factor(vector: &[f64], bound: f64) -> f64 {
    let norm = vector.iter().map(|v| v * v).sum::<f64>().sqrt();
    if norm > bound { bound / norm } else { 1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Scaler;
    use crate::metrics::accuracy;

    fn spec(kind: ModelKind, precision: Precision, width: usize) -> ModelSpec {
        ModelSpec { kind, precision, features: (0..width).map(|i| format!("f{i}")).collect(), label: "y".into() }
    }

    fn standardized() -> Dataset {
        let mut data = Dataset::breast_cancer();
        data.standardize(&Scaler::from_moments(&data.moments()));
        data
    }

    fn plain(steps: u32) -> LocalTraining {
        LocalTraining { steps, learning_rate: 0.5, proximal_mu: 0.0, dp_sgd: None }
    }

    #[test]
    fn gradient_descent_learns_the_reference_data_in_both_precisions_and_both_models() {
        let data = standardized();
        for precision in [Precision::F64, Precision::F32] {
            for kind in [ModelKind::LogisticRegression, ModelKind::Mlp { hidden: vec![8] }] {
                let model = Model::new(&spec(kind.clone(), precision, 30));
                let start = model.initial_parameters(7);
                let trained = model.train(&start, &start, &data, &plain(60)).unwrap_or_else(|e| panic!("{e}"));
                let p = model.predict(&trained, &data).unwrap_or_default();
                assert!(accuracy(&p, &data.labels) > 0.95, "{kind:?} {precision:?}: {}", accuracy(&p, &data.labels));
            }
        }
    }

    #[test]
    fn one_step_of_logistic_regression_is_the_analytic_gradient_step() {
        let data = standardized().select(&[0, 1, 2, 20, 21]);
        let model = Model::new(&spec(ModelKind::LogisticRegression, Precision::F64, 30));
        let start: Vec<f64> = (0..31).map(|i| f64::from(i) / 100.0 - 0.15).collect();
        let trained = model.train(&start, &start, &data, &plain(1)).unwrap_or_default();
        // ∇ = Xᵀ(σ(Xw + b) − y) / n for the weights, mean(σ − y) for the bias.
        let n = data.len() as f64;
        let residual: Vec<f64> = data
            .rows
            .iter()
            .zip(&data.labels)
            .map(|(row, y)| {
                let z = row.iter().zip(&start).map(|(x, w)| x * w).sum::<f64>() + start[30];
                1.0 / (1.0 + (-z).exp()) - y
            })
            .collect();
        for j in 0..31 {
            let g = if j < 30 {
                data.rows.iter().zip(&residual).map(|(row, r)| row[j] * r).sum::<f64>() / n
            } else {
                residual.iter().sum::<f64>() / n
            };
            assert!((trained[j] - (start[j] - 0.5 * g)).abs() < 1e-12, "parameter {j}");
        }
    }

    #[test]
    fn the_proximal_term_keeps_a_hospital_closer_to_the_global_model() {
        let data = standardized();
        let model = Model::new(&spec(ModelKind::LogisticRegression, Precision::F64, 30));
        let global = model.initial_parameters(0);
        let distance = |mu| {
            let trained = model.train(&global, &global, &data, &LocalTraining { proximal_mu: mu, ..plain(20) }).unwrap_or_default();
            trained.iter().zip(&global).map(|(a, b)| (a - b) * (a - b)).sum::<f64>()
        };
        assert!(distance(1.0) < distance(0.0));
    }

    #[test]
    fn dp_sgd_is_repeatable_from_its_seed_and_noisier_than_plain_descent() {
        let data = standardized();
        let model = Model::new(&spec(ModelKind::LogisticRegression, Precision::F64, 30));
        let start = model.initial_parameters(0);
        let private =
            |seed| LocalTraining { dp_sgd: Some(DpSgd { clip_norm: 1.0, noise_multiplier: 1.0, sample_rate: 0.1, seed }), ..plain(30) };
        let a = model.train(&start, &start, &data, &private(1)).unwrap_or_default();
        assert_eq!(a, model.train(&start, &start, &data, &private(1)).unwrap_or_default());
        assert_ne!(a, model.train(&start, &start, &data, &private(2)).unwrap_or_default());
        let p = model.predict(&a, &data).unwrap_or_default();
        assert!(accuracy(&p, &data.labels) > 0.85, "DP-SGD still learns: {}", accuracy(&p, &data.labels));
    }

    #[test]
    fn mlp_initialisation_is_seeded_and_wrong_shapes_are_refused() {
        let model = Model::new(&spec(ModelKind::Mlp { hidden: vec![4] }, Precision::F64, 3));
        assert_eq!(model.initial_parameters(5), model.initial_parameters(5));
        assert_ne!(model.initial_parameters(5), model.initial_parameters(6));
        let data = standardized();
        assert!(matches!(model.predict(&model.initial_parameters(5), &data), Err(ModelError::Features { expected: 3, got: 30 })));
        assert!(matches!(model.predict(&[0.0; 2], &data), Err(ModelError::Parameters { .. })));
    }
}
