//! The FHIR R4 front door: the same reads as the API, under the same grants, each
//! recorded in the access log, answered as resources that validate against the
//! official R4 schema — and every error an OperationOutcome.

#![allow(clippy::unwrap_used)]

mod support;

use axum::http::StatusCode;
use emr_domain::actor::Role;
use serde_json::{Value, json};
use support::{TestApp, User, app, get, patient_with_a_record, send, sign_in};

fn assert_valid(resource: &Value) {
    let violations = emr_fhir::validation::violations(resource);
    assert!(violations.is_empty(), "{}\n{violations:#?}", serde_json::to_string_pretty(resource).unwrap());
}

/// A FHIR read: the status, checked to be `application/fhir+json` and valid R4.
async fn fhir(app: &TestApp, user: &User, path: &str) -> (StatusCode, Value) {
    let (status, content_type, body) = send(app, get(user, &format!("/fhir/r4/{path}"))).await;
    assert_eq!(content_type.as_deref(), Some("application/fhir+json"), "{path}: {body}");
    assert_valid(&body);
    (status, body)
}

fn outcome_code(outcome: &Value) -> &str {
    assert_eq!(outcome["resourceType"], "OperationOutcome", "{outcome}");
    outcome["issue"][0]["details"]["coding"][0]["code"].as_str().unwrap_or_default()
}

/// Disclosures recorded in the log so far.
async fn disclosures(app: &TestApp) -> usize {
    let commits = app.log.read_from(1, 10_000).await.unwrap();
    commits
        .iter()
        .map(|commit| {
            let record: Value = serde_json::from_slice(&commit.payload).unwrap();
            record["events"].as_array().unwrap().iter().filter(|e| e["event_type"] == "PhiDisclosed").count()
        })
        .sum()
}

#[tokio::test]
async fn a_patient_and_their_record_read_as_valid_fhir_resources_each_read_recorded() {
    let app = app().await;
    let (author, patient, record) = patient_with_a_record(&app).await;

    let before = disclosures(&app).await;
    let (status, resource) = fhir(&app, &patient, &format!("Patient/{}", patient.id)).await;
    assert_eq!(status, StatusCode::OK, "{resource}");
    assert_eq!((resource["id"].as_str(), resource["gender"].as_str()), (Some(patient.id.as_str()), Some("male")));
    assert_eq!(resource["identifier"][0]["value"], "MRN-42");
    assert_eq!(resource["name"][0]["text"], "Huang Min");

    let (status, encounter) = fhir(&app, &author, &format!("Encounter/{record}")).await;
    assert_eq!(status, StatusCode::OK, "{encounter}");
    assert_eq!(encounter["subject"]["reference"], format!("Patient/{}", patient.id));
    assert_eq!(encounter["period"]["start"], "2026-10-01");
    let (status, condition) = fhir(&app, &author, &format!("Condition/{record}")).await;
    assert_eq!(status, StatusCode::OK, "{condition}");
    assert_eq!(condition["code"]["coding"][0], json!({"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"}));
    let (status, medication) = fhir(&app, &patient, &format!("MedicationStatement/{record}.1")).await;
    assert_eq!(status, StatusCode::OK, "{medication}");
    assert_eq!(medication["medicationCodeableConcept"]["text"], "Amlodipine");
    assert_eq!(medication["dosage"][0]["doseAndRate"][0]["doseQuantity"]["code"], "mg");
    assert_eq!(disclosures(&app).await, before + 4, "every FHIR read is recorded in the access log");

    // An auditor sees the record exists, not what it says.
    let auditor = sign_in(&app, Role::Auditor).await;
    let (status, redacted) = fhir(&app, &auditor, &format!("Condition/{record}")).await;
    assert_eq!(status, StatusCode::OK, "{redacted}");
    assert!(redacted.get("code").is_none(), "{redacted}");
    assert_eq!(redacted["meta"]["security"][0]["code"], "REDACTED");
}

#[tokio::test]
async fn the_same_grants_apply_and_every_error_is_an_operation_outcome() {
    let app = app().await;
    let (author, patient, record) = patient_with_a_record(&app).await;

    // A physician without a grant is refused, as on the API.
    let stranger = sign_in(&app, Role::Physician).await;
    let (status, refused) = fhir(&app, &stranger, &format!("Condition/{record}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["issue"][0]["code"], "forbidden");
    assert!(!outcome_code(&refused).is_empty());
    // Another patient cannot read this one.
    let other = sign_in(&app, Role::Patient).await;
    let (status, refused) = fhir(&app, &other, &format!("Patient/{}", patient.id)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");

    let (status, missing) = fhir(&app, &author, &format!("Patient/{}", uuid::Uuid::now_v7())).await;
    assert_eq!((status, missing["issue"][0]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not-found")), "{missing}");
    let (status, invalid) = fhir(&app, &author, "Patient/not-a-uuid").await;
    assert_eq!((status, outcome_code(&invalid)), (StatusCode::BAD_REQUEST, "invalid-id"), "{invalid}");
    let (status, invalid) = fhir(&app, &author, &format!("MedicationStatement/{record}")).await;
    assert_eq!((status, outcome_code(&invalid)), (StatusCode::BAD_REQUEST, "invalid-id"), "{invalid}");
    let (status, beyond) = fhir(&app, &author, &format!("MedicationStatement/{record}.2")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the record lists one medication: {beyond}");
    let (status, unsupported) = fhir(&app, &author, "Observation/123").await;
    assert_eq!((status, outcome_code(&unsupported)), (StatusCode::NOT_FOUND, "not-supported"), "{unsupported}");

    // No token: an OperationOutcome too, not problem+json.
    let request = axum::http::Request::get(format!("/fhir/r4/Patient/{}", patient.id)).body(axum::body::Body::empty()).unwrap();
    let (status, content_type, anonymous) = send(&app, request).await;
    assert_eq!((status, content_type.as_deref()), (StatusCode::UNAUTHORIZED, Some("application/fhir+json")), "{anonymous}");
    assert_eq!(anonymous["issue"][0]["code"], "login");
    assert_valid(&anonymous);
}

#[tokio::test]
async fn the_capability_statement_lists_what_is_served_without_a_token() {
    let app = app().await;
    let request = axum::http::Request::get("/fhir/r4/metadata").body(axum::body::Body::empty()).unwrap();
    let (status, content_type, statement) = send(&app, request).await;
    assert_eq!((status, content_type.as_deref()), (StatusCode::OK, Some("application/fhir+json")), "{statement}");
    assert_valid(&statement);
    assert_eq!(statement["fhirVersion"], "4.0.1");
    let served: Vec<&str> = statement["rest"][0]["resource"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(served, ["Patient", "Encounter", "Condition", "MedicationStatement"]);
}
