use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::values::{PasswordHash, PractitionerProfile, TotpSecret, Username};
use crate::actor::Role;
use crate::ids::{SecurityEventId, UserId};
use crate::values::ShortText;

/// What may be asked of an account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccountCommand {
    /// Opens an account (by an administrator, or a patient registering themselves).
    Register {
        /// The account's id (a patient's is their patient id).
        user_id: UserId,
        /// Login name, already claimed.
        username: Username,
        /// The role the account acts in.
        role: Role,
        /// Required for physicians and nurses, refused for everyone else.
        profile: Option<PractitionerProfile>,
        /// The argon2id hash of a password that met the policy.
        password_hash: PasswordHash,
        /// The administrator, or none for self-registration.
        registered_by: Option<UserId>,
    },
    /// Replaces the password hash.
    ChangePassword {
        /// The new hash.
        password_hash: PasswordHash,
    },
    /// Starts (or restarts) TOTP enrolment with a fresh secret.
    StartMfaEnrolment {
        /// The new shared secret.
        secret: TotpSecret,
    },
    /// The holder proved they hold the secret: MFA is on.
    ConfirmMfa,
    /// Too many failed logins: refuse logins until `until`.
    Lock {
        /// End of the lockout.
        until: DateTime<Utc>,
        /// Failed attempts that caused it.
        failed_attempts: u32,
    },
    /// Threat detection locks the account until an administrator unlocks it
    /// (a critical security event's response).
    Suspend {
        /// The security event that caused it.
        security_event: SecurityEventId,
    },
    /// An administrator lifts a lockout early; lifting a suspension needs a reason.
    Unlock {
        /// The administrator.
        by: UserId,
        /// Why (required to lift a suspension).
        reason: Option<ShortText>,
    },
    /// An administrator moves a staff account to another staff role (patients'
    /// and the server's accounts keep theirs).
    ChangeRole {
        /// The new role.
        role: Role,
        /// The practitioner profile, required when the account becomes a physician
        /// or nurse and has none; a practitioner's profile is kept when none is given.
        profile: Option<PractitionerProfile>,
        /// The administrator.
        by: UserId,
        /// Why.
        reason: ShortText,
    },
    /// An administrator clears the account's TOTP enrolment (a lost or replaced
    /// device): the holder enrols a new secret at their next sign-in.
    ResetMfa {
        /// The administrator.
        by: UserId,
        /// Why (the identity check made, a ticket number).
        reason: ShortText,
    },
    /// Closes the account for good.
    Deactivate {
        /// The administrator.
        by: UserId,
    },
}
