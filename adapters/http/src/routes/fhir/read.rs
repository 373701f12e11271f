//! Reads of the current version: `GET /fhir/r4/<type>/<id>`.

use axum::extract::{Path, State};
use emr_domain::access::Basis;
use emr_domain::ids::{PatientId, RecordId, UserId};
use emr_domain::record::MedicalRecord;
use emr_fhir::MedicationRef;
use emr_fhir::scopes::Interaction;
use serde_json::Value;

use super::{Fhir, invalid, not_found, permit, record_patient};
use crate::AppState;
use crate::extract::Caller;
use crate::problem::ApiError;
use crate::routes::path_id;

/// How a record shows as one resource type: (record id, record, version, redacted).
pub(super) type RecordView = fn(RecordId, &MedicalRecord, u64, bool) -> Option<Value>;

/// A record's visit.
pub(super) fn encounter_view(id: RecordId, record: &MedicalRecord, version: u64, redacted: bool) -> Option<Value> {
    Some(emr_fhir::encounter(id, record, version, redacted))
}

/// A record's coded diagnosis.
pub(super) const CONDITION_VIEW: RecordView = emr_fhir::condition;

/// `GET /fhir/r4/Patient/{id}`.
pub(super) async fn patient(State(state): State<AppState>, caller: Result<Caller, ApiError>, Path(id): Path<String>) -> Result<Fhir, Fhir> {
    let caller = caller?;
    let patient_id: PatientId = path_id(&id, "Patient id")?;
    permit(&caller, "Patient", Interaction::Read, Some(patient_id))?;
    let read = state.clinic.read_patient(&caller.actor, patient_id, None).await?;
    let version = read.loaded.sequence();
    Ok(Fhir::ok(emr_fhir::patient(patient_id, read.loaded.state(), version, read.basis == Basis::Redacted)).at_version(version))
}

/// `GET /fhir/r4/Practitioner/{id}`: a physician's or nurse's account — what an
/// `id_token`'s `fhirUser` names. Not PHI: any signed-in caller may read it.
pub(super) async fn practitioner(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path(id): Path<String>,
) -> Result<Fhir, Fhir> {
    let caller = caller?;
    let user_id: UserId = path_id(&id, "Practitioner id")?;
    permit(&caller, "Practitioner", Interaction::Read, None)?;
    let account = state.identity.account(user_id).await.map_err(ApiError::from)?;
    emr_fhir::practitioner(user_id, &account).map(Fhir::ok).ok_or_else(|| not_found("Practitioner"))
}

/// Reads a record — authorized and recorded — as the resource `view` makes of it.
pub(super) async fn record(state: &AppState, caller: &Caller, record_id: RecordId, view: RecordView, what: &str) -> Result<Fhir, Fhir> {
    permit(caller, what, Interaction::Read, record_patient(state, caller, record_id).await?)?;
    let read = state.clinic.read_record(&caller.actor, record_id, None, None).await?;
    let version = read.loaded.sequence();
    let resource = view(record_id, read.loaded.state(), version, read.basis == Basis::Redacted).ok_or_else(|| not_found(what))?;
    Ok(Fhir::ok(resource).at_version(version))
}

/// `GET /fhir/r4/Encounter/{id}`: a record's visit.
pub(super) async fn encounter(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path(id): Path<String>,
) -> Result<Fhir, Fhir> {
    let record_id: RecordId = path_id(&id, "Encounter id")?;
    record(&state, &caller?, record_id, encounter_view, "Encounter").await
}

/// `GET /fhir/r4/Condition/{id}`: a record's coded diagnosis.
pub(super) async fn condition(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path(id): Path<String>,
) -> Result<Fhir, Fhir> {
    let record_id: RecordId = path_id(&id, "Condition id")?;
    record(&state, &caller?, record_id, CONDITION_VIEW, "Condition").await
}

/// `GET /fhir/r4/MedicationStatement/{record id}.{n}`: one of a record's medications.
pub(super) async fn medication_statement(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path(id): Path<String>,
) -> Result<Fhir, Fhir> {
    let caller = caller?;
    let reference = MedicationRef::parse(&id)
        .ok_or_else(|| invalid("invalid-id", "The id is not valid", "a MedicationStatement id is <record id>.<n>, n from 1"))?;
    permit(&caller, "MedicationStatement", Interaction::Read, record_patient(&state, &caller, reference.record).await?)?;
    let read = state.clinic.read_record(&caller.actor, reference.record, None, None).await?;
    let version = read.loaded.sequence();
    let statement = emr_fhir::medication_statement(reference, read.loaded.state(), version, read.basis == Basis::Redacted);
    statement.map(|resource| Fhir::ok(resource).at_version(version)).ok_or_else(|| not_found("MedicationStatement"))
}

/// `GET /fhir/r4/DiagnosticReport/{suggestion id}`: an AI-assisted suggestion
/// and its review (the read model finds its record; the read is the record's).
pub(super) async fn diagnostic_report(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path(id): Path<String>,
) -> Result<Fhir, Fhir> {
    let caller = caller?;
    let suggestion_id: emr_domain::ids::SuggestionId = path_id(&id, "DiagnosticReport id")?;
    let models = crate::routes::read::models(&state)?;
    let record_id = emr_projections::queries::record_of_suggestion(&models.db, &suggestion_id.to_string())
        .await
        .map_err(ApiError::from)?
        .and_then(|id| id.parse::<RecordId>().ok())
        .ok_or_else(|| not_found("DiagnosticReport"))?;
    permit(&caller, "DiagnosticReport", Interaction::Read, record_patient(&state, &caller, record_id).await?)?;
    let read = state.clinic.read_record(&caller.actor, record_id, None, None).await?;
    let version = read.loaded.sequence();
    let record = read.loaded.state();
    let suggestion = record.suggestions().iter().find(|s| s.suggestion_id == suggestion_id).ok_or_else(|| not_found("DiagnosticReport"))?;
    let resource = emr_fhir::diagnostic_report(record_id, record, suggestion, version, read.basis == Basis::Redacted);
    Ok(Fhir::ok(resource).at_version(version))
}

/// The search `DiagnosticReport?encounter=`: one record's suggestions.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportSearch {
    /// `<record id>` or `Encounter/<record id>`.
    encounter: Option<String>,
}

/// `GET /fhir/r4/DiagnosticReport?encounter=…`: every suggestion on a record,
/// read (and recorded) as one read of the record.
pub(super) async fn diagnostic_reports(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: axum::http::HeaderMap,
    search: Result<axum::extract::Query<ReportSearch>, axum::extract::rejection::QueryRejection>,
) -> Result<Fhir, Fhir> {
    let caller = caller?;
    let search = search.map_err(|e| super::search::invalid_search(&e.body_text()))?.0;
    let record_id = super::search::encounter_parameter(search.encounter)?;
    permit(&caller, "DiagnosticReport", Interaction::Search, record_patient(&state, &caller, record_id).await?)?;
    let read = state.clinic.read_record(&caller.actor, record_id, None, None).await?;
    let (version, redacted) = (read.loaded.sequence(), read.basis == Basis::Redacted);
    let record = read.loaded.state();
    let base = super::base_url(&headers);
    let entries = record
        .suggestions()
        .iter()
        .map(|s| {
            (format!("{base}/DiagnosticReport/{}", s.suggestion_id), emr_fhir::diagnostic_report(record_id, record, s, version, redacted))
        })
        .collect();
    Ok(Fhir::ok(emr_fhir::searchset(&format!("{base}/DiagnosticReport?encounter={record_id}"), None, entries)))
}
