use serde::{Deserialize, Serialize};

use super::events::{ErasureReason, RestrictionGround};
use crate::ids::{HospitalId, PatientId};
use crate::values::{Demographics, PatientIdentifiers, ShortText};

/// What may be asked of a patient aggregate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PatientCommand {
    /// Register a new patient at a hospital.
    Register {
        /// The new patient's id (also the aggregate id).
        patient_id: PatientId,
        /// The registering hospital.
        hospital_id: HospitalId,
        /// MRN and other identifiers.
        identifiers: PatientIdentifiers,
        /// Demographics.
        demographics: Demographics,
    },
    /// Replace the demographics.
    UpdateDemographics {
        /// The new demographics.
        demographics: Demographics,
    },
    /// Erase the patient: their data key is destroyed, their PHI becomes unreadable.
    Erase {
        /// Why.
        reason: ErasureReason,
    },
    /// Restrict processing (GDPR Art. 18): every read but the patient's own and
    /// a break-glass emergency is refused until lifted.
    RestrictProcessing {
        /// On which ground.
        ground: RestrictionGround,
    },
    /// Lift the restriction of processing.
    LiftRestriction,
    /// Place a legal hold: erasure is refused while it stands.
    PlaceLegalHold {
        /// The matter (a case or request number, not PHI).
        reference: ShortText,
    },
    /// Release a legal hold.
    ReleaseLegalHold {
        /// The matter it was placed for.
        reference: ShortText,
    },
}

impl PatientCommand {
    /// The command's name, as metrics and logs label it (never its content).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Register { .. } => "register_patient",
            Self::UpdateDemographics { .. } => "update_demographics",
            Self::Erase { .. } => "erase_patient",
            Self::RestrictProcessing { .. } => "restrict_processing",
            Self::LiftRestriction => "lift_restriction",
            Self::PlaceLegalHold { .. } => "place_legal_hold",
            Self::ReleaseLegalHold { .. } => "release_legal_hold",
        }
    }
}
