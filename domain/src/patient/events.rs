use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::ids::{HospitalId, PatientId};
use crate::phi::Phi;
use crate::values::{Demographics, PatientIdentifiers};

/// Why a patient was erased. Not free text: the reason is kept readable after erasure.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureReason {
    /// The patient exercised their right to erasure (GDPR Art. 17).
    PatientRequest,
    /// The retention period ended.
    RetentionExpired,
    /// A court or regulator ordered it.
    LegalOrder,
}

/// What happened to a patient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum PatientEvent {
    /// A patient was registered.
    PatientRegistered {
        /// The patient.
        patient_id: PatientId,
        /// The registering hospital.
        hospital_id: HospitalId,
        /// MRN and other identifiers (PHI).
        identifiers: Phi<PatientIdentifiers>,
        /// Demographics (PHI).
        demographics: Phi<Demographics>,
    },
    /// Demographics were replaced.
    DemographicsUpdated {
        /// The new demographics (PHI).
        demographics: Phi<Demographics>,
    },
    /// The patient was erased; their data key is destroyed.
    PatientErased {
        /// Why.
        reason: ErasureReason,
    },
}

impl DomainEvent for PatientEvent {
    fn event_type(&self) -> String {
        match self {
            Self::PatientRegistered { .. } => "PatientRegistered",
            Self::DemographicsUpdated { .. } => "DemographicsUpdated",
            Self::PatientErased { .. } => "PatientErased",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
