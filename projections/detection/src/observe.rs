//! From decoded log events to what the detector observes.

use emr_domain::account::AccountEvent;
use emr_domain::authentication::{SessionEvent, SignInEvent};
use emr_domain::denial::DenialEvent;
use emr_domain::detection::{AccountChange, Observation, Observed};
use emr_domain::disclosure::DisclosureEvent;
use emr_domain::grant::GrantEvent;
use emr_domain::ids::UserId;
use emr_domain::record::RecordEvent;
use emr_domain::security::{Evidence, SecurityEvent};
use emr_projections::{Fact, Payload};

/// What `fact` tells the detector, if anything.
pub fn observation(fact: &Fact) -> Option<Observation> {
    let observed = match &fact.payload {
        Payload::SignIn(SignInEvent::SignInAttempted { user_id, username_digest, client, outcome, .. }) => {
            Observed::SignIn { user: *user_id, account: *username_digest, client: *client, outcome: *outcome }
        }
        Payload::Session(
            SessionEvent::SessionOpened { session_id, user_id, client } | SessionEvent::SessionRefreshed { session_id, user_id, client },
        ) => Observed::SessionUse { session: *session_id, user: *user_id, client: *client },
        Payload::Denial(DenialEvent::AccessDenied { actor, patient_id, .. }) => Observed::Denied { actor: *actor, patient: *patient_id },
        Payload::Disclosure(DisclosureEvent::PhiDisclosed { patient_id, resource, accessor, basis, .. }) => {
            Observed::Read { reader: *accessor, patient: *patient_id, resource: *resource, basis: *basis }
        }
        Payload::Disclosure(DisclosureEvent::BreakGlassInvoked { patient_id, accessor, .. }) => {
            Observed::BreakGlass { reader: *accessor, patient: *patient_id }
        }
        Payload::Account(AccountEvent::AccountRegistered { user_id, role, profile, .. }) => Observed::AccountOpened {
            user: *user_id,
            role: *role,
            department: profile.as_ref().map(|profile| profile.department.as_str().to_owned()),
        },
        Payload::Account(AccountEvent::RoleChanged { from, to, by, .. }) => {
            Observed::AccountChanged { user: account_of(fact)?, by: *by, change: AccountChange::Role { from: *from, to: *to } }
        }
        Payload::Account(AccountEvent::MfaReset { by, .. }) => {
            Observed::AccountChanged { user: account_of(fact)?, by: *by, change: AccountChange::MfaReset }
        }
        Payload::Record(RecordEvent::RecordCreated { patient_id, doctor_id, .. }) => {
            Observed::Encounter { author: *doctor_id, patient: *patient_id }
        }
        Payload::Grant(GrantEvent::AccessGranted { patient_id, grantee, .. }) => {
            Observed::Granted { grantee: *grantee, patient: *patient_id }
        }
        Payload::Security(SecurityEvent::SecurityEventRaised { kind, severity, user_id, .. }) if kind.raised_at_source() => {
            Observed::RaisedAtSource { user: *user_id, severity: *severity }
        }
        _ => return None,
    };
    let evidence = Evidence { position: fact.metadata.position, event_id: fact.metadata.event_id };
    Some(Observation { at: fact.metadata.recorded_at, evidence, observed })
}

/// The account an account event belongs to (its aggregate id); none for an id
/// that is not one, which the decoder would have refused already.
fn account_of(fact: &Fact) -> Option<UserId> {
    UserId::parse(&fact.aggregate_id).ok()
}
