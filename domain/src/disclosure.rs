//! Disclosures: every read of PHI is a fact in the log (HIPAA accounting of
//! disclosures), not a log line. Each disclosure is its own one-event aggregate,
//! so recording reads never contends with writes to the records being read.
//!
//! A break-glass read (a practitioner without a grant, giving an emergency
//! reason) records `BreakGlassInvoked` beside the disclosure, in the same commit:
//! the security-event and access-log read models both see it, and so does the
//! patient. The practitioner justifies it afterwards (`BreakGlassJustified`);
//! the privacy officer's review queue holds the unjustified ones.

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
    /// A justification for a read that was no break-glass, or never recorded.
    #[error("only a recorded break-glass read is justified")]
    NotBreakGlass,
    /// Someone other than the practitioner who broke the glass.
    #[error("only the practitioner who broke the glass justifies it")]
    NotTheReader,
    /// Justified already; the first justification stands.
    #[error("this break-glass read was already justified")]
    AlreadyJustified,
}

/// A disclosure command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DisclosureCommand {
    /// Record a read.
    Disclose(Disclose),
    /// The practitioner explains a break-glass read after the fact.
    Justify {
        /// Who explains (must be the reader).
        by: crate::ids::UserId,
        /// The explanation (PHI: it describes the patient's emergency).
        justification: ShortText,
    },
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
    /// The practitioner explained a break-glass read after the fact.
    BreakGlassJustified {
        /// The disclosure.
        disclosure_id: DisclosureId,
        /// Whose record (the justification is sealed with their key).
        patient_id: PatientId,
        /// The explanation.
        justification: Phi<ShortText>,
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
            Self::BreakGlassJustified { .. } => "BreakGlassJustified",
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
    /// The patient and reader of a break-glass read.
    break_glass: Option<(PatientId, Actor)>,
    justified: bool,
}

impl Disclosure {
    /// The events `command` produces.
    pub fn decide(&self, command: DisclosureCommand) -> Result<Vec<DisclosureEvent>, DisclosureError> {
        match command {
            DisclosureCommand::Disclose(disclose) => self.disclose(disclose),
            DisclosureCommand::Justify { by, justification } => {
                let (Some(disclosure_id), Some((patient_id, reader))) = (self.disclosure_id, self.break_glass) else {
                    return Err(DisclosureError::NotBreakGlass);
                };
                if reader.user_id != by {
                    return Err(DisclosureError::NotTheReader);
                }
                if self.justified {
                    return Err(DisclosureError::AlreadyJustified);
                }
                Ok(vec![DisclosureEvent::BreakGlassJustified {
                    disclosure_id,
                    patient_id,
                    justification: Phi::new(patient_id, justification),
                }])
            }
        }
    }

    fn disclose(&self, command: Disclose) -> Result<Vec<DisclosureEvent>, DisclosureError> {
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
    type Command = DisclosureCommand;
    type Event = DisclosureEvent;
    type Error = DisclosureError;
    type Services = DomainServices;

    async fn handle(&mut self, command: Self::Command, _services: &Self::Services, sink: &EventSink<Self>) -> Result<(), Self::Error> {
        let decided = self.decide(command);
        write_decided(self, decided, sink).await
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            DisclosureEvent::BreakGlassInvoked { disclosure_id, patient_id, accessor, .. } => {
                self.disclosure_id = Some(disclosure_id);
                self.break_glass = Some((patient_id, accessor));
            }
            DisclosureEvent::PhiDisclosed { disclosure_id, .. } => self.disclosure_id = Some(disclosure_id),
            DisclosureEvent::BreakGlassJustified { .. } => self.justified = true,
        }
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
        let events = Disclosure::default().decide(DisclosureCommand::Disclose(read(Basis::BreakGlass, Some("unconscious in ER")))).unwrap();
        let types: Vec<_> = events.iter().map(DomainEvent::event_type).collect();
        assert_eq!(types, ["BreakGlassInvoked", "PhiDisclosed"]);
    }

    #[test]
    fn break_glass_without_a_reason_is_refused() {
        assert_eq!(
            Disclosure::default().decide(DisclosureCommand::Disclose(read(Basis::BreakGlass, None))),
            Err(DisclosureError::ReasonMismatch)
        );
    }

    #[test]
    fn only_the_reader_justifies_a_break_glass_read_and_only_once() {
        let command = read(Basis::BreakGlass, Some("unconscious in ER"));
        let reader = command.accessor.user_id;
        let mut disclosure = Disclosure::default();
        for event in disclosure.decide(DisclosureCommand::Disclose(command)).unwrap() {
            disclosure.apply(event);
        }
        let justify = |by| DisclosureCommand::Justify { by, justification: ShortText::parse("j", "trauma bay, no ID").unwrap() };
        assert_eq!(disclosure.decide(justify(UserId::new())), Err(DisclosureError::NotTheReader));
        for event in disclosure.decide(justify(reader)).unwrap() {
            disclosure.apply(event);
        }
        assert_eq!(disclosure.decide(justify(reader)), Err(DisclosureError::AlreadyJustified));
        let mut granted = Disclosure::default();
        for event in granted.decide(DisclosureCommand::Disclose(read(Basis::Grant { grant_id: crate::ids::GrantId::new() }, None))).unwrap()
        {
            granted.apply(event);
        }
        assert_eq!(granted.decide(justify(reader)), Err(DisclosureError::NotBreakGlass));
    }

    #[test]
    fn a_redacted_read_is_no_disclosure() {
        assert_eq!(
            Disclosure::default().decide(DisclosureCommand::Disclose(read(Basis::Redacted, None))),
            Err(DisclosureError::NothingDisclosed)
        );
    }
}
