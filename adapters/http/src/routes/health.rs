use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::OperationsState;
use crate::problem::{ApiError, Problem};

/// Liveness: the process answers.
pub(crate) async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// How long readiness waits for its dependencies: a probe must answer, and a
/// dependency this slow is not ready.
const READY_BUDGET: Duration = Duration::from_secs(2);

/// Readiness: the event log (NATS or the embedded store), the session store
/// (on an API process) and, when configured, the read-model database all answer within
/// [`READY_BUDGET`].
pub(crate) async fn ready(State(state): State<OperationsState>) -> Result<Json<Value>, ApiError> {
    tokio::time::timeout(READY_BUDGET, check(&state)).await.unwrap_or_else(|_| {
        Err(ApiError::Problem(
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Not ready", "a backing service did not answer within 2 s")
                .retryable(),
        ))
    })
}

async fn check(state: &OperationsState) -> Result<Json<Value>, ApiError> {
    let head = state.log.head().await?;
    let sessions = match &state.identity {
        Some(identity) => {
            identity.check_sessions().await?;
            "ready"
        }
        None => "not served here",
    };
    let read_models = match &state.read_models {
        Some(models) => {
            models.db.execute("SELECT 1", vec![]).await.map_err(ApiError::ReadModel)?;
            "ready"
        }
        None => "not configured",
    };
    Ok(Json(json!({"status": "ready", "log_head": head, "sessions": sessions, "read_models": read_models})))
}
