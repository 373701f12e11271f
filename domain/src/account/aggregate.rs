use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::commands::AccountCommand;
use super::data_subject;
use super::events::AccountEvent;
use super::values::{PasswordHash, PractitionerProfile, TotpSecret, Username};
use crate::actor::Role;
use crate::clock::DomainServices;
use crate::decided::write_decided;
use crate::ids::{SecurityEventId, UserId};
use crate::phi::Phi;

/// Why an account command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// Register on an existing account.
    #[error("an account with this id already exists")]
    AlreadyRegistered,
    /// Any other command on an unknown account.
    #[error("no account with this id")]
    NotRegistered,
    /// Any command on a closed account.
    #[error("the account is deactivated")]
    Deactivated,
    /// Accounts cannot act as the system.
    #[error("the system role is reserved for the server itself")]
    SystemRoleReserved,
    /// A physician or nurse without licence, department and specialization.
    #[error("physicians and nurses need a practitioner profile")]
    ProfileRequired,
    /// A profile on an account that is not a practitioner's.
    #[error("only physicians and nurses have a practitioner profile")]
    ProfileNotAllowed,
    /// A new enrolment while MFA is on (an administrator must reset it first).
    #[error("MFA is already enabled")]
    MfaAlreadyEnabled,
    /// Confirm without a started enrolment.
    #[error("no MFA enrolment is in progress")]
    NoMfaEnrolment,
    /// A lockout that ends at or before now.
    #[error("a lockout must end in the future")]
    LockNotInFuture,
    /// An administrator unlocking, closing, moving or resetting the MFA of their own account.
    #[error("administrators cannot unlock, close, change the role of or reset the MFA of their own account")]
    SelfAdministration,
    /// Unlock on an account that is not locked.
    #[error("the account is not locked")]
    NotLocked,
    /// Lifting a suspension by threat detection without saying why.
    #[error("lifting a suspension after a security event needs a reason")]
    ReasonRequired,
    /// A role change to or from a role that is not a staff role (a patient's
    /// account is their patient record's; the system role is the server's).
    #[error("only staff accounts change roles, among physician, nurse, administrator, auditor and researcher")]
    RoleNotChangeable,
}

/// The roles an administrator may move a staff account between.
fn is_staff(role: Role) -> bool {
    matches!(role, Role::Physician | Role::Nurse | Role::Admin | Role::Auditor | Role::Researcher)
}

/// Lifecycle of an account.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Nothing yet.
    #[default]
    Absent,
    /// Usable (a lockout is separate and time-bound: see [`Account::locked_at`]).
    Active,
    /// Closed for good.
    Deactivated,
}

/// Where the holder is with TOTP.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MfaState {
    /// Never enrolled.
    #[default]
    NotEnrolled,
    /// A secret was issued but no code confirmed yet.
    Pending(Phi<TotpSecret>),
    /// Required at every login.
    Enabled(Phi<TotpSecret>),
}

/// A user account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    user_id: Option<UserId>,
    username: Option<Username>,
    role: Option<Role>,
    profile: Option<PractitionerProfile>,
    password_hash: Option<Phi<PasswordHash>>,
    mfa: MfaState,
    locked_until: Option<DateTime<Utc>>,
    suspended_by: Option<SecurityEventId>,
    status: AccountStatus,
}

impl Account {
    /// Lifecycle status.
    pub fn status(&self) -> AccountStatus {
        self.status
    }

    /// The account id.
    pub fn user_id(&self) -> Option<UserId> {
        self.user_id
    }

    /// Login name.
    pub fn username(&self) -> Option<&Username> {
        self.username.as_ref()
    }

    /// Role.
    pub fn role(&self) -> Option<Role> {
        self.role
    }

    /// A practitioner's profile.
    pub fn profile(&self) -> Option<&PractitionerProfile> {
        self.profile.as_ref()
    }

    /// The password hash (none once shredded).
    pub fn password_hash(&self) -> Option<&PasswordHash> {
        self.password_hash.as_ref().and_then(Phi::value)
    }

    /// TOTP enrolment.
    pub fn mfa(&self) -> &MfaState {
        &self.mfa
    }

    /// End of the current lockout, if one is in force at `now`.
    pub fn locked_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.suspended_by.is_some() {
            return Some(DateTime::<Utc>::MAX_UTC);
        }
        self.locked_until.filter(|until| now < *until)
    }

    /// The security event that suspended the account, while it is suspended.
    pub fn suspended_by(&self) -> Option<SecurityEventId> {
        self.suspended_by
    }

    fn ensure_active(&self) -> Result<UserId, AccountError> {
        match (self.status, self.user_id) {
            (AccountStatus::Active, Some(id)) => Ok(id),
            (AccountStatus::Deactivated, _) => Err(AccountError::Deactivated),
            _ => Err(AccountError::NotRegistered),
        }
    }

    /// The business rules: which events `command` produces, or why it is refused.
    pub fn decide(&self, command: AccountCommand, now: DateTime<Utc>) -> Result<Vec<AccountEvent>, AccountError> {
        if let AccountCommand::Register { user_id, username, role, profile, password_hash, registered_by } = command {
            if self.status != AccountStatus::Absent {
                return Err(AccountError::AlreadyRegistered);
            }
            let practitioner = matches!(role, Role::Physician | Role::Nurse);
            match (role, practitioner, profile.is_some()) {
                (Role::System, ..) => return Err(AccountError::SystemRoleReserved),
                (_, true, false) => return Err(AccountError::ProfileRequired),
                (_, false, true) => return Err(AccountError::ProfileNotAllowed),
                _ => {}
            }
            return Ok(vec![
                AccountEvent::AccountRegistered { user_id, username, role, profile, registered_by },
                AccountEvent::PasswordSet { hash: Phi::new(data_subject(user_id), password_hash) },
            ]);
        }
        let user_id = self.ensure_active()?;
        match command {
            AccountCommand::Register { .. } => Err(AccountError::AlreadyRegistered),
            AccountCommand::ChangePassword { password_hash } => {
                Ok(vec![AccountEvent::PasswordSet { hash: Phi::new(data_subject(user_id), password_hash) }])
            }
            AccountCommand::StartMfaEnrolment { secret } => {
                if matches!(self.mfa, MfaState::Enabled(_)) {
                    return Err(AccountError::MfaAlreadyEnabled);
                }
                Ok(vec![AccountEvent::MfaEnrolmentStarted { secret: Phi::new(data_subject(user_id), secret) }])
            }
            AccountCommand::ConfirmMfa => match self.mfa {
                MfaState::Pending(_) => Ok(vec![AccountEvent::MfaEnabled]),
                MfaState::Enabled(_) => Ok(vec![]),
                MfaState::NotEnrolled => Err(AccountError::NoMfaEnrolment),
            },
            AccountCommand::Lock { until, failed_attempts } => {
                if until <= now {
                    return Err(AccountError::LockNotInFuture);
                }
                Ok(vec![AccountEvent::AccountLocked { until, failed_attempts }])
            }
            AccountCommand::Suspend { .. } if self.suspended_by.is_some() => Ok(vec![]),
            AccountCommand::Suspend { security_event } => Ok(vec![AccountEvent::AccountSuspended { security_event }]),
            AccountCommand::Unlock { by, .. }
            | AccountCommand::Deactivate { by }
            | AccountCommand::ChangeRole { by, .. }
            | AccountCommand::ResetMfa { by, .. }
                if by == user_id =>
            {
                Err(AccountError::SelfAdministration)
            }
            AccountCommand::Unlock { by, reason } => {
                if self.locked_at(now).is_none() {
                    return Err(AccountError::NotLocked);
                }
                if self.suspended_by.is_some() && reason.is_none() {
                    return Err(AccountError::ReasonRequired);
                }
                Ok(vec![AccountEvent::AccountUnlocked { by, reason }])
            }
            AccountCommand::ChangeRole { role, profile, by, reason } => {
                let from = self.role.ok_or(AccountError::NotRegistered)?;
                if !is_staff(from) || !is_staff(role) {
                    return Err(AccountError::RoleNotChangeable);
                }
                let practitioner = matches!(role, Role::Physician | Role::Nurse);
                let profile = match (practitioner, profile) {
                    (true, Some(profile)) => Some(profile),
                    (true, None) => Some(self.profile.clone().ok_or(AccountError::ProfileRequired)?),
                    (false, Some(_)) => return Err(AccountError::ProfileNotAllowed),
                    (false, None) => None,
                };
                if from == role && profile == self.profile {
                    return Ok(vec![]);
                }
                Ok(vec![AccountEvent::RoleChanged { from, to: role, profile, by, reason }])
            }
            AccountCommand::ResetMfa { by, reason } => match self.mfa {
                MfaState::NotEnrolled => Ok(vec![]),
                MfaState::Pending(_) | MfaState::Enabled(_) => Ok(vec![AccountEvent::MfaReset { by, reason }]),
            },
            AccountCommand::Deactivate { by } => Ok(vec![AccountEvent::AccountDeactivated { by }]),
        }
    }
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;
    type Services = DomainServices;

    async fn handle(&mut self, command: Self::Command, services: &Self::Services, sink: &EventSink<Self>) -> Result<(), Self::Error> {
        let decided = self.decide(command, services.now());
        write_decided(self, decided, sink).await
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            AccountEvent::AccountRegistered { user_id, username, role, profile, .. } => {
                self.user_id = Some(user_id);
                self.username = Some(username);
                self.role = Some(role);
                self.profile = profile;
                self.status = AccountStatus::Active;
            }
            AccountEvent::PasswordSet { hash } => self.password_hash = Some(hash),
            AccountEvent::MfaEnrolmentStarted { secret } => {
                self.mfa = MfaState::Pending(secret);
            }
            AccountEvent::MfaEnabled => {
                if let MfaState::Pending(secret) = std::mem::take(&mut self.mfa) {
                    self.mfa = MfaState::Enabled(secret);
                }
            }
            AccountEvent::AccountLocked { until, .. } => self.locked_until = Some(until),
            AccountEvent::AccountSuspended { security_event } => self.suspended_by = Some(security_event),
            AccountEvent::AccountUnlocked { .. } => {
                self.locked_until = None;
                self.suspended_by = None;
            }
            AccountEvent::RoleChanged { to, profile, .. } => {
                self.role = Some(to);
                self.profile = profile;
            }
            AccountEvent::MfaReset { .. } => self.mfa = MfaState::NotEnrolled,
            AccountEvent::AccountDeactivated { .. } => self.status = AccountStatus::Deactivated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::now;
    use crate::values::ShortText;

    fn registered(user_id: UserId) -> Account {
        let mut account = Account::default();
        account.apply(AccountEvent::AccountRegistered {
            user_id,
            username: Username::parse("an_admin").unwrap(),
            role: Role::Admin,
            profile: None,
            registered_by: None,
        });
        account
    }

    #[test]
    fn an_administrator_cannot_close_or_unlock_their_own_account() {
        let admin = UserId::new();
        let account = registered(admin);
        assert_eq!(account.decide(AccountCommand::Deactivate { by: admin }, now()), Err(AccountError::SelfAdministration));
        assert_eq!(account.decide(AccountCommand::Unlock { by: admin, reason: None }, now()), Err(AccountError::SelfAdministration));
        assert!(account.decide(AccountCommand::Deactivate { by: UserId::new() }, now()).is_ok());
    }

    fn with_role(role: Role, profile: Option<PractitionerProfile>) -> Account {
        let mut account = Account::default();
        account.apply(AccountEvent::AccountRegistered {
            user_id: UserId::new(),
            username: Username::parse("staff_member").unwrap(),
            role,
            profile,
            registered_by: None,
        });
        account
    }

    fn change(role: Role, profile: Option<PractitionerProfile>, by: UserId) -> AccountCommand {
        AccountCommand::ChangeRole { role, profile, by, reason: ShortText::parse("reason", "moved to the audit office").unwrap() }
    }

    #[test]
    fn an_administrator_moves_staff_between_staff_roles_and_a_practitioner_keeps_or_gets_a_profile() {
        let admin = UserId::new();
        let profile = crate::fixtures::practitioner_profile("Li Wei");
        let mut nurse = with_role(Role::Nurse, Some(profile.clone()));
        let to_physician = nurse.decide(change(Role::Physician, None, admin), now()).unwrap();
        assert_eq!(
            to_physician,
            vec![AccountEvent::RoleChanged {
                from: Role::Nurse,
                to: Role::Physician,
                profile: Some(profile.clone()),
                by: admin,
                reason: ShortText::parse("reason", "moved to the audit office").unwrap()
            }],
            "a practitioner keeps their profile"
        );
        to_physician.into_iter().for_each(|event| nurse.apply(event));
        assert_eq!(nurse.role(), Some(Role::Physician));
        for event in nurse.decide(change(Role::Auditor, None, admin), now()).unwrap() {
            nurse.apply(event);
        }
        assert_eq!((nurse.role(), nurse.profile()), (Some(Role::Auditor), None), "an auditor has no practitioner profile");
        assert_eq!(nurse.decide(change(Role::Auditor, None, admin), now()), Ok(vec![]), "no change, no event");
        assert_eq!(nurse.decide(change(Role::Nurse, None, admin), now()), Err(AccountError::ProfileRequired));
        assert_eq!(nurse.decide(change(Role::Admin, Some(profile.clone()), admin), now()), Err(AccountError::ProfileNotAllowed));
        assert!(nurse.decide(change(Role::Nurse, Some(profile), admin), now()).is_ok());
    }

    #[test]
    fn patients_and_the_system_keep_their_roles_and_nobody_changes_their_own() {
        let admin = UserId::new();
        let patient = with_role(Role::Patient, None);
        assert_eq!(patient.decide(change(Role::Admin, None, admin), now()), Err(AccountError::RoleNotChangeable));
        let auditor = with_role(Role::Auditor, None);
        for role in [Role::Patient, Role::System, Role::Hospital] {
            assert_eq!(auditor.decide(change(role, None, admin), now()), Err(AccountError::RoleNotChangeable), "{role:?}");
        }
        let own = auditor.user_id().unwrap();
        assert_eq!(auditor.decide(change(Role::Admin, None, own), now()), Err(AccountError::SelfAdministration));
        assert_eq!(Account::default().decide(change(Role::Admin, None, admin), now()), Err(AccountError::NotRegistered));
    }

    #[test]
    fn a_suspension_holds_until_an_administrator_lifts_it_with_a_reason() {
        let mut account = registered(UserId::new());
        let security_event = SecurityEventId::new();
        for event in account.decide(AccountCommand::Suspend { security_event }, now()).unwrap() {
            account.apply(event);
        }
        assert!(account.locked_at(now() + chrono::Duration::days(3650)).is_some(), "no end date");
        assert_eq!(account.decide(AccountCommand::Suspend { security_event }, now()), Ok(vec![]));
        let admin = UserId::new();
        assert_eq!(account.decide(AccountCommand::Unlock { by: admin, reason: None }, now()), Err(AccountError::ReasonRequired));
        let reason = Some(ShortText::parse("reason", "verified with the user by phone").unwrap());
        for event in account.decide(AccountCommand::Unlock { by: admin, reason }, now()).unwrap() {
            account.apply(event);
        }
        assert_eq!((account.locked_at(now()), account.suspended_by()), (None, None));
    }

    #[test]
    fn an_mfa_reset_clears_the_enrolment_so_the_holder_enrols_a_new_secret() {
        let mut account = registered(UserId::new());
        let admin = UserId::new();
        let reason = ShortText::parse("reason", "phone lost; identity checked at the desk").unwrap();
        let reset = AccountCommand::ResetMfa { by: admin, reason: reason.clone() };
        assert_eq!(account.decide(reset.clone(), now()), Ok(vec![]), "nothing enrolled, nothing to reset");
        let secret = TotpSecret::parse("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap();
        for command in [AccountCommand::StartMfaEnrolment { secret: secret.clone() }, AccountCommand::ConfirmMfa] {
            for event in account.decide(command, now()).unwrap() {
                account.apply(event);
            }
        }
        assert!(matches!(account.mfa(), MfaState::Enabled(_)));
        let events = account.decide(reset.clone(), now()).unwrap();
        assert_eq!(events, vec![AccountEvent::MfaReset { by: admin, reason }]);
        events.into_iter().for_each(|event| account.apply(event));
        assert_eq!(account.mfa(), &MfaState::NotEnrolled);
        assert!(account.decide(AccountCommand::StartMfaEnrolment { secret }, now()).is_ok(), "enrolment starts again");
        let own = account.user_id().unwrap();
        let by_self = AccountCommand::ResetMfa { by: own, reason: ShortText::parse("reason", "mine").unwrap() };
        assert_eq!(account.decide(by_self, now()), Err(AccountError::SelfAdministration));
    }

    #[test]
    fn practitioners_need_a_profile_and_nobody_registers_as_the_system() {
        let hash = PasswordHash::parse("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").unwrap();
        let register = |role, profile| AccountCommand::Register {
            user_id: UserId::new(),
            username: Username::parse("someone").unwrap(),
            role,
            profile,
            password_hash: hash.clone(),
            registered_by: None,
        };
        let fresh = Account::default();
        assert_eq!(fresh.decide(register(Role::Physician, None), now()), Err(AccountError::ProfileRequired));
        assert_eq!(fresh.decide(register(Role::System, None), now()), Err(AccountError::SystemRoleReserved));
        assert_eq!(fresh.decide(register(Role::Patient, None), now()).map(|events| events.len()), Ok(2));
    }
}
