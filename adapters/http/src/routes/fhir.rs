//! The FHIR R4 front door (`/fhir/r4`, `application/fhir+json`): the same reads as
//! the API — the same grants, roles and break-glass rules, every read recorded in the
//! patient's access log — answered as FHIR resources (`emr-fhir` maps them), and
//! every error as an `OperationOutcome` carrying the API's stable code.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use emr_commands::Subject;
use emr_domain::access::{Action, Basis};
use emr_domain::ids::{PatientId, RecordId};
use emr_fhir::{CapabilityStatement, FHIR_JSON, IssueType, MedicationRef};
use emr_projections::queries::{RecordFilter, RecordSort};
use serde::Deserialize;
use serde_json::Value;

use super::path_id;
use crate::AppState;
use crate::extract::Caller;
use crate::problem::{ApiError, Problem};

/// What the routes below serve; `/metadata` is built from it.
fn capabilities() -> CapabilityStatement {
    CapabilityStatement::default()
        .resource("Patient", &["read"])
        .resource("Encounter", &["read", "search-type"])
        .resource("Condition", &["read", "search-type"])
        .resource("MedicationStatement", &["read"])
}

/// A FHIR answer: a resource, or an `OperationOutcome` with its status.
pub(crate) struct Fhir(StatusCode, Value);

impl IntoResponse for Fhir {
    fn into_response(self) -> Response {
        let mut response = (self.0, axum::Json(self.1)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
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
        Self(StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), outcome)
    }
}

fn ok(resource: Value) -> Result<Fhir, Fhir> {
    Ok(Fhir(StatusCode::OK, resource))
}

fn not_found(what: &str) -> Fhir {
    Fhir::from(ApiError::NotFound(what.into()))
}

/// `GET /fhir/r4/metadata`: what this server implements.
pub(crate) async fn metadata() -> Fhir {
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    Fhir(StatusCode::OK, capabilities().to_json(env!("CARGO_PKG_VERSION"), &date))
}

/// `GET /fhir/r4/Patient/{id}`.
pub(crate) async fn patient(State(state): State<AppState>, caller: Result<Caller, ApiError>, Path(id): Path<String>) -> Result<Fhir, Fhir> {
    let caller = caller?;
    let patient_id: PatientId = path_id(&id, "Patient id")?;
    let read = state.clinic.read_patient(&caller.actor, patient_id, None).await.map_err(ApiError::from)?;
    let redacted = read.basis == Basis::Redacted;
    ok(emr_fhir::patient(patient_id, read.loaded.state(), read.loaded.sequence(), redacted))
}

/// Reads a record for a FHIR resource built from it.
async fn record(
    state: &AppState,
    caller: Result<Caller, ApiError>,
    record_id: RecordId,
    resource: impl FnOnce(&emr_domain::record::MedicalRecord, u64, bool) -> Option<Value>,
    what: &str,
) -> Result<Fhir, Fhir> {
    let caller = caller?;
    let read = state.clinic.read_record(&caller.actor, record_id, None, None).await.map_err(ApiError::from)?;
    let redacted = read.basis == Basis::Redacted;
    resource(read.loaded.state(), read.loaded.sequence(), redacted).map_or_else(|| Err(not_found(what)), ok)
}

/// `GET /fhir/r4/Encounter/{id}`: a record's visit.
pub(crate) async fn encounter(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path(id): Path<String>,
) -> Result<Fhir, Fhir> {
    let record_id: RecordId = path_id(&id, "Encounter id")?;
    record(&state, caller, record_id, |r, v, redacted| Some(emr_fhir::encounter(record_id, r, v, redacted)), "Encounter").await
}

/// `GET /fhir/r4/Condition/{id}`: a record's coded diagnosis.
pub(crate) async fn condition(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path(id): Path<String>,
) -> Result<Fhir, Fhir> {
    let record_id: RecordId = path_id(&id, "Condition id")?;
    record(&state, caller, record_id, |r, v, redacted| emr_fhir::condition(record_id, r, v, redacted), "Condition").await
}

/// `GET /fhir/r4/MedicationStatement/{record id}.{n}`: one of a record's medications.
pub(crate) async fn medication_statement(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path(id): Path<String>,
) -> Result<Fhir, Fhir> {
    let reference = MedicationRef::parse(&id).ok_or_else(|| {
        Fhir::from(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid-id",
            "The id is not valid",
            "a MedicationStatement id is <record id>.<n>, n from 1",
        ))
    })?;
    let statement = |r: &_, v, redacted| emr_fhir::medication_statement(reference, r, v, redacted);
    record(&state, caller, reference.record, statement, "MedicationStatement").await
}

/// The search parameters served: a patient's records, a page at a time.
#[derive(Deserialize)]
pub(crate) struct RecordSearch {
    /// `<patient id>` or `Patient/<patient id>`.
    patient: Option<String>,
    /// Page size, 1–500 (default 50).
    #[serde(rename = "_count")]
    count: Option<u32>,
    /// Matches to skip (the `next` link sets it).
    #[serde(rename = "_offset")]
    offset: Option<u32>,
}

fn invalid_search(detail: &str) -> Fhir {
    Fhir::from(Problem::new(StatusCode::BAD_REQUEST, "invalid-search", "The search is not valid", detail))
}

/// This server's base URL as the client addressed it (`Host`, and
/// `X-Forwarded-Proto` behind a proxy), for the Bundle's absolute URLs.
fn base_url(headers: &HeaderMap) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let scheme = header("x-forwarded-proto").filter(|p| p == "https").unwrap_or_else(|| "http".into());
    format!("{scheme}://{}/fhir/r4", header("host").unwrap_or_else(|| "localhost".into()))
}

/// Searches a patient's records (from the record index, which follows the log) and
/// reads each through the same rule as a single read — authorized and recorded —
/// turning it into resources with `resource`.
async fn search_records(
    state: &AppState,
    caller: Result<Caller, ApiError>,
    headers: &HeaderMap,
    search: Result<Query<RecordSearch>, axum::extract::rejection::QueryRejection>,
    kind: &str,
    resource: impl Fn(RecordId, &emr_domain::record::MedicalRecord, u64, bool) -> Option<Value>,
) -> Result<Fhir, Fhir> {
    let caller = caller?;
    let Query(search) = search.map_err(|e| invalid_search(&e.body_text()))?;
    let patient = search.patient.ok_or_else(|| invalid_search("search by patient: ?patient=<id>"))?;
    let patient_id: PatientId = path_id(patient.strip_prefix("Patient/").unwrap_or(&patient), "patient")?;
    let count = search.count.unwrap_or(50);
    if !(1..=500).contains(&count) {
        return Err(invalid_search("_count must be 1 to 500"));
    }
    let offset = search.offset.unwrap_or(0);
    let models = super::read::models(state)?;
    let filter = RecordFilter {
        patient_id: Some(patient_id.as_uuid()),
        sort: Some(RecordSort::VisitDateDesc),
        limit: Some(count),
        offset: Some(offset),
        ..RecordFilter::default()
    };
    let page = emr_projections::queries::records(&models.db, &filter).await.map_err(ApiError::from)?;
    if page.is_empty() {
        // An empty page must not tell a caller who may not read this patient's records
        // that there are none (or how many): the patient-wide rule of a read decides, and
        // a refusal is recorded. A record's author without a grant reads their own
        // records on a full page, but not an empty one.
        state.clinic.authorize(&caller.actor, Action::ReadRecord, Subject::patient(patient_id)).await.map_err(ApiError::from)?;
    }
    let base = base_url(headers);
    let mut entries = Vec::new();
    for summary in &page {
        let record_id: RecordId = path_id(&summary.record_id, "record id")?;
        let read = state.clinic.read_record(&caller.actor, record_id, None, None).await.map_err(ApiError::from)?;
        if let Some(found) = resource(record_id, read.loaded.state(), read.loaded.sequence(), read.basis == Basis::Redacted) {
            entries.push((format!("{base}/{kind}/{record_id}"), found));
        }
    }
    let page_url = |offset: u32| format!("{base}/{kind}?patient={patient_id}&_count={count}&_offset={offset}");
    let next = (page.len() == count as usize).then(|| page_url(offset + count));
    ok(emr_fhir::searchset(&page_url(offset), next.as_deref(), entries))
}

/// `GET /fhir/r4/Encounter?patient=…`: a patient's visits, most recent first.
pub(crate) async fn search_encounters(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    search: Result<Query<RecordSearch>, axum::extract::rejection::QueryRejection>,
) -> Result<Fhir, Fhir> {
    search_records(&state, caller, &headers, search, "Encounter", |id, r, v, redacted| Some(emr_fhir::encounter(id, r, v, redacted))).await
}

/// `GET /fhir/r4/Condition?patient=…`: a patient's coded diagnoses, most recent visit first.
pub(crate) async fn search_conditions(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    search: Result<Query<RecordSearch>, axum::extract::rejection::QueryRejection>,
) -> Result<Fhir, Fhir> {
    search_records(&state, caller, &headers, search, "Condition", emr_fhir::condition).await
}

/// Any other path under `/fhir/r4`: an `OperationOutcome`, not an empty 404.
pub(crate) async fn unsupported() -> Fhir {
    let names: Vec<&str> = capabilities().resource_types().collect();
    Fhir::from(Problem::new(
        StatusCode::NOT_FOUND,
        "not-supported",
        "Not supported",
        format!("this server serves {} (see /fhir/r4/metadata)", names.join(", ")),
    ))
}
