use serde::{Deserialize, Serialize};

use super::events::ErasureReason;
use crate::ids::{HospitalId, PatientId};
use crate::values::{Demographics, PatientIdentifiers};

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
}
