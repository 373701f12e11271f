use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::commands::PatientCommand;
use super::events::PatientEvent;
use crate::clock::DomainServices;
use crate::decided::write_decided;
use crate::ids::{HospitalId, PatientId};
use crate::phi::Phi;
use crate::values::{Demographics, InvalidValue, PatientIdentifiers};

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
            (PatientStatus::Active, PatientCommand::Erase { reason }) => Ok(vec![PatientEvent::PatientErased { reason }]),
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
