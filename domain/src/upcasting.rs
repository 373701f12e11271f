//! Event schema evolution. Stored events are never edited; when an event's shape
//! changes, its version goes up and an upcaster turns old payloads into the new
//! shape as they are read (cqrs-es [`EventUpcaster`]s on the opened JSON).
//!
//! History so far:
//! - `RecordCreated` 1.0 named its fields in camelCase after the seed's chaincode
//!   struct (`recordId`, `patientId`, …); 2.0 uses snake_case like every other event.

use cqrs_es::Aggregate;
use cqrs_es::persist::{EventUpcaster, SemanticVersionEventUpcaster};
use serde_json::Value;

use crate::grant::AccessGrant;
use crate::patient::Patient;
use crate::record::{MedicalRecord, RecordEvent};

/// The schema history of an aggregate's events.
pub trait EventSchema: Aggregate {
    /// Upcasters to apply, in order, to every stored event before it is decoded.
    fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
        Vec::new()
    }
}

impl EventSchema for Patient {}
impl EventSchema for AccessGrant {}
impl EventSchema for crate::account::Account {}
impl EventSchema for crate::account::UsernameClaim {}
impl EventSchema for crate::disclosure::Disclosure {}
impl EventSchema for crate::security::SecurityIncident {}
impl EventSchema for crate::authentication::SignInAttempt {}
impl EventSchema for crate::authentication::Session {}
impl EventSchema for crate::denial::AccessDenial {}
impl EventSchema for crate::bridge::HeadAttestations {}
impl EventSchema for crate::federated::FederatedTask {}
impl EventSchema for crate::diagnosis::DiagnosticModel {}

impl EventSchema for MedicalRecord {
    fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
        vec![Box::new(SemanticVersionEventUpcaster::new(
            "RecordCreated",
            RecordEvent::RECORD_CREATED_VERSION,
            Box::new(record_created_1_to_2),
        ))]
    }
}

/// `RecordCreated` 1.0 → 2.0: camelCase keys become snake_case.
fn record_created_1_to_2(mut payload: Value) -> Value {
    const RENAMES: [(&str, &str); 6] = [
        ("recordId", "record_id"),
        ("patientId", "patient_id"),
        ("doctorId", "doctor_id"),
        ("hospitalId", "hospital_id"),
        ("recordType", "record_type"),
        ("visitDate", "visit_date"),
    ];
    if let Some(data) = payload.get_mut("data").and_then(Value::as_object_mut) {
        for (old, new) in RENAMES {
            if let Some(value) = data.remove(old) {
                data.insert(new.to_owned(), value);
            }
        }
    }
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::persist::SerializedEvent;
    use serde_json::json;

    #[test]
    fn record_created_1_0_is_upcast_to_2_0_field_names() {
        let old = SerializedEvent::new(
            "r".into(),
            1,
            "medical_record".into(),
            "RecordCreated".into(),
            "1.0".into(),
            json!({"type": "RecordCreated", "data": {"recordId": "a", "visitDate": "2020-01-01", "content": 1}}),
            json!({}),
        );
        let upcasters = MedicalRecord::upcasters();
        let upcaster = upcasters.iter().find(|u| u.can_upcast(&old.event_type, &old.event_version)).unwrap();
        let new = upcaster.upcast(old);
        assert_eq!(new.event_version, "2.0.0");
        assert_eq!(new.payload, json!({"type": "RecordCreated", "data": {"record_id": "a", "visit_date": "2020-01-01", "content": 1}}));
    }

    #[test]
    fn current_versions_are_left_alone() {
        let upcasters = MedicalRecord::upcasters();
        assert!(!upcasters.iter().any(|u| u.can_upcast("RecordCreated", "2.0")));
        assert!(!upcasters.iter().any(|u| u.can_upcast("RecordAmended", "1.0")));
    }
}
