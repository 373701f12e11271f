//! RFC 9457 problem details, and how every error becomes one.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use emr_attachments::AttachmentError;
use emr_auth::{AuthError, TokenError};
use emr_commands::ClinicError;
use emr_domain::access::Denied;
use emr_domain::retention::RetentionError;
use emr_domain::security::SecurityError;
use emr_eventstore::StoreError;
use serde::Serialize;

/// A problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:emr-ledger:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong with this request (never PHI, never internals).
    pub detail: String,
    /// Stable machine-readable code.
    pub code: String,
    /// Whether sending the same request again (same Idempotency-Key) may succeed.
    pub retryable: bool,
}

impl Problem {
    /// A problem with the given status and code.
    pub fn new(status: StatusCode, code: &str, title: &str, detail: impl Into<String>) -> Self {
        Self {
            problem_type: format!("urn:emr-ledger:problem:{code}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_owned(),
            retryable: false,
        }
    }

    pub(crate) fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retryable = self.retryable;
        let mut response = (status, Json(self)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if retryable {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"emr-ledger\""));
        }
        response
    }
}

/// Every way a request can fail.
#[derive(Debug)]
pub enum ApiError {
    /// A command was refused or failed.
    Clinic(ClinicError),
    /// The store failed outside a command (queries).
    Store(StoreError),
    /// A problem decided at the edge (malformed request, feature not configured …).
    Problem(Problem),
    /// Nothing at this address.
    NotFound(String),
    /// A read-model query failed or timed out waiting.
    ReadModel(emr_projections::ProjectionError),
    /// Read models are not configured on this server.
    NoReadModels,
    /// No usable credentials were sent.
    Unauthenticated(&'static str),
    /// An authentication step failed.
    Auth(AuthError),
    /// An attachment upload or download failed.
    Attachment(AttachmentError),
    /// A federated-learning step was refused or failed.
    Federated(emr_federated::CoordinatorError),
}

impl From<emr_federated::CoordinatorError> for ApiError {
    fn from(error: emr_federated::CoordinatorError) -> Self {
        Self::Federated(error)
    }
}

fn federated_problem(error: &emr_federated::CoordinatorError) -> Problem {
    use emr_domain::federated::TaskError;
    use emr_federated::{CoordinatorError, ModelStoreError};
    let conflict = |code: &str, title: &str| Problem::new(StatusCode::CONFLICT, code, title, error.to_string());
    let invalid = |code: &str, title: &str| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, title, error.to_string());
    match error {
        CoordinatorError::Task(TaskError::NotFound) => {
            Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", "no federated task with this id")
        }
        CoordinatorError::Task(TaskError::AlreadyExists) => conflict("task-exists", "A federated task with this id exists"),
        CoordinatorError::Task(TaskError::Spec(_)) => invalid("invalid-task-spec", "The task specification is not valid"),
        CoordinatorError::Task(TaskError::WrongState { .. }) => conflict("task-state", "The task is not in a state for this"),
        CoordinatorError::Task(TaskError::WrongRound { .. }) => conflict("wrong-round", "That round is not the current one"),
        CoordinatorError::Task(TaskError::NotEnrolled(_)) => {
            Problem::new(StatusCode::FORBIDDEN, "not-enrolled", "Not allowed", error.to_string())
        }
        CoordinatorError::Task(TaskError::AlreadySubmitted(_)) => conflict("update-submitted", "This hospital's update is in"),
        CoordinatorError::Task(TaskError::DeadlinePassed(_)) => conflict("round-closed", "The round closed for updates"),
        CoordinatorError::Task(TaskError::TooFewUpdates { .. }) => conflict("too-few-updates", "Too few updates to aggregate"),
        CoordinatorError::Task(TaskError::BudgetExhausted { .. }) => {
            conflict("epsilon-budget-exhausted", "The task's privacy budget is spent")
        }
        CoordinatorError::Task(TaskError::Secure(secure)) => secure_step_problem(secure, error),
        CoordinatorError::Task(TaskError::InvalidUpdate | TaskError::Reason | TaskError::Accounting(_)) => {
            invalid("task-rule", "The command breaks a task rule")
        }
        CoordinatorError::Update(_) | CoordinatorError::Aggregation(_) => invalid("invalid-update", "The update does not fit the task"),
        CoordinatorError::SecureAggregation(_) => conflict("secure-aggregation-failed", "The round could not be unmasked"),
        CoordinatorError::Store(e) => store_problem(e),
        CoordinatorError::Models(ModelStoreError::Io(_)) => {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "The model store is unavailable", "try again shortly").retryable()
        }
        CoordinatorError::Models(_) => {
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Something went wrong", "the error was logged")
        }
    }
}

fn secure_step_problem(secure: &emr_domain::federated::secure::SecureError, error: &emr_federated::CoordinatorError) -> Problem {
    use emr_domain::federated::secure::SecureError;
    let detail = error.to_string();
    match secure {
        SecureError::NotSecure => Problem::new(StatusCode::CONFLICT, "task-not-secure", "The task does not use secure aggregation", detail),
        SecureError::WrongStep { .. } => Problem::new(StatusCode::CONFLICT, "secure-step", "The secure round is in another step", detail),
        SecureError::NotAMember { .. } => Problem::new(StatusCode::FORBIDDEN, "not-in-secure-round", "Not allowed", detail),
        SecureError::AlreadySent(_) => Problem::new(StatusCode::CONFLICT, "secure-message-sent", "This hospital's message is in", detail),
        SecureError::Malformed { .. } => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-secure-message", "The message does not fit the step", detail)
        }
        SecureError::TooFew { .. } => Problem::new(StatusCode::CONFLICT, "too-few-hospitals", "Too few hospitals to go on", detail),
    }
}

impl From<AttachmentError> for ApiError {
    fn from(error: AttachmentError) -> Self {
        match error {
            AttachmentError::Clinic(clinic) => Self::Clinic(clinic),
            other => Self::Attachment(other),
        }
    }
}

fn attachment_problem(error: &AttachmentError) -> Problem {
    use emr_attachments::{BlobError, StreamError};
    match error {
        AttachmentError::Clinic(_) => {
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Something went wrong", "the error was logged")
        }
        AttachmentError::Erased => Problem::new(StatusCode::GONE, "patient-erased", "The patient was erased", error.to_string()),
        AttachmentError::Blob(BlobError::NotFound(_)) => {
            Problem::new(StatusCode::NOT_FOUND, "blob-missing", "The attachment's blob is not in the store", error.to_string())
        }
        AttachmentError::Stream(StreamError::Io(_)) => {
            Problem::new(StatusCode::BAD_REQUEST, "upload-interrupted", "The upload did not arrive whole", error.to_string())
        }
        AttachmentError::Stream(StreamError::TooLarge) => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", "The attachment is too large", error.to_string())
        }
        AttachmentError::TooLarge { .. } => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large-to-read", "The attachment is too large for this read", error.to_string())
        }
        AttachmentError::Stream(_) => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "blob-corrupt", "The stored blob fails its integrity check", error.to_string())
        }
        AttachmentError::Blob(BlobError::Unavailable(_)) | AttachmentError::Key(_) => {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "A backing service is unavailable", "try again shortly")
                .retryable()
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        Self::Auth(error)
    }
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        Self::Clinic(ClinicError::Forbidden(denied))
    }
}

/// 403 with a code naming what was missing.
fn forbidden(denied: &Denied) -> Problem {
    let code = match denied {
        Denied::RoleNotPermitted { .. } => "role-not-permitted",
        Denied::NotOwnRecord => "not-own-record",
        Denied::NoActiveGrant { .. } => "no-active-grant",
        Denied::NotGrantee => "not-grantee",
        Denied::OnBehalfOfAnother => "on-behalf-of-another",
        Denied::ProcessingRestricted => "processing-restricted",
    };
    Problem::new(StatusCode::FORBIDDEN, code, "Not allowed", denied.to_string())
}

fn auth_problem(error: &AuthError) -> Problem {
    let unauthorized = |code: &str, detail: String| Problem::new(StatusCode::UNAUTHORIZED, code, "Authentication failed", detail);
    match error {
        AuthError::InvalidCredentials => unauthorized("invalid-credentials", error.to_string()),
        AuthError::InvalidCode => unauthorized("invalid-code", error.to_string()),
        AuthError::CodeReplayed => unauthorized("code-replayed", error.to_string()),
        AuthError::Token(TokenError::Expired) => unauthorized("token-expired", error.to_string()),
        AuthError::Token(TokenError::Invalid(_)) => unauthorized("token-invalid", error.to_string()),
        AuthError::SessionRevoked => unauthorized("session-revoked", error.to_string()),
        AuthError::RefreshTokenReused => unauthorized("refresh-token-reused", error.to_string()),
        AuthError::Locked { .. } => Problem::new(StatusCode::LOCKED, "account-locked", "The account is locked", error.to_string()),
        AuthError::Deactivated => {
            Problem::new(StatusCode::FORBIDDEN, "account-deactivated", "The account is deactivated", error.to_string())
        }
        AuthError::EnrolmentRequired => {
            Problem::new(StatusCode::CONFLICT, "mfa-enrolment-required", "MFA enrolment must come first", error.to_string())
        }
        AuthError::WeakPassword(_) => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "weak-password", "The password is too weak", error.to_string())
        }
        AuthError::UsernameTaken => Problem::new(StatusCode::CONFLICT, "username-taken", "The username is taken", error.to_string()),
        AuthError::RateLimited { .. } => {
            Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate-limited", "Too many attempts", error.to_string()).retryable()
        }
        AuthError::Forbidden(denied) => forbidden(denied),
        AuthError::Account(e) => {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "account-rule", "The command breaks an account rule", e.to_string())
        }
        AuthError::Store(e) => store_problem(e),
        AuthError::Sessions(_) => {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "The session store is unavailable", "try again shortly")
                .retryable()
        }
        AuthError::Crypto(_) => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Something went wrong", "the error was logged"),
        AuthError::InvalidGrant(_) => {
            Problem::new(StatusCode::BAD_REQUEST, "invalid_grant", "The grant cannot be redeemed", error.to_string())
        }
        AuthError::InvalidClient(_) => {
            Problem::new(StatusCode::UNAUTHORIZED, "invalid_client", "The client could not be authenticated", error.to_string())
        }
    }
}

impl From<emr_projections::ProjectionError> for ApiError {
    fn from(error: emr_projections::ProjectionError) -> Self {
        Self::ReadModel(error)
    }
}

impl From<ClinicError> for ApiError {
    fn from(error: ClinicError) -> Self {
        Self::Clinic(error)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let (status, code) = match &rejection {
            JsonRejection::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-field"),
            JsonRejection::MissingJsonContentType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type"),
            JsonRejection::BytesRejection(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body-too-large"),
            _ => (StatusCode::BAD_REQUEST, "malformed-json"),
        };
        Self::Problem(Problem::new(status, code, "The request body is not valid", rejection.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::Problem(Problem::new(StatusCode::BAD_REQUEST, "invalid-path", "The address is not valid", rejection.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::Problem(Problem::new(StatusCode::BAD_REQUEST, "invalid-query", "The query string is not valid", rejection.body_text()))
    }
}

fn store_problem(error: &StoreError) -> Problem {
    use emr_eventstore::{KeyError, LogError, PhiError};
    match error {
        StoreError::InvalidKey(e) => Problem::new(StatusCode::BAD_REQUEST, "invalid-id", "The id is not valid", e.to_string()),
        StoreError::Log(LogError::Conflict { .. }) => Problem::new(
            StatusCode::CONFLICT,
            "concurrent-update",
            "Another command changed this first",
            "reload and send the command again",
        )
        .retryable(),
        StoreError::Log(LogError::TooLarge { .. }) => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", "The command is too large", error.to_string())
        }
        StoreError::Log(LogError::StorageFull(_)) => Problem::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "storage-full",
            "The ledger's storage is full",
            "nothing was written; send the command again with the same Idempotency-Key once space is freed",
        )
        .retryable(),
        StoreError::Stale { .. } => Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "version-mismatch",
            "The resource changed since it was read",
            format!("{error}; read it again and resend with its current version"),
        ),
        StoreError::CommandIdReused { .. } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "This Idempotency-Key was used for another resource",
            "use a new Idempotency-Key for a new command",
        ),
        StoreError::Phi(PhiError::Key(KeyError::Destroyed(_))) => Problem::new(
            StatusCode::GONE,
            "patient-erased",
            "The patient was erased",
            "no new information can be recorded for an erased patient",
        ),
        e if e.is_retryable() => {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "A backing service is unavailable", "try again shortly")
                .retryable()
        }
        _ => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Something went wrong", "the error was logged"),
    }
}

impl ApiError {
    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let rule = |code: &str, error: &dyn std::error::Error| {
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, "The command breaks a clinical rule", error.to_string())
        };
        match self {
            Self::Problem(problem) => problem.clone(),
            Self::NotFound(what) => Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", format!("no {what} with this id")),
            Self::Store(error) | Self::Clinic(ClinicError::Store(error)) => store_problem(error),
            Self::Clinic(ClinicError::Patient(e @ emr_domain::patient::PatientError::UnderLegalHold { .. })) => {
                Problem::new(StatusCode::CONFLICT, "legal-hold", "A legal hold stands", e.to_string())
            }
            Self::Clinic(ClinicError::Patient(e)) => rule("patient-rule", e),
            Self::Clinic(ClinicError::Record(e)) => rule("record-rule", e),
            Self::Clinic(ClinicError::Grant(e)) => rule("grant-rule", e),
            Self::Clinic(ClinicError::Model(emr_domain::diagnosis::ModelError::NotFound)) => {
                Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", "no model with this id")
            }
            Self::Clinic(ClinicError::Model(e)) => rule("model-rule", e),
            Self::Clinic(error @ ClinicError::PatientNotActive { .. }) => rule("patient-not-active", error),
            Self::NoReadModels => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "read-models-not-configured",
                "This server has no read models",
                "set read_models.mysql_url to serve queries",
            ),
            Self::ReadModel(error @ emr_projections::ProjectionError::WaitTimedOut { .. }) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "read-model-behind",
                "The read model has not reached that position yet",
                error.to_string(),
            )
            .retryable(),
            Self::ReadModel(_) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "The read-model database is unavailable", "try again shortly")
                    .retryable()
            }
            Self::Clinic(ClinicError::Forbidden(denied)) => forbidden(denied),
            Self::Clinic(ClinicError::NotFound { what }) => {
                Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", format!("no {what} with this id"))
            }
            Self::Clinic(ClinicError::Disclosure(e)) => rule("disclosure-rule", e),
            Self::Clinic(ClinicError::Security(e @ (SecurityError::AlreadyResolved(_) | SecurityError::AlreadyRaised))) => {
                Problem::new(StatusCode::CONFLICT, "security-event-resolved", "The security event is resolved", e.to_string())
            }
            Self::Clinic(ClinicError::Security(SecurityError::NotRaised)) => {
                Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", "no security event with this id")
            }
            Self::Clinic(ClinicError::Retention(e @ RetentionError::RetentionDuty { .. })) => {
                Problem::new(StatusCode::CONFLICT, "retention-duty", "A legal retention duty applies", e.to_string())
            }
            Self::Clinic(ClinicError::Retention(e @ RetentionError::NotYetDue { .. })) => {
                Problem::new(StatusCode::CONFLICT, "retention-not-due", "The retention period has not ended", e.to_string())
            }
            Self::Clinic(ClinicError::Denial(_) | ClinicError::RetentionUnchecked) => {
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Something went wrong", "the error was logged")
            }
            Self::Unauthenticated(detail) => Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", "Authentication required", *detail),
            Self::Auth(error) => auth_problem(error),
            Self::Attachment(error) => attachment_problem(error),
            Self::Federated(error) => federated_problem(error),
            Self::Clinic(error @ ClinicError::IdMismatch { .. }) => {
                Problem::new(StatusCode::BAD_REQUEST, "id-mismatch", "The body names another resource than the address", error.to_string())
            }
            Self::Clinic(error @ ClinicError::NotACreation { .. }) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "not-a-creation",
                "A batch of creations holds another command",
                error.to_string(),
            ),
            Self::Clinic(error @ ClinicError::NotOneChange { .. }) => {
                Problem::new(StatusCode::BAD_REQUEST, "not-one-change", "The transaction cannot be one change", error.to_string())
            }
        }
    }
}

impl ApiError {
    /// The problem, with a server-side failure logged as a response logs it: for
    /// answers that travel inside a body (a batch's entries).
    pub fn logged_problem(self) -> Problem {
        let problem = self.problem();
        if problem.status >= 500 {
            let cause = match &self {
                Self::Store(e) | Self::Clinic(ClinicError::Store(e)) | Self::Auth(AuthError::Store(e)) => e.to_string(),
                Self::ReadModel(e) => e.to_string(),
                other => format!("{other:?}"),
            };
            if problem.code.ends_with("-not-configured") {
                // A feature this server was not configured for: the caller's concern, not an incident.
                tracing::debug!(code = %problem.code, "request for an unconfigured feature");
            } else if problem.retryable {
                tracing::warn!(code = %problem.code, %cause, "request failed, retryable");
            } else {
                tracing::error!(code = %problem.code, %cause, "request failed");
            }
        }
        problem
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.logged_problem().into_response()
    }
}
