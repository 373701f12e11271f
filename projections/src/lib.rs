//! Read models of EMR Ledger in MySQL (MariaDB), or in a SQLite file for the
//! embedded default: the query side of CQRS.
//!
//! A [`Projector`] reads the event log from its checkpoint, decodes each event with
//! its PHI left sealed (read models hold no plaintext PHI; the search index
//! holds keyed hashes of some), and folds a batch of
//! commits into its [`Projection`]'s tables with multi-row statements — in one
//! transaction that also advances the checkpoint. A crash at any point therefore
//! neither skips nor double-applies an event: exactly-once effect.
//!
//! Projections:
//! - `patient_directory`: `patients`;
//! - `record_index`: `medical_records`, `attachments`;
//! - `access`: `access_grants` (active grants with expiry), `access_requests`;
//! - `dashboard`: `records_per_type_per_day`, `patients_per_hospital`;
//! - `search_index`: `patient_search_terms`, `record_search_terms` — keyed hashes
//!   of what patients and records are searched by; the one projector that opens
//!   PHI (to hash it), so it needs the key vault and the index key.
//!
//! [`rebuild`] folds a projection from the first event into a shadow database and
//! swaps its tables (checkpoint included) into place atomically for readers.
//!
//! [`ReadModelDb`] is where MySQL and SQLite differ; everything else is written
//! once for both.

pub mod anchors;
mod db;
mod decode;
mod error;
mod metrics;
mod projection;
mod projections;
pub mod queries;
mod rebuild;
mod runner;
mod sql;

pub use db::{Dialect, ReadModelDb, Readable, Tx, Value};
pub use decode::{Decoder, Fact, Payload};
pub use error::ProjectionError;
pub use projection::{Checkpoint, Projection};
pub use projections::{
    AccessLogProjection, AccessProjection, AccountDirectory, BlindIndex, DashboardProjection, DiagnosisProjection, FederatedProjection,
    PatientDirectory, RecordIndex, SearchIndex, SecurityProjection, all, checkpoints,
};
pub use rebuild::rebuild;
pub use runner::{Lag, Projector, lag, lags, run_every_projection, wait_for};
