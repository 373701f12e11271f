use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use super::values::{PasswordHash, PractitionerProfile, TotpSecret, Username};
use crate::actor::Role;
use crate::ids::{SecurityEventId, UserId};
use crate::phi::Phi;
use crate::values::ShortText;

/// What happened to an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum AccountEvent {
    /// An account was opened.
    AccountRegistered {
        /// The account.
        user_id: UserId,
        /// Its login name.
        username: Username,
        /// Its role.
        role: Role,
        /// A practitioner's licence, department and specialization.
        profile: Option<PractitionerProfile>,
        /// The administrator, or none for self-registration.
        registered_by: Option<UserId>,
    },
    /// A password hash was set (sealed).
    PasswordSet {
        /// argon2id PHC string.
        hash: Phi<PasswordHash>,
    },
    /// TOTP enrolment began; the secret is sealed.
    MfaEnrolmentStarted {
        /// The shared secret.
        secret: Phi<TotpSecret>,
    },
    /// The holder confirmed a code: MFA is required from now on.
    MfaEnabled,
    /// Logins are refused until `until`.
    AccountLocked {
        /// End of the lockout.
        until: DateTime<Utc>,
        /// Failed attempts that caused it.
        failed_attempts: u32,
    },
    /// Threat detection locked the account until an administrator unlocks it.
    AccountSuspended {
        /// The security event that caused it.
        security_event: SecurityEventId,
    },
    /// A lockout or suspension was lifted.
    AccountUnlocked {
        /// The administrator.
        by: UserId,
        /// Why (absent on unlocks recorded before suspensions existed).
        #[serde(default)]
        reason: Option<ShortText>,
    },
    /// The account moved to another role; its sessions end with it.
    RoleChanged {
        /// The role it had.
        from: Role,
        /// The role it has now.
        to: Role,
        /// Its practitioner profile from now on (none outside physicians and nurses).
        profile: Option<PractitionerProfile>,
        /// The administrator.
        by: UserId,
        /// Why.
        reason: ShortText,
    },
    /// The TOTP enrolment was cleared; the holder must enrol again to sign in.
    MfaReset {
        /// The administrator.
        by: UserId,
        /// Why.
        reason: ShortText,
    },
    /// The account was closed.
    AccountDeactivated {
        /// The administrator.
        by: UserId,
    },
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> String {
        match self {
            Self::AccountRegistered { .. } => "AccountRegistered",
            Self::PasswordSet { .. } => "PasswordSet",
            Self::MfaEnrolmentStarted { .. } => "MfaEnrolmentStarted",
            Self::MfaEnabled => "MfaEnabled",
            Self::AccountLocked { .. } => "AccountLocked",
            Self::AccountSuspended { .. } => "AccountSuspended",
            Self::AccountUnlocked { .. } => "AccountUnlocked",
            Self::RoleChanged { .. } => "RoleChanged",
            Self::MfaReset { .. } => "MfaReset",
            Self::AccountDeactivated { .. } => "AccountDeactivated",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
