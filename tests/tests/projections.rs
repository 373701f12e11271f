//! Read models in a real MariaDB, folded from a real log (JetStream and SQLite).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use emr_eventstore::conformance::Backend;
use emr_projections::queries::{self, RecordFilter, RecordSort};
use emr_projections::{
    AccessLogProjection, AccessProjection, DashboardProjection, PatientDirectory, Projection, ProjectionError, Projector, RecordIndex,
    rebuild, wait_for,
};
use emr_tests::backends::clinic;
use emr_tests::history;
use emr_tests::mariadb::TestDatabase;
use sqlx::MySqlPool;

const TABLES: [&str; 15] = [
    "patient_directory_checkpoint",
    "patients",
    "record_index_checkpoint",
    "medical_records",
    "attachments",
    "access_checkpoint",
    "access_grants",
    "access_requests",
    "dashboard_checkpoint",
    "records_per_type_per_day",
    "patients_per_hospital",
    "dashboard_patient_hospitals",
    "access_log_checkpoint",
    "access_log",
    "security_events",
];

async fn catch_up_all(pool: &MySqlPool, backend: &Backend, batch: usize) {
    let head = backend.log.head().await.unwrap();
    Projector::new(PatientDirectory, pool.clone(), backend.log.clone()).with_batch_size(batch).catch_up(head).await.unwrap();
    Projector::new(RecordIndex, pool.clone(), backend.log.clone()).with_batch_size(batch).catch_up(head).await.unwrap();
    Projector::new(AccessProjection, pool.clone(), backend.log.clone()).with_batch_size(batch).catch_up(head).await.unwrap();
    Projector::new(DashboardProjection, pool.clone(), backend.log.clone()).with_batch_size(batch).catch_up(head).await.unwrap();
    Projector::new(AccessLogProjection, pool.clone(), backend.log.clone()).with_batch_size(batch).catch_up(head).await.unwrap();
}

async fn dump_all(db: &TestDatabase) -> Vec<(String, Vec<String>)> {
    let mut all = Vec::new();
    for table in TABLES {
        all.push((table.to_owned(), db.dump(table).await));
    }
    all
}

fn assert_same_tables(actual: &[(String, Vec<String>)], expected: &[(String, Vec<String>)], when: &str) {
    for ((table, rows), (_, expected_rows)) in actual.iter().zip(expected) {
        let missing: Vec<_> = expected_rows.iter().filter(|r| !rows.contains(r)).take(3).collect();
        let extra: Vec<_> = rows.iter().filter(|r| !expected_rows.contains(r)).take(3).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{table} differs from a clean fold {when}:\n  missing {missing:#?}\n  extra {extra:#?}"
        );
        assert_eq!(rows.len(), expected_rows.len(), "{table} row count {when}");
    }
}

async fn count(pool: &MySqlPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn read_models_hold_the_history_without_phi(backend: Backend) {
    let clinic = clinic(&backend);
    history::write(&clinic, 10).await;
    let db = TestDatabase::fresh().await;
    catch_up_all(&db.pool, &backend, 7).await;
    let pool = &db.pool;

    assert_eq!(count(pool, "SELECT COUNT(*) FROM patients").await, 10);
    assert_eq!(count(pool, "SELECT COUNT(*) FROM patients WHERE status = 'erased' AND erased_at IS NOT NULL").await, 2);
    assert_eq!(count(pool, "SELECT COUNT(*) FROM medical_records").await, 20);
    assert_eq!(count(pool, "SELECT COUNT(*) FROM medical_records WHERE content_version = 2").await, 10);
    assert_eq!(count(pool, "SELECT COUNT(*) FROM medical_records WHERE status = 'deleted' AND deleted_at IS NOT NULL").await, 7);
    assert_eq!(count(pool, "SELECT COUNT(*) FROM attachments").await, 10);
    assert_eq!(count(pool, "SELECT COUNT(*) FROM attachments WHERE modality = 'CT' AND body_part = 'CHEST' AND image_rows = 512").await, 5);
    assert_eq!(count(pool, "SELECT COUNT(*) FROM attachments WHERE modality IS NULL").await, 5, "files without DICOM metadata");
    assert_eq!(count(pool, "SELECT CAST(SUM(attachment_count) AS SIGNED) FROM medical_records").await, 10);
    assert_eq!(count(pool, "SELECT COUNT(*) FROM access_grants WHERE status = 'active' AND expires_at > UTC_TIMESTAMP()").await, 5 + 5);
    assert_eq!(count(pool, "SELECT COUNT(*) FROM access_grants WHERE status = 'revoked'").await, 5);
    assert_eq!(count(pool, "SELECT COUNT(*) FROM access_requests WHERE status = 'approved'").await, 5);
    assert_eq!(count(pool, "SELECT COUNT(*) FROM access_requests WHERE status = 'denied'").await, 5);
    assert_eq!(count(pool, "SELECT CAST(SUM(records) AS SIGNED) FROM records_per_type_per_day").await, 20);
    assert_eq!(count(pool, "SELECT CAST(SUM(active_patients) AS SIGNED) FROM patients_per_hospital").await, 8);
    assert_eq!(count(pool, "SELECT CAST(SUM(erased_patients) AS SIGNED) FROM patients_per_hospital").await, 2);
    assert_eq!(count(pool, "SELECT COUNT(*) FROM access_log WHERE basis = 'own_record' AND resource = 'record'").await, 10);
    assert_eq!(count(pool, "SELECT COUNT(*) FROM access_log WHERE basis = 'break_glass' AND accessor_role = 'nurse'").await, 4);
    assert_eq!(count(pool, "SELECT COUNT(*) FROM security_events WHERE kind = 'break_glass' AND severity = 'high'").await, 4);

    let everything = dump_all(&db).await.into_iter().flat_map(|(_, rows)| rows).collect::<Vec<_>>().join("\n");
    let patient: String = sqlx::query_scalar("SELECT MIN(patient_id) FROM medical_records").fetch_one(pool).await.unwrap();
    let page = |sort| RecordFilter { patient_id: Some(patient.parse().unwrap()), sort: Some(sort), ..RecordFilter::default() };
    let oldest_first: Vec<_> =
        queries::records(pool, &page(RecordSort::VisitDateAsc)).await.unwrap().into_iter().map(|r| r.visit_date).collect();
    let newest_first: Vec<_> =
        queries::records(pool, &page(RecordSort::VisitDateDesc)).await.unwrap().into_iter().map(|r| r.visit_date).collect();
    assert_eq!(oldest_first.len(), 2, "one patient's records only");
    assert!(oldest_first[0] < oldest_first[1], "{oldest_first:?}");
    assert_eq!(newest_first.iter().rev().collect::<Vec<_>>(), oldest_first.iter().collect::<Vec<_>>());

    let phi = ["MRN-0001", "Consultation", "J18.9", "chest.dcm", "referral", history::BREAK_GLASS_REASON];
    for secret in history::NAMES.iter().copied().chain(phi) {
        assert!(!everything.contains(secret), "`{secret}` must not be in a read model");
    }
    db.drop_database().await;
}

async fn a_projector_killed_mid_batch_ends_equal_to_a_clean_fold(backend: Backend) {
    let clinic = clinic(&backend);
    history::write(&clinic, 25).await;
    let head = backend.log.head().await.unwrap();
    let interrupted = TestDatabase::fresh().await;
    let mut kills = 0;
    // Crash the projectors at arbitrary points (mid-transaction included) until
    // they have caught up; two instances race each time. Each instance is a
    // simulated process with its own connections; at the crash the server loses
    // them as it would a dead process's sockets, and rolls back what was in flight.
    for round in 0u64.. {
        let mut tasks = Vec::new();
        let mut pools = Vec::new();
        for instance in 0..2 {
            let pool = sqlx::mysql::MySqlPoolOptions::new().max_connections(2).connect_with(interrupted.options.clone()).await.unwrap();
            pools.push(pool.clone());
            let log = backend.log.clone();
            tasks.push(tokio::spawn(async move {
                let batch = 3 + instance;
                // Durable feeds where the log has them: both instances share each
                // projection's consumer, and every crash leaves it somewhere else
                // than the checkpoint.
                Projector::new(PatientDirectory, pool.clone(), log.clone())
                    .with_batch_size(batch)
                    .with_durable_feed()
                    .catch_up(u64::MAX)
                    .await?;
                Projector::new(RecordIndex, pool.clone(), log.clone())
                    .with_batch_size(batch)
                    .with_durable_feed()
                    .catch_up(u64::MAX)
                    .await?;
                Projector::new(AccessProjection, pool.clone(), log.clone())
                    .with_batch_size(batch)
                    .with_durable_feed()
                    .catch_up(u64::MAX)
                    .await?;
                Projector::new(AccessLogProjection, pool.clone(), log.clone())
                    .with_batch_size(batch)
                    .with_durable_feed()
                    .catch_up(u64::MAX)
                    .await?;
                Projector::new(DashboardProjection, pool, log).with_batch_size(batch).with_durable_feed().catch_up(u64::MAX).await?;
                Ok::<_, ProjectionError>(())
            }));
        }
        tokio::time::sleep(Duration::from_millis(3 + (round * 7919) % 29)).await;
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            match task.await {
                Err(join) if join.is_cancelled() => kills += 1,
                Err(join) => panic!("projector panicked: {join}"),
                Ok(result) => result.unwrap(),
            }
        }
        interrupted.kill_connections().await;
        drop(pools);
        let dashboard = Projector::new(DashboardProjection, interrupted.pool.clone(), backend.log.clone());
        if dashboard.checkpoint().await.unwrap().position >= head {
            break;
        }
        assert!(round < 500, "projectors never caught up");
    }
    assert!(kills > 0, "the test must actually interrupt projectors");

    let clean = TestDatabase::fresh().await;
    catch_up_all(&clean.pool, &backend, 1000).await;
    let expected = dump_all(&clean).await;
    assert_same_tables(&dump_all(&interrupted).await, &expected, &format!("after {kills} kills"));

    // Folding again changes nothing: every commit is at or below the checkpoint.
    catch_up_all(&interrupted.pool, &backend, 5).await;
    assert_eq!(Projector::new(RecordIndex, interrupted.pool.clone(), backend.log.clone()).step().await.unwrap(), 0);
    let durable = Projector::new(RecordIndex, interrupted.pool.clone(), backend.log.clone()).with_durable_feed();
    assert_eq!(durable.step().await.unwrap(), 0, "the durable feed, wherever the crashes left it, delivers nothing new");
    assert_same_tables(&dump_all(&interrupted).await, &expected, "after folding again");
    interrupted.drop_database().await;
    clean.drop_database().await;
}

async fn a_rebuild_while_live_swaps_in_tables_equal_to_a_clean_fold(backend: Backend) {
    let clinic = clinic(&backend);
    history::write(&clinic, 12).await;
    let db = TestDatabase::fresh().await;
    catch_up_all(&db.pool, &backend, 50).await;
    // Corrupt the live table: a rebuild must not depend on what is there.
    sqlx::query("UPDATE medical_records SET content_version = 99").execute(&db.pool).await.unwrap();

    let live = Arc::new(Projector::new(RecordIndex, db.pool.clone(), backend.log.clone()).with_batch_size(4));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let live = live.clone();
        tokio::spawn(async move { live.run(async { stopped.await.unwrap_or(()) }).await })
    };
    let writer = {
        let clinic = clinic.clone();
        tokio::spawn(async move { history::write(&clinic, 4).await })
    };
    let checkpoint = rebuild(RecordIndex, &db.pool, &db.options, backend.log.clone(), 8).await.unwrap();
    let last = writer.await.unwrap();
    live.catch_up(last).await.unwrap();
    stop.send(()).unwrap();
    runner.await.unwrap();
    assert!(checkpoint.position > 0);

    let clean = TestDatabase::fresh().await;
    catch_up_all(&clean.pool, &backend, 1000).await;
    for table in RecordIndex.tables() {
        assert_eq!(db.dump(table).await, clean.dump(table).await, "{table} equals a clean fold");
    }
    db.drop_database().await;
    clean.drop_database().await;
}

async fn a_reader_can_wait_for_its_own_write(backend: Backend) {
    let clinic = clinic(&backend);
    let last = history::write(&clinic, 1).await;
    let db = TestDatabase::fresh().await;
    let refused = wait_for(&db.pool, "record_index_checkpoint", last, Duration::from_millis(100)).await;
    assert!(matches!(refused, Err(ProjectionError::WaitTimedOut { reached: 0, .. })), "{refused:?}");
    let projector = Arc::new(Projector::new(RecordIndex, db.pool.clone(), backend.log.clone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let projector = projector.clone();
        tokio::spawn(async move { projector.run(async { stopped.await.unwrap_or(()) }).await })
    };
    let reached = wait_for(&db.pool, "record_index_checkpoint", last, Duration::from_secs(10)).await.unwrap();
    assert!(reached >= last);
    let lag = emr_projections::lag(&db.pool, backend.log.clone(), "record_index", "record_index_checkpoint").await.unwrap();
    assert_eq!(lag.behind_commits, 0);
    stop.send(()).unwrap();
    runner.await.unwrap();
    db.drop_database().await;
}

/// The durable consumer lives on the server: a restarted projector resumes from
/// it as it stands, and a checkpoint moved under it (as a rebuild's swap does)
/// repositions it, so the tables still end equal to a clean fold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_consumer_resumes_across_restarts_and_follows_a_moved_checkpoint() {
    let test = emr_tests::backends::jetstream().await;
    let backend = test.backend.clone();
    let clinic = clinic(&backend);
    history::write(&clinic, 5).await;
    let db = TestDatabase::fresh().await;
    let projector = || Projector::new(RecordIndex, db.pool.clone(), backend.log.clone()).with_batch_size(7).with_durable_feed();
    let head = backend.log.head().await.unwrap();
    projector().catch_up(head).await.unwrap();

    let nats = async_nats::connect(test.nats.as_ref().unwrap().url()).await.unwrap();
    let stream = async_nats::jetstream::new(nats).get_stream("EMR_EVENTS").await.unwrap();
    let database: String = sqlx::query_scalar("SELECT DATABASE()").fetch_one(&db.pool).await.unwrap();
    let name = format!("projection-record_index-{database}").replace(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_', "_");
    let mut consumer = stream.get_consumer::<async_nats::jetstream::consumer::pull::Config>(&name).await.unwrap();
    let first = consumer.info().await.unwrap().clone();
    assert_eq!((first.ack_floor.stream_sequence, first.num_pending, first.num_ack_pending), (head, 0, 0), "{first:?}");

    history::write(&clinic, 2).await;
    let head = backend.log.head().await.unwrap();
    projector().catch_up(head).await.unwrap();
    let resumed = consumer.info().await.unwrap().clone();
    assert_eq!(resumed.created, first.created, "a restarted projector reuses the consumer");
    assert_eq!(resumed.ack_floor.stream_sequence, head);

    sqlx::query("DELETE FROM medical_records").execute(&db.pool).await.unwrap();
    sqlx::query("DELETE FROM attachments").execute(&db.pool).await.unwrap();
    sqlx::query("UPDATE record_index_checkpoint SET position = 0, events = 0").execute(&db.pool).await.unwrap();
    projector().catch_up(head).await.unwrap();
    let clean = TestDatabase::fresh().await;
    Projector::new(RecordIndex, clean.pool.clone(), backend.log.clone()).catch_up(head).await.unwrap();
    for table in ["medical_records", "attachments"] {
        assert_eq!(db.dump(table).await, clean.dump(table).await, "{table} after the checkpoint moved back");
    }
    db.drop_database().await;
    clean.drop_database().await;
}

emr_tests::on_every_backend!(
    read_models_hold_the_history_without_phi,
    a_projector_killed_mid_batch_ends_equal_to_a_clean_fold,
    a_rebuild_while_live_swaps_in_tables_equal_to_a_clean_fold,
    a_reader_can_wait_for_its_own_write,
    a_rebuild_upcasts_old_event_versions,
);

/// Schema evolution end to end: events stored as `RecordCreated` 1.0 (camelCase
/// fields) are upcast as a rebuild folds them.
async fn a_rebuild_upcasts_old_event_versions(backend: Backend) {
    use emr_domain::fixtures::content;
    use emr_domain::ids::{CommandId, EventId, PatientId, RecordId, UserId};
    use emr_domain::phi::Phi;
    use emr_eventstore::{AggregateKey, CommitRecord, CommitRequest, ENVELOPE_SCHEMA, EventRecord};

    let db = TestDatabase::fresh().await;
    let mut old_records = Vec::new();
    for n in 0..3 {
        let (record, patient) = (RecordId::new(), PatientId::new());
        let mut payload = serde_json::json!({"type": "RecordCreated", "data": {
            "recordId": record, "patientId": patient, "doctorId": UserId::new(), "hospitalId": "HOSP-OLD",
            "recordType": "imaging", "visitDate": format!("2019-0{}-01", n + 1),
            "content": serde_json::to_value(Phi::new(patient, content("CT head"))).unwrap(),
        }});
        backend.phi().seal(&mut payload).await.unwrap();
        let commit = CommitRecord {
            schema: ENVELOPE_SCHEMA,
            aggregate_type: "medical_record".into(),
            aggregate_id: record.to_string(),
            command_id: CommandId::new(),
            correlation_id: uuid::Uuid::new_v4(),
            causation_id: uuid::Uuid::new_v4(),
            actor: emr_domain::actor::Actor::system(),
            recorded_at: chrono::Utc::now(),
            events: vec![EventRecord {
                event_id: EventId::new(),
                sequence: 1,
                event_type: "RecordCreated".into(),
                event_version: "1.0".into(),
                payload,
            }],
        };
        let key = AggregateKey::new("medical_record", &record.to_string()).unwrap();
        let request =
            CommitRequest { key, expected_last_position: 0, commit_id: commit.command_id.to_string(), payload: commit.encode().unwrap() };
        backend.log.append(request).await.unwrap();
        old_records.push(record.to_string());
    }
    rebuild(RecordIndex, &db.pool, &db.options, backend.log.clone(), 2).await.unwrap();
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT record_id, hospital_id, record_type FROM medical_records ORDER BY record_id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    old_records.sort();
    assert_eq!(rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(), old_records);
    assert!(rows.iter().all(|(_, hospital, kind)| hospital == "HOSP-OLD" && kind == "imaging"), "{rows:?}");
    db.drop_database().await;
}
