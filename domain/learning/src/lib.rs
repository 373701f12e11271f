//! The numerics of federated learning: what a hospital computes on its own data and
//! what the coordinator computes on the hospitals' models. Pure: no I/O, no async
//! runtime; the event log, the API and the processes live in outer crates.
//!
//! - [`data`]: a hospital's rows, the reference data set, standardisation from summed moments;
//! - [`model`]: logistic regression and a perceptron on candle, gradient descent, FedProx, DP-SGD;
//! - [`strategy`]: FedAvg, median, trimmed mean, Krum and Multi-Krum, as Flower computes them;
//! - [`secure`]: secure aggregation by pairwise masks with secret-shared seeds (Bonawitz et al. 2017);
//! - [`metrics`]: loss, accuracy and AUC.

pub mod data;
pub mod metrics;
pub mod model;
pub mod secure;
pub mod strategy;
