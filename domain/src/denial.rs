//! Refused accesses: each is a fact in the log (HIPAA audit controls record
//! failed attempts, not only successful ones), so bursts of refusals are visible
//! to threat detection and to auditors. One refusal, one one-event aggregate.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::access::{Action, Denied};
use crate::actor::Actor;
use crate::clock::DomainServices;
use crate::decided::write_decided;
use crate::ids::{DenialId, PatientId};

/// A denial id was used twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this denial was already recorded")]
pub struct DenialAlreadyRecorded;

/// Record a refused access.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordDenial {
    /// The denial (also the aggregate id).
    pub denial_id: DenialId,
    /// Who was refused.
    pub actor: Actor,
    /// What they tried.
    pub action: Action,
    /// Whose data, if any.
    pub patient_id: Option<PatientId>,
    /// Why it was refused.
    pub reason: Denied,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum DenialEvent {
    /// An access was refused.
    AccessDenied {
        /// The denial.
        denial_id: DenialId,
        /// Who was refused.
        actor: Actor,
        /// What they tried.
        action: Action,
        /// Whose data.
        patient_id: Option<PatientId>,
        /// Why.
        reason: Denied,
    },
}

impl DomainEvent for DenialEvent {
    fn event_type(&self) -> String {
        "AccessDenied".to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// One refused access.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccessDenial {
    denial_id: Option<DenialId>,
}

impl AccessDenial {
    /// The event recording `command`.
    pub fn decide(&self, command: RecordDenial) -> Result<Vec<DenialEvent>, DenialAlreadyRecorded> {
        if self.denial_id.is_some() {
            return Err(DenialAlreadyRecorded);
        }
        let RecordDenial { denial_id, actor, action, patient_id, reason } = command;
        Ok(vec![DenialEvent::AccessDenied { denial_id, actor, action, patient_id, reason }])
    }
}

impl Aggregate for AccessDenial {
    const TYPE: &'static str = "access_denial";
    type Command = RecordDenial;
    type Event = DenialEvent;
    type Error = DenialAlreadyRecorded;
    type Services = DomainServices;

    async fn handle(&mut self, command: Self::Command, _services: &Self::Services, sink: &EventSink<Self>) -> Result<(), Self::Error> {
        let decided = self.decide(command);
        write_decided(self, decided, sink).await
    }

    fn apply(&mut self, event: Self::Event) {
        let DenialEvent::AccessDenied { denial_id, .. } = event;
        self.denial_id = Some(denial_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::Role;
    use crate::grant::Scope;
    use crate::ids::UserId;

    #[test]
    fn a_denial_is_recorded_once_with_its_reason() {
        let command = RecordDenial {
            denial_id: DenialId::new(),
            actor: Actor::new(UserId::new(), Role::Nurse),
            action: Action::ReadRecord,
            patient_id: Some(PatientId::new()),
            reason: Denied::NoActiveGrant { scope: Scope::Read },
        };
        let mut denial = AccessDenial::default();
        let events = denial.decide(command.clone()).unwrap();
        let json = serde_json::to_value(&events[0]).unwrap();
        assert_eq!(json["data"]["reason"], serde_json::json!({"reason": "no_active_grant", "scope": "read"}));
        for event in events {
            denial.apply(event);
        }
        assert_eq!(denial.decide(command), Err(DenialAlreadyRecorded));
    }
}
