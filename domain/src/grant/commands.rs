use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::events::Scope;
use crate::ids::{GrantId, PatientId, UserId};
use crate::values::ShortText;

/// What may be asked of an access grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GrantCommand {
    /// The patient (or their delegate) grants access directly.
    Grant {
        /// The grant's id (also the aggregate id).
        grant_id: GrantId,
        /// Whose records.
        patient_id: PatientId,
        /// Who may access them.
        grantee: UserId,
        /// What they may do.
        scopes: BTreeSet<Scope>,
        /// Until when.
        expires_at: DateTime<Utc>,
        /// Who grants (the patient's user or a delegate).
        granted_by: UserId,
        /// Why.
        reason: ShortText,
    },
    /// A practitioner asks for access.
    Request {
        /// The request's id (also the aggregate id).
        grant_id: GrantId,
        /// Whose records.
        patient_id: PatientId,
        /// Who asks.
        requester: UserId,
        /// What they want to do.
        scopes: BTreeSet<Scope>,
        /// Until when they want it.
        requested_until: DateTime<Utc>,
        /// Why.
        reason: ShortText,
    },
    /// The patient approves a pending request.
    Approve {
        /// Who approves.
        approved_by: UserId,
        /// Until when (may be sooner than requested).
        expires_at: DateTime<Utc>,
    },
    /// The patient denies a pending request.
    Deny {
        /// Who denies.
        denied_by: UserId,
        /// Why.
        reason: ShortText,
    },
    /// The patient withdraws an active grant.
    Revoke {
        /// Who revokes.
        revoked_by: UserId,
        /// Why.
        reason: ShortText,
    },
}

impl GrantCommand {
    /// The command's name, as metrics and logs label it (never its content).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Grant { .. } => "grant_access",
            Self::Request { .. } => "request_access",
            Self::Approve { .. } => "approve_request",
            Self::Deny { .. } => "deny_request",
            Self::Revoke { .. } => "revoke_grant",
        }
    }
}
