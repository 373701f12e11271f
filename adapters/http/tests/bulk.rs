//! Bulk Data `$export`: a practitioner exports exactly the patients who granted
//! them access, as NDJSON whose every line is a valid R4 resource, each read
//! recorded in the patient's access log; a job killed part-way resumes from its
//! recorded progress and writes every resource exactly once.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use emr_domain::actor::{Actor, Role};
use emr_http::bulk::{BulkExports, Job, Level, Progress, Status};
use http_body_util::BodyExt;
use serde_json::Value;
use support::{TestApp, User, disclosures, fold, get, send, sign_in};
use tower::ServiceExt;

fn export_request(user: &User, query: &str, respond_async: bool) -> Request<Body> {
    let mut request = get(user, &format!("/fhir/r4/Patient/$export{query}"));
    if respond_async {
        request.headers_mut().insert("prefer", "respond-async".parse().unwrap());
    }
    request
}

/// Sends a request: the status, the headers and the body bytes.
async fn exchange(app: &TestApp, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = app.router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}

fn lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8(bytes.to_vec()).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[tokio::test]
async fn a_practitioner_exports_exactly_the_patients_who_granted_access_each_read_recorded() {
    let app = support::app_with_everything().await;
    let colleague = sign_in(&app, Role::Physician).await;
    let mut granted = BTreeSet::new();
    for n in 0..3 {
        let support::Chart { patient, .. } = support::patient_with_a_record(&app).await;
        if n < 2 {
            let grant = support::grant_body(&patient.id, &colleague.id, support::in_days(30));
            assert_eq!(send(&app, support::command(&patient, "POST", "/v1/grants", &grant)).await.0, StatusCode::CREATED);
            granted.insert(patient.id.clone());
        }
    }
    fold(&app).await;

    let (status, _, body) = exchange(&app, export_request(&colleague, "", false)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = exchange(&app, export_request(&colleague, "?_type=Observation", true)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "only exportable types");

    let before = disclosures(&app).await;
    let (status, headers, _) = exchange(&app, export_request(&colleague, "", true)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let status_url = headers[header::CONTENT_LOCATION].to_str().unwrap().to_owned();
    let status_path = format!("/fhir/r4/{}", status_url.split("/fhir/r4/").nth(1).unwrap());

    // Only the requester sees the job.
    let stranger = sign_in(&app, Role::Physician).await;
    assert_eq!(exchange(&app, get(&stranger, &status_path)).await.0, StatusCode::NOT_FOUND);

    let manifest = loop {
        let (status, headers, body) = exchange(&app, get(&colleague, &status_path)).await;
        if status == StatusCode::OK {
            break serde_json::from_slice::<Value>(&body).unwrap();
        }
        assert_eq!(status, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&body));
        assert!(headers.contains_key("x-progress") && headers.contains_key(header::RETRY_AFTER));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(manifest["requiresAccessToken"], true);
    let counts: Vec<(String, u64)> = manifest["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["type"].as_str().unwrap().to_owned(), o["count"].as_u64().unwrap()))
        .collect();
    let expected: Vec<(String, u64)> =
        [("Condition", 2), ("Encounter", 2), ("MedicationStatement", 2), ("Patient", 2)].map(|(t, n)| (t.to_owned(), n)).to_vec();
    assert_eq!(counts, expected, "{manifest}");

    let mut exported = BTreeSet::new();
    for output in manifest["output"].as_array().unwrap() {
        let url = output["url"].as_str().unwrap();
        let path = format!("/fhir/r4/{}", url.split("/fhir/r4/").nth(1).unwrap());
        let (status, headers, body) = exchange(&app, get(&colleague, &path)).await;
        assert_eq!((status, headers[header::CONTENT_TYPE].to_str().unwrap()), (StatusCode::OK, "application/fhir+ndjson"));
        assert_eq!(exchange(&app, get(&stranger, &path)).await.0, StatusCode::NOT_FOUND, "files are the requester's");
        for resource in lines(&body) {
            let violations = emr_fhir::validation::violations(&resource);
            assert!(violations.is_empty(), "{resource}\n{violations:#?}");
            if resource["resourceType"] == "Patient" {
                exported.insert(resource["id"].as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(exported, granted, "the patients who granted access, and only they");
    assert_eq!(disclosures(&app).await, before + 4, "each patient and record read is in the access log");

    let delete =
        Request::delete(&status_path).header(header::AUTHORIZATION, format!("Bearer {}", colleague.token)).body(Body::empty()).unwrap();
    assert_eq!(exchange(&app, delete).await.0, StatusCode::ACCEPTED);
    assert_eq!(exchange(&app, get(&colleague, &status_path)).await.0, StatusCode::NOT_FOUND, "a cancelled job is gone");
}

fn read_progress(dir: &std::path::Path, job: uuid::Uuid) -> Option<Progress> {
    serde_json::from_slice(&std::fs::read(dir.join(job.to_string()).join("progress.json")).ok()?).ok()
}

#[tokio::test]
async fn an_export_killed_part_way_resumes_and_writes_each_resource_once() {
    let app = support::app_with_everything().await;
    let mut patients = BTreeSet::new();
    for _ in 0..12 {
        patients.insert(support::patient_with_a_record(&app).await.patient.id);
    }
    fold(&app).await;
    let dir = app.dir().join("crash-exports");
    let job = Job {
        id: uuid::Uuid::now_v7(),
        owner: Actor::system(),
        level: Level::System,
        types: vec!["Patient".into(), "Encounter".into()],
        since: None,
        request: "in process".into(),
        transaction_time: chrono::Utc::now(),
    };

    // The first process dies once a page or two is recorded (wherever the abort lands).
    let first = BulkExports::open(&dir).unwrap().with_page_size(1);
    let running = first.start(app.state.clone(), job.clone()).unwrap();
    let progress = loop {
        match read_progress(&dir, job.id) {
            Some(progress) if progress.patients >= 2 => break progress,
            _ => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    };
    running.abort();
    let _ = running.await;
    assert!(progress.patients < 12, "the job was stopped part-way ({} of 12 patients)", progress.patients);
    // A torn write beyond what was recorded.
    let torn = dir.join(job.id.to_string()).join("Patient.ndjson");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&torn)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"resourceType\":\"Pat"))
        .unwrap();

    let second = BulkExports::open(&dir).unwrap().with_page_size(5);
    for resumed in second.resume(&app.state).unwrap() {
        resumed.await.unwrap();
    }
    let (_, done) = second.status(job.id, &Actor::system()).unwrap();
    assert_eq!((done.status, done.patients), (Status::Complete, 12), "{done:?}");
    let exported: Vec<String> = lines(&std::fs::read(&torn).unwrap()).iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(exported.len(), 12, "each patient exactly once");
    assert_eq!(exported.iter().cloned().collect::<BTreeSet<_>>(), patients);
    let encounters = lines(&std::fs::read(dir.join(job.id.to_string()).join("Encounter.ndjson")).unwrap());
    assert_eq!(encounters.len(), 12);
    assert_eq!(done.files["Patient.ndjson"].count, 12);
}
