use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::AppState;
use crate::problem::ApiError;

/// Liveness: the process answers.
pub(crate) async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the event log (NATS or the embedded store), the session store
/// and, when configured, the read-model database all answer.
pub(crate) async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let head = state.clinic.log().head().await?;
    state.identity.check_sessions().await?;
    let read_models = match &state.read_models {
        Some(models) => {
            models.db.execute("SELECT 1", vec![]).await.map_err(ApiError::ReadModel)?;
            "ready"
        }
        None => "not configured",
    };
    Ok(Json(json!({"status": "ready", "log_head": head, "sessions": "ready", "read_models": read_models})))
}
