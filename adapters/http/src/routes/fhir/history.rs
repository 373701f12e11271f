//! Versions from the event log: `_history` (instance) and vread. A version is a
//! commit: the aggregate's sequence after one command's events.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use emr_domain::access::Basis;
use emr_domain::ids::{PatientId, RecordId};
use emr_domain::metadata::EventMetadata;
use emr_eventstore::Cutoff;
use emr_fhir::HistoryEntry;
use emr_fhir::scopes::Interaction;

use super::read::{CONDITION_VIEW, RecordView, encounter_view};
use super::{Fhir, base_url, not_found, permit, record_patient};
use crate::AppState;
use crate::extract::Caller;
use crate::problem::ApiError;
use crate::routes::path_id;

/// One commit of an aggregate, as a resource version.
pub(super) struct Version {
    /// The aggregate's sequence after the commit.
    pub(super) version: u64,
    /// The first version (the creation).
    pub(super) first: bool,
    /// Its events' types.
    pub(super) event_types: Vec<String>,
    /// The envelope of its last event (author, time, log position).
    pub(super) metadata: EventMetadata,
}

impl Version {
    /// How FHIR names the change: `POST` created it, `DELETE` deleted it, `PUT` changed it.
    pub(super) fn method(&self) -> &'static str {
        if self.first {
            "POST"
        } else if self.event_types.iter().any(|t| t == "RecordDeleted" || t == "PatientErased") {
            "DELETE"
        } else {
            "PUT"
        }
    }

    fn recorded_at(&self) -> DateTime<Utc> {
        self.metadata.recorded_at
    }
}

/// The versions of an aggregate, oldest first (unauthorized: the caller authorizes).
pub(super) async fn versions(state: &AppState, aggregate_type: &str, id: &str) -> Result<Vec<Version>, Fhir> {
    let events = state.clinic.history(aggregate_type, id).await?;
    Ok(commits(events).into_iter().map(|found| found.version).collect())
}

/// Events in log order grouped into commits, each a version of its aggregate.
fn commits(events: impl IntoIterator<Item = emr_eventstore::RecordedEvent>) -> Vec<Found> {
    let mut commits: Vec<Found> = Vec::new();
    for event in events {
        match commits.last_mut() {
            Some(last) if last.version.metadata.position == event.metadata.position => {
                last.version.version = event.sequence;
                last.version.event_types.push(event.event_type);
                last.version.metadata = event.metadata;
            }
            _ => commits.push(Found {
                id: event.key.aggregate_id().to_owned(),
                version: Version {
                    version: event.sequence,
                    first: event.sequence == 1,
                    event_types: vec![event.event_type],
                    metadata: event.metadata,
                },
            }),
        }
    }
    commits
}

fn version_number(text: &str) -> Result<u64, Fhir> {
    text.parse().map_err(|_| not_found("version"))
}

/// The version numbered `number`, or 404.
async fn version(state: &AppState, aggregate_type: &str, id: &str, number: &str) -> Result<Version, Fhir> {
    let number = version_number(number)?;
    versions(state, aggregate_type, id).await?.into_iter().find(|v| v.version == number).ok_or_else(|| not_found("version"))
}

/// `GET /fhir/r4/Patient/{id}/_history/{version}`: the patient as that version left them.
pub(super) async fn patient_version(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path((id, number)): Path<(String, String)>,
) -> Result<Fhir, Fhir> {
    let caller = caller?;
    let patient_id: PatientId = path_id(&id, "Patient id")?;
    permit(&caller, "Patient", Interaction::Read, Some(patient_id))?;
    let found = version(&state, "patient", &id, &number).await?;
    let read = state.clinic.read_patient(&caller.actor, patient_id, None).await?;
    let then = state.clinic.patient_as_of(patient_id, Cutoff::Position(found.metadata.position)).await?;
    let resource = emr_fhir::patient(patient_id, then.state(), found.version, read.basis == Basis::Redacted);
    Ok(Fhir::ok(resource).at_version(found.version))
}

/// `GET /fhir/r4/Patient/{id}/_history`: every version, newest first (one recorded read).
pub(super) async fn patient(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Fhir, Fhir> {
    let caller = caller?;
    let patient_id: PatientId = path_id(&id, "Patient id")?;
    permit(&caller, "Patient", Interaction::Read, Some(patient_id))?;
    let read = state.clinic.read_patient(&caller.actor, patient_id, None).await?;
    let redacted = read.basis == Basis::Redacted;
    let base = base_url(&headers);
    let mut entries = Vec::new();
    for found in versions(&state, "patient", &id).await?.into_iter().rev() {
        // A deletion's entry carries no resource: nothing to replay for it.
        let resource = match found.method() {
            "DELETE" => None,
            _ => {
                let then = state.clinic.patient_as_of(patient_id, Cutoff::Position(found.metadata.position)).await?;
                Some(emr_fhir::patient(patient_id, then.state(), found.version, redacted))
            }
        };
        entries.push(entry(&base, &format!("Patient/{id}"), resource, &found));
    }
    Ok(Fhir::ok(emr_fhir::history(&format!("{base}/Patient/{id}/_history"), entries)))
}

fn entry(base: &str, url: &str, resource: Option<serde_json::Value>, version: &Version) -> HistoryEntry {
    HistoryEntry {
        full_url: format!("{base}/{url}"),
        resource,
        method: version.method(),
        url: url.to_owned(),
        version: version.version,
        last_modified: version.recorded_at(),
    }
}

/// A record's version as the resource `view` makes of it (authorized and recorded
/// as a point-in-time read).
async fn record_version(
    state: &AppState,
    caller: Result<Caller, ApiError>,
    id: &str,
    number: &str,
    view: RecordView,
    what: &str,
) -> Result<Fhir, Fhir> {
    let caller = caller?;
    let record_id: RecordId = path_id(id, "id")?;
    permit(&caller, what, Interaction::Read, record_patient(state, &caller, record_id).await?)?;
    let found = version(state, "medical_record", id, number).await?;
    let cutoff = Cutoff::Position(found.metadata.position);
    let read = state.clinic.read_record(&caller.actor, record_id, Some(cutoff), None).await?;
    let resource = view(record_id, read.loaded.state(), found.version, read.basis == Basis::Redacted).ok_or_else(|| not_found(what))?;
    Ok(Fhir::ok(resource).at_version(found.version))
}

/// A record's versions as resources of one type, newest first; versions the type
/// cannot show (a record version without a diagnosis, as a Condition) are left out.
async fn record_history(
    state: &AppState,
    caller: Result<Caller, ApiError>,
    headers: &HeaderMap,
    id: &str,
    view: RecordView,
    kind: &str,
) -> Result<Fhir, Fhir> {
    let caller = caller?;
    let record_id: RecordId = path_id(id, "id")?;
    permit(&caller, kind, Interaction::Read, record_patient(state, &caller, record_id).await?)?;
    let read = state.clinic.read_record(&caller.actor, record_id, None, None).await?;
    let redacted = read.basis == Basis::Redacted;
    let base = base_url(headers);
    let mut entries = Vec::new();
    for found in versions(state, "medical_record", id).await?.into_iter().rev() {
        // A deletion's entry carries no resource: nothing to replay for it.
        let resource = match found.method() {
            "DELETE" => None,
            _ => {
                let then = state.clinic.record_as_of(record_id, Cutoff::Position(found.metadata.position)).await?;
                let Some(resource) = view(record_id, then.state(), found.version, redacted) else { continue };
                Some(resource)
            }
        };
        entries.push(entry(&base, &format!("{kind}/{id}"), resource, &found));
    }
    Ok(Fhir::ok(emr_fhir::history(&format!("{base}/{kind}/{id}/_history"), entries)))
}

/// `GET /fhir/r4/Encounter/{id}/_history/{version}`.
pub(super) async fn encounter_version(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path((id, number)): Path<(String, String)>,
) -> Result<Fhir, Fhir> {
    record_version(&state, caller, &id, &number, encounter_view, "Encounter").await
}

/// `GET /fhir/r4/Condition/{id}/_history/{version}`.
pub(super) async fn condition_version(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path((id, number)): Path<(String, String)>,
) -> Result<Fhir, Fhir> {
    record_version(&state, caller, &id, &number, CONDITION_VIEW, "Condition").await
}

/// `GET /fhir/r4/Encounter/{id}/_history`.
pub(super) async fn encounter(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Fhir, Fhir> {
    record_history(&state, caller, &headers, &id, encounter_view, "Encounter").await
}

/// `GET /fhir/r4/Condition/{id}/_history`.
pub(super) async fn condition(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Fhir, Fhir> {
    record_history(&state, caller, &headers, &id, CONDITION_VIEW, "Condition").await
}

/// The query of a type's history: `_count` (1–100, default 50), `_since` (an
/// instant), and `_cursor`, the log position the next page starts before (from
/// the `next` link).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TypeHistory {
    #[serde(rename = "_count")]
    count: Option<u32>,
    #[serde(rename = "_since")]
    since: Option<String>,
    #[serde(rename = "_cursor")]
    cursor: Option<u64>,
    #[serde(rename = "_format")]
    _format: Option<String>,
}

/// Commits read from the log per step of a scan, and the most one page scans
/// (a page of a rarely written type ends early, with a `next` link).
const SCAN_STEP: u64 = 500;
const SCAN_LIMIT: u64 = 20_000;

/// One commit of the searched type, found in the log.
struct Found {
    id: String,
    version: Version,
}

/// The versions of every resource of a type, newest first, from the log — for
/// auditors, whose view is redacted (no PHI, so no disclosure to record).
async fn type_history(
    state: &AppState,
    caller: Result<Caller, ApiError>,
    headers: &HeaderMap,
    query: Result<axum::extract::Query<TypeHistory>, axum::extract::rejection::QueryRejection>,
    aggregate_type: &str,
    kind: &str,
) -> Result<Fhir, Fhir> {
    let caller = caller?;
    let query = query.map_err(|e| super::search::invalid_search(&e.body_text()))?.0;
    permit(&caller, kind, Interaction::Read, None)?;
    state.clinic.authorize(&caller.actor, emr_domain::access::Action::ReadAudit, emr_commands::Subject::default()).await?;
    let count = query.count.unwrap_or(50);
    if !(1..=100).contains(&count) {
        return Err(super::search::invalid_search("_count must be 1 to 100"));
    }
    let since = match &query.since {
        None => None,
        Some(text) => Some(
            DateTime::parse_from_rfc3339(text)
                .map_err(|_| super::search::invalid_search("_since is an instant such as 2026-01-01T00:00:00Z"))?
                .to_utc(),
        ),
    };
    let reader = state.clinic.log();
    let head = reader.head().await.map_err(ApiError::from)?;
    let mut before = query.cursor.unwrap_or(head + 1).min(head + 1);
    let mut found: Vec<Found> = Vec::new();
    let mut scanned = 0;
    let mut exhausted = false;
    while found.len() < count as usize && scanned < SCAN_LIMIT {
        if before <= 1 {
            exhausted = true;
            break;
        }
        let from = before.saturating_sub(SCAN_STEP).max(1);
        let events = reader.read(from, usize::try_from(before - from).unwrap_or(usize::MAX)).await.map_err(ApiError::from)?;
        let commits = commits(events.into_iter().filter(|e| e.key.aggregate_type() == aggregate_type && e.metadata.position < before));
        scanned += before - from;
        before = from;
        for commit in commits.into_iter().rev() {
            if since.is_some_and(|since| commit.version.recorded_at() < since) {
                exhausted = true;
                break;
            }
            before = commit.version.metadata.position;
            found.push(commit);
            if found.len() == count as usize {
                break;
            }
        }
        if exhausted {
            break;
        }
    }
    let base = base_url(headers);
    let mut entries = Vec::with_capacity(found.len());
    for Found { id, version } in found {
        let cutoff = Cutoff::Position(version.metadata.position);
        let resource = match (version.method(), aggregate_type) {
            ("DELETE", _) => None,
            (_, "patient") => {
                let patient_id: PatientId = path_id(&id, "id")?;
                Some(emr_fhir::patient(patient_id, state.clinic.patient_as_of(patient_id, cutoff).await?.state(), version.version, true))
            }
            _ => {
                let record_id: RecordId = path_id(&id, "id")?;
                let view = if kind == "Condition" { CONDITION_VIEW } else { encounter_view };
                let then = state.clinic.record_as_of(record_id, cutoff).await?;
                let Some(resource) = view(record_id, then.state(), version.version, true) else { continue };
                Some(resource)
            }
        };
        entries.push(entry(&base, &format!("{kind}/{id}"), resource, &version));
    }
    let mut link = format!("{base}/{kind}/_history?_count={count}");
    if let Some(since) = &query.since {
        link.push_str(&format!("&_since={}", url::form_urlencoded::byte_serialize(since.as_bytes()).collect::<String>()));
    }
    let self_url = match query.cursor {
        Some(cursor) => format!("{link}&_cursor={cursor}"),
        None => link.clone(),
    };
    let mut bundle = emr_fhir::history(&self_url, entries);
    if !exhausted
        && before > 1
        && let Some(links) = bundle["link"].as_array_mut()
    {
        links.push(serde_json::json!({"relation": "next", "url": format!("{link}&_cursor={before}")}));
    }
    Ok(Fhir::ok(bundle))
}

/// `GET /fhir/r4/Patient/_history`: every patient's versions (auditors, redacted).
pub(super) async fn patients(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    query: Result<axum::extract::Query<TypeHistory>, axum::extract::rejection::QueryRejection>,
) -> Result<Fhir, Fhir> {
    type_history(&state, caller, &headers, query, "patient", "Patient").await
}

/// `GET /fhir/r4/Encounter/_history`: every record's versions as visits (auditors, redacted).
pub(super) async fn encounters(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    query: Result<axum::extract::Query<TypeHistory>, axum::extract::rejection::QueryRejection>,
) -> Result<Fhir, Fhir> {
    type_history(&state, caller, &headers, query, "medical_record", "Encounter").await
}

/// `GET /fhir/r4/Condition/_history`: every record's versions as diagnoses (auditors, redacted).
pub(super) async fn conditions(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    query: Result<axum::extract::Query<TypeHistory>, axum::extract::rejection::QueryRejection>,
) -> Result<Fhir, Fhir> {
    type_history(&state, caller, &headers, query, "medical_record", "Condition").await
}
