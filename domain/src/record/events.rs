use chrono::NaiveDate;
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::diagnosis::{Finding, ModelRef, ReviewOutcome};
use crate::ids::{AttachmentId, HospitalId, PatientId, RecordId, SuggestionId, UserId};
use crate::phi::Phi;
use crate::values::{ContentId, DicomSummary, MimeType, RecordContent, RecordType, Sha256Digest, ShortText};

/// What happened to a medical record.
///
/// Ids, record type, visit date and attachment sizes stay readable (dashboards and
/// audits need them); everything clinical is [`Phi`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum RecordEvent {
    /// Version 1 of the record was created. Schema 2.0; see
    /// [`crate::upcasting`] for 1.0.
    RecordCreated {
        /// The record.
        record_id: RecordId,
        /// Its patient.
        patient_id: PatientId,
        /// Responsible doctor.
        doctor_id: UserId,
        /// Hospital of the visit.
        hospital_id: HospitalId,
        /// Kind of record.
        record_type: RecordType,
        /// Date of the visit.
        visit_date: NaiveDate,
        /// Content of version 1 (PHI).
        content: Phi<RecordContent>,
    },
    /// A new version replaced the content.
    RecordAmended {
        /// The new version number (2, 3, …).
        version: u32,
        /// Its content (PHI).
        content: Phi<RecordContent>,
        /// Why it changed (PHI: reasons quote clinical facts).
        reason: Phi<ShortText>,
    },
    /// A file was attached.
    AttachmentAdded {
        /// The attachment.
        attachment_id: AttachmentId,
        /// Content id of the encrypted blob.
        content_id: ContentId,
        /// MIME type of the plaintext.
        mime_type: MimeType,
        /// Plaintext size in bytes.
        size_bytes: u64,
        /// Plaintext SHA-256.
        sha256: Sha256Digest,
        /// Original file name (PHI).
        filename: Phi<ShortText>,
        /// DICOM metadata (absent for other files, and in events written before it was kept).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dicom: Option<DicomSummary>,
    },
    /// The record was soft-deleted.
    RecordDeleted {
        /// Why (PHI).
        reason: Phi<ShortText>,
    },
    /// The record was restored.
    RecordRestored {
        /// Why (PHI).
        reason: Phi<ShortText>,
    },
    /// A model read one of the record's attachments and suggested a diagnosis
    /// ("AI-assisted, requires physician review").
    DiagnosisSuggested {
        /// The suggestion.
        suggestion_id: SuggestionId,
        /// The attachment read.
        attachment_id: AttachmentId,
        /// SHA-256 of the bytes read (the attachment's).
        input_sha256: Sha256Digest,
        /// The exact model.
        model: ModelRef,
        /// How the input was prepared.
        preprocessing: serde_json::Value,
        /// Every class probability and the top class or inconclusive (PHI).
        finding: Phi<Finding>,
        /// [`crate::diagnosis::REVIEW_NOTICE`].
        notice: String,
        /// The explanation image, an attachment of the record.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        explanation: Option<AttachmentId>,
    },
    /// A physician reviewed a suggestion.
    DiagnosisReviewed {
        /// The suggestion.
        suggestion_id: SuggestionId,
        /// The physician.
        reviewer_id: UserId,
        /// Accepted, rejected or corrected (readable: it measures the model).
        outcome: ReviewOutcome,
        /// The right answer, when corrected (PHI).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        correction: Option<Phi<ShortText>>,
        /// A remark (PHI).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<Phi<ShortText>>,
    },
}

impl RecordEvent {
    /// Current schema version of `RecordCreated`.
    pub const RECORD_CREATED_VERSION: &'static str = "2.0";
}

impl DomainEvent for RecordEvent {
    fn event_type(&self) -> String {
        match self {
            Self::RecordCreated { .. } => "RecordCreated",
            Self::RecordAmended { .. } => "RecordAmended",
            Self::AttachmentAdded { .. } => "AttachmentAdded",
            Self::RecordDeleted { .. } => "RecordDeleted",
            Self::RecordRestored { .. } => "RecordRestored",
            Self::DiagnosisSuggested { .. } => "DiagnosisSuggested",
            Self::DiagnosisReviewed { .. } => "DiagnosisReviewed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        match self {
            Self::RecordCreated { .. } => Self::RECORD_CREATED_VERSION,
            _ => "1.0",
        }
        .to_owned()
    }
}
