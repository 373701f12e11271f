//! A suggestion as the record keeps it, and a physician's review of it.

use serde::{Deserialize, Serialize};

use super::card::ModelCard;
use super::classification::{ClassProbability, Classification};
use crate::ids::{AttachmentId, SuggestionId, UserId};
use crate::values::{Sha256Digest, ShortText};

/// The exact model a suggestion was made with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRef {
    /// The model's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// SHA-256 of its artifact.
    pub sha256: Sha256Digest,
}

impl ModelCard {
    /// The reference a suggestion records.
    pub fn reference(&self) -> ModelRef {
        ModelRef { name: self.name.clone(), version: self.version.clone(), sha256: self.sha256 }
    }
}

/// What the model found: clinical, so sealed as PHI in the event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Every class, in the model's label order.
    pub probabilities: Vec<ClassProbability>,
    /// The top class, or `None`: inconclusive.
    pub top: Option<String>,
    /// The highest probability.
    pub confidence: f32,
}

impl From<Classification> for Finding {
    fn from(c: Classification) -> Self {
        Self { probabilities: c.probabilities, top: c.top, confidence: c.confidence }
    }
}

/// A model's suggestion for one attachment of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// The suggestion's id.
    pub suggestion_id: SuggestionId,
    /// The attachment it reads.
    pub attachment_id: AttachmentId,
    /// SHA-256 of the bytes the model read: must be the attachment's.
    pub input_sha256: Sha256Digest,
    /// The model.
    pub model: ModelRef,
    /// How the input was prepared, as the pipeline recorded it (source, frame,
    /// VOI, resize filter, input contract).
    pub preprocessing: serde_json::Value,
    /// What the model found.
    pub finding: Finding,
    /// The image showing which regions moved the model (an attachment of the
    /// same record, sealed like any other).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<AttachmentId>,
}

/// A physician's verdict on a suggestion.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewOutcome {
    /// The top class is right.
    Accepted,
    /// The suggestion is wrong and no class of the model fits.
    Rejected,
    /// The right answer is another: the review carries it.
    Corrected,
}

/// A physician's review of a suggestion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// The suggestion reviewed.
    pub suggestion_id: SuggestionId,
    /// The reviewing physician.
    pub reviewer_id: UserId,
    /// The verdict.
    pub outcome: ReviewOutcome,
    /// The right answer, for [`ReviewOutcome::Corrected`] only.
    pub correction: Option<ShortText>,
    /// A remark.
    pub note: Option<ShortText>,
}
