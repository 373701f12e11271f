//! Routes, one module per resource.

pub(crate) mod attachments;
pub(crate) mod auth;
pub(crate) mod diagnosis;
pub(crate) mod export;
pub(crate) mod federated;
pub(crate) mod fhir;
pub(crate) mod grants;
mod health;
pub(crate) mod log;
pub(crate) mod patients;
pub(crate) mod privacy;
pub(crate) mod read;
pub(crate) mod records;
pub(crate) mod research;
pub(crate) mod retention;
pub(crate) mod security;
pub(crate) mod smart;

use axum::Router;
use axum::routing::{get, post, put};

use crate::AppState;
use crate::problem::ApiError;

/// `/health`, `/ready` and `/metrics`, on every process.
pub(crate) fn operations<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    crate::OperationsState: axum::extract::FromRef<S>,
{
    Router::new().route("/metrics", get(crate::metrics::render)).route("/health", get(health::health)).route("/ready", get(health::ready))
}

/// The command and query API.
pub(crate) fn api() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(crate::openapi::document))
        .route("/v1/auth/login", post(auth::login))
        .route("/v1/auth/mfa/enrolment", post(auth::enrol))
        .route("/v1/auth/mfa/verification", post(auth::verify))
        .route("/v1/auth/refresh", post(auth::refresh))
        .route("/v1/auth/logout", post(auth::logout))
        .route("/v1/accounts", post(auth::register).get(auth::list))
        .route("/v1/accounts/self-registration", post(auth::register_self))
        .route("/v1/accounts/{user_id}", get(auth::show))
        .route("/v1/accounts/{user_id}/unlock", post(auth::unlock))
        .route("/v1/accounts/{user_id}/deactivation", post(auth::deactivate))
        .route("/v1/accounts/{user_id}/role", post(auth::change_role))
        .route("/v1/accounts/{user_id}/mfa-reset", post(auth::reset_mfa))
        .route("/v1/accounts/{user_id}/grants", get(grants::of_grantee))
        .route("/v1/patients", post(patients::register).get(patients::search))
        .route("/v1/patients/{patient_id}/break-glass", post(patients::break_glass))
        .route("/v1/records/{record_id}/break-glass", post(records::break_glass))
        .route("/v1/patients/{patient_id}", get(patients::show))
        .route("/v1/patients/{patient_id}/grants", get(grants::of_patient))
        .route("/v1/patients/{patient_id}/demographics", put(patients::update_demographics))
        .route("/v1/patients/{patient_id}/erasure", post(patients::erase))
        .route("/v1/patients/{patient_id}/restriction", post(patients::restrict))
        .route("/v1/patients/{patient_id}/restriction/lifting", post(patients::lift_restriction))
        .route("/v1/patients/{patient_id}/legal-holds", post(patients::place_legal_hold))
        .route("/v1/patients/{patient_id}/legal-holds/release", post(patients::release_legal_hold))
        .route("/v1/patients/{patient_id}/export", get(export::export))
        .route("/v1/patients/{patient_id}/disposal", post(retention::dispose))
        .route("/v1/retention/review", get(retention::review))
        .route("/v1/break-glass/{disclosure_id}/justification", post(privacy::justify))
        .route("/v1/privacy/report", get(privacy::report))
        .route("/v1/records", post(records::create))
        // A thousand records with their content: more than the 2 MiB default.
        .route("/v1/records/batch", post(records::create_batch).layer(axum::extract::DefaultBodyLimit::max(16 << 20)))
        .route("/v1/records/{record_id}", get(records::show))
        .route("/v1/records/{record_id}/amendments", post(records::amend))
        .route("/v1/records/{record_id}/attachments", post(records::add_attachment))
        .route("/v1/records/{record_id}/attachments/content", post(attachments::upload))
        .route("/v1/records/{record_id}/attachments/{attachment_id}", get(attachments::status))
        .route("/v1/records/{record_id}/attachments/{attachment_id}/content", get(attachments::download))
        .route("/v1/records/{record_id}/attachments/{attachment_id}/preview", get(attachments::preview))
        .route("/v1/records/{record_id}/attachments/{attachment_id}/diagnosis", post(diagnosis::request))
        .route("/v1/records/{record_id}/suggestions", get(diagnosis::suggestions))
        .route("/v1/records/{record_id}/suggestions/{suggestion_id}/report", get(diagnosis::report_of))
        .route("/v1/records/{record_id}/suggestions/{suggestion_id}/review", post(diagnosis::review))
        .route("/v1/diagnosis/jobs/{job_id}", get(diagnosis::job))
        .route("/v1/diagnosis/jobs/{job_id}/cancellation", post(diagnosis::cancel))
        .route("/v1/ai/models", post(diagnosis::register))
        .route("/v1/ai/models/{model_id}", get(diagnosis::model))
        // A model artifact is tens or hundreds of megabytes.
        .route("/v1/ai/models/{model_id}/artifact", put(diagnosis::install).layer(axum::extract::DefaultBodyLimit::max(1 << 30)))
        .route("/v1/ai/models/{model_id}/validation", post(diagnosis::validate))
        .route("/v1/ai/models/{model_id}/activation", post(diagnosis::activate))
        .route("/v1/ai/models/{model_id}/retirement", post(diagnosis::retire))
        .route("/v1/records/{record_id}/deletion", post(records::delete))
        .route("/v1/records/{record_id}/restoration", post(records::restore))
        .route("/v1/grants", post(grants::grant))
        .route("/v1/access-requests", post(grants::request))
        .route("/v1/grants/{grant_id}", get(grants::show))
        .route("/v1/grants/{grant_id}/approval", post(grants::approve))
        .route("/v1/grants/{grant_id}/denial", post(grants::deny))
        .route("/v1/grants/{grant_id}/revocation", post(grants::revoke))
        .route("/v1/federated/tasks", post(federated::create))
        .route("/v1/federated/tasks/{task_id}", get(federated::show))
        .route("/v1/federated/tasks/{task_id}/start", post(federated::start))
        .route("/v1/federated/tasks/{task_id}/rounds", post(federated::open_round))
        .route("/v1/federated/tasks/{task_id}/rounds/{round}/updates", post(federated::submit))
        .route("/v1/federated/tasks/{task_id}/rounds/{round}/aggregation", post(federated::aggregate))
        .route("/v1/federated/tasks/{task_id}/rounds/{round}/secure", get(federated::secure_round))
        .route("/v1/federated/tasks/{task_id}/rounds/{round}/secure/messages", post(federated::secure_message))
        .route("/v1/federated/tasks/{task_id}/rounds/{round}/secure/advance", post(federated::secure_advance))
        .route("/v1/federated/tasks/{task_id}/completion", post(federated::complete))
        .route("/v1/federated/tasks/{task_id}/model", get(federated::model))
        .route("/v1/read/federated-tasks", get(federated::list))
        .route("/v1/read/federated-tasks/{task_id}/rounds", get(federated::rounds))
        .route("/v1/log", get(log::read))
        .route("/v1/audit/{aggregate_type}/{aggregate_id}/history", get(log::history))
        .route("/v1/audit/{aggregate_type}/{aggregate_id}/events/{sequence}/receipt", get(log::receipt))
        .route("/v1/read/records", get(read::records))
        .route("/v1/read/dashboard", get(read::dashboard))
        .route("/v1/read/diagnosis/models", get(read::diagnosis_models))
        .route("/v1/read/diagnosis/suggestions", get(read::diagnosis_suggestions))
        .route("/v1/read/anchors", get(read::anchors))
        .route("/v1/read/access-log", get(read::access_log))
        .route("/v1/research/export", get(research::export))
        .route("/v1/projections", get(read::projections))
        .route("/v1/security/events", get(security::list))
        .route("/v1/security/events/{security_event_id}", get(security::show))
        .route("/v1/security/events/{security_event_id}/acknowledgement", post(security::acknowledge))
        .route("/v1/security/events/{security_event_id}/assignment", post(security::assign))
        .route("/v1/security/events/{security_event_id}/resolution", post(security::resolve))
        .route("/v1/security/risk", get(security::risk))
        .route("/v1/security/outcomes", get(security::outcomes))
        .route("/v1/smart/launches", post(smart::launch))
        .route("/oauth/authorize", get(smart::authorize_page).post(smart::authorize))
        .route("/oauth/token", post(smart::token))
        .route("/oauth/introspect", post(smart::introspect))
        .route("/oauth/jwks", get(smart::jwks))
        .route("/oauth/revoke", post(smart::revoke))
        // The base URL as clients often write it, with a trailing slash.
        .route("/fhir/r4/", post(fhir::submit_bundle))
        .nest("/fhir/r4", fhir::routes())
}

/// The enum value a read model stores under its snake-case name.
pub(crate) fn from_snake<T: serde::de::DeserializeOwned>(name: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

/// Parses an id from the path.
pub(crate) fn path_id<T: std::str::FromStr>(value: &str, what: &str) -> Result<T, ApiError> {
    value.parse().map_err(|_| {
        ApiError::Problem(crate::Problem::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid-id",
            "The id is not valid",
            format!("{what} must be a UUID"),
        ))
    })
}
