//! Queries on the read models, with read-your-writes: `min_position` (a command
//! receipt's `position`) makes the query wait, up to `wait_ms` (≤ 5000), until
//! the read model has folded that commit.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use emr_commands::Subject;
use emr_domain::access::Action;
use emr_domain::ids::PatientId;
use emr_projections::queries::{self, AccessLogEntry, AccessLogFilter, Dashboard, RecordFilter, RecordSummary};
use emr_projections::{Lag, Projection};
use serde::{Deserialize, Serialize};

use crate::extract::Caller;
use crate::problem::ApiError;
use crate::{AppState, ReadModelState};

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Consistency {
    min_position: Option<u64>,
    wait_ms: Option<u64>,
}

const MAX_WAIT: Duration = Duration::from_secs(5);

pub(crate) fn models(state: &AppState) -> Result<&ReadModelState, ApiError> {
    state.read_models.as_ref().ok_or(ApiError::NoReadModels)
}

/// The read models, once the named ones have folded the whole log as it stands
/// now (waiting at most [`MAX_WAIT`]), and that log position: what an export
/// that must be complete reads from.
pub(crate) async fn caught_up<'a>(state: &'a AppState, checkpoint_tables: &[&'static str]) -> Result<(&'a ReadModelState, u64), ApiError> {
    let models = models(state)?;
    let head = models.log.head().await.map_err(emr_eventstore::StoreError::from)?;
    for table in checkpoint_tables {
        emr_projections::wait_for(&models.db, table, head, MAX_WAIT).await?;
    }
    Ok((models, head))
}

/// Waits (bounded) until `checkpoint_table`'s projection has folded the position
/// the caller asks for (`min_position`): how a client reads its own write.
pub(crate) async fn reach(models: &ReadModelState, checkpoint_table: &'static str, consistency: &Consistency) -> Result<(), ApiError> {
    if let Some(position) = consistency.min_position {
        // No receipt names a position the log has not reached: waiting for one
        // could only time out.
        let head = models.log.head().await.map_err(emr_eventstore::StoreError::from)?;
        if position > head {
            return Err(ApiError::Problem(crate::Problem::new(
                axum::http::StatusCode::BAD_REQUEST,
                "position-beyond-log",
                "The position is beyond the end of the log",
                format!("min_position {position} is after the log's last position {head}"),
            )));
        }
        let wait = Duration::from_millis(consistency.wait_ms.unwrap_or(2000)).min(MAX_WAIT);
        emr_projections::wait_for(&models.db, checkpoint_table, position, wait).await?;
    }
    Ok(())
}

async fn authorize(state: &AppState, caller: &Caller, action: Action, patient: Option<uuid::Uuid>) -> Result<(), ApiError> {
    let subject = Subject { patient: patient.map(PatientId::from), ..Subject::default() };
    state.clinic.authorize(&caller.actor, action, subject).await?;
    Ok(())
}

#[utoipa::path(get, path = "/v1/read/records", tag = "read models", summary = "The record index (metadata only)", params(RecordFilter, Consistency), responses((status = 200, description = "record summaries", body = Vec<emr_projections::queries::RecordSummary>), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// The record index (metadata, no content): auditors see all of it; patients
/// and practitioners ask about one patient they may read.
pub(crate) async fn records(
    State(state): State<AppState>,
    caller: Caller,
    filter: Result<Query<RecordFilter>, QueryRejection>,
    consistency: Result<Query<Consistency>, QueryRejection>,
) -> Result<Json<Vec<RecordSummary>>, ApiError> {
    let (Query(filter), Query(consistency)) = (filter?, consistency?);
    authorize(&state, &caller, Action::ReadRecordIndex, filter.patient_id).await?;
    let models = models(&state)?;
    reach(models, emr_projections::RecordIndex.tables()[0], &consistency).await?;
    Ok(Json(queries::records(&models.db, &filter).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Days {
    days: Option<u32>,
}

#[utoipa::path(get, path = "/v1/read/dashboard", tag = "read models", summary = "Dashboard aggregates", params(Days, Consistency), responses((status = 200, description = "records per type per day, patients per hospital, active grants", body = emr_projections::queries::Dashboard), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn dashboard(
    State(state): State<AppState>,
    caller: Caller,
    days: Result<Query<Days>, QueryRejection>,
    consistency: Result<Query<Consistency>, QueryRejection>,
) -> Result<Json<Dashboard>, ApiError> {
    let (Query(days), Query(consistency)) = (days?, consistency?);
    authorize(&state, &caller, Action::ReadDashboard, None).await?;
    let models = models(&state)?;
    reach(models, emr_projections::DashboardProjection.tables()[0], &consistency).await?;
    Ok(Json(queries::dashboard(&models.db, days.days.unwrap_or(30).min(3660)).await?))
}

#[utoipa::path(get, path = "/v1/projections", tag = "read models", summary = "Read-model positions and lag", responses((status = 200, description = "lag per projection", body = Vec<emr_projections::Lag>), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn projections(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<Lag>>, ApiError> {
    authorize(&state, &caller, Action::ReadDashboard, None).await?;
    let models = models(&state)?;
    Ok(Json(emr_projections::lags(&models.db, models.log.clone()).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Limit {
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/read/anchors", tag = "read models", summary = "BlockchainTransactions: tree heads per ledger", params(Limit), responses((status = 200, description = "anchors, newest tree head first", body = Vec<emr_projections::anchors::BlockchainTransaction>), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// The BlockchainTransactions view: where each tree head was anchored, pending or confirmed.
pub(crate) async fn anchors(
    State(state): State<AppState>,
    caller: Caller,
    limit: Result<Query<Limit>, QueryRejection>,
) -> Result<Json<Vec<emr_projections::anchors::BlockchainTransaction>>, ApiError> {
    let Query(limit) = limit?;
    authorize(&state, &caller, Action::ReadDashboard, None).await?;
    let models = models(&state)?;
    Ok(Json(emr_projections::anchors::list(&models.db, limit.limit.unwrap_or(100)).await?))
}

#[utoipa::path(get, path = "/v1/read/access-log", tag = "read models", summary = "Accounting of disclosures", params(AccessLogFilter, Consistency), responses((status = 200, description = "disclosures, newest first", body = Vec<emr_projections::queries::AccessLogEntry>), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// The accounting of disclosures: a patient sees who read their records
/// (break-glass reads included); auditors see everyone's.
pub(crate) async fn access_log(
    State(state): State<AppState>,
    caller: Caller,
    filter: Result<Query<AccessLogFilter>, QueryRejection>,
    consistency: Result<Query<Consistency>, QueryRejection>,
) -> Result<Json<Vec<AccessLogEntry>>, ApiError> {
    let (Query(filter), Query(consistency)) = (filter?, consistency?);
    authorize(&state, &caller, Action::ReadAccessLog, filter.patient_id).await?;
    let models = models(&state)?;
    reach(models, emr_projections::AccessLogProjection.tables()[0], &consistency).await?;
    Ok(Json(queries::access_log(&models.db, &filter).await?))
}

/// A diagnostic model's figures, with its reviewed accuracy.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ModelFigures {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    row: queries::ModelAccuracyRow,
    /// Accepted among reviewed suggestions; null before any review.
    reviewed_accuracy: Option<f64>,
    /// Reviewed accuracy below the validated figure.
    below_validated: bool,
}

#[utoipa::path(get, path = "/v1/read/diagnosis/models", tag = "read models",
    summary = "Diagnostic models: validated accuracy and accuracy in practice (accepted among physician-reviewed suggestions)",
    params(Consistency),
    responses((status = 200, body = Vec<ModelFigures>), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn diagnosis_models(
    State(state): State<AppState>,
    caller: Caller,
    consistency: Result<Query<Consistency>, QueryRejection>,
) -> Result<Json<Vec<ModelFigures>>, ApiError> {
    let Query(consistency) = consistency?;
    authorize(&state, &caller, Action::ReadDashboard, None).await?;
    let models = models(&state)?;
    reach(models, emr_projections::DiagnosisProjection.tables()[0], &consistency).await?;
    let rows = queries::model_accuracy(&models.db).await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| {
                let reviewed_accuracy = row.reviewed_accuracy();
                let below_validated = matches!((reviewed_accuracy, row.validated_accuracy), (Some(r), Some(v)) if r < v);
                ModelFigures { row, reviewed_accuracy, below_validated }
            })
            .collect(),
    ))
}

/// Which suggestions to list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SuggestionFilter {
    /// Only this record's.
    record_id: Option<uuid::Uuid>,
    /// Only those awaiting a physician's review.
    #[serde(default)]
    pending: bool,
    /// At most this many (1–500, default 50).
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/read/diagnosis/suggestions", tag = "read models",
    summary = "AI-assisted suggestions, newest first (model, attachment, review outcome; the finding is PHI and not here)",
    params(SuggestionFilter, Consistency),
    responses((status = 200, description = "suggestions"), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn diagnosis_suggestions(
    State(state): State<AppState>,
    caller: Caller,
    filter: Result<Query<SuggestionFilter>, QueryRejection>,
    consistency: Result<Query<Consistency>, QueryRejection>,
) -> Result<Json<Vec<queries::SuggestionRow>>, ApiError> {
    let (Query(filter), Query(consistency)) = (filter?, consistency?);
    authorize(&state, &caller, Action::ReadDashboard, None).await?;
    let models = models(&state)?;
    reach(models, emr_projections::DiagnosisProjection.tables()[0], &consistency).await?;
    let record = filter.record_id.map(|id| id.hyphenated().to_string());
    Ok(Json(queries::suggestions(&models.db, record.as_deref(), filter.pending, filter.limit.unwrap_or(50)).await?))
}
