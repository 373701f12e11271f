//! Threat detection for EMR Ledger (seed 5.3): collect → analyse → detect →
//! alert → contain.
//!
//! The log already holds every fact detection needs: sign-in attempts and
//! session use with client addresses, refused accesses, every PHI read with its
//! basis, break-glass reads, accounts with their departments, encounters and
//! grants. The [`DetectionWorker`] reads it in order, turns each event into an
//! observation ([`observe`]), and feeds the domain's pure detector
//! (`emr_domain::detection`). What the detector finds is raised as a security
//! event in the log; every security event raised (by the detector or by the
//! identity service) gets the responses its severity is configured for
//! ([`responses`]), each recorded on the security event. Officers triage them
//! through the API; the security read model shows them.

pub mod metrics;
pub mod observe;
pub mod responses;
mod worker;

pub use responses::{AccountGuard, Alert, AlertError, AlertSink, GuardError, LogSink, Responders, ResponsePolicy, WebhookSink};
pub use worker::{DetectionError, DetectionWorker, WorkerConfig};
