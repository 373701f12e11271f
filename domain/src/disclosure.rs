//! Disclosures: every read of PHI is a fact in the log (HIPAA accounting of
//! disclosures), not a log line. Each disclosure is its own one-event aggregate,
//! so recording reads never contends with writes to the records being read.
//!
//! A break-glass read (a practitioner without a grant, giving an emergency
//! reason) records `BreakGlassInvoked` beside the disclosure, in the same commit:
//! the security-event and access-log read models both see it, and so does the
//! patient.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::access::Basis;
use crate::actor::Actor;
use crate::clock::DomainServices;
use crate::decided::write_decided;
use crate::ids::{AttachmentId, DisclosureId, PatientId, RecordId};
use crate::phi::Phi;
use crate::values::ShortText;

/// What was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Resource {
    /// The patient's demographics and identifiers.
    Patient,
    /// A medical record's content.
    Record {
        /// Which record.
        record_id: RecordId,
    },
    /// An attachment's content (a scan, a study, a document).
    Attachment {
        /// Its record.
        record_id: RecordId,
        /// Which attachment.
        attachment_id: AttachmentId,
    },
}

/// Why a disclosure could not be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisclosureError {
    /// The id was used before.
    #[error("this disclosure was already recorded")]
    AlreadyRecorded,
    /// Break-glass without a reason, or a reason on another basis.
    #[error("a break-glass read needs a reason, and only a break-glass read takes one")]
    ReasonMismatch,
    /// A basis that discloses nothing (redacted reads are not disclosures).
    #[error("a redacted read discloses no PHI")]
    NothingDisclosed,
}

/// Record that PHI was shown to someone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disclose {
    /// The disclosure (also the aggregate id).
    pub disclosure_id: DisclosureId,
    /// Whose PHI.
    pub patient_id: PatientId,
    /// What was read.
    pub resource: Resource,
    /// Who read it.
    pub accessor: Actor,
    /// Under what authority.
    pub basis: Basis,
    /// The emergency reason of a break-glass read.
    pub reason: Option<ShortText>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum DisclosureEvent {
    /// A practitioner opened a record without a grant.
    BreakGlassInvoked {
        /// The disclosure it belongs to.
        disclosure_id: DisclosureId,
        /// Whose record.
        patient_id: PatientId,
        /// Who broke the glass.
        accessor: Actor,
        /// Their emergency reason (PHI).
        reason: Phi<ShortText>,
    },
    /// PHI was shown.
    PhiDisclosed {
        /// The disclosure.
        disclosure_id: DisclosureId,
        /// Whose PHI.
        patient_id: PatientId,
        /// What was read.
        resource: Resource,
        /// Who read it.
        accessor: Actor,
        /// Under what authority.
        basis: Basis,
    },
}

impl DomainEvent for DisclosureEvent {
    fn event_type(&self) -> String {
        match self {
            Self::BreakGlassInvoked { .. } => "BreakGlassInvoked",
            Self::PhiDisclosed { .. } => "PhiDisclosed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// One disclosure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Disclosure {
    disclosure_id: Option<DisclosureId>,
}

impl Disclosure {
    /// The events recording `command`.
    pub fn decide(&self, command: Disclose) -> Result<Vec<DisclosureEvent>, DisclosureError> {
        if self.disclosure_id.is_some() {
            return Err(DisclosureError::AlreadyRecorded);
        }
        let Disclose { disclosure_id, patient_id, resource, accessor, basis, reason } = command;
        let mut events = Vec::with_capacity(2);
        match (basis, reason) {
            (Basis::Redacted, _) => return Err(DisclosureError::NothingDisclosed),
            (Basis::BreakGlass, Some(reason)) => events.push(DisclosureEvent::BreakGlassInvoked {
                disclosure_id,
                patient_id,
                accessor,
                reason: Phi::new(patient_id, reason),
            }),
            (Basis::BreakGlass, None) | (_, Some(_)) => return Err(DisclosureError::ReasonMismatch),
            (_, None) => {}
        }
        events.push(DisclosureEvent::PhiDisclosed { disclosure_id, patient_id, resource, accessor, basis });
        Ok(events)
    }
}

impl Aggregate for Disclosure {
    const TYPE: &'static str = "disclosure";
    type Command = Disclose;
    type Event = DisclosureEvent;
    type Error = DisclosureError;
    type Services = DomainServices;

    async fn handle(&mut self, command: Self::Command, _services: &Self::Services, sink: &EventSink<Self>) -> Result<(), Self::Error> {
        let decided = self.decide(command);
        write_decided(self, decided, sink).await
    }

    fn apply(&mut self, event: Self::Event) {
        let (DisclosureEvent::BreakGlassInvoked { disclosure_id, .. } | DisclosureEvent::PhiDisclosed { disclosure_id, .. }) = event;
        self.disclosure_id = Some(disclosure_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::Role;
    use crate::ids::UserId;

    fn read(basis: Basis, reason: Option<&str>) -> Disclose {
        Disclose {
            disclosure_id: DisclosureId::new(),
            patient_id: PatientId::new(),
            resource: Resource::Record { record_id: RecordId::new() },
            accessor: Actor::new(UserId::new(), Role::Physician),
            basis,
            reason: reason.map(|r| ShortText::parse("reason", r).unwrap()),
        }
    }

    #[test]
    fn a_break_glass_read_records_the_emergency_before_the_disclosure() {
        let events = Disclosure::default().decide(read(Basis::BreakGlass, Some("unconscious in ER"))).unwrap();
        let types: Vec<_> = events.iter().map(DomainEvent::event_type).collect();
        assert_eq!(types, ["BreakGlassInvoked", "PhiDisclosed"]);
    }

    #[test]
    fn break_glass_without_a_reason_is_refused() {
        assert_eq!(Disclosure::default().decide(read(Basis::BreakGlass, None)), Err(DisclosureError::ReasonMismatch));
    }

    #[test]
    fn a_redacted_read_is_no_disclosure() {
        assert_eq!(Disclosure::default().decide(read(Basis::Redacted, None)), Err(DisclosureError::NothingDisclosed));
    }
}
