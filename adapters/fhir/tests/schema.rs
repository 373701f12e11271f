//! Every resource the mapping produces validates against the official FHIR R4 JSON
//! schema (`schema/fhir.schema.json`), in full and redacted, live and entered in error.

#![allow(clippy::unwrap_used)]

use cqrs_es::Aggregate;
use emr_domain::fixtures;
use emr_domain::ids::{PatientId, RecordId};
use emr_domain::patient::Patient;
use emr_domain::record::{MedicalRecord, RecordCommand};
use emr_fhir::{CapabilityStatement, IssueType, MedicationRef, operation_outcome};
use serde_json::Value;

fn assert_valid(resource: &Value) {
    let violations = emr_fhir::validation::violations(resource);
    assert!(violations.is_empty(), "{}\n{violations:#?}", serde_json::to_string_pretty(resource).unwrap());
}

fn patient() -> (PatientId, Patient) {
    let id = PatientId::new();
    let mut patient = Patient::default();
    for event in patient.decide(fixtures::register(id, "Li Na"), fixtures::now()).unwrap() {
        patient.apply(event);
    }
    (id, patient)
}

fn record(patient: PatientId, deleted: bool) -> (RecordId, MedicalRecord) {
    let id = RecordId::new();
    let mut record = MedicalRecord::default();
    let mut commands = vec![fixtures::create_record(id, patient, "Consultation for cough")];
    if deleted {
        commands.push(RecordCommand::Delete { reason: fixtures::text("entered for the wrong patient") });
    }
    for command in commands {
        for event in record.decide(command, fixtures::now()).unwrap() {
            record.apply(event);
        }
    }
    (id, record)
}

#[test]
fn a_patient_is_a_valid_fhir_patient_with_its_mrn_name_gender_and_birth_date() {
    let (id, patient) = patient();
    let resource = emr_fhir::patient(id, &patient, 1, false);
    assert_valid(&resource);
    assert_eq!(resource["identifier"][0]["value"], "MRN-0001");
    assert_eq!(resource["name"][0]["text"], "Li Na");
    assert_eq!((resource["gender"].as_str(), resource["birthDate"].as_str()), (Some("female"), Some("1980-05-17")));
    let redacted = emr_fhir::patient(id, &patient, 1, true);
    assert_valid(&redacted);
    assert!(redacted.get("name").is_none() && redacted.get("identifier").is_none());
    assert_eq!(redacted["meta"]["security"][0]["code"], "REDACTED");
}

#[test]
fn a_record_is_a_valid_encounter_condition_and_medication_statement() {
    let (patient_id, _) = patient();
    for deleted in [false, true] {
        let (id, record) = record(patient_id, deleted);
        for redacted in [false, true] {
            assert_valid(&emr_fhir::encounter(id, &record, 2, redacted));
            let condition = emr_fhir::condition(id, &record, 2, redacted).unwrap();
            assert_valid(&condition);
            let medication = emr_fhir::medication_statement(MedicationRef { record: id, index: 1 }, &record, 2, redacted).unwrap();
            assert_valid(&medication);
        }
        let condition = emr_fhir::condition(id, &record, 2, false).unwrap();
        assert_eq!(condition["code"]["coding"][0]["system"], "http://hl7.org/fhir/sid/icd-10");
        assert_eq!(condition["code"]["coding"][0]["code"], "J18.9");
        assert_eq!(condition["verificationStatus"]["coding"][0]["code"], if deleted { "entered-in-error" } else { "confirmed" });
        assert_eq!(condition.get("clinicalStatus").is_some(), !deleted, "con-5: no clinical status when entered in error");
        let statements = emr_fhir::medication_statements(id, &record, 2);
        assert_eq!(statements.len(), 1);
        assert_eq!(statements[0]["dosage"][0]["doseAndRate"][0]["doseQuantity"]["value"], 500.0);
        assert_eq!(statements[0]["id"], format!("{id}.1"));
    }
}

#[test]
fn a_medication_id_names_its_record_and_place() {
    let id = RecordId::new();
    assert_eq!(MedicationRef::parse(&format!("{id}.3")), Some(MedicationRef { record: id, index: 3 }));
    assert_eq!(MedicationRef::parse(&format!("{id}.0")), None);
    assert_eq!(MedicationRef::parse(&id.to_string()), None);
    assert_eq!(MedicationRef::parse("x.1"), None);
}

#[test]
fn errors_and_the_capability_statement_are_valid_fhir() {
    assert_valid(&operation_outcome(IssueType::of_status(404), "not-found", "Not found", "no patient with this id"));
    assert_valid(&operation_outcome(IssueType::of_status(503), "unavailable", "Unavailable", "try again"));
    let statement = CapabilityStatement::default().resource("Patient", &["read"]).resource("Condition", &["read", "search-type"]);
    let json = statement.to_json("0.1.0", "2026-12-02");
    assert_valid(&json);
    assert_eq!(json["fhirVersion"], "4.0.1");
    // The validator is not vacuous: a resource with a wrong field type fails.
    let mut broken = json.clone();
    broken["fhirVersion"] = serde_json::json!(4);
    assert!(!emr_fhir::validation::violations(&broken).is_empty());
}
