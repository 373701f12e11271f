//! AI-assisted diagnosis, the pure part: what a model promises to accept (its
//! [`InputContract`]), who it is ([`ModelCard`]: version, hash, provenance,
//! labels) and how its output becomes a suggestion ([`Classification`]: every
//! class probability, and a top class only above the configured confidence).
//! [`DiagnosticModel`] is the registry's aggregate: an artifact registered,
//! validated, activated, retired. [`Suggestion`] and [`Review`] are what a
//! medical record keeps of a model's answer; the rules
//! a record applies to them live with the record ([`crate::record`]).
//!
//! Decoding images and running networks are heavy numerics; they live in
//! `commands/diagnosis/imaging` and `adapters/onnx`, and the pipeline that joins
//! them in `commands/diagnosis`. This module decides; it never computes a pixel.

mod card;
mod classification;
mod contract;
mod registry;
mod suggestion;

pub use card::{ModelCard, ModelSource};
pub use classification::{ClassProbability, Classification, InvalidOutput, REVIEW_NOTICE};
pub use contract::{Acquisition, Channels, InputContract, InputRefused, Layout, Normalisation};
pub use registry::{DiagnosticModel, ModelCommand, ModelError, ModelEvent, ModelStatus, Validation};
pub use suggestion::{Finding, ModelRef, Review, ReviewOutcome, Suggestion};
