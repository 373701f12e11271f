use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::commands::GrantCommand;
use super::events::{GrantEvent, Scope};
use crate::clock::DomainServices;
use crate::decided::write_decided;
use crate::ids::{GrantId, PatientId, UserId};
use crate::phi::Phi;

/// Why a grant command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// Grant or Request on an existing grant id.
    #[error("a grant or request with this id already exists")]
    AlreadyExists,
    /// Any other command on an unknown grant id.
    #[error("no grant or request with this id")]
    NotFound,
    /// Approve or Deny on something that is not a pending request.
    #[error("the request is not pending")]
    NotPending,
    /// Revoke on a grant that is not active.
    #[error("the grant is not active")]
    NotActive,
    /// An empty scope set.
    #[error("at least one scope is required")]
    NoScopes,
    /// An expiry at or before now.
    #[error("the expiry must lie in the future")]
    ExpiryNotInFuture,
    /// An expiry beyond the policy's longest grant.
    #[error("grants may last at most 366 days")]
    ExpiryTooFar,
    /// Granting access to oneself.
    #[error("the grantee must differ from the grantor")]
    SelfGrant,
}

/// Lifecycle of a grant. Expiry is not a status: it is checked against the clock.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    /// Nothing yet.
    #[default]
    Absent,
    /// A request awaiting the patient.
    Requested,
    /// Granted (authorizes until its expiry).
    Active,
    /// The request was denied.
    Denied,
    /// The grant was revoked.
    Revoked,
}

/// An access grant or request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccessGrant {
    grant_id: Option<GrantId>,
    patient_id: Option<PatientId>,
    grantee: Option<UserId>,
    scopes: BTreeSet<Scope>,
    expires_at: Option<DateTime<Utc>>,
    reason: Option<Phi<crate::values::ShortText>>,
    status: GrantStatus,
}

impl AccessGrant {
    /// Longest grant the policy allows.
    pub const MAX_DURATION_DAYS: i64 = 366;

    /// Lifecycle status (an active grant may still have expired: see [`Self::authorizes`]).
    pub fn status(&self) -> GrantStatus {
        self.status
    }

    /// Whose records.
    pub fn patient_id(&self) -> Option<PatientId> {
        self.patient_id
    }

    /// Granted (or requested) scopes.
    pub fn scopes(&self) -> &BTreeSet<Scope> {
        &self.scopes
    }

    /// Who may access them.
    pub fn grantee(&self) -> Option<UserId> {
        self.grantee
    }

    /// Expiry of an active grant or requested expiry of a request.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at
    }

    /// True when this grant lets `user` do `scope` at `now`: active, unexpired, for
    /// that user and that scope.
    pub fn authorizes(&self, user: UserId, scope: Scope, now: DateTime<Utc>) -> bool {
        self.status == GrantStatus::Active
            && self.grantee == Some(user)
            && self.scopes.contains(&scope)
            && self.expires_at.is_some_and(|expiry| now < expiry)
    }

    fn check_terms(scopes: &BTreeSet<Scope>, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), GrantError> {
        if scopes.is_empty() {
            return Err(GrantError::NoScopes);
        }
        if expires_at <= now {
            return Err(GrantError::ExpiryNotInFuture);
        }
        if expires_at > now + Duration::days(Self::MAX_DURATION_DAYS) {
            return Err(GrantError::ExpiryTooFar);
        }
        Ok(())
    }

    fn subject(&self) -> Result<PatientId, GrantError> {
        self.patient_id.ok_or(GrantError::NotFound)
    }

    /// The business rules: which events `command` produces, or why it is refused.
    pub fn decide(&self, command: GrantCommand, now: DateTime<Utc>) -> Result<Vec<GrantEvent>, GrantError> {
        let absent = self.status == GrantStatus::Absent;
        match command {
            GrantCommand::Grant { grant_id, patient_id, grantee, scopes, expires_at, granted_by, reason } => {
                if !absent {
                    return Err(GrantError::AlreadyExists);
                }
                if grantee == granted_by {
                    return Err(GrantError::SelfGrant);
                }
                Self::check_terms(&scopes, expires_at, now)?;
                Ok(vec![GrantEvent::AccessGranted {
                    grant_id,
                    patient_id,
                    grantee,
                    scopes,
                    expires_at,
                    granted_by,
                    reason: Phi::new(patient_id, reason),
                }])
            }
            GrantCommand::Request { grant_id, patient_id, requester, scopes, requested_until, reason } => {
                if !absent {
                    return Err(GrantError::AlreadyExists);
                }
                Self::check_terms(&scopes, requested_until, now)?;
                Ok(vec![GrantEvent::AccessRequested {
                    grant_id,
                    patient_id,
                    requester,
                    scopes,
                    requested_until,
                    reason: Phi::new(patient_id, reason),
                }])
            }
            GrantCommand::Approve { approved_by, expires_at } => {
                self.ensure_pending()?;
                let (grant_id, patient_id, grantee) = self.identity()?;
                if grantee == approved_by {
                    return Err(GrantError::SelfGrant);
                }
                Self::check_terms(&self.scopes, expires_at, now)?;
                let reason = self.reason.clone().ok_or(GrantError::NotFound)?;
                Ok(vec![GrantEvent::AccessGranted {
                    grant_id,
                    patient_id,
                    grantee,
                    scopes: self.scopes.clone(),
                    expires_at,
                    granted_by: approved_by,
                    reason,
                }])
            }
            GrantCommand::Deny { denied_by, reason } => {
                self.ensure_pending()?;
                Ok(vec![GrantEvent::AccessDenied { denied_by, reason: Phi::new(self.subject()?, reason) }])
            }
            GrantCommand::Revoke { revoked_by, reason } => match self.status {
                GrantStatus::Absent => Err(GrantError::NotFound),
                GrantStatus::Active => Ok(vec![GrantEvent::AccessRevoked { revoked_by, reason: Phi::new(self.subject()?, reason) }]),
                _ => Err(GrantError::NotActive),
            },
        }
    }

    fn ensure_pending(&self) -> Result<(), GrantError> {
        match self.status {
            GrantStatus::Absent => Err(GrantError::NotFound),
            GrantStatus::Requested => Ok(()),
            _ => Err(GrantError::NotPending),
        }
    }

    fn identity(&self) -> Result<(GrantId, PatientId, UserId), GrantError> {
        match (self.grant_id, self.patient_id, self.grantee) {
            (Some(grant), Some(patient), Some(grantee)) => Ok((grant, patient, grantee)),
            _ => Err(GrantError::NotFound),
        }
    }
}

impl Aggregate for AccessGrant {
    const TYPE: &'static str = "access_grant";
    type Command = GrantCommand;
    type Event = GrantEvent;
    type Error = GrantError;
    type Services = DomainServices;

    async fn handle(&mut self, command: Self::Command, services: &Self::Services, sink: &EventSink<Self>) -> Result<(), Self::Error> {
        let decided = self.decide(command, services.now());
        write_decided(self, decided, sink).await
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            GrantEvent::AccessRequested { grant_id, patient_id, requester, scopes, requested_until, reason } => {
                self.grant_id = Some(grant_id);
                self.patient_id = Some(patient_id);
                self.grantee = Some(requester);
                self.scopes = scopes;
                self.expires_at = Some(requested_until);
                self.reason = Some(reason);
                self.status = GrantStatus::Requested;
            }
            GrantEvent::AccessGranted { grant_id, patient_id, grantee, scopes, expires_at, reason, .. } => {
                self.grant_id = Some(grant_id);
                self.patient_id = Some(patient_id);
                self.grantee = Some(grantee);
                self.scopes = scopes;
                self.expires_at = Some(expires_at);
                self.reason = Some(reason);
                self.status = GrantStatus::Active;
            }
            GrantEvent::AccessDenied { .. } => self.status = GrantStatus::Denied,
            GrantEvent::AccessRevoked { .. } => self.status = GrantStatus::Revoked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{now, text};
    use cqrs_es::test::TestFramework;

    type GrantTest = TestFramework<AccessGrant>;

    struct Parties {
        grant: GrantId,
        patient: PatientId,
        patient_user: UserId,
        doctor: UserId,
    }

    fn parties() -> Parties {
        Parties { grant: GrantId::new(), patient: PatientId::new(), patient_user: UserId::new(), doctor: UserId::new() }
    }

    fn read() -> BTreeSet<Scope> {
        BTreeSet::from([Scope::Read])
    }

    fn granted(p: &Parties, expires_at: DateTime<Utc>) -> GrantEvent {
        GrantEvent::AccessGranted {
            grant_id: p.grant,
            patient_id: p.patient,
            grantee: p.doctor,
            scopes: read(),
            expires_at,
            granted_by: p.patient_user,
            reason: Phi::new(p.patient, text("follow-up")),
        }
    }

    fn requested(p: &Parties) -> GrantEvent {
        GrantEvent::AccessRequested {
            grant_id: p.grant,
            patient_id: p.patient,
            requester: p.doctor,
            scopes: read(),
            requested_until: now() + Duration::days(30),
            reason: Phi::new(p.patient, text("referral")),
        }
    }

    fn grant_command(p: &Parties, scopes: BTreeSet<Scope>, expires_at: DateTime<Utc>) -> GrantCommand {
        GrantCommand::Grant {
            grant_id: p.grant,
            patient_id: p.patient,
            grantee: p.doctor,
            scopes,
            expires_at,
            granted_by: p.patient_user,
            reason: text("follow-up"),
        }
    }

    #[test]
    fn a_patient_grants_a_practitioner_scoped_access_until_an_expiry() {
        let p = parties();
        let expiry = now() + Duration::days(30);
        GrantTest::with(DomainServices::fixed(now()))
            .given_no_previous_events()
            .when(grant_command(&p, read(), expiry))
            .then_expect_events(vec![granted(&p, expiry)]);
    }

    #[test]
    fn a_grant_needs_scopes_and_an_expiry_within_policy() {
        let p = parties();
        let cases = [
            (BTreeSet::new(), now() + Duration::days(1), GrantError::NoScopes),
            (read(), now(), GrantError::ExpiryNotInFuture),
            (read(), now() + Duration::days(400), GrantError::ExpiryTooFar),
        ];
        for (scopes, expiry, error) in cases {
            GrantTest::with(DomainServices::fixed(now()))
                .given_no_previous_events()
                .when(grant_command(&p, scopes, expiry))
                .then_expect_error(error);
        }
    }

    #[test]
    fn a_pending_request_can_be_approved_once() {
        let p = parties();
        let expiry = now() + Duration::days(10);
        GrantTest::with(DomainServices::fixed(now()))
            .given(vec![requested(&p)])
            .when(GrantCommand::Approve { approved_by: p.patient_user, expires_at: expiry })
            .then_expect_events(vec![GrantEvent::AccessGranted {
                grant_id: p.grant,
                patient_id: p.patient,
                grantee: p.doctor,
                scopes: read(),
                expires_at: expiry,
                granted_by: p.patient_user,
                reason: Phi::new(p.patient, text("referral")),
            }]);
        GrantTest::with(DomainServices::fixed(now()))
            .given(vec![requested(&p), granted(&p, expiry)])
            .when(GrantCommand::Approve { approved_by: p.patient_user, expires_at: expiry })
            .then_expect_error(GrantError::NotPending);
    }

    #[test]
    fn a_denied_request_cannot_be_approved() {
        let p = parties();
        let denied = GrantEvent::AccessDenied { denied_by: p.patient_user, reason: Phi::new(p.patient, text("no")) };
        GrantTest::with(DomainServices::fixed(now()))
            .given(vec![requested(&p), denied])
            .when(GrantCommand::Approve { approved_by: p.patient_user, expires_at: now() + Duration::days(1) })
            .then_expect_error(GrantError::NotPending);
    }

    #[test]
    fn only_an_active_grant_can_be_revoked() {
        let p = parties();
        let revoke = || GrantCommand::Revoke { revoked_by: p.patient_user, reason: text("changed my mind") };
        GrantTest::with(DomainServices::fixed(now())).given(vec![requested(&p)]).when(revoke()).then_expect_error(GrantError::NotActive);
        GrantTest::with(DomainServices::fixed(now())).given_no_previous_events().when(revoke()).then_expect_error(GrantError::NotFound);
    }

    #[test]
    fn expired_and_revoked_grants_authorize_nothing() {
        let p = parties();
        let expiry = now() + Duration::days(1);
        let mut grant = AccessGrant::default();
        grant.apply(granted(&p, expiry));
        assert!(grant.authorizes(p.doctor, Scope::Read, now()));
        assert!(!grant.authorizes(p.doctor, Scope::Write, now()), "scope not granted");
        assert!(!grant.authorizes(UserId::new(), Scope::Read, now()), "another user");
        assert!(!grant.authorizes(p.doctor, Scope::Read, expiry), "expired at the instant of expiry");
        grant.apply(GrantEvent::AccessRevoked { revoked_by: p.patient_user, reason: Phi::new(p.patient, text("x")) });
        assert!(!grant.authorizes(p.doctor, Scope::Read, now()), "revoked");
    }
}
