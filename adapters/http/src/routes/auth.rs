//! Login (password, then TOTP), enrolment, refresh and logout; account administration.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use emr_auth::{Challenge, Enrolment, Registration, TokenPair};
use emr_domain::account::{AccountCommand, AccountStatus, PractitionerProfile, Username};
use emr_domain::actor::Role;
use emr_domain::ids::{PatientId, UserId};
use serde::{Deserialize, Serialize};

use super::path_id;
use crate::AppState;
use crate::extract::{Body, Caller, ClientAddress, IdempotencyKey};
use crate::problem::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    username: Username,
    password: String,
}

pub(crate) async fn login(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Body(body): Body<Login>,
) -> Result<Json<Challenge>, ApiError> {
    state.identity.rate_limit(&client, state.login_attempts_per_minute).await?;
    Ok(Json(state.identity.login(&body.username, body.password).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MfaToken {
    mfa_token: String,
}

pub(crate) async fn enrol(State(state): State<AppState>, Body(body): Body<MfaToken>) -> Result<Json<Enrolment>, ApiError> {
    Ok(Json(state.identity.enrol(&body.mfa_token).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Code {
    mfa_token: String,
    code: String,
}

pub(crate) async fn verify(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Body(body): Body<Code>,
) -> Result<Json<TokenPair>, ApiError> {
    state.identity.rate_limit(&client, state.login_attempts_per_minute).await?;
    Ok(Json(state.identity.verify(&body.mfa_token, &body.code).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Refresh {
    refresh_token: String,
}

pub(crate) async fn refresh(State(state): State<AppState>, Body(body): Body<Refresh>) -> Result<Json<TokenPair>, ApiError> {
    Ok(Json(state.identity.refresh(&body.refresh_token).await?))
}

pub(crate) async fn logout(State(state): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    state.identity.logout(&caller.claims).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAccount {
    username: Username,
    password: String,
    role: Role,
    profile: Option<PractitionerProfile>,
    /// For a patient account: the registered patient it logs in as.
    patient_id: Option<PatientId>,
}

#[derive(Serialize)]
pub(crate) struct Created {
    user_id: UserId,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SelfRegistration {
    username: Username,
    password: String,
}

/// A patient opens their own account; its id is the patient id clinical staff
/// register them under.
pub(crate) async fn register_self(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    IdempotencyKey(command_id): IdempotencyKey,
    Body(body): Body<SelfRegistration>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    state.identity.rate_limit(&client, state.login_attempts_per_minute).await?;
    let registration = Registration { username: body.username, password: body.password, role: Role::Patient, profile: None };
    let user_id = state.identity.register(None, registration, None, command_id).await?;
    Ok((StatusCode::CREATED, Json(Created { user_id })))
}

#[derive(Serialize)]
pub(crate) struct AccountView {
    user_id: UserId,
    username: Option<Username>,
    role: Option<Role>,
    status: AccountStatus,
    profile: Option<PractitionerProfile>,
    mfa_enabled: bool,
    locked_until: Option<chrono::DateTime<chrono::Utc>>,
}

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
    let account = state.identity.account(user_id).await?;
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
        locked_until: account.locked_at(chrono::Utc::now()),
    }))
}

pub(crate) async fn unlock(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let user_id: UserId = path_id(&id, "user id")?;
    state.identity.administer(&caller.actor, user_id, AccountCommand::Unlock { by: caller.actor.user_id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn deactivate(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let user_id: UserId = path_id(&id, "user id")?;
    state.identity.administer(&caller.actor, user_id, AccountCommand::Deactivate { by: caller.actor.user_id }).await?;
    Ok(StatusCode::NO_CONTENT)
}
