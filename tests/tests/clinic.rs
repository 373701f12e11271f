//! The application layer's cross-aggregate rules, on both backends.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use emr_commands::{Clinic, ClinicError};
use emr_domain::fixtures::{create_record, text};
use emr_domain::grant::{GrantCommand, Scope};
use emr_domain::ids::{GrantId, PatientId, RecordId, UserId};
use emr_domain::metadata::CommandContext;
use emr_domain::patient::{ErasureReason, PatientCommand, PatientError, PatientStatus};
use emr_domain::record::RecordCommand;
use emr_eventstore::conformance::Backend;
use emr_tests::backends::clinic;

/// The system actor: these tests are about the rules that span aggregates;
/// authorization has its own tests (adapters/http/tests/api.rs, domain access).
fn clerk() -> CommandContext {
    emr_tests::charts::system()
}

async fn registered_patient(clinic: &Clinic) -> PatientId {
    emr_tests::charts::registered_patient(clinic, "Liu Yang").await
}

fn create(record: RecordId, patient: PatientId) -> RecordCommand {
    create_record(record, patient, "Full blood count")
}

fn grant(grant: GrantId, patient: PatientId) -> GrantCommand {
    GrantCommand::Grant {
        grant_id: grant,
        patient_id: patient,
        grantee: UserId::new(),
        scopes: BTreeSet::from([Scope::Read]),
        expires_at: Utc::now() + Duration::days(7),
        granted_by: UserId::new(),
        reason: text("second opinion"),
    }
}

async fn records_and_grants_need_an_active_patient(backend: Backend) {
    let clinic = clinic(&backend);
    let stranger = PatientId::new();
    let record = RecordId::new();
    let refused = clinic.record(record, create(record, stranger), &clerk()).await;
    assert!(matches!(refused, Err(ClinicError::PatientNotActive { patient_id }) if patient_id == stranger), "{refused:?}");
    let id = GrantId::new();
    let refused = clinic.grant(id, grant(id, stranger), &clerk()).await;
    assert!(matches!(refused, Err(ClinicError::PatientNotActive { .. })), "{refused:?}");

    let patient = registered_patient(&clinic).await;
    let receipt = clinic.record(record, create(record, patient), &clerk()).await.unwrap();
    assert_eq!(receipt.events[0].event_type, "RecordCreated");
    assert!(receipt.position.is_some());
}

async fn creation_commands_must_target_the_id_they_create(backend: Backend) {
    let clinic = clinic(&backend);
    let patient = registered_patient(&clinic).await;
    let refused = clinic.record(RecordId::new(), create(RecordId::new(), patient), &clerk()).await;
    assert!(matches!(refused, Err(ClinicError::IdMismatch { .. })), "{refused:?}");
}

async fn a_retried_command_returns_its_original_receipt(backend: Backend) {
    let clinic = clinic(&backend);
    let patient = registered_patient(&clinic).await;
    let record = RecordId::new();
    let context = clerk();
    let first = clinic.record(record, create(record, patient), &context).await.unwrap();
    let again = clinic.record(record, create(record, patient), &context).await.unwrap();
    assert!(again.replayed && !first.replayed);
    assert_eq!((again.position, &again.events), (first.position, &first.events));
    let other_command = clinic.record(record, create(record, patient), &clerk()).await;
    assert!(matches!(other_command, Err(ClinicError::Record(_))), "a new command id is a new command: {other_command:?}");
}

async fn erasure_shreds_the_patient_everywhere_and_closes_their_chart(backend: Backend) {
    let clinic = clinic(&backend);
    let patient = registered_patient(&clinic).await;
    let record = RecordId::new();
    clinic.record(record, create(record, patient), &clerk()).await.unwrap();
    let head_before = clinic.log().head().await.unwrap();

    let erase = PatientCommand::Erase { reason: ErasureReason::PatientRequest };
    let context = clerk();
    let receipt = clinic.patient(patient, erase.clone(), &context).await.unwrap();
    assert_eq!(receipt.events[0].event_type, "PatientErased");
    let retried = clinic.patient(patient, erase.clone(), &context).await.unwrap();
    assert!(retried.replayed, "retrying the erasure is answered, not refused");
    let again = clinic.patient(patient, erase, &clerk()).await;
    assert!(matches!(again, Err(ClinicError::Patient(PatientError::Erased))), "{again:?}");

    let loaded = clinic.load_patient(patient).await.unwrap();
    assert_eq!(loaded.state().status(), PatientStatus::Erased);
    assert!(loaded.state().demographics().unwrap().is_shredded());
    let chart = clinic.load_record(record).await.unwrap();
    assert!(chart.state().versions()[0].content.is_shredded(), "the cached record was dropped and reloads shredded");
    assert!(clinic.log().head().await.unwrap() > head_before, "the erasure itself is an event");

    let new_record = RecordId::new();
    let refused = clinic.record(new_record, create(new_record, patient), &clerk()).await;
    assert!(matches!(refused, Err(ClinicError::PatientNotActive { .. })), "{refused:?}");
}

emr_tests::on_every_backend!(
    records_and_grants_need_an_active_patient,
    creation_commands_must_target_the_id_they_create,
    a_retried_command_returns_its_original_receipt,
    erasure_shreds_the_patient_everywhere_and_closes_their_chart,
);
