//! End to end over real TCP: the API server on JetStream (a throwaway NATS
//! server), sessions in the real Redis, read models in a fresh MariaDB database
//! folded by running projectors. Register → MFA login → patient and record →
//! grant → read → revoke → refused → break-glass → the patient's access log.

#![allow(clippy::unwrap_used)]

use emr_domain::actor::Role;
use emr_projections::{AccessLogProjection, Projector};
use emr_tests::accounts::{self, PASSWORD};
use emr_tests::api_server::ApiServer;
use emr_tests::backends::jetstream;
use emr_tests::mariadb::TestDatabase;
use serde_json::json;

#[tokio::test]
async fn a_patient_sees_in_their_access_log_who_read_their_record_and_why() {
    let backend = jetstream().await;
    let db = TestDatabase::fresh().await;
    let sessions = emr_tests::sessions::redis("e2e").await;
    let read_models = emr_http::ReadModelState {
        db: db.db.clone(),
        log: backend.backend.log.clone(),
        search_index: emr_tests::read_models::blind_index(),
    };
    let api = ApiServer::start_with(&backend.backend, sessions, Some(read_models)).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let projector = Projector::new(AccessLogProjection, db.db.clone(), backend.backend.log.clone());
    let projecting = tokio::spawn(async move { projector.run(async { stopped.await.unwrap_or(()) }).await });

    let (_, admin) = api.account("e2e_admin", Role::Admin).await;
    let sign_in = |username: &'static str| accounts::sign_in(&api.http, &api.base, username);
    let mut ids = Vec::new();
    for name in ["e2e_author", "e2e_consultant"] {
        let body = json!({"username": name, "password": PASSWORD, "role": "physician",
            "profile": {"full_name": "Sun Lei", "licence_number": "LIC-7788", "department": "Respiratory", "specialization": "Asthma"}});
        let (status, created) = api.post("/v1/accounts", Some(&admin), &body).await;
        assert_eq!(status, 201, "{created}");
        ids.push(created["user_id"].as_str().unwrap().to_owned());
    }
    let (author, consultant) = (sign_in("e2e_author").await, sign_in("e2e_consultant").await);
    let (status, created) =
        api.post("/v1/accounts/self-registration", None, &json!({"username": "e2e_patient", "password": PASSWORD})).await;
    assert_eq!(status, 201, "{created}");
    let patient_id = created["user_id"].as_str().unwrap().to_owned();
    let patient = sign_in("e2e_patient").await;

    let register = json!({"patient_id": patient_id, "hospital_id": "HOSP-009",
        "identifiers": {"mrn": "MRN-9", "external": []},
        "demographics": {"full_name": "Gao Yan", "date_of_birth": "1980-05-06", "gender": "female", "phone_number": null, "email": null, "address": null}});
    assert_eq!(api.post("/v1/patients", Some(&author), &register).await.0, 201);
    let record = json!({"patient_id": patient_id, "doctor_id": ids[0], "hospital_id": "HOSP-009", "record_type": "consultation",
        "visit_date": "2026-11-20", "content": {"title": "Wheezing", "description": null, "diagnosis": {"code": "J45.9", "description": "Asthma"},
        "treatment": null, "medications": []}});
    let (status, created) = api.post("/v1/records", Some(&author), &record).await;
    assert_eq!(status, 201, "{created}");
    let record_path = format!("/v1/records/{}", created["aggregate_id"].as_str().unwrap());

    assert_eq!(api.get(&record_path, &consultant).await.1["code"], "no-active-grant");
    let grant = json!({"patient_id": patient_id, "grantee": ids[1], "scopes": ["read"],
        "expires_at": chrono::Utc::now() + chrono::Duration::days(2), "reason": "second opinion"});
    let (status, granted) = api.post("/v1/grants", Some(&patient), &grant).await;
    assert_eq!(status, 201, "{granted}");
    let (status, shown) = api.get(&record_path, &consultant).await;
    assert_eq!((status, shown["versions"][0]["content"]["title"].as_str()), (200, Some("Wheezing")), "{shown}");
    let revoke = format!("/v1/grants/{}/revocation", granted["aggregate_id"].as_str().unwrap());
    assert_eq!(api.post(&revoke, Some(&patient), &json!({"reason": "done"})).await.0, 200);
    let (status, refused) = api.get(&record_path, &consultant).await;
    assert_eq!((status, refused["code"].as_str()), (403, Some("no-active-grant")));
    let (status, opened) =
        api.post(&format!("{record_path}/break-glass"), Some(&consultant), &json!({"reason": "respiratory arrest"})).await;
    assert_eq!(status, 200, "{opened}");

    let head = backend.backend.log.head().await.unwrap();
    let (status, log) = api.get(&format!("/v1/read/access-log?patient_id={patient_id}&min_position={head}&wait_ms=5000"), &patient).await;
    assert_eq!(status, 200, "{log}");
    let mut bases: Vec<&str> =
        log.as_array().unwrap().iter().filter(|e| e["accessor_id"] == ids[1].as_str()).map(|e| e["basis"].as_str().unwrap()).collect();
    bases.sort_unstable();
    assert_eq!(bases, ["break_glass", "grant"], "{log}");
    let beyond = format!("/v1/read/access-log?patient_id={patient_id}&min_position={}", head + 1_000_000);
    let (status, refused) = api.get(&beyond, &patient).await;
    assert_eq!((status, refused["code"].as_str()), (400, Some("position-beyond-log")), "no receipt names a future position");
    let (status, refused) = api.get(&format!("/v1/read/access-log?patient_id={patient_id}"), &consultant).await;
    assert_eq!((status, refused["code"].as_str()), (403, Some("role-not-permitted")), "a practitioner does not read the accounting");

    stop.send(()).unwrap();
    projecting.await.unwrap();
}
