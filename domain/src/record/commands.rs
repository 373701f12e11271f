use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::diagnosis::{Review, Suggestion};
use crate::ids::{AttachmentId, HospitalId, PatientId, RecordId, UserId};
use crate::values::{ContentId, DicomSummary, MimeType, RecordContent, RecordType, Sha256Digest, ShortText};

/// An attachment as described by the blob store after upload.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentDescriptor {
    /// The attachment's id.
    pub attachment_id: AttachmentId,
    /// Content id of the encrypted blob.
    pub content_id: ContentId,
    /// MIME type of the plaintext.
    pub mime_type: MimeType,
    /// Size of the plaintext in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the plaintext.
    pub sha256: Sha256Digest,
    /// Original file name (PHI: names often carry the patient's).
    pub filename: ShortText,
    /// DICOM metadata, for DICOM files whose header could be read.
    #[serde(default)]
    pub dicom: Option<DicomSummary>,
}

/// What may be asked of a medical record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RecordCommand {
    /// Create the record.
    Create {
        /// The new record's id (also the aggregate id).
        record_id: RecordId,
        /// The patient it belongs to, for good.
        patient_id: PatientId,
        /// The responsible doctor.
        doctor_id: UserId,
        /// Where the visit took place.
        hospital_id: HospitalId,
        /// Kind of record.
        record_type: RecordType,
        /// Date of the visit.
        visit_date: NaiveDate,
        /// First version of the content.
        content: RecordContent,
    },
    /// Replace the content with a new version.
    Amend {
        /// The new content.
        content: RecordContent,
        /// Why it changed (mandatory).
        reason: ShortText,
    },
    /// Attach an uploaded file.
    AddAttachment(AttachmentDescriptor),
    /// Soft-delete the record.
    Delete {
        /// Why.
        reason: ShortText,
    },
    /// Undo a soft delete.
    Restore {
        /// Why.
        reason: ShortText,
    },
    /// Record a model's suggestion on one of the record's attachments.
    SuggestDiagnosis(Suggestion),
    /// Record a physician's review of a suggestion.
    ReviewDiagnosis(Review),
}

impl RecordCommand {
    /// The command's name, as metrics and logs label it (never its content).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create_record",
            Self::Amend { .. } => "amend_record",
            Self::AddAttachment(_) => "add_attachment",
            Self::Delete { .. } => "delete_record",
            Self::Restore { .. } => "restore_record",
            Self::SuggestDiagnosis(_) => "suggest_diagnosis",
            Self::ReviewDiagnosis(_) => "review_diagnosis",
        }
    }
}
