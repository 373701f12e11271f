//! Login (password, then TOTP), enrolment, refresh and logout; account administration.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use emr_auth::{Challenge, Enrolment, Registration, TokenPair};
use emr_domain::account::{AccountCommand, AccountStatus, PractitionerProfile, Username};
use emr_domain::actor::Role;
use emr_domain::ids::{PatientId, UserId};
use emr_domain::values::ShortText;
use serde::{Deserialize, Serialize};

use super::path_id;
use crate::AppState;
use crate::extract::{Body, Caller, ClientAddress, Command, IdempotencyKey, OptionalBody};
use crate::problem::ApiError;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LoginRequest)]
pub(crate) struct Login {
    username: Username,
    password: String,
}

#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", summary = "Password step: answers an MFA challenge", request_body = Login, responses((status = 200, body = emr_auth::Challenge), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn login(
    State(state): State<AppState>,
    client: ClientAddress,
    Body(body): Body<Login>,
) -> Result<Json<Challenge>, ApiError> {
    state.identity.rate_limit(&client.key(), state.login_attempts_per_minute).await?;
    Ok(Json(state.identity.login(&body.username, body.password, client.0).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MfaToken {
    mfa_token: String,
}

#[utoipa::path(post, path = "/v1/auth/mfa/enrolment", tag = "auth", summary = "Start TOTP enrolment (otpauth URI)", request_body = MfaToken, responses((status = 200, body = emr_auth::Enrolment), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn enrol(State(state): State<AppState>, Body(body): Body<MfaToken>) -> Result<Json<Enrolment>, ApiError> {
    Ok(Json(state.identity.enrol(&body.mfa_token).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = MfaCode)]
pub(crate) struct Code {
    mfa_token: String,
    code: String,
}

#[utoipa::path(post, path = "/v1/auth/mfa/verification", tag = "auth", summary = "TOTP step: answers access and refresh tokens", request_body = Code, responses((status = 200, body = emr_auth::TokenPair), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn verify(
    State(state): State<AppState>,
    client: ClientAddress,
    Body(body): Body<Code>,
) -> Result<Json<TokenPair>, ApiError> {
    state.identity.rate_limit(&client.key(), state.login_attempts_per_minute).await?;
    Ok(Json(state.identity.verify(&body.mfa_token, &body.code, client.0).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RefreshRequest)]
pub(crate) struct Refresh {
    refresh_token: String,
}

#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", summary = "Trade a one-use refresh token for a new pair", request_body = Refresh, responses((status = 200, body = emr_auth::TokenPair), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Body(body): Body<Refresh>,
) -> Result<Json<TokenPair>, ApiError> {
    Ok(Json(state.identity.refresh(&body.refresh_token, client).await?))
}

#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", summary = "Revoke the session", responses((status = 204, description = "session revoked"), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn logout(State(state): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    state.identity.logout(&caller.claims).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAccount {
    username: Username,
    password: String,
    role: Role,
    profile: Option<PractitionerProfile>,
    /// For a patient account: the registered patient it logs in as.
    patient_id: Option<PatientId>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Created {
    user_id: UserId,
}

#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", summary = "Open an account (administrators)", request_body = NewAccount, params(crate::extract::IdempotencyKeyHeader), responses((status = 201, body = Created), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// An administrator opens an account.
pub(crate) async fn register(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(command_id): IdempotencyKey,
    Body(body): Body<NewAccount>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let registration = Registration { username: body.username, password: body.password, role: body.role, profile: body.profile };
    let linked = body.patient_id.map(|patient| UserId::from(patient.as_uuid()));
    let user_id = state.identity.register(Some(&caller.actor), registration, linked, command_id).await?;
    Ok((StatusCode::CREATED, Json(Created { user_id })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SelfRegistration {
    username: Username,
    password: String,
}

#[utoipa::path(post, path = "/v1/accounts/self-registration", tag = "accounts", summary = "A patient opens their own account", request_body = SelfRegistration, params(crate::extract::IdempotencyKeyHeader), responses((status = 201, body = Created), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")))]
/// A patient opens their own account; its id is the patient id clinical staff
/// register them under.
pub(crate) async fn register_self(
    State(state): State<AppState>,
    client: ClientAddress,
    IdempotencyKey(command_id): IdempotencyKey,
    Body(body): Body<SelfRegistration>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    state.identity.rate_limit(&client.key(), state.login_attempts_per_minute).await?;
    let registration = Registration { username: body.username, password: body.password, role: Role::Patient, profile: None };
    let user_id = state.identity.register(None, registration, None, command_id).await?;
    Ok((StatusCode::CREATED, Json(Created { user_id })))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AccountView {
    user_id: UserId,
    username: Option<Username>,
    role: Option<Role>,
    status: AccountStatus,
    profile: Option<PractitionerProfile>,
    mfa_enabled: bool,
    /// End of a lockout after failed passwords.
    locked_until: Option<chrono::DateTime<chrono::Utc>>,
    /// The security event whose response suspended the account, until an
    /// administrator unlocks it with a reason.
    suspended_by: Option<emr_domain::ids::SecurityEventId>,
    /// The account's version: send it as `If-Match` (`"3"`) to act on this version only.
    sequence: u64,
}

#[utoipa::path(get, path = "/v1/accounts/{user_id}", tag = "accounts", summary = "An account (administrator or holder)", params(("user_id" = String, Path, description = "account id (UUID)")), responses((status = 200, body = AccountView), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// An account, for an administrator or its holder.
pub(crate) async fn show(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<AccountView>, ApiError> {
    let user_id: UserId = path_id(&id, "user id")?;
    if caller.actor.user_id != user_id && caller.actor.role != Role::Admin {
        return Err(emr_domain::access::Denied::RoleNotPermitted {
            role: caller.actor.role,
            action: emr_domain::access::Action::ManageAccounts,
        }
        .into());
    }
    let (account, sequence) = state.identity.versioned_account(user_id).await?;
    if account.status() == AccountStatus::Absent {
        return Err(ApiError::NotFound("account".into()));
    }
    Ok(Json(AccountView {
        user_id,
        username: account.username().cloned(),
        role: account.role(),
        status: account.status(),
        profile: account.profile().cloned(),
        mfa_enabled: matches!(account.mfa(), emr_domain::account::MfaState::Enabled(_)),
        locked_until: account.locked_at(chrono::Utc::now()).filter(|_| account.suspended_by().is_none()),
        suspended_by: account.suspended_by(),
        sequence,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Unlock {
    /// Why the lock is lifted (required after a security event's suspension).
    reason: Option<ShortText>,
}

#[utoipa::path(post, path = "/v1/accounts/{user_id}/unlock", tag = "accounts", summary = "Lift a lockout or a suspension (a suspension needs a reason)", params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("user_id" = String, Path, description = "account id (UUID)")), request_body(content = Unlock, description = "optional; `reason` is required to lift a suspension"), responses((status = 204, description = "unlocked"), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn unlock(
    State(state): State<AppState>,
    Command(context): Command,
    Path(id): Path<String>,
    OptionalBody(body): OptionalBody<Unlock>,
) -> Result<StatusCode, ApiError> {
    let user_id: UserId = path_id(&id, "user id")?;
    let reason = body.and_then(|body| body.reason);
    state.identity.administer(&context, user_id, AccountCommand::Unlock { by: context.actor.user_id, reason }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/accounts/{user_id}/deactivation", tag = "accounts", summary = "Close an account", params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("user_id" = String, Path, description = "account id (UUID)")), responses((status = 204, description = "closed"), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn deactivate(
    State(state): State<AppState>,
    Command(context): Command,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user_id: UserId = path_id(&id, "user id")?;
    state.identity.administer(&context, user_id, AccountCommand::Deactivate { by: context.actor.user_id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleChange {
    /// The new role: physician, nurse, admin, auditor or researcher.
    role: Role,
    /// Required when the account becomes a physician or nurse and has no profile.
    profile: Option<PractitionerProfile>,
    /// Why (kept in the account's history).
    reason: ShortText,
}

#[utoipa::path(post, path = "/v1/accounts/{user_id}/role", tag = "accounts", summary = "Move a staff account to another staff role (its sessions end)", params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("user_id" = String, Path, description = "account id (UUID)")), request_body = RoleChange, responses((status = 204, description = "changed (or already so)"), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn change_role(
    State(state): State<AppState>,
    Command(context): Command,
    Path(id): Path<String>,
    Body(body): Body<RoleChange>,
) -> Result<StatusCode, ApiError> {
    let user_id: UserId = path_id(&id, "user id")?;
    state.identity.change_role(&context, user_id, body.role, body.profile, body.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MfaReset {
    /// Why (the identity check made, a ticket number; kept in the account's history).
    reason: ShortText,
}

#[utoipa::path(post, path = "/v1/accounts/{user_id}/mfa-reset", tag = "accounts", summary = "Clear an account's TOTP enrolment, for a lost device (its sessions end; its next sign-in enrols anew)", params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("user_id" = String, Path, description = "account id (UUID)")), request_body = MfaReset, responses((status = 204, description = "reset (or nothing was enrolled)"), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn reset_mfa(
    State(state): State<AppState>,
    Command(context): Command,
    Path(id): Path<String>,
    Body(body): Body<MfaReset>,
) -> Result<StatusCode, ApiError> {
    let user_id: UserId = path_id(&id, "user id")?;
    state.identity.reset_mfa(&context, user_id, body.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", summary = "Accounts by username, filtered by role, status or the start of the username (administrators)", params(emr_projections::queries::AccountFilter), responses((status = 200, description = "accounts", body = Vec<emr_projections::queries::AccountRow>), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// The account directory read model: who may sign in, in which role, with MFA or not, locked or not.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    filter: Result<axum::extract::Query<emr_projections::queries::AccountFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<emr_projections::queries::AccountRow>>, ApiError> {
    let axum::extract::Query(filter) = filter?;
    emr_auth::Identity::may_administer(&caller.actor)?;
    let models = super::read::models(&state)?;
    Ok(Json(emr_projections::queries::accounts(&models.db, &filter).await?))
}
