//! Value objects: every field a command carries is parsed into one of these at the
//! edge, so an aggregate never sees an empty title, a malformed ICD-10 code or a
//! negative dose.

mod clinical;
mod content;
mod person;
mod text;

pub use clinical::{Diagnosis, Dose, DoseUnit, Icd10Code, Medication, RecordContent, RecordType, Route};
pub use content::{ContentId, DicomSummary, MimeType, Sha256Digest};
pub use person::{Demographics, ExternalIdentifier, Gender, Mrn, PatientIdentifiers};
pub use text::{LongText, ShortText};

/// A value that does not satisfy its type's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {expected}")]
pub struct InvalidValue {
    /// The value object being parsed (stable, machine-readable).
    pub field: &'static str,
    /// What a valid value looks like.
    pub expected: &'static str,
}

impl InvalidValue {
    pub(crate) const fn new(field: &'static str, expected: &'static str) -> Self {
        Self { field, expected }
    }
}
