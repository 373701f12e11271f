//! SMART App Launch by an independent client: SMART's own Python client (PyPI
//! `fhirclient` 4.4.0, installed by tests/run.sh into ~/.cache/emr-ledger/
//! fhirclient-venv) discovers the endpoints from the CapabilityStatement, launches
//! standalone with PKCE (S256), signs its user in with password and TOTP, and
//! reads the patient's Conditions over real TCP, on JetStream and MariaDB read
//! models, then updates the patient under `If-Match` (a stale version gets 412).
//! Its token stays inside its scopes and inside `/fhir/r4`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use emr_auth::apps::SmartApp;
use emr_domain::actor::Role;
use emr_tests::accounts::{self, PASSWORD};
use emr_tests::api_server::ApiServer;
use emr_tests::backends::jetstream;
use emr_tests::mariadb::TestDatabase;
use serde_json::{Value, json};

const REDIRECT_URI: &str = "http://127.0.0.1:9/after-launch";

fn python() -> PathBuf {
    let venv = std::env::var_os("EMR_FHIRCLIENT_VENV")
        .map_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/emr-ledger/fhirclient-venv"), PathBuf::from);
    let python = venv.join("bin/python");
    assert!(python.exists(), "{} is missing: ./tests/run.sh installs fhirclient 4.4.0 there", python.display());
    python
}

fn conditions_app() -> SmartApp {
    SmartApp {
        client_id: "conditions-viewer".into(),
        name: "Conditions viewer".into(),
        redirect_uris: vec![REDIRECT_URI.into()],
        scopes: vec!["launch/patient".into(), "patient/Condition.rs".into(), "patient/Patient.ru".into(), "offline_access".into()],
    }
}

#[tokio::test]
async fn smarts_python_client_launches_with_pkce_reads_conditions_and_a_stale_update_gets_412() {
    let backend = jetstream().await;
    let db = TestDatabase::fresh().await;
    let read_models = emr_http::ReadModelState {
        db: db.db.clone(),
        log: backend.backend.log.clone(),
        search_index: emr_tests::read_models::blind_index(),
    };
    let api = ApiServer::start_with_apps(&backend.backend, Some(read_models), vec![conditions_app()]).await;

    let (doctor_id, doctor) = api.account("smart_doctor", Role::Physician).await;
    let (status, created) =
        api.post("/v1/accounts/self-registration", None, &json!({"username": "smart_patient", "password": PASSWORD})).await;
    assert_eq!(status, 201, "{created}");
    let patient_id = created["user_id"].as_str().unwrap().to_owned();
    let (_, totp_secret) = accounts::sign_in_and_enrol(&api.http, &api.base, "smart_patient").await;
    let mut registration = emr_tests::api_client::patient_registration("Gao Yan");
    registration["patient_id"] = json!(patient_id);
    assert_eq!(api.post("/v1/patients", Some(&doctor), &registration).await.0, 201);
    let mut record = emr_tests::api_client::record_creation(&patient_id, &doctor_id.to_string(), "Wheezing");
    record["content"]["diagnosis"] = json!({"code": "J45.9", "description": "Asthma"});
    let (status, created) = api.post("/v1/records", Some(&doctor), &record).await;
    assert_eq!(status, 201, "{created}");
    emr_tests::read_models::fold_all(&db.db, &backend.backend.log, 100).await;

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("smart/launch.py");
    let base = api.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(script)
            .env("EMR_FHIR_BASE", format!("{base}/fhir/r4"))
            .env("EMR_CLIENT_ID", "conditions-viewer")
            .env("EMR_REDIRECT_URI", REDIRECT_URI)
            .env("EMR_USERNAME", "smart_patient")
            .env("EMR_PASSWORD", PASSWORD)
            .env("EMR_TOTP_SECRET", totp_secret)
            .env("EMR_SCOPE", "patient/Condition.rs patient/Patient.ru offline_access")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the client failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();

    assert_eq!(report["pkce_challenge_sent"], true, "{report}");
    assert_eq!(report["patient"], patient_id.as_str(), "the patient signed in is the launch context: {report}");
    assert_eq!(report["conditions"], json!(["J45.9"]), "{report}");
    assert_eq!(report["read_etag"], "W/\"1\"", "{report}");
    assert_eq!(report["update"], json!({"status": 200, "etag": "W/\"2\""}), "the patient's own update, against the version read: {report}");
    assert_eq!(report["stale_update"], json!({"status": 412, "code": "version-mismatch"}), "the same update again is stale: {report}");
    assert_eq!(report["transaction"], json!({"type": "transaction-response", "status": "200 OK", "etag": "W/\"3\""}), "{report}");
    assert_eq!(report["transaction_phone"], "+86 10 5555 0123", "the transaction's change reads back: {report}");
    assert_eq!(report["encounter_search_status"], 403, "no Encounter scope was granted: {report}");
    assert_eq!(report["rest_api_status"], 403, "an app's token is for /fhir/r4 only: {report}");
}
