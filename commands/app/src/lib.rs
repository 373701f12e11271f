//! The application layer of EMR Ledger: what the transports (HTTP, gRPC, CLI) call.
//!
//! [`Clinic`] runs commands on the three aggregates through their event stores and
//! adds the rules that span aggregates:
//! - a record or an access grant can only be created for an active patient;
//! - erasing a patient destroys their data key, then records the erasure, then
//!   drops every cached aggregate holding their PHI.
//!
//! Every command and every read is authorized here, by the pure policy in
//! [`emr_domain::access`], so every transport (HTTP, gRPC) enforces the same rules:
//! roles, the patient's grants (looked up through a grant directory kept from the
//! log, decided on the grant aggregates themselves) and break-glass. Every read
//! of PHI is recorded as a disclosure event before anything is shown.

mod clinic;
mod grant_directory;
mod outcomes;
mod receipt;

pub use clinic::{AttachmentRead, Clinic, ClinicError, Read, Step, Subject, TransactionError};
pub use emr_eventstore::EventStorePorts;
pub use receipt::{EventReceipt, Receipt};
