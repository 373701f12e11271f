//! The application layer of EMR Ledger: what the transports (HTTP, gRPC, CLI) call.
//!
//! [`Clinic`] runs commands on the three aggregates through their event stores and
//! adds the rules that span aggregates:
//! - a record or an access grant can only be created for an active patient;
//! - erasing a patient destroys their data key, then records the erasure, then
//!   drops every cached aggregate holding their PHI.
//!
//! Authorization (roles, grants, break-glass) arrives with the API and sits here too,
//! so every transport enforces the same rules.

mod clinic;
mod receipt;

pub use clinic::{Clinic, ClinicError};
pub use emr_eventstore::EventStorePorts;
pub use receipt::{EventReceipt, Receipt};
