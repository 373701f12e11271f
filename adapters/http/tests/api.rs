//! The HTTP API, called in-process (`router().oneshot`) over the embedded store on
//! a real SQLite file.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use emr_commands::{Clinic, EventStorePorts};
use emr_domain::DomainServices;
use emr_eventstore::StoreConfig;
use emr_http::{AppState, router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

struct TestApp {
    router: axum::Router,
    _dir: tempfile::TempDir,
}

async fn app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let store = emr_sqlite::SqliteStore::open(dir.path()).await.unwrap();
    let (log, snapshots, keys) = store.ports();
    let kek = Arc::new(emr_keyring::Keyring::load_or_create(&dir.path().join("keyring")).unwrap());
    let clinic = Clinic::new(EventStorePorts { log, snapshots, keys, kek }, StoreConfig::default(), DomainServices::default());
    TestApp { router: router(AppState { clinic, read_models: None, audit: None }), _dir: dir }
}

const USER: &str = "0190f5c4-7d0e-7cc2-9a4e-3f1c2b6a9d10";

fn command(method: &str, uri: &str, body: &Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-emr-user", USER)
        .header("x-emr-role", "physician")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn send(app: &TestApp, request: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn patient_body() -> Value {
    json!({
        "hospital_id": "HOSP-001",
        "identifiers": {"mrn": "MRN-42", "external": []},
        "demographics": {"full_name": "Huang Min", "date_of_birth": "1975-02-03", "gender": "male",
                         "phone_number": null, "email": null, "address": null}
    })
}

fn record_body(patient_id: &str) -> Value {
    json!({
        "patient_id": patient_id, "doctor_id": USER, "hospital_id": "HOSP-001", "record_type": "consultation",
        "visit_date": "2026-10-01",
        "content": {"title": "Annual check-up", "description": null,
                    "diagnosis": {"code": "I10", "description": "Essential hypertension"},
                    "treatment": null,
                    "medications": [{"name": "Amlodipine", "dose": {"amount": "5", "unit": "mg"}, "route": "oral", "frequency": "once daily"}]}
    })
}

async fn register(app: &TestApp) -> String {
    let (status, _, receipt) = send(app, command("POST", "/v1/patients", &patient_body())).await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    receipt["aggregate_id"].as_str().unwrap().to_owned()
}

fn assert_problem(result: &(StatusCode, Option<String>, Value), status: StatusCode, code: &str) {
    assert_eq!(result.0, status, "{}", result.2);
    assert_eq!(result.1.as_deref(), Some("application/problem+json"));
    assert_eq!(result.2["code"], code, "{}", result.2);
    assert_eq!(result.2["status"], status.as_u16());
}

#[tokio::test]
async fn a_registered_patient_reads_back_with_the_commit_position() {
    let app = app().await;
    let (status, _, receipt) = send(&app, command("POST", "/v1/patients", &patient_body())).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(receipt["events"][0]["event_type"], "PatientRegistered");
    let position = receipt["position"].as_u64().unwrap();
    let id = receipt["aggregate_id"].as_str().unwrap();
    let (status, _, patient) = send(&app, Request::get(format!("/v1/patients/{id}")).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patient["demographics"]["full_name"], "Huang Min");
    assert_eq!(patient["position"].as_u64(), Some(position));
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_original_receipt() {
    let app = app().await;
    let patient = register(&app).await;
    let key = "0190f5c4-0000-7000-8000-000000000001";
    let with_key = || {
        let mut request = command("POST", "/v1/records", &record_body(&patient));
        request.headers_mut().insert("idempotency-key", key.parse().unwrap());
        request
    };
    let (first_status, _, first) = send(&app, with_key()).await;
    let (_, _, second) = send(&app, with_key()).await;
    assert_eq!(first_status, StatusCode::CREATED);
    assert_eq!(first["replayed"], false);
    assert_eq!(second["replayed"], true);
    assert_eq!(first["events"], second["events"]);
    assert_eq!(first["position"], second["position"]);
}

#[tokio::test]
async fn invalid_fields_are_problem_documents_naming_the_rule() {
    let app = app().await;
    let patient = register(&app).await;
    let mut bad_code = record_body(&patient);
    bad_code["content"]["diagnosis"]["code"] = json!("hypertension");
    assert_problem(&send(&app, command("POST", "/v1/records", &bad_code)).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid-field");
    let mut bad_dose = record_body(&patient);
    bad_dose["content"]["medications"][0]["dose"]["amount"] = json!("-5");
    assert_problem(&send(&app, command("POST", "/v1/records", &bad_dose)).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid-field");
    let mut unknown_enum = record_body(&patient);
    unknown_enum["record_type"] = json!("astrology");
    assert_problem(&send(&app, command("POST", "/v1/records", &unknown_enum)).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid-field");
    let mut injection = patient_body();
    injection["identifiers"]["mrn"] = json!("1'; DROP TABLE commits; --");
    assert_problem(&send(&app, command("POST", "/v1/patients", &injection)).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid-field");
}

#[tokio::test]
async fn malformed_requests_never_reach_the_domain() {
    let app = app().await;
    let raw = |body: &'static [u8]| {
        Request::post("/v1/patients")
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-emr-user", USER)
            .header("x-emr-role", "nurse")
            .body(Body::from(body))
            .unwrap()
    };
    assert_problem(&send(&app, raw(b"{not json")).await, StatusCode::BAD_REQUEST, "malformed-json");
    assert_problem(&send(&app, raw(b"\xff\xfe\xfd")).await, StatusCode::BAD_REQUEST, "malformed-json");
    let deep: Vec<u8> = std::iter::repeat_n(b'[', 10_000).collect();
    let (status, content_type, _) = send(&app, raw(Box::leak(deep.into_boxed_slice()))).await;
    assert!(status.is_client_error() && content_type.as_deref() == Some("application/problem+json"), "deep nesting: {status}");
    let no_type = Request::post("/v1/patients").header("x-emr-user", USER).header("x-emr-role", "nurse").body(Body::from("{}")).unwrap();
    assert_problem(&send(&app, no_type).await, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
    let mut anonymous = command("POST", "/v1/patients", &patient_body());
    anonymous.headers_mut().remove("x-emr-user");
    assert_problem(&send(&app, anonymous).await, StatusCode::BAD_REQUEST, "invalid-header");
    let mut bad_key = command("POST", "/v1/patients", &patient_body());
    bad_key.headers_mut().insert("idempotency-key", "not-a-uuid".parse().unwrap());
    assert_problem(&send(&app, bad_key).await, StatusCode::BAD_REQUEST, "invalid-header");
    assert_problem(&send(&app, Request::get("/v1/patients/42").body(Body::empty()).unwrap()).await, StatusCode::BAD_REQUEST, "invalid-id");
    assert_problem(&send(&app, Request::get("/nowhere").body(Body::empty()).unwrap()).await, StatusCode::NOT_FOUND, "not-found");
    let (_, _, log) = send(&app, Request::get("/v1/log").body(Body::empty()).unwrap()).await;
    assert_eq!(log, json!([]), "nothing was written");
}

#[tokio::test]
async fn an_erased_patient_reads_back_shredded_and_takes_no_new_records() {
    let app = app().await;
    let patient = register(&app).await;
    let (status, _, _) =
        send(&app, command("POST", &format!("/v1/patients/{patient}/erasure"), &json!({"reason": "patient_request"}))).await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, view) = send(&app, Request::get(format!("/v1/patients/{patient}")).body(Body::empty()).unwrap()).await;
    assert_eq!(view["status"], "erased");
    assert_eq!(view["shredded"], true);
    assert_eq!(view["demographics"], Value::Null);
    assert_problem(
        &send(&app, command("POST", "/v1/records", &record_body(&patient))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "patient-not-active",
    );
}

#[tokio::test]
async fn a_record_for_an_unknown_patient_is_refused() {
    let app = app().await;
    let stranger = "0190f5c4-7d0e-7cc2-9a4e-000000000000";
    assert_problem(
        &send(&app, command("POST", "/v1/records", &record_body(stranger))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "patient-not-active",
    );
}

#[tokio::test]
async fn point_in_time_replay_returns_exactly_the_pre_amendment_version() {
    let app = app().await;
    let patient = register(&app).await;
    let (_, _, created) = send(&app, command("POST", "/v1/records", &record_body(&patient))).await;
    let record = created["aggregate_id"].as_str().unwrap().to_owned();
    let created_at = created["position"].as_u64().unwrap();
    let mut amended_content = record_body(&patient)["content"].clone();
    amended_content["title"] = json!("Annual check-up, corrected");
    let amend = json!({"content": amended_content, "reason": "wrong title"});
    let (status, _, amended) = send(&app, command("POST", &format!("/v1/records/{record}/amendments"), &amend)).await;
    assert_eq!(status, StatusCode::OK, "{amended}");

    let get = |uri: String| Request::get(uri).body(Body::empty()).unwrap();
    let (_, _, now) = send(&app, get(format!("/v1/records/{record}"))).await;
    assert_eq!(now["versions"].as_array().unwrap().len(), 2);
    let (_, _, before) = send(&app, get(format!("/v1/records/{record}?at_position={created_at}"))).await;
    assert_eq!(before["versions"].as_array().unwrap().len(), 1, "{before}");
    assert_eq!(before["versions"][0]["content"]["title"], "Annual check-up");
    assert_eq!(before["position"].as_u64(), Some(created_at));

    let (_, _, history) = send(&app, get(format!("/v1/audit/medical_record/{record}/history"))).await;
    let events = history.as_array().unwrap();
    assert_eq!(events.iter().map(|e| e["event_type"].as_str().unwrap()).collect::<Vec<_>>(), ["RecordCreated", "RecordAmended"]);
    assert_eq!(events[1]["metadata"]["actor"]["role"], "physician");
    assert!(!history.to_string().contains("Annual check-up"), "the audit history keeps PHI sealed");
    let amended_at = events[1]["metadata"]["recorded_at"].as_str().unwrap();
    let just_before = chrono::DateTime::parse_from_rfc3339(amended_at).unwrap() - chrono::Duration::microseconds(1);
    let encoded = just_before.to_rfc3339_opts(chrono::SecondsFormat::Micros, true).replace('+', "%2B");
    let (_, _, by_time) = send(&app, get(format!("/v1/records/{record}?at_time={encoded}"))).await;
    assert_eq!(by_time["versions"].as_array().map(Vec::len), Some(1), "{by_time}");
}
