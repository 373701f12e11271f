//! Searches, a page at a time as `searchset` Bundles: patients (`Patient?`, from
//! the search index), a patient's records (`Encounter?`, `Condition?`, with the
//! parameters `emr_fhir::search` serves) and the patient-wide searches of
//! `privacy` (`Consent?`, `AuditEvent?`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, RawQuery, State};
use axum::http::HeaderMap;
use emr_commands::Subject;
use emr_domain::access::{Action, Basis};
use emr_domain::ids::{PatientId, RecordId};
use emr_domain::lookup::LookupKey;
use emr_fhir::scopes::{Interaction, Reach};
use emr_fhir::search::{PatientSearch, RecordSearch, Sort};
use emr_projections::queries::{ExportScope, RecordFilter, RecordSort};
use serde::Deserialize;

use super::read::{CONDITION_VIEW, RecordView, encounter_view};
use super::{Fhir, base_url, invalid, permit};
use crate::AppState;
use crate::extract::Caller;
use crate::problem::ApiError;
use crate::routes::path_id;

/// The search parameters served: a patient's resources, a page at a time.
#[derive(Deserialize)]
pub(super) struct ByPatientQuery {
    /// `<patient id>` or `Patient/<patient id>`.
    patient: Option<String>,
    /// Page size, 1–500 (default 50).
    #[serde(rename = "_count")]
    count: Option<u32>,
    /// Matches to skip (the `next` link sets it).
    #[serde(rename = "_offset")]
    offset: Option<u32>,
}

/// A validated patient search.
pub(super) struct Page {
    pub(super) patient_id: PatientId,
    pub(super) count: u32,
    pub(super) offset: u32,
}

impl Page {
    /// The URL of the page at `offset` of the search on `kind`.
    pub(super) fn url(&self, base: &str, kind: &str, offset: u32) -> String {
        format!("{base}/{kind}?patient={}&_count={}&_offset={offset}", self.patient_id, self.count)
    }

    /// The link to the next page, when this one is full.
    pub(super) fn next(&self, base: &str, kind: &str, matches: usize) -> Option<String> {
        (matches == self.count as usize).then(|| self.url(base, kind, self.offset + self.count))
    }
}

pub(super) fn invalid_search(detail: &str) -> Fhir {
    invalid("invalid-search", "The search is not valid", detail)
}

/// The record an `encounter` search parameter names (`<id>` or `Encounter/<id>`); required.
pub(super) fn encounter_parameter(encounter: Option<String>) -> Result<RecordId, Fhir> {
    let encounter = encounter.ok_or_else(|| invalid_search("give encounter=<record id>"))?;
    Ok(path_id(encounter.strip_prefix("Encounter/").unwrap_or(&encounter), "encounter")?)
}

/// Checks a search by patient.
pub(super) fn page(search: Result<Query<ByPatientQuery>, QueryRejection>) -> Result<Page, Fhir> {
    let Query(search) = search.map_err(|e| invalid_search(&e.body_text()))?;
    let patient = search.patient.ok_or_else(|| invalid_search("search by patient: ?patient=<id>"))?;
    let patient_id: PatientId = path_id(patient.strip_prefix("Patient/").unwrap_or(&patient), "patient")?;
    let count = search.count.unwrap_or(50);
    if !(1..=500).contains(&count) {
        return Err(invalid_search("_count must be 1 to 500"));
    }
    Ok(Page { patient_id, count, offset: search.offset.unwrap_or(0) })
}

/// Searches a patient's records (from the record index, which follows the log;
/// the parameters `emr_fhir::search` serves) and reads each through the same rule
/// as a single read — authorized and recorded — showing it as `view` does.
async fn records(
    state: &AppState,
    caller: Result<Caller, ApiError>,
    headers: &HeaderMap,
    query: Option<String>,
    kind: &str,
    view: RecordView,
) -> Result<Fhir, Fhir> {
    let caller = caller?;
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let search = RecordSearch::parse(pairs.iter().map(|(name, value)| (name.as_str(), value.as_str())))
        .map_err(|e| invalid_search(&e.to_string()))?;
    let patient_id: PatientId = path_id(&search.patient, "patient")?;
    let record_id = search.id.as_deref().map(|id| path_id::<uuid::Uuid>(id, "_id")).transpose()?;
    if search.include.as_deref().is_some_and(|include| !include.starts_with(&format!("{kind}:"))) {
        return Err(invalid_search(&format!("_include: {kind}:subject")));
    }
    if let Some(parameter) = search.encounter_only().filter(|_| kind != "Encounter") {
        return Err(invalid_search(&format!("{parameter}: not served for {kind}")));
    }
    if search.code.is_some() && kind != "Condition" {
        return Err(invalid_search(&format!("code: not served for {kind}")));
    }
    permit(&caller, kind, Interaction::Search, Some(patient_id))?;
    let models = crate::routes::read::models(state)?;
    let filter = RecordFilter {
        patient_id: Some(patient_id.as_uuid()),
        record_id,
        record_type: search.record_type.clone(),
        status: search.status.map(str::to_owned),
        visit_from: search.visit_from,
        visit_to: search.visit_to,
        updated_from: search.updated_from,
        updated_before: search.updated_before,
        sort: Some(match search.sort {
            Sort::DateDescending => RecordSort::VisitDateDesc,
            Sort::DateAscending => RecordSort::VisitDateAsc,
            Sort::UpdatedDescending => RecordSort::UpdatedDesc,
            Sort::UpdatedAscending => RecordSort::UpdatedAsc,
        }),
        limit: Some(search.count),
        offset: Some(search.offset),
        terms: search
            .code
            .as_ref()
            .map(|codes| codes.iter().map(|code| models.search_index.term(&LookupKey::Diagnosis(code.clone()))).collect()),
    };
    let matches = emr_projections::queries::records(&models.db, &filter).await.map_err(ApiError::from)?;
    if matches.is_empty() {
        // An empty page must not tell a caller who may not read this patient's records
        // that there are none (or how many): the patient-wide rule of a read decides, and
        // a refusal is recorded. A record's author without a grant reads their own
        // records on a full page, but not an empty one.
        state.clinic.authorize(&caller.actor, Action::ReadRecord, Subject::patient(patient_id)).await?;
    }
    let base = base_url(headers);
    let mut entries = Vec::new();
    for summary in &matches {
        let record_id: RecordId = path_id(&summary.record_id, "record id")?;
        let read = state.clinic.read_record(&caller.actor, record_id, None, None).await?;
        if let Some(found) = view(record_id, read.loaded.state(), read.loaded.sequence(), read.basis == Basis::Redacted) {
            entries.push((format!("{base}/{kind}/{record_id}"), found));
        }
    }
    let included = match (&search.include, entries.is_empty()) {
        (Some(_), false) => vec![subject(state, &caller, patient_id, &base).await?],
        _ => Vec::new(),
    };
    let url = |offset: u32| format!("{base}/{kind}?{}", search.to_query(offset));
    let next = (matches.len() == search.count as usize).then(|| url(search.offset + search.count));
    Ok(Fhir::ok(emr_fhir::searchset_with(&url(search.offset), next.as_deref(), entries, included)))
}

/// The searched patient for `_include`: read through the same rule as a single
/// read (authorized, recorded). One the caller may not read — a record's author
/// without a grant — is left out, and an outcome entry says so.
async fn subject(state: &AppState, caller: &Caller, patient_id: PatientId, base: &str) -> Result<(String, serde_json::Value), Fhir> {
    let url = format!("{base}/Patient/{patient_id}");
    let outcome_url = || format!("urn:uuid:{}", uuid::Uuid::new_v4());
    if permit(caller, "Patient", Interaction::Read, Some(patient_id)).is_err() {
        let detail = "the Patient was not included: the app's scopes do not allow reading it";
        return Ok((
            outcome_url(),
            emr_fhir::operation_outcome(emr_fhir::IssueType::Forbidden, "insufficient-scope", "Not included", detail),
        ));
    }
    match state.clinic.read_patient(&caller.actor, patient_id, None).await {
        Ok(read) => {
            let version = read.loaded.sequence();
            Ok((url, emr_fhir::patient(patient_id, read.loaded.state(), version, read.basis == Basis::Redacted)))
        }
        Err(emr_commands::ClinicError::Forbidden(denied)) => {
            let detail = format!("the Patient was not included: {denied}");
            Ok((outcome_url(), emr_fhir::operation_outcome(emr_fhir::IssueType::Forbidden, "not-included", "Not included", &detail)))
        }
        Err(other) => Err(Fhir::from(other)),
    }
}

/// Whose patients `caller` may find: an app whose scopes reach only its launch
/// patient finds that one; otherwise the role decides
/// ([`crate::routes::patients::searchable_by`]).
fn searchable_patients(caller: &Caller) -> Result<ExportScope, Fhir> {
    if let Some(app) = &caller.claims.app {
        permit(caller, "Patient", Interaction::Search, app.patient)?;
        if let (Some(patient), Some(Reach::Patient)) = (app.patient, emr_fhir::scopes::reach(&app.scope, "Patient", Interaction::Search)) {
            return Ok(ExportScope::Only(patient.as_uuid()));
        }
    }
    Ok(crate::routes::patients::searchable_by(&caller.actor)?)
}

/// `GET /fhir/r4/Patient?name=…&birthdate=…`: patients found in the search index,
/// among those the caller may find ([`crate::routes::patients::find`]), in id order.
pub(super) async fn patients(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Fhir, Fhir> {
    let caller = caller?;
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let search = PatientSearch::parse(pairs.iter().map(|(name, value)| (name.as_str(), value.as_str())))
        .map_err(|e| invalid_search(&e.to_string()))?;
    let scope = searchable_patients(&caller)?;
    let (found, matches) = crate::routes::patients::find(&state, &caller.actor, scope, &search).await?;
    let base = base_url(&headers);
    let entries = found
        .iter()
        .map(|(id, read)| {
            let resource = emr_fhir::patient(*id, read.loaded.state(), read.loaded.sequence(), read.basis == Basis::Redacted);
            (format!("{base}/Patient/{id}"), resource)
        })
        .collect();
    let url = |offset: u32| format!("{base}/Patient?{}", search.to_query(offset));
    let next = (matches == search.count as usize).then(|| url(search.offset + search.count));
    Ok(Fhir::ok(emr_fhir::searchset_with(&url(search.offset), next.as_deref(), entries, Vec::new())))
}

/// `GET /fhir/r4/Encounter?patient=…`: a patient's visits, most recent first.
pub(super) async fn encounters(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Fhir, Fhir> {
    records(&state, caller, &headers, query, "Encounter", encounter_view).await
}

/// `GET /fhir/r4/Condition?patient=…`: a patient's coded diagnoses, most recent visit first.
pub(super) async fn conditions(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Fhir, Fhir> {
    records(&state, caller, &headers, query, "Condition", CONDITION_VIEW).await
}
