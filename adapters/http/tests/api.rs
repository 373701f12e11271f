//! The HTTP API, called in-process (`router().oneshot`) over the embedded store on
//! a real SQLite file, with real accounts: every caller signs in with password
//! and TOTP and sends a bearer token.

#![allow(clippy::unwrap_used)]

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use emr_attachments::AttachmentError;
use emr_auth::AuthPolicy;
use emr_domain::actor::{Actor, Role};
use emr_domain::ids::{AttachmentId, RecordId};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use support::*;
use tower::ServiceExt;

/// A practitioner, and a patient account registered as a clinical patient.
async fn clinic_with_patient(app: &TestApp) -> (User, User, String) {
    let doctor = sign_in(app, Role::Physician).await;
    let patient = sign_in(app, Role::Patient).await;
    let mut body = patient_body();
    body["patient_id"] = json!(patient.id);
    let (status, _, receipt) = send(app, command(&doctor, "POST", "/v1/patients", &body)).await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    let id = patient.id.clone();
    (doctor, patient, id)
}

#[tokio::test]
async fn a_registered_patient_reads_their_own_demographics_back_with_the_commit_position() {
    let app = app().await;
    let doctor = sign_in(&app, Role::Physician).await;
    let me = sign_in(&app, Role::Patient).await;
    let mut body = patient_body();
    body["patient_id"] = json!(me.id);
    let (status, _, receipt) = send(&app, command(&doctor, "POST", "/v1/patients", &body)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(receipt["events"][0]["event_type"], "PatientRegistered");
    let position = receipt["position"].as_u64().unwrap();
    let (status, _, patient) = send(&app, get(&me, &format!("/v1/patients/{}", me.id))).await;
    assert_eq!(status, StatusCode::OK, "{patient}");
    assert_eq!(patient["demographics"]["full_name"], "Huang Min");
    assert_eq!(patient["position"].as_u64(), Some(position));
    assert!(patient["disclosure_id"].is_string(), "the read was recorded");
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_original_receipt() {
    let app = app().await;
    let (doctor, _, patient) = clinic_with_patient(&app).await;
    let key = "0190f5c4-0000-7000-8000-000000000001";
    let with_key = || {
        let mut request = command(&doctor, "POST", "/v1/records", &record_body(&patient, &doctor));
        request.headers_mut().insert("idempotency-key", key.parse().unwrap());
        request
    };
    let (first_status, _, first) = send(&app, with_key()).await;
    let (_, _, second) = send(&app, with_key()).await;
    assert_eq!(first_status, StatusCode::CREATED, "{first}");
    assert_eq!(first["replayed"], false);
    assert_eq!(second["replayed"], true);
    assert_eq!(first["events"], second["events"]);
    assert_eq!(first["position"], second["position"]);
}

#[tokio::test]
async fn invalid_fields_are_problem_documents_naming_the_rule() {
    let app = app().await;
    let (doctor, _, patient) = clinic_with_patient(&app).await;
    let send_record = |body: Value| send(&app, command(&doctor, "POST", "/v1/records", &body));
    let mut bad_code = record_body(&patient, &doctor);
    bad_code["content"]["diagnosis"]["code"] = json!("hypertension");
    assert_problem(&send_record(bad_code).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid-field");
    let mut bad_dose = record_body(&patient, &doctor);
    bad_dose["content"]["medications"][0]["dose"]["amount"] = json!("-5");
    assert_problem(&send_record(bad_dose).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid-field");
    let mut unknown_enum = record_body(&patient, &doctor);
    unknown_enum["record_type"] = json!("astrology");
    assert_problem(&send_record(unknown_enum).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid-field");
    let mut injection = patient_body();
    injection["identifiers"]["mrn"] = json!("1'; DROP TABLE commits; --");
    assert_problem(
        &send(&app, command(&doctor, "POST", "/v1/patients", &injection)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
    );
}

#[tokio::test]
async fn malformed_requests_never_reach_the_domain() {
    let app = app().await;
    let nurse = sign_in(&app, Role::Nurse).await;
    let auditor = sign_in(&app, Role::Auditor).await;
    let raw = |body: &'static [u8]| {
        as_user(&nurse, Request::post("/v1/patients").header(header::CONTENT_TYPE, "application/json").body(Body::from(body)).unwrap())
    };
    assert_problem(&send(&app, raw(b"{not json")).await, StatusCode::BAD_REQUEST, "malformed-json");
    assert_problem(&send(&app, raw(b"\xff\xfe\xfd")).await, StatusCode::BAD_REQUEST, "malformed-json");
    let deep: Vec<u8> = std::iter::repeat_n(b'[', 10_000).collect();
    let (status, content_type, _) = send(&app, raw(Box::leak(deep.into_boxed_slice()))).await;
    assert!(status.is_client_error() && content_type.as_deref() == Some("application/problem+json"), "deep nesting: {status}");
    let no_type = as_user(&nurse, Request::post("/v1/patients").body(Body::from("{}")).unwrap());
    assert_problem(&send(&app, no_type).await, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
    let anonymous = post("/v1/patients", &patient_body());
    assert_problem(&send(&app, anonymous).await, StatusCode::UNAUTHORIZED, "unauthenticated");
    let mut bad_key = command(&nurse, "POST", "/v1/patients", &patient_body());
    bad_key.headers_mut().insert("idempotency-key", "not-a-uuid".parse().unwrap());
    assert_problem(&send(&app, bad_key).await, StatusCode::BAD_REQUEST, "invalid-header");
    assert_problem(&send(&app, get(&nurse, "/v1/patients/42")).await, StatusCode::BAD_REQUEST, "invalid-id");
    assert_problem(&send(&app, get(&nurse, "/nowhere")).await, StatusCode::NOT_FOUND, "not-found");
    let (_, _, log) = send(&app, get(&auditor, "/v1/log?limit=1000")).await;
    let clinical = log.as_array().unwrap().iter().filter(|e| e["key"].as_str().unwrap().starts_with("patient.")).count();
    assert_eq!(clinical, 0, "no patient was written");
}

#[tokio::test]
async fn an_erased_patient_reads_back_shredded_and_takes_no_new_records() {
    let app = app().await;
    let (doctor, _, patient) = clinic_with_patient(&app).await;
    let admin = sign_in(&app, Role::Admin).await;
    let auditor = sign_in(&app, Role::Auditor).await;
    let (status, _, body) =
        send(&app, command(&admin, "POST", &format!("/v1/patients/{patient}/erasure"), &json!({"reason": "patient_request"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, _, view) = send(&app, get(&auditor, &format!("/v1/patients/{patient}"))).await;
    assert_eq!(view["status"], "erased");
    assert_eq!(view["shredded"], true);
    assert_eq!(view["demographics"], Value::Null);
    assert_problem(
        &send(&app, command(&doctor, "POST", "/v1/records", &record_body(&patient, &doctor))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "patient-not-active",
    );
}

#[tokio::test]
async fn a_record_for_an_unknown_patient_is_refused() {
    let app = app().await;
    let doctor = sign_in(&app, Role::Physician).await;
    let stranger = "0190f5c4-7d0e-7cc2-9a4e-000000000000";
    assert_problem(
        &send(&app, command(&doctor, "POST", "/v1/records", &record_body(stranger, &doctor))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "patient-not-active",
    );
}

#[tokio::test]
async fn point_in_time_replay_returns_exactly_the_pre_amendment_version() {
    let app = app().await;
    let (doctor, _, patient) = clinic_with_patient(&app).await;
    let auditor = sign_in(&app, Role::Auditor).await;
    let (_, _, created) = send(&app, command(&doctor, "POST", "/v1/records", &record_body(&patient, &doctor))).await;
    let record = created["aggregate_id"].as_str().unwrap().to_owned();
    let created_at = created["position"].as_u64().unwrap();
    let mut amended_content = record_body(&patient, &doctor)["content"].clone();
    amended_content["title"] = json!("Annual check-up, corrected");
    let amend = json!({"content": amended_content, "reason": "wrong title"});
    let (status, _, amended) = send(&app, command(&doctor, "POST", &format!("/v1/records/{record}/amendments"), &amend)).await;
    assert_eq!(status, StatusCode::OK, "{amended}");

    let (_, _, now) = send(&app, get(&doctor, &format!("/v1/records/{record}"))).await;
    assert_eq!(now["versions"].as_array().unwrap().len(), 2, "{now}");
    let (_, _, before) = send(&app, get(&doctor, &format!("/v1/records/{record}?at_position={created_at}"))).await;
    assert_eq!(before["versions"].as_array().unwrap().len(), 1, "{before}");
    assert_eq!(before["versions"][0]["content"]["title"], "Annual check-up");
    assert_eq!(before["position"].as_u64(), Some(created_at));

    let (_, _, history) = send(&app, get(&auditor, &format!("/v1/audit/medical_record/{record}/history"))).await;
    let events = history.as_array().unwrap();
    assert_eq!(events.iter().map(|e| e["event_type"].as_str().unwrap()).collect::<Vec<_>>(), ["RecordCreated", "RecordAmended"]);
    assert_eq!(events[1]["metadata"]["actor"]["role"], "physician");
    assert!(!history.to_string().contains("Annual check-up"), "the audit history keeps PHI sealed");
    let (_, _, replayed) = send(&app, get(&auditor, &format!("/v1/records/{record}?at_position={created_at}"))).await;
    assert_eq!(replayed["redacted"], true, "auditors replay structure without PHI: {replayed}");
    assert_eq!(replayed["versions"][0]["content"], Value::Null);
    let amended_at = events[1]["metadata"]["recorded_at"].as_str().unwrap();
    let just_before = chrono::DateTime::parse_from_rfc3339(amended_at).unwrap() - chrono::Duration::microseconds(1);
    let encoded = just_before.to_rfc3339_opts(chrono::SecondsFormat::Micros, true).replace('+', "%2B");
    let (_, _, by_time) = send(&app, get(&doctor, &format!("/v1/records/{record}?at_time={encoded}"))).await;
    assert_eq!(by_time["versions"].as_array().map(Vec::len), Some(1), "{by_time}");
}

#[tokio::test]
async fn the_clinical_journey_from_registration_to_break_glass() {
    let app = app().await;
    let admin = sign_in(&app, Role::Admin).await;
    let auditor = sign_in(&app, Role::Auditor).await;
    // The administrator opens the practitioners' accounts; the patient opens their own.
    let mut doctors = Vec::new();
    for name in ["dr_author", "dr_consultant"] {
        let body = json!({"username": name, "password": PASSWORD, "role": "physician",
            "profile": {"full_name": "Zhou Jie", "licence_number": "LIC-0001", "department": "Cardiology", "specialization": "Heart failure"}});
        let (status, _, created) = send(&app, command(&admin, "POST", "/v1/accounts", &body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        doctors.push(sign_in_as(&app, created["user_id"].as_str().unwrap().to_owned(), name).await.0);
    }
    let (author, consultant) = (doctors[0].clone(), doctors[1].clone());
    let (status, _, created) =
        send(&app, post("/v1/accounts/self-registration", &json!({"username": "huang_min", "password": PASSWORD}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let patient = sign_in_as(&app, created["user_id"].as_str().unwrap().to_owned(), "huang_min").await.0;

    let mut body = patient_body();
    body["patient_id"] = json!(patient.id);
    assert_eq!(send(&app, command(&author, "POST", "/v1/patients", &body)).await.0, StatusCode::CREATED);
    let (_, _, created) = send(&app, command(&author, "POST", "/v1/records", &record_body(&patient.id, &author))).await;
    let record = created["aggregate_id"].as_str().unwrap().to_owned();
    let read = format!("/v1/records/{record}");

    assert_problem(&send(&app, get(&consultant, &read)).await, StatusCode::FORBIDDEN, "no-active-grant");
    let (status, _, granted) =
        send(&app, command(&patient, "POST", "/v1/grants", &grant_body(&patient.id, &consultant.id, in_days(7)))).await;
    assert_eq!(status, StatusCode::CREATED, "{granted}");
    let grant = granted["aggregate_id"].as_str().unwrap().to_owned();
    let (status, _, shown) = send(&app, get(&consultant, &read)).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["versions"][0]["content"]["title"], "Annual check-up");
    let revoke = json!({"reason": "second opinion given"});
    assert_eq!(send(&app, command(&patient, "POST", &format!("/v1/grants/{grant}/revocation"), &revoke)).await.0, StatusCode::OK);
    assert_problem(&send(&app, get(&consultant, &read)).await, StatusCode::FORBIDDEN, "no-active-grant");

    let emergency = json!({"reason": "collapsed in the emergency department"});
    let (status, _, opened) = send(&app, command(&consultant, "POST", &format!("{read}/break-glass"), &emergency)).await;
    assert_eq!(status, StatusCode::OK, "{opened}");
    assert!(opened["disclosure_id"].is_string());
    assert_problem(&send(&app, get(&admin, &read)).await, StatusCode::FORBIDDEN, "role-not-permitted");

    let (_, _, log) = send(&app, get(&auditor, "/v1/log?limit=1000")).await;
    let events = log.as_array().unwrap();
    let of_type = |kind: &str| events.iter().filter(|e| e["event_type"] == kind).collect::<Vec<_>>();
    let glass = of_type("BreakGlassInvoked");
    assert_eq!(glass.len(), 1);
    assert_eq!(glass[0]["payload"]["data"]["accessor"]["user_id"], consultant.id.as_str());
    assert_eq!(glass[0]["payload"]["data"]["patient_id"], patient.id.as_str(), "the patient can find it in their access log");
    let bases: Vec<&str> = of_type("PhiDisclosed").iter().filter_map(|e| e["payload"]["data"]["basis"]["kind"].as_str()).collect();
    assert_eq!(bases, ["grant", "break_glass"], "every PHI read is an event, with its basis");
    assert!(!log.to_string().contains("collapsed in the emergency"), "the emergency reason is sealed like PHI");
}

#[tokio::test]
async fn forged_and_unsigned_tokens_are_refused() {
    let app = app().await;
    let nurse = sign_in(&app, Role::Nurse).await;
    let mut parts: Vec<String> = nurse.token.split('.').map(str::to_owned).collect();
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: Value = serde_json::from_slice(&engine.decode(&parts[1]).unwrap()).unwrap();
    claims["role"] = json!("admin");
    parts[1] = engine.encode(claims.to_string());
    let forged = User { id: nurse.id.clone(), token: parts.join(".") };
    assert_problem(&send(&app, get(&forged, "/v1/log")).await, StatusCode::UNAUTHORIZED, "token-invalid");
    let header = engine.encode(r#"{"alg":"none","typ":"JWT","kid":"test-key"}"#);
    let unsigned = User { id: nurse.id.clone(), token: format!("{header}.{}.", parts[1]) };
    assert_problem(&send(&app, get(&unsigned, "/v1/log")).await, StatusCode::UNAUTHORIZED, "token-invalid");
    let garbage = User { id: nurse.id, token: "not-a-token".into() };
    let refused = send(&app, get(&garbage, "/v1/log")).await;
    assert_problem(&refused, StatusCode::UNAUTHORIZED, "token-invalid");
}

#[tokio::test]
async fn a_totp_code_is_good_for_one_login_only() {
    let app = app().await;
    let (id, username) = open_account(&app, Role::Physician).await;
    let (_, secret, _) = sign_in_as(&app, id, &username).await;
    let used = code_for(&secret, &username, now_secs());
    let (_, _, challenge) = send(&app, post("/v1/auth/login", &json!({"username": username, "password": PASSWORD}))).await;
    assert_eq!(challenge["enrolment_required"], false, "MFA is on after the first confirmed code");
    let replay = json!({"mfa_token": challenge["mfa_token"], "code": used});
    assert_problem(&send(&app, post("/v1/auth/mfa/verification", &replay)).await, StatusCode::UNAUTHORIZED, "code-replayed");
    let wrong = json!({"mfa_token": challenge["mfa_token"], "code": "000000"});
    let refused = send(&app, post("/v1/auth/mfa/verification", &wrong)).await;
    assert!(matches!(refused.2["code"].as_str(), Some("invalid-code" | "code-replayed")), "{}", refused.2);
}

#[tokio::test]
async fn five_wrong_passwords_lock_the_account_even_against_the_right_one() {
    let app = app().await;
    let (_, username) = open_account(&app, Role::Nurse).await;
    let attempt = |password: &str| post("/v1/auth/login", &json!({"username": username, "password": password}));
    for _ in 0..4 {
        assert_problem(&send(&app, attempt("Wrong-Password-123")).await, StatusCode::UNAUTHORIZED, "invalid-credentials");
    }
    assert_problem(&send(&app, attempt("Wrong-Password-123")).await, StatusCode::LOCKED, "account-locked");
    assert_problem(&send(&app, attempt(PASSWORD)).await, StatusCode::LOCKED, "account-locked");
    let unknown = post("/v1/auth/login", &json!({"username": "nobody_here", "password": PASSWORD}));
    assert_problem(&send(&app, unknown).await, StatusCode::UNAUTHORIZED, "invalid-credentials");
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_whole_session() {
    let app = app().await;
    let (id, username) = open_account(&app, Role::Physician).await;
    let (user, _, tokens) = sign_in_as(&app, id, &username).await;
    let first = json!({"refresh_token": tokens["refresh_token"]});
    let (status, _, rotated) = send(&app, post("/v1/auth/refresh", &first)).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_ne!(rotated["refresh_token"], tokens["refresh_token"], "refresh tokens rotate");
    assert_problem(&send(&app, post("/v1/auth/refresh", &first)).await, StatusCode::UNAUTHORIZED, "refresh-token-reused");
    let second = json!({"refresh_token": rotated["refresh_token"]});
    assert_problem(&send(&app, post("/v1/auth/refresh", &second)).await, StatusCode::UNAUTHORIZED, "session-revoked");
    assert_problem(&send(&app, get(&user, "/v1/read/dashboard")).await, StatusCode::UNAUTHORIZED, "session-revoked");
}

#[tokio::test]
async fn logout_ends_the_session_at_once() {
    let app = app().await;
    let auditor = sign_in(&app, Role::Auditor).await;
    assert_eq!(send(&app, get(&auditor, "/v1/log")).await.0, StatusCode::OK);
    assert_eq!(send(&app, command(&auditor, "POST", "/v1/auth/logout", &json!({}))).await.0, StatusCode::NO_CONTENT);
    assert_problem(&send(&app, get(&auditor, "/v1/log")).await, StatusCode::UNAUTHORIZED, "session-revoked");
}

#[tokio::test]
async fn logins_from_one_address_are_rate_limited() {
    let app = app_with(AuthPolicy::default(), 3).await;
    let attempt = || post("/v1/auth/login", &json!({"username": "someone", "password": PASSWORD}));
    for _ in 0..3 {
        assert_eq!(send(&app, attempt()).await.0, StatusCode::UNAUTHORIZED);
    }
    let limited = send(&app, attempt()).await;
    assert_problem(&limited, StatusCode::TOO_MANY_REQUESTS, "rate-limited");
}

#[tokio::test]
async fn weak_passwords_and_taken_usernames_are_refused_at_registration() {
    let app = app().await;
    let weak = json!({"username": "weakling", "password": "password"});
    assert_problem(&send(&app, post("/v1/accounts/self-registration", &weak)).await, StatusCode::UNPROCESSABLE_ENTITY, "weak-password");
    let good = json!({"username": "taken_name", "password": PASSWORD});
    assert_eq!(send(&app, post("/v1/accounts/self-registration", &good)).await.0, StatusCode::CREATED);
    assert_problem(&send(&app, post("/v1/accounts/self-registration", &good)).await, StatusCode::CONFLICT, "username-taken");
    let practitioner = json!({"username": "self_made_doctor", "password": PASSWORD, "role": "physician"});
    let refused = send(&app, post("/v1/accounts/self-registration", &practitioner)).await;
    assert_eq!(refused.0, StatusCode::UNPROCESSABLE_ENTITY, "self-registration has no role field: {}", refused.2);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_for_the_seeds_alert_rules() {
    let app = app().await;
    let auditor = sign_in(&app, Role::Auditor).await;
    let unknown = "0190f5c4-7d0e-7cc2-9a4e-000000000001";
    assert_eq!(send(&app, get(&auditor, &format!("/v1/audit/patient/{unknown}/history"))).await.0, StatusCode::NOT_FOUND);
    let response = app.router.clone().oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    let text = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let line = text.lines().find(|l| l.starts_with("http_requests_total{") && l.contains("/history")).unwrap_or_default();
    assert!(line.contains(r#"route="/v1/audit/{aggregate_type}/{aggregate_id}/history""#) && line.contains(r#"status="404""#), "{text}");
    assert!(!text.contains(unknown), "ids never become label values");
    assert!(text.contains("http_request_duration_seconds_bucket{"), "histogram_quantile needs buckets");
    assert!(text.contains("emr_log_head_position"));
    let (status, _, ready) = send(&app, Request::get("/ready").body(Body::empty()).unwrap()).await;
    assert_eq!((status, ready["sessions"].as_str()), (StatusCode::OK, Some("ready")), "{ready}");
}

#[tokio::test]
async fn the_openapi_document_describes_routes_that_exist_with_the_domains_schemas() {
    let app = app().await;
    let (status, _, document) = send(&app, Request::get("/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."), "{}", document["openapi"]);
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 30, "{} paths", paths.len());
    let content = &document["components"]["schemas"]["RecordContent"];
    assert!(content["properties"]["title"].is_object() && content["required"].as_array().unwrap().contains(&json!("title")), "{content}");
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let id = "0190f5c4-7d0e-7cc2-9a4e-000000000009";
    for (path, operations) in paths {
        let concrete = path
            .replace("{aggregate_type}", "patient")
            .replace("{sequence}", "1")
            .split('/')
            .map(|part| if part.starts_with('{') { id } else { part })
            .collect::<Vec<_>>()
            .join("/");
        for method in operations.as_object().unwrap().keys() {
            let request = Request::builder().method(method.to_uppercase().as_str()).uri(&concrete).body(Body::empty()).unwrap();
            let (status, _, body) = send(&app, request).await;
            assert!(
                !(status == StatusCode::NOT_FOUND && body["detail"] == "no resource with this id"),
                "{method} {path} is documented but not routed"
            );
            assert!(status.is_client_error(), "{method} {concrete} without credentials or body: {status} {body}");
        }
    }
}

#[tokio::test]
async fn the_web_application_is_served_at_the_root_and_api_paths_never_fall_back_to_it() {
    let app = app().await;
    // Without a built application, `/` says how to build it.
    let response = app.router.clone().oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(page.contains("npm --prefix web ci"), "{page}");

    let dist = tempfile::tempdir().unwrap();
    std::fs::create_dir(dist.path().join("assets")).unwrap();
    std::fs::write(dist.path().join("index.html"), "<div id=root></div>").unwrap();
    std::fs::write(dist.path().join("assets/app.js"), "console.log(1)").unwrap();
    let router = emr_http::router_with_web_app(app.state.clone(), dist.path().to_owned());
    let get = |path: &str| router.clone().oneshot(Request::get(path).body(Body::empty()).unwrap());
    let body = |response: axum::response::Response| async move { response.into_body().collect().await.unwrap().to_bytes() };
    let asset = get("/assets/app.js").await.unwrap();
    assert_eq!(asset.status(), StatusCode::OK);
    assert_eq!(&body(asset).await[..], b"console.log(1)");
    for page in ["/", "/patients/0190f5c4-7d0e-7cc2-9a4e-000000000009", "/my/grants"] {
        let response = get(page).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        assert_eq!(&body(response).await[..], b"<div id=root></div>", "{page}: the browser's router takes it");
    }
    for api in ["/v1/nothing-here", "/fhir/r4-nothing", "/oauth/nothing"] {
        let response = get(api).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{api}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{api}");
    }
    let (status, _, _) = send(&app, Request::get("/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "routes still win over the fallback");
}

/// A client generated from the document must be able to send a command safely
/// twice: every operation that writes a command documents `Idempotency-Key`, and
/// those on an existing resource `If-Match` too.
#[tokio::test]
async fn every_documented_command_shows_how_to_retry_it_safely() {
    let app = app().await;
    let (_, _, document) = send(&app, Request::get("/openapi.json").body(Body::empty()).unwrap()).await;
    // Not commands a client keys: sign-in steps and SMART launches (sessions and
    // launch codes live in Redis); break-glass reads (each read is a disclosure of
    // its own); and writes that are idempotent by nature (an artifact stored under
    // its digest, a job's cancellation).
    let no_command = [
        "/v1/auth/login",
        "/v1/auth/mfa/enrolment",
        "/v1/auth/mfa/verification",
        "/v1/auth/refresh",
        "/v1/auth/logout",
        "/v1/smart/launches",
        "/v1/patients/{patient_id}/break-glass",
        "/v1/records/{record_id}/break-glass",
        "/v1/ai/models/{model_id}/artifact",
        "/v1/diagnosis/jobs/{job_id}/cancellation",
    ];
    let mut missing = Vec::new();
    for (path, operations) in document["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            if !matches!(method.as_str(), "post" | "put") || no_command.contains(&path.as_str()) {
                continue;
            }
            let headers: Vec<&str> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|parameter| parameter["in"] == "header")
                .filter_map(|parameter| parameter["name"].as_str())
                .collect();
            let on_existing = path.contains('{');
            if !headers.contains(&"Idempotency-Key") || (on_existing && !headers.contains(&"If-Match")) {
                missing.push(format!("{method} {path}: {headers:?}"));
            }
        }
    }
    assert!(missing.is_empty(), "commands without their retry headers:\n{}", missing.join("\n"));
    let create = &document["paths"]["/v1/records"]["post"]["parameters"];
    assert!(create.as_array().unwrap().iter().any(|p| p["name"] == "Idempotency-Key" && p["schema"]["format"] == "uuid"), "{create}");
}

/// The web application's API client is generated from `web/openapi.json`: it must
/// be the document this server serves. `EMR_WRITE_OPENAPI=1` rewrites it.
#[tokio::test]
async fn the_web_apps_api_description_is_the_one_the_server_serves() {
    let app = app().await;
    let (_, _, served) = send(&app, Request::get("/openapi.json").body(Body::empty()).unwrap()).await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/openapi.json");
    let text = serde_json::to_string_pretty(&served).unwrap() + "\n";
    if std::env::var_os("EMR_WRITE_OPENAPI").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "web/openapi.json differs from the served document: run `EMR_WRITE_OPENAPI=1 cargo test -p emr-http --test api -- web_apps_api` and rebuild the web app"
    );
}

#[tokio::test]
async fn a_delegate_manages_grants_and_reads_for_the_patient_but_cannot_erase_them() {
    let app = app().await;
    let (author, patient, patient_id) = clinic_with_patient(&app).await;
    let guardian = sign_in(&app, Role::Patient).await;
    let consultant = sign_in(&app, Role::Physician).await;
    let (_, _, created) = send(&app, command(&author, "POST", "/v1/records", &record_body(&patient_id, &author))).await;
    let record = format!("/v1/records/{}", created["aggregate_id"].as_str().unwrap());
    let refer =
        json!({"patient_id": patient_id, "grantee": consultant.id, "scopes": ["read"], "expires_at": in_days(3), "reason": "referral"});
    assert_problem(&send(&app, command(&guardian, "POST", "/v1/grants", &refer)).await, StatusCode::FORBIDDEN, "not-own-record");

    let delegation =
        json!({"patient_id": patient_id, "grantee": guardian.id, "scopes": ["delegate"], "expires_at": in_days(30), "reason": "guardian"});
    assert_eq!(send(&app, command(&patient, "POST", "/v1/grants", &delegation)).await.0, StatusCode::CREATED);
    let (status, _, granted) = send(&app, command(&guardian, "POST", "/v1/grants", &refer)).await;
    assert_eq!(status, StatusCode::CREATED, "the delegate grants for the patient: {granted}");
    assert_eq!(send(&app, get(&consultant, &record)).await.0, StatusCode::OK);
    let (status, _, read) = send(&app, get(&guardian, &record)).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    let erase = json!({"reason": "patient_request"});
    let refused = send(&app, command(&guardian, "POST", &format!("/v1/patients/{}/erasure", patient.id), &erase)).await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "not-own-record");
}

fn upload_request(user: &User, record: &str, filename: &str, body: Vec<u8>) -> Request<Body> {
    let request = Request::post(format!("/v1/records/{record}/attachments/content?filename={filename}"))
        .header(header::CONTENT_TYPE, "application/dicom")
        .body(Body::from(body))
        .unwrap();
    as_user(user, request)
}

async fn download_bytes(app: &TestApp, user: &User, record: &str, attachment: &str) -> (StatusCode, Result<Vec<u8>, String>) {
    let response = app.router.clone().oneshot(get(user, &format!("/v1/records/{record}/attachments/{attachment}/content"))).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.map(|b| b.to_bytes().to_vec()).map_err(|e| e.to_string());
    (status, body)
}

#[tokio::test]
async fn an_attachment_streams_in_sealed_and_back_out_verified_and_disclosed() {
    let app = app().await;
    let Chart { author, patient, record, .. } = patient_with_a_record(&app).await;
    let stranger = sign_in(&app, Role::Physician).await;
    let scan: Vec<u8> = (0..600_000_u32).map(|i| (i * 7 % 251) as u8).collect();

    let refused = send(&app, upload_request(&stranger, &record, "scan.dcm", scan.clone())).await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "no-active-grant");
    let (status, _, receipt) = send(&app, upload_request(&author, &record, "chest.dcm", scan.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    assert_eq!(receipt["events"][0]["event_type"], "AttachmentAdded");
    let attachment = receipt["aggregate_id"].as_str().unwrap().to_owned();
    let attachment_id = {
        let auditor = sign_in(&app, Role::Auditor).await;
        let (_, _, history) = send(&app, get(&auditor, &format!("/v1/audit/medical_record/{record}/history"))).await;
        let added = history.as_array().unwrap().iter().find(|e| e["event_type"] == "AttachmentAdded").unwrap().clone();
        assert!(!added.to_string().contains("chest.dcm"), "the file name is sealed like PHI");
        assert!(added["payload"]["data"]["content_id"].as_str().unwrap().starts_with("bafy"), "{added}");
        added["payload"]["data"]["attachment_id"].as_str().unwrap().to_owned()
    };
    assert_eq!(attachment, record, "the receipt names the record the attachment joined");

    let (status, body) = download_bytes(&app, &patient, &record, &attachment_id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.unwrap(), scan, "the patient gets their scan back, byte for byte");
    let (status, _) = download_bytes(&app, &stranger, &record, &attachment_id).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, _, log) = send(&app, get(&sign_in(&app, Role::Auditor).await, "/v1/log?limit=1000")).await;
    let attachment_reads = log.as_array().unwrap().iter().filter(|e| e["payload"]["data"]["resource"]["kind"] == "attachment").count();
    assert_eq!(attachment_reads, 1, "the download was recorded as a disclosure");
}

#[tokio::test]
async fn a_dicom_attachment_previews_as_a_png_recorded_as_a_disclosure_and_the_record_lists_it() {
    let app = app().await;
    let Chart { author, patient, record, .. } = patient_with_a_record(&app).await;
    let stranger = sign_in(&app, Role::Physician).await;
    let ct = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/dicom/CT_small.dcm")).unwrap();
    assert_eq!(send(&app, upload_request(&author, &record, "ct.dcm", ct.clone())).await.0, StatusCode::CREATED);
    assert_eq!(send(&app, upload_request(&author, &record, "notes.dcm", b"not an image".to_vec())).await.0, StatusCode::CREATED);

    let (_, _, view) = send(&app, get(&patient, &format!("/v1/records/{record}"))).await;
    let listed = view["attachments"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{view}");
    assert_eq!((listed[0]["size_bytes"].as_u64(), listed[0]["mime_type"].as_str()), (Some(ct.len() as u64), Some("application/dicom")));
    let (scan, text) = (listed[0]["attachment_id"].as_str().unwrap(), listed[1]["attachment_id"].as_str().unwrap());

    let preview =
        |user: &User, attachment: &str, query: &str| get(user, &format!("/v1/records/{record}/attachments/{attachment}/preview{query}"));
    let response = app.router.clone().oneshot(preview(&patient, scan, "?size=64")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "image/png");
    assert!(response.headers().contains_key("x-emr-disclosure-id"), "the preview is recorded like a download");
    let png = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&png[1..4], b"PNG");
    let (_, _, log) = send(&app, get(&sign_in(&app, Role::Auditor).await, "/v1/log?limit=1000")).await;
    let attachment_reads = log.as_array().unwrap().iter().filter(|e| e["payload"]["data"]["resource"]["kind"] == "attachment").count();
    assert_eq!(attachment_reads, 1, "{log}");

    assert_problem(&send(&app, preview(&patient, text, "")).await, StatusCode::UNPROCESSABLE_ENTITY, "not-previewable");
    assert_problem(&send(&app, preview(&patient, scan, "?frame=4")).await, StatusCode::UNPROCESSABLE_ENTITY, "not-previewable");
    assert_problem(&send(&app, preview(&patient, scan, "?size=0")).await, StatusCode::UNPROCESSABLE_ENTITY, "invalid-field");
    assert_eq!(send(&app, preview(&patient, scan, "?size=lots")).await.0, StatusCode::BAD_REQUEST);
    assert_problem(&send(&app, preview(&stranger, scan, "")).await, StatusCode::FORBIDDEN, "no-active-grant");
}

#[tokio::test]
async fn a_read_refused_as_too_large_for_its_reader_records_no_disclosure() {
    let app = app().await;
    let Chart { author, patient, record, .. } = patient_with_a_record(&app).await;
    let scan = vec![7_u8; 50_000];
    assert_eq!(send(&app, upload_request(&author, &record, "ct.dcm", scan)).await.0, StatusCode::CREATED);
    let (_, _, view) = send(&app, get(&patient, &format!("/v1/records/{record}"))).await;
    let attachment: AttachmentId = view["attachments"][0]["attachment_id"].as_str().unwrap().parse().unwrap();
    let reader = Actor::new(patient.id.parse().unwrap(), Role::Patient);
    let attachments = app.state.attachments.clone().unwrap();
    let record_id: RecordId = record.parse().unwrap();
    let disclosed_before = disclosures(&app).await;

    let refused = attachments.download_within(&reader, record_id, attachment, 49_999).await.err();
    assert!(matches!(refused, Some(AttachmentError::TooLarge { size: 50_000, limit: 49_999 })), "{refused:?}");
    assert_eq!(disclosures(&app).await, disclosed_before, "nothing was shown, so nothing is disclosed");
    let served = attachments.download_within(&reader, record_id, attachment, 50_000).await.unwrap();
    assert!(served.disclosure.is_some());
    assert_eq!(disclosures(&app).await, disclosed_before + 1, "a read that fits is recorded once");
}

#[tokio::test]
async fn a_tampered_blob_never_downloads_whole_and_an_erased_patients_blob_is_gone() {
    let app = app().await;
    let Chart { author, patient, record, .. } = patient_with_a_record(&app).await;
    let scan = vec![42_u8; 300_000];
    let (status, _, _) = send(&app, upload_request(&author, &record, "ct.dcm", scan)).await;
    assert_eq!(status, StatusCode::CREATED);
    let auditor = sign_in(&app, Role::Auditor).await;
    let (_, _, history) = send(&app, get(&auditor, &format!("/v1/audit/medical_record/{record}/history"))).await;
    let added = history.as_array().unwrap().iter().find(|e| e["event_type"] == "AttachmentAdded").unwrap().clone();
    let attachment_id = added["payload"]["data"]["attachment_id"].as_str().unwrap().to_owned();
    let cid = added["payload"]["data"]["content_id"].as_str().unwrap().to_owned();

    let status_uri = format!("/v1/records/{record}/attachments/{attachment_id}");
    let (_, _, status) = send(&app, get(&patient, &status_uri)).await;
    assert_eq!((status["pinned"].as_bool(), status["content_id"].as_str()), (Some(true), Some(cid.as_str())), "{status}");
    let replication = &status["replication"];
    assert_eq!(
        (replication["policy"].is_null(), replication["state"].as_str()),
        (true, Some("satisfied")),
        "no target: the store holds it"
    );
    let blob = app.blobs_dir().join("blobs").join(&cid);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[200_000] ^= 0x01;
    std::fs::write(&blob, &bytes).unwrap();
    let (status, body) = download_bytes(&app, &patient, &record, &attachment_id).await;
    assert_eq!(status, StatusCode::OK, "the headers go out before the blob is read");
    assert!(body.is_err(), "the transfer breaks off instead of completing with altered content");
    bytes[200_000] ^= 0x01;
    std::fs::write(&blob, &bytes).unwrap();
    assert!(download_bytes(&app, &patient, &record, &attachment_id).await.1.is_ok(), "restored, it verifies again");

    let admin = sign_in(&app, Role::Admin).await;
    let (status, _, _) =
        send(&app, command(&admin, "POST", &format!("/v1/patients/{}/erasure", patient.id), &json!({"reason": "patient_request"}))).await;
    assert_eq!(status, StatusCode::OK);
    let disclosed_before = disclosures(&app).await;
    let response =
        app.router.clone().oneshot(get(&patient, &format!("/v1/records/{record}/attachments/{attachment_id}/content"))).await.unwrap();
    assert_eq!(response.status(), StatusCode::GONE, "the key is destroyed");
    assert_eq!(disclosures(&app).await, disclosed_before, "a read that could not be served is not recorded as a disclosure");
    assert!(!blob.exists(), "the erased patient's blob was unpinned and collected");
    let (_, _, status) = send(&app, get(&patient, &status_uri)).await;
    assert_eq!(status["pinned"].as_bool(), Some(false), "{status}");
    assert_eq!(status["replication"]["state"], "under_replicated", "{status}");
}

#[tokio::test]
async fn a_retried_upload_returns_the_original_receipt_and_stores_nothing_new() {
    let app = app().await;
    let Chart { author, record, .. } = patient_with_a_record(&app).await;
    let attempt = || {
        let mut request = upload_request(&author, &record, "mri.dcm", vec![9_u8; 100_000]);
        request.headers_mut().insert("idempotency-key", "0190f5c4-0000-7000-8000-00000000abcd".parse().unwrap());
        request
    };
    let (status, _, first) = send(&app, attempt()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (_, _, second) = send(&app, attempt()).await;
    assert_eq!((first["replayed"].as_bool(), second["replayed"].as_bool()), (Some(false), Some(true)), "{second}");
    assert_eq!(first["position"], second["position"]);
    let stored = std::fs::read_dir(app.blobs_dir().join("blobs")).unwrap().count();
    assert_eq!(stored, 1, "the retry stored no second blob");
}

#[tokio::test]
async fn a_dicom_upload_records_its_header_and_a_malformed_one_is_kept_as_an_opaque_blob() {
    let app = app().await;
    let Chart { author, record, .. } = patient_with_a_record(&app).await;
    let auditor = sign_in(&app, Role::Auditor).await;
    let ct = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/dicom/CT_small.dcm")).unwrap();
    assert_eq!(send(&app, upload_request(&author, &record, "ct.dcm", ct)).await.0, StatusCode::CREATED);
    let (status, _, receipt) = send(&app, upload_request(&author, &record, "broken.dcm", b"DICM but not really".to_vec())).await;
    assert_eq!(status, StatusCode::CREATED, "a malformed DICOM file is still stored: {receipt}");

    let (_, _, history) = send(&app, get(&auditor, &format!("/v1/audit/medical_record/{record}/history"))).await;
    let added: Vec<&Value> = history.as_array().unwrap().iter().filter(|e| e["event_type"] == "AttachmentAdded").collect();
    assert_eq!(added.len(), 2);
    let dicom = &added[0]["payload"]["data"]["dicom"];
    assert_eq!((dicom["modality"].as_str(), dicom["study_date"].as_str()), (Some("CT"), Some("2004-01-19")), "{dicom}");
    assert_eq!((dicom["rows"].as_u64(), dicom["columns"].as_u64()), (Some(128), Some(128)));
    assert!(added[1]["payload"]["data"].get("dicom").is_none_or(Value::is_null), "no metadata from an unreadable header");
}

#[tokio::test]
async fn an_administrator_moves_a_nurse_to_the_audit_office_and_the_nurses_sessions_end() {
    let app = app().await;
    let admin = sign_in(&app, Role::Admin).await;
    let nurse = sign_in(&app, Role::Nurse).await;
    let physician = sign_in(&app, Role::Physician).await;
    let (patient_account, _) = open_account(&app, Role::Patient).await;
    let role_uri = |id: &str| format!("/v1/accounts/{id}/role");
    let to_auditor = json!({"role": "auditor", "reason": "moved to the audit office"});

    let refused = send(&app, command(&physician, "POST", &role_uri(&nurse.id), &to_auditor)).await;
    assert_problem(&refused, StatusCode::FORBIDDEN, "role-not-permitted");
    assert_eq!(send(&app, get(&nurse, &format!("/v1/accounts/{}", nurse.id))).await.0, StatusCode::OK, "the nurse's session still stands");

    assert_eq!(send(&app, command(&admin, "POST", &role_uri(&nurse.id), &to_auditor)).await.0, StatusCode::NO_CONTENT);
    let (_, _, account) = send(&app, get(&admin, &format!("/v1/accounts/{}", nurse.id))).await;
    assert_eq!(account["role"], "auditor", "{account}");
    assert_problem(&send(&app, get(&nurse, &format!("/v1/accounts/{}", nurse.id))).await, StatusCode::UNAUTHORIZED, "session-revoked");
    assert_eq!(send(&app, command(&admin, "POST", &role_uri(&nurse.id), &to_auditor)).await.0, StatusCode::NO_CONTENT, "already so");

    let back_to_nursing = json!({"role": "nurse", "reason": "back to the ward"});
    let refused = send(&app, command(&admin, "POST", &role_uri(&nurse.id), &back_to_nursing)).await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY, "account-rule");
    assert!(refused.2["detail"].as_str().unwrap().contains("practitioner profile"), "{}", refused.2);
    assert_problem(
        &send(&app, command(&admin, "POST", &role_uri(&patient_account), &to_auditor)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "account-rule",
    );
    assert_problem(
        &send(&app, command(&admin, "POST", &role_uri(&admin.id), &to_auditor)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "account-rule",
    );
    let to_system = json!({"role": "system", "reason": "x"});
    assert_problem(
        &send(&app, command(&admin, "POST", &role_uri(&physician.id), &to_system)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "account-rule",
    );
    let (status, _, problem) =
        send(&app, command(&admin, "POST", &role_uri(&physician.id), &json!({"role": "wizard", "reason": "x"}))).await;
    assert!(status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST, "{status}: {problem}");
    assert_eq!(problem["status"], status.as_u16());
}

#[tokio::test]
async fn an_account_command_sent_again_with_its_idempotency_key_applies_once_and_if_match_guards_the_version() {
    let app = app().await;
    let admin = sign_in(&app, Role::Admin).await;
    let auditor = sign_in(&app, Role::Auditor).await;
    let (nurse, _) = open_account(&app, Role::Nurse).await;
    let (_, _, account) = send(&app, get(&admin, &format!("/v1/accounts/{nurse}"))).await;
    let version = account["sequence"].as_u64().unwrap();
    let role_change = |key: &str, expected: u64| {
        let mut request = command(&admin, "POST", &format!("/v1/accounts/{nurse}/role"), &json!({"role": "auditor", "reason": "moved"}));
        request.headers_mut().insert("idempotency-key", key.parse().unwrap());
        request.headers_mut().insert("if-match", format!("\"{expected}\"").parse().unwrap());
        request
    };
    let key = "0190f5c4-7d0e-7cc2-9a4e-0000000000a1";
    assert_eq!(send(&app, role_change(key, version)).await.0, StatusCode::NO_CONTENT);
    assert_eq!(send(&app, role_change(key, version)).await.0, StatusCode::NO_CONTENT, "the same command again answers as the first");
    let (_, _, history) = send(&app, get(&auditor, &format!("/v1/audit/account/{nurse}/history"))).await;
    let changes = history.as_array().unwrap().iter().filter(|event| event["event_type"] == "RoleChanged").count();
    assert_eq!(changes, 1, "{history}");

    let (_, _, account) = send(&app, get(&admin, &format!("/v1/accounts/{nurse}"))).await;
    assert_eq!(account["sequence"].as_u64(), Some(version + 1), "{account}");
    let stale = send(&app, role_change("0190f5c4-7d0e-7cc2-9a4e-0000000000a2", version)).await;
    assert_problem(&stale, StatusCode::PRECONDITION_FAILED, "version-mismatch");
}

#[tokio::test]
async fn administrators_list_accounts_by_role_and_nobody_else_lists_them() {
    let app = app_with_everything().await;
    let admin = sign_in(&app, Role::Admin).await;
    let physician = sign_in(&app, Role::Physician).await;
    fold(&app).await;
    let (status, _, physicians) = send(&app, get(&admin, "/v1/accounts?role=physician")).await;
    assert_eq!(status, StatusCode::OK, "{physicians}");
    let listed: Vec<&str> = physicians.as_array().unwrap().iter().map(|a| a["user_id"].as_str().unwrap()).collect();
    assert_eq!(listed, [physician.id.as_str()]);
    assert_eq!(physicians[0]["mfa_enabled"], 1, "{physicians}");
    assert_problem(&send(&app, get(&physician, "/v1/accounts")).await, StatusCode::FORBIDDEN, "role-not-permitted");
    assert_eq!(send(&app, get(&admin, "/v1/accounts?colour=blue")).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_practitioner_lists_the_grants_made_to_them_and_their_pending_requests_and_no_one_else_may() {
    let app = app_with_everything().await;
    let (_, first_patient, _) = clinic_with_patient(&app).await;
    let (_, second_patient, _) = clinic_with_patient(&app).await;
    let consultant = sign_in(&app, Role::Physician).await;
    let colleague = sign_in(&app, Role::Physician).await;
    let granted =
        send(&app, command(&first_patient, "POST", "/v1/grants", &grant_body(&first_patient.id, &consultant.id, in_days(7)))).await;
    assert_eq!(granted.0, StatusCode::CREATED, "{}", granted.2);
    let to_colleague = grant_body(&first_patient.id, &colleague.id, in_days(7));
    assert_eq!(send(&app, command(&first_patient, "POST", "/v1/grants", &to_colleague)).await.0, StatusCode::CREATED);
    let request = json!({"patient_id": second_patient.id, "scopes": ["read"], "requested_until": in_days(3), "reason": "referral"});
    let requested = send(&app, command(&consultant, "POST", "/v1/access-requests", &request)).await;
    assert_eq!(requested.0, StatusCode::CREATED, "{}", requested.2);
    fold(&app).await;

    let own = format!("/v1/accounts/{}/grants", consultant.id);
    let (status, _, listed) = send(&app, get(&consultant, &own)).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let listed = listed.as_array().unwrap();
    let ids: Vec<&str> = listed.iter().map(|g| g["grant_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [requested.2["aggregate_id"].as_str().unwrap(), granted.2["aggregate_id"].as_str().unwrap()], "newest first");
    assert!(listed.iter().all(|g| g["grantee"] == json!(consultant.id)), "only the consultant's: {listed:?}");
    assert_eq!((listed[0]["status"].as_str(), listed[1]["active_now"].as_bool()), (Some("requested"), Some(true)), "{listed:?}");

    let revoke = json!({"reason": "second opinion given"});
    let grant = granted.2["aggregate_id"].as_str().unwrap();
    assert_eq!(send(&app, command(&first_patient, "POST", &format!("/v1/grants/{grant}/revocation"), &revoke)).await.0, StatusCode::OK);
    let (_, _, after) = send(&app, get(&consultant, &own)).await;
    assert_eq!(after[1]["active_now"], false, "a revocation shows before the read model folds it: {after}");

    let (status, _, audited) = send(&app, get(&sign_in(&app, Role::Auditor).await, &own)).await;
    assert_eq!((status, audited.as_array().map(Vec::len)), (StatusCode::OK, Some(2)), "an auditor may look: {audited}");
    for stranger in [&colleague, &first_patient] {
        assert_eq!(send(&app, get(stranger, &own)).await.0, StatusCode::FORBIDDEN, "another user's grants are theirs alone");
    }
    assert_problem(&send(&app, get(&consultant, "/v1/accounts/not-a-uuid/grants")).await, StatusCode::BAD_REQUEST, "invalid-id");
}

#[tokio::test]
async fn a_batch_of_records_answers_each_on_its_own_and_a_retried_batch_creates_none_twice() {
    let app = app().await;
    let (author, _, patient_id) = clinic_with_patient(&app).await;
    let colleague = sign_in(&app, Role::Physician).await;
    let stranger_patient = uuid::Uuid::now_v7().to_string();
    let records = json!({"records": [
        record_body(&patient_id, &author),
        record_body(&patient_id, &author),
        record_body(&stranger_patient, &author),
        record_body(&patient_id, &colleague),
        record_body(&patient_id, &author),
    ]});
    let key = uuid::Uuid::now_v7().to_string();
    let batch = || {
        let mut request = command(&author, "POST", "/v1/records/batch", &records);
        request.headers_mut().insert("idempotency-key", key.parse().unwrap());
        request
    };
    let (status, _, answered) = send(&app, batch()).await;
    assert_eq!(status, StatusCode::OK, "{answered}");
    let statuses: Vec<u64> = answered.as_array().unwrap().iter().map(|entry| entry["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [201, 201, 422, 403, 201], "{answered}");
    assert_eq!(answered[2]["problem"]["code"], "patient-not-active", "{answered}");
    assert_eq!(answered[3]["problem"]["code"], "on-behalf-of-another", "{answered}");
    let created: Vec<&str> = [0, 1, 4].iter().map(|&i| answered[i]["receipt"]["aggregate_id"].as_str().unwrap()).collect();
    assert_eq!(created.iter().collect::<std::collections::BTreeSet<_>>().len(), 3, "three distinct records");
    for record in &created {
        assert_eq!(send(&app, get(&author, &format!("/v1/records/{record}"))).await.0, StatusCode::OK);
    }

    let (status, _, again) = send(&app, batch()).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    for i in [0, 1, 4] {
        assert_eq!(again[i]["receipt"]["aggregate_id"], answered[i]["receipt"]["aggregate_id"], "{again}");
        assert_eq!(
            (again[i]["receipt"]["replayed"].as_bool(), &again[i]["receipt"]["position"]),
            (Some(true), &answered[i]["receipt"]["position"])
        );
    }
    let commits = app.log.read_from(1, 100_000).await.unwrap();
    let creations = commits.iter().filter(|c| String::from_utf8_lossy(&c.payload).contains("\"RecordCreated\"")).count();
    assert_eq!(creations, 3, "the retry created nothing");

    assert_problem(
        &send(&app, command(&author, "POST", "/v1/records/batch", &json!({"records": []}))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-batch",
    );
    let too_many = json!({"records": vec![record_body(&patient_id, &author); 1001]});
    assert_problem(
        &send(&app, command(&author, "POST", "/v1/records/batch", &too_many)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-batch",
    );
    let malformed = send(&app, command(&author, "POST", "/v1/records/batch", &json!({"records": [{"patient_id": "x"}]}))).await;
    assert!(malformed.0.is_client_error(), "{malformed:?}");
}
