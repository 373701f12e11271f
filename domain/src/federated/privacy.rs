//! Differential privacy accounting: a Rényi-DP accountant for the Poisson-subsampled
//! Gaussian mechanism (Mironov, Talwar and Zhang 2019, "Rényi Differential Privacy
//! of the Sampled Gaussian Mechanism"), and its conversion to (ε, δ).
//!
//! It follows the arithmetic of Google's `dp-accounting` (its `RdpAccountant` with
//! the default orders and the add-or-remove-one relation), so a task's ε is the
//! figure an operator gets from that library: `tests/fl/reference.py` regenerates
//! the table the tests compare against.

use serde::{Deserialize, Serialize};

/// The orders at which the RDP curve is evaluated (`dp-accounting`'s default):
/// 1.1 … 10.9 in tenths, the integers 11 … 63, and 128, 256, 512, 1024.
pub fn default_orders() -> Vec<f64> {
    let tenths = (1..100).map(|x| 1.0 + f64::from(x) / 10.0);
    let integers = (11..64).map(f64::from);
    tenths.chain(integers).chain([128.0, 256.0, 512.0, 1024.0]).collect()
}

/// One application of the Poisson-subsampled Gaussian mechanism, repeated `steps` times.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SampledGaussian {
    /// Probability that each example (or each client) takes part in a step, in [0, 1].
    pub sample_rate: f64,
    /// Noise standard deviation divided by the L2 sensitivity (the clipping norm).
    pub noise_multiplier: f64,
    /// How many times the mechanism runs.
    pub steps: u64,
}

/// Why a privacy question has no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PrivacyError {
    /// The sampling rate lies outside [0, 1] or is not a number.
    #[error("the sampling rate must lie in [0, 1], got {0}")]
    SampleRate(f64),
    /// The noise multiplier is negative or not a number.
    #[error("the noise multiplier must be a non-negative number, got {0}")]
    NoiseMultiplier(f64),
    /// δ lies outside (0, 1).
    #[error("delta must lie strictly between 0 and 1, got {0}")]
    Delta(f64),
}

/// An (ε, δ) guarantee and the RDP order that gave the tightest ε.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Guarantee {
    /// ε (may be infinite: no noise, or no useful bound).
    pub epsilon: f64,
    /// The δ asked for.
    pub delta: f64,
    /// The order at which ε is smallest.
    pub order: f64,
}

impl SampledGaussian {
    fn check(&self) -> Result<(), PrivacyError> {
        if !(0.0..=1.0).contains(&self.sample_rate) {
            return Err(PrivacyError::SampleRate(self.sample_rate));
        }
        if self.noise_multiplier.is_nan() || self.noise_multiplier < 0.0 {
            return Err(PrivacyError::NoiseMultiplier(self.noise_multiplier));
        }
        Ok(())
    }

    /// The RDP of the composition at each order.
    pub fn rdp(&self, orders: &[f64]) -> Result<Vec<f64>, PrivacyError> {
        self.check()?;
        let steps = self.steps as f64;
        Ok(orders.iter().map(|&order| steps * rdp_one_step(self.sample_rate, self.noise_multiplier, order)).collect())
    }

    /// The tightest (ε, δ) over the default orders.
    pub fn epsilon(&self, delta: f64) -> Result<Guarantee, PrivacyError> {
        let orders = default_orders();
        let rdp = self.rdp(&orders)?;
        epsilon_from_rdp(&orders, &rdp, delta)
    }
}

/// Converts an RDP curve to the tightest ε for `delta`, by the improved bound of
/// Canonne, Kamath and Steinke (2020, Proposition 12), as `dp-accounting` does.
pub fn epsilon_from_rdp(orders: &[f64], rdp: &[f64], delta: f64) -> Result<Guarantee, PrivacyError> {
    if !(delta > 0.0 && delta < 1.0) {
        return Err(PrivacyError::Delta(delta));
    }
    let mut best = Guarantee { epsilon: f64::INFINITY, delta, order: orders.first().copied().unwrap_or(f64::NAN) };
    for (&order, &r) in orders.iter().zip(rdp) {
        let epsilon = if r < 0.0 || delta * delta + (-r).exp_m1() > 0.0 {
            // A negative RDP is numerical noise; a small one is bounded through KL.
            0.0
        } else if order > 1.01 {
            r + (-1.0 / order).ln_1p() - (delta * order).ln() / (order - 1.0)
        } else {
            f64::INFINITY
        };
        if epsilon < best.epsilon {
            best = Guarantee { epsilon, delta, order };
        }
    }
    best.epsilon = best.epsilon.max(0.0);
    Ok(best)
}

/// RDP of one step of the sampled Gaussian mechanism at `order`.
fn rdp_one_step(q: f64, sigma: f64, order: f64) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    if order.is_infinite() || sigma == 0.0 {
        return f64::INFINITY;
    }
    if q == 1.0 {
        return order / (2.0 * sigma * sigma);
    }
    let log_a = if order.fract() == 0.0 { log_a_integer(q, sigma, order) } else { log_a_fractional(q, sigma, order) };
    log_a / (order - 1.0)
}

/// log(exp(x) + exp(y)) without overflow.
fn log_add(x: f64, y: f64) -> f64 {
    let (small, large) = if x < y { (x, y) } else { (y, x) };
    if small == f64::NEG_INFINITY {
        return large;
    }
    (small - large).exp().ln_1p() + large
}

/// log of the binomial coefficient C(n, k) for real n and k (log |Γ| where Γ < 0).
fn log_binomial(n: f64, k: f64) -> f64 {
    libm::lgamma(n + 1.0) - libm::lgamma(k + 1.0) - libm::lgamma(n - k + 1.0)
}

/// log A_α for an integer order (the binomial expansion, Mironov et al. Sec. 3.3).
fn log_a_integer(q: f64, sigma: f64, order: f64) -> f64 {
    let log_1mq = (-q).ln_1p();
    let mut log_a = f64::NEG_INFINITY;
    let mut i = 0.0;
    while i <= order {
        let log_coefficient = log_binomial(order, i) + i * q.ln() + (order - i) * log_1mq;
        log_a = log_add(log_a, log_coefficient + (i * i - i) / (2.0 * sigma * sigma));
        i += 1.0;
    }
    log_a
}

/// Terms summed at most for a fractional order before it is given up as divergent.
const MAX_FRACTIONAL_TERMS: u32 = 1000;

/// log A_α for a fractional order: the two half-line integrals as series
/// (Mironov et al. Sec. 3.3), summed until both terms fall 30 nats below the total.
fn log_a_fractional(q: f64, sigma: f64, order: f64) -> f64 {
    let (mut log_a0, mut log_a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let log_1mq = (-q).ln_1p();
    let (mut last_s0, mut last_s1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for step in 0..MAX_FRACTIONAL_TERMS {
        let i = f64::from(step);
        let log_coefficient = log_binomial(order, i);
        let j = order - i;
        let log_t0 = log_coefficient + i * q.ln() + j * log_1mq;
        let log_t1 = log_coefficient + j * q.ln() + i * log_1mq;
        let log_e0 = 0.5f64.ln() + log_erfc((i - z0) / (std::f64::consts::SQRT_2 * sigma));
        let log_e1 = 0.5f64.ln() + log_erfc((z0 - j) / (std::f64::consts::SQRT_2 * sigma));
        let log_s0 = log_t0 + (i * i - i) / (2.0 * sigma * sigma) + log_e0;
        let log_s1 = log_t1 + (j * j - j) / (2.0 * sigma * sigma) + log_e1;
        log_a0 = log_add(log_a0, log_s0);
        log_a1 = log_add(log_a1, log_s1);
        let total = log_add(log_a0, log_a1);
        if log_s0 < last_s0 && log_s1 < last_s1 && log_s0.max(log_s1) < total - 30.0 {
            return total;
        }
        last_s0 = log_s0;
        last_s1 = log_s1;
    }
    // An order whose series does not settle gives no bound; the others still may.
    f64::INFINITY
}

/// log(erfc(x)), accurate where erfc(x) underflows (its asymptotic series at infinity).
fn log_erfc(x: f64) -> f64 {
    let r = libm::erfc(x);
    if r > 0.0 {
        return r.ln();
    }
    let x2 = x * x;
    -std::f64::consts::PI.ln() / 2.0 - x.ln() - x2 - 0.5 / x2 + 0.625 / (x2 * x2) - 37.0 / 24.0 / (x2 * x2 * x2)
        + 353.0 / 64.0 / (x2 * x2 * x2 * x2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epsilon(q: f64, sigma: f64, steps: u64, delta: f64) -> f64 {
        SampledGaussian { sample_rate: q, noise_multiplier: sigma, steps }.epsilon(delta).map(|g| g.epsilon).unwrap_or(f64::NAN)
    }

    #[test]
    fn the_default_orders_are_dp_accountings() {
        let orders = default_orders();
        assert_eq!(orders.len(), 99 + 53 + 4);
        assert!((orders[0] - 1.1).abs() < 1e-12 && orders[98] == 10.9 && orders[99] == 11.0 && orders[155] == 1024.0);
    }

    #[test]
    fn more_noise_or_fewer_steps_or_rarer_sampling_never_costs_more_privacy() {
        let base = epsilon(0.01, 1.1, 1000, 1e-5);
        assert!(base.is_finite() && base > 0.0);
        assert!(epsilon(0.01, 2.0, 1000, 1e-5) < base);
        assert!(epsilon(0.01, 1.1, 100, 1e-5) < base);
        assert!(epsilon(0.001, 1.1, 1000, 1e-5) < base);
        assert!(epsilon(0.01, 1.1, 1000, 1e-3) < base);
    }

    #[test]
    fn without_sampling_the_gaussian_mechanism_has_its_closed_form_rdp() {
        let rdp = SampledGaussian { sample_rate: 1.0, noise_multiplier: 2.0, steps: 3 }.rdp(&[2.0, 10.0]).unwrap_or_default();
        assert_eq!(rdp, vec![3.0 * 2.0 / 8.0, 3.0 * 10.0 / 8.0]);
    }

    #[test]
    fn no_noise_means_no_finite_guarantee_and_no_sampling_costs_nothing() {
        assert_eq!(epsilon(0.5, 0.0, 1, 1e-5), f64::INFINITY);
        assert_eq!(epsilon(0.0, 1.0, 1000, 1e-5), 0.0);
    }

    #[test]
    fn out_of_range_parameters_are_refused_by_name() {
        let mechanism = |q, sigma| SampledGaussian { sample_rate: q, noise_multiplier: sigma, steps: 1 };
        assert_eq!(mechanism(1.5, 1.0).epsilon(1e-5), Err(PrivacyError::SampleRate(1.5)));
        assert!(matches!(mechanism(f64::NAN, 1.0).epsilon(1e-5), Err(PrivacyError::SampleRate(_))));
        assert_eq!(mechanism(0.1, -1.0).epsilon(1e-5), Err(PrivacyError::NoiseMultiplier(-1.0)));
        assert_eq!(mechanism(0.1, 1.0).epsilon(0.0), Err(PrivacyError::Delta(0.0)));
        assert_eq!(mechanism(0.1, 1.0).epsilon(1.0), Err(PrivacyError::Delta(1.0)));
    }
}
