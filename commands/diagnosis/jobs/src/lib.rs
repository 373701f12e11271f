//! AI-assisted diagnosis as background jobs.
//!
//! ```text
//! clinician ─request→ DiagnosisJobs ─(authorize, check model)→ status board: queued
//!                                   └─submit→ work queue ─→ DiagnosisWorker ×n
//!   worker: read attachment (as the requester, recorded) → decode (time budget)
//!           → classify → explain? (heat map stored as an attachment)
//!           → DiagnosisSuggested on the record → status: succeeded
//! ```
//!
//! The queue and the board are ports ([`emr_eventstore::WorkQueue`],
//! [`emr_eventstore::StatusBoard`]): JetStream in production, memory in the
//! embedded deployment. The pipeline itself is [`emr_diagnosis`].

mod job;
mod metrics;
mod service;
mod worker;

pub use job::{DiagnosisRequest, JobState, JobStatus, Stage};
pub use service::{Ask, DiagnosisJobs, JobError};
pub use worker::{DiagnosisWorker, WorkerSettings};
