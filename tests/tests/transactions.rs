//! Transactions: several commands decided together and written as one change
//! (all or none), on both backends; and on JetStream, a change interrupted after
//! its deciding commit is finished when the next process connects.

#![allow(clippy::unwrap_used)]

use emr_commands::{ClinicError, Step};
use emr_domain::fixtures::{content, create_record, demographics, register, text};
use emr_domain::ids::{PatientId, RecordId};
use emr_domain::metadata::CommandContext;
use emr_domain::patient::{PatientCommand, PatientStatus};
use emr_domain::record::{RecordCommand, RecordStatus};
use emr_eventstore::conformance::Backend;
use emr_eventstore::{LogError, StoreError};
use emr_tests::backends::clinic;

fn clerk() -> CommandContext {
    emr_tests::charts::system()
}

fn registration(patient: PatientId) -> Step {
    Step::Patient { patient_id: patient, command: register(patient, "Zhao Min"), expected_version: None }
}

fn new_record(record: RecordId, patient: PatientId) -> Step {
    Step::Record { record_id: record, command: create_record(record, patient, "Admission"), expected_version: None }
}

async fn a_patient_and_their_records_are_created_in_one_change(backend: Backend) {
    let clinic = clinic(&backend);
    let (patient, first, second) = (PatientId::new(), RecordId::new(), RecordId::new());
    let steps = vec![registration(patient), new_record(first, patient), new_record(second, patient)];
    let context = clerk();
    let receipts = clinic.transaction(steps.clone(), &context).await.unwrap();
    assert_eq!(
        receipts.iter().map(|r| r.events[0].event_type.as_str()).collect::<Vec<_>>(),
        ["PatientRegistered", "RecordCreated", "RecordCreated"]
    );
    assert_eq!(clinic.load_patient(patient).await.unwrap().state().status(), PatientStatus::Active);
    assert_eq!(clinic.load_record(second).await.unwrap().state().patient_id(), Some(patient));

    let head = backend.log.head().await.unwrap();
    let again = clinic.transaction(steps, &context).await.unwrap();
    assert!(again.iter().all(|r| r.replayed), "a retried transaction returns what it wrote");
    assert_eq!(again.iter().map(|r| r.position).collect::<Vec<_>>(), receipts.iter().map(|r| r.position).collect::<Vec<_>>());
    assert_eq!(backend.log.head().await.unwrap(), head, "and writes nothing");
}

async fn a_refused_step_leaves_nothing_written(backend: Backend) {
    let clinic = clinic(&backend);
    let (patient, record, stranger) = (PatientId::new(), RecordId::new(), PatientId::new());
    let head = backend.log.head().await.unwrap();
    let refused = clinic.transaction(vec![registration(patient), new_record(record, stranger)], &clerk()).await.unwrap_err();
    assert_eq!(refused.step, 1, "the step at fault is named");
    assert!(matches!(refused.error, ClinicError::PatientNotActive { patient_id } if patient_id == stranger), "{refused:?}");
    assert_eq!(backend.log.head().await.unwrap(), head, "not even the registration was written");
    assert_eq!(clinic.load_patient(patient).await.unwrap().state().status(), PatientStatus::Unregistered);
}

async fn a_stale_version_refuses_the_whole_change(backend: Backend) {
    let clinic = clinic(&backend);
    let patient = emr_tests::charts::registered_patient(&clinic, "Sun Li").await;
    let seen = clinic.load_patient(patient).await.unwrap().sequence();
    let update = |name: &str| PatientCommand::UpdateDemographics { demographics: demographics(name) };
    clinic.patient(patient, update("Sun Li-Hua"), &clerk()).await.unwrap();
    let record = RecordId::new();
    let steps =
        vec![Step::Patient { patient_id: patient, command: update("Sun L."), expected_version: Some(seen) }, new_record(record, patient)];
    let refused = clinic.transaction(steps, &clerk()).await.unwrap_err();
    assert!(matches!(refused.error, ClinicError::Store(StoreError::Stale { .. })), "{refused:?}");
    assert_eq!(clinic.load_record(record).await.unwrap().state().status(), RecordStatus::Absent);
}

async fn a_change_touches_at_most_one_existing_resource_once(backend: Backend) {
    let clinic = clinic(&backend);
    let patient = emr_tests::charts::registered_patient(&clinic, "Wu Fei").await;
    let (a, b) = (RecordId::new(), RecordId::new());
    for record in [a, b] {
        clinic.record(record, create_record(record, patient, "Visit"), &clerk()).await.unwrap();
    }
    let amend = |record| Step::Record {
        record_id: record,
        command: RecordCommand::Amend { content: content("Revised"), reason: text("correction") },
        expected_version: None,
    };
    let head = backend.log.head().await.unwrap();
    let refused = clinic.transaction(vec![amend(a), amend(b)], &clerk()).await.unwrap_err();
    assert!(matches!(refused.error, ClinicError::NotOneChange { .. }), "{refused:?}");
    let refused = clinic.transaction(vec![amend(a), amend(a)], &clerk()).await.unwrap_err();
    assert!(matches!(refused.error, ClinicError::NotOneChange { .. }) && refused.step == 1, "{refused:?}");
    let erase = Step::Patient {
        patient_id: patient,
        command: PatientCommand::Erase { reason: emr_domain::patient::ErasureReason::PatientRequest },
        expected_version: None,
    };
    let refused = clinic.transaction(vec![erase], &clerk()).await.unwrap_err();
    assert!(matches!(refused.error, ClinicError::NotOneChange { .. }), "{refused:?}");
    assert_eq!(backend.log.head().await.unwrap(), head);

    // One existing resource and new ones: the amendment decides, the rest follow.
    let created = RecordId::new();
    let receipts = clinic.transaction(vec![new_record(created, patient), amend(a)], &clerk()).await.unwrap();
    assert!(receipts[1].position < receipts[0].position, "the existing record's commit is appended first");
    assert_eq!(clinic.load_record(a).await.unwrap().state().current().unwrap().content.value().unwrap().title.as_str(), "Revised");
}

emr_tests::on_every_backend!(
    a_patient_and_their_records_are_created_in_one_change,
    a_refused_step_leaves_nothing_written,
    a_stale_version_refuses_the_whole_change,
    a_change_touches_at_most_one_existing_resource_once,
);

/// The event stream refuses every message after the deciding commit (a full
/// stream, as an outage would): the writer reports the failure and keeps the
/// change pending; the next process to connect, with the stream healthy again,
/// finishes it, so the change ends whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_finishes_a_change_interrupted_after_its_deciding_commit() {
    let test = emr_tests::backends::jetstream().await;
    let server = test.nats.as_ref().unwrap();
    let clinic = clinic(&test.backend);
    let patient = emr_tests::charts::registered_patient(&clinic, "Qian Yu").await;
    let existing = RecordId::new();
    clinic.record(existing, create_record(existing, patient, "Visit"), &clerk()).await.unwrap();

    let config = emr_nats::NatsConfig { url: server.url(), ..Default::default() };
    let client = async_nats::connect(server.url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let messages = jetstream.get_stream(&config.stream).await.unwrap().get_info().await.unwrap().state.messages;
    let full = async_nats::jetstream::stream::Config {
        max_messages: i64::try_from(messages).unwrap() + 1,
        discard: async_nats::jetstream::stream::DiscardPolicy::New,
        ..emr_nats::event_stream_config(&config)
    };
    jetstream.update_stream(&full).await.unwrap();

    let created = RecordId::new();
    let amend = Step::Record {
        record_id: existing,
        command: RecordCommand::Amend { content: content("Revised"), reason: text("correction") },
        expected_version: None,
    };
    let interrupted = clinic.transaction(vec![amend, new_record(created, patient)], &clerk()).await.unwrap_err();
    assert!(matches!(interrupted.error, ClinicError::Store(StoreError::Log(LogError::Unavailable(_)))), "{interrupted:?}");
    assert_eq!(clinic.load_record(existing).await.unwrap().sequence(), 2, "the deciding commit is in");
    assert_eq!(clinic.load_record(created).await.unwrap().state().status(), RecordStatus::Absent, "the rest is not, yet");

    // A restart: connecting declares the stream as configured and finishes the change.
    let restarted = emr_nats::NatsBackend::connect(&config).await.unwrap();
    let backend = Backend { log: restarted.log, snapshots: restarted.snapshots, keys: restarted.keys, kek: test.backend.kek.clone() };
    let after = emr_tests::backends::clinic(&backend);
    assert_eq!(after.load_record(created).await.unwrap().state().patient_id(), Some(patient), "the change is whole");
    let pending = jetstream.get_stream(format!("{}_PENDING", config.stream)).await.unwrap().get_info().await.unwrap().state.messages;
    assert_eq!(pending, 0, "nothing is left pending");
}

/// A pending change that cannot be finished (here: unreadable) is kept for an
/// operator and logged; it does not keep the event store from opening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_opens_with_a_pending_change_it_cannot_finish_and_keeps_it() {
    let test = emr_tests::backends::jetstream().await;
    let server = test.nats.as_ref().unwrap();
    let config = emr_nats::NatsConfig { url: server.url(), ..Default::default() };
    let client = async_nats::connect(server.url()).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    jetstream.publish(format!("{}_pending.garbage", config.subject_prefix), "not a change".into()).await.unwrap().await.unwrap();
    let reopened = emr_nats::NatsBackend::connect(&config).await;
    assert!(reopened.is_ok(), "the store opens: {:?}", reopened.err());
    let pending = jetstream.get_stream(format!("{}_PENDING", config.stream)).await.unwrap().get_info().await.unwrap().state.messages;
    assert_eq!(pending, 1, "the unreadable change stays for an operator");
}
