//! Logs never carry PHI: `emr serve` at debug level, JSON logs, a clinical
//! journey with a marker planted in every PHI field (demographics, identifiers,
//! record content, reasons), refusals included; no marker reaches the log.

#![allow(clippy::unwrap_used)]

mod support;

use emr_tests::api_client::Method;
use emr_tests::nats_server::free_port;
use serde_json::json;
use support::{create_admin, emr, kill, physician, serve_command, started, until_projected};

/// Every planted marker starts with this (no other text of the journey does).
const MARKER: &str = "qzxphi";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_phi_reaches_the_logs_even_at_debug_level() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let log = root.path().join("serve.log");
    create_admin(&data_dir, "log_admin");
    let (http, grpc) = (free_port(), free_port());
    let mut command = serve_command(&data_dir, http, grpc, &format!("logs-{}", uuid::Uuid::new_v4().simple()));
    command.env("RUST_LOG", "debug").env("EMR_LOG_FORMAT", "json").stderr(std::fs::File::create(&log).unwrap());
    let mut served = started(command, http).await;
    let api = served.api.clone();

    let (doctor, token) = physician(&api, "log_admin", "log_doctor").await;
    let patient = json!({"hospital_id": "HOSP-001", "identifiers": {"mrn": format!("{MARKER}mrn"), "external": []},
        "demographics": {"full_name": format!("{MARKER}name Huang"), "date_of_birth": "1975-02-03", "gender": "male",
                         "phone_number": null, "email": format!("{MARKER}email@example.org"), "address": format!("{MARKER}addr Road 1")}});
    let (registered, _) = api.until_acknowledged(&token, "/v1/patients", uuid::Uuid::now_v7(), &patient).await;
    let patient_id = registered["aggregate_id"].as_str().unwrap().to_owned();
    let content = json!({"title": format!("{MARKER}title"), "description": format!("{MARKER}description"),
        "diagnosis": {"code": "I10", "description": format!("{MARKER}diagnosis")}, "treatment": format!("{MARKER}treatment"),
        "medications": [{"name": format!("{MARKER}drug"), "dose": {"amount": "5", "unit": "mg"}, "route": "oral", "frequency": "once daily"}]});
    let record = json!({"patient_id": patient_id, "doctor_id": doctor, "hospital_id": "HOSP-001", "record_type": "consultation",
        "visit_date": "2026-10-01", "content": content});
    // One request with the caller's own X-Request-Id: it comes back, and it is the
    // log's request id and the events' correlation id.
    let request_id = uuid::Uuid::now_v7();
    let response = api
        .http
        .post(format!("{}/v1/records", api.base))
        .bearer_auth(&token)
        .header("x-request-id", request_id.to_string())
        .json(&record)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"].to_str().unwrap(), request_id.to_string());
    assert_eq!(response.status().as_u16(), 201);
    let created: serde_json::Value = response.json().await.unwrap();
    let record_path = format!("/v1/records/{}", created["aggregate_id"].as_str().unwrap());
    let mut amended = content.clone();
    amended["title"] = json!(format!("{MARKER}amended"));
    let amendment = json!({"content": amended, "reason": format!("{MARKER}reason")});
    api.until_acknowledged(&token, &format!("{record_path}/amendments"), uuid::Uuid::now_v7(), &amendment).await;
    let (status, shown) = api.get(&record_path, &token).await;
    assert_eq!(status, 200, "{shown}");
    assert!(shown.to_string().contains(MARKER), "the API itself returns the PHI to its reader");
    // Refusals: a bad code beside PHI, PHI where an id belongs, a break-glass reason.
    let mut refused = record.clone();
    refused["content"]["diagnosis"]["code"] = json!(format!("{MARKER}code"));
    assert_eq!(api.post("/v1/records", Some(&token), &refused).await.0, 422);
    assert_eq!(api.get(&format!("/v1/records/{MARKER}id"), &token).await.0, 400);
    let glass = json!({"reason": format!("{MARKER}glass")});
    let _ = api.try_send(Method::POST, &format!("{record_path}/break-glass"), Some(&token), None, Some(&glass)).await.unwrap();
    until_projected(&data_dir).await;
    kill(&mut served.process, "emr serve");

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|line| !line.trim().is_empty()).collect();
    assert!(lines.len() > 50, "debug logging was on: {} lines", lines.len());
    let not_json = lines.iter().filter(|line| serde_json::from_str::<serde_json::Value>(line).is_err()).count();
    assert_eq!(not_json, 0, "every log line is JSON");
    let served_line = lines.iter().find(|line| line.contains("request served") && line.contains(&request_id.to_string()));
    let served_line = served_line.expect("the request is logged under its request id");
    assert!(
        served_line.contains(&doctor) && served_line.contains("/v1/records") && served_line.contains("201"),
        "with actor, route and status: {served_line}"
    );
    let events = emr(&data_dir).args(["log", "--limit", "100000"]).stdout(std::process::Stdio::piped()).output().unwrap();
    let events = String::from_utf8_lossy(&events.stdout);
    assert!(events.contains(&format!("\"correlation_id\":\"{request_id}\"")), "the request's events carry its id as their correlation id");
    let leaks: Vec<&&str> = lines.iter().filter(|line| line.to_lowercase().contains(MARKER)).collect();
    assert!(leaks.is_empty(), "{} log lines carry PHI, e.g. {}", leaks.len(), leaks.first().map_or("", |l| &l[..l.len().min(400)]));
    emr_tests::report::record("phi-in-logs", json!({"log_lines_at_debug": lines.len(), "phi_fields_marked": 13, "lines_with_phi": 0}));
}
