//! Threat detection (seed 5.3: collect → analyse → detect): a pure, deterministic
//! fold of what happened into detections.
//!
//! The detection worker turns each log event into an [`Observation`] and hands it
//! to a [`Detector`]; the detector keeps sliding windows, per-user baselines, care
//! relationships and risk scores, and returns the detections the observation
//! completes, each as the [`crate::security::Raise`] command of its security
//! event. Time is the events' own time, never the wall clock, so a replay of the
//! same log yields the same detections with the same ids: a worker that crashes
//! and re-reads part of the log raises nothing twice.
//!
//! The rules and their settings are in [`DetectionSettings`]; each rule is
//! documented on its settings field.

mod detector;
mod network;
mod risk;
mod settings;

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::access::Basis;
use crate::actor::{Actor, Role};
use crate::authentication::SignInOutcome;
use crate::disclosure::Resource;
use crate::ids::{PatientId, SecurityEventId, SessionId, UserId};
use crate::security::{Evidence, SecurityEventKind, Severity};
use crate::values::Sha256Digest;

pub use detector::{Detector, DetectorState};
pub use network::Network;
pub use risk::RiskScore;
pub use settings::{
    AccountChangesRule, BaselineRule, BreakGlassRule, CareRelationshipRule, CountRule, DetectionSettings, DistantSessionsRule,
    OffHoursRule, RiskSettings,
};

/// One fact the detector learns from, with when it happened and where it is in
/// the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// When the event was recorded.
    pub at: DateTime<Utc>,
    /// The event itself, as evidence.
    pub evidence: Evidence,
    /// What it says.
    pub observed: Observed,
}

/// What an event says, as far as detection cares.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// A password step.
    SignIn {
        /// The account, when the username named one.
        user: Option<UserId>,
        /// Digest of the username typed.
        account: Sha256Digest,
        /// From where.
        client: Option<IpAddr>,
        /// How it ended.
        outcome: SignInOutcome,
    },
    /// A session was opened or refreshed.
    SessionUse {
        /// Which session.
        session: SessionId,
        /// Whose.
        user: UserId,
        /// From where.
        client: Option<IpAddr>,
    },
    /// An access was refused.
    Denied {
        /// Who was refused.
        actor: Actor,
        /// Whose data.
        patient: Option<PatientId>,
    },
    /// PHI was read.
    Read {
        /// Who read.
        reader: Actor,
        /// Whose.
        patient: PatientId,
        /// What.
        resource: Resource,
        /// On what basis.
        basis: Basis,
    },
    /// A break-glass read began.
    BreakGlass {
        /// Who broke the glass.
        reader: Actor,
        /// Whose record.
        patient: PatientId,
    },
    /// An account was opened (practitioners carry their department).
    AccountOpened {
        /// The account.
        user: UserId,
        /// Its role.
        role: Role,
        /// A practitioner's department.
        department: Option<String>,
    },
    /// A practitioner wrote a record for a patient: an encounter.
    Encounter {
        /// The author.
        author: UserId,
        /// The patient.
        patient: PatientId,
    },
    /// A patient granted a practitioner access.
    Granted {
        /// The practitioner.
        grantee: UserId,
        /// The patient.
        patient: PatientId,
    },
    /// An administrator changed an account's access.
    AccountChanged {
        /// The account.
        user: UserId,
        /// The administrator.
        by: UserId,
        /// What changed.
        change: AccountChange,
    },
    /// A security event raised at its source (not by the detector), which
    /// counts toward the user's risk score.
    RaisedAtSource {
        /// Whose account.
        user: Option<UserId>,
        /// How urgent.
        severity: Severity,
    },
}

/// What an administrator changed about an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChange {
    /// It moved from one role to another.
    Role {
        /// Its role before.
        from: Role,
        /// Its role now.
        to: Role,
    },
    /// Its MFA enrolment was cleared.
    MfaReset,
}

/// The deterministic id of a detection of `kind` completed by the event
/// `trigger`: the same log gives the same ids, so a replayed detection is raised
/// once.
pub fn detection_id(kind: SecurityEventKind, trigger: &Evidence) -> SecurityEventId {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6d1e_7ec7_0000_4000_8000_e3e0_1ed9_e700);
    SecurityEventId::from(uuid::Uuid::new_v5(&NAMESPACE, format!("{}:{}", kind.name(), trigger.event_id).as_bytes()))
}
