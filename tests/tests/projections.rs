//! Read models in a real MariaDB and in a SQLite file (the embedded default),
//! folded from a real log (JetStream and SQLite): one conformance suite for both.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use emr_domain::metadata::CommandContext;
use emr_eventstore::EventLog;
use emr_eventstore::conformance::Backend;
use emr_projections::queries::{self, RecordFilter, RecordSort};
use emr_projections::{
    AccessLogProjection, AccessProjection, DashboardProjection, DiagnosisProjection, FederatedProjection, PatientDirectory, Projection,
    ProjectionError, Projector, ReadModelDb, RecordIndex, SecurityProjection, rebuild, wait_for,
};
use emr_tests::backends::clinic;
use emr_tests::history;
use emr_tests::mariadb::TestDatabase;
use emr_tests::read_models::{Store, TestReadModels, assert_same_tables, fold_all};

async fn read_models_hold_the_history_without_phi(backend: Backend, store: Store) {
    let clinic = clinic(&backend);
    history::write(&clinic, 10).await;
    let db = TestReadModels::fresh(store).await;
    fold_all(&db.db, &backend.log, 7).await;
    let count = |sql: &'static str| db.count(sql, vec![]);

    assert_eq!(count("SELECT COUNT(*) FROM patients").await, 10);
    assert_eq!(count("SELECT COUNT(*) FROM patients WHERE status = 'erased' AND erased_at IS NOT NULL").await, 2);
    assert_eq!(count("SELECT COUNT(*) FROM medical_records").await, 20);
    assert_eq!(count("SELECT COUNT(*) FROM medical_records WHERE content_version = 2").await, 10);
    assert_eq!(count("SELECT COUNT(*) FROM medical_records WHERE status = 'deleted' AND deleted_at IS NOT NULL").await, 7);
    assert_eq!(count("SELECT COUNT(*) FROM attachments").await, 10);
    assert_eq!(count("SELECT COUNT(*) FROM attachments WHERE modality = 'CT' AND body_part = 'CHEST' AND image_rows = 512").await, 5);
    assert_eq!(count("SELECT COUNT(*) FROM attachments WHERE modality IS NULL").await, 5, "files without DICOM metadata");
    assert_eq!(count("SELECT CAST(SUM(attachment_count) AS SIGNED) FROM medical_records").await, 10);
    let active = db.count("SELECT COUNT(*) FROM access_grants WHERE status = 'active' AND expires_at > ?", vec![chrono::Utc::now().into()]);
    assert_eq!(active.await, 5 + 5);
    assert_eq!(count("SELECT COUNT(*) FROM access_grants WHERE status = 'revoked'").await, 5);
    assert_eq!(count("SELECT COUNT(*) FROM access_requests WHERE status = 'approved'").await, 5);
    assert_eq!(count("SELECT COUNT(*) FROM access_requests WHERE status = 'denied'").await, 5);
    assert_eq!(count("SELECT CAST(SUM(records) AS SIGNED) FROM records_per_type_per_day").await, 20);
    assert_eq!(count("SELECT CAST(SUM(active_patients) AS SIGNED) FROM patients_per_hospital").await, 8);
    assert_eq!(count("SELECT CAST(SUM(erased_patients) AS SIGNED) FROM patients_per_hospital").await, 2);
    assert_eq!(count("SELECT COUNT(*) FROM access_log WHERE basis = 'own_record' AND resource = 'record'").await, 10);
    assert_eq!(count("SELECT COUNT(*) FROM access_log WHERE basis = 'break_glass' AND accessor_role = 'nurse'").await, 4);
    // Break-glass reads become security events through the detector (tests/tests/detection.rs), not a projection.
    assert_eq!(count("SELECT COUNT(*) FROM security_events").await, 0);

    let everything = db.dump_all().await.into_iter().flat_map(|(_, rows)| rows).collect::<Vec<_>>().join("\n");
    let (patient,): (String,) = db.db.fetch_one("SELECT MIN(patient_id) FROM medical_records", vec![]).await.unwrap();
    let page = |sort| RecordFilter { patient_id: Some(patient.parse().unwrap()), sort: Some(sort), ..RecordFilter::default() };
    let oldest_first: Vec<_> =
        queries::records(&db.db, &page(RecordSort::VisitDateAsc)).await.unwrap().into_iter().map(|r| r.visit_date).collect();
    let newest_first: Vec<_> =
        queries::records(&db.db, &page(RecordSort::VisitDateDesc)).await.unwrap().into_iter().map(|r| r.visit_date).collect();
    assert_eq!(oldest_first.len(), 2, "one patient's records only");
    assert!(oldest_first[0] < oldest_first[1], "{oldest_first:?}");
    assert_eq!(newest_first.iter().rev().collect::<Vec<_>>(), oldest_first.iter().collect::<Vec<_>>());

    let phi = ["MRN-0001", "Consultation", "J18.9", "chest.dcm", "referral", history::BREAK_GLASS_REASON];
    for secret in history::NAMES.iter().copied().chain(phi) {
        assert!(!everything.contains(secret), "`{secret}` must not be in a read model");
    }
    db.remove().await;
}

/// The patient search index: what a name, birth date or identifier finds, with
/// nothing but keyed hashes stored; erased patients are not found and leave no
/// term behind, on the first fold and on a rebuild after their erasure.
async fn the_search_index_holds_keyed_hashes_only_and_forgets_the_erased(backend: Backend, store: Store) {
    use emr_domain::lookup::{LookupKey, PartialDate};
    use emr_projections::queries::{ExportScope, PatientQuery};
    let clinic = clinic(&backend);
    history::write(&clinic, 10).await;
    let db = TestReadModels::fresh(store).await;
    fold_all(&db.db, &backend.log, 7).await;
    let search = emr_tests::read_models::search_index(backend.phi_codec());
    emr_tests::read_models::fold_search_index(&db.db, &backend.log, search.clone(), 7).await;
    let index = emr_tests::read_models::blind_index();
    let find = |keys: Vec<Vec<LookupKey>>| {
        let groups = keys.iter().map(|group| group.iter().map(|key| index.term(key)).collect()).collect();
        let query = PatientQuery {
            scope: ExportScope::Everyone,
            groups,
            ids: None,
            updated_from: None,
            updated_before: None,
            newest_first: None,
            limit: 500,
            offset: 0,
        };
        let db = db.db.clone();
        async move { queries::search_patients(&db, &query, chrono::Utc::now()).await.unwrap().len() }
    };
    let name = |text: &str| LookupKey::name_prefix(text).unwrap();
    // Patients 0, 4 and 8 are named Wang Fang; patients 0 and 5 were erased.
    assert_eq!(find(vec![vec![name("wang")]]).await, 2);
    assert_eq!(find(vec![vec![name("FANG")], vec![LookupKey::BirthDate(PartialDate::Year(1980))]]).await, 2);
    assert_eq!(find(vec![vec![name("wang"), name("li")]]).await, 2 + 2, "Li Wei: patients 1 and 9 (5 was erased)");
    assert_eq!(find(vec![vec![LookupKey::Identifier { system: None, value: "MRN-0001".into() }]]).await, 8);
    assert_eq!(find(vec![vec![name("wang")], vec![]]).await, 0, "an empty group matches nobody");
    let count = |sql: &'static str| db.count(sql, vec![]);
    assert_eq!(
        count("SELECT COUNT(*) FROM patient_search_terms t JOIN patients p ON p.patient_id = t.patient_id WHERE p.status = 'erased'").await,
        0,
        "an erased patient leaves no term"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM record_search_terms t JOIN patients p ON p.patient_id = t.patient_id WHERE p.status = 'erased'").await,
        0
    );
    // Every record of the history states J18.9; those of active patients are found by it.
    let pneumonia = index.term(&LookupKey::Diagnosis(emr_domain::values::Icd10Code::parse("J18.9").unwrap()));
    assert_eq!(count("SELECT COUNT(*) FROM record_search_terms").await, 16);
    let (patient,): (String,) = db.db.fetch_one("SELECT MIN(patient_id) FROM patient_search_terms", vec![]).await.unwrap();
    let filter =
        |terms: Vec<String>| RecordFilter { patient_id: Some(patient.parse().unwrap()), terms: Some(terms), ..RecordFilter::default() };
    assert_eq!(queries::records(&db.db, &filter(vec![pneumonia.clone()])).await.unwrap().len(), 2);
    let other = index.term(&LookupKey::Diagnosis(emr_domain::values::Icd10Code::parse("I10").unwrap()));
    assert!(queries::records(&db.db, &filter(vec![other])).await.unwrap().is_empty());

    let mut stored = String::new();
    for table in ["patient_search_terms", "record_search_terms"] {
        stored.push_str(&db.dump(table).await.join("\n"));
    }
    for secret in history::NAMES.iter().copied().chain(["wang", "MRN-0001", "1980-05-17", "female", "J18.9"]) {
        assert!(!stored.contains(secret), "`{secret}` must not be in the search index");
    }

    // A rebuild after the erasures folds the same index: erased PHI opens as shredded.
    let terms = &emr_projections::SearchIndex::TABLES[1..];
    let mut before = Vec::new();
    for table in terms {
        before.push(db.dump(table).await);
    }
    emr_projections::rebuild(search, &db.db, backend.log.clone(), 3).await.unwrap();
    for (table, rows) in terms.iter().zip(before) {
        assert_eq!(db.dump(table).await, rows, "a rebuild writes the same {table}");
    }
    db.remove().await;
}

/// How many projections [`catch_up_one`] knows.
const PROJECTIONS: usize = 10;

/// Catches projection `index` (of every projection) up with the log, through a
/// durable feed where the log has them; the search index opens PHI with `codec`.
async fn catch_up_one(
    index: usize,
    pool: &ReadModelDb,
    log: &Arc<dyn EventLog>,
    codec: &Arc<emr_eventstore::PhiCodec>,
    batch: usize,
) -> Result<(), ProjectionError> {
    async fn run<P: Projection>(projection: P, pool: &ReadModelDb, log: &Arc<dyn EventLog>, batch: usize) -> Result<(), ProjectionError> {
        Projector::new(projection, pool.clone(), log.clone()).with_batch_size(batch).with_durable_feed().catch_up(u64::MAX).await.map(drop)
    }
    match index {
        0 => run(PatientDirectory, pool, log, batch).await,
        1 => run(RecordIndex, pool, log, batch).await,
        2 => run(AccessProjection, pool, log, batch).await,
        3 => run(AccessLogProjection, pool, log, batch).await,
        4 => run(SecurityProjection, pool, log, batch).await,
        5 => run(FederatedProjection, pool, log, batch).await,
        6 => run(DiagnosisProjection, pool, log, batch).await,
        7 => run(emr_tests::read_models::search_index(codec.clone()), pool, log, batch).await,
        8 => run(emr_projections::AccountDirectory, pool, log, batch).await,
        _ => run(DashboardProjection, pool, log, batch).await,
    }
}

async fn a_projector_killed_mid_batch_ends_equal_to_a_clean_fold(backend: Backend, store: Store) {
    assert_eq!(emr_projections::all().len(), PROJECTIONS, "catch_up_one knows every projection");
    let clinic = clinic(&backend);
    history::write(&clinic, 25).await;
    let head = backend.log.head().await.unwrap();
    let interrupted = TestReadModels::fresh(store).await;
    let mut kills = 0;
    // How long an instance lives, in ms (least, spread): SQLite serialises every
    // writer of the file, so its instances need longer to get anywhere.
    let lifetime = match store {
        Store::MariaDb => (3, 29),
        Store::Sqlite => (20, 290),
    };
    // Crash the projectors at arbitrary points (mid-transaction included) until
    // they have caught up; two instances race each time. Each instance is a
    // simulated process with its own connections; at the crash the server loses
    // them as it would a dead process's sockets, and rolls back what was in flight.
    for round in 0u64.. {
        let mut tasks = Vec::new();
        let mut pools = Vec::new();
        for instance in 0..2 {
            let pool = interrupted.connect_again().await;
            pools.push(pool.clone());
            let log = backend.log.clone();
            let codec = backend.phi_codec();
            tasks.push(tokio::spawn(async move {
                let batch = 3 + instance;
                // Durable feeds where the log has them: both instances share each
                // projection's consumer, and every crash leaves it somewhere else
                // than the checkpoint.
                // Each round starts with another projector, so that short lives
                // still move every one of them forward.
                for k in 0..PROJECTIONS {
                    catch_up_one((k + round as usize) % PROJECTIONS, &pool, &log, &codec, batch).await?;
                }
                Ok::<_, ProjectionError>(())
            }));
        }
        tokio::time::sleep(Duration::from_millis(lifetime.0 + (round * 7919) % lifetime.1)).await;
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            match task.await {
                Err(join) if join.is_cancelled() => kills += 1,
                Err(join) => panic!("projector panicked: {join}"),
                // The server briefly unavailable (nats-server 2.9 can fail a consumer
                // recreated while the other instance deletes it): the runner backs off
                // and retries such a batch, and so does the next round here.
                Ok(Err(ProjectionError::Log(emr_eventstore::LogError::Unavailable(error)))) => {
                    eprintln!("round {round}: transient log error, retried next round: {error}");
                }
                Ok(result) => result.unwrap(),
            }
        }
        interrupted.kill_connections().await;
        drop(pools);
        let lags = emr_projections::lags(&interrupted.db, backend.log.clone()).await.unwrap();
        if lags.iter().all(|lag| lag.position >= head) {
            break;
        }
        assert!(round < 500, "projectors never caught up");
    }
    assert!(kills > 0, "the test must actually interrupt projectors");

    let clean = TestReadModels::fresh(store).await;
    fold_all(&clean.db, &backend.log, 1000).await;
    let expected = clean.dump_all().await;
    assert_same_tables(&interrupted.dump_all().await, &expected, &format!("after {kills} kills"));
    emr_tests::read_models::fold_search_index(&clean.db, &backend.log, emr_tests::read_models::search_index(backend.phi_codec()), 1000)
        .await;
    for table in &emr_projections::SearchIndex::TABLES[1..] {
        assert_eq!(interrupted.dump(table).await, clean.dump(table).await, "{table} after {kills} kills equals a clean fold");
    }

    // Folding again changes nothing: every commit is at or below the checkpoint.
    fold_all(&interrupted.db, &backend.log, 5).await;
    assert_eq!(Projector::new(RecordIndex, interrupted.db.clone(), backend.log.clone()).step().await.unwrap(), 0);
    let durable = Projector::new(RecordIndex, interrupted.db.clone(), backend.log.clone()).with_durable_feed();
    assert_eq!(durable.step().await.unwrap(), 0, "the durable feed, wherever the crashes left it, delivers nothing new");
    assert_same_tables(&interrupted.dump_all().await, &expected, "after folding again");
    interrupted.remove().await;
    clean.remove().await;
}

async fn a_rebuild_while_live_swaps_in_tables_equal_to_a_clean_fold(backend: Backend, store: Store) {
    let clinic = clinic(&backend);
    history::write(&clinic, 12).await;
    let db = TestReadModels::fresh(store).await;
    fold_all(&db.db, &backend.log, 50).await;
    // Corrupt the live table: a rebuild must not depend on what is there.
    db.db.execute("UPDATE medical_records SET content_version = 99", vec![]).await.unwrap();

    let live = Arc::new(Projector::new(RecordIndex, db.db.clone(), backend.log.clone()).with_batch_size(4));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let live = live.clone();
        tokio::spawn(async move { live.run(async { stopped.await.unwrap_or(()) }).await })
    };
    let writer = {
        let clinic = clinic.clone();
        tokio::spawn(async move { history::write(&clinic, 4).await })
    };
    let checkpoint = rebuild(RecordIndex, &db.db, backend.log.clone(), 8).await.unwrap();
    let last = writer.await.unwrap();
    live.catch_up(last).await.unwrap();
    stop.send(()).unwrap();
    runner.await.unwrap();
    assert!(checkpoint.position > 0);

    let clean = TestReadModels::fresh(store).await;
    fold_all(&clean.db, &backend.log, 1000).await;
    for table in RecordIndex.tables() {
        assert_eq!(db.dump(table).await, clean.dump(table).await, "{table} equals a clean fold");
    }
    db.remove().await;
    clean.remove().await;
}

async fn a_reader_can_wait_for_its_own_write(backend: Backend, store: Store) {
    let clinic = clinic(&backend);
    let last = history::write(&clinic, 1).await;
    let db = TestReadModels::fresh(store).await;
    let refused = wait_for(&db.db, "record_index_checkpoint", last, Duration::from_millis(100)).await;
    assert!(matches!(refused, Err(ProjectionError::WaitTimedOut { reached: 0, .. })), "{refused:?}");
    let projector = Arc::new(Projector::new(RecordIndex, db.db.clone(), backend.log.clone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let projector = projector.clone();
        tokio::spawn(async move { projector.run(async { stopped.await.unwrap_or(()) }).await })
    };
    let reached = wait_for(&db.db, "record_index_checkpoint", last, Duration::from_secs(10)).await.unwrap();
    assert!(reached >= last);
    let lag = emr_projections::lag(&db.db, backend.log.clone(), "record_index", "record_index_checkpoint").await.unwrap();
    assert_eq!(lag.behind_commits, 0);
    stop.send(()).unwrap();
    runner.await.unwrap();
    db.remove().await;
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
    let projector = || Projector::new(RecordIndex, db.db.clone(), backend.log.clone()).with_batch_size(7).with_durable_feed();
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
    Projector::new(RecordIndex, clean.db.clone(), backend.log.clone()).catch_up(head).await.unwrap();
    for table in ["medical_records", "attachments"] {
        assert_eq!(db.dump(table).await, clean.dump(table).await, "{table} after the checkpoint moved back");
    }
    db.drop_database().await;
    clean.drop_database().await;
}

/// Instantiates each `check(backend, store)` on every log backend, once with the
/// read models in MariaDB and once in SQLite.
macro_rules! on_every_store {
    ($($check:ident),+ $(,)?) => {
        mod mariadb {
            use super::{Backend, Store};
            $(pub(super) async fn $check(backend: Backend) { super::$check(backend, Store::MariaDb).await })+
            emr_tests::on_every_backend!($($check),+);
        }
        mod sqlite_read_models {
            use super::{Backend, Store};
            $(pub(super) async fn $check(backend: Backend) { super::$check(backend, Store::Sqlite).await })+
            emr_tests::on_every_backend!($($check),+);
        }
    };
}

on_every_store!(
    read_models_hold_the_history_without_phi,
    the_search_index_holds_keyed_hashes_only_and_forgets_the_erased,
    a_projector_killed_mid_batch_ends_equal_to_a_clean_fold,
    a_rebuild_while_live_swaps_in_tables_equal_to_a_clean_fold,
    a_reader_can_wait_for_its_own_write,
    a_rebuild_upcasts_old_event_versions,
    the_account_directory_lists_roles_mfa_locks_and_closures,
);

/// The account directory (the seed's Users, without secrets): registrations,
/// MFA, a lockout, a role change and a closure, as administrators list them.
async fn the_account_directory_lists_roles_mfa_locks_and_closures(backend: Backend, store: Store) {
    use emr_auth::{AuthPolicy, Identity, MemorySessionStore, Registration, SigningKeys, Tokens};
    use emr_domain::account::{AccountCommand, Username};
    use emr_domain::actor::{Actor, Role};
    use emr_domain::ids::CommandId;
    use queries::AccountFilter;

    let tokens = Tokens::new(SigningKeys::generate("projections").unwrap());
    let services = emr_domain::DomainServices::default();
    let identity = Identity::new(&backend, Arc::new(MemorySessionStore::new()), tokens, AuthPolicy::default(), services);
    let system = Actor::system();
    let open = |username: &str, role: Role| {
        let profile = matches!(role, Role::Physician | Role::Nurse).then(|| emr_domain::fixtures::practitioner_profile("Chen Jing"));
        Registration { username: Username::parse(username).unwrap(), password: "Choose-A-Long-One-9".into(), role, profile }
    };
    let admin = identity.register(Some(&system), open("admin_wu", Role::Admin), None, CommandId::new()).await.unwrap();
    let nurse = identity.register(Some(&system), open("nurse_chen", Role::Nurse), None, CommandId::new()).await.unwrap();
    let locked = identity.register(Some(&system), open("dr_lock", Role::Physician), None, CommandId::new()).await.unwrap();
    let closed = identity.register(Some(&system), open("auditor_old", Role::Auditor), None, CommandId::new()).await.unwrap();
    let admin_actor = Actor::new(admin, Role::Admin);
    let reason = emr_domain::fixtures::text("moved to the audit office");
    identity.change_role(&CommandContext::new(admin_actor), nurse, Role::Auditor, None, reason).await.unwrap();
    let until = chrono::Utc::now() + chrono::Duration::minutes(15);
    identity.administer(&CommandContext::new(system), locked, AccountCommand::Lock { until, failed_attempts: 5 }).await.unwrap();
    identity.administer(&CommandContext::new(admin_actor), closed, AccountCommand::Deactivate { by: admin }).await.unwrap();

    let db = TestReadModels::fresh(store).await;
    fold_all(&db.db, &backend.log, 2).await;
    let list = |filter: AccountFilter| {
        let db = db.db.clone();
        async move { queries::accounts(&db, &filter).await.unwrap() }
    };
    let everyone = list(AccountFilter::default()).await;
    let by_name: Vec<(&str, &str, &str)> = everyone.iter().map(|a| (a.username.as_str(), a.role.as_str(), a.status.as_str())).collect();
    assert_eq!(
        by_name,
        [
            ("admin_wu", "admin", "active"),
            ("auditor_old", "auditor", "deactivated"),
            ("dr_lock", "physician", "active"),
            ("nurse_chen", "auditor", "active")
        ]
    );
    let dr_lock = everyone.iter().find(|a| a.username == "dr_lock").unwrap();
    assert_eq!(dr_lock.locked_until.map(|t| t.timestamp_millis()), Some(until.timestamp_millis()));
    assert_eq!((dr_lock.mfa_enabled, dr_lock.suspended), (0, 0));

    let auditors = list(AccountFilter { role: Some("auditor".into()), status: Some("active".into()), ..AccountFilter::default() }).await;
    assert_eq!(auditors.iter().map(|a| a.user_id.clone()).collect::<Vec<_>>(), [nurse.to_string()]);
    // `_` in a username is a character, not LIKE's wildcard.
    let prefixed = list(AccountFilter { username: Some("DR_".into()), ..AccountFilter::default() }).await;
    assert_eq!(prefixed.len(), 1);
    assert!(list(AccountFilter { username: Some("dr%".into()), ..AccountFilter::default() }).await.is_empty());
    let page = list(AccountFilter { limit: Some(2), offset: Some(2), ..AccountFilter::default() }).await;
    assert_eq!(page.iter().map(|a| a.username.as_str()).collect::<Vec<_>>(), ["dr_lock", "nurse_chen"]);
    db.remove().await;
}

/// Schema evolution end to end: events stored as `RecordCreated` 1.0 (camelCase
/// fields) are upcast as a rebuild folds them.
async fn a_rebuild_upcasts_old_event_versions(backend: Backend, store: Store) {
    use emr_domain::fixtures::content;
    use emr_domain::ids::{CommandId, EventId, PatientId, RecordId, UserId};
    use emr_domain::phi::Phi;
    use emr_eventstore::{AggregateKey, CommitRecord, CommitRequest, ENVELOPE_SCHEMA, EventRecord};

    let db = TestReadModels::fresh(store).await;
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
    rebuild(RecordIndex, &db.db, backend.log.clone(), 2).await.unwrap();
    let rows: Vec<(String, String, String)> =
        db.db.fetch_all("SELECT record_id, hospital_id, record_type FROM medical_records ORDER BY record_id", vec![]).await.unwrap();
    old_records.sort();
    assert_eq!(rows.iter().map(|r| r.0.clone()).collect::<Vec<_>>(), old_records);
    assert!(rows.iter().all(|(_, hospital, kind)| hospital == "HOSP-OLD" && kind == "imaging"), "{rows:?}");
    db.remove().await;
}
