use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use emr_commands::{Read, Receipt};
use emr_domain::access::Basis;
use emr_domain::actor::Role;
use emr_domain::ids::{DisclosureId, HospitalId, PatientId};
use emr_domain::metadata::CommandContext;
use emr_domain::patient::{ErasureReason, Patient, PatientCommand, PatientStatus, RestrictionGround};
use emr_domain::phi::Phi;
use emr_domain::values::{Demographics, PatientIdentifiers, ShortText};
use emr_fhir::search::PatientSearch;
use emr_projections::queries::{ExportScope, PatientQuery};
use serde::{Deserialize, Serialize};

use super::path_id;
use crate::AppState;
use crate::extract::{Body, Caller, Command};
use crate::problem::ApiError;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PatientRegistration)]
pub(crate) struct Register {
    patient_id: Option<PatientId>,
    hospital_id: HospitalId,
    identifiers: PatientIdentifiers,
    demographics: Demographics,
}

#[utoipa::path(post, path = "/v1/patients", tag = "patients", summary = "Register a patient", request_body = Register, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader), responses((status = 201, description = "created", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn register(
    State(state): State<AppState>,
    Command(context): Command,
    Body(body): Body<Register>,
) -> Result<(StatusCode, Json<Receipt>), ApiError> {
    let patient_id = body.patient_id.unwrap_or_else(|| PatientId::from(context.command_id.as_uuid()));
    let command = PatientCommand::Register {
        patient_id,
        hospital_id: body.hospital_id,
        identifiers: body.identifiers,
        demographics: body.demographics,
    };
    let receipt = state.clinic.patient(patient_id, command, &context).await?;
    Ok((StatusCode::CREATED, Json(receipt)))
}

#[utoipa::path(put, path = "/v1/patients/{patient_id}/demographics", tag = "patients", summary = "Replace demographics", request_body = emr_domain::values::Demographics, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("patient_id" = String, Path, description = "patient id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn update_demographics(
    State(state): State<AppState>,
    Path(patient_id): Path<String>,
    Command(context): Command,
    Body(demographics): Body<Demographics>,
) -> Result<Json<Receipt>, ApiError> {
    on_patient(&state, &patient_id, PatientCommand::UpdateDemographics { demographics }, &context).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Erasure)]
pub(crate) struct Erase {
    reason: ErasureReason,
}

#[utoipa::path(post, path = "/v1/patients/{patient_id}/erasure", tag = "patients", summary = "Erase a patient (GDPR Art. 17)", request_body = Erase, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("patient_id" = String, Path, description = "patient id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn erase(
    State(state): State<AppState>,
    Path(patient_id): Path<String>,
    Command(context): Command,
    Body(body): Body<Erase>,
) -> Result<Json<Receipt>, ApiError> {
    let patient_id: PatientId = path_id(&patient_id, "patient id")?;
    let receipt = super::retention::erase_checked(&state, patient_id, body.reason, &context).await?;
    release_blobs(&state, patient_id).await;
    Ok(Json(receipt))
}

/// A command on the patient named in the path.
async fn on_patient(
    state: &AppState,
    patient_id: &str,
    command: PatientCommand,
    context: &CommandContext,
) -> Result<Json<Receipt>, ApiError> {
    let patient_id: PatientId = path_id(patient_id, "patient id")?;
    Ok(Json(state.clinic.patient(patient_id, command, context).await?))
}

/// The key is destroyed: the erasure stands. Freeing the blobs is housekeeping,
/// repeated by a retried erasure if it fails now.
pub(crate) async fn release_blobs(state: &AppState, patient_id: PatientId) {
    if let Some(attachments) = &state.attachments {
        match attachments.release_erased(patient_id).await {
            Ok(released) => tracing::info!(%patient_id, released, "erased patient's blobs unpinned"),
            Err(error) => tracing::warn!(%patient_id, %error, "erased patient's blobs not unpinned yet"),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Restriction)]
pub(crate) struct Restrict {
    ground: RestrictionGround,
}

#[utoipa::path(post, path = "/v1/patients/{patient_id}/restriction", tag = "patients", summary = "Restrict processing (GDPR Art. 18): only the patient and break-glass read until lifted", request_body = Restrict, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("patient_id" = String, Path, description = "patient id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn restrict(
    State(state): State<AppState>,
    Path(patient_id): Path<String>,
    Command(context): Command,
    Body(body): Body<Restrict>,
) -> Result<Json<Receipt>, ApiError> {
    on_patient(&state, &patient_id, PatientCommand::RestrictProcessing { ground: body.ground }, &context).await
}

#[utoipa::path(post, path = "/v1/patients/{patient_id}/restriction/lifting", tag = "patients", summary = "Lift the restriction of processing", params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("patient_id" = String, Path, description = "patient id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn lift_restriction(
    State(state): State<AppState>,
    Path(patient_id): Path<String>,
    Command(context): Command,
) -> Result<Json<Receipt>, ApiError> {
    on_patient(&state, &patient_id, PatientCommand::LiftRestriction, &context).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LegalHold {
    /// The matter (a case or request number, not PHI).
    reference: ShortText,
}

#[utoipa::path(post, path = "/v1/patients/{patient_id}/legal-holds", tag = "patients", summary = "Place a legal hold: erasure is refused while it stands", request_body = LegalHold, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("patient_id" = String, Path, description = "patient id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn place_legal_hold(
    State(state): State<AppState>,
    Path(patient_id): Path<String>,
    Command(context): Command,
    Body(body): Body<LegalHold>,
) -> Result<Json<Receipt>, ApiError> {
    on_patient(&state, &patient_id, PatientCommand::PlaceLegalHold { reference: body.reference }, &context).await
}

#[utoipa::path(post, path = "/v1/patients/{patient_id}/legal-holds/release", tag = "patients", summary = "Release a legal hold", request_body = LegalHold, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("patient_id" = String, Path, description = "patient id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn release_legal_hold(
    State(state): State<AppState>,
    Path(patient_id): Path<String>,
    Command(context): Command,
    Body(body): Body<LegalHold>,
) -> Result<Json<Receipt>, ApiError> {
    on_patient(&state, &patient_id, PatientCommand::ReleaseLegalHold { reference: body.reference }, &context).await
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PatientView {
    patient_id: PatientId,
    hospital_id: Option<HospitalId>,
    status: PatientStatus,
    shredded: bool,
    /// PHI withheld (an auditor's view).
    redacted: bool,
    identifiers: Option<PatientIdentifiers>,
    demographics: Option<Demographics>,
    /// The disclosure that recorded this read.
    disclosure_id: Option<DisclosureId>,
    /// The ground processing is restricted on (GDPR Art. 18), if it is.
    restriction: Option<RestrictionGround>,
    /// Legal holds that stand (erasure is refused while any does).
    legal_holds: Vec<String>,
    sequence: u64,
    position: u64,
}

pub(crate) fn view(patient_id: PatientId, read: &Read<Patient>) -> PatientView {
    let patient = read.loaded.state();
    let redacted = read.basis == Basis::Redacted;
    let phi = |show: bool| show && !redacted;
    PatientView {
        patient_id,
        hospital_id: patient.hospital_id().cloned(),
        status: patient.status(),
        shredded: patient.demographics().is_some_and(Phi::is_shredded),
        redacted,
        identifiers: patient.identifiers().and_then(Phi::value).filter(|_| phi(true)).cloned(),
        demographics: patient.demographics().and_then(Phi::value).filter(|_| phi(true)).cloned(),
        disclosure_id: read.disclosure,
        restriction: patient.restriction(),
        legal_holds: patient.legal_holds().iter().map(|hold| hold.as_str().to_owned()).collect(),
        sequence: read.loaded.sequence(),
        position: read.loaded.position(),
    }
}

#[utoipa::path(get, path = "/v1/patients/{patient_id}", tag = "patients", summary = "Read a patient (recorded as a disclosure)", params(("patient_id" = String, Path, description = "patient id (UUID)")), responses((status = 200, body = PatientView), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(patient_id): Path<String>,
) -> Result<Json<PatientView>, ApiError> {
    let patient_id: PatientId = path_id(&patient_id, "patient id")?;
    let read = state.clinic.read_patient(&caller.actor, patient_id, None).await?;
    Ok(Json(view(patient_id, &read)))
}

/// Whose patients a role may find by their demographics: practitioners those who
/// granted them access, a patient themselves, a system account everyone. Other
/// roles read no patient's demographics, so they search none.
pub(crate) fn searchable_by(actor: &emr_domain::actor::Actor) -> Result<ExportScope, ApiError> {
    match actor.role {
        Role::System => Ok(ExportScope::Everyone),
        Role::Physician | Role::Nurse => Ok(ExportScope::GrantedTo(actor.user_id.as_uuid())),
        Role::Patient => Ok(ExportScope::Only(actor.user_id.as_uuid())),
        role => Err(ApiError::Problem(crate::problem::Problem::new(
            StatusCode::FORBIDDEN,
            "role-not-permitted",
            "Not allowed",
            format!("the {role:?} role reads no patient's demographics, so it cannot search patients by them"),
        ))),
    }
}

/// Patients matching `search` in the search index (keyed hashes: the index never
/// holds what it finds), among `scope`, in id order; each read through the same
/// rule as a single read — authorized and recorded. A match the read refuses (a
/// grant revoked since the read model last saw it) is left out. The index follows
/// the log: a patient registered a moment ago may not be found yet.
pub(crate) async fn find(
    state: &AppState,
    actor: &emr_domain::actor::Actor,
    scope: ExportScope,
    search: &PatientSearch,
) -> Result<(Vec<(PatientId, Read<Patient>)>, usize), ApiError> {
    let models = crate::routes::read::models(state)?;
    let groups = search.groups.iter().map(|group| group.iter().map(|key| models.search_index.term(key)).collect()).collect();
    let query = PatientQuery {
        scope,
        groups,
        ids: search.ids.clone(),
        updated_from: search.updated.from,
        updated_before: search.updated.before,
        newest_first: search.newest_first,
        limit: search.count,
        offset: search.offset,
    };
    let matches = emr_projections::queries::search_patients(&models.db, &query, chrono::Utc::now()).await?;
    let mut found = Vec::new();
    for id in &matches {
        let patient_id: PatientId = path_id(id, "patient id")?;
        match state.clinic.read_patient(actor, patient_id, None).await {
            Ok(read) => found.push((patient_id, read)),
            Err(emr_commands::ClinicError::Forbidden(_)) => {}
            Err(other) => return Err(other.into()),
        }
    }
    Ok((found, matches.len()))
}

/// A page of patients found.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PatientPage {
    /// The patients found, each read recorded.
    patients: Vec<PatientView>,
    /// The offset of the next page, when this one is full.
    next_offset: Option<u32>,
}

#[utoipa::path(get, path = "/v1/patients", tag = "patients", summary = "Find patients by name, birth date, gender or identifier (each read recorded)", params(
    ("name" = Option<String>, Query, description = "the start of the name or of a word of it, any case; comma: alternatives"),
    ("name:exact" = Option<String>, Query, description = "the whole name"),
    ("birthdate" = Option<String>, Query, description = "YYYY, YYYY-MM or YYYY-MM-DD"),
    ("gender" = Option<String>, Query, description = "male, female, other or unknown"),
    ("identifier" = Option<String>, Query, description = "system|value, or value in any system"),
    ("_id" = Option<String>, Query, description = "patient ids, comma-separated"),
    ("_lastUpdated" = Option<String>, Query, description = "when the patient last changed: an instant or a day, prefixed eq, ge, gt, le or lt; repeatable"),
    ("_sort" = Option<String>, Query, description = "_lastUpdated or -_lastUpdated (default: id order)"),
    ("_count" = Option<u32>, Query, description = "page size, 1-500 (default 50)"),
    ("_offset" = Option<u32>, Query, description = "matches to skip"),
), responses((status = 200, body = PatientPage), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// The patient search of the REST API: the parameters and rules of FHIR's
/// `Patient?` search, answered as the API's own patient views.
pub(crate) async fn search(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Json<PatientPage>, ApiError> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let search = PatientSearch::parse(pairs.iter().map(|(name, value)| (name.as_str(), value.as_str()))).map_err(|e| {
        ApiError::Problem(crate::problem::Problem::new(StatusCode::BAD_REQUEST, "invalid-search", "The search is not valid", e.to_string()))
    })?;
    let scope = searchable_by(&caller.actor)?;
    let (found, matches) = find(&state, &caller.actor, scope, &search).await?;
    let next_offset = (matches == search.count as usize).then_some(search.offset + search.count);
    Ok(Json(PatientPage { patients: found.iter().map(|(id, read)| view(*id, read)).collect(), next_offset }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Emergency {
    reason: ShortText,
}

#[utoipa::path(post, path = "/v1/patients/{patient_id}/break-glass", tag = "patients", summary = "Emergency read without a grant", request_body = Emergency, params(("patient_id" = String, Path, description = "patient id (UUID)")), responses((status = 200, body = PatientView), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// A practitioner without a grant opens the patient's demographics in an
/// emergency; recorded, raised as a security event and shown to the patient.
pub(crate) async fn break_glass(
    State(state): State<AppState>,
    caller: Caller,
    Path(patient_id): Path<String>,
    Body(body): Body<Emergency>,
) -> Result<Json<PatientView>, ApiError> {
    let patient_id: PatientId = path_id(&patient_id, "patient id")?;
    let read = state.clinic.read_patient(&caller.actor, patient_id, Some(body.reason)).await?;
    Ok(Json(view(patient_id, &read)))
}
