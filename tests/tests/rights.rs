//! Data-subject rights and account protection end to end, over real TCP on
//! NATS JetStream, sessions in Redis and read models in MariaDB: a restricted
//! patient's chart is refused to a physician holding a grant; the patient
//! exports everything held about them; erasure is refused under a legal hold
//! and goes through once it is released; a locked account cannot log in until
//! an administrator unlocks it.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use emr_domain::actor::Role;
use emr_redis::RedisSessionStore;
use emr_tests::accounts::PASSWORD;
use emr_tests::api_client::{Method, patient_registration, record_creation};
use emr_tests::api_server::ApiServer;
use emr_tests::backends::jetstream;
use emr_tests::mariadb::TestDatabase;
use emr_tests::read_models::RunningProjectors;
use serde_json::json;

async fn server() -> (ApiServer, emr_tests::backends::TestBackend, TestDatabase, RunningProjectors) {
    let backend = jetstream().await;
    let database = TestDatabase::fresh().await;
    let redis_url = std::env::var("EMR_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let sessions = Arc::new(RedisSessionStore::connect(&redis_url, &format!("rights-{}", uuid::Uuid::new_v4().simple())).await.unwrap());
    let read_models = emr_http::ReadModelState { db: database.db.clone(), log: backend.backend.log.clone() };
    let api = ApiServer::start_with(&backend.backend, sessions, Some(read_models)).await;
    let projectors = RunningProjectors::start(database.db.clone(), backend.backend.log.clone(), 100);
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
