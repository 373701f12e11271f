//! [`Clinic`]: commands on patients, records and grants, with the rules that span them.

use std::sync::Arc;

use cqrs_es::Aggregate;
use emr_domain::DomainServices;
use emr_domain::access::{self, Action, Basis, Denied, Facts};
use emr_domain::actor::{Actor, Role};
use emr_domain::denial::{AccessDenial, DenialAlreadyRecorded, RecordDenial};
use emr_domain::diagnosis::{DiagnosticModel, ModelCommand, ModelError};
use emr_domain::disclosure::{Disclose, Disclosure, DisclosureCommand, DisclosureError, Resource};
use emr_domain::grant::{AccessGrant, GrantCommand, GrantError, GrantStatus, Scope};
use emr_domain::ids::{AttachmentId, DenialId, DisclosureId, GrantId, ModelId, PatientId, RecordId, SecurityEventId, UserId};
use emr_domain::metadata::CommandContext;
use emr_domain::patient::{ErasureReason, Patient, PatientCommand, PatientError, PatientStatus};
use emr_domain::record::{AttachmentSummary, MedicalRecord, RecordCommand, RecordError, RecordStatus};
use emr_domain::retention::{RetainedRecord, RetentionError, RetentionSchedule};
use emr_domain::security::{SecurityCommand, SecurityError, SecurityIncident, TriageStatus};
use emr_domain::upcasting::EventSchema;
use emr_domain::values::ShortText;
use emr_eventstore::{
    AggregateKey, Cutoff, EmrAggregateContext, EmrEventStore, EventLog, EventStorePorts, ExecuteError, KeyVault, LogReader, RecordedEvent,
    StoreConfig, StoreError,
};
use tracing::Instrument;

use crate::grant_directory::GrantDirectory;
use crate::receipt::Receipt;

mod transaction;

pub use transaction::{Step, TransactionError};

/// An attachment read that authorization allowed and that is not yet recorded
/// (see [`Clinic::attachment_for_reading`]).
#[derive(Debug, Clone)]
pub struct AttachmentRead {
    actor: Actor,
    record_id: RecordId,
    patient_id: PatientId,
    attachment: AttachmentSummary,
    basis: Basis,
}

impl AttachmentRead {
    /// The attachment, as its record describes it.
    pub fn attachment(&self) -> &AttachmentSummary {
        &self.attachment
    }

    /// The patient whose key seals it.
    pub fn patient_id(&self) -> PatientId {
        self.patient_id
    }
}

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
    /// The disclosure of a read could not be recorded, so nothing was shown.
    #[error(transparent)]
    Disclosure(#[from] DisclosureError),
    /// A security-event rule refused a triage step.
    #[error(transparent)]
    Security(#[from] SecurityError),
    /// A model-registry rule refused it.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A retention rule refused an erasure.
    #[error(transparent)]
    Retention(#[from] RetentionError),
    /// An erasure under a retention schedule that did not come through
    /// [`Clinic::erase_patient`] (a caller's mistake, refused rather than risked).
    #[error("erasures must be checked against the retention schedule")]
    RetentionUnchecked,
    /// A refusal could not be recorded (its fresh id was taken: never expected).
    #[error(transparent)]
    Denial(#[from] DenialAlreadyRecorded),
    /// The actor may not do this (see [`emr_domain::access`]).
    #[error("forbidden: {0}")]
    Forbidden(#[from] Denied),
    /// A batch of creations held another command.
    #[error("a {kind} command in a batch of creations; send it on its own")]
    NotACreation {
        /// The command's kind.
        kind: &'static str,
    },
    /// The patient, record or grant does not exist.
    #[error("no such {what}")]
    NotFound {
        /// `patient`, `record` or `grant`.
        what: &'static str,
    },
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
    /// A transaction that cannot be one change (see [`Clinic::transaction`]).
    #[error("this transaction cannot be made one change: {reason}")]
    NotOneChange {
        /// What it asked for that a change cannot hold.
        reason: &'static str,
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

/// Whether an erasure's records were checked against the retention schedule.
#[derive(Debug, Clone, Copy)]
struct RetentionChecked(bool);

/// What an authorization is about, as far as the caller knows it; the clinic
/// looks up grants itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject {
    /// The patient whose data is touched.
    pub patient: Option<PatientId>,
    /// The record's author, for record actions.
    pub author: Option<UserId>,
    /// The grantee, for grant actions.
    pub grantee: Option<UserId>,
    /// An emergency reason was given (break-glass).
    pub break_glass: bool,
}

impl Subject {
    /// About one patient's data.
    pub fn patient(patient: PatientId) -> Self {
        Self { patient: Some(patient), ..Self::default() }
    }
}

/// An authorized read: the aggregate, the basis it was shown on, and the
/// disclosure that recorded it (none when no PHI was shown).
pub struct Read<A: Aggregate> {
    /// The aggregate as loaded.
    pub loaded: EmrAggregateContext<A>,
    /// Why it could be read; [`Basis::Redacted`] means PHI must be withheld.
    pub basis: Basis,
    /// The recorded disclosure.
    pub disclosure: Option<DisclosureId>,
}

/// Runs clinical commands and reads, each authorized by [`emr_domain::access`].
#[derive(Clone)]
pub struct Clinic {
    patients: EmrEventStore<Patient>,
    records: EmrEventStore<MedicalRecord>,
    grants: EmrEventStore<AccessGrant>,
    disclosures: EmrEventStore<Disclosure>,
    denials: EmrEventStore<AccessDenial>,
    incidents: EmrEventStore<SecurityIncident>,
    models: EmrEventStore<DiagnosticModel>,
    log: Arc<dyn EventLog>,
    reader: LogReader,
    directory: Arc<GrantDirectory>,
    retention: Arc<RetentionSchedule>,
    services: DomainServices,
}

impl Clinic {
    /// A clinic over a backend's ports.
    pub fn new(ports: EventStorePorts, config: StoreConfig, services: DomainServices) -> Self {
        let phi = ports.phi_codec();
        Self {
            patients: EmrEventStore::new(ports.log.clone(), phi.clone(), Some(ports.snapshots.clone()), config),
            records: EmrEventStore::new(ports.log.clone(), phi.clone(), Some(ports.snapshots.clone()), config),
            grants: EmrEventStore::new(ports.log.clone(), phi.clone(), Some(ports.snapshots.clone()), config),
            // One-event aggregates: nothing to cache or snapshot.
            disclosures: EmrEventStore::new(ports.log.clone(), phi.clone(), None, StoreConfig { cache_capacity: 0, ..config }),
            denials: EmrEventStore::new(ports.log.clone(), phi.clone(), None, StoreConfig { cache_capacity: 0, ..config }),
            incidents: EmrEventStore::new(ports.log.clone(), phi.clone(), None, StoreConfig { cache_capacity: 0, ..config }),
            models: EmrEventStore::new(ports.log.clone(), phi, None, config),
            log: ports.log.clone(),
            reader: LogReader::new(ports.log.clone()),
            directory: Arc::new(GrantDirectory::new(LogReader::new(ports.log.clone()))),
            retention: Arc::new(RetentionSchedule::default()),
            services,
        }
    }

    /// This clinic under `schedule`: erasures then go through [`Clinic::erase_patient`],
    /// which checks the patient's records against it.
    pub fn with_retention(mut self, schedule: RetentionSchedule) -> Self {
        self.retention = Arc::new(schedule);
        self
    }

    /// The retention schedule.
    pub fn retention(&self) -> &RetentionSchedule {
        &self.retention
    }

    /// Erases a patient whose records are `records` (all of them, as the caller
    /// found them with its read models caught up): refused while a legal retention
    /// duty applies to a patient's request, and before retention ends for a
    /// disposal; legal holds refuse either.
    pub async fn erase_patient(
        &self,
        patient_id: PatientId,
        reason: ErasureReason,
        records: &[RetainedRecord],
        context: &CommandContext,
    ) -> Result<Receipt, ClinicError> {
        self.authorize(&context.actor, Action::ErasePatient, Subject::patient(patient_id)).await?;
        self.retention.check_erasure(reason, records, self.services.now().date_naive())?;
        let command = PatientCommand::Erase { reason };
        let kind = command.kind();
        let span = Self::command_span(kind, "patient", context);
        let result = self.patient_command(patient_id, command, context, RetentionChecked(true)).instrument(span).await;
        crate::outcomes::observe(kind, &result);
        result
    }

    /// The practitioner who broke the glass explains it afterwards.
    pub async fn justify_break_glass(
        &self,
        disclosure_id: DisclosureId,
        justification: ShortText,
        context: &CommandContext,
    ) -> Result<Receipt, ClinicError> {
        let command = DisclosureCommand::Justify { by: context.actor.user_id, justification };
        let span = Self::command_span("JustifyBreakGlass", "disclosure", context);
        self.run(&self.disclosures, disclosure_id.to_string(), command, context).instrument(span).await
    }

    /// A command on a diagnostic model of the registry (administrators).
    pub async fn model(&self, model_id: ModelId, command: ModelCommand, context: &CommandContext) -> Result<Receipt, ClinicError> {
        self.authorize(&context.actor, Action::ManageModels, Subject::default()).await?;
        let span = Self::command_span("diagnostic_model", "diagnostic_model", context);
        self.run(&self.models, model_id.to_string(), command, context).instrument(span).await
    }

    /// A diagnostic model as the registry holds it (no PHI: anyone the caller
    /// lets through may see it; the diagnosis job checks that it serves).
    pub async fn diagnostic_model(&self, model_id: ModelId) -> Result<DiagnosticModel, ClinicError> {
        Ok(self.models.load(&model_id.to_string()).await?.state().clone())
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
        A::Command: Clone,
        ClinicError: From<A::Error>,
    {
        let executed = store.execute(&id, command, &self.services, context).await.map_err(ExecuteError::into_error::<ClinicError>)?;
        Ok(Receipt::of(&id, executed))
    }

    /// [`Self::run`] for a command that creates its aggregate: no read of the log
    /// when the id is new ([`EmrEventStore::execute_creation`]).
    async fn run_creation<A>(
        &self,
        store: &EmrEventStore<A>,
        id: String,
        command: A::Command,
        context: &CommandContext,
    ) -> Result<Receipt, ClinicError>
    where
        A: Aggregate<Services = DomainServices> + EventSchema + Clone,
        A::Command: Clone,
        ClinicError: From<A::Error>,
    {
        let executed =
            store.execute_creation(&id, command, &self.services, context).await.map_err(ExecuteError::into_error::<ClinicError>)?;
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

    /// Decides whether `actor` may perform `action` on `subject`, looking up an
    /// active grant when the policy asks for one. A refusal is recorded in the
    /// log (an `AccessDenied` event) before it is returned.
    pub async fn authorize(&self, actor: &Actor, action: Action, subject: Subject) -> Result<Basis, ClinicError> {
        let decided = self.decide_access(actor, action, subject).await;
        if let Err(ClinicError::Forbidden(reason)) = &decided {
            self.record_denial(actor, action, subject.patient, *reason).await?;
        }
        decided
    }

    async fn record_denial(&self, actor: &Actor, action: Action, patient_id: Option<PatientId>, reason: Denied) -> Result<(), ClinicError> {
        let denial_id = DenialId::new();
        let command = RecordDenial { denial_id, actor: *actor, action, patient_id, reason };
        self.denials
            .execute_creation(&denial_id.to_string(), command, &self.services, &CommandContext::new(*actor))
            .await
            .map_err(ExecuteError::into_error::<ClinicError>)?;
        Ok(())
    }

    async fn decide_access(&self, actor: &Actor, action: Action, subject: Subject) -> Result<Basis, ClinicError> {
        let rule = access::rule(actor.role, action);
        let facts = Facts { patient: subject.patient, author: subject.author, grantee: subject.grantee, grant: None, break_glass: false };
        if let Some(patient) = subject.patient
            && access::restrictable(action)
            && self.patients.load(&patient.to_string()).await?.state().restriction().is_some()
        {
            let facts = Facts { break_glass: subject.break_glass, ..facts };
            return Ok(access::under_restriction(rule, actor, action, &facts)?);
        }
        // The role, the actor's own record or their authorship need no grant
        // lookup; a grant is looked up only when they do not suffice, and
        // break-glass counts only when no grant was found.
        if let Ok(basis) = rule.evaluate(actor, action, &facts) {
            return Ok(basis);
        }
        let grant = match (rule.scope(), subject.patient) {
            (Some(scope), Some(patient)) => self.active_grant(patient, actor.user_id, scope).await?,
            _ => None,
        };
        Ok(rule.evaluate(actor, action, &Facts { grant, break_glass: subject.break_glass, ..facts })?)
    }

    /// An active, unexpired grant from `patient` to `user` with `scope`: decided on
    /// the grant aggregates themselves, so revocations apply at once.
    async fn active_grant(&self, patient: PatientId, user: UserId, scope: Scope) -> Result<Option<GrantId>, ClinicError> {
        let mut checked = std::collections::BTreeSet::new();
        for round in 0..2 {
            if round == 1 {
                self.directory.catch_up().await?;
            }
            for grant_id in self.directory.candidates(patient, user) {
                if !checked.insert(grant_id) {
                    continue;
                }
                let grant = self.grants.load(&grant_id.to_string()).await?;
                if grant.state().patient_id() == Some(patient) && grant.state().authorizes(user, scope, self.services.now()) {
                    return Ok(Some(grant_id));
                }
            }
        }
        Ok(None)
    }

    /// The span of one command: inside the caller's (the HTTP request's), or,
    /// from a caller without one, the root of its correlation's trace.
    fn command_span(command: &'static str, aggregate_type: &'static str, context: &CommandContext) -> tracing::Span {
        let outermost = tracing::Span::current().is_none();
        let span = tracing::info_span!("command", command, aggregate_type, correlation_id = %context.correlation_id);
        if outermost {
            emr_eventstore::trace::join_correlation(&span, context.correlation_id);
        }
        span
    }

    /// A command on a patient. Erasure destroys the patient's data key first, so
    /// that no failure can leave PHI readable after an accepted erasure.
    pub async fn patient(&self, patient_id: PatientId, command: PatientCommand, context: &CommandContext) -> Result<Receipt, ClinicError> {
        let kind = command.kind();
        let span = Self::command_span(kind, "patient", context);
        let result = self.patient_command(patient_id, command, context, RetentionChecked(false)).instrument(span).await;
        crate::outcomes::observe(kind, &result);
        result
    }

    async fn patient_command(
        &self,
        patient_id: PatientId,
        command: PatientCommand,
        context: &CommandContext,
        retention: RetentionChecked,
    ) -> Result<Receipt, ClinicError> {
        let id = patient_id.to_string();
        self.authorize(&context.actor, patient_action(&command), Subject::patient(patient_id)).await?;
        match &command {
            PatientCommand::Register { patient_id: created, .. } => {
                Self::ensure_same(created, patient_id)?;
                return self.run_creation(&self.patients, id, command, context).await;
            }
            PatientCommand::Erase { .. } => {
                if !retention.0 && !self.retention.is_empty() {
                    return Err(ClinicError::RetentionUnchecked);
                }
                let loaded = self.patients.load(&id).await?;
                if loaded.commit_of(context.command_id).is_none() {
                    loaded.state().decide(command.clone(), self.services.now())?;
                    self.patients.phi().vault().destroy(patient_id).await.map_err(StoreError::from)?;
                }
                let receipt = self.run(&self.patients, id, command, context).await;
                self.forget_subject(patient_id);
                return receipt;
            }
            PatientCommand::UpdateDemographics { .. }
            | PatientCommand::RestrictProcessing { .. }
            | PatientCommand::LiftRestriction
            | PatientCommand::PlaceLegalHold { .. }
            | PatientCommand::ReleaseLegalHold { .. } => {}
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
        let kind = command.kind();
        let span = Self::command_span(kind, "medical_record", context);
        let result = self.record_command(record_id, command, context).instrument(span).await;
        crate::outcomes::observe(kind, &result);
        result
    }

    async fn record_command(&self, record_id: RecordId, command: RecordCommand, context: &CommandContext) -> Result<Receipt, ClinicError> {
        let actor = &context.actor;
        if matches!(command, RecordCommand::Create { .. }) {
            self.creation_checks(record_id, &command, actor).await?;
            return self.run_creation(&self.records, record_id.to_string(), command, context).await;
        } else {
            let action = match &command {
                RecordCommand::SuggestDiagnosis(suggestion) => {
                    let model = &suggestion.model;
                    if !self.diagnostic_model(ModelId::for_artifact(&model.sha256)).await?.serves() {
                        return Err(ModelError::NotServing { name: model.name.clone(), version: model.version.clone() }.into());
                    }
                    Action::AmendRecord
                }
                RecordCommand::ReviewDiagnosis(review) if review.reviewer_id != actor.user_id => {
                    return Err(Denied::OnBehalfOfAnother.into());
                }
                other => record_action(other),
            };
            let subject = self.record_subject(record_id).await?;
            self.authorize(actor, action, subject).await?;
        }
        self.run(&self.records, record_id.to_string(), command, context).await
    }

    /// The most records one batch of [`Clinic::create_records`] should carry, as
    /// the HTTP and gRPC batch calls enforce it.
    pub const MAX_BATCH: usize = 1000;

    /// Creates records as one pipelined batch (a bulk import, a backlog after
    /// downtime): each is authorized and checked as [`Clinic::record`] checks a
    /// creation, the accepted ones go to the log together
    /// ([`EmrEventStore::execute_creations`]), and each answers on its own, in the
    /// order given. Each carries its own context (its own command id, so a retried
    /// batch applies each record once). A command other than a creation is refused.
    pub async fn create_records(&self, batch: Vec<(RecordId, RecordCommand, CommandContext)>) -> Vec<Result<Receipt, ClinicError>> {
        let span = tracing::info_span!("create_records", records = batch.len());
        async move {
            let kinds: Vec<&'static str> = batch.iter().map(|(_, command, _)| command.kind()).collect();
            let mut answers: Vec<Option<Result<Receipt, ClinicError>>> = batch.iter().map(|_| None).collect();
            let mut accepted = Vec::with_capacity(batch.len());
            for (index, (record_id, command, context)) in batch.into_iter().enumerate() {
                match self.creation_checks(record_id, &command, &context.actor).await {
                    Ok(()) => accepted.push((index, (record_id.to_string(), command, context))),
                    Err(refused) => answers[index] = Some(Err(refused)),
                }
            }
            let (indices, commands): (Vec<usize>, Vec<_>) = accepted.into_iter().unzip();
            let ids: Vec<String> = commands.iter().map(|(id, ..)| id.clone()).collect();
            let executed = self.records.execute_creations(commands, &self.services).await;
            for ((index, id), executed) in indices.into_iter().zip(ids).zip(executed) {
                answers[index] = Some(executed.map(|executed| Receipt::of(&id, executed)).map_err(ExecuteError::into_error::<ClinicError>));
            }
            let answers: Vec<_> = answers.into_iter().flatten().collect();
            for (kind, answer) in kinds.into_iter().zip(&answers) {
                crate::outcomes::observe(kind, answer);
            }
            answers
        }
        .instrument(span)
        .await
    }

    /// Everything a record's creation is checked against before it is decided.
    async fn creation_checks(&self, record_id: RecordId, command: &RecordCommand, actor: &Actor) -> Result<(), ClinicError> {
        let RecordCommand::Create { patient_id, .. } = command else {
            return Err(ClinicError::NotACreation { kind: command.kind() });
        };
        self.authorize_creation(record_id, command, actor).await?;
        self.ensure_active_patient(*patient_id).await
    }

    /// The checks of a record's creation that need no stored state: the id, the
    /// actor's permission, and that a practitioner writes in their own name.
    async fn authorize_creation(&self, record_id: RecordId, command: &RecordCommand, actor: &Actor) -> Result<(), ClinicError> {
        let RecordCommand::Create { record_id: created, patient_id, doctor_id, .. } = command else { return Ok(()) };
        Self::ensure_same(created, record_id)?;
        self.authorize(actor, Action::CreateRecord, Subject::patient(*patient_id)).await?;
        if matches!(actor.role, Role::Physician | Role::Nurse) && *doctor_id != actor.user_id {
            return Err(Denied::OnBehalfOfAnother.into());
        }
        Ok(())
    }

    /// An existing record, and what authorizing access to it needs.
    async fn existing_record(&self, record_id: RecordId) -> Result<(EmrAggregateContext<MedicalRecord>, Subject), ClinicError> {
        let loaded = self.records.load(&record_id.to_string()).await?;
        let subject = Self::subject_of(loaded.state())?;
        Ok((loaded, subject))
    }

    async fn record_subject(&self, record_id: RecordId) -> Result<Subject, ClinicError> {
        Ok(self.existing_record(record_id).await?.1)
    }

    /// What authorizing access to `record` needs; not found while it is absent.
    fn subject_of(record: &MedicalRecord) -> Result<Subject, ClinicError> {
        if record.status() == RecordStatus::Absent {
            return Err(ClinicError::NotFound { what: "record" });
        }
        Ok(Subject { patient: record.patient_id(), author: record.doctor_id(), ..Subject::default() })
    }

    fn attachment_of(record: &MedicalRecord, attachment_id: AttachmentId) -> Option<AttachmentSummary> {
        record.attachments().iter().find(|a| a.attachment_id == attachment_id).cloned()
    }

    async fn grant_subject(&self, grant_id: GrantId) -> Result<Subject, ClinicError> {
        let loaded = self.grants.load(&grant_id.to_string()).await?;
        let grant = loaded.state();
        if grant.status() == GrantStatus::Absent {
            return Err(ClinicError::NotFound { what: "grant" });
        }
        Ok(Subject { patient: grant.patient_id(), grantee: grant.grantee(), ..Subject::default() })
    }

    /// A security officer's triage step (acknowledge, assign, resolve); raising
    /// and responding belong to the detector, never to the API.
    pub async fn triage(&self, id: SecurityEventId, command: SecurityCommand, context: &CommandContext) -> Result<Receipt, ClinicError> {
        if matches!(command, SecurityCommand::Raise(_) | SecurityCommand::RecordResponse { .. }) {
            return Err(Denied::RoleNotPermitted { role: context.actor.role, action: Action::TriageSecurityEvents }.into());
        }
        self.authorize(&context.actor, Action::TriageSecurityEvents, Subject::default()).await?;
        if self.incidents.load(&id.to_string()).await?.state().status() == TriageStatus::Absent {
            return Err(ClinicError::NotFound { what: "security event" });
        }
        let span = Self::command_span("TriageSecurityEvent", "security_event", context);
        self.run(&self.incidents, id.to_string(), command, context).instrument(span).await
    }

    /// A command on an access grant or request.
    pub async fn grant(&self, grant_id: GrantId, command: GrantCommand, context: &CommandContext) -> Result<Receipt, ClinicError> {
        let kind = command.kind();
        let span = Self::command_span(kind, "access_grant", context);
        let result = self.grant_command(grant_id, command, context).instrument(span).await;
        crate::outcomes::observe(kind, &result);
        result
    }

    async fn grant_command(&self, grant_id: GrantId, command: GrantCommand, context: &CommandContext) -> Result<Receipt, ClinicError> {
        let actor = &context.actor;
        match &command {
            GrantCommand::Grant { grant_id: created, patient_id, .. } | GrantCommand::Request { grant_id: created, patient_id, .. } => {
                Self::ensure_same(created, grant_id)?;
                let action = if matches!(command, GrantCommand::Grant { .. }) { Action::GrantAccess } else { Action::RequestAccess };
                self.authorize(actor, action, Subject::patient(*patient_id)).await?;
                self.ensure_active_patient(*patient_id).await?;
                return self.run_creation(&self.grants, grant_id.to_string(), command, context).await;
            }
            GrantCommand::Approve { .. } | GrantCommand::Deny { .. } => {
                self.authorize(actor, Action::DecideRequest, self.grant_subject(grant_id).await?).await?;
            }
            GrantCommand::Revoke { .. } => {
                self.authorize(actor, Action::RevokeGrant, self.grant_subject(grant_id).await?).await?;
            }
        }
        self.run(&self.grants, grant_id.to_string(), command, context).await
    }

    /// Records that `actor` was shown `resource` of `patient_id` on `basis`;
    /// nothing may be shown unless this succeeded.
    async fn disclose(
        &self,
        actor: &Actor,
        patient_id: PatientId,
        resource: Resource,
        basis: Basis,
        reason: Option<ShortText>,
    ) -> Result<Option<DisclosureId>, ClinicError> {
        if !access::discloses_phi(if resource == Resource::Patient { Action::ReadPatient } else { Action::ReadRecord }, basis) {
            return Ok(None);
        }
        let disclosure_id = DisclosureId::new();
        let reason = if basis == Basis::BreakGlass { reason } else { None };
        let command = DisclosureCommand::Disclose(Disclose { disclosure_id, patient_id, resource, accessor: *actor, basis, reason });
        let context = CommandContext::new(*actor);
        self.run_creation(&self.disclosures, disclosure_id.to_string(), command, &context).await?;
        Ok(Some(disclosure_id))
    }

    /// Reads a patient's demographics for `actor`, recording the disclosure.
    /// `break_glass` is an emergency reason for a practitioner without a grant.
    pub async fn read_patient(
        &self,
        actor: &Actor,
        patient_id: PatientId,
        break_glass: Option<ShortText>,
    ) -> Result<Read<Patient>, ClinicError> {
        let loaded = self.patients.load(&patient_id.to_string()).await?;
        if loaded.state().status() == PatientStatus::Unregistered {
            return Err(ClinicError::NotFound { what: "patient" });
        }
        let subject = Subject { break_glass: break_glass.is_some(), ..Subject::patient(patient_id) };
        let basis = self.authorize(actor, Action::ReadPatient, subject).await?;
        let disclosure = self.disclose(actor, patient_id, Resource::Patient, basis, break_glass).await?;
        Ok(Read { loaded, basis, disclosure })
    }

    /// Reads a record for `actor` as of now or as of `cutoff` (point-in-time
    /// replay), recording the disclosure.
    pub async fn read_record(
        &self,
        actor: &Actor,
        record_id: RecordId,
        cutoff: Option<Cutoff>,
        break_glass: Option<ShortText>,
    ) -> Result<Read<MedicalRecord>, ClinicError> {
        let (current, subject) = self.existing_record(record_id).await?;
        let subject = Subject { break_glass: break_glass.is_some(), ..subject };
        let basis = self.authorize(actor, Action::ReadRecord, subject).await?;
        let loaded = match cutoff {
            None => current,
            Some(cutoff) => self.records.load_as_of(&record_id.to_string(), cutoff).await?,
        };
        if loaded.state().status() == RecordStatus::Absent {
            return Err(ClinicError::NotFound { what: "record" });
        }
        let patient_id = subject.patient.ok_or(ClinicError::NotFound { what: "record" })?;
        let disclosure = self.disclose(actor, patient_id, Resource::Record { record_id }, basis, break_glass).await?;
        Ok(Read { loaded, basis, disclosure })
    }

    /// The patient whose key seals an attachment `actor` may add to `record_id`
    /// (authorized as an amendment of an open record), checked before any byte
    /// of the attachment is stored; and the attachment, if `attachment_id` was
    /// added before (a retried upload).
    pub async fn attachment_target(
        &self,
        actor: &Actor,
        record_id: RecordId,
        attachment_id: AttachmentId,
    ) -> Result<(PatientId, Option<AttachmentSummary>), ClinicError> {
        let (record, subject) = self.existing_record(record_id).await?;
        self.authorize(actor, Action::AmendRecord, subject).await?;
        if record.state().status() != RecordStatus::Active {
            return Err(RecordError::Deleted.into());
        }
        let patient_id = subject.patient.ok_or(ClinicError::NotFound { what: "record" })?;
        Ok((patient_id, Self::attachment_of(record.state(), attachment_id)))
    }

    /// An attachment `actor` may read, not yet disclosed: the caller checks what
    /// it must (the blob opens, the size suits it) and then records the read with
    /// [`Clinic::disclose_attachment`] before it shows a byte, so a read that
    /// never happened is never recorded as a disclosure.
    pub async fn attachment_for_reading(
        &self,
        actor: &Actor,
        record_id: RecordId,
        attachment_id: AttachmentId,
    ) -> Result<AttachmentRead, ClinicError> {
        let (record, subject) = self.existing_record(record_id).await?;
        let basis = self.authorize(actor, Action::ReadRecord, subject).await?;
        if basis == Basis::Redacted {
            return Err(Denied::RoleNotPermitted { role: actor.role, action: Action::ReadRecord }.into());
        }
        let attachment = Self::attachment_of(record.state(), attachment_id).ok_or(ClinicError::NotFound { what: "attachment" })?;
        let patient_id = subject.patient.ok_or(ClinicError::NotFound { what: "record" })?;
        Ok(AttachmentRead { actor: *actor, record_id, patient_id, attachment, basis })
    }

    /// Records an authorized attachment read as a disclosure (none for a basis
    /// that discloses no PHI).
    pub async fn disclose_attachment(&self, read: &AttachmentRead) -> Result<Option<DisclosureId>, ClinicError> {
        let resource = Resource::Attachment { record_id: read.record_id, attachment_id: read.attachment.attachment_id };
        self.disclose(&read.actor, read.patient_id, resource, read.basis, None).await
    }

    /// An attachment's facts (content id, size, digest; no PHI) for whoever may
    /// read the patient's record index; not a disclosure.
    pub async fn attachment_metadata(
        &self,
        actor: &Actor,
        record_id: RecordId,
        attachment_id: AttachmentId,
    ) -> Result<AttachmentSummary, ClinicError> {
        let (record, subject) = self.existing_record(record_id).await?;
        self.authorize(actor, Action::ReadRecordIndex, subject).await?;
        Self::attachment_of(record.state(), attachment_id).ok_or(ClinicError::NotFound { what: "attachment" })
    }

    /// The key service (attachment blobs are sealed with the patients' data keys).
    pub fn vault(&self) -> &Arc<KeyVault> {
        self.patients.phi().vault()
    }

    /// Reads a grant or request for `actor` (the patient, the grantee or an auditor).
    pub async fn read_grant(&self, actor: &Actor, grant_id: GrantId) -> Result<EmrAggregateContext<AccessGrant>, ClinicError> {
        self.authorize(actor, Action::ReadGrant, self.grant_subject(grant_id).await?).await?;
        Ok(self.grants.load(&grant_id.to_string()).await?)
    }

    /// A patient as of now, unauthorized: for trusted callers (CLI, workers, tests).
    pub async fn load_patient(&self, patient_id: PatientId) -> Result<EmrAggregateContext<Patient>, ClinicError> {
        Ok(self.patients.load(&patient_id.to_string()).await?)
    }

    /// A record as of now, unauthorized: for trusted callers.
    pub async fn load_record(&self, record_id: RecordId) -> Result<EmrAggregateContext<MedicalRecord>, ClinicError> {
        Ok(self.records.load(&record_id.to_string()).await?)
    }

    /// A record as it was at `cutoff` (point-in-time replay), unauthorized: for trusted callers.
    pub async fn record_as_of(&self, record_id: RecordId, cutoff: Cutoff) -> Result<EmrAggregateContext<MedicalRecord>, ClinicError> {
        Ok(self.records.load_as_of(&record_id.to_string(), cutoff).await?)
    }

    /// A patient as they were at `cutoff`, unauthorized: for trusted callers.
    pub async fn patient_as_of(&self, patient_id: PatientId, cutoff: Cutoff) -> Result<EmrAggregateContext<Patient>, ClinicError> {
        Ok(self.patients.load_as_of(&patient_id.to_string(), cutoff).await?)
    }

    /// The history of any aggregate (`patient`, `medical_record`, `access_grant`), PHI sealed.
    pub async fn history(&self, aggregate_type: &str, aggregate_id: &str) -> Result<Vec<RecordedEvent>, ClinicError> {
        let key = AggregateKey::new(aggregate_type, aggregate_id).map_err(StoreError::from)?;
        Ok(self.reader.history(&key).await?)
    }

    /// A grant as of now, unauthorized: for trusted callers.
    pub async fn load_grant(&self, grant_id: GrantId) -> Result<EmrAggregateContext<AccessGrant>, ClinicError> {
        Ok(self.grants.load(&grant_id.to_string()).await?)
    }
}

/// What a patient command asks permission for.
fn patient_action(command: &PatientCommand) -> Action {
    match command {
        PatientCommand::Register { .. } => Action::RegisterPatient,
        PatientCommand::UpdateDemographics { .. } => Action::UpdateDemographics,
        PatientCommand::Erase { .. } => Action::ErasePatient,
        PatientCommand::RestrictProcessing { .. } | PatientCommand::LiftRestriction => Action::RestrictProcessing,
        PatientCommand::PlaceLegalHold { .. } | PatientCommand::ReleaseLegalHold { .. } => Action::PlaceLegalHold,
    }
}

/// What a command on an existing record asks permission for.
fn record_action(command: &RecordCommand) -> Action {
    match command {
        RecordCommand::Delete { .. } | RecordCommand::Restore { .. } => Action::DeleteRecord,
        RecordCommand::ReviewDiagnosis(_) => Action::ReviewDiagnosis,
        _ => Action::AmendRecord,
    }
}
