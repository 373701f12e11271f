use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::ids::{HospitalId, PatientId};
use crate::phi::Phi;
use crate::values::{Demographics, PatientIdentifiers, ShortText};

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

/// Why a patient restricted the processing of their data (GDPR Art. 18(1)).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestrictionGround {
    /// (a) The patient contests the accuracy of their data, while it is checked.
    AccuracyContested,
    /// (b) The processing is unlawful and the patient asks for restriction instead of erasure.
    UnlawfulProcessing,
    /// (c) The patient needs the data kept for a legal claim.
    LegalClaim,
    /// (d) The patient objected (Art. 21) and the objection is being weighed.
    ObjectionPending,
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
    /// Processing was restricted: only the patient and an emergency (break-glass) read.
    ProcessingRestricted {
        /// On which ground.
        ground: RestrictionGround,
    },
    /// The restriction of processing was lifted.
    RestrictionLifted,
    /// A legal hold was placed: the patient may not be erased while it stands.
    LegalHoldPlaced {
        /// The matter it is for (a case or request number, not PHI).
        reference: ShortText,
    },
    /// A legal hold was released.
    LegalHoldReleased {
        /// The matter it was for.
        reference: ShortText,
    },
}

impl DomainEvent for PatientEvent {
    fn event_type(&self) -> String {
        match self {
            Self::PatientRegistered { .. } => "PatientRegistered",
            Self::DemographicsUpdated { .. } => "DemographicsUpdated",
            Self::PatientErased { .. } => "PatientErased",
            Self::ProcessingRestricted { .. } => "ProcessingRestricted",
            Self::RestrictionLifted => "RestrictionLifted",
            Self::LegalHoldPlaced { .. } => "LegalHoldPlaced",
            Self::LegalHoldReleased { .. } => "LegalHoldReleased",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
