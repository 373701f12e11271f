//! Federated learning in the application layer (the seed's federated-learning module):
//!
//! - [`Coordinator`] runs a [`FederatedTask`](emr_domain::federated::FederatedTask)'s
//!   commands through the event store, keeps models and updates in a
//!   [`ModelStore`], and combines each round by the task's strategy, client-level
//!   privacy and secure aggregation;
//! - [`Hospital`] trains on rows that never leave it and hands back parameters, or
//!   the vector it masks, and [`SecureMember`] takes its part in a secure round;
//! - [`simulate`] runs the reference experiment over both, in one process.

mod coordinator;
mod hospital;
mod models;
mod secure;
pub mod simulate;

pub use coordinator::{Coordinator, CoordinatorError, RoundOpening, Update};
pub use hospital::{Hospital, Trained};
pub use models::{DirectoryModelStore, ModelStore, ModelStoreError, Vector};
pub use secure::{SecureMember, SecureStepError};
