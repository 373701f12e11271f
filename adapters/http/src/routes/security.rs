//! Security events for security officers (administrators and auditors): the
//! triage queue, one event with its evidence replayed from the log (PHI sealed),
//! the triage steps, and users by risk.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use emr_commands::{Receipt, Subject};
use emr_domain::access::Action;
use emr_domain::detection::{DetectionSettings, RiskScore};
use emr_domain::ids::{SecurityEventId, UserId};
use emr_domain::security::{Evidence, Outcome, SecurityCommand};
use emr_eventstore::RecordedEvent;
use emr_projections::queries::{self, SecurityEventFilter, SecurityEventRow};
use serde::{Deserialize, Serialize};

use super::path_id;
use super::read::models;
use crate::AppState;
use crate::extract::{Body, Caller, Command};
use crate::problem::ApiError;

async fn officer(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    state.clinic.authorize(&caller.actor, Action::ReadSecurityEvents, Subject::default()).await?;
    Ok(())
}

#[utoipa::path(get, path = "/v1/security/events", tag = "security", summary = "Security events, newest first (the triage queue)", params(("status" = Option<String>, Query, description = "open, acknowledged, investigating, resolved"), ("severity" = Option<String>, Query, description = "low, medium, high, critical"), ("kind" = Option<String>, Query), ("user_id" = Option<String>, Query), ("patient_id" = Option<String>, Query), ("from" = Option<String>, Query), ("to" = Option<String>, Query), ("limit" = Option<u32>, Query), ("offset" = Option<u32>, Query)), responses((status = 200, description = "security events", body = Vec<emr_projections::queries::SecurityEventRow>), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// Security events matching the filter.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    filter: Result<Query<SecurityEventFilter>, QueryRejection>,
) -> Result<Json<Vec<SecurityEventRow>>, ApiError> {
    let Query(filter) = filter?;
    officer(&state, &caller).await?;
    Ok(Json(queries::security_events(&models(&state)?.db, &filter).await?))
}

/// A security event with the log events it rests on.
#[derive(Serialize)]
pub(crate) struct SecurityEventView {
    #[serde(flatten)]
    event: SecurityEventRow,
    /// The evidence, replayed from the log (PHI sealed).
    evidence_events: Vec<RecordedEvent>,
}

#[utoipa::path(get, path = "/v1/security/events/{security_event_id}", tag = "security", summary = "One security event with its evidence replayed from the log", params(("security_event_id" = String, Path, description = "security event id (UUID)")), responses((status = 200, description = "the event and its evidence events, PHI sealed"), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// One security event; its evidence is read back from the log, so the
/// investigator sees the facts themselves, not a copy.
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SecurityEventView>, ApiError> {
    let id: SecurityEventId = path_id(&id, "security event id")?;
    officer(&state, &caller).await?;
    let models = models(&state)?;
    let event = queries::security_event(&models.db, &id.to_string()).await?.ok_or(ApiError::NotFound("security event".into()))?;
    let evidence: Vec<Evidence> = serde_json::from_str(&event.evidence).unwrap_or_default();
    let mut evidence_events = Vec::with_capacity(evidence.len());
    for item in evidence {
        let commit = state.clinic.log().read(item.position, 1).await?;
        evidence_events.extend(commit.into_iter().filter(|recorded| recorded.metadata.event_id == item.event_id));
    }
    Ok(Json(SecurityEventView { event, evidence_events }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Assignment {
    /// The investigator.
    assignee: UserId,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Resolution {
    /// `true_positive` or `false_positive`.
    outcome: Outcome,
}

async fn triage(state: AppState, id: &str, command: SecurityCommand, context: Command) -> Result<Json<Receipt>, ApiError> {
    let id: SecurityEventId = path_id(id, "security event id")?;
    Ok(Json(state.clinic.triage(id, command, &context.0).await?))
}

#[utoipa::path(post, path = "/v1/security/events/{security_event_id}/acknowledgement", tag = "security", summary = "Acknowledge a security event", params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("security_event_id" = String, Path, description = "security event id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// An officer has seen the event.
pub(crate) async fn acknowledge(
    State(state): State<AppState>,
    Path(id): Path<String>,
    context: Command,
) -> Result<Json<Receipt>, ApiError> {
    let by = context.0.actor.user_id;
    triage(state, &id, SecurityCommand::Acknowledge { by }, context).await
}

#[utoipa::path(post, path = "/v1/security/events/{security_event_id}/assignment", tag = "security", summary = "Assign an investigator", request_body = Assignment, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("security_event_id" = String, Path, description = "security event id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// An investigator takes the event.
pub(crate) async fn assign(
    State(state): State<AppState>,
    Path(id): Path<String>,
    context: Command,
    Body(body): Body<Assignment>,
) -> Result<Json<Receipt>, ApiError> {
    let by = context.0.actor.user_id;
    triage(state, &id, SecurityCommand::Assign { by, to: body.assignee }, context).await
}

#[utoipa::path(post, path = "/v1/security/events/{security_event_id}/resolution", tag = "security", summary = "Resolve with an outcome (feeds the measured precision)", request_body = Resolution, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("security_event_id" = String, Path, description = "security event id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// The investigation ends: a true or a false positive.
pub(crate) async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    context: Command,
    Body(body): Body<Resolution>,
) -> Result<Json<Receipt>, ApiError> {
    let by = context.0.actor.user_id;
    triage(state, &id, SecurityCommand::Resolve { by, outcome: body.outcome }, context).await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RiskQuery {
    /// How many users (1–1000, default 50).
    limit: Option<u32>,
}

/// A user's risk.
#[derive(Serialize)]
pub(crate) struct Risk {
    user_id: String,
    /// The score when last raised.
    score: f64,
    as_of: DateTime<Utc>,
    /// The score decayed to now (with the default half-life).
    current: f64,
    detections: u64,
}

#[utoipa::path(get, path = "/v1/security/risk", tag = "security", summary = "Users by risk score, decayed to now", params(RiskQuery), responses((status = 200, description = "users by current risk, highest first"), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// Users by their current risk score.
pub(crate) async fn risk(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<RiskQuery>, QueryRejection>,
) -> Result<Json<Vec<Risk>>, ApiError> {
    let Query(query) = query?;
    officer(&state, &caller).await?;
    let models = models(&state)?;
    let settings = DetectionSettings::default().risk;
    let now = Utc::now();
    let mut scores: Vec<Risk> = queries::risk_scores(&models.db, query.limit.unwrap_or(50))
        .await?
        .into_iter()
        .map(|row| Risk {
            current: RiskScore { value: row.score, as_of: row.as_of }.at(now, &settings),
            user_id: row.user_id,
            score: row.score,
            as_of: row.as_of,
            detections: row.detections,
        })
        .collect();
    scores.sort_by(|a, b| b.current.total_cmp(&a.current));
    Ok(Json(scores))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Period {
    /// Raised at or after (RFC 3339); default: 90 days before `to`.
    from: Option<DateTime<Utc>>,
    /// Raised before; default: now.
    to: Option<DateTime<Utc>>,
}

/// One kind's triage outcomes and the precision they give.
#[derive(Serialize)]
pub(crate) struct KindOutcomes {
    #[serde(flatten)]
    counts: queries::OutcomeCount,
    /// True positives / resolved (none until something is resolved).
    precision: Option<f64>,
}

#[utoipa::path(get, path = "/v1/security/outcomes", tag = "security", summary = "Precision per kind from officers' resolutions", params(Period), responses((status = 200, description = "per kind: raised, true and false positives, precision"), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// The precision each rule has in production, as officers resolved its events.
pub(crate) async fn outcomes(
    State(state): State<AppState>,
    caller: Caller,
    period: Result<Query<Period>, QueryRejection>,
) -> Result<Json<Vec<KindOutcomes>>, ApiError> {
    let Query(period) = period?;
    officer(&state, &caller).await?;
    let to = period.to.unwrap_or_else(Utc::now);
    let from = period.from.unwrap_or(to - chrono::Duration::days(90));
    let counts = queries::outcomes(&models(&state)?.db, from, to).await?;
    Ok(Json(
        counts
            .into_iter()
            .map(|counts| {
                let resolved = counts.true_positives + counts.false_positives;
                let precision = (resolved > 0).then(|| counts.true_positives as f64 / resolved as f64);
                KindOutcomes { counts, precision }
            })
            .collect(),
    ))
}
