use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::commands::PatientCommand;
use super::events::{PatientEvent, RestrictionGround};
use crate::clock::DomainServices;
use crate::decided::write_decided;
use crate::ids::{HospitalId, PatientId};
use crate::phi::Phi;
use crate::values::{Demographics, InvalidValue, PatientIdentifiers, ShortText};

/// Why a patient command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatientError {
    /// Register on an existing patient.
    #[error("the patient is already registered")]
    AlreadyRegistered,
    /// Any command but Register on a patient that does not exist.
    #[error("the patient is not registered")]
    NotRegistered,
    /// Any command on an erased patient.
    #[error("the patient was erased")]
    Erased,
    /// A date of birth after today.
    #[error("the date of birth lies in the future")]
    BirthDateInFuture,
    /// A field failed its cross-field rules.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// Erasure while a legal hold stands.
    #[error("the patient is under legal hold ({}); release the hold before erasing", reference.as_str())]
    UnderLegalHold {
        /// The first hold that stands.
        reference: ShortText,
    },
    /// Lifting a restriction that is not in place.
    #[error("processing of this patient's data is not restricted")]
    NotRestricted,
    /// Releasing a hold that was never placed (or already released).
    #[error("no legal hold {} stands on this patient", reference.as_str())]
    NoSuchLegalHold {
        /// The reference given.
        reference: ShortText,
    },
}

/// Lifecycle of a patient.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatientStatus {
    /// Not registered yet.
    #[default]
    Unregistered,
    /// Registered and active.
    Active,
    /// Erased: terminal.
    Erased,
}

/// A patient.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Patient {
    patient_id: Option<PatientId>,
    hospital_id: Option<HospitalId>,
    identifiers: Option<Phi<PatientIdentifiers>>,
    demographics: Option<Phi<Demographics>>,
    status: PatientStatus,
    #[serde(default)]
    restriction: Option<RestrictionGround>,
    #[serde(default)]
    legal_holds: Vec<ShortText>,
}

impl Patient {
    /// The patient's id, once registered.
    pub fn id(&self) -> Option<PatientId> {
        self.patient_id
    }

    /// Lifecycle status.
    pub fn status(&self) -> PatientStatus {
        self.status
    }

    /// The registering hospital.
    pub fn hospital_id(&self) -> Option<&HospitalId> {
        self.hospital_id.as_ref()
    }

    /// Demographics, unless never registered (shredded after erasure).
    pub fn demographics(&self) -> Option<&Phi<Demographics>> {
        self.demographics.as_ref()
    }

    /// Identifiers, unless never registered (shredded after erasure).
    pub fn identifiers(&self) -> Option<&Phi<PatientIdentifiers>> {
        self.identifiers.as_ref()
    }

    /// The ground processing is restricted on (GDPR Art. 18), if it is.
    pub fn restriction(&self) -> Option<RestrictionGround> {
        self.restriction
    }

    /// The legal holds that stand, by reference.
    pub fn legal_holds(&self) -> &[ShortText] {
        &self.legal_holds
    }

    /// The business rules: which events `command` produces, or why it is refused.
    pub fn decide(&self, command: PatientCommand, now: DateTime<Utc>) -> Result<Vec<PatientEvent>, PatientError> {
        let check_birth = |demographics: &Demographics| {
            if demographics.date_of_birth > now.date_naive() { Err(PatientError::BirthDateInFuture) } else { Ok(()) }
        };
        match (self.status, command) {
            (PatientStatus::Erased, _) => Err(PatientError::Erased),
            (PatientStatus::Active, PatientCommand::Register { .. }) => Err(PatientError::AlreadyRegistered),
            (PatientStatus::Unregistered, PatientCommand::Register { patient_id, hospital_id, identifiers, demographics }) => {
                identifiers.validate()?;
                check_birth(&demographics)?;
                Ok(vec![PatientEvent::PatientRegistered {
                    patient_id,
                    hospital_id,
                    identifiers: Phi::new(patient_id, identifiers),
                    demographics: Phi::new(patient_id, demographics),
                }])
            }
            (PatientStatus::Unregistered, _) => Err(PatientError::NotRegistered),
            (PatientStatus::Active, PatientCommand::UpdateDemographics { demographics }) => {
                check_birth(&demographics)?;
                let subject = self.patient_id.ok_or(PatientError::NotRegistered)?;
                if self.demographics.as_ref().and_then(Phi::value) == Some(&demographics) {
                    return Ok(vec![]);
                }
                Ok(vec![PatientEvent::DemographicsUpdated { demographics: Phi::new(subject, demographics) }])
            }
            (PatientStatus::Active, PatientCommand::Erase { reason }) => match self.legal_holds.first() {
                Some(hold) => Err(PatientError::UnderLegalHold { reference: hold.clone() }),
                None => Ok(vec![PatientEvent::PatientErased { reason }]),
            },
            (PatientStatus::Active, PatientCommand::RestrictProcessing { ground }) => match self.restriction {
                Some(current) if current == ground => Ok(vec![]),
                _ => Ok(vec![PatientEvent::ProcessingRestricted { ground }]),
            },
            (PatientStatus::Active, PatientCommand::LiftRestriction) => match self.restriction {
                Some(_) => Ok(vec![PatientEvent::RestrictionLifted]),
                None => Err(PatientError::NotRestricted),
            },
            (PatientStatus::Active, PatientCommand::PlaceLegalHold { reference }) => match self.legal_holds.contains(&reference) {
                true => Ok(vec![]),
                false => Ok(vec![PatientEvent::LegalHoldPlaced { reference }]),
            },
            (PatientStatus::Active, PatientCommand::ReleaseLegalHold { reference }) => match self.legal_holds.contains(&reference) {
                true => Ok(vec![PatientEvent::LegalHoldReleased { reference }]),
                false => Err(PatientError::NoSuchLegalHold { reference }),
            },
        }
    }
}

impl Aggregate for Patient {
    const TYPE: &'static str = "patient";
    type Command = PatientCommand;
    type Event = PatientEvent;
    type Error = PatientError;
    type Services = DomainServices;

    async fn handle(&mut self, command: Self::Command, services: &Self::Services, sink: &EventSink<Self>) -> Result<(), Self::Error> {
        let decided = self.decide(command, services.now());
        write_decided(self, decided, sink).await
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            PatientEvent::PatientRegistered { patient_id, hospital_id, identifiers, demographics } => {
                self.patient_id = Some(patient_id);
                self.hospital_id = Some(hospital_id);
                self.identifiers = Some(identifiers);
                self.demographics = Some(demographics);
                self.status = PatientStatus::Active;
            }
            PatientEvent::DemographicsUpdated { demographics } => self.demographics = Some(demographics),
            PatientEvent::PatientErased { .. } => {
                if let Some(subject) = self.patient_id {
                    self.identifiers = Some(Phi::Shredded { subject });
                    self.demographics = Some(Phi::Shredded { subject });
                }
                self.status = PatientStatus::Erased;
            }
            PatientEvent::ProcessingRestricted { ground } => self.restriction = Some(ground),
            PatientEvent::RestrictionLifted => self.restriction = None,
            PatientEvent::LegalHoldPlaced { reference } => self.legal_holds.push(reference),
            PatientEvent::LegalHoldReleased { reference } => self.legal_holds.retain(|hold| *hold != reference),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{demographics, identifiers, now};
    use crate::patient::ErasureReason;
    use cqrs_es::test::TestFramework;

    type PatientTest = TestFramework<Patient>;

    fn register(patient_id: PatientId) -> PatientCommand {
        PatientCommand::Register {
            patient_id,
            hospital_id: HospitalId::parse("HOSP-001").unwrap(),
            identifiers: identifiers(),
            demographics: demographics("Wang Fang"),
        }
    }

    fn registered(patient_id: PatientId) -> PatientEvent {
        PatientEvent::PatientRegistered {
            patient_id,
            hospital_id: HospitalId::parse("HOSP-001").unwrap(),
            identifiers: Phi::new(patient_id, identifiers()),
            demographics: Phi::new(patient_id, demographics("Wang Fang")),
        }
    }

    #[test]
    fn registering_a_new_patient_seals_identifiers_and_demographics_as_their_phi() {
        let id = PatientId::new();
        PatientTest::with(DomainServices::fixed(now()))
            .given_no_previous_events()
            .when(register(id))
            .then_expect_events(vec![registered(id)]);
    }

    #[test]
    fn a_patient_cannot_be_registered_twice() {
        let id = PatientId::new();
        PatientTest::with(DomainServices::fixed(now()))
            .given(vec![registered(id)])
            .when(register(id))
            .then_expect_error(PatientError::AlreadyRegistered);
    }

    #[test]
    fn a_birth_date_in_the_future_is_refused() {
        let id = PatientId::new();
        let mut details = demographics("Wang Fang");
        details.date_of_birth = now().date_naive().succ_opt().unwrap();
        PatientTest::with(DomainServices::fixed(now()))
            .given(vec![registered(id)])
            .when(PatientCommand::UpdateDemographics { demographics: details })
            .then_expect_error(PatientError::BirthDateInFuture);
    }

    #[test]
    fn unchanged_demographics_produce_no_event() {
        let id = PatientId::new();
        PatientTest::with(DomainServices::fixed(now()))
            .given(vec![registered(id)])
            .when(PatientCommand::UpdateDemographics { demographics: demographics("Wang Fang") })
            .then_expect_events(vec![]);
    }

    #[test]
    fn an_unregistered_patient_cannot_be_updated_or_erased() {
        PatientTest::with(DomainServices::fixed(now()))
            .given_no_previous_events()
            .when(PatientCommand::Erase { reason: ErasureReason::PatientRequest })
            .then_expect_error(PatientError::NotRegistered);
    }

    #[test]
    fn an_erased_patient_refuses_every_command() {
        let id = PatientId::new();
        let erased = PatientEvent::PatientErased { reason: ErasureReason::PatientRequest };
        for command in [
            register(id),
            PatientCommand::UpdateDemographics { demographics: demographics("X") },
            PatientCommand::Erase { reason: ErasureReason::LegalOrder },
        ] {
            PatientTest::with(DomainServices::fixed(now()))
                .given(vec![registered(id), erased.clone()])
                .when(command)
                .then_expect_error(PatientError::Erased);
        }
    }

    fn hold(reference: &str) -> ShortText {
        ShortText::parse("reference", reference.to_owned()).unwrap()
    }

    #[test]
    fn erasure_is_refused_while_a_legal_hold_stands_and_allowed_once_it_is_released() {
        let id = PatientId::new();
        let placed = PatientEvent::LegalHoldPlaced { reference: hold("CASE-2026-17") };
        PatientTest::with(DomainServices::fixed(now()))
            .given(vec![registered(id), placed.clone()])
            .when(PatientCommand::Erase { reason: ErasureReason::PatientRequest })
            .then_expect_error(PatientError::UnderLegalHold { reference: hold("CASE-2026-17") });
        PatientTest::with(DomainServices::fixed(now()))
            .given(vec![registered(id), placed, PatientEvent::LegalHoldReleased { reference: hold("CASE-2026-17") }])
            .when(PatientCommand::Erase { reason: ErasureReason::PatientRequest })
            .then_expect_events(vec![PatientEvent::PatientErased { reason: ErasureReason::PatientRequest }]);
    }

    #[test]
    fn only_a_standing_hold_or_restriction_can_be_released_and_repeats_change_nothing() {
        let id = PatientId::new();
        PatientTest::with(DomainServices::fixed(now()))
            .given(vec![registered(id)])
            .when(PatientCommand::ReleaseLegalHold { reference: hold("CASE-1") })
            .then_expect_error(PatientError::NoSuchLegalHold { reference: hold("CASE-1") });
        PatientTest::with(DomainServices::fixed(now()))
            .given(vec![registered(id)])
            .when(PatientCommand::LiftRestriction)
            .then_expect_error(PatientError::NotRestricted);
        PatientTest::with(DomainServices::fixed(now()))
            .given(vec![registered(id), PatientEvent::LegalHoldPlaced { reference: hold("CASE-1") }])
            .when(PatientCommand::PlaceLegalHold { reference: hold("CASE-1") })
            .then_expect_events(vec![]);
        let restricted = PatientEvent::ProcessingRestricted { ground: RestrictionGround::AccuracyContested };
        PatientTest::with(DomainServices::fixed(now()))
            .given(vec![registered(id), restricted.clone()])
            .when(PatientCommand::RestrictProcessing { ground: RestrictionGround::AccuracyContested })
            .then_expect_events(vec![]);
        PatientTest::with(DomainServices::fixed(now()))
            .given(vec![registered(id), restricted])
            .when(PatientCommand::LiftRestriction)
            .then_expect_events(vec![PatientEvent::RestrictionLifted]);
    }

    #[test]
    fn erasure_shreds_the_phi_held_in_the_aggregate() {
        let id = PatientId::new();
        let mut patient = Patient::default();
        patient.apply(registered(id));
        patient.apply(PatientEvent::PatientErased { reason: ErasureReason::PatientRequest });
        assert!(patient.demographics().is_some_and(Phi::is_shredded));
        assert!(patient.identifiers().is_some_and(Phi::is_shredded));
    }
}
