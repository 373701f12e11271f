//! The FHIR R4 front door (`/fhir/r4`, `application/fhir+json`): the same commands
//! and reads as the API — the same grants, roles and break-glass rules, every read
//! recorded in the patient's access log, every change a command on the same
//! aggregates — answered as FHIR resources (`emr-fhir` maps them), every error an
//! `OperationOutcome` carrying the API's stable code.
//!
//! Versions are the aggregates' sequences: reads answer `ETag: W/"<version>"`,
//! writes honour `If-Match` (412 on a stale version), and `_history` replays the log.

mod bundle;
mod documents;

pub(crate) use bundle::submit as submit_bundle;
mod export;
mod history;
mod privacy;
mod read;
mod search;
mod write;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use emr_domain::ids::{PatientId, RecordId};
use emr_fhir::scopes::{Interaction, Reach};
use emr_fhir::{CapabilityStatement, FHIR_JSON, IssueType};
use serde_json::Value;

use crate::AppState;
use crate::extract::Caller;
use crate::problem::{ApiError, Problem};

/// The routes, and in [`capabilities`] what they serve: keep the two together.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", axum::routing::post(bundle::submit))
        .route("/metadata", get(metadata))
        .route("/Patient", get(search::patients).post(write::create_patient))
        .route("/Patient/{id}", get(read::patient).put(write::update_patient))
        .route("/Patient/_history", get(history::patients))
        .route("/Patient/{id}/_history", get(history::patient))
        .route("/Patient/{id}/_history/{version}", get(history::patient_version))
        .route("/Encounter", get(search::encounters).post(write::create_encounter))
        .route("/Encounter/{id}", get(read::encounter).delete(write::delete_encounter))
        .route("/Encounter/_history", get(history::encounters))
        .route("/Encounter/{id}/_history", get(history::encounter))
        .route("/Encounter/{id}/_history/{version}", get(history::encounter_version))
        .route("/Condition", get(search::conditions))
        .route("/Condition/{id}", get(read::condition).put(write::update_condition))
        .route("/Condition/_history", get(history::conditions))
        .route("/Condition/{id}/_history", get(history::condition))
        .route("/Condition/{id}/_history/{version}", get(history::condition_version))
        .route("/MedicationStatement/{id}", get(read::medication_statement))
        .route("/Practitioner/{id}", get(read::practitioner))
        .route("/DiagnosticReport", get(read::diagnostic_reports))
        .route("/DiagnosticReport/{id}", get(read::diagnostic_report))
        .route("/DocumentReference", get(documents::document_references))
        .route("/DocumentReference/{id}", get(documents::document_reference))
        .route("/Binary/{id}", get(documents::binary))
        .route("/Consent", get(privacy::consents))
        .route("/Consent/{id}", get(privacy::consent))
        .route("/AuditEvent", get(privacy::audit_events))
        .route("/Provenance", get(privacy::provenances))
        .route("/.well-known/smart-configuration", get(super::smart::configuration))
        .route("/.well-known/openid-configuration", get(super::smart::openid_configuration))
        .route("/Patient/$export", get(export::patients))
        .route("/$export", get(export::system))
        .route("/Group/{id}/$export", get(export::group))
        .route("/$export-status/{id}", get(export::status).delete(export::cancel))
        .route("/$export-file/{id}/{name}", get(export::file))
        .fallback(unsupported)
}

/// The parameters of a search of a patient's records (`emr_fhir::search`).
const CONDITION_SEARCH: &[(&str, &str)] = &[
    ("patient", "reference"),
    ("_id", "token"),
    ("date", "date"),
    ("_lastUpdated", "date"),
    ("code", "token"),
    ("_sort", "special"),
    ("_count", "number"),
    ("_offset", "number"),
    ("_include", "special"),
];

/// An Encounter search's parameters: a record search's, and the record's type and status.
const ENCOUNTER_SEARCH: &[(&str, &str)] = &[
    ("patient", "reference"),
    ("_id", "token"),
    ("date", "date"),
    ("_lastUpdated", "date"),
    ("type", "token"),
    ("status", "token"),
    ("_sort", "special"),
    ("_count", "number"),
    ("_offset", "number"),
    ("_include", "special"),
];

/// A search for patients, from the search index (`emr_fhir::search::PatientSearch`).
const PATIENT_LOOKUP: &[(&str, &str)] = &[
    ("_id", "token"),
    ("name", "string"),
    ("birthdate", "date"),
    ("gender", "token"),
    ("identifier", "token"),
    ("_lastUpdated", "date"),
    ("_sort", "special"),
    ("_count", "number"),
    ("_offset", "number"),
];

/// The parameters of the patient-wide searches (`Consent?`, `AuditEvent?`).
const PATIENT_SEARCH: &[(&str, &str)] = &[("patient", "reference"), ("_count", "number"), ("_offset", "number")];

/// What the routes above serve; `/metadata` is built from it.
fn capabilities() -> CapabilityStatement {
    CapabilityStatement::default()
        .system(&["transaction", "batch"])
        .resource("Patient", &["read", "vread", "history-instance", "history-type", "search-type", "create", "update"])
        .resource("Encounter", &["read", "vread", "history-instance", "history-type", "search-type", "create", "delete"])
        .resource("Condition", &["read", "vread", "history-instance", "history-type", "search-type", "update"])
        .resource("MedicationStatement", &["read"])
        .resource("DiagnosticReport", &["read", "search-type"])
        .resource("DocumentReference", &["read", "search-type"])
        .resource("Binary", &["read"])
        .resource("Consent", &["read", "search-type"])
        .resource("AuditEvent", &["search-type"])
        .resource("Provenance", &["search-type"])
        .resource("Practitioner", &["read"])
        .search("Encounter", ENCOUNTER_SEARCH, &["Encounter:subject"])
        .search("Condition", CONDITION_SEARCH, &["Condition:subject"])
        .search("Patient", PATIENT_LOOKUP, &[])
        .search("DiagnosticReport", &[("encounter", "reference")], &[])
        .search("DocumentReference", &[("encounter", "reference")], &[])
        .search("Consent", PATIENT_SEARCH, &[])
        .search("AuditEvent", PATIENT_SEARCH, &[])
        .search("Provenance", &[("target", "reference")], &[])
        .operation("Patient", "export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export")
        .resource("Group", &[])
        .operation("Group", "export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export")
        .operation("", "export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export")
}

/// A FHIR answer: a resource (with its version's `ETag` and, once created, its
/// `Location`), or an `OperationOutcome` with its status.
pub(crate) struct Fhir {
    status: StatusCode,
    body: Option<Value>,
    version: Option<u64>,
    location: Option<String>,
}

impl Fhir {
    fn new(status: StatusCode, body: Value) -> Self {
        Self { status, body: Some(body), version: None, location: None }
    }

    /// A resource found or changed.
    fn ok(resource: Value) -> Self {
        Self::new(StatusCode::OK, resource)
    }

    /// Marks the answer as the resource at `version`.
    fn at_version(mut self, version: u64) -> Self {
        self.version = Some(version);
        self
    }
}

impl IntoResponse for Fhir {
    fn into_response(self) -> Response {
        let mut response = match self.body {
            Some(body) => (self.status, axum::Json(body)).into_response(),
            None => self.status.into_response(),
        };
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
        if let Some(Ok(etag)) = self.version.map(|v| HeaderValue::from_str(&crate::extract::etag(v))) {
            headers.insert(header::ETAG, etag);
        }
        if let Some(Ok(location)) = self.location.map(|l| HeaderValue::from_str(&l)) {
            headers.insert(header::LOCATION, location);
        }
        response
    }
}

impl From<ApiError> for Fhir {
    fn from(error: ApiError) -> Self {
        Self::from(error.problem())
    }
}

impl From<Problem> for Fhir {
    fn from(problem: Problem) -> Self {
        let outcome = emr_fhir::operation_outcome(IssueType::of_status(problem.status), &problem.code, &problem.title, &problem.detail);
        Self::new(StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), outcome)
    }
}

impl From<emr_commands::ClinicError> for Fhir {
    fn from(error: emr_commands::ClinicError) -> Self {
        Self::from(ApiError::from(error))
    }
}

/// Whether a SMART app's token allows `interaction` on `resource_type` about
/// `patient` (a token of the API's own sessions is not narrowed by scopes). A
/// patient-level scope reaches only the patient in the app's launch context.
fn permit(caller: &Caller, resource_type: &str, interaction: Interaction, patient: Option<PatientId>) -> Result<(), Fhir> {
    let Some(app) = &caller.claims.app else { return Ok(()) };
    let refused = |detail: String| Fhir::from(Problem::new(StatusCode::FORBIDDEN, "insufficient-scope", "Not allowed", detail));
    match emr_fhir::scopes::reach(&app.scope, resource_type, interaction) {
        None => Err(refused(format!("the app's scopes ({}) do not allow {interaction:?} on {resource_type}", app.scope))),
        Some(Reach::User) => Ok(()),
        Some(Reach::Patient) if patient.is_some() && patient == app.patient => Ok(()),
        Some(Reach::Patient) => Err(refused("the app's patient scopes reach only the patient of its launch context".into())),
    }
}

/// The patient a record is about, for [`permit`]: looked up only for an app's token.
async fn record_patient(state: &AppState, caller: &Caller, record_id: RecordId) -> Result<Option<PatientId>, Fhir> {
    if caller.claims.app.is_none() {
        return Ok(None);
    }
    Ok(state.clinic.load_record(record_id).await?.state().patient_id())
}

fn not_found(what: &str) -> Fhir {
    Fhir::from(ApiError::NotFound(what.into()))
}

fn invalid(code: &str, title: &str, detail: impl Into<String>) -> Fhir {
    Fhir::from(Problem::new(StatusCode::BAD_REQUEST, code, title, detail))
}

/// This server's origin as the client addressed it (`Host`, and
/// `X-Forwarded-Proto` behind a proxy), for absolute URLs.
pub(crate) fn origin(headers: &HeaderMap) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let scheme = header("x-forwarded-proto").filter(|p| p == "https").unwrap_or_else(|| "http".into());
    format!("{scheme}://{}", header("host").unwrap_or_else(|| "localhost".into()))
}

/// The FHIR base URL as the client addressed it, for Bundles' absolute URLs.
fn base_url(headers: &HeaderMap) -> String {
    format!("{}/fhir/r4", origin(headers))
}

/// `GET /fhir/r4/metadata`: what this server implements, and where SMART apps
/// are authorized.
async fn metadata(headers: HeaderMap) -> Fhir {
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let origin = origin(&headers);
    let (authorize, token) = (super::smart::endpoint(&origin, "authorize"), super::smart::endpoint(&origin, "token"));
    Fhir::ok(capabilities().with_oauth(authorize, token).to_json(env!("CARGO_PKG_VERSION"), &date))
}

/// Any other path under `/fhir/r4`: an `OperationOutcome`, not an empty 404.
async fn unsupported() -> Fhir {
    let names: Vec<&str> = capabilities().resource_types().collect();
    Fhir::from(Problem::new(
        StatusCode::NOT_FOUND,
        "not-supported",
        "Not supported",
        format!("this server serves {} (see /fhir/r4/metadata)", names.join(", ")),
    ))
}
