//! The FHIR R4 front door: the same reads as the API, under the same grants, each
//! recorded in the access log, answered as resources that validate against the
//! official R4 schema — and every error an OperationOutcome.

#![allow(clippy::unwrap_used)]

mod support;

use axum::http::StatusCode;
use emr_domain::actor::Role;
use serde_json::{Value, json};
use support::{TestApp, User, app, disclosures, get, patient_with_a_record, send, sign_in};

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
    assert_eq!(
        served,
        [
            "Patient",
            "Encounter",
            "Condition",
            "MedicationStatement",
            "DiagnosticReport",
            "DocumentReference",
            "Binary",
            "Consent",
            "AuditEvent",
            "Provenance",
            "Practitioner",
            "Group"
        ]
    );
    let searchable: Vec<&str> = statement["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["interaction"].as_array().is_some_and(|all| all.iter().any(|i| i["code"] == "search-type")))
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        searchable,
        ["Patient", "Encounter", "Condition", "DiagnosticReport", "DocumentReference", "Consent", "AuditEvent", "Provenance"]
    );
    let patient = &statement["rest"][0]["resource"][0];
    assert_eq!(patient["readHistory"], true, "vread is served: {patient}");
    assert_eq!(patient["operation"][0]["name"], "export", "Bulk Data's Patient-level export: {patient}");
    let system: Vec<&str> = statement["rest"][0]["interaction"].as_array().unwrap().iter().map(|i| i["code"].as_str().unwrap()).collect();
    assert_eq!(system, ["transaction", "batch"]);
    assert_eq!(statement["rest"][0]["operation"][0]["name"], "export", "the system-level export: {statement}");
    let encounter = &statement["rest"][0]["resource"][1];
    let params: Vec<&str> = encounter["searchParam"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(params.contains(&"date") && params.contains(&"patient"), "{encounter}");
    assert_eq!(encounter["searchInclude"], json!(["Encounter:subject"]));
    let group = statement["rest"][0]["resource"].as_array().unwrap().iter().find(|r| r["type"] == "Group").unwrap();
    assert_eq!(group["operation"][0]["name"], "export", "{group}");
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
    support::fold(&app).await;

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

    // The record's type and status narrow an Encounter search (Condition has neither).
    let (status, consultations) =
        fhir(&app, &patient, &format!("Encounter?patient={}&type=urn:emr-ledger:record-type|consultation", patient.id)).await;
    assert_eq!((status, consultations["entry"].as_array().map(Vec::len)), (StatusCode::OK, Some(2)), "{consultations}");
    for query in ["type=lab_result", "status=entered-in-error"] {
        let (status, none) = fhir(&app, &patient, &format!("Encounter?patient={}&{query}", patient.id)).await;
        assert_eq!((status, none["entry"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)), "{query}: {none}");
    }
    let (status, refused) = fhir(&app, &patient, &format!("Condition?patient={}&type=consultation", patient.id)).await;
    assert_eq!((status, outcome_code(&refused)), (StatusCode::BAD_REQUEST, "invalid-search"), "{refused}");

    // `_include` brings the patient along, read (and recorded) as a read of the patient;
    // a record's author without a grant gets the records and an outcome instead.
    let before = disclosures(&app).await;
    let (status, with_patient) = fhir(&app, &patient, &format!("Condition?patient={}&_include=Condition:subject", patient.id)).await;
    assert_eq!(status, StatusCode::OK, "{with_patient}");
    let modes: Vec<(&str, &str)> = with_patient["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["resource"]["resourceType"].as_str().unwrap(), e["search"]["mode"].as_str().unwrap()))
        .collect();
    assert_eq!(modes, [("Condition", "match"), ("Patient", "include")]);
    assert_eq!(disclosures(&app).await, before + 3, "both records read for their conditions, and the patient");
    assert!(with_patient["link"][0]["url"].as_str().unwrap().contains("_include=Condition%3Asubject"), "{with_patient}");
    let (status, without) = fhir(&app, &author, &format!("Encounter?patient={}&_include=Encounter:subject", patient.id)).await;
    assert_eq!(status, StatusCode::OK, "{without}");
    let last = without["entry"].as_array().unwrap().last().unwrap();
    assert_eq!((last["resource"]["resourceType"].as_str(), last["search"]["mode"].as_str()), (Some("OperationOutcome"), Some("outcome")));
    let (status, mismatched) = fhir(&app, &author, &format!("Encounter?patient={}&_include=Condition:subject", patient.id)).await;
    assert_eq!((status, outcome_code(&mismatched)), (StatusCode::BAD_REQUEST, "invalid-search"));

    // A page of one links to the next; the last page links nowhere.
    let (_, page) = fhir(&app, &author, &format!("Encounter?patient={}&_count=1", patient.id)).await;
    assert_eq!(page["entry"].as_array().unwrap().len(), 1);
    let next = page["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next").unwrap()["url"].as_str().unwrap().to_owned();
    let next_path = next.split("/fhir/r4/").nth(1).unwrap().to_owned();
    let (_, last) = fhir(&app, &author, &next_path).await;
    assert_eq!(last["entry"][0]["resource"]["id"], first.as_str());
    let (_, beyond) = fhir(&app, &patient, &format!("Encounter?patient={}&_count=1&_offset=2", patient.id)).await;
    assert!(beyond["entry"].as_array().unwrap().is_empty() && beyond["link"].as_array().unwrap().len() == 1, "{beyond}");

    // The common parameters narrow and order the matches; the links keep them.
    let ids_of = |bundle: &Value| -> Vec<String> {
        bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap().to_owned()).collect()
    };
    let pid = &patient.id;
    let (_, later) = fhir(&app, &author, &format!("Encounter?patient={pid}&date=ge2026-11-01")).await;
    assert_eq!(ids_of(&later), [second.as_str()]);
    let (_, earlier) = fhir(&app, &author, &format!("Encounter?patient={pid}&date=lt2026-11-01&date=ge2026-10-01")).await;
    assert_eq!(ids_of(&earlier), [first.as_str()]);
    let (_, oldest_first) = fhir(&app, &author, &format!("Encounter?patient={pid}&_sort=date&_count=1")).await;
    assert_eq!(ids_of(&oldest_first), [first.as_str()]);
    let next =
        oldest_first["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next").unwrap()["url"].as_str().unwrap().to_owned();
    let (_, then) = fhir(&app, &author, next.split("/fhir/r4/").nth(1).unwrap()).await;
    assert_eq!(ids_of(&then), [second.as_str()], "the next link keeps the order: {next}");
    let (_, by_id) = fhir(&app, &author, &format!("Encounter?patient={pid}&_id={first}")).await;
    assert_eq!(ids_of(&by_id), [first.as_str()]);
    let (_, recent) = fhir(&app, &author, &format!("Encounter?patient={pid}&_lastUpdated=ge2026-01-01&_sort=-_lastUpdated")).await;
    assert_eq!(ids_of(&recent), [second.as_str(), first.as_str()], "most recently changed first");
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).format("%Y-%m-%d").to_string();
    let (status, none) = fhir(&app, &patient, &format!("Encounter?patient={pid}&_lastUpdated=gt{future}")).await;
    assert_eq!((status, ids_of(&none).len()), (StatusCode::OK, 0), "{none}");
    let (status, hypertension) =
        fhir(&app, &author, &format!("Condition?patient={pid}&code=http://hl7.org/fhir/sid/icd-10%7Ci10,E11.9")).await;
    assert_eq!(status, StatusCode::OK, "{hypertension}");
    assert_eq!(ids_of(&hypertension), [first.as_str()], "diagnoses are found by code through the search index");
    let (status, diabetes) = fhir(&app, &patient, &format!("Condition?patient={pid}&code=E11.9")).await;
    assert_eq!((status, diabetes["entry"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)), "{diabetes}");
    let (status, refused) = fhir(&app, &author, &format!("Encounter?patient={pid}&code=I10")).await;
    assert_eq!((status, outcome_code(&refused)), (StatusCode::BAD_REQUEST, "invalid-search"), "code is a Condition's: {refused}");
    let (status, refused) = fhir(&app, &author, &format!("Condition?patient={pid}&category=problem-list-item")).await;
    assert_eq!(
        (status, outcome_code(&refused)),
        (StatusCode::BAD_REQUEST, "invalid-search"),
        "an unserved parameter is refused, not ignored"
    );
    let (status, refused) = fhir(&app, &author, &format!("Condition?patient={pid}&date=ap2026-10-01")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");

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

#[tokio::test]
async fn patients_are_found_by_name_birth_date_gender_and_identifier_among_those_the_caller_may_read() {
    let app = support::app_with_everything().await;
    let doctor = sign_in(&app, Role::Physician).await;
    let register = |id: &str, name: &str, born: &str, gender: &str, mrn: &str| {
        let mut body = support::patient_body();
        body["patient_id"] = json!(id);
        body["identifiers"]["mrn"] = json!(mrn);
        body["identifiers"]["external"] = json!([{"system": "urn:oid:2.16.156.1", "value": format!("ID-{mrn}")}]);
        body["demographics"]["full_name"] = json!(name);
        body["demographics"]["date_of_birth"] = json!(born);
        body["demographics"]["gender"] = json!(gender);
        body
    };
    let (mut ids, mut patients) = (Vec::new(), Vec::new());
    for (name, born, gender, mrn) in [
        ("Wang Fang", "1980-02-29", "female", "MRN-W1"),
        ("Wang Wei", "1980-07-01", "male", "MRN-W2"),
        ("王芳", "1991-05-05", "female", "MRN-W3"),
        ("Li Wang", "1980-02-01", "female", "MRN-L1"),
    ] {
        let patient = sign_in(&app, Role::Patient).await;
        let body = register(&patient.id, name, born, gender, mrn);
        let (status, _, created) = send(&app, support::command(&doctor, "POST", "/v1/patients", &body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        ids.push(patient.id.clone());
        patients.push(patient);
    }
    // The registering physician holds no grant yet: they find no one.
    support::fold(&app).await;
    let found = |bundle: &Value| -> Vec<String> {
        let mut ids: Vec<String> =
            bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap().to_owned()).collect();
        ids.sort();
        ids
    };
    let (status, none) = fhir(&app, &doctor, "Patient?name=wang").await;
    assert_eq!((status, found(&none).len()), (StatusCode::OK, 0), "{none}");

    // Every patient grants the physician access; now the index answers.
    for patient in &patients {
        let grant = support::grant_body(&patient.id, &doctor.id, support::in_days(30));
        let (status, _, granted) = send(&app, support::command(patient, "POST", "/v1/grants", &grant)).await;
        assert_eq!(status, StatusCode::CREATED, "{granted}");
    }
    support::fold(&app).await;
    let expect = |indexes: &[usize]| -> Vec<String> {
        let mut wanted: Vec<String> = indexes.iter().map(|&i| ids[i].clone()).collect();
        wanted.sort();
        wanted
    };
    let before = disclosures(&app).await;
    let (status, wangs) = fhir(&app, &doctor, "Patient?name=WANG").await;
    assert_eq!(status, StatusCode::OK, "{wangs}");
    assert_eq!(found(&wangs), expect(&[0, 1, 3]), "the start of any word of the name, in any case");
    assert_eq!(disclosures(&app).await, before + 3, "each patient found is read, and the read recorded");
    for (query, matches) in [
        ("name=wang%20f", vec![0]),
        ("name:exact=Wang%20Fang", vec![0]),
        ("name:exact=wang%20fang", vec![]),
        ("name=%E7%8E%8B", vec![2]),
        ("birthdate=1980", vec![0, 1, 3]),
        ("birthdate=1980-02", vec![0, 3]),
        ("birthdate=eq1980-02-29", vec![0]),
        ("name=wang&gender=female", vec![0, 3]),
        ("name=wang&gender=female&birthdate=1980-02-29", vec![0]),
        ("gender=male,female&birthdate=1991", vec![2]),
        ("identifier=MRN-W2", vec![1]),
        ("identifier=urn:emr-ledger:hospital:HOSP-001:mrn|MRN-L1", vec![3]),
        ("identifier=urn:emr-ledger:hospital:HOSP-002:mrn|MRN-L1", vec![]),
        ("identifier=urn:oid:2.16.156.1|ID-MRN-W3", vec![2]),
        ("name=zhang", vec![]),
    ] {
        let (status, bundle) = fhir(&app, &doctor, &format!("Patient?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {bundle}");
        assert_eq!(found(&bundle), expect(&matches), "{query}");
    }
    let (_, by_id) = fhir(&app, &doctor, &format!("Patient?_id={},{}&gender=female", ids[0], ids[1])).await;
    assert_eq!(found(&by_id), expect(&[0]));
    let in_order = |bundle: &Value| -> Vec<String> {
        bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap().to_owned()).collect()
    };
    let (_, newest) = fhir(&app, &doctor, "Patient?name=wang&_sort=-_lastUpdated").await;
    assert_eq!(in_order(&newest), [ids[3].clone(), ids[1].clone(), ids[0].clone()], "most recently changed first");
    let (_, oldest) = fhir(&app, &doctor, "Patient?name=wang&_sort=_lastUpdated&_lastUpdated=ge2026-01-01").await;
    assert_eq!(in_order(&oldest), [ids[0].clone(), ids[1].clone(), ids[3].clone()]);
    let future = (chrono::Utc::now() + chrono::Duration::days(2)).format("%Y-%m-%d").to_string();
    let (_, none) = fhir(&app, &doctor, &format!("Patient?name=wang&_lastUpdated=ge{future}")).await;
    assert_eq!(found(&none), expect(&[]));

    // Pages of one, linked; the link keeps the search.
    let (_, page) = fhir(&app, &doctor, "Patient?name=wang&_count=2").await;
    assert_eq!(page["entry"].as_array().unwrap().len(), 2);
    let next = page["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next").unwrap()["url"].as_str().unwrap().to_owned();
    assert!(next.contains("name=wang") && next.contains("_offset=2"), "{next}");
    let (_, rest) = fhir(&app, &doctor, next.split("/fhir/r4/").nth(1).unwrap()).await;
    assert_eq!(rest["entry"].as_array().unwrap().len(), 1);

    // A changed name is found by the new one only.
    let update = register(&ids[0], "Zhao Fang", "1980-02-29", "female", "MRN-W1")["demographics"].clone();
    let (status, _, updated) =
        send(&app, support::command(&doctor, "PUT", &format!("/v1/patients/{}/demographics", ids[0]), &update)).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    support::fold(&app).await;
    let (_, zhao) = fhir(&app, &doctor, "Patient?name=zhao").await;
    assert_eq!(found(&zhao), expect(&[0]));
    let (_, wang_fang) = fhir(&app, &doctor, "Patient?name=wang%20fang").await;
    assert_eq!(found(&wang_fang), expect(&[]));

    // Someone else's patients, and roles that read no demographics, are not searched.
    let other = sign_in(&app, Role::Physician).await;
    let (_, theirs) = fhir(&app, &other, "Patient?name=wang").await;
    assert_eq!(found(&theirs), expect(&[]));
    let auditor = sign_in(&app, Role::Auditor).await;
    let (status, refused) = fhir(&app, &auditor, "Patient?name=wang").await;
    assert_eq!((status, outcome_code(&refused)), (StatusCode::FORBIDDEN, "role-not-permitted"), "{refused}");
    for query in ["birthdate=gt1980-01-01", "gender=f", "name:contains=ang", "address=Beijing", "_count=0", "_sort=birthdate"] {
        let (status, invalid) = fhir(&app, &doctor, &format!("Patient?{query}")).await;
        assert_eq!((status, outcome_code(&invalid)), (StatusCode::BAD_REQUEST, "invalid-search"), "{query}: {invalid}");
    }
}

/// A FHIR write: `method` on `path` with `resource`, conditional on `if_match`.
async fn write(
    app: &TestApp,
    user: &User,
    method: &str,
    path: &str,
    resource: &Value,
    if_match: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = support::command(user, method, &format!("/fhir/r4/{path}"), resource);
    request.headers_mut().insert("content-type", "application/fhir+json".parse().unwrap());
    if let Some(tag) = if_match {
        request.headers_mut().insert("if-match", tag.parse().unwrap());
    }
    let response = tower::ServiceExt::oneshot(app.router.clone(), request).await.unwrap();
    let status = response.status();
    let etag = response.headers().get("etag").map(|v| v.to_str().unwrap().to_owned());
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !body.is_null() {
        assert_valid(&body);
    }
    (status, etag, body)
}

fn hypertensive_heart_disease(record: &str) -> Value {
    json!({
        "resourceType": "Condition",
        "id": record,
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I11.9"}], "text": "Hypertensive heart disease"},
    })
}

fn version_ids(bundle: &Value) -> Vec<(String, String)> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["request"]["method"].as_str().unwrap().to_owned(), e["response"]["etag"].as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn versions_come_from_the_log_and_a_stale_if_match_is_refused_with_412() {
    let app = app().await;
    let support::Chart { author, record, .. } = patient_with_a_record(&app).await;
    let response = tower::ServiceExt::oneshot(app.router.clone(), get(&author, &format!("/fhir/r4/Condition/{record}"))).await.unwrap();
    assert_eq!(response.headers().get("etag").unwrap(), "W/\"1\"", "a read names its version");

    // Amending the diagnosis against the version read: a new version.
    let changed = write(&app, &author, "PUT", &format!("Condition/{record}"), &hypertensive_heart_disease(&record), Some("W/\"1\"")).await;
    assert_eq!((changed.0, changed.1.as_deref()), (StatusCode::OK, Some("W/\"2\"")), "{}", changed.2);
    assert_eq!(changed.2["code"]["coding"][0]["code"], "I11.9");
    assert_eq!(changed.2["meta"]["versionId"], "2");

    // The same change sent against the old version is refused, and changes nothing.
    let mut again = hypertensive_heart_disease(&record);
    again["code"]["coding"][0]["code"] = json!("I13.0");
    let stale = write(&app, &author, "PUT", &format!("Condition/{record}"), &again, Some("W/\"1\"")).await;
    assert_eq!((stale.0, outcome_code(&stale.2)), (StatusCode::PRECONDITION_FAILED, "version-mismatch"), "{}", stale.2);
    assert_eq!(stale.2["issue"][0]["code"], "conflict");
    let (_, now) = fhir(&app, &author, &format!("Condition/{record}")).await;
    assert_eq!((now["meta"]["versionId"].as_str(), now["code"]["coding"][0]["code"].as_str()), (Some("2"), Some("I11.9")));

    // The REST API honours the same header.
    let amendment = json!({"content": {"title": "Follow-up", "description": null, "diagnosis": null, "treatment": null, "medications": []}, "reason": "typo"});
    let mut request = support::command(&author, "POST", &format!("/v1/records/{record}/amendments"), &amendment);
    request.headers_mut().insert("if-match", "W/\"1\"".parse().unwrap());
    support::assert_problem(&send(&app, request).await, StatusCode::PRECONDITION_FAILED, "version-mismatch");
    let mut request = support::command(&author, "POST", &format!("/v1/records/{record}/amendments"), &amendment);
    request.headers_mut().insert("if-match", "three".parse().unwrap());
    support::assert_problem(&send(&app, request).await, StatusCode::BAD_REQUEST, "invalid-header");

    // Each version reads back as it was (vread), and the history lists them newest first.
    let (status, first) = fhir(&app, &author, &format!("Condition/{record}/_history/1")).await;
    assert_eq!((status, first["code"]["coding"][0]["code"].as_str()), (StatusCode::OK, Some("I10")), "{first}");
    let (status, second) = fhir(&app, &author, &format!("Condition/{record}/_history/2")).await;
    assert_eq!((status, second["code"]["coding"][0]["code"].as_str()), (StatusCode::OK, Some("I11.9")), "{second}");
    let (status, missing) = fhir(&app, &author, &format!("Condition/{record}/_history/9")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");

    // A deletion, conditional too; the encounter reads as entered in error.
    let refused = write(&app, &author, "DELETE", &format!("Encounter/{record}"), &Value::Null, Some("W/\"1\"")).await;
    assert_eq!(refused.0, StatusCode::PRECONDITION_FAILED, "{}", refused.2);
    let deleted = write(&app, &author, "DELETE", &format!("Encounter/{record}"), &Value::Null, Some("W/\"2\"")).await;
    assert_eq!((deleted.0, deleted.1.as_deref()), (StatusCode::NO_CONTENT, Some("W/\"3\"")), "{}", deleted.2);
    let (_, encounter) = fhir(&app, &author, &format!("Encounter/{record}")).await;
    assert_eq!(encounter["status"], "entered-in-error");
    let (status, history) = fhir(&app, &author, &format!("Encounter/{record}/_history")).await;
    assert_eq!((status, history["type"].as_str()), (StatusCode::OK, Some("history")), "{history}");
    let expected = [("DELETE", "W/\"3\""), ("PUT", "W/\"2\""), ("POST", "W/\"1\"")].map(|(m, e)| (m.to_owned(), e.to_owned()));
    assert_eq!(version_ids(&history), expected);
    assert!(history["entry"][0].get("resource").is_none(), "a deletion carries no resource");
    assert_eq!(history["entry"][2]["resource"]["type"][0]["text"], "Annual check-up");

    // A stranger sees no version of it.
    let stranger = sign_in(&app, Role::Physician).await;
    let (status, refused) = fhir(&app, &stranger, &format!("Condition/{record}/_history/1")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let (status, refused) = fhir(&app, &stranger, &format!("Encounter/{record}/_history")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
}

fn fhir_patient(mrn: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [
            {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "value": mrn},
            {"system": "urn:oid:2.16.156.10011.1.1", "value": "110101197502030011"}
        ],
        "name": [{"family": "Li", "given": ["Wei"]}],
        "gender": "female",
        "birthDate": "1982-07-14",
        "telecom": [{"system": "phone", "value": "+86 10 5555 0101"}],
        "address": [{"line": ["1 Chang'an Avenue", "Beijing"]}],
        "managingOrganization": {"identifier": {"value": "HOSP-001"}}
    })
}

#[tokio::test]
async fn patients_are_registered_and_updated_as_fhir_resources() {
    let app = app().await;
    let clerk = sign_in(&app, Role::Physician).await;
    let (status, etag, created) = write(&app, &clerk, "POST", "Patient", &fhir_patient("MRN-77"), None).await;
    assert_eq!((status, etag.as_deref()), (StatusCode::CREATED, Some("W/\"1\"")), "{created}");
    assert_eq!(created["name"][0]["text"], "Wei Li");
    assert_eq!(created["identifier"][0]["value"], "MRN-77");
    assert_eq!(created["identifier"][1]["value"], "110101197502030011");
    assert_eq!(created["address"][0]["text"], "1 Chang'an Avenue, Beijing");

    // What cannot become a patient is refused, naming the element at fault.
    let mut no_birth_date = fhir_patient("MRN-78");
    no_birth_date.as_object_mut().unwrap().remove("birthDate");
    let (status, _, refused) = write(&app, &clerk, "POST", "Patient", &no_birth_date, None).await;
    assert_eq!((status, outcome_code(&refused)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid-resource"), "{refused}");
    assert!(refused["issue"][0]["diagnostics"].as_str().unwrap().contains("Patient.birthDate"), "{refused}");
    let mut no_mrn = fhir_patient("MRN-79");
    no_mrn["identifier"] = json!([]);
    let (status, _, refused) = write(&app, &clerk, "POST", "Patient", &no_mrn, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let mut request = support::command(&clerk, "POST", "/fhir/r4/Patient", &fhir_patient("MRN-80"));
    request.headers_mut().insert("if-none-exist", "identifier=MRN-80".parse().unwrap());
    let (status, _, refused) = send(&app, request).await;
    assert_eq!((status, outcome_code(&refused)), (StatusCode::BAD_REQUEST, "not-supported"), "{refused}");

    // A patient updates their own demographics, against the version they read.
    let support::Chart { patient, .. } = patient_with_a_record(&app).await;
    let mut mine = fhir_patient("ignored");
    mine["id"] = json!(patient.id);
    mine["name"] = json!([{"text": "Huang Min"}]);
    mine["gender"] = json!("male");
    let (status, etag, updated) = write(&app, &patient, "PUT", &format!("Patient/{}", patient.id), &mine, Some("W/\"1\"")).await;
    assert_eq!((status, etag.as_deref()), (StatusCode::OK, Some("W/\"2\"")), "{updated}");
    assert_eq!(updated["telecom"][0]["value"], "+86 10 5555 0101");
    assert_eq!(updated["identifier"][0]["value"], "MRN-42", "identifiers stay as registered");
    let (status, _, stale) = write(&app, &patient, "PUT", &format!("Patient/{}", patient.id), &mine, Some("W/\"1\"")).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{stale}");
    mine["id"] = json!(uuid::Uuid::now_v7());
    let (status, _, mismatch) = write(&app, &patient, "PUT", &format!("Patient/{}", patient.id), &mine, None).await;
    assert_eq!((status, outcome_code(&mismatch)), (StatusCode::BAD_REQUEST, "id-mismatch"), "{mismatch}");

    let (status, history) = fhir(&app, &patient, &format!("Patient/{}/_history", patient.id)).await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let expected = [("PUT", "W/\"2\""), ("POST", "W/\"1\"")].map(|(m, e)| (m.to_owned(), e.to_owned()));
    assert_eq!(version_ids(&history), expected);
    let (_, first) = fhir(&app, &patient, &format!("Patient/{}/_history/1", patient.id)).await;
    assert!(first.get("telecom").is_none(), "version 1 had no phone number: {first}");
}

#[tokio::test]
async fn grants_read_as_consents_reads_as_audit_events_and_versions_carry_their_provenance() {
    let app = support::app_with_everything().await;
    let support::Chart { author, patient, record, .. } = patient_with_a_record(&app).await;
    let colleague = sign_in(&app, Role::Physician).await;
    let grant = support::grant_body(&patient.id, &colleague.id, support::in_days(30));
    let (status, _, granted) = send(&app, support::command(&patient, "POST", "/v1/grants", &grant)).await;
    assert_eq!(status, StatusCode::CREATED, "{granted}");
    let grant_id = granted["aggregate_id"].as_str().unwrap().to_owned();
    let (status, _) = fhir(&app, &colleague, &format!("Condition/{record}")).await;
    assert_eq!(status, StatusCode::OK, "the grant lets the colleague read");
    support::fold(&app).await;

    let (status, consents) = fhir(&app, &patient, &format!("Consent?patient={}", patient.id)).await;
    assert_eq!(status, StatusCode::OK, "{consents}");
    let consent = &consents["entry"][0]["resource"];
    assert_eq!((consent["id"].as_str(), consent["status"].as_str()), (Some(grant_id.as_str()), Some("active")), "{consents}");
    let actions: Vec<&str> =
        consent["provision"]["action"].as_array().unwrap().iter().map(|a| a["coding"][0]["code"].as_str().unwrap()).collect();
    assert_eq!(actions, ["access", "correct"]);
    assert_eq!(consent["provision"]["actor"][0]["reference"]["identifier"]["value"], colleague.id.as_str());
    let (status, read) = fhir(&app, &colleague, &format!("Consent/{grant_id}")).await;
    assert_eq!((status, read["id"].as_str()), (StatusCode::OK, Some(grant_id.as_str())), "the grantee reads it: {read}");
    let (status, refused) = fhir(&app, &colleague, &format!("Consent?patient={}", patient.id)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a grantee does not list the patient's other grants: {refused}");

    // "Who saw my data": the colleague's read, relying on the grant.
    let (status, events) = fhir(&app, &patient, &format!("AuditEvent?patient={}", patient.id)).await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let by_colleague = events["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|e| e["agent"][0]["who"]["identifier"]["value"] == colleague.id.as_str())
        .unwrap_or_else(|| panic!("the colleague's read is listed: {events}"));
    assert_eq!(by_colleague["purposeOfEvent"][0]["coding"][0]["code"], "TREAT");
    let entities: Vec<&str> = by_colleague["entity"].as_array().unwrap().iter().map(|e| e["what"]["reference"].as_str().unwrap()).collect();
    assert_eq!(entities, [format!("Patient/{}", patient.id), format!("Encounter/{record}"), format!("Consent/{grant_id}")]);
    let (status, refused) = fhir(&app, &author, &format!("AuditEvent?patient={}", patient.id)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");

    // An auditor traces each version to its author and its anchoring receipt.
    let auditor = sign_in(&app, Role::Auditor).await;
    let (status, provenance) = fhir(&app, &auditor, &format!("Provenance?target=Encounter/{record}")).await;
    assert_eq!(status, StatusCode::OK, "{provenance}");
    let origin = &provenance["entry"][0]["resource"];
    assert_eq!(origin["target"][0]["reference"], format!("Encounter/{record}/_history/1"));
    assert_eq!(origin["agent"][0]["who"]["identifier"]["value"], author.id.as_str());
    assert_eq!(origin["extension"][0]["valueUri"], format!("/v1/audit/medical_record/{record}/events/1/receipt"));
    let (status, refused) = fhir(&app, &patient, &format!("Provenance?target=Encounter/{record}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let (status, invalid) = fhir(&app, &auditor, &format!("Provenance?target=Observation/{record}")).await;
    assert_eq!((status, outcome_code(&invalid)), (StatusCode::BAD_REQUEST, "invalid-search"), "{invalid}");
}

#[tokio::test]
async fn an_ai_suggestion_reads_as_a_diagnostic_report_preliminary_until_a_physician_reviews_it() {
    use axum::body::Body;
    use axum::http::{Request, header};
    use emr_domain::diagnosis::{ClassProbability, Finding, ModelCommand, ModelRef, Suggestion, Validation};
    use emr_domain::ids::{AttachmentId, ModelId, SuggestionId, UserId};
    use emr_domain::metadata::CommandContext;
    use emr_domain::record::RecordCommand;

    let app = support::app_with_everything().await;
    let support::Chart { author, record, .. } = patient_with_a_record(&app).await;
    // The scan: uploaded and sealed like any attachment.
    let scan = AttachmentId::new();
    let upload = Request::post(format!("/v1/records/{record}/attachments/content?filename=scan.png"))
        .header(header::CONTENT_TYPE, "image/png")
        .header("idempotency-key", scan.to_string())
        .body(Body::from(&b"\x89PNG not really"[..]))
        .unwrap();
    assert_eq!(send(&app, support::as_user(&author, upload)).await.0, StatusCode::CREATED);
    let clinic = &app.state.clinic;
    let record_id = record.parse().unwrap();
    let stored = clinic.load_record(record_id).await.unwrap().state().attachments()[0].clone();

    // An active model and its suggestion, as a diagnosis job records it.
    let card = emr_domain::fixtures::model_card();
    let (model, by, system) =
        (ModelId::for_artifact(&card.sha256), UserId::new(), || CommandContext::new(emr_domain::actor::Actor::system()));
    let validation = Validation { dataset: emr_domain::fixtures::text("held-out set"), samples: 100, accuracy: 0.96 };
    for command in [
        ModelCommand::Register { model_id: model, card: card.clone(), registered_by: by },
        ModelCommand::Validate { validation, validated_by: by },
        ModelCommand::Activate { activated_by: by },
    ] {
        clinic.model(model, command, &system()).await.unwrap();
    }
    let suggestion_id = SuggestionId::new();
    let probabilities = card
        .labels
        .iter()
        .enumerate()
        .map(|(i, label)| ClassProbability {
            label: label.clone(),
            probability: if i == 0 { 0.9 } else { 0.1 / (card.labels.len() - 1) as f32 },
        })
        .collect();
    let suggestion = Suggestion {
        suggestion_id,
        attachment_id: scan,
        input_sha256: stored.sha256,
        model: ModelRef { name: card.name.clone(), version: card.version.clone(), sha256: card.sha256 },
        preprocessing: json!({}),
        finding: Finding { probabilities, top: Some(card.labels[0].clone()), confidence: 0.9 },
        explanation: None,
    };
    let actor = emr_domain::actor::Actor::new(author.id.parse::<UserId>().unwrap(), Role::Physician);
    clinic.record(record_id, RecordCommand::SuggestDiagnosis(suggestion), &CommandContext::new(actor)).await.unwrap();
    support::fold(&app).await;

    let (status, report) = fhir(&app, &author, &format!("DiagnosticReport/{suggestion_id}")).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (report["status"].as_str(), report["encounter"]["reference"].as_str()),
        (Some("preliminary"), Some(format!("Encounter/{record}").as_str()))
    );
    let conclusion = report["conclusion"].as_str().unwrap();
    assert!(
        conclusion.starts_with(&format!("{} (90.0 %)", card.labels[0])) && conclusion.contains("requires physician review"),
        "{conclusion}"
    );
    let stranger = sign_in(&app, Role::Physician).await;
    let (status, refused) = fhir(&app, &stranger, &format!("DiagnosticReport/{suggestion_id}")).await;
    assert_eq!((status, outcome_code(&refused)), (StatusCode::FORBIDDEN, "no-active-grant"), "{refused}");
    assert_eq!(fhir(&app, &author, &format!("DiagnosticReport/{}", SuggestionId::new())).await.0, StatusCode::NOT_FOUND);

    let review = json!({"outcome": "corrected", "correction": "meningioma"});
    let reviewed =
        send(&app, support::command(&author, "POST", &format!("/v1/records/{record}/suggestions/{suggestion_id}/review"), &review)).await;
    assert_eq!(reviewed.0, StatusCode::OK, "{}", reviewed.2);
    let (_, report) = fhir(&app, &author, &format!("DiagnosticReport/{suggestion_id}")).await;
    assert_eq!(report["status"], "corrected");
    assert!(report["conclusion"].as_str().unwrap().ends_with("Corrected by the reviewing physician: meningioma."), "{report}");
    assert_eq!(report["resultsInterpreter"][0]["identifier"]["value"], author.id);

    // The record's reports, as a search by encounter.
    let (status, bundle) = fhir(&app, &author, &format!("DiagnosticReport?encounter=Encounter/{record}")).await;
    assert_eq!(status, StatusCode::OK, "{bundle}");
    assert_eq!((bundle["type"].as_str(), bundle["entry"].as_array().map(Vec::len)), (Some("searchset"), Some(1)));
    assert_eq!(bundle["entry"][0]["resource"]["id"], suggestion_id.to_string());
    let (status, refused) = fhir(&app, &author, "DiagnosticReport?code=x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "unknown search parameters are refused: {refused}");
    assert_eq!(fhir(&app, &stranger, &format!("DiagnosticReport?encounter={record}")).await.0, StatusCode::FORBIDDEN);
}

/// A Bundle sent to the base URL under `key` (its Idempotency-Key).
async fn bundle(app: &TestApp, user: &User, key: uuid::Uuid, bundle: &Value) -> (StatusCode, Value) {
    let mut request = support::command(user, "POST", "/fhir/r4", bundle);
    request.headers_mut().insert("content-type", "application/fhir+json".parse().unwrap());
    request.headers_mut().insert("idempotency-key", key.to_string().parse().unwrap());
    let (status, content_type, body) = send(app, request).await;
    assert_eq!(content_type.as_deref(), Some("application/fhir+json"), "{body}");
    assert_valid(&body);
    (status, body)
}

fn fhir_encounter(subject: &str, visit: &str, icd_10: &str) -> Value {
    json!({
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": subject},
        "serviceProvider": {"identifier": {"value": "HOSP-001"}},
        "type": [{"coding": [{"system": "urn:emr-ledger:record-type", "code": "consultation"}], "text": "First visit"}],
        "period": {"start": visit},
        "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": icd_10}], "text": "Type 2 diabetes mellitus"}],
    })
}

/// A patient and their first visit, the visit listed first and naming the
/// patient by the `urn:uuid:` the same Bundle creates it under.
fn new_patient_and_visit(mrn: &str, visit: &str, icd_10: &str) -> Value {
    let patient_url = "urn:uuid:7c9e6679-7425-40de-944b-e07fc1f90ae7";
    json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e", "resource": fhir_encounter(patient_url, visit, icd_10),
             "request": {"method": "POST", "url": "Encounter"}},
            {"fullUrl": patient_url, "resource": fhir_patient(mrn), "request": {"method": "POST", "url": "Patient"}},
        ],
    })
}

/// The id the `index`th entry of a Bundle sent under `key` creates its resource with.
fn created_id(key: uuid::Uuid, index: usize) -> String {
    uuid::Uuid::new_v5(&key, format!("entry/{index}").as_bytes()).to_string()
}

#[tokio::test]
async fn a_transaction_bundle_is_all_or_nothing_and_round_trips() {
    let app = app().await;
    let physician = sign_in(&app, Role::Physician).await;
    // Existence is checked as an auditor: anyone else needs a grant to learn it.
    let auditor = sign_in(&app, Role::Auditor).await;
    let key = uuid::Uuid::now_v7();
    let (status, answer) = bundle(&app, &physician, key, &new_patient_and_visit("MRN-501", "2026-02-03", "E11.9")).await;
    assert_eq!((status, answer["type"].as_str()), (StatusCode::OK, Some("transaction-response")), "{answer}");
    let (encounter, patient) = (created_id(key, 0), created_id(key, 1));
    assert_eq!(answer["entry"][0]["response"]["status"], "201 Created", "answers keep the Bundle's order: {answer}");
    assert!(answer["entry"][0]["response"]["location"].as_str().unwrap().ends_with(&format!("/fhir/r4/Encounter/{encounter}/_history/1")));
    assert!(answer["entry"][1]["response"]["location"].as_str().unwrap().ends_with(&format!("/fhir/r4/Patient/{patient}/_history/1")));
    assert_eq!(answer["entry"][1]["response"]["etag"], "W/\"1\"");

    // Both exist, the visit of the patient the same Bundle created, in the sender's name.
    let (status, visit) = fhir(&app, &physician, &format!("Encounter/{encounter}")).await;
    assert_eq!(status, StatusCode::OK, "{visit}");
    assert_eq!(visit["subject"]["reference"], format!("Patient/{patient}"));
    assert_eq!(visit["participant"][0]["individual"]["identifier"]["value"], physician.id);
    let (_, condition) = fhir(&app, &physician, &format!("Condition/{encounter}")).await;
    assert_eq!(condition["code"]["coding"][0]["code"], "E11.9");

    // Sent again under the same key: the same answer, nothing written twice.
    let (status, again) = bundle(&app, &physician, key, &new_patient_and_visit("MRN-501", "2026-02-03", "E11.9")).await;
    assert_eq!((status, &again["entry"]), (StatusCode::OK, &answer["entry"]), "{again}");
    let (_, history) = fhir(&app, &physician, &format!("Encounter/{encounter}/_history")).await;
    assert_eq!(history["total"], 1, "{history}");

    // A visit in the future is refused by the record's rules: the patient is not registered either.
    let refused_key = uuid::Uuid::now_v7();
    let (status, refused) = bundle(&app, &physician, refused_key, &new_patient_and_visit("MRN-502", "2099-01-01", "E11.9")).await;
    assert_eq!((status, outcome_code(&refused)), (StatusCode::UNPROCESSABLE_ENTITY, "record-rule"), "{refused}");
    assert_eq!(refused["issue"][0]["expression"][0], "Bundle.entry[0]", "the entry at fault is named: {refused}");
    let (status, _) = fhir(&app, &auditor, &format!("Patient/{}", created_id(refused_key, 1))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing of a refused transaction is written");
    // So is one whose entry cannot be read into a record.
    let unreadable_key = uuid::Uuid::now_v7();
    let (status, refused) = bundle(&app, &physician, unreadable_key, &new_patient_and_visit("MRN-503", "2026-02-03", "diabetes")).await;
    assert_eq!((status, outcome_code(&refused)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid-resource"), "{refused}");
    let (status, _) = fhir(&app, &auditor, &format!("Patient/{}", created_id(unreadable_key, 1))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A stale ifMatch on the existing resource refuses the new visit that came with it.
    let stale = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": hypertensive_heart_disease(&encounter), "request": {"method": "PUT", "url": format!("Condition/{encounter}"), "ifMatch": "W/\"7\""}},
        {"resource": fhir_encounter(&format!("Patient/{patient}"), "2026-02-10", "E11.9"), "request": {"method": "POST", "url": "Encounter"}},
    ]});
    let stale_key = uuid::Uuid::now_v7();
    let (status, refused) = bundle(&app, &physician, stale_key, &stale).await;
    assert_eq!((status, outcome_code(&refused)), (StatusCode::PRECONDITION_FAILED, "version-mismatch"), "{refused}");
    let (status, _) = fhir(&app, &auditor, &format!("Encounter/{}", created_id(stale_key, 1))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Two existing resources cannot be one change; nor can a kind of change it does not hold.
    let wide = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": hypertensive_heart_disease(&encounter), "request": {"method": "PUT", "url": format!("Condition/{encounter}")}},
        {"request": {"method": "DELETE", "url": format!("Encounter/{encounter}")}},
    ]});
    let (status, refused) = bundle(&app, &physician, uuid::Uuid::now_v7(), &wide).await;
    assert_eq!((status, outcome_code(&refused)), (StatusCode::BAD_REQUEST, "not-one-change"), "{refused}");
    let consent = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Consent"}, "request": {"method": "POST", "url": "Consent"}},
    ]});
    let (status, refused) = bundle(&app, &physician, uuid::Uuid::now_v7(), &consent).await;
    assert_eq!((status, outcome_code(&refused)), (StatusCode::BAD_REQUEST, "not-supported"), "{refused}");
    let (_, condition) = fhir(&app, &physician, &format!("Condition/{encounter}")).await;
    assert_eq!(condition["meta"]["versionId"], "1", "refused transactions changed nothing: {condition}");

    // An update and a read in one transaction: the read sees the change.
    let amend_and_read = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "GET", "url": format!("Condition/{encounter}")}},
        {"resource": hypertensive_heart_disease(&encounter), "request": {"method": "PUT", "url": format!("Condition/{encounter}"), "ifMatch": "W/\"1\""}},
    ]});
    let (status, answer) = bundle(&app, &physician, uuid::Uuid::now_v7(), &amend_and_read).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (answer["entry"][1]["response"]["status"].as_str(), answer["entry"][1]["response"]["etag"].as_str()),
        (Some("200 OK"), Some("W/\"2\""))
    );
    assert_eq!(answer["entry"][0]["resource"]["code"]["coding"][0]["code"], "I11.9", "reads run after the changes: {answer}");
}

#[tokio::test]
async fn a_batch_bundle_answers_each_entry_on_its_own() {
    let app = app().await;
    let support::Chart { author, record, .. } = patient_with_a_record(&app).await;
    let mut unreadable = fhir_patient("MRN-601");
    unreadable["gender"] = json!("f");
    let entries = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": format!("Encounter/{record}")}},
        {"resource": unreadable, "request": {"method": "POST", "url": "Patient"}},
        {"resource": fhir_patient("MRN-602"), "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": format!("Encounter/{}", uuid::Uuid::now_v7())}},
        {"request": {"method": "PATCH", "url": "Patient"}},
    ]});
    let (status, answer) = bundle(&app, &author, uuid::Uuid::now_v7(), &entries).await;
    assert_eq!((status, answer["type"].as_str()), (StatusCode::OK, Some("batch-response")), "{answer}");
    let statuses: Vec<&str> = answer["entry"].as_array().unwrap().iter().map(|e| e["response"]["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["200 OK", "422 Unprocessable Entity", "201 Created", "404 Not Found", "400 Bad Request"], "{answer}");
    assert_eq!(answer["entry"][0]["resource"]["id"], record);
    assert_eq!(answer["entry"][1]["response"]["outcome"]["issue"][0]["details"]["coding"][0]["code"], "invalid-resource");
    let created = answer["entry"][2]["response"]["location"].as_str().unwrap();
    let id = created.split("/Patient/").nth(1).unwrap().split('/').next().unwrap();
    let auditor = sign_in(&app, Role::Auditor).await;
    let (status, registered) = fhir(&app, &auditor, &format!("Patient/{id}")).await;
    assert_eq!(status, StatusCode::OK, "the valid entry was registered: {registered}");

    let (status, refused) = bundle(&app, &author, uuid::Uuid::now_v7(), &json!({"resourceType": "Bundle", "type": "collection"})).await;
    assert_eq!((status, outcome_code(&refused)), (StatusCode::BAD_REQUEST, "invalid-bundle"), "{refused}");
}

#[tokio::test]
async fn attachments_read_as_document_references_and_their_files_as_binaries_each_read_recorded() {
    use axum::body::Body;
    use axum::http::{Request, header};
    use base64::Engine;

    let app = support::app_with_everything().await;
    let support::Chart { author, record, .. } = patient_with_a_record(&app).await;
    let report = b"Discharge letter: blood pressure controlled on amlodipine.\n".repeat(100);
    let attachment = uuid::Uuid::now_v7().to_string();
    let upload = Request::post(format!("/v1/records/{record}/attachments/content?filename=letter.txt"))
        .header(header::CONTENT_TYPE, "text/plain")
        .header("idempotency-key", &attachment)
        .body(Body::from(report.clone()))
        .unwrap();
    assert_eq!(send(&app, support::as_user(&author, upload)).await.0, StatusCode::CREATED);
    support::fold(&app).await;

    let before = disclosures(&app).await;
    let (status, document) = fhir(&app, &author, &format!("DocumentReference/{attachment}")).await;
    assert_eq!(status, StatusCode::OK, "{document}");
    let file = &document["content"][0]["attachment"];
    assert_eq!((file["url"].as_str(), file["contentType"].as_str()), (Some(format!("Binary/{attachment}").as_str()), Some("text/plain")));
    assert_eq!(file["size"], report.len());
    assert_eq!(file["extension"][0]["valueString"].as_str().unwrap().len(), 64, "the SHA-256: {file}");
    assert_eq!(document["context"]["encounter"][0]["reference"], format!("Encounter/{record}"));
    let (status, found) = fhir(&app, &author, &format!("DocumentReference?encounter={record}")).await;
    assert_eq!((status, found["entry"][0]["resource"]["id"].as_str()), (StatusCode::OK, Some(attachment.as_str())), "{found}");

    // The file itself: raw, decrypted and verified; or inside a Binary resource.
    let response = tower::ServiceExt::oneshot(app.router.clone(), get(&author, &format!("/fhir/r4/Binary/{attachment}"))).await.unwrap();
    assert_eq!((response.status(), response.headers()[header::CONTENT_TYPE].to_str().unwrap()), (StatusCode::OK, "text/plain"));
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
    assert_eq!(bytes.as_ref(), report.as_slice());
    let mut as_fhir = get(&author, &format!("/fhir/r4/Binary/{attachment}"));
    as_fhir.headers_mut().insert(header::ACCEPT, "application/fhir+json".parse().unwrap());
    let (status, _, binary) = send(&app, as_fhir).await;
    assert_eq!((status, binary["resourceType"].as_str()), (StatusCode::OK, Some("Binary")), "{binary}");
    assert_valid(&binary);
    let decoded = base64::engine::general_purpose::STANDARD.decode(binary["data"].as_str().unwrap()).unwrap();
    assert_eq!(decoded, report);
    assert_eq!(disclosures(&app).await, before + 4, "every read of the document or its file is recorded");

    // The record's grants rule: a stranger reads neither, and an unknown id is not found.
    let stranger = sign_in(&app, Role::Physician).await;
    let (status, refused) = fhir(&app, &stranger, &format!("DocumentReference/{attachment}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let (status, _, refused) = send(&app, get(&stranger, &format!("/fhir/r4/Binary/{attachment}"))).await;
    assert_eq!((status, outcome_code(&refused)), (StatusCode::FORBIDDEN, "no-active-grant"), "{refused}");
    let (status, missing) = fhir(&app, &author, &format!("DocumentReference/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
}

#[tokio::test]
async fn auditors_page_through_a_types_history_newest_first_redacted() {
    let app = app().await;
    let first = patient_with_a_record(&app).await;
    let second = patient_with_a_record(&app).await;
    let changed =
        write(&app, &second.author, "PUT", &format!("Condition/{}", second.record), &hypertensive_heart_disease(&second.record), None)
            .await;
    assert_eq!(changed.0, StatusCode::OK, "{}", changed.2);
    let auditor = sign_in(&app, Role::Auditor).await;

    let (status, history) = fhir(&app, &auditor, "Encounter/_history").await;
    assert_eq!((status, history["type"].as_str()), (StatusCode::OK, Some("history")), "{history}");
    let versions: Vec<(String, String)> = history["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["request"]["url"].as_str().unwrap().to_owned(), e["response"]["etag"].as_str().unwrap().to_owned()))
        .collect();
    let expected = [(&second.record, "W/\"2\""), (&second.record, "W/\"1\""), (&first.record, "W/\"1\"")]
        .map(|(record, etag)| (format!("Encounter/{record}"), etag.to_owned()));
    assert_eq!(versions, expected, "every record's versions, newest first");
    assert_eq!(history["entry"][0]["resource"]["meta"]["security"][0]["code"], "REDACTED", "an auditor's view");

    // A page at a time, the next link going further back.
    let (_, page) = fhir(&app, &auditor, "Encounter/_history?_count=2").await;
    assert_eq!(page["entry"].as_array().unwrap().len(), 2);
    let next = page["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next").unwrap()["url"].as_str().unwrap().to_owned();
    let (_, rest) = fhir(&app, &auditor, next.split("/fhir/r4/").nth(1).unwrap()).await;
    assert_eq!(rest["entry"].as_array().unwrap().len(), 1);
    assert_eq!(rest["entry"][0]["request"]["url"], format!("Encounter/{}", first.record));
    let (_, patients) = fhir(&app, &auditor, "Patient/_history").await;
    assert_eq!(patients["entry"].as_array().unwrap().len(), 2, "{patients}");
    let (_, none) = fhir(&app, &auditor, "Encounter/_history?_since=2999-01-01T00:00:00Z").await;
    assert!(none["entry"].as_array().unwrap().is_empty(), "{none}");

    // The whole type's history is the auditors'.
    let (status, refused) = fhir(&app, &first.author, "Encounter/_history").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
}
