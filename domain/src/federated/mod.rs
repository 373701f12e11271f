//! Federated learning as part of the event log (the seed's FederatedTasks): hospitals
//! train a shared model without any patient row leaving the hospital.
//!
//! - [`FederatedTask`] is the aggregate: create, start, open a round, hospitals'
//!   updates, the round's aggregate, completion. A round that would pass the task's
//!   ε budget is refused with a [`TaskEvent::RoundRefused`] event saying why.
//! - [`spec`] holds what a task fixes (model, hospitals, strategy, privacy) and the
//!   combinations it refuses (robust strategies under secure aggregation).
//! - [`secure`] relays the secure-aggregation protocol of a round step by step,
//!   so the coordinator only ever sees the sum of the masked updates.
//! - [`privacy`] is the Rényi-DP accountant that prices each round in ε.
//!
//! The numerics (training, aggregation strategies, masking) live in the
//! `emr-learning` crate; this module only decides what may happen.

pub mod privacy;
pub mod secure;
pub mod spec;
mod task;

pub use spec::{DifferentialPrivacy, DpMechanism, ModelKind, ModelSpec, Precision, SpecError, Strategy, TaskSpec};
pub use task::{FederatedTask, ModelMetrics, TaskCommand, TaskError, TaskEvent, TaskStatus, UpdateReceipt};

#[cfg(test)]
mod tests;
