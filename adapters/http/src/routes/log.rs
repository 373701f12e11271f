use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use emr_eventstore::RecordedEvent;
use serde::Deserialize;

use crate::AppState;
use crate::problem::ApiError;

#[derive(Deserialize)]
pub(crate) struct Page {
    #[serde(default = "first")]
    from: u64,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn first() -> u64 {
    1
}

fn default_limit() -> usize {
    100
}

/// Events of up to `limit` (≤ 1000) commits from position `from`, PHI sealed.
pub(crate) async fn read(
    State(state): State<AppState>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Vec<RecordedEvent>>, ApiError> {
    let Query(page) = page?;
    Ok(Json(state.clinic.log().read(page.from, page.limit.min(1000)).await?))
}

/// The full history of one aggregate, PHI sealed: what auditors replay.
pub(crate) async fn history(
    State(state): State<AppState>,
    axum::extract::Path((aggregate_type, aggregate_id)): axum::extract::Path<(String, String)>,
) -> Result<Json<Vec<RecordedEvent>>, ApiError> {
    let events = state.clinic.history(&aggregate_type, &aggregate_id).await?;
    if events.is_empty() {
        return Err(ApiError::NotFound(aggregate_type));
    }
    Ok(Json(events))
}
