use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use emr_eventstore::RecordedEvent;
use serde::Deserialize;

use crate::AppState;
use crate::extract::Caller;
use crate::problem::ApiError;

/// Histories, the log and receipts are for auditors (PHI stays sealed in them).
pub(crate) async fn audit(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    state.clinic.authorize(&caller.actor, emr_domain::access::Action::ReadAudit, emr_commands::Subject::default()).await?;
    Ok(())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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

#[utoipa::path(get, path = "/v1/log", tag = "audit", summary = "The event log, PHI sealed (auditors)", params(Page), responses((status = 200, description = "events in log order"), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// Events of up to `limit` (≤ 1000) commits from position `from`, PHI sealed.
pub(crate) async fn read(
    State(state): State<AppState>,
    caller: Caller,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Vec<RecordedEvent>>, ApiError> {
    let Query(page) = page?;
    audit(&state, &caller).await?;
    Ok(Json(state.clinic.log().read(page.from, page.limit.min(1000)).await?))
}

#[utoipa::path(get, path = "/v1/audit/{aggregate_type}/{aggregate_id}/history", tag = "audit", summary = "An aggregate's full history, PHI sealed", params(("aggregate_type" = String, Path, description = "patient, medical_record, access_grant, account, disclosure, …"), ("aggregate_id" = String, Path)), responses((status = 200, description = "events with envelopes, as stored (their canonical bytes are what receipts prove)", body = Vec<serde_json::Value>), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// The full history of one aggregate, PHI sealed: what auditors replay.
pub(crate) async fn history(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path((aggregate_type, aggregate_id)): axum::extract::Path<(String, String)>,
) -> Result<Json<Vec<RecordedEvent>>, ApiError> {
    audit(&state, &caller).await?;
    let events = state.clinic.history(&aggregate_type, &aggregate_id).await?;
    if events.is_empty() {
        return Err(ApiError::NotFound(aggregate_type));
    }
    Ok(Json(events))
}

#[utoipa::path(get, path = "/v1/audit/{aggregate_type}/{aggregate_id}/events/{sequence}/receipt", tag = "audit", summary = "An event's inclusion proof against an anchored tree head", params(("aggregate_type" = String, Path, description = "patient, medical_record, access_grant, account, disclosure, …"), ("aggregate_id" = String, Path), ("sequence" = u64, Path)), responses((status = 200, description = "receipt, verifiable offline (docs/receipts.md, format emr-receipt/1)", body = serde_json::Value), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// The receipt of one event: its inclusion proof against a signed, anchored tree
/// head, verifiable offline (docs/receipts.md).
pub(crate) async fn receipt(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path((aggregate_type, aggregate_id, sequence)): axum::extract::Path<(String, String, u64)>,
) -> Result<Json<emr_anchor::Receipt>, ApiError> {
    audit(&state, &caller).await?;
    let Some(audit) = &state.audit else {
        return Err(ApiError::Problem(crate::Problem::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "audit-not-configured",
            "This server does not anchor the log",
            "receipts are served by a process with the anchor role (serve.roles)",
        )));
    };
    let events = state.clinic.history(&aggregate_type, &aggregate_id).await?;
    let event = events.into_iter().find(|e| e.sequence == sequence).ok_or_else(|| ApiError::NotFound("event".into()))?;
    let receipt = emr_anchor::receipt(audit.ledger.as_ref(), &audit.dir, &event).await.map_err(|error| {
        tracing::error!(%error, "receipt failed");
        ApiError::Problem(crate::Problem::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong",
            "the error was logged",
        ))
    })?;
    let mut receipt = receipt;
    if let (Some(receipt), Some(read_models)) = (receipt.as_mut(), &state.read_models) {
        // The oracle's answer: every other ledger and target chain that holds this root.
        let elsewhere = emr_projections::anchors::at_size(&read_models.db, receipt.tree_size).await?;
        receipt.anchors.extend(elsewhere.into_iter().filter(|row| row.ledger != audit.ledger.name()).map(|row| {
            emr_anchor::ReceiptAnchor {
                ledger: row.ledger,
                transaction_id: row.transaction_hash,
                block: row.block_number,
                status: Some(row.status),
            }
        }));
    }
    receipt.map(Json).ok_or_else(|| {
        ApiError::Problem(
            crate::Problem::new(
                axum::http::StatusCode::CONFLICT,
                "not-anchored-yet",
                "The event is not anchored yet",
                "try again after the next tree head",
            )
            .retryable(),
        )
    })
}
