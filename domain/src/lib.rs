//! The clinical domain of EMR Ledger.
//!
//! Everything here is pure: aggregates decide which events a command produces
//! (`decide`), and fold events into state (`apply`). No I/O and no async runtime:
//! the event store, the key service and the transports live in outer crates and
//! depend on this one, never the other way round.
//!
//! Aggregates:
//! - [`patient::Patient`]: registration, demographics, GDPR erasure;
//! - [`record::MedicalRecord`]: a clinical record, its versions and attachments;
//! - [`grant::AccessGrant`]: a patient's consent for a practitioner (the seed's Permissions);
//! - [`account::Account`] and [`account::UsernameClaim`]: users and their credentials;
//! - [`disclosure::Disclosure`]: one read of PHI, with its basis (HIPAA accounting);
//! - [`authentication::SignInAttempt`] and [`authentication::Session`]: password steps and session use;
//! - [`denial::AccessDenial`]: one refused access;
//! - [`security::SecurityIncident`]: a detection and its triage (the seed's SecurityEvents);
//! - [`bridge::HeadAttestations`]: validators' signatures over a tree head for a target chain;
//! - [`federated::FederatedTask`]: a federated-learning task, round by round (the seed's FederatedTasks);
//! - [`diagnosis::DiagnosticModel`]: a diagnostic model artifact in the registry, registered → validated → active → retired.
//!
//! [`diagnosis`] holds the pure rules of AI-assisted diagnosis: model cards, input
//! contracts, and how a network output becomes a suggestion.
//!
//! [`detection`] folds the log into detections: pure rules over event time.
//!
//! [`access`] holds the authorization policy: which role may do what, on what basis.
//!
//! Protected health information is always wrapped in [`phi::Phi`], so the event
//! store can seal it with the patient's data key before it leaves the process.

pub mod access;
pub mod account;
pub mod actor;
pub mod authentication;
pub mod bridge;
pub mod clock;
mod decided;
pub mod deidentify;
pub mod denial;
pub mod detection;
pub mod diagnosis;
pub mod disclosure;
pub mod federated;
pub mod grant;
pub mod ids;
pub mod lookup;
pub mod metadata;
pub mod patient;
pub mod phi;
pub mod record;
pub mod retention;
pub mod security;
pub mod upcasting;
pub mod values;

pub use clock::{Clock, DomainServices, FixedClock, SystemClock};

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
