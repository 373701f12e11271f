//! Every FHIR error is an `OperationOutcome`; its issue carries the same stable
//! code as the REST API's problem documents, so a client switches on one set of codes.

use serde_json::{Value, json};

/// The FHIR issue types (value set `issue-type`) the server reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueType {
    /// Content invalid against the specification or a profile.
    Invalid,
    /// Authentication is required or failed.
    Login,
    /// Not allowed by the caller's grants or role.
    Forbidden,
    /// The resource does not exist.
    NotFound,
    /// A version conflict or a state that forbids the action.
    Conflict,
    /// The server does not support what was asked.
    NotSupported,
    /// Too many requests or too much data.
    TooCostly,
    /// A backing service is down; retrying may work.
    Transient,
    /// An unexpected failure.
    Exception,
}

impl IssueType {
    /// The issue type of an HTTP status.
    pub fn of_status(status: u16) -> Self {
        match status {
            400 | 413 | 415 | 422 => Self::Invalid,
            401 => Self::Login,
            403 => Self::Forbidden,
            404 | 410 => Self::NotFound,
            405 | 501 => Self::NotSupported,
            409 | 412 | 423 => Self::Conflict,
            429 | 507 => Self::TooCostly,
            503 => Self::Transient,
            _ => Self::Exception,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Login => "login",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not-found",
            Self::Conflict => "conflict",
            Self::NotSupported => "not-supported",
            Self::TooCostly => "too-costly",
            Self::Transient => "transient",
            Self::Exception => "exception",
        }
    }
}

/// An `OperationOutcome` with one error issue: its FHIR issue type, the server's
/// stable `code` (system `urn:emr-ledger:problem`) with its `title`, and `detail`
/// as the diagnostics.
pub fn operation_outcome(issue: IssueType, code: &str, title: &str, detail: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{
            "severity": if issue == IssueType::Transient { "warning" } else { "error" },
            "code": issue.code(),
            "details": {"coding": [{"system": "urn:emr-ledger:problem", "code": code}], "text": title},
            "diagnostics": detail,
        }],
    })
}
