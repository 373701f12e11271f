//! Security events (the seed's SecurityEvents table) that no other aggregate
//! owns: a replayed refresh token, a replayed TOTP code. Lockouts are account
//! events and break-glass reads are disclosure events; the security-event read
//! model gathers all of them.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::clock::DomainServices;
use crate::decided::write_decided;
use crate::ids::{SecurityEventId, UserId};

/// What was detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityEventKind {
    /// A rotated refresh token was presented again: its whole family is revoked.
    RefreshTokenReused,
    /// A TOTP code was presented a second time.
    TotpCodeReplayed,
}

/// How urgent (the seed's severity column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Investigate.
    Medium,
    /// Act now.
    High,
}

impl SecurityEventKind {
    /// The severity a detection of this kind carries.
    pub fn severity(self) -> Severity {
        match self {
            Self::RefreshTokenReused => Severity::High,
            Self::TotpCodeReplayed => Severity::Medium,
        }
    }
}

/// A security event was already recorded under this id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this security event was already recorded")]
pub struct AlreadyRaised;

/// Raise a security event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Raise {
    /// The event (also the aggregate id).
    pub id: SecurityEventId,
    /// What was detected.
    pub kind: SecurityEventKind,
    /// The account concerned.
    pub user_id: Option<UserId>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SecurityEvent {
    /// A detection.
    SecurityEventRaised {
        /// Its id.
        id: SecurityEventId,
        /// What.
        kind: SecurityEventKind,
        /// How urgent.
        severity: Severity,
        /// Whose account.
        user_id: Option<UserId>,
    },
}

impl DomainEvent for SecurityEvent {
    fn event_type(&self) -> String {
        "SecurityEventRaised".to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// One detection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecurityIncident {
    id: Option<SecurityEventId>,
}

impl SecurityIncident {
    /// The event recording `command`.
    pub fn decide(&self, command: Raise) -> Result<Vec<SecurityEvent>, AlreadyRaised> {
        if self.id.is_some() {
            return Err(AlreadyRaised);
        }
        let Raise { id, kind, user_id } = command;
        Ok(vec![SecurityEvent::SecurityEventRaised { id, kind, severity: kind.severity(), user_id }])
    }
}

impl Aggregate for SecurityIncident {
    const TYPE: &'static str = "security_event";
    type Command = Raise;
    type Event = SecurityEvent;
    type Error = AlreadyRaised;
    type Services = DomainServices;

    async fn handle(&mut self, command: Self::Command, _services: &Self::Services, sink: &EventSink<Self>) -> Result<(), Self::Error> {
        let decided = self.decide(command);
        write_decided(self, decided, sink).await
    }

    fn apply(&mut self, event: Self::Event) {
        let SecurityEvent::SecurityEventRaised { id, .. } = event;
        self.id = Some(id);
    }
}
