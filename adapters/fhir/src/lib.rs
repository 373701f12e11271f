//! EMR Ledger's records as HL7 FHIR R4 (4.0.1) resources: the mapping behind the
//! `/fhir/r4` front door. Pure functions from the domain's aggregates to FHIR JSON;
//! the HTTP transport authorizes, records the disclosure and serves them.
//!
//! | EMR Ledger | FHIR | id |
//! | --- | --- | --- |
//! | patient (identifiers, demographics) | `Patient` | the patient id |
//! | medical record (its visit) | `Encounter` | the record id |
//! | the record's coded diagnosis | `Condition` (ICD-10) | the record id |
//! | the record's medications | `MedicationStatement` | `<record id>.<n>`, n from 1 |
//! | an AI-assisted suggestion on the record, with its review | `DiagnosticReport` | the suggestion id |
//! | access grant or request | `Consent` | the grant id |
//! | a disclosure in the access log | `AuditEvent` | the disclosure id |
//! | a resource version's author and ledger receipt | `Provenance` | `<aggregate id>-<version>` |
//!
//! `meta.versionId` is the aggregate's sequence (the number of its events), so
//! a client's `If-Match` can name the version it read.

mod bundle;
mod capability;
pub mod input;
mod outcome;
mod privacy;
mod resources;
pub mod scopes;
pub mod search;
#[cfg(feature = "validation")]
pub mod validation;

pub use bundle::{HistoryEntry, history, searchset, searchset_with};
pub use capability::{CapabilityStatement, FHIR_VERSION};
pub use outcome::{IssueType, operation_outcome};
pub use privacy::{ANCHORING_RECEIPT, Disclosure, Origin, audit_event, consent, provenance};
pub use resources::{
    MedicationRef, SHA_256_EXTENSION, condition, diagnostic_report, document_reference, encounter, medication_statement,
    medication_statements, patient, practitioner,
};

/// The media type of FHIR's JSON format.
pub const FHIR_JSON: &str = "application/fhir+json";
