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
    let support::Chart { author, patient, record, .. } = patient_with_a_record(&app).await;

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
    let support::Chart { author, patient, record, .. } = patient_with_a_record(&app).await;

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
    let searchable: Vec<&str> = statement["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["interaction"].as_array().unwrap().iter().any(|i| i["code"] == "search-type"))
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(searchable, ["Encounter", "Condition"]);
}

#[tokio::test]
async fn a_patients_encounters_and_conditions_are_found_a_page_at_a_time_as_valid_bundles() {
    let app = support::app_with_everything().await;
    let support::Chart { author, patient, record: first, .. } = patient_with_a_record(&app).await;
    let mut second = support::record_body(&patient.id, &author);
    second["visit_date"] = json!("2026-11-02");
    second["content"]["diagnosis"] = Value::Null;
    let (status, _, created) = send(&app, support::command(&author, "POST", "/v1/records", &second)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let second = created["aggregate_id"].as_str().unwrap().to_owned();
    let models = app.state.read_models.clone().unwrap();
    emr_tests::read_models::fold_all(&models.db, &models.log, 100).await;

    let (status, encounters) = fhir(&app, &author, &format!("Encounter?patient=Patient/{}", patient.id)).await;
    assert_eq!(status, StatusCode::OK, "{encounters}");
    assert_eq!(encounters["type"], "searchset");
    let ids: Vec<&str> = encounters["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [second.as_str(), first.as_str()], "most recent visit first");
    assert!(encounters["entry"][0]["fullUrl"].as_str().unwrap().ends_with(&format!("/fhir/r4/Encounter/{second}")));

    // Only the first record states a diagnosis.
    let (status, conditions) = fhir(&app, &patient, &format!("Condition?patient={}", patient.id)).await;
    assert_eq!(status, StatusCode::OK, "{conditions}");
    let codes: Vec<&str> =
        conditions["entry"].as_array().unwrap().iter().map(|e| e["resource"]["code"]["coding"][0]["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["I10"]);

    // A page of one links to the next; the last page links nowhere.
    let (_, page) = fhir(&app, &author, &format!("Encounter?patient={}&_count=1", patient.id)).await;
    assert_eq!(page["entry"].as_array().unwrap().len(), 1);
    let next = page["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next").unwrap()["url"].as_str().unwrap().to_owned();
    let next_path = next.split("/fhir/r4/").nth(1).unwrap().to_owned();
    let (_, last) = fhir(&app, &author, &next_path).await;
    assert_eq!(last["entry"][0]["resource"]["id"], first.as_str());
    let (_, beyond) = fhir(&app, &patient, &format!("Encounter?patient={}&_count=1&_offset=2", patient.id)).await;
    assert!(beyond["entry"].as_array().unwrap().is_empty() && beyond["link"].as_array().unwrap().len() == 1, "{beyond}");

    // The same grants: a physician without one finds nothing to read.
    let stranger = sign_in(&app, Role::Physician).await;
    let (status, refused) = fhir(&app, &stranger, &format!("Condition?patient={}", patient.id)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    // Nor does an empty result tell them a patient has no records.
    let other = support::sign_in(&app, Role::Patient).await;
    let mut body = support::patient_body();
    body["patient_id"] = json!(other.id);
    assert_eq!(send(&app, support::command(&author, "POST", "/v1/patients", &body)).await.0, StatusCode::CREATED);
    let (status, refused) = fhir(&app, &stranger, &format!("Encounter?patient={}", other.id)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let (status, own) = fhir(&app, &other, &format!("Encounter?patient={}", other.id)).await;
    assert_eq!((status, own["entry"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)), "{own}");
    let (status, invalid) = fhir(&app, &author, "Condition").await;
    assert_eq!((status, outcome_code(&invalid)), (StatusCode::BAD_REQUEST, "invalid-search"), "{invalid}");
    let (status, invalid) = fhir(&app, &author, &format!("Condition?patient={}&_count=0", patient.id)).await;
    assert_eq!((status, outcome_code(&invalid)), (StatusCode::BAD_REQUEST, "invalid-search"), "{invalid}");
}
