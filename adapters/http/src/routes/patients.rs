use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use emr_commands::{Read, Receipt};
use emr_domain::access::Basis;
use emr_domain::ids::{DisclosureId, HospitalId, PatientId};
use emr_domain::metadata::CommandContext;
use emr_domain::patient::{ErasureReason, Patient, PatientCommand, PatientStatus, RestrictionGround};
use emr_domain::phi::Phi;
use emr_domain::values::{Demographics, PatientIdentifiers, ShortText};
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

#[utoipa::path(post, path = "/v1/patients", tag = "patients", summary = "Register a patient", request_body = Register, responses((status = 201, description = "created", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
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

#[utoipa::path(put, path = "/v1/patients/{patient_id}/demographics", tag = "patients", summary = "Replace demographics", request_body = emr_domain::values::Demographics, params(("patient_id" = String, Path, description = "patient id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
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

#[utoipa::path(post, path = "/v1/patients/{patient_id}/erasure", tag = "patients", summary = "Erase a patient (GDPR Art. 17)", request_body = Erase, params(("patient_id" = String, Path, description = "patient id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
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

#[utoipa::path(post, path = "/v1/patients/{patient_id}/restriction", tag = "patients", summary = "Restrict processing (GDPR Art. 18): only the patient and break-glass read until lifted", request_body = Restrict, params(("patient_id" = String, Path, description = "patient id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn restrict(
    State(state): State<AppState>,
    Path(patient_id): Path<String>,
    Command(context): Command,
    Body(body): Body<Restrict>,
) -> Result<Json<Receipt>, ApiError> {
    on_patient(&state, &patient_id, PatientCommand::RestrictProcessing { ground: body.ground }, &context).await
}

#[utoipa::path(post, path = "/v1/patients/{patient_id}/restriction/lifting", tag = "patients", summary = "Lift the restriction of processing", params(("patient_id" = String, Path, description = "patient id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
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

#[utoipa::path(post, path = "/v1/patients/{patient_id}/legal-holds", tag = "patients", summary = "Place a legal hold: erasure is refused while it stands", request_body = LegalHold, params(("patient_id" = String, Path, description = "patient id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn place_legal_hold(
    State(state): State<AppState>,
    Path(patient_id): Path<String>,
    Command(context): Command,
    Body(body): Body<LegalHold>,
) -> Result<Json<Receipt>, ApiError> {
    on_patient(&state, &patient_id, PatientCommand::PlaceLegalHold { reference: body.reference }, &context).await
}

#[utoipa::path(post, path = "/v1/patients/{patient_id}/legal-holds/release", tag = "patients", summary = "Release a legal hold", request_body = LegalHold, params(("patient_id" = String, Path, description = "patient id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
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
