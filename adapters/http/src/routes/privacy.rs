//! The privacy officer's HIPAA reports, and the practitioner's post-hoc
//! justification of a break-glass read.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Duration, Utc};
use emr_commands::{Receipt, Subject};
use emr_domain::access::{Action, minimum_necessary};
use emr_domain::actor::Role;
use emr_domain::ids::DisclosureId;
use emr_domain::values::ShortText;
use emr_projections::Projection;
use emr_projections::queries::{self, AccessLogEntry, BasisCount, DenialRow, RoleResourceCount};
use serde::{Deserialize, Serialize};

use super::read::caught_up;
use super::{from_snake, path_id};
use crate::AppState;
use crate::extract::{Body, Caller, Command};
use crate::problem::ApiError;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Justification {
    /// Why the glass was broken (PHI: sealed with the patient's key).
    justification: ShortText,
}

#[utoipa::path(post, path = "/v1/break-glass/{disclosure_id}/justification", tag = "patients", summary = "Justify a break-glass read after the fact (its reader only)", request_body = Justification, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("disclosure_id" = String, Path, description = "the break-glass disclosure id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// The practitioner who broke the glass explains why.
pub(crate) async fn justify(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Command(context): Command,
    Body(body): Body<Justification>,
) -> Result<Json<Receipt>, ApiError> {
    let disclosure_id: DisclosureId = path_id(&id, "disclosure id")?;
    Ok(Json(state.clinic.justify_break_glass(disclosure_id, body.justification, &context).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Period {
    /// Start (inclusive, RFC 3339); default: 30 days before `to`.
    from: Option<DateTime<Utc>>,
    /// End (exclusive); default: now.
    to: Option<DateTime<Utc>>,
    /// Hours a break-glass read may stay unjustified before it is a violation (default 24).
    grace_hours: Option<u32>,
}

/// A role reading a kind of resource it does not need.
#[derive(Serialize)]
pub(crate) struct MinimumNecessaryFinding {
    #[serde(flatten)]
    reads: RoleResourceCount,
    rule: &'static str,
}

/// The privacy officer's report for a period.
#[derive(Serialize)]
pub(crate) struct PrivacyReport {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// The read models are complete up to this log position.
    log_position: u64,
    /// Disclosures per basis (the audit log; `/v1/read/access-log` lists them by user, patient and time).
    disclosures: Vec<BasisCount>,
    /// Violations: break-glass reads left unjustified past the grace period.
    unjustified_break_glass: Vec<AccessLogEntry>,
    /// Violations attempted: accesses refused for want of a valid basis.
    refused_accesses: Vec<DenialRow>,
    /// Reads of resources the reader's role does not need.
    minimum_necessary: Vec<MinimumNecessaryFinding>,
}

#[utoipa::path(get, path = "/v1/privacy/report", tag = "security", summary = "HIPAA report for a period: disclosures by basis, violations, minimum-necessary findings", params(Period), responses((status = 200, description = "the report, complete up to `log_position`"), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// The report for the privacy officer (administrators and auditors).
pub(crate) async fn report(
    State(state): State<AppState>,
    caller: Caller,
    period: Result<Query<Period>, QueryRejection>,
) -> Result<Json<PrivacyReport>, ApiError> {
    let Query(period) = period?;
    state.clinic.authorize(&caller.actor, Action::ReadSecurityEvents, Subject::default()).await?;
    let to = period.to.unwrap_or_else(Utc::now);
    let from = period.from.unwrap_or(to - Duration::days(30));
    let (models, log_position) = caught_up(&state, &[emr_projections::AccessLogProjection.tables()[0]]).await?;
    let db = &models.db;
    // A read still inside its grace period is not (yet) a violation.
    let grace_end = (Utc::now() - Duration::hours(i64::from(period.grace_hours.unwrap_or(24)))).min(to);
    let minimum_necessary = queries::reads_by_role_and_resource(db, from, to)
        .await?
        .into_iter()
        .filter(|row| {
            let role: Option<Role> = from_snake(&row.accessor_role);
            role.is_some_and(|role| !minimum_necessary(role, &row.resource))
        })
        .map(|reads| MinimumNecessaryFinding { reads, rule: "45 CFR 164.502(b): the role does not need this kind of resource" })
        .collect();
    Ok(Json(PrivacyReport {
        from,
        to,
        log_position,
        disclosures: queries::disclosures_by_basis(db, from, to).await?,
        unjustified_break_glass: queries::unjustified_break_glass(db, from, grace_end.max(from), 500).await?,
        refused_accesses: queries::denials(db, from, to, 500).await?,
        minimum_necessary,
    }))
}
