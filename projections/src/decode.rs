//! From stored events to typed facts, PHI left sealed.

use cqrs_es::persist::EventUpcaster;
use emr_domain::account::{Account, AccountEvent};
use emr_domain::authentication::{Session, SessionEvent, SignInAttempt, SignInEvent};
use emr_domain::denial::{AccessDenial, DenialEvent};
use emr_domain::diagnosis::{DiagnosticModel, ModelEvent};
use emr_domain::disclosure::{Disclosure, DisclosureEvent};
use emr_domain::federated::{FederatedTask, TaskEvent};
use emr_domain::grant::{AccessGrant, GrantEvent};
use emr_domain::metadata::EventMetadata;
use emr_domain::patient::{Patient, PatientEvent};
use emr_domain::record::{MedicalRecord, RecordEvent};
use emr_domain::security::{SecurityEvent, SecurityIncident};
use emr_domain::upcasting::EventSchema;
use emr_eventstore::{CodecError, RecordedEvent};

/// A decoded event of a known aggregate type.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A patient event.
    Patient(PatientEvent),
    /// A medical-record event.
    Record(RecordEvent),
    /// An access-grant event.
    Grant(GrantEvent),
    /// A PHI disclosure or break-glass event.
    Disclosure(DisclosureEvent),
    /// An account event.
    Account(AccountEvent),
    /// A security detection or its triage.
    Security(SecurityEvent),
    /// A password step.
    SignIn(SignInEvent),
    /// A session opened or refreshed.
    Session(SessionEvent),
    /// A refused access.
    Denial(DenialEvent),
    /// A federated-learning task's step.
    Federated(TaskEvent),
    /// A step of a diagnostic model through the registry.
    Model(ModelEvent),
}

/// One event with its envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    /// Aggregate id.
    pub aggregate_id: String,
    /// Per-aggregate sequence.
    pub sequence: u64,
    /// Envelope (event id, time, actor, position …).
    pub metadata: EventMetadata,
    /// The event.
    pub payload: Payload,
}

/// Decodes events of the aggregate types this build knows, with their upcasters.
pub struct Decoder {
    patient: Vec<Box<dyn EventUpcaster>>,
    record: Vec<Box<dyn EventUpcaster>>,
    grant: Vec<Box<dyn EventUpcaster>>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self { patient: Patient::upcasters(), record: MedicalRecord::upcasters(), grant: AccessGrant::upcasters() }
    }
}

impl Decoder {
    /// The typed fact, or `None` for an aggregate type this build does not project.
    pub fn decode(&self, event: &RecordedEvent) -> Result<Option<Fact>, CodecError> {
        let payload = match event.key.aggregate_type() {
            <Patient as cqrs_es::Aggregate>::TYPE => Payload::Patient(event.decode::<Patient>(&self.patient)?),
            <MedicalRecord as cqrs_es::Aggregate>::TYPE => Payload::Record(event.decode::<MedicalRecord>(&self.record)?),
            <AccessGrant as cqrs_es::Aggregate>::TYPE => Payload::Grant(event.decode::<AccessGrant>(&self.grant)?),
            <Disclosure as cqrs_es::Aggregate>::TYPE => Payload::Disclosure(event.decode::<Disclosure>(&[])?),
            <Account as cqrs_es::Aggregate>::TYPE => Payload::Account(event.decode::<Account>(&[])?),
            <SecurityIncident as cqrs_es::Aggregate>::TYPE => Payload::Security(event.decode::<SecurityIncident>(&[])?),
            <SignInAttempt as cqrs_es::Aggregate>::TYPE => Payload::SignIn(event.decode::<SignInAttempt>(&[])?),
            <Session as cqrs_es::Aggregate>::TYPE => Payload::Session(event.decode::<Session>(&[])?),
            <AccessDenial as cqrs_es::Aggregate>::TYPE => Payload::Denial(event.decode::<AccessDenial>(&[])?),
            <FederatedTask as cqrs_es::Aggregate>::TYPE => Payload::Federated(event.decode::<FederatedTask>(&[])?),
            <DiagnosticModel as cqrs_es::Aggregate>::TYPE => Payload::Model(event.decode::<DiagnosticModel>(&[])?),
            _ => return Ok(None),
        };
        Ok(Some(Fact {
            aggregate_id: event.key.aggregate_id().to_owned(),
            sequence: event.sequence,
            metadata: event.metadata.clone(),
            payload,
        }))
    }
}
