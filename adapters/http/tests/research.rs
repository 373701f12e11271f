//! The research dataset: researchers get every active, unrestricted patient
//! de-identified (HIPAA Safe Harbor) and nothing else; no direct identifier
//! survives in it, ages over 89 are aggregated, and a subject's visit dates move
//! together so intervals survive.

#![allow(clippy::unwrap_used)]

mod support;

use axum::http::StatusCode;
use emr_domain::actor::Role;
use emr_tests::read_models::RunningProjectors;
use serde_json::{Value, json};
use support::{TestApp, User, app_with_everything, command, get, send, sign_in};

/// Identifiers planted in every field that may hold one. Visit dates are not
/// among them: another subject's shifted date may fall on one by chance; each
/// subject's own dates are checked below.
const PLANTED: [&str; 7] =
    ["Zebulon Quartermaine", "MRN-ZQ-777", "+86-555-0199", "zq@example.org", "17 Plum Lane", "1931-03-04", "Quartermaine's daughter"];

async fn register(app: &TestApp, doctor: &User, name: &str, born: &str, mrn: &str) -> String {
    let body = json!({"hospital_id": "HOSP-001", "identifiers": {"mrn": mrn, "external": [{"system": "national-id", "value": format!("ID-{mrn}")}]},
        "demographics": {"full_name": name, "date_of_birth": born, "gender": "male", "phone_number": "+86-555-0199",
                         "email": "zq@example.org", "address": "17 Plum Lane, Hangzhou"}});
    let (status, _, created) = send(app, command(doctor, "POST", "/v1/patients", &body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["aggregate_id"].as_str().unwrap().to_owned()
}

async fn record(app: &TestApp, doctor: &User, patient: &str, visit: &str, code: &str) -> String {
    let body = json!({"patient_id": patient, "doctor_id": doctor.id, "hospital_id": "HOSP-001", "record_type": "consultation",
        "visit_date": visit,
        "content": {"title": "Zebulon Quartermaine follow-up", "description": "Seen with Quartermaine's daughter, call +86-555-0199",
                    "diagnosis": {"code": code, "description": "Zebulon Quartermaine's hypertension"}, "treatment": "MRN-ZQ-777 plan",
                    "medications": [{"name": "Amlodipine", "dose": {"amount": "5", "unit": "mg"}, "route": "oral", "frequency": "17 Plum Lane"}]}});
    let (status, _, created) = send(app, command(doctor, "POST", "/v1/records", &body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["aggregate_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn researchers_get_a_dataset_with_no_identifier_left_and_nobody_else_gets_it() {
    let app = app_with_everything().await;
    let models = app.state.read_models.clone().unwrap();
    let projectors = RunningProjectors::start(models.db, models.log, app.phi_codec(), 100);
    let doctor = sign_in(&app, Role::Physician).await;
    let elder = register(&app, &doctor, "Zebulon Quartermaine", "1931-03-04", "MRN-ZQ-777").await;
    let younger = register(&app, &doctor, "Zebulon Quartermaine", "1980-07-09", "MRN-ZQ-778").await;
    let erased = register(&app, &doctor, "Erased Person", "1970-01-01", "MRN-ER-1").await;
    let mut ids = vec![elder.clone(), younger.clone(), erased.clone(), doctor.id.clone()];
    ids.push(record(&app, &doctor, &elder, "2026-01-10", "I10").await);
    ids.push(record(&app, &doctor, &elder, "2026-01-20", "E11.9").await);
    ids.push(record(&app, &doctor, &younger, "2026-02-01", "J45.909").await);
    let admin = sign_in(&app, Role::Admin).await;
    let erasure =
        send(&app, command(&admin, "POST", &format!("/v1/patients/{erased}/erasure"), &json!({"reason": "patient_request"}))).await;
    assert_eq!(erasure.0, StatusCode::OK, "{}", erasure.2);

    for who in [&doctor, &admin, &sign_in(&app, Role::Auditor).await] {
        assert_eq!(send(&app, get(who, "/v1/research/export")).await.0, StatusCode::FORBIDDEN);
    }
    let researcher = sign_in(&app, Role::Researcher).await;
    let (status, _, dataset) = send(&app, get(&researcher, "/v1/research/export")).await;
    assert_eq!(status, StatusCode::OK, "{dataset}");
    let text = dataset.to_string();
    for identifier in PLANTED.iter().map(|s| s.to_string()).chain(ids) {
        assert!(!text.contains(&identifier), "{identifier} survived de-identification: {text}");
    }
    assert!(!text.contains("Plum") && !text.contains("Quartermaine"), "no fragment of a name or address either");

    let subjects = dataset["subjects"].as_array().unwrap();
    assert_eq!(subjects.len(), 2, "the erased patient is not in it");
    let (old, young): (Vec<&Value>, Vec<&Value>) = subjects.iter().partition(|s| s["aged_90_or_over"] == true);
    assert_eq!((old.len(), old[0]["birth_year"].clone()), (1, Value::Null), "over 89: no birth year");
    assert_eq!(young[0]["birth_year"], 1980);
    let visits: Vec<chrono::NaiveDate> =
        old[0]["records"].as_array().unwrap().iter().map(|r| r["shifted_visit_date"].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(visits.len(), 2);
    assert_eq!((visits[0] - visits[1]).num_days().abs(), 10, "a subject's dates move together: {visits:?}");
    let true_visit = |code: &str| match code {
        "I10" => "2026-01-10",
        "E11.9" => "2026-01-20",
        _ => "2026-02-01",
    };
    for record in subjects.iter().flat_map(|s| s["records"].as_array().unwrap()) {
        let code = record["diagnosis_code"].as_str().unwrap();
        assert_ne!(record["shifted_visit_date"], true_visit(code), "the true visit date of {code} survived");
    }
    let codes: Vec<&str> = old[0]["records"].as_array().unwrap().iter().map(|r| r["diagnosis_code"].as_str().unwrap()).collect();
    assert!(codes.contains(&"I10") && codes.contains(&"E11.9"), "coded data stays: {codes:?}");
    assert_ne!(old[0]["subject"], young[0]["subject"]);

    // Another export: other pseudonyms, so datasets cannot be joined on them.
    let (_, _, again) = send(&app, get(&researcher, "/v1/research/export")).await;
    let pseudonyms =
        |d: &Value| d["subjects"].as_array().unwrap().iter().map(|s| s["subject"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert!(pseudonyms(&again).iter().all(|p| !pseudonyms(&dataset).contains(p)));
    projectors.stop().await;
}
