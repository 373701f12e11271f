//! Responses to security events (seed 5.3: alert → contain): which ones each
//! severity gets, and the ports they act through.

use std::sync::Arc;
use std::time::Duration;

use emr_domain::ids::{SecurityEventId, UserId};
use emr_domain::security::{Response, Severity};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// Which responses each severity gets (`detection.responses` in the
/// configuration). Locking is for critical events only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponsePolicy {
    /// Low severity.
    pub low: Vec<Response>,
    /// Medium severity.
    pub medium: Vec<Response>,
    /// High severity.
    pub high: Vec<Response>,
    /// Critical severity.
    pub critical: Vec<Response>,
}

impl Default for ResponsePolicy {
    fn default() -> Self {
        Self {
            low: vec![],
            medium: vec![Response::Alert],
            high: vec![Response::Alert, Response::Reauthenticate],
            critical: vec![Response::Alert, Response::Reauthenticate, Response::LockAccount],
        }
    }
}

impl ResponsePolicy {
    /// The responses to an event of `severity`.
    pub fn for_severity(&self, severity: Severity) -> &[Response] {
        match severity {
            Severity::Low => &self.low,
            Severity::Medium => &self.medium,
            Severity::High => &self.high,
            Severity::Critical => &self.critical,
        }
    }

    /// What is wrong with the policy, if anything.
    pub fn problems(&self) -> Vec<String> {
        [("low", &self.low), ("medium", &self.medium), ("high", &self.high)]
            .into_iter()
            .filter(|(_, responses)| responses.contains(&Response::LockAccount))
            .map(|(severity, _)| format!("detection.responses.{severity}: lock_account is for critical events only"))
            .collect()
    }
}

/// An alert as sinks receive it (JSON for webhooks).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// The security event.
    pub security_event_id: SecurityEventId,
    /// Its kind (snake case).
    pub kind: &'static str,
    /// Its severity (snake case).
    pub severity: &'static str,
    /// The account concerned.
    pub user_id: Option<UserId>,
    /// The user's risk score.
    pub risk_score: f64,
    /// One line, no PHI.
    pub summary: String,
    /// When it was raised (RFC 3339).
    pub raised_at: String,
}

/// A sink could not take an alert.
#[derive(Debug, thiserror::Error)]
#[error("alert sink {sink}: {reason}")]
pub struct AlertError {
    /// Which sink.
    pub sink: String,
    /// Why.
    pub reason: String,
}

/// Where alerts go.
pub trait AlertSink: Send + Sync + 'static {
    /// Delivers `alert`; answers where it went.
    fn deliver<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, Result<String, AlertError>>;
}

/// Alerts as warnings in the process log (always on).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogSink;

impl AlertSink for LogSink {
    fn deliver<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, Result<String, AlertError>> {
        tracing::warn!(
            security_event_id = %alert.security_event_id,
            kind = alert.kind,
            severity = alert.severity,
            user_id = ?alert.user_id,
            risk_score = alert.risk_score,
            summary = %alert.summary,
            "security alert"
        );
        Box::pin(futures::future::ready(Ok("log".to_owned())))
    }
}

/// Alerts POSTed as JSON to a webhook (a SIEM, a chat channel, a pager).
#[derive(Debug, Clone)]
pub struct WebhookSink {
    url: reqwest::Url,
    client: reqwest::Client,
}

impl WebhookSink {
    /// A sink posting to `url`, giving up on a delivery after `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, AlertError> {
        let fail = |reason: String| AlertError { sink: url.to_owned(), reason };
        let url = reqwest::Url::parse(url).map_err(|e| fail(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(fail("the webhook must be an http or https URL".into()));
        }
        let client = reqwest::Client::builder().timeout(timeout).build().map_err(|e| fail(e.to_string()))?;
        Ok(Self { url, client })
    }
}

impl AlertSink for WebhookSink {
    fn deliver<'a>(&'a self, alert: &'a Alert) -> BoxFuture<'a, Result<String, AlertError>> {
        Box::pin(async move {
            let fail = |reason: String| AlertError { sink: self.url.to_string(), reason };
            let response = self.client.post(self.url.clone()).json(alert).send().await.map_err(|e| fail(e.to_string()))?;
            if !response.status().is_success() {
                return Err(fail(format!("answered {}", response.status())));
            }
            Ok(format!("webhook {}", self.url))
        })
    }
}

/// A response on an account could not be carried out.
#[derive(Debug, thiserror::Error)]
#[error("account response failed: {0}")]
pub struct GuardError(pub String);

/// What responses do to accounts.
pub trait AccountGuard: Send + Sync + 'static {
    /// Ends every session of `user`: they must pass MFA again.
    fn reauthenticate(&self, user: UserId) -> BoxFuture<'_, Result<(), GuardError>>;
    /// Locks `user` until an administrator unlocks it with a reason.
    fn suspend(&self, user: UserId, security_event: SecurityEventId) -> BoxFuture<'_, Result<(), GuardError>>;
}

impl AccountGuard for emr_auth::Identity {
    fn reauthenticate(&self, user: UserId) -> BoxFuture<'_, Result<(), GuardError>> {
        Box::pin(async move { self.force_reauthentication(user).await.map_err(|e| GuardError(e.to_string())) })
    }

    fn suspend(&self, user: UserId, security_event: SecurityEventId) -> BoxFuture<'_, Result<(), GuardError>> {
        Box::pin(async move { self.suspend(user, security_event).await.map_err(|e| GuardError(e.to_string())) })
    }
}

/// The sinks and the guard responses act through.
#[derive(Clone)]
pub struct Responders {
    /// Every sink an alert goes to.
    pub sinks: Vec<Arc<dyn AlertSink>>,
    /// Sessions and locks.
    pub guard: Arc<dyn AccountGuard>,
}
