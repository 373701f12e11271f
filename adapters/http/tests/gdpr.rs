//! Data-subject rights and legal holds through the API: a restriction of
//! processing (GDPR Art. 18) refuses every read but the patient's own and a
//! break-glass emergency, grants and authorship included, until lifted; a legal
//! hold refuses erasure (Art. 17) until released; a patient exports everything
//! held about them (Art. 15 and 20).

#![allow(clippy::unwrap_used)]

mod support;

use axum::http::StatusCode;
use emr_domain::actor::Role;
use emr_tests::read_models::RunningProjectors;
use serde_json::json;
use support::{
    TestApp, User, app, app_with_everything, assert_problem, command, get, grant_body, in_days, patient_with_a_record, send, sign_in,
};

/// A patient with one record by `author`, and a physician holding a read/write grant.
async fn patient_with_a_granted_physician(app: &TestApp) -> (User, User, User, String) {
    let support::Chart { author, patient, record, .. } = patient_with_a_record(app).await;
    let physician = sign_in(app, Role::Physician).await;
    let granted = send(app, command(&patient, "POST", "/v1/grants", &grant_body(&patient.id, &physician.id, in_days(3)))).await;
    assert_eq!(granted.0, StatusCode::CREATED, "{}", granted.2);
    (patient, author, physician, record)
}

#[tokio::test]
async fn a_restricted_patients_chart_is_refused_to_a_granted_physician_and_its_author_until_lifted() {
    let app = app().await;
    let (patient, author, physician, record) = patient_with_a_granted_physician(&app).await;
    let chart = format!("/v1/records/{record}");
    assert_eq!(send(&app, get(&physician, &chart)).await.0, StatusCode::OK, "the grant opens the chart");

    let restriction = format!("/v1/patients/{}/restriction", patient.id);
    let refused = send(&app, command(&physician, "POST", &restriction, &json!({"ground": "accuracy_contested"}))).await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "role-not-permitted");
    let restricted = send(&app, command(&patient, "POST", &restriction, &json!({"ground": "accuracy_contested"}))).await;
    assert_eq!(restricted.0, StatusCode::OK, "{}", restricted.2);

    for (who, uri) in [(&physician, chart.clone()), (&author, chart.clone()), (&physician, format!("/v1/patients/{}", patient.id))] {
        assert_problem(&send(&app, get(who, &uri)).await, StatusCode::FORBIDDEN, "processing-restricted");
    }
    let own = send(&app, get(&patient, &format!("/v1/patients/{}", patient.id))).await;
    assert_eq!(own.0, StatusCode::OK, "the patient still reads their own data");
    assert_eq!(own.2["restriction"], "accuracy_contested");
    assert_eq!(send(&app, get(&patient, &chart)).await.0, StatusCode::OK);
    let emergency = send(&app, command(&physician, "POST", &format!("{chart}/break-glass"), &json!({"reason": "unresponsive"}))).await;
    assert_eq!(emergency.0, StatusCode::OK, "an emergency still breaks the glass: {}", emergency.2);

    let admin = sign_in(&app, Role::Admin).await;
    let lifted = send(&app, command(&admin, "POST", &format!("{restriction}/lifting"), &json!({}))).await;
    assert_eq!(lifted.0, StatusCode::OK, "the privacy officer lifts it: {}", lifted.2);
    assert_eq!(send(&app, get(&physician, &chart)).await.0, StatusCode::OK, "the grant opens the chart again");
    assert_problem(
        &send(&app, command(&admin, "POST", &format!("{restriction}/lifting"), &json!({}))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "patient-rule",
    );
}

#[tokio::test]
async fn erasure_under_a_legal_hold_is_refused_until_the_hold_is_released() {
    let app = app().await;
    let (patient, _, _, _) = patient_with_a_granted_physician(&app).await;
    let admin = sign_in(&app, Role::Admin).await;
    let holds = format!("/v1/patients/{}/legal-holds", patient.id);
    let hold = json!({"reference": "CASE-2026-17"});
    assert_problem(&send(&app, command(&patient, "POST", &holds, &hold)).await, StatusCode::FORBIDDEN, "role-not-permitted");
    let placed = send(&app, command(&admin, "POST", &holds, &hold)).await;
    assert_eq!(placed.0, StatusCode::OK, "{}", placed.2);

    let erasure = format!("/v1/patients/{}/erasure", patient.id);
    let request = json!({"reason": "patient_request"});
    for who in [&patient, &admin] {
        let refused = send(&app, command(who, "POST", &erasure, &request)).await;
        assert_problem(&refused, StatusCode::CONFLICT, "legal-hold");
        assert!(refused.2["detail"].as_str().unwrap().contains("CASE-2026-17"), "{}", refused.2);
    }
    let own = send(&app, get(&patient, &format!("/v1/patients/{}", patient.id))).await;
    assert_eq!((own.2["status"].as_str(), own.2["legal_holds"].clone()), (Some("active"), json!(["CASE-2026-17"])), "nothing was erased");

    assert_eq!(send(&app, command(&admin, "POST", &format!("{holds}/release"), &hold)).await.0, StatusCode::OK);
    let again = send(&app, command(&admin, "POST", &format!("{holds}/release"), &hold)).await;
    assert_problem(&again, StatusCode::UNPROCESSABLE_ENTITY, "patient-rule");
    let erased = send(&app, command(&patient, "POST", &erasure, &request)).await;
    assert_eq!(erased.0, StatusCode::OK, "with the hold released the patient's erasure goes through: {}", erased.2);
}

#[tokio::test]
async fn a_patient_exports_everything_held_about_them_and_no_one_else_may() {
    let app = app_with_everything().await;
    let models = app.state.read_models.clone().unwrap();
    let projectors = RunningProjectors::start(models.db, models.log, app.phi_codec(), 100);
    let (patient, author, physician, record) = patient_with_a_granted_physician(&app).await;
    let amendment = json!({"content": {"title": "Follow-up", "description": null, "diagnosis": null, "treatment": null, "medications": []},
                           "reason": "blood pressure controlled"});
    let amended = send(&app, command(&author, "POST", &format!("/v1/records/{record}/amendments"), &amendment)).await;
    assert_eq!(amended.0, StatusCode::OK, "{}", amended.2);
    assert_eq!(send(&app, get(&physician, &format!("/v1/records/{record}"))).await.0, StatusCode::OK);

    let uri = format!("/v1/patients/{}/export", patient.id);
    let admin = sign_in(&app, Role::Admin).await;
    for who in [&physician, &author, &admin] {
        let refused = send(&app, get(who, &uri)).await;
        assert_eq!(refused.0, StatusCode::FORBIDDEN, "only the patient exports their data: {}", refused.2);
    }
    let (status, _, export) = send(&app, get(&patient, &uri)).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    assert_eq!(export["format"], "emr-ledger/subject-access/1");
    assert_eq!(export["patient"]["demographics"]["full_name"], "Huang Min");
    let records = export["records"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    let titles: Vec<&str> = records[0]["versions"].as_array().unwrap().iter().map(|v| v["content"]["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["Annual check-up", "Follow-up"], "every version");
    let log = export["access_log"].as_array().unwrap();
    assert!(
        log.iter().any(|entry| entry["accessor_id"] == physician.id.as_str() && entry["basis"] == "grant"),
        "the physician's read under the grant is accounted for: {log:?}"
    );
    assert!(log.iter().all(|entry| entry["position"].as_u64() <= export["log_position"].as_u64()));
    projectors.stop().await;
}

#[tokio::test]
async fn the_accounting_of_disclosures_covers_exactly_the_period_asked_for() {
    let app = app_with_everything().await;
    let models = app.state.read_models.clone().unwrap();
    let projectors = RunningProjectors::start(models.db, models.log, app.phi_codec(), 100);
    let (patient, _, physician, record) = patient_with_a_granted_physician(&app).await;
    let chart = format!("/v1/records/{record}");
    for _ in 0..2 {
        assert_eq!(send(&app, get(&physician, &chart)).await.0, StatusCode::OK);
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let boundary = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (_, _, last) = send(&app, get(&physician, &chart)).await;
    let head = last["position"].as_u64().unwrap().max(app.log.head().await.unwrap());
    let period = |bound: &str| {
        format!(
            "/v1/read/access-log?patient_id={}&{bound}={}&min_position={head}&limit=500",
            patient.id,
            boundary.format("%Y-%m-%dT%H:%M:%S%.6fZ")
        )
    };
    let (status, _, before) = send(&app, get(&patient, &period("to"))).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    let (_, _, after) = send(&app, get(&patient, &period("from"))).await;
    let by_physician = |entries: &serde_json::Value| {
        entries.as_array().unwrap().iter().filter(|entry| entry["accessor_id"] == physician.id.as_str()).count()
    };
    assert_eq!((by_physician(&before), by_physician(&after)), (2, 1), "two reads before the boundary, one after: {before} {after}");
    projectors.stop().await;
}
