//! Security events (the seed's SecurityEvents table): detections of attacks on
//! credentials and of misuse of access, and what security officers did about
//! them. Each security event is an aggregate: raised once, with its evidence (the
//! log events that triggered it) and the subject's risk score; then the responses
//! taken automatically and the officer's triage (acknowledge → assign and
//! investigate → resolve with an outcome, which feeds the measured precision).
//!
//! Two kinds are raised where they are certain, by the identity service (a
//! replayed refresh token, a replayed TOTP code); every other kind is inferred by
//! the detector ([`crate::detection`]) from the event stream.

use std::net::IpAddr;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::clock::DomainServices;
use crate::decided::write_decided;
use crate::ids::{EventId, PatientId, SecurityEventId, UserId};

/// What was detected.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityEventKind {
    /// A rotated refresh token was presented again: its whole family is revoked.
    RefreshTokenReused,
    /// A TOTP code was presented a second time.
    TotpCodeReplayed,
    /// Many failed passwords on one account.
    BruteForce,
    /// Failed passwords on many accounts from one address (spraying, or credential
    /// stuffing when one of them then succeeds).
    PasswordSpraying,
    /// A burst of refused accesses by one user.
    AccessDeniedBurst,
    /// A break-glass read (every one is reviewed).
    BreakGlassUse,
    /// Reads at hours the user never works.
    OffHoursAccess,
    /// Far more distinct patients read in a day than the user's own baseline.
    UnusualPatientVolume,
    /// A read of a patient with whom the reader and their department have no
    /// recent encounter or grant.
    NoCareRelationship,
    /// Far more attachments downloaded in an hour than the user's own baseline.
    BulkDownload,
    /// One user's sessions used from two distant networks at once.
    DistantSessions,
    /// An administrator changed what an account may do or how it proves who it
    /// is (a role change, an MFA reset): changes of access that security
    /// officers review.
    AccountSecurityChange,
}

impl SecurityEventKind {
    /// Every kind, in declaration order.
    pub const ALL: [Self; 12] = [
        Self::RefreshTokenReused,
        Self::TotpCodeReplayed,
        Self::BruteForce,
        Self::PasswordSpraying,
        Self::AccessDeniedBurst,
        Self::BreakGlassUse,
        Self::OffHoursAccess,
        Self::UnusualPatientVolume,
        Self::NoCareRelationship,
        Self::BulkDownload,
        Self::DistantSessions,
        Self::AccountSecurityChange,
    ];

    /// Raised by the identity service at the moment it is certain, not inferred
    /// by the detector.
    pub fn raised_at_source(self) -> bool {
        matches!(self, Self::RefreshTokenReused | Self::TotpCodeReplayed)
    }

    /// The severity of a kind raised at source.
    pub fn severity(self) -> Severity {
        match self {
            Self::TotpCodeReplayed
            | Self::AccessDeniedBurst
            | Self::BreakGlassUse
            | Self::NoCareRelationship
            | Self::AccountSecurityChange => Severity::Medium,
            Self::OffHoursAccess => Severity::Low,
            _ => Severity::High,
        }
    }

    /// The snake-case name (as in the API and the read model).
    pub fn name(self) -> &'static str {
        match self {
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::TotpCodeReplayed => "totp_code_replayed",
            Self::BruteForce => "brute_force",
            Self::PasswordSpraying => "password_spraying",
            Self::AccessDeniedBurst => "access_denied_burst",
            Self::BreakGlassUse => "break_glass_use",
            Self::OffHoursAccess => "off_hours_access",
            Self::UnusualPatientVolume => "unusual_patient_volume",
            Self::NoCareRelationship => "no_care_relationship",
            Self::BulkDownload => "bulk_download",
            Self::DistantSessions => "distant_sessions",
            Self::AccountSecurityChange => "account_security_change",
        }
    }
}

/// How urgent (the seed's severity column).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Investigate.
    Medium,
    /// Act now.
    High,
    /// An attack that succeeded: contain at once.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Self; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];

    /// The snake-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// One log event a detection rests on: where to find it, and which it is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Evidence {
    /// The position of its commit in the log.
    pub position: u64,
    /// The event.
    pub event_id: EventId,
}

/// An automatic response to a security event (configured per severity).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// Deliver an alert to the configured sinks (webhook, log).
    Alert,
    /// Revoke the user's sessions, so they must pass MFA again.
    Reauthenticate,
    /// Lock the account until an administrator unlocks it (critical only).
    LockAccount,
}

/// How an investigation ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A real attack or misuse.
    TruePositive,
    /// The rule fired on legitimate work.
    FalsePositive,
}

/// Where a security event stands in triage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum TriageStatus {
    /// Not raised yet.
    #[default]
    Absent,
    /// Raised, nobody has looked.
    Open,
    /// An officer has seen it.
    Acknowledged,
    /// Assigned to an officer who investigates.
    Investigating {
        /// The investigator.
        assignee: UserId,
    },
    /// Closed.
    Resolved {
        /// True or false positive.
        outcome: Outcome,
    },
}

/// Why a security-event command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    /// The id was raised before.
    #[error("this security event was already raised")]
    AlreadyRaised,
    /// Triage or a response on an event never raised.
    #[error("no such security event")]
    NotRaised,
    /// The event was resolved with another outcome; resolutions are final.
    #[error("this security event was already resolved as {0:?}")]
    AlreadyResolved(Outcome),
}

/// A detection, as raised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Raise {
    /// The event (also the aggregate id).
    pub id: SecurityEventId,
    /// What was detected.
    pub kind: SecurityEventKind,
    /// How urgent.
    pub severity: Severity,
    /// The account concerned.
    pub user_id: Option<UserId>,
    /// The patient concerned, if one.
    pub patient_id: Option<PatientId>,
    /// The client address concerned, if one.
    pub client: Option<IpAddr>,
    /// The user's risk score (0–100) with this detection counted.
    pub risk_score: f64,
    /// The log events it rests on.
    pub evidence: Vec<Evidence>,
    /// What the rule saw, in one line, without PHI.
    pub summary: String,
}

/// A security-event command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SecurityCommand {
    /// Record a detection.
    Raise(Raise),
    /// An automatic response was carried out.
    RecordResponse {
        /// Which.
        response: Response,
        /// Where it went (sink, sessions revoked, lock).
        detail: String,
    },
    /// An officer has seen it.
    Acknowledge {
        /// The officer.
        by: UserId,
    },
    /// An officer takes or hands out the investigation.
    Assign {
        /// Who assigns.
        by: UserId,
        /// The investigator.
        to: UserId,
    },
    /// The investigation ends.
    Resolve {
        /// Who resolves.
        by: UserId,
        /// True or false positive.
        outcome: Outcome,
    },
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SecurityEvent {
    /// A detection. The fields after `user_id` came with the detector; events
    /// raised before it carry their defaults.
    SecurityEventRaised {
        /// Its id.
        id: SecurityEventId,
        /// What.
        kind: SecurityEventKind,
        /// How urgent.
        severity: Severity,
        /// Whose account.
        user_id: Option<UserId>,
        /// Which patient.
        #[serde(default)]
        patient_id: Option<PatientId>,
        /// Which client address.
        #[serde(default)]
        client: Option<IpAddr>,
        /// The user's risk score with this detection.
        #[serde(default)]
        risk_score: f64,
        /// The events it rests on.
        #[serde(default)]
        evidence: Vec<Evidence>,
        /// One line, no PHI.
        #[serde(default)]
        summary: String,
    },
    /// An automatic response was carried out.
    SecurityResponseTaken {
        /// The security event.
        id: SecurityEventId,
        /// Which response.
        response: Response,
        /// Where it went.
        detail: String,
    },
    /// An officer has seen it.
    SecurityEventAcknowledged {
        /// The security event.
        id: SecurityEventId,
        /// The officer.
        by: UserId,
    },
    /// An investigator was assigned.
    SecurityEventAssigned {
        /// The security event.
        id: SecurityEventId,
        /// Who assigned.
        by: UserId,
        /// The investigator.
        to: UserId,
    },
    /// The investigation ended.
    SecurityEventResolved {
        /// The security event.
        id: SecurityEventId,
        /// Who resolved it.
        by: UserId,
        /// True or false positive.
        outcome: Outcome,
    },
}

impl DomainEvent for SecurityEvent {
    fn event_type(&self) -> String {
        match self {
            Self::SecurityEventRaised { .. } => "SecurityEventRaised",
            Self::SecurityResponseTaken { .. } => "SecurityResponseTaken",
            Self::SecurityEventAcknowledged { .. } => "SecurityEventAcknowledged",
            Self::SecurityEventAssigned { .. } => "SecurityEventAssigned",
            Self::SecurityEventResolved { .. } => "SecurityEventResolved",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// One security event and its triage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecurityIncident {
    id: Option<SecurityEventId>,
    severity: Option<Severity>,
    user_id: Option<UserId>,
    status: TriageStatus,
    responses: Vec<Response>,
}

impl SecurityIncident {
    /// Where it stands.
    pub fn status(&self) -> TriageStatus {
        self.status
    }

    /// Its severity, once raised.
    pub fn severity(&self) -> Option<Severity> {
        self.severity
    }

    /// The account concerned.
    pub fn user_id(&self) -> Option<UserId> {
        self.user_id
    }

    /// Whether `response` was carried out already.
    pub fn responded(&self, response: Response) -> bool {
        self.responses.contains(&response)
    }

    /// The events `command` produces. Repeating a triage step that already holds
    /// produces nothing, so an officer's retry is harmless.
    pub fn decide(&self, command: SecurityCommand) -> Result<Vec<SecurityEvent>, SecurityError> {
        let id = match (&command, self.id) {
            (SecurityCommand::Raise(_), Some(_)) => return Err(SecurityError::AlreadyRaised),
            (SecurityCommand::Raise(raise), None) => raise.id,
            (_, None) => return Err(SecurityError::NotRaised),
            (_, Some(id)) => id,
        };
        if let TriageStatus::Resolved { outcome: resolved } = self.status {
            return match command {
                SecurityCommand::Resolve { outcome, .. } if outcome == resolved => Ok(vec![]),
                SecurityCommand::Acknowledge { .. } | SecurityCommand::Assign { .. } | SecurityCommand::Resolve { .. } => {
                    Err(SecurityError::AlreadyResolved(resolved))
                }
                SecurityCommand::RecordResponse { response, .. } if self.responded(response) => Ok(vec![]),
                SecurityCommand::RecordResponse { response, detail } => {
                    Ok(vec![SecurityEvent::SecurityResponseTaken { id, response, detail }])
                }
                SecurityCommand::Raise(_) => Err(SecurityError::AlreadyRaised),
            };
        }
        let event = match command {
            SecurityCommand::Raise(Raise { id, kind, severity, user_id, patient_id, client, risk_score, evidence, summary }) => {
                SecurityEvent::SecurityEventRaised { id, kind, severity, user_id, patient_id, client, risk_score, evidence, summary }
            }
            SecurityCommand::RecordResponse { response, .. } if self.responded(response) => return Ok(vec![]),
            SecurityCommand::RecordResponse { response, detail } => SecurityEvent::SecurityResponseTaken { id, response, detail },
            SecurityCommand::Acknowledge { .. } if self.status != TriageStatus::Open => return Ok(vec![]),
            SecurityCommand::Acknowledge { by } => SecurityEvent::SecurityEventAcknowledged { id, by },
            SecurityCommand::Assign { to, .. } if self.status == (TriageStatus::Investigating { assignee: to }) => return Ok(vec![]),
            SecurityCommand::Assign { by, to } => SecurityEvent::SecurityEventAssigned { id, by, to },
            SecurityCommand::Resolve { by, outcome } => SecurityEvent::SecurityEventResolved { id, by, outcome },
        };
        Ok(vec![event])
    }
}

impl Aggregate for SecurityIncident {
    const TYPE: &'static str = "security_event";
    type Command = SecurityCommand;
    type Event = SecurityEvent;
    type Error = SecurityError;
    type Services = DomainServices;

    async fn handle(&mut self, command: Self::Command, _services: &Self::Services, sink: &EventSink<Self>) -> Result<(), Self::Error> {
        let decided = self.decide(command);
        write_decided(self, decided, sink).await
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            SecurityEvent::SecurityEventRaised { id, severity, user_id, .. } => {
                self.id = Some(id);
                self.severity = Some(severity);
                self.user_id = user_id;
                self.status = TriageStatus::Open;
            }
            SecurityEvent::SecurityResponseTaken { response, .. } => self.responses.push(response),
            SecurityEvent::SecurityEventAcknowledged { .. } => self.status = TriageStatus::Acknowledged,
            SecurityEvent::SecurityEventAssigned { to, .. } => self.status = TriageStatus::Investigating { assignee: to },
            SecurityEvent::SecurityEventResolved { outcome, .. } => self.status = TriageStatus::Resolved { outcome },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raised() -> (SecurityIncident, SecurityEventId) {
        let id = SecurityEventId::new();
        let raise = Raise {
            id,
            kind: SecurityEventKind::BruteForce,
            severity: Severity::High,
            user_id: Some(UserId::new()),
            patient_id: None,
            client: None,
            risk_score: 40.0,
            evidence: vec![],
            summary: "5 failed passwords in 10 min".into(),
        };
        let mut incident = SecurityIncident::default();
        run(&mut incident, SecurityCommand::Raise(raise)).unwrap();
        (incident, id)
    }

    fn run(incident: &mut SecurityIncident, command: SecurityCommand) -> Result<usize, SecurityError> {
        let events = incident.decide(command)?;
        let produced = events.len();
        events.into_iter().for_each(|event| incident.apply(event));
        Ok(produced)
    }

    #[test]
    fn triage_runs_from_open_through_investigation_to_an_outcome() {
        let (mut incident, _) = raised();
        let (officer, investigator) = (UserId::new(), UserId::new());
        assert_eq!(incident.status(), TriageStatus::Open);
        run(&mut incident, SecurityCommand::Acknowledge { by: officer }).unwrap();
        assert_eq!(incident.status(), TriageStatus::Acknowledged);
        run(&mut incident, SecurityCommand::Assign { by: officer, to: investigator }).unwrap();
        assert_eq!(incident.status(), TriageStatus::Investigating { assignee: investigator });
        run(&mut incident, SecurityCommand::Resolve { by: investigator, outcome: Outcome::TruePositive }).unwrap();
        assert_eq!(incident.status(), TriageStatus::Resolved { outcome: Outcome::TruePositive });
    }

    #[test]
    fn a_repeated_triage_step_changes_nothing_and_a_resolution_is_final() {
        let (mut incident, _) = raised();
        let officer = UserId::new();
        assert_eq!(run(&mut incident, SecurityCommand::Acknowledge { by: officer }), Ok(1));
        assert_eq!(run(&mut incident, SecurityCommand::Acknowledge { by: officer }), Ok(0));
        assert_eq!(run(&mut incident, SecurityCommand::Resolve { by: officer, outcome: Outcome::FalsePositive }), Ok(1));
        assert_eq!(run(&mut incident, SecurityCommand::Resolve { by: officer, outcome: Outcome::FalsePositive }), Ok(0));
        assert_eq!(
            run(&mut incident, SecurityCommand::Resolve { by: officer, outcome: Outcome::TruePositive }),
            Err(SecurityError::AlreadyResolved(Outcome::FalsePositive))
        );
        assert_eq!(
            run(&mut incident, SecurityCommand::Assign { by: officer, to: officer }),
            Err(SecurityError::AlreadyResolved(Outcome::FalsePositive))
        );
    }

    #[test]
    fn each_response_is_recorded_once_and_only_on_a_raised_event() {
        let (mut incident, _) = raised();
        let lock = || SecurityCommand::RecordResponse { response: Response::LockAccount, detail: "locked".into() };
        assert_eq!(run(&mut incident, lock()), Ok(1));
        assert_eq!(run(&mut incident, lock()), Ok(0));
        assert!(incident.responded(Response::LockAccount));
        assert_eq!(SecurityIncident::default().decide(lock()), Err(SecurityError::NotRaised));
    }

    #[test]
    fn an_event_raised_before_the_detector_existed_still_reads() {
        let id = SecurityEventId::new();
        let old = serde_json::json!({"type": "SecurityEventRaised", "data": {"id": id, "kind": "refresh_token_reused", "severity": "high", "user_id": null}});
        let event: SecurityEvent = serde_json::from_value(old).unwrap();
        let SecurityEvent::SecurityEventRaised { evidence, risk_score, .. } = event else { panic!("{event:?}") };
        assert!(evidence.is_empty());
        assert_eq!(risk_score, 0.0);
    }

    #[test]
    fn kind_names_match_their_serialized_form() {
        for kind in SecurityEventKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
        }
        for severity in Severity::ALL {
            assert_eq!(serde_json::to_value(severity).unwrap(), severity.name());
        }
    }
}
