//! [`Clinic`]: commands on patients, records and grants, with the rules that span them.

use std::sync::Arc;

use cqrs_es::Aggregate;
use emr_domain::DomainServices;
use emr_domain::grant::{AccessGrant, GrantCommand, GrantError};
use emr_domain::ids::{GrantId, PatientId, RecordId};
use emr_domain::metadata::CommandContext;
use emr_domain::patient::{Patient, PatientCommand, PatientError, PatientStatus};
use emr_domain::record::{MedicalRecord, RecordCommand, RecordError};
use emr_domain::upcasting::EventSchema;
use emr_eventstore::{
    AggregateKey, Cutoff, EmrAggregateContext, EmrEventStore, EventStorePorts, ExecuteError, KeyVault, LogReader, PhiCodec, RecordedEvent,
    StoreConfig, StoreError,
};

use crate::receipt::Receipt;

/// Why a command was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ClinicError {
    /// A patient rule refused it.
    #[error(transparent)]
    Patient(#[from] PatientError),
    /// A record rule refused it.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A grant rule refused it.
    #[error(transparent)]
    Grant(#[from] GrantError),
    /// A record or grant for a patient who is not registered, or was erased.
    #[error("patient {patient_id} is not an active patient")]
    PatientNotActive {
        /// The patient named by the command.
        patient_id: PatientId,
    },
    /// A creation command sent to another aggregate than the id it creates.
    #[error("the command creates {in_command} but was sent to {target}")]
    IdMismatch {
        /// Id in the command.
        in_command: String,
        /// Id it was sent to.
        target: String,
    },
    /// The store failed; [`ClinicError::is_retryable`] says whether to retry.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ClinicError {
    /// True when the same command (same id) may succeed if sent again: a
    /// concurrent write won the race, or a backend was briefly unavailable.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Store(error) if error.is_retryable())
    }
}

fn from_execute<E: std::error::Error>(error: ExecuteError<E>) -> ClinicError
where
    ClinicError: From<E>,
{
    match error {
        ExecuteError::Rejected(rule) => rule.into(),
        ExecuteError::Store(store) => store.into(),
    }
}

/// Runs clinical commands.
#[derive(Clone)]
pub struct Clinic {
    patients: EmrEventStore<Patient>,
    records: EmrEventStore<MedicalRecord>,
    grants: EmrEventStore<AccessGrant>,
    reader: LogReader,
    services: DomainServices,
}

impl Clinic {
    /// A clinic over a backend's ports.
    pub fn new(ports: EventStorePorts, config: StoreConfig, services: DomainServices) -> Self {
        let phi = Arc::new(PhiCodec::new(Arc::new(KeyVault::new(ports.kek, ports.keys))));
        Self {
            patients: EmrEventStore::new(ports.log.clone(), phi.clone(), Some(ports.snapshots.clone()), config),
            records: EmrEventStore::new(ports.log.clone(), phi.clone(), Some(ports.snapshots.clone()), config),
            grants: EmrEventStore::new(ports.log.clone(), phi, Some(ports.snapshots.clone()), config),
            reader: LogReader::new(ports.log.clone()),
            services,
        }
    }

    /// Reads the global log (PHI sealed).
    pub fn log(&self) -> &LogReader {
        &self.reader
    }

    async fn run<A>(
        &self,
        store: &EmrEventStore<A>,
        id: String,
        command: A::Command,
        context: &CommandContext,
    ) -> Result<Receipt, ClinicError>
    where
        A: Aggregate<Services = DomainServices> + EventSchema + Clone,
        ClinicError: From<A::Error>,
    {
        let executed = store.execute(&id, command, &self.services, context).await.map_err(from_execute)?;
        Ok(Receipt::of(&id, executed))
    }

    async fn ensure_active_patient(&self, patient_id: PatientId) -> Result<(), ClinicError> {
        let patient = self.patients.load(&patient_id.to_string()).await?;
        if patient.state().status() == PatientStatus::Active { Ok(()) } else { Err(ClinicError::PatientNotActive { patient_id }) }
    }

    fn ensure_same(in_command: impl ToString, target: impl ToString) -> Result<(), ClinicError> {
        let (in_command, target) = (in_command.to_string(), target.to_string());
        if in_command == target { Ok(()) } else { Err(ClinicError::IdMismatch { in_command, target }) }
    }

    /// A command on a patient. Erasure destroys the patient's data key first, so
    /// that no failure can leave PHI readable after an accepted erasure.
    pub async fn patient(&self, patient_id: PatientId, command: PatientCommand, context: &CommandContext) -> Result<Receipt, ClinicError> {
        let id = patient_id.to_string();
        match &command {
            PatientCommand::Register { patient_id: created, .. } => Self::ensure_same(created, patient_id)?,
            PatientCommand::Erase { .. } => {
                let loaded = self.patients.load(&id).await?;
                if loaded.commit_of(context.command_id).is_none() {
                    loaded.state().decide(command.clone(), self.services.now())?;
                    self.patients.phi().vault().destroy(patient_id).await.map_err(StoreError::from)?;
                }
                let receipt = self.run(&self.patients, id, command, context).await;
                self.forget_subject(patient_id);
                return receipt;
            }
            PatientCommand::UpdateDemographics { .. } => {}
        }
        self.run(&self.patients, id, command, context).await
    }

    fn forget_subject(&self, patient_id: PatientId) {
        self.patients.forget_subject(patient_id);
        self.records.forget_subject(patient_id);
        self.grants.forget_subject(patient_id);
    }

    /// A command on a medical record.
    pub async fn record(&self, record_id: RecordId, command: RecordCommand, context: &CommandContext) -> Result<Receipt, ClinicError> {
        if let RecordCommand::Create { record_id: created, patient_id, .. } = &command {
            Self::ensure_same(created, record_id)?;
            self.ensure_active_patient(*patient_id).await?;
        }
        self.run(&self.records, record_id.to_string(), command, context).await
    }

    /// A command on an access grant or request.
    pub async fn grant(&self, grant_id: GrantId, command: GrantCommand, context: &CommandContext) -> Result<Receipt, ClinicError> {
        match &command {
            GrantCommand::Grant { grant_id: created, patient_id, .. } | GrantCommand::Request { grant_id: created, patient_id, .. } => {
                Self::ensure_same(created, grant_id)?;
                self.ensure_active_patient(*patient_id).await?;
            }
            _ => {}
        }
        self.run(&self.grants, grant_id.to_string(), command, context).await
    }

    /// A patient as of now.
    pub async fn load_patient(&self, patient_id: PatientId) -> Result<EmrAggregateContext<Patient>, ClinicError> {
        Ok(self.patients.load(&patient_id.to_string()).await?)
    }

    /// A record as of now.
    pub async fn load_record(&self, record_id: RecordId) -> Result<EmrAggregateContext<MedicalRecord>, ClinicError> {
        Ok(self.records.load(&record_id.to_string()).await?)
    }

    /// A record as it was at `cutoff` (point-in-time replay).
    pub async fn record_as_of(&self, record_id: RecordId, cutoff: Cutoff) -> Result<EmrAggregateContext<MedicalRecord>, ClinicError> {
        Ok(self.records.load_as_of(&record_id.to_string(), cutoff).await?)
    }

    /// A patient as they were at `cutoff`.
    pub async fn patient_as_of(&self, patient_id: PatientId, cutoff: Cutoff) -> Result<EmrAggregateContext<Patient>, ClinicError> {
        Ok(self.patients.load_as_of(&patient_id.to_string(), cutoff).await?)
    }

    /// The history of any aggregate (`patient`, `medical_record`, `access_grant`), PHI sealed.
    pub async fn history(&self, aggregate_type: &str, aggregate_id: &str) -> Result<Vec<RecordedEvent>, ClinicError> {
        let key = AggregateKey::new(aggregate_type, aggregate_id).map_err(StoreError::from)?;
        Ok(self.reader.history(&key).await?)
    }

    /// A grant as of now.
    pub async fn load_grant(&self, grant_id: GrantId) -> Result<EmrAggregateContext<AccessGrant>, ClinicError> {
        Ok(self.grants.load(&grant_id.to_string()).await?)
    }
}
