//! Who may see a patient's data and who did: `Consent` (access grants and
//! requests), `AuditEvent` (the access log) and `Provenance` (each version's author
//! and the ledger receipt that proves it).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use emr_commands::Subject;
use emr_domain::access::Action;
use emr_domain::ids::GrantId;
use emr_fhir::scopes::Interaction;
use emr_projections::queries::AccessLogFilter;
use serde::Deserialize;

use super::history::versions;
use super::search::{ByPatientQuery, invalid_search, page};
use super::{Fhir, base_url, not_found, permit};
use crate::AppState;
use crate::extract::Caller;
use crate::problem::ApiError;
use crate::routes::path_id;

/// `GET /fhir/r4/Consent/{id}`: an access grant or request, for the patient, the
/// grantee or an auditor.
pub(super) async fn consent(State(state): State<AppState>, caller: Result<Caller, ApiError>, Path(id): Path<String>) -> Result<Fhir, Fhir> {
    let caller = caller?;
    let grant_id: GrantId = path_id(&id, "Consent id")?;
    let loaded = state.clinic.read_grant(&caller.actor, grant_id).await?;
    permit(&caller, "Consent", Interaction::Read, loaded.state().patient_id())?;
    let resource =
        emr_fhir::consent(grant_id, loaded.state(), loaded.sequence(), chrono::Utc::now()).ok_or_else(|| not_found("Consent"))?;
    Ok(Fhir::ok(resource).at_version(loaded.sequence()))
}

/// A search on a patient's `kind` resources that `action` governs: the page,
/// once the app's scopes and the patient-wide rule admit the caller (a refusal
/// is recorded), and the read models to answer it from.
async fn patient_wide<'a>(
    state: &'a AppState,
    caller: &Caller,
    search: Result<Query<ByPatientQuery>, QueryRejection>,
    kind: &str,
    action: Action,
) -> Result<(super::search::Page, &'a crate::ReadModelState), Fhir> {
    let page = page(search)?;
    permit(caller, kind, Interaction::Search, Some(page.patient_id))?;
    state.clinic.authorize(&caller.actor, action, Subject::patient(page.patient_id)).await?;
    Ok((page, crate::routes::read::models(state)?))
}

/// `GET /fhir/r4/Consent?patient=…`: a patient's grants and open requests, newest
/// first, for the patient (or their delegate) and auditors.
pub(super) async fn consents(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    search: Result<Query<ByPatientQuery>, QueryRejection>,
) -> Result<Fhir, Fhir> {
    let caller = caller?;
    let (page, models) = patient_wide(&state, &caller, search, "Consent", Action::ReadGrant).await?;
    let ids = emr_projections::queries::grant_ids_of_patient(&models.db, page.patient_id.as_uuid(), page.count, page.offset)
        .await
        .map_err(ApiError::from)?;
    let base = base_url(&headers);
    let now = chrono::Utc::now();
    let mut entries = Vec::new();
    for id in &ids {
        let grant_id: GrantId = path_id(id, "grant id")?;
        let loaded = state.clinic.load_grant(grant_id).await?;
        if let Some(resource) = emr_fhir::consent(grant_id, loaded.state(), loaded.sequence(), now) {
            entries.push((format!("{base}/Consent/{grant_id}"), resource));
        }
    }
    let next = page.next(&base, "Consent", ids.len());
    Ok(Fhir::ok(emr_fhir::searchset(&page.url(&base, "Consent", page.offset), next.as_deref(), entries)))
}

/// `GET /fhir/r4/AuditEvent?patient=…`: the patient's access log (break-glass
/// reads included), most recent first, for the patient and auditors.
pub(super) async fn audit_events(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    search: Result<Query<ByPatientQuery>, QueryRejection>,
) -> Result<Fhir, Fhir> {
    let caller = caller?;
    let (page, models) = patient_wide(&state, &caller, search, "AuditEvent", Action::ReadAccessLog).await?;
    let filter = AccessLogFilter {
        patient_id: Some(page.patient_id.as_uuid()),
        limit: Some(page.count),
        offset: Some(page.offset),
        ..AccessLogFilter::default()
    };
    let rows = emr_projections::queries::access_log(&models.db, &filter).await.map_err(ApiError::from)?;
    let base = base_url(&headers);
    let entries = rows
        .iter()
        .map(|row| {
            let disclosure = emr_fhir::Disclosure {
                id: &row.disclosure_id,
                patient_id: &row.patient_id,
                accessor_id: &row.accessor_id,
                accessor_role: &row.accessor_role,
                resource: &row.resource,
                record_id: row.record_id.as_deref(),
                basis: &row.basis,
                grant_id: row.grant_id.as_deref(),
                accessed_at: row.accessed_at,
            };
            (format!("{base}/AuditEvent/{}", row.disclosure_id), emr_fhir::audit_event(&disclosure))
        })
        .collect();
    let next = page.next(&base, "AuditEvent", rows.len());
    Ok(Fhir::ok(emr_fhir::searchset(&page.url(&base, "AuditEvent", page.offset), next.as_deref(), entries)))
}

/// `Provenance?target=…`.
#[derive(Deserialize)]
pub(super) struct ProvenanceSearch {
    /// `Patient/<id>`, `Encounter/<id>` or `Condition/<id>`.
    target: Option<String>,
}

/// `GET /fhir/r4/Provenance?target=Encounter/<id>`: who made each version of a
/// resource, when, and the URL of the anchoring receipt that proves the version's
/// event is in the ledger — for auditors (no PHI: authors, times and log positions).
pub(super) async fn provenances(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    search: Result<Query<ProvenanceSearch>, QueryRejection>,
) -> Result<Fhir, Fhir> {
    let caller = caller?;
    permit(&caller, "Provenance", Interaction::Search, None)?;
    let Query(search) = search.map_err(|e| invalid_search(&e.body_text()))?;
    let target = search.target.ok_or_else(|| invalid_search("search by target: ?target=Encounter/<id>"))?;
    let (kind, id) = target.split_once('/').ok_or_else(|| invalid_search("target is <type>/<id>"))?;
    let aggregate_type = match kind {
        "Patient" => "patient",
        "Encounter" | "Condition" => "medical_record",
        _ => return Err(invalid_search("target is a Patient, an Encounter or a Condition")),
    };
    let _: uuid::Uuid = path_id(id, "target id")?;
    crate::routes::log::audit(&state, &caller).await?;
    let base = base_url(&headers);
    let entries = versions(&state, aggregate_type, id)
        .await?
        .into_iter()
        .rev()
        .map(|version| {
            let metadata = &version.metadata;
            let role = metadata.context.actor.role.name().to_owned();
            let origin = emr_fhir::Origin {
                target: format!("{kind}/{id}/_history/{}", version.version),
                author: (metadata.context.actor.user_id.to_string(), role),
                recorded: metadata.recorded_at,
                activity: match version.method() {
                    "POST" => "create",
                    "DELETE" => "delete",
                    _ => "update",
                },
                event_id: metadata.event_id.to_string(),
                position: metadata.position,
                receipt_url: format!("/v1/audit/{aggregate_type}/{id}/events/{}/receipt", version.version),
            };
            let provenance_id = format!("{id}.{}", version.version);
            (format!("{base}/Provenance/{provenance_id}"), emr_fhir::provenance(&provenance_id, &origin))
        })
        .collect();
    Ok(Fhir::ok(emr_fhir::searchset(&format!("{base}/Provenance?target={kind}/{id}"), None, entries)))
}
