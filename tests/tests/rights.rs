//! Data-subject rights and account protection end to end, over real TCP on
//! NATS JetStream, sessions in Redis and read models in MariaDB: a restricted
//! patient's chart is refused to a physician holding a grant; the patient
//! exports everything held about them; erasure is refused under a legal hold
//! and goes through once it is released; a locked account cannot log in until
//! an administrator unlocks it; an administrator resets a lost authenticator and
//! the holder enrols a new one; a retention duty refuses a patient's erasure,
//! and disposal once retention has ended leaves the audit clean and the PHI
//! unreadable.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use emr_domain::actor::Role;
use emr_tests::accounts::{self, PASSWORD};
use emr_tests::api_client::{Method, patient_registration, record_creation};
use emr_tests::api_server::ApiServer;
use emr_tests::backends::jetstream;
use emr_tests::mariadb::TestDatabase;
use emr_tests::read_models::RunningProjectors;
use serde_json::json;

async fn server() -> (ApiServer, emr_tests::backends::TestBackend, TestDatabase, RunningProjectors) {
    let backend = jetstream().await;
    let database = TestDatabase::fresh().await;
    let sessions = emr_tests::sessions::redis("rights").await;
    let read_models = emr_http::ReadModelState {
        db: database.db.clone(),
        log: backend.backend.log.clone(),
        search_index: emr_tests::read_models::blind_index(),
    };
    let api = ApiServer::start_with(&backend.backend, sessions, Some(read_models)).await;
    let projectors = RunningProjectors::start(database.db.clone(), backend.backend.log.clone(), backend.backend.phi_codec(), 100);
    (api, backend, database, projectors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restriction_export_and_legal_hold_hold_on_jetstream_redis_and_mariadb() {
    let (api, _backend, _database, projectors) = server().await;
    let (doctor, doctor_token) = api.account("rights_doctor", Role::Physician).await;
    let (consultant, consultant_token) = api.account("rights_consultant", Role::Physician).await;
    let (patient, patient_token) = api.account("rights_patient", Role::Patient).await;
    let (_, admin_token) = api.account("rights_admin", Role::Admin).await;
    let mut registration = patient_registration("Zhao Lan");
    registration["patient_id"] = json!(patient);
    api.until_acknowledged(&doctor_token, "/v1/patients", uuid::Uuid::now_v7(), &registration).await;
    let (record, _) = api
        .until_acknowledged(
            &doctor_token,
            "/v1/records",
            uuid::Uuid::now_v7(),
            &record_creation(&patient.to_string(), &doctor.to_string(), "Asthma review"),
        )
        .await;
    let chart = format!("/v1/records/{}", record["aggregate_id"].as_str().unwrap());
    let grant = json!({"patient_id": patient, "grantee": consultant, "scopes": ["read"], "expires_at": chrono::Utc::now() + chrono::Duration::days(2), "reason": "second opinion"});
    api.until_acknowledged(&patient_token, "/v1/grants", uuid::Uuid::now_v7(), &grant).await;
    assert_eq!(api.get(&chart, &consultant_token).await.0, 200);

    let restricted =
        api.post(&format!("/v1/patients/{patient}/restriction"), Some(&patient_token), &json!({"ground": "objection_pending"})).await;
    assert_eq!(restricted.0, 200, "{}", restricted.1);
    let refused = api.get(&chart, &consultant_token).await;
    assert_eq!((refused.0, refused.1["code"].as_str()), (403, Some("processing-restricted")), "{}", refused.1);

    let (status, export) = api.get(&format!("/v1/patients/{patient}/export"), &patient_token).await;
    assert_eq!(status, 200, "{export}");
    assert_eq!(export["records"].as_array().unwrap().len(), 1);
    assert_eq!(export["patient"]["restriction"], "objection_pending");
    assert!(export["access_log"].as_array().unwrap().iter().any(|entry| entry["accessor_id"] == consultant.to_string()));
    let (status, _) = api.get(&format!("/v1/patients/{patient}/export"), &consultant_token).await;
    assert_eq!(status, 403, "only the patient exports");

    let hold = json!({"reference": "SUBPOENA-88"});
    assert_eq!(api.post(&format!("/v1/patients/{patient}/legal-holds"), Some(&admin_token), &hold).await.0, 200);
    let erasure = format!("/v1/patients/{patient}/erasure");
    let refused = api.post(&erasure, Some(&patient_token), &json!({"reason": "patient_request"})).await;
    assert_eq!((refused.0, refused.1["code"].as_str()), (409, Some("legal-hold")), "{}", refused.1);
    assert_eq!(api.get(&chart, &doctor_token).await.0, 403, "the restriction still stands");
    assert_eq!(api.post(&format!("/v1/patients/{patient}/legal-holds/release"), Some(&admin_token), &hold).await.0, 200);
    let erased = api.post(&erasure, Some(&patient_token), &json!({"reason": "patient_request"})).await;
    assert_eq!(erased.0, 200, "{}", erased.1);
    let (_, shown) = api.get(&format!("/v1/patients/{patient}"), &patient_token).await;
    assert_eq!((shown["status"].as_str(), shown["shredded"].as_bool()), (Some("erased"), Some(true)), "{shown}");
    projectors.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_account_cannot_log_in_until_an_administrator_unlocks_it() {
    let (api, _backend, _database, projectors) = server().await;
    let (_, admin_token) = api.account("lock_admin", Role::Admin).await;
    let (nurse, _) = api.account("lock_nurse", Role::Nurse).await;
    for attempt in 1..=5 {
        let (status, _) = api.post("/v1/auth/login", None, &json!({"username": "lock_nurse", "password": "Wrong-Password-1"})).await;
        // The fifth failure is the one that locks.
        assert_eq!(status, if attempt < 5 { 401 } else { 423 }, "attempt {attempt}");
    }
    let (status, locked) = api.post("/v1/auth/login", None, &json!({"username": "lock_nurse", "password": PASSWORD})).await;
    assert_eq!((status, locked["code"].as_str()), (423, Some("account-locked")), "{locked}");
    let (status, _) =
        api.try_send(Method::POST, &format!("/v1/accounts/{nurse}/unlock"), Some(&admin_token), None, Some(&json!({}))).await.unwrap();
    assert_eq!(status, 204);
    let (status, challenge) = api.post("/v1/auth/login", None, &json!({"username": "lock_nurse", "password": PASSWORD})).await;
    assert_eq!(status, 200, "the right password opens the account again: {challenge}");
    assert!(challenge["mfa_token"].is_string(), "and leads on to the TOTP step: {challenge}");
    projectors.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_resets_a_lost_authenticator_and_the_holder_enrols_a_new_one() {
    let (api, _backend, _database, projectors) = server().await;
    let (admin, admin_token) = api.account("mfa_admin", Role::Admin).await;
    let nurse = accounts::open_account(&api.identity, "mfa_nurse", Role::Nurse).await;
    let (nurse_token, lost_secret) = accounts::sign_in_and_enrol(&api.http, &api.base, "mfa_nurse").await;
    let reset = |user: String, token: String, body: serde_json::Value| {
        let api = &api;
        async move { api.try_send(Method::POST, &format!("/v1/accounts/{user}/mfa-reset"), Some(&token), None, Some(&body)).await.unwrap() }
    };
    let reason = json!({"reason": "phone lost; identity checked at the ward desk"});

    let (status, refused) = reset(nurse.to_string(), nurse_token.clone(), reason.clone()).await;
    assert_eq!(status, 403, "only an administrator resets MFA: {refused}");
    let (status, refused) = reset(admin.to_string(), admin_token.clone(), reason.clone()).await;
    assert_eq!((status, refused["code"].as_str()), (422, Some("account-rule")), "not their own: {refused}");
    for bad in [json!({}), json!({"reason": ""}), json!({"reason": "x", "extra": 1})] {
        let (status, problem) = reset(nurse.to_string(), admin_token.clone(), bad.clone()).await;
        assert!((400..500).contains(&status) && problem["type"].is_string(), "{bad} must be refused as a problem: {status} {problem}");
    }
    let (status, _) = reset(nurse.to_string(), admin_token.clone(), reason.clone()).await;
    assert_eq!(status, 204);

    // Signed out everywhere, and the lost device's codes open nothing.
    let (status, _) = api.get(&format!("/v1/accounts/{nurse}"), &nurse_token).await;
    assert_eq!(status, 401, "the session from before the reset ended");
    let (_, challenge) = api.post("/v1/auth/login", None, &json!({"username": "mfa_nurse", "password": PASSWORD})).await;
    assert_eq!(challenge["enrolment_required"], true, "{challenge}");
    let stale = json!({"mfa_token": challenge["mfa_token"], "code": accounts::totp_code(&lost_secret, "mfa_nurse")});
    let (status, refused) = api.post("/v1/auth/mfa/verification", None, &stale).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("mfa-enrolment-required")), "{refused}");
    let (status, _) = api.post("/v1/auth/mfa/enrolment", None, &json!({"mfa_token": challenge["mfa_token"]})).await;
    assert_eq!(status, 200);
    let (status, refused) = api.post("/v1/auth/mfa/verification", None, &stale).await;
    assert_eq!((status, refused["code"].as_str()), (401, Some("invalid-code")), "the lost device's codes open nothing: {refused}");

    // Within the very step the lost device's code was last used, too.
    let (new_token, new_secret) = accounts::sign_in_and_enrol(&api.http, &api.base, "mfa_nurse").await;
    assert_ne!(new_secret, lost_secret);
    let (status, account) = api.get(&format!("/v1/accounts/{nurse}"), &new_token).await;
    assert_eq!((status, account["mfa_enabled"].as_bool()), (200, Some(true)), "{account}");
    let (_, auditor_token) = api.account("mfa_auditor", Role::Auditor).await;
    let (_, resets) = api.get(&format!("/v1/audit/account/{nurse}/history"), &auditor_token).await;
    let kept = resets.to_string();
    assert!(
        kept.contains("MfaReset") && kept.contains("identity checked at the ward desk"),
        "the reset and its reason are in the account's history: {kept}"
    );
    projectors.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disposal_after_retention_leaves_the_audit_verifiable_and_the_phi_unreadable() {
    use emr_domain::ids::HospitalId;
    use emr_domain::retention::{RetentionPolicy, RetentionSchedule};

    let backend = jetstream().await;
    let database = TestDatabase::fresh().await;
    let sessions = emr_tests::sessions::redis("retention").await;
    let read_models = emr_http::ReadModelState {
        db: database.db.clone(),
        log: backend.backend.log.clone(),
        search_index: emr_tests::read_models::blind_index(),
    };
    let policy = RetentionPolicy {
        jurisdiction: "DE".into(),
        hospitals: vec![HospitalId::parse("HOSP-001").unwrap()],
        years: Default::default(),
        default_years: 10,
    };
    let clinic = emr_tests::backends::clinic(&backend.backend).with_retention(RetentionSchedule::new(vec![policy]));
    let api = ApiServer::start_with_clinic(&backend.backend, sessions, Some(read_models), clinic).await;
    let projectors = RunningProjectors::start(database.db.clone(), backend.backend.log.clone(), backend.backend.phi_codec(), 100);
    let (doctor, doctor_token) = api.account("keep_doctor", Role::Physician).await;
    let (_, admin_token) = api.account("keep_admin", Role::Admin).await;
    let (recent, recent_token) = api.account("keep_recent", Role::Patient).await;
    let old = uuid::Uuid::now_v7();
    let mut old_record = None;
    for (patient, visit) in [(old, "2014-02-01"), (recent.as_uuid(), "2024-02-01")] {
        let mut registration = patient_registration("Karl Weber");
        registration["patient_id"] = json!(patient);
        api.until_acknowledged(&doctor_token, "/v1/patients", uuid::Uuid::now_v7(), &registration).await;
        let mut record = record_creation(&patient.to_string(), &doctor.to_string(), "Knee arthroscopy");
        record["visit_date"] = json!(visit);
        let (created, _) = api.until_acknowledged(&doctor_token, "/v1/records", uuid::Uuid::now_v7(), &record).await;
        old_record = old_record.or_else(|| created["aggregate_id"].as_str().map(|id| id.parse::<emr_domain::ids::RecordId>().unwrap()));
    }
    let old_record = old_record.unwrap();
    let readable = api.clinic.load_record(old_record).await.unwrap();
    assert!(readable.state().versions()[0].content.value().is_some(), "readable before disposal");

    let refused = api.post(&format!("/v1/patients/{recent}/erasure"), Some(&recent_token), &json!({"reason": "patient_request"})).await;
    assert_eq!((refused.0, refused.1["code"].as_str()), (409, Some("retention-duty")), "{}", refused.1);
    assert!(refused.1["detail"].as_str().unwrap().contains("2034-02-01"), "{}", refused.1);
    let (status, queue) = api.get("/v1/retention/review", &admin_token).await;
    assert_eq!(status, 200, "{queue}");
    let due: Vec<&str> = queue.as_array().unwrap().iter().filter_map(|p| p["patient_id"].as_str()).collect();
    assert_eq!(due, [old.to_string().as_str()], "only the patient whose retention ended is due");
    let early = api.post(&format!("/v1/patients/{recent}/disposal"), Some(&admin_token), &json!({})).await;
    assert_eq!((early.0, early.1["code"].as_str()), (409, Some("retention-not-due")), "{}", early.1);
    let (status, _) = api.post(&format!("/v1/patients/{old}/disposal"), Some(&doctor_token), &json!({})).await;
    assert_eq!(status, 403, "disposal is the privacy officer's");
    let disposed = api.post(&format!("/v1/patients/{old}/disposal"), Some(&admin_token), &json!({})).await;
    assert_eq!(disposed.0, 200, "{}", disposed.1);

    let history = api.clinic.history("patient", &old.to_string()).await.unwrap();
    assert_eq!(history.last().map(|e| e.event_type.as_str()), Some("PatientErased"));
    let shredded = api.clinic.load_record(old_record).await.unwrap();
    assert!(shredded.state().versions()[0].content.is_shredded(), "the record's PHI is unreadable after disposal: its key is gone");
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(emr_anchor::FileLedger::open(dir.path()).unwrap());
    let log = backend.backend.log.clone();
    let worker =
        emr_anchor::AnchorWorker::open(log.clone(), ledger.clone(), dir.path(), emr_anchor::AnchorConfig::default()).await.unwrap();
    worker.catch_up().await.unwrap();
    let report = emr_anchor::verify(log, ledger.as_ref(), dir.path(), &[worker.public_key()]).await.unwrap();
    assert!(report.ok && report.events == report.anchored_events, "the log still verifies after disposal: {report:?}");
    projectors.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_privacy_report_lists_unjustified_break_glass_refusals_and_unneeded_reads_until_justified() {
    use emr_domain::access::Basis;
    use emr_domain::actor::Actor;
    use emr_domain::disclosure::{DisclosureEvent, Resource};
    use emr_domain::ids::{AttachmentId, DisclosureId, EventId, GrantId, PatientId, RecordId};
    use emr_projections::Payload;
    use emr_tests::hospital_trace::{Trace, TraceEvent};

    let (api, backend, _database, projectors) = server().await;
    let (doctor, doctor_token) = api.account("privacy_doctor", Role::Physician).await;
    let (nurse, nurse_token) = api.account("privacy_nurse", Role::Nurse).await;
    let (_, auditor_token) = api.account("privacy_auditor", Role::Auditor).await;
    let patient = uuid::Uuid::now_v7();
    let mut registration = patient_registration("Wang Fang");
    registration["patient_id"] = json!(patient);
    api.until_acknowledged(&doctor_token, "/v1/patients", uuid::Uuid::now_v7(), &registration).await;
    api.until_acknowledged(
        &doctor_token,
        "/v1/records",
        uuid::Uuid::now_v7(),
        &record_creation(&patient.to_string(), &doctor.to_string(), "Sepsis"),
    )
    .await;

    let (status, refused) = api.get(&format!("/v1/patients/{patient}"), &nurse_token).await;
    assert_eq!(status, 403, "{refused}");
    let (status, opened) =
        api.post(&format!("/v1/patients/{patient}/break-glass"), Some(&nurse_token), &json!({"reason": "collapsed in the corridor"})).await;
    assert_eq!(status, 200, "{opened}");
    let disclosure = opened["disclosure_id"].as_str().unwrap().to_owned();
    // A nurse opening an imaging study: allowed by her grant, not needed for nursing.
    let read = DisclosureEvent::PhiDisclosed {
        disclosure_id: DisclosureId::new(),
        patient_id: PatientId::from(patient),
        resource: Resource::Attachment { record_id: RecordId::new(), attachment_id: AttachmentId::new() },
        accessor: Actor::new(nurse, Role::Nurse),
        basis: Basis::Grant { grant_id: GrantId::new() },
    };
    let event = TraceEvent {
        at: chrono::Utc::now(),
        event_id: EventId::new(),
        actor: Actor::new(nurse, Role::Nurse),
        aggregate_type: "disclosure",
        aggregate_id: uuid::Uuid::now_v7().to_string(),
        payload: Payload::Disclosure(read),
        attack: None,
    };
    emr_tests::trace_log::write(&backend.backend, &Trace { events: vec![event], attacks: vec![] }).await;

    let report = "/v1/privacy/report?grace_hours=0";
    let (status, before) = api.get(report, &auditor_token).await;
    assert_eq!(status, 200, "{before}");
    let unjustified: Vec<&str> =
        before["unjustified_break_glass"].as_array().unwrap().iter().filter_map(|e| e["disclosure_id"].as_str()).collect();
    assert_eq!(unjustified, [disclosure.as_str()], "{before}");
    let refusals = before["refused_accesses"].as_array().unwrap();
    assert!(refusals.iter().any(|r| r["actor_id"] == nurse.to_string() && r["reason"] == "no_active_grant"), "{before}");
    let findings = before["minimum_necessary"].as_array().unwrap();
    assert!(findings.iter().any(|f| f["accessor_role"] == "nurse" && f["resource"] == "attachment" && f["read_count"] == 1), "{before}");
    assert!(!findings.iter().any(|f| f["accessor_role"] == "physician"), "physicians need what they read: {before}");

    let justification = format!("/v1/break-glass/{disclosure}/justification");
    let (status, refused) = api.post(&justification, Some(&doctor_token), &json!({"justification": "not mine to explain"})).await;
    assert_eq!((status, refused["code"].as_str()), (422, Some("disclosure-rule")), "only the reader justifies: {refused}");
    let (status, justified) =
        api.post(&justification, Some(&nurse_token), &json!({"justification": "unresponsive, no one else on the floor"})).await;
    assert_eq!(status, 200, "{justified}");
    let (_, after) = api.get(report, &auditor_token).await;
    assert_eq!(after["unjustified_break_glass"].as_array().unwrap().len(), 0, "{after}");
    let (status, _) = api.get(report, &nurse_token).await;
    assert_eq!(status, 403, "the report is the privacy officer's");
    projectors.stop().await;
}
