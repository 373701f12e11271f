use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::ids::{GrantId, PatientId, UserId};
use crate::phi::Phi;
use crate::values::ShortText;

/// What a grant permits.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read records.
    Read,
    /// Create and amend records.
    Write,
    /// Share records onward (e.g. referral to another hospital).
    Share,
    /// Act for the patient (a guardian, a relative): read their records and
    /// manage their grants. Only patient accounts can hold it.
    Delegate,
}

/// What happened to an access grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum GrantEvent {
    /// A practitioner asked for access.
    AccessRequested {
        /// The request.
        grant_id: GrantId,
        /// Whose records.
        patient_id: PatientId,
        /// Who asks.
        requester: UserId,
        /// Requested scopes.
        scopes: BTreeSet<Scope>,
        /// Requested expiry.
        requested_until: DateTime<Utc>,
        /// Why (PHI).
        reason: Phi<ShortText>,
    },
    /// Access was granted, directly or by approving a request.
    AccessGranted {
        /// The grant.
        grant_id: GrantId,
        /// Whose records.
        patient_id: PatientId,
        /// Who may access them.
        grantee: UserId,
        /// Granted scopes.
        scopes: BTreeSet<Scope>,
        /// Expiry.
        expires_at: DateTime<Utc>,
        /// Who granted.
        granted_by: UserId,
        /// Why (PHI; for an approval, the request's reason).
        reason: Phi<ShortText>,
    },
    /// A request was denied.
    AccessDenied {
        /// Who denied.
        denied_by: UserId,
        /// Why (PHI).
        reason: Phi<ShortText>,
    },
    /// An active grant was revoked.
    AccessRevoked {
        /// Who revoked.
        revoked_by: UserId,
        /// Why (PHI).
        reason: Phi<ShortText>,
    },
}

impl DomainEvent for GrantEvent {
    fn event_type(&self) -> String {
        match self {
            Self::AccessRequested { .. } => "AccessRequested",
            Self::AccessGranted { .. } => "AccessGranted",
            Self::AccessDenied { .. } => "AccessDenied",
            Self::AccessRevoked { .. } => "AccessRevoked",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
