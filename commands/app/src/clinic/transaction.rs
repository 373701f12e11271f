//! Several commands as one change: every one of them is decided before any is
//! written, and their commits are appended together (all or none).
//!
//! The log keeps one subject per aggregate and cannot write several at once, so a
//! change may touch at most one aggregate that already exists (its commit goes
//! first and decides the change: a concurrent write there refuses it whole); the
//! others are created by it, under ids nobody else writes. Each aggregate appears
//! once — two steps on one aggregate would be decided on a state neither saw.

use std::collections::HashMap;

use cqrs_es::{Aggregate, AggregateContext};
use emr_domain::ids::{CommandId, PatientId, RecordId};
use emr_domain::metadata::CommandContext;
use emr_domain::patient::{Patient, PatientCommand, PatientStatus};
use emr_domain::record::{MedicalRecord, RecordCommand};
use emr_eventstore::{EmrAggregateContext, Executed, LogError, Prepared, StoreError};

use super::{Clinic, ClinicError, Subject, patient_action, record_action};
use crate::receipt::Receipt;

/// One command of a transaction, with the version it expects (`If-Match`).
#[derive(Debug, Clone)]
pub enum Step {
    /// Register a patient, or replace their demographics.
    Patient {
        /// The patient.
        patient_id: PatientId,
        /// `Register` or `UpdateDemographics`.
        command: PatientCommand,
        /// The patient's version the caller saw, if the step is conditional.
        expected_version: Option<u64>,
    },
    /// Create, amend or delete a record.
    Record {
        /// The record.
        record_id: RecordId,
        /// `Create`, `Amend` or `Delete`.
        command: RecordCommand,
        /// The record's version the caller saw, if the step is conditional.
        expected_version: Option<u64>,
    },
}

/// A transaction refused, and the step that refused it; nothing was written.
#[derive(Debug, thiserror::Error)]
#[error("step {step}: {error}")]
pub struct TransactionError {
    /// The index of the step at fault (0 for the change as a whole).
    pub step: usize,
    /// Why.
    #[source]
    pub error: ClinicError,
}

/// A step decided: its commit, ready to append.
enum Decided {
    Patient(PatientId, Prepared<Patient>),
    Record(RecordId, Prepared<MedicalRecord>),
}

impl Decided {
    fn request(&self) -> &emr_eventstore::CommitRequest {
        match self {
            Self::Patient(_, prepared) => &prepared.request,
            Self::Record(_, prepared) => &prepared.request,
        }
    }

    fn existed(&self) -> bool {
        self.request().expected_last_position > 0
    }
}

/// What the steps decided so far have made of the aggregates they touched, for
/// the checks of later steps (a record created for a patient registered before it).
#[derive(Default)]
struct Pending {
    patients: HashMap<PatientId, Patient>,
    records: HashMap<RecordId, MedicalRecord>,
}

/// The command id of the transaction's commit to one aggregate: derived from the
/// transaction's, so a retried transaction finds what it wrote.
fn command_id_for(context: &CommandContext, aggregate: &str) -> CommandId {
    CommandId::from(uuid::Uuid::new_v5(&context.command_id.as_uuid(), aggregate.as_bytes()))
}

impl Clinic {
    /// Runs `steps` as one change, in the actor's name: each is authorized and
    /// decided (on the state the earlier steps leave) before anything is written;
    /// then their commits are appended together. A retry with the same command id
    /// returns the original receipts. Receipts come back in the steps' order.
    pub async fn transaction(&self, steps: Vec<Step>, context: &CommandContext) -> Result<Vec<Receipt>, TransactionError> {
        let span = Self::command_span("transaction", "transaction", context);
        tracing::Instrument::instrument(self.run_transaction(steps, context), span).await
    }

    async fn run_transaction(&self, steps: Vec<Step>, context: &CommandContext) -> Result<Vec<Receipt>, TransactionError> {
        let whole = |error: ClinicError| TransactionError { step: 0, error };
        if steps.is_empty() {
            return Err(whole(ClinicError::NotOneChange { reason: "a transaction needs at least one step" }));
        }
        let mut pending = Pending::default();
        let mut outcomes = Vec::with_capacity(steps.len());
        for (index, step) in steps.into_iter().enumerate() {
            let at = |error: ClinicError| TransactionError { step: index, error };
            outcomes.push(self.decide_step(step, context, &mut pending).await.map_err(at)?);
        }
        let replayed = outcomes.iter().filter(|o| matches!(o, Outcome::Replayed(_))).count();
        let decided = outcomes.iter().filter(|o| matches!(o, Outcome::Decided(_))).count();
        if replayed > 0 && decided > 0 {
            // Commits appended together are all in or none: a retry finds them all,
            // unless the change is still being finished.
            let unfinished = std::io::Error::other("the transaction is still being written");
            return Err(whole(StoreError::Log(LogError::unavailable(unfinished)).into()));
        }
        let existing = outcomes.iter().filter(|o| matches!(o, Outcome::Decided(step) if step.existed())).count();
        if existing > 1 {
            return Err(whole(ClinicError::NotOneChange { reason: "a transaction may change at most one resource that already exists" }));
        }
        // The existing aggregate's commit decides the change, so it goes first.
        let mut order: Vec<usize> = (0..outcomes.len()).filter(|&i| matches!(outcomes[i], Outcome::Decided(_))).collect();
        order.sort_by_key(|&i| !matches!(&outcomes[i], Outcome::Decided(step) if step.existed()));
        let requests: Vec<_> = order
            .iter()
            .filter_map(|&i| if let Outcome::Decided(step) = &outcomes[i] { Some(step.request().clone()) } else { None })
            .collect();
        let mut landed = vec![None; outcomes.len()];
        if !requests.is_empty() {
            let appended = self.log.append_together(requests).await.map_err(|e| whole(StoreError::from(e).into()))?;
            for (&i, appended) in order.iter().zip(appended) {
                landed[i] = Some(appended);
            }
        }
        let mut receipts = Vec::with_capacity(outcomes.len());
        for (outcome, appended) in outcomes.into_iter().zip(landed) {
            let decided = match outcome {
                Outcome::Replayed(receipt) | Outcome::Unchanged(receipt) => {
                    receipts.push(receipt);
                    continue;
                }
                Outcome::Decided(decided) => *decided,
            };
            let appended = appended.ok_or_else(|| whole(StoreError::Log(LogError::NotTogether("a commit was not appended")).into()))?;
            let receipt = match decided {
                Decided::Patient(id, prepared) => {
                    Receipt::of(&id.to_string(), self.patients.complete(prepared, appended).await.map_err(|e| whole(e.into()))?)
                }
                Decided::Record(id, prepared) => {
                    Receipt::of(&id.to_string(), self.records.complete(prepared, appended).await.map_err(|e| whole(e.into()))?)
                }
            };
            receipts.push(receipt);
        }
        Ok(receipts)
    }

    async fn decide_step(&self, step: Step, context: &CommandContext, pending: &mut Pending) -> Result<Outcome, ClinicError> {
        let now = self.services.now();
        let actor = &context.actor;
        match step {
            Step::Patient { patient_id, command, expected_version } => {
                if !matches!(command, PatientCommand::Register { .. } | PatientCommand::UpdateDemographics { .. }) {
                    return Err(ClinicError::NotOneChange {
                        reason: "a transaction registers patients or replaces demographics, nothing else",
                    });
                }
                if pending.patients.contains_key(&patient_id) {
                    return Err(ClinicError::NotOneChange { reason: "a transaction may change each patient once" });
                }
                self.authorize(actor, patient_action(&command), Subject::patient(patient_id)).await?;
                if let PatientCommand::Register { patient_id: created, .. } = &command {
                    Self::ensure_same(created, patient_id)?;
                }
                let step_context = step_context(context, &format!("patient.{patient_id}"), expected_version);
                let loaded = self.patients.load(&patient_id.to_string()).await?;
                if let Some(original) = self.patients.applied(&loaded, step_context.command_id).await? {
                    return Ok(Outcome::Replayed(Receipt::of(&patient_id.to_string(), original)));
                }
                check_version(&loaded, expected_version)?;
                let events = loaded.state().decide(command, now)?;
                let loaded = applied(loaded, &events);
                pending.patients.insert(patient_id, loaded.state().clone());
                Ok(match self.patients.prepare(events, loaded, &step_context).await? {
                    Some(prepared) => Outcome::Decided(Box::new(Decided::Patient(patient_id, prepared))),
                    None => Outcome::Unchanged(unchanged::<Patient>(patient_id)),
                })
            }
            Step::Record { record_id, command, expected_version } => {
                if pending.records.contains_key(&record_id) {
                    return Err(ClinicError::NotOneChange { reason: "a transaction may change each record once" });
                }
                let loaded = self.records.load(&record_id.to_string()).await?;
                match &command {
                    RecordCommand::Create { patient_id, .. } => {
                        self.authorize_creation(record_id, &command, actor).await?;
                        let active = match pending.patients.get(patient_id) {
                            Some(patient) => patient.status() == PatientStatus::Active,
                            None => self.patients.load(&patient_id.to_string()).await?.state().status() == PatientStatus::Active,
                        };
                        if !active {
                            return Err(ClinicError::PatientNotActive { patient_id: *patient_id });
                        }
                    }
                    RecordCommand::Amend { .. } | RecordCommand::Delete { .. } => {
                        self.authorize(actor, record_action(&command), Self::subject_of(loaded.state())?).await?;
                    }
                    _ => {
                        return Err(ClinicError::NotOneChange { reason: "a transaction creates, amends or deletes records, nothing else" });
                    }
                }
                let step_context = step_context(context, &format!("medical_record.{record_id}"), expected_version);
                if let Some(original) = self.records.applied(&loaded, step_context.command_id).await? {
                    return Ok(Outcome::Replayed(Receipt::of(&record_id.to_string(), original)));
                }
                check_version(&loaded, expected_version)?;
                let events = loaded.state().decide(command, now)?;
                let loaded = applied(loaded, &events);
                pending.records.insert(record_id, loaded.state().clone());
                Ok(match self.records.prepare(events, loaded, &step_context).await? {
                    Some(prepared) => Outcome::Decided(Box::new(Decided::Record(record_id, prepared))),
                    None => Outcome::Unchanged(unchanged::<MedicalRecord>(record_id)),
                })
            }
        }
    }
}

/// A step decided now, found written by an earlier attempt of the transaction,
/// or one that changes nothing.
enum Outcome {
    Decided(Box<Decided>),
    Replayed(Receipt),
    Unchanged(Receipt),
}

fn unchanged<A: Aggregate>(id: impl ToString) -> Receipt {
    Receipt::of::<A>(&id.to_string(), Executed { events: Vec::new(), position: None, replayed: false })
}

fn step_context(context: &CommandContext, aggregate: &str, expected_version: Option<u64>) -> CommandContext {
    CommandContext { command_id: command_id_for(context, aggregate), expected_version, ..context.clone() }
}

fn check_version<A>(loaded: &EmrAggregateContext<A>, expected: Option<u64>) -> Result<(), ClinicError> {
    match expected {
        Some(expected) if expected != loaded.sequence() => Err(StoreError::Stale { expected, actual: loaded.sequence() }.into()),
        _ => Ok(()),
    }
}

/// `loaded` with `events` applied, as a command's `handle` leaves it: what later
/// steps see, and what the store caches once the commit is in.
fn applied<A: Aggregate>(mut loaded: EmrAggregateContext<A>, events: &[A::Event]) -> EmrAggregateContext<A> {
    for event in events {
        loaded.aggregate().apply(event.clone());
    }
    loaded
}
