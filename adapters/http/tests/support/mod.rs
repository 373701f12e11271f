//! What every API test needs: an app over the embedded store, real accounts
//! signed in with password and TOTP, and requests with their bearer tokens.
// Shared by several test binaries; each uses a different part.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use emr_auth::{AuthPolicy, Identity, MemorySessionStore, Registration, SigningKeys, Tokens};
use emr_commands::{Clinic, EventStorePorts};
use emr_domain::DomainServices;
use emr_domain::account::Username;
use emr_domain::actor::{Actor, Role};
use emr_domain::ids::CommandId;
use emr_eventstore::StoreConfig;
use emr_http::{AppState, router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

pub struct TestApp {
    pub router: axum::Router,
    pub state: AppState,
    pub log: Arc<dyn emr_eventstore::EventLog>,
    pub identity: Identity,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// The app's own directory (its store, read models and exports live there).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// A codec over the app's key vault (for the search-index projector).
    pub fn phi_codec(&self) -> Arc<emr_eventstore::PhiCodec> {
        Arc::new(emr_eventstore::PhiCodec::new(self.state.clinic.vault().clone()))
    }

    /// The embedded blob store's directory.
    pub fn blobs_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("blobs")
    }
}

pub async fn app() -> TestApp {
    app_with(AuthPolicy::default(), 1000).await
}

/// The app with every optional part configured: read models (SQLite) and the
/// audit ledger (file) beside the blob store, all in the app's directory.
pub async fn app_with_everything() -> TestApp {
    let mut app = app().await;
    let dir = app._dir.path().to_owned();
    let db = emr_projections::ReadModelDb::open_sqlite(&dir.join("read-models.db")).await.unwrap();
    db.migrate().await.unwrap();
    let mut state = app.state.clone();
    state.read_models = Some(emr_http::ReadModelState { db, log: app.log.clone(), search_index: emr_tests::read_models::blind_index() });
    let ledger = std::sync::Arc::new(emr_anchor::FileLedger::open(&dir.join("audit")).unwrap());
    state.audit = Some(emr_http::AuditState { ledger, dir: dir.join("audit") });
    state.exports = Some(emr_http::bulk::BulkExports::open(dir.join("exports")).unwrap());
    app.router = router(state.clone());
    app.state = state;
    app
}

pub async fn app_with(policy: AuthPolicy, login_attempts_per_minute: u64) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let store = emr_sqlite::SqliteStore::open(dir.path()).await.unwrap();
    let (log, snapshots, keys) = store.ports();
    let kek = Arc::new(emr_keyring::Keyring::load_or_create(&dir.path().join("keyring")).unwrap());
    let ports = EventStorePorts { log: log.clone(), snapshots, keys, kek };
    let tokens = Tokens::new(SigningKeys::generate("test-key").unwrap());
    let identity = Identity::new(&ports, Arc::new(MemorySessionStore::new()), tokens, policy, DomainServices::default());
    let models = Arc::new(emr_federated::DirectoryModelStore::open(dir.path().join("models"), ports.kek.as_ref()).await.unwrap());
    let federated = Some(emr_federated::Coordinator::new(&ports, models, DomainServices::default()));
    let clinic = Clinic::new(ports, StoreConfig::default(), DomainServices::default());
    let blobs = Arc::new(emr_ipfs::LocalBlobStore::open(&dir.path().join("blobs")).unwrap());
    let attachments = Some(emr_attachments::Attachments::new(clinic.clone(), blobs));
    let exports = None;
    let diagnosis = Some(diagnosis_state(&clinic, dir.path()));
    let state = AppState {
        clinic,
        identity: identity.clone(),
        login_attempts_per_minute,
        read_models: None,
        audit: None,
        attachments,
        federated,
        exports,
        diagnosis,
    };
    TestApp { router: router(state.clone()), state, log, identity, _dir: dir }
}

/// Diagnosis with jobs queued in memory and models kept under `dir` (a shelf
/// with no network: these tests never run a model; `tests/tests/diagnosis.rs` does).
fn diagnosis_state(clinic: &Clinic, dir: &std::path::Path) -> emr_http::DiagnosisState {
    let jobs = emr_diagnosis_jobs::DiagnosisJobs::new(
        clinic.clone(),
        Arc::new(emr_eventstore::MemoryWorkQueue::new()),
        Arc::new(emr_eventstore::MemoryStatusBoard::new()),
    );
    emr_http::DiagnosisState { jobs, shelf: Arc::new(EmptyShelf(dir.join("models-unused"))) }
}

/// A shelf that holds no model.
struct EmptyShelf(std::path::PathBuf);

impl emr_diagnosis::ModelShelf for EmptyShelf {
    fn classifier(
        &self,
        card: &emr_domain::diagnosis::ModelCard,
    ) -> Result<Arc<dyn emr_diagnosis::Classifier>, emr_diagnosis::DiagnosisError> {
        Err(emr_diagnosis::DiagnosisError::NotInstalled {
            name: card.name.clone(),
            version: card.version.clone(),
            detail: self.0.display().to_string(),
        })
    }

    fn install(&self, card: &emr_domain::diagnosis::ModelCard, artifact: &[u8]) -> Result<(), emr_diagnosis::DiagnosisError> {
        emr_diagnosis::verify_artifact(card, artifact)?;
        Err(emr_diagnosis::DiagnosisError::NotInstalled {
            name: card.name.clone(),
            version: card.version.clone(),
            detail: "this shelf keeps nothing".into(),
        })
    }

    fn contains(&self, _card: &emr_domain::diagnosis::ModelCard) -> bool {
        false
    }
}

pub const PASSWORD: &str = "Correct-Horse-Battery-9";

/// A signed-in user.
#[derive(Clone)]
pub struct User {
    pub id: String,
    pub token: String,
}

/// Opens an account (as the system, like `emr accounts create-admin`).
pub async fn open_account(app: &TestApp, role: Role) -> (String, String) {
    let username = format!("u{}", uuid::Uuid::new_v4().simple());
    let profile = matches!(role, Role::Physician | Role::Nurse).then(|| emr_domain::fixtures::practitioner_profile("Li Wei"));
    let registration = Registration { username: Username::parse(&username).unwrap(), password: PASSWORD.into(), role, profile };
    let id = app.identity.register(Some(&Actor::system()), registration, None, CommandId::new()).await.unwrap();
    (id.to_string(), username)
}

pub fn post(uri: &str, body: &Value) -> Request<Body> {
    Request::post(uri).header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string())).unwrap()
}

pub fn code_for(secret: &str, username: &str, at: u64) -> String {
    let secret = emr_domain::account::TotpSecret::parse(secret).unwrap();
    emr_auth::totp(&secret, "EMR Ledger", username).unwrap().generate(at)
}

pub fn now_secs() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap()
}

/// Password → enrolment → TOTP → tokens, over HTTP.
pub async fn sign_in_as(app: &TestApp, id: String, username: &str) -> (User, String, Value) {
    let (status, _, challenge) = send(app, post("/v1/auth/login", &json!({"username": username, "password": PASSWORD}))).await;
    assert_eq!(status, StatusCode::OK, "{challenge}");
    let mfa_token = challenge["mfa_token"].as_str().unwrap().to_owned();
    let (status, _, enrolment) = send(app, post("/v1/auth/mfa/enrolment", &json!({"mfa_token": mfa_token}))).await;
    assert_eq!(status, StatusCode::OK, "{enrolment}");
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    let code = code_for(&secret, username, now_secs());
    let (status, _, tokens) = send(app, post("/v1/auth/mfa/verification", &json!({"mfa_token": mfa_token, "code": code}))).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    (User { id, token: tokens["access_token"].as_str().unwrap().to_owned() }, secret, tokens)
}

pub async fn sign_in(app: &TestApp, role: Role) -> User {
    let (id, username) = open_account(app, role).await;
    sign_in_as(app, id, &username).await.0
}

pub fn as_user(user: &User, mut request: Request<Body>) -> Request<Body> {
    request.headers_mut().insert(header::AUTHORIZATION, format!("Bearer {}", user.token).parse().unwrap());
    request
}

pub fn command(user: &User, method: &str, uri: &str, body: &Value) -> Request<Body> {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    as_user(user, request)
}

pub fn get(user: &User, uri: &str) -> Request<Body> {
    as_user(user, Request::get(uri).body(Body::empty()).unwrap())
}

pub async fn send(app: &TestApp, request: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

pub fn patient_body() -> Value {
    json!({
        "hospital_id": "HOSP-001",
        "identifiers": {"mrn": "MRN-42", "external": []},
        "demographics": {"full_name": "Huang Min", "date_of_birth": "1975-02-03", "gender": "male",
                         "phone_number": null, "email": null, "address": null}
    })
}

pub fn record_body(patient_id: &str, doctor: &User) -> Value {
    json!({
        "patient_id": patient_id, "doctor_id": doctor.id, "hospital_id": "HOSP-001", "record_type": "consultation",
        "visit_date": "2026-10-01",
        "content": {"title": "Annual check-up", "description": null,
                    "diagnosis": {"code": "I10", "description": "Essential hypertension"},
                    "treatment": null,
                    "medications": [{"name": "Amlodipine", "dose": {"amount": "5", "unit": "mg"}, "route": "oral", "frequency": "once daily"}]}
    })
}

/// A patient (with an account of their own) and one record their physician wrote.
pub struct Chart {
    /// The physician who registered the patient and wrote the record.
    pub author: User,
    /// The patient.
    pub patient: User,
    /// The record's id.
    pub record: String,
    /// The log position of the record's creation.
    pub created_at: u64,
}

/// A new [`Chart`]: a patient and one record by a new physician.
pub async fn patient_with_a_record(app: &TestApp) -> Chart {
    let author = sign_in(app, Role::Physician).await;
    let patient = sign_in(app, Role::Patient).await;
    let mut body = patient_body();
    body["patient_id"] = json!(patient.id);
    assert_eq!(send(app, command(&author, "POST", "/v1/patients", &body)).await.0, StatusCode::CREATED);
    let (_, _, created) = send(app, command(&author, "POST", "/v1/records", &record_body(&patient.id, &author))).await;
    let record = created["aggregate_id"].as_str().unwrap().to_owned();
    let created_at = created["position"].as_u64().unwrap();
    Chart { author, patient, record, created_at }
}

pub fn assert_problem(result: &(StatusCode, Option<String>, Value), status: StatusCode, code: &str) {
    assert_eq!(result.0, status, "{}", result.2);
    assert_eq!(result.1.as_deref(), Some("application/problem+json"));
    assert_eq!(result.2["code"], code, "{}", result.2);
    assert_eq!(result.2["status"], status.as_u16());
}

pub fn grant_body(patient: &str, grantee: &str, expires_at: chrono::DateTime<chrono::Utc>) -> Value {
    json!({"patient_id": patient, "grantee": grantee, "scopes": ["read", "write"], "expires_at": expires_at, "reason": "second opinion"})
}

pub fn in_days(days: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() + chrono::Duration::days(days)
}

/// Folds the log into the app's read models (`app_with_everything`).
pub async fn fold(app: &TestApp) {
    let models = app.state.read_models.clone().unwrap();
    emr_tests::read_models::fold_all(&models.db, &models.log, 100).await;
    let search = emr_tests::read_models::search_index(app.phi_codec());
    emr_tests::read_models::fold_search_index(&models.db, &models.log, search, 100).await;
}

/// Disclosures (`PhiDisclosed` events) recorded in the log so far.
pub async fn disclosures(app: &TestApp) -> usize {
    let commits = app.log.read_from(1, 100_000).await.unwrap();
    commits
        .iter()
        .map(|commit| {
            let record: Value = serde_json::from_slice(&commit.payload).unwrap();
            record["events"].as_array().unwrap().iter().filter(|e| e["event_type"] == "PhiDisclosed").count()
        })
        .sum()
}
