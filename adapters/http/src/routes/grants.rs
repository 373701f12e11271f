use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use emr_commands::{Receipt, Subject};
use emr_domain::access::Action;
use emr_domain::grant::{AccessGrant, GrantCommand, GrantStatus, Scope};
use emr_domain::ids::{GrantId, PatientId, UserId};
use emr_domain::values::ShortText;
use serde::{Deserialize, Serialize};

use super::path_id;
use crate::AppState;
use crate::extract::{Body, Caller, Command};
use crate::problem::ApiError;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Grant {
    grant_id: Option<GrantId>,
    patient_id: PatientId,
    grantee: UserId,
    scopes: BTreeSet<Scope>,
    expires_at: DateTime<Utc>,
    reason: ShortText,
}

#[utoipa::path(post, path = "/v1/grants", tag = "grants", summary = "A patient grants access", request_body = Grant, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader), responses((status = 201, description = "created", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn grant(
    State(state): State<AppState>,
    Command(context): Command,
    Body(body): Body<Grant>,
) -> Result<(StatusCode, Json<Receipt>), ApiError> {
    let grant_id = body.grant_id.unwrap_or_else(|| GrantId::from(context.command_id.as_uuid()));
    let command = GrantCommand::Grant {
        grant_id,
        patient_id: body.patient_id,
        grantee: body.grantee,
        scopes: body.scopes,
        expires_at: body.expires_at,
        granted_by: context.actor.user_id,
        reason: body.reason,
    };
    Ok((StatusCode::CREATED, Json(state.clinic.grant(grant_id, command, &context).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AccessRequest)]
pub(crate) struct Request {
    grant_id: Option<GrantId>,
    patient_id: PatientId,
    scopes: BTreeSet<Scope>,
    requested_until: DateTime<Utc>,
    reason: ShortText,
}

#[utoipa::path(post, path = "/v1/access-requests", tag = "grants", summary = "A practitioner asks for access", request_body = Request, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader), responses((status = 201, description = "created", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn request(
    State(state): State<AppState>,
    Command(context): Command,
    Body(body): Body<Request>,
) -> Result<(StatusCode, Json<Receipt>), ApiError> {
    let grant_id = body.grant_id.unwrap_or_else(|| GrantId::from(context.command_id.as_uuid()));
    let command = GrantCommand::Request {
        grant_id,
        patient_id: body.patient_id,
        requester: context.actor.user_id,
        scopes: body.scopes,
        requested_until: body.requested_until,
        reason: body.reason,
    };
    Ok((StatusCode::CREATED, Json(state.clinic.grant(grant_id, command, &context).await?)))
}

async fn on_grant(
    state: AppState,
    grant_id: &str,
    command: impl FnOnce(UserId) -> GrantCommand,
    context: Command,
) -> Result<Json<Receipt>, ApiError> {
    let grant_id: GrantId = path_id(grant_id, "grant id")?;
    let command = command(context.0.actor.user_id);
    Ok(Json(state.clinic.grant(grant_id, command, &context.0).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Approve {
    expires_at: DateTime<Utc>,
}

#[utoipa::path(post, path = "/v1/grants/{grant_id}/approval", tag = "grants", summary = "Approve a request", request_body = Approve, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("grant_id" = String, Path, description = "grant id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    context: Command,
    Body(body): Body<Approve>,
) -> Result<Json<Receipt>, ApiError> {
    on_grant(state, &id, |by| GrantCommand::Approve { approved_by: by, expires_at: body.expires_at }, context).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = GrantReason)]
pub(crate) struct Reason {
    reason: ShortText,
}

#[utoipa::path(post, path = "/v1/grants/{grant_id}/denial", tag = "grants", summary = "Deny a request", request_body = Reason, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("grant_id" = String, Path, description = "grant id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn deny(
    State(state): State<AppState>,
    Path(id): Path<String>,
    context: Command,
    Body(body): Body<Reason>,
) -> Result<Json<Receipt>, ApiError> {
    on_grant(state, &id, |by| GrantCommand::Deny { denied_by: by, reason: body.reason }, context).await
}

#[utoipa::path(post, path = "/v1/grants/{grant_id}/revocation", tag = "grants", summary = "Revoke a grant", request_body = Reason, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("grant_id" = String, Path, description = "grant id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    context: Command,
    Body(body): Body<Reason>,
) -> Result<Json<Receipt>, ApiError> {
    on_grant(state, &id, |by| GrantCommand::Revoke { revoked_by: by, reason: body.reason }, context).await
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct GrantView {
    grant_id: GrantId,
    patient_id: Option<PatientId>,
    grantee: Option<UserId>,
    status: GrantStatus,
    scopes: BTreeSet<Scope>,
    expires_at: Option<DateTime<Utc>>,
    active_now: bool,
}

#[utoipa::path(get, path = "/v1/grants/{grant_id}", tag = "grants", summary = "Read a grant or request", params(("grant_id" = String, Path, description = "grant id (UUID)")), responses((status = 200, body = GrantView), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn show(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<GrantView>, ApiError> {
    let grant_id: GrantId = path_id(&id, "grant id")?;
    let loaded = state.clinic.read_grant(&caller.actor, grant_id).await?;
    view(grant_id, loaded.state()).map(Json).ok_or_else(|| ApiError::NotFound("grant".into()))
}

fn view(grant_id: GrantId, grant: &AccessGrant) -> Option<GrantView> {
    if grant.status() == GrantStatus::Absent {
        return None;
    }
    let active_now = grant.status() == GrantStatus::Active && grant.expires_at().is_some_and(|expiry| Utc::now() < expiry);
    Some(GrantView {
        grant_id,
        patient_id: grant.patient_id(),
        grantee: grant.grantee(),
        status: grant.status(),
        scopes: grant.scopes().clone(),
        expires_at: grant.expires_at(),
        active_now,
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Page {
    /// Page size, 1-500 (default 50).
    limit: Option<u32>,
    /// Grants to skip.
    offset: Option<u32>,
}

#[utoipa::path(get, path = "/v1/patients/{patient_id}/grants", tag = "grants", summary = "A patient's grants and access requests, newest first", params(("patient_id" = String, Path, description = "patient id (UUID)"), Page, super::read::Consistency), responses((status = 200, body = Vec<GrantView>), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// The patient's own list (or their delegate's, or an auditor's): the ids come from
/// the `access` read model, each grant is then read from its aggregate, so a
/// revocation shows at once.
pub(crate) async fn of_patient(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    page: Result<axum::extract::Query<Page>, axum::extract::rejection::QueryRejection>,
    consistency: Result<axum::extract::Query<super::read::Consistency>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<GrantView>>, ApiError> {
    let patient_id: PatientId = path_id(&id, "patient id")?;
    let (axum::extract::Query(page), axum::extract::Query(consistency)) = (page?, consistency?);
    let models = access_model(&state, &caller, Subject::patient(patient_id), &consistency).await?;
    let ids = emr_projections::queries::grant_ids_of_patient(&models.db, patient_id.as_uuid(), page.limit(), page.offset()).await?;
    current_views(&state, ids, |grant| grant.patient_id == Some(patient_id)).await.map(Json)
}

#[utoipa::path(get, path = "/v1/accounts/{user_id}/grants", tag = "grants", summary = "A practitioner's grants and pending access requests, newest first", params(("user_id" = String, Path, description = "the practitioner's account id (UUID)"), Page, super::read::Consistency), responses((status = 200, body = Vec<GrantView>), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// Which patients' charts a practitioner may open, and what they asked for: for
/// the practitioner themself or an auditor. Ids from the `access` read model,
/// each grant read from its aggregate, so a revocation or expiry shows at once.
pub(crate) async fn of_grantee(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    page: Result<axum::extract::Query<Page>, axum::extract::rejection::QueryRejection>,
    consistency: Result<axum::extract::Query<super::read::Consistency>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<GrantView>>, ApiError> {
    let grantee: UserId = path_id(&id, "user id")?;
    let (axum::extract::Query(page), axum::extract::Query(consistency)) = (page?, consistency?);
    let models = access_model(&state, &caller, Subject { grantee: Some(grantee), ..Subject::default() }, &consistency).await?;
    let ids = emr_projections::queries::grant_ids_of_grantee(&models.db, grantee.as_uuid(), page.limit(), page.offset()).await?;
    current_views(&state, ids, |grant| grant.grantee == Some(grantee)).await.map(Json)
}

impl Page {
    fn limit(&self) -> u32 {
        self.limit.unwrap_or(50).clamp(1, 500)
    }

    fn offset(&self) -> u32 {
        self.offset.unwrap_or(0)
    }
}

/// The read models, once `caller` may read the grants about `subject` and the
/// `access` read model (which lists their ids) has reached what the caller asked.
async fn access_model<'s>(
    state: &'s AppState,
    caller: &Caller,
    subject: Subject,
    consistency: &super::read::Consistency,
) -> Result<&'s crate::ReadModelState, ApiError> {
    state.clinic.authorize(&caller.actor, Action::ReadGrant, subject).await?;
    let models = super::read::models(state)?;
    super::read::reach(models, emr_projections::Projection::tables(&emr_projections::AccessProjection)[0], consistency).await?;
    Ok(models)
}

/// The grants `ids` name as their aggregates hold them now, keeping those that
/// still `belong` to the list (a read model row may trail its aggregate).
async fn current_views(state: &AppState, ids: Vec<String>, belong: impl Fn(&GrantView) -> bool) -> Result<Vec<GrantView>, ApiError> {
    let mut views = Vec::with_capacity(ids.len());
    for id in ids {
        let grant_id: GrantId = path_id(&id, "grant id")?;
        let loaded = state.clinic.load_grant(grant_id).await?;
        views.extend(view(grant_id, loaded.state()).filter(&belong));
    }
    Ok(views)
}
