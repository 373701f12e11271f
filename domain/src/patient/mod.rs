//! The patient: registration, demographics and erasure (GDPR Art. 17).
//!
//! Erasure is terminal. The event stays in the log; the application layer destroys
//! the patient's data key, which shreds every piece of their PHI everywhere.

mod aggregate;
mod commands;
mod events;

pub use aggregate::{Patient, PatientError, PatientStatus};
pub use commands::PatientCommand;
pub use events::{ErasureReason, PatientEvent, RestrictionGround};
