//! What a diagnosis job is and where it stands. None of it is PHI: the finding
//! lives sealed on the record, the status names only ids.

use chrono::{DateTime, Utc};
use emr_domain::actor::Actor;
use emr_domain::ids::{AttachmentId, DiagnosisJobId, ModelId, RecordId, SuggestionId, UserId};
use serde::{Deserialize, Serialize};

/// What a clinician asked for: queued as the job's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosisRequest {
    /// The job.
    pub job_id: DiagnosisJobId,
    /// The record whose attachment is read.
    pub record_id: RecordId,
    /// The attachment (an image or a DICOM object).
    pub attachment_id: AttachmentId,
    /// The model to run; it must be active.
    pub model_id: ModelId,
    /// The DICOM frame to read (0 for single-frame objects and images).
    pub frame: u32,
    /// Whether to store an explanation image with the suggestion.
    pub explain: bool,
    /// Who asked: the job reads and records in their name, under their grants.
    pub requested_by: Actor,
    /// The business transaction the request belongs to.
    pub correlation_id: uuid::Uuid,
}

impl DiagnosisRequest {
    /// The suggestion the job records (the same on every attempt).
    pub fn suggestion_id(&self) -> SuggestionId {
        SuggestionId::from(self.derived("suggestion"))
    }

    /// The explanation image's attachment id (the same on every attempt).
    pub fn explanation_id(&self) -> AttachmentId {
        AttachmentId::from(self.derived("explanation"))
    }

    /// An id of this job's for `what`: a retried step repeats its command id,
    /// which makes it idempotent.
    pub(crate) fn derived(&self, what: &str) -> uuid::Uuid {
        uuid::Uuid::new_v5(&self.job_id.as_uuid(), what.as_bytes())
    }
}

/// The step a running job is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Reading (and opening) the attachment.
    Reading,
    /// Decoding the image and preparing the model's input.
    Decoding,
    /// Running the model.
    Classifying,
    /// Computing and storing the explanation image.
    Explaining,
    /// Recording the suggestion on the record.
    Recording,
}

/// Where a job stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker is on it.
    Running {
        /// Its step.
        stage: Stage,
    },
    /// The suggestion is on the record.
    Succeeded {
        /// The suggestion.
        suggestion_id: SuggestionId,
        /// The explanation image, when one was asked for.
        explanation: Option<AttachmentId>,
        /// The log position of the commit that recorded it (read your writes).
        position: Option<u64>,
    },
    /// The job ended without a suggestion.
    Failed {
        /// A stable code (`input-refused`, `undecodable`, `decode-timeout`, `forbidden`, …).
        code: String,
        /// What went wrong, for people.
        detail: String,
    },
    /// Cancelled by its requester before it recorded anything.
    Cancelled,
}

impl JobState {
    /// Whether the job has ended.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Succeeded { .. } | Self::Failed { .. } | Self::Cancelled)
    }

    /// The state's name, as a metric label.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running { .. } => "running",
            Self::Succeeded { .. } => "succeeded",
            Self::Failed { .. } => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// A job's status, as its requester polls it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    /// The job.
    pub job_id: DiagnosisJobId,
    /// The record.
    pub record_id: RecordId,
    /// The attachment read.
    pub attachment_id: AttachmentId,
    /// The model run.
    pub model_id: ModelId,
    /// Who asked.
    pub requested_by: UserId,
    /// When.
    pub requested_at: DateTime<Utc>,
    /// When the status last changed.
    pub updated_at: DateTime<Utc>,
    /// Deliveries to a worker so far.
    pub attempts: u64,
    /// The requester asked to cancel; a running job stops at its next step.
    pub cancel_requested: bool,
    /// Where it stands.
    #[serde(flatten)]
    pub state: JobState,
}

impl JobStatus {
    /// The status of a request just queued.
    pub fn queued(request: &DiagnosisRequest, now: DateTime<Utc>) -> Self {
        Self {
            job_id: request.job_id,
            record_id: request.record_id,
            attachment_id: request.attachment_id,
            model_id: request.model_id,
            requested_by: request.requested_by.user_id,
            requested_at: now,
            updated_at: now,
            attempts: 0,
            cancel_requested: false,
            state: JobState::Queued,
        }
    }
}
