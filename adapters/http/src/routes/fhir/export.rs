//! Bulk Data Access 2.0: the system, Patient and Group `$export` kick-offs, status
//! polling, cancellation and the NDJSON files — the job itself is [`crate::bulk`].
//! System and Group exports are for system accounts: backend services with a
//! client-credentials token. A Group is a hospital (its id the hospital's code).

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use emr_domain::actor::Role;
use emr_fhir::scopes::Interaction;
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::{Fhir, base_url, invalid, not_found, permit};
use crate::AppState;
use crate::bulk::{BulkExports, EXPORTABLE, ExportError, Job, Level, Status};
use crate::extract::Caller;
use crate::problem::{ApiError, Problem};

/// The kick-off parameters.
#[derive(Deserialize)]
pub(super) struct KickOff {
    /// Comma-separated resource types (default: all exportable).
    #[serde(rename = "_type")]
    types: Option<String>,
    /// Only resources changed at or after this instant.
    #[serde(rename = "_since")]
    since: Option<String>,
    /// `application/fhir+ndjson` (or its short forms) only.
    #[serde(rename = "_outputFormat")]
    output_format: Option<String>,
}

fn exports(state: &AppState) -> Result<&BulkExports, Fhir> {
    state.exports.as_ref().ok_or_else(|| {
        Fhir::from(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "export-not-configured",
            "This server does not run bulk exports",
            "bulk export needs read models and an export directory",
        ))
    })
}

fn from_export(error: ExportError) -> Fhir {
    match error {
        ExportError::NotFound => not_found("export"),
        other => {
            tracing::warn!(error = %other, "bulk export storage failed");
            Fhir::from(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Something went wrong", "the error was logged"))
        }
    }
}

async fn kick_off(
    state: &AppState,
    caller: Result<Caller, ApiError>,
    headers: &HeaderMap,
    query: Result<Query<KickOff>, QueryRejection>,
    level: Level,
    path: &str,
) -> Result<Response, Fhir> {
    let caller = caller?;
    let Query(query) = query.map_err(|e| invalid("invalid-search", "The export request is not valid", e.body_text()))?;
    if !headers.get("prefer").and_then(|v| v.to_str().ok()).is_some_and(|p| p.contains("respond-async")) {
        return Err(invalid("respond-async-required", "The export request is not valid", "send Prefer: respond-async"));
    }
    if let Some(format) =
        query.output_format.as_deref().filter(|f| !["application/fhir+ndjson", "application/ndjson", "ndjson"].contains(f))
    {
        return Err(invalid(
            "invalid-output-format",
            "The export request is not valid",
            format!("_outputFormat {format} is not served; NDJSON only"),
        ));
    }
    let types: Vec<String> = match &query.types {
        None => EXPORTABLE.iter().map(|t| (*t).to_owned()).collect(),
        Some(list) => list.split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect(),
    };
    if let Some(unknown) = types.iter().find(|t| !EXPORTABLE.contains(&t.as_str())) {
        return Err(invalid(
            "invalid-type",
            "The export request is not valid",
            format!("_type {unknown} is not exportable ({})", EXPORTABLE.join(", ")),
        ));
    }
    let since = match &query.since {
        None => None,
        Some(text) => Some(
            DateTime::parse_from_rfc3339(text)
                .map_err(|_| {
                    invalid("invalid-since", "The export request is not valid", "_since is an instant such as 2026-01-01T00:00:00Z")
                })?
                .to_utc(),
        ),
    };
    for resource_type in &types {
        permit(&caller, resource_type, Interaction::Search, None)?;
    }
    let role = caller.actor.role;
    let allowed = match level {
        Level::Patient => matches!(role, Role::Physician | Role::Nurse | Role::Patient | Role::System),
        Level::System | Level::Group { .. } => role == Role::System,
    };
    if !allowed {
        return Err(Fhir::from(Problem::new(
            StatusCode::FORBIDDEN,
            "role-not-permitted",
            "Not allowed",
            format!("a {role:?} account cannot run this export (system and Group exports are for backend services)"),
        )));
    }
    let base = base_url(headers);
    let job = Job {
        id: uuid::Uuid::now_v7(),
        owner: caller.actor,
        level,
        types,
        since,
        request: format!("{base}/{path}"),
        transaction_time: Utc::now(),
    };
    let id = job.id;
    exports(state)?.start(state.clone(), job).map_err(from_export)?;
    let mut response = StatusCode::ACCEPTED.into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("{base}/$export-status/{id}")) {
        response.headers_mut().insert(header::CONTENT_LOCATION, location);
    }
    Ok(response)
}

/// `GET /fhir/r4/Patient/$export`: the data of every patient the requester may read.
pub(super) async fn patients(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    query: Result<Query<KickOff>, QueryRejection>,
) -> Result<Response, Fhir> {
    kick_off(&state, caller, &headers, query, Level::Patient, "Patient/$export").await
}

/// `GET /fhir/r4/$export`: every active patient's data (backend services).
pub(super) async fn system(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    query: Result<Query<KickOff>, QueryRejection>,
) -> Result<Response, Fhir> {
    kick_off(&state, caller, &headers, query, Level::System, "$export").await
}

/// `GET /fhir/r4/Group/{hospital}/$export`: the data of the patients a hospital
/// registered (backend services).
pub(super) async fn group(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<KickOff>, QueryRejection>,
) -> Result<Response, Fhir> {
    let hospital = emr_domain::ids::HospitalId::parse(&id)
        .map_err(|e| invalid("invalid-id", "The id is not valid", format!("a Group is a hospital, named by its code: {}", e.reason)))?;
    let path = format!("Group/{}/$export", hospital.as_str());
    kick_off(&state, caller, &headers, query, Level::Group { hospital: hospital.as_str().to_owned() }, &path).await
}

fn job_id(text: &str) -> Result<uuid::Uuid, Fhir> {
    text.parse().map_err(|_| not_found("export"))
}

/// `GET /fhir/r4/$export-status/{id}`: 202 with `X-Progress` while running, the
/// manifest once complete, an OperationOutcome if it failed.
pub(super) async fn status(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Fhir> {
    let caller = caller?;
    let (job, progress) = exports(&state)?.status(job_id(&id)?, &caller.actor).map_err(from_export)?;
    match progress.status {
        Status::Running => {
            let mut response = StatusCode::ACCEPTED.into_response();
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&format!("{} patients exported", progress.patients)) {
                headers.insert("x-progress", value);
            }
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            Ok(response)
        }
        Status::Complete => Ok(Fhir::ok(crate::bulk::manifest(&base_url(&headers), &job, &progress)).into_response()),
        Status::Failed => Err(Fhir::from(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "export-failed",
            "The export failed",
            progress.error.unwrap_or_default(),
        ))),
    }
}

/// `DELETE /fhir/r4/$export-status/{id}`: stops the job and deletes its files.
pub(super) async fn cancel(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path(id): Path<String>,
) -> Result<Response, Fhir> {
    let caller = caller?;
    exports(&state)?.cancel(job_id(&id)?, &caller.actor).map_err(from_export)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `GET /fhir/r4/$export-file/{id}/{name}`: one NDJSON file of a complete job,
/// streamed, for its requester only.
pub(super) async fn file(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, Fhir> {
    let caller = caller?;
    let (path, length) = exports(&state)?.file(job_id(&id)?, &caller.actor, &name).map_err(from_export)?;
    let file = tokio::fs::File::open(&path).await.map_err(|e| from_export(ExportError::Io(e)))?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file.take(length)));
    let mut response = Response::new(body);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+ndjson"));
    response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(response)
}
