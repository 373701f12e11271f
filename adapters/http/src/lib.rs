//! The HTTP transport of EMR Ledger.
//!
//! Commands are `POST`/`PUT` requests whose JSON bodies parse straight into domain
//! value objects (so validation lives in one place, the domain); every command
//! answers a [`emr_commands::Receipt`] with the commit's log position. Every error
//! is an RFC 9457 `application/problem+json` document with a stable `code`.
//!
//! Request metadata:
//! - `Idempotency-Key: <uuid>` becomes the command id: a retry with the same key
//!   returns the original receipt instead of acting twice. A resource created
//!   without a client-chosen id gets the command id as its id, so a retried
//!   creation finds the resource its first attempt created.
//! - `Authorization: Bearer <access token>` (from `/v1/auth/login` → TOTP at
//!   `/v1/auth/mfa/verification`) names the actor recorded in every event and
//!   authorized by the application layer. Every read of PHI is recorded as a
//!   disclosure; a practitioner without a grant may `POST …/break-glass` with a
//!   reason.

pub mod bulk;
mod extract;
pub mod federation;
mod metrics;
mod openapi;
mod problem;
mod request_log;
mod routes;
mod web;

use axum::Router;
use emr_commands::Clinic;

pub use problem::{ApiError, Problem};
pub use routes::diagnosis::DiagnosisState;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The application layer.
    pub clinic: Clinic,
    /// Accounts, login and sessions.
    pub identity: emr_auth::Identity,
    /// Login, MFA and self-registration attempts allowed per client address per minute.
    pub login_attempts_per_minute: u64,
    /// The MySQL read models, when configured.
    pub read_models: Option<ReadModelState>,
    /// The anchored Merkle log, when this node anchors.
    pub audit: Option<AuditState>,
    /// Attachment blobs, when a blob store is configured.
    pub attachments: Option<emr_attachments::Attachments>,
    /// The federated-learning coordinator, when this node keeps models.
    pub federated: Option<emr_federated::Coordinator>,
    /// Bulk Data export jobs, when this node runs them (they need read models).
    pub exports: Option<bulk::BulkExports>,
    /// AI-assisted diagnosis jobs and model artifacts, when this node runs them.
    pub diagnosis: Option<DiagnosisState>,
}

/// Where this node's tree heads and leaves are.
#[derive(Clone)]
pub struct AuditState {
    /// The ledger holding the signed tree heads.
    pub ledger: std::sync::Arc<dyn emr_anchor::Ledger>,
    /// The directory of the leaf file.
    pub dir: std::path::PathBuf,
}

/// The read-model database and the log it follows.
#[derive(Clone)]
pub struct ReadModelState {
    /// The read-model database.
    pub db: emr_projections::ReadModelDb,
    /// The event log (for lag).
    pub log: std::sync::Arc<dyn emr_eventstore::EventLog>,
    /// The blind index searches are hashed with: the projector's, under the same key.
    pub search_index: std::sync::Arc<emr_projections::BlindIndex>,
}

/// What the operational endpoints (`/health`, `/ready`, `/metrics`) look at:
/// every process has them, whatever its roles.
#[derive(Clone)]
pub struct OperationsState {
    /// The event log.
    pub log: emr_eventstore::LogReader,
    /// Sessions, on a process that serves the API.
    pub identity: Option<emr_auth::Identity>,
    /// The read models, when this process has them.
    pub read_models: Option<ReadModelState>,
}

impl axum::extract::FromRef<AppState> for OperationsState {
    fn from_ref(state: &AppState) -> Self {
        Self { log: state.clinic.log().clone(), identity: Some(state.identity.clone()), read_models: state.read_models.clone() }
    }
}

/// The whole HTTP API, with the operational endpoints and its Prometheus
/// metrics at `/metrics`.
pub fn router(state: AppState) -> Router {
    let api = routes::api().merge(routes::operations()).route("/", axum::routing::get(web::not_built));
    observed(api.with_state(state), None)
}

/// The API, and the built web application (`web/dist`) at `/` from `web_dir`.
pub fn router_with_web_app(state: AppState, web_dir: std::path::PathBuf) -> Router {
    observed(routes::api().merge(routes::operations()).with_state(state), Some(web_dir))
}

/// Only `/health`, `/ready` and `/metrics`: what a process without the API
/// role (a projector, the anchor worker) serves to its probes and Prometheus.
pub fn operations_router(state: OperationsState) -> Router {
    observed(routes::operations().with_state(state), None)
}

fn observed(router: Router, web_dir: Option<std::path::PathBuf>) -> Router {
    // Registering fixed, distinct metric names into a fresh registry cannot fail.
    #[allow(clippy::expect_used)]
    let metrics = metrics::Metrics::new().expect("metric families are valid");
    let router = match web_dir {
        Some(dir) => {
            let files = web::files(&dir);
            router.fallback(move |request: axum::extract::Request| web::serve(files.clone(), request))
        }
        None => router.fallback(|| async { ApiError::NotFound("resource".into()) }),
    };
    router
        .layer(axum::middleware::from_fn_with_state(metrics.clone(), metrics::record))
        .layer(axum::middleware::from_fn(request_log::trace))
        .layer(axum::Extension(metrics))
}
