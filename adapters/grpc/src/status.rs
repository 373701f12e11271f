//! From the error catalogue to gRPC statuses: the code follows the HTTP status
//! of the same problem, and the problem's stable `code` travels as the
//! `google.rpc.ErrorInfo` reason, so clients switch on one set of codes on both
//! transports.

use emr_http::ApiError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The gRPC status of an error.
pub fn status_of(error: ApiError) -> Status {
    let problem = error.problem();
    let code = match problem.status {
        400 | 413 | 415 | 422 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 if problem.code == "username-taken" => Code::AlreadyExists,
        409 => Code::Aborted,
        410 | 412 | 423 => Code::FailedPrecondition,
        429 => Code::ResourceExhausted,
        503 => Code::Unavailable,
        507 => Code::ResourceExhausted,
        _ => Code::Internal,
    };
    if problem.status >= 500 && !problem.retryable {
        tracing::error!(code = %problem.code, cause = ?error, "gRPC call failed");
    }
    let mut details = ErrorDetails::new();
    details.set_error_info(problem.code.clone(), "emr-ledger", [("retryable".to_owned(), problem.retryable.to_string())]);
    if problem.retryable {
        details.set_retry_info(Some(std::time::Duration::from_secs(1)));
    }
    Status::with_error_details(code, problem.detail, details)
}
