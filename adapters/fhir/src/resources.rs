//! Patients and medical records as FHIR resources. A redacted read (an auditor's,
//! whose role sees that a record exists but not what it says) keeps the structure
//! and drops every field that carries PHI, labelled `REDACTED` in `meta.security`.

use emr_domain::account::{Account, AccountStatus};
use emr_domain::actor::Role;
use emr_domain::diagnosis::ReviewOutcome;
use emr_domain::ids::{HospitalId, PatientId, RecordId, UserId};
use emr_domain::patient::{Patient, PatientStatus};
use emr_domain::phi::Phi;
use emr_domain::record::{AttachmentSummary, MedicalRecord, RecordStatus, SuggestionSummary};
use emr_domain::values::{Gender, Medication, Mrn, RecordContent, Route};
use serde_json::{Value, json};

pub(crate) const ICD_10: &str = "http://hl7.org/fhir/sid/icd-10";
/// The code system of EMR Ledger's record types (`Encounter.type`).
pub(crate) const RECORD_TYPE_SYSTEM: &str = "urn:emr-ledger:record-type";
const SNOMED: &str = "http://snomed.info/sct";
const UCUM: &str = "http://unitsofmeasure.org";
/// The identifier type (v2-0203) of a medical record number.
pub(crate) const MRN_TYPE_CODE: &str = "MR";

pub(crate) fn meta(version: u64, redacted: bool) -> Value {
    let mut meta = json!({"versionId": version.to_string()});
    if redacted {
        meta["security"] = json!([{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "REDACTED"}]);
    }
    meta
}

fn hospital(hospital: &HospitalId) -> Value {
    json!({"identifier": {"system": "urn:emr-ledger:hospital", "value": hospital.as_str()}})
}

pub(crate) fn practitioner_reference(user: UserId) -> Value {
    json!({"type": "Practitioner", "identifier": {"system": "urn:emr-ledger:user", "value": user.to_string()}})
}

fn patient_reference(patient: PatientId) -> Value {
    json!({"reference": format!("Patient/{patient}")})
}

/// Inserts `value` under `key` when there is one.
fn put(resource: &mut Value, key: &str, value: Option<Value>) {
    if let (Some(value), Some(object)) = (value, resource.as_object_mut()) {
        object.insert(key.to_owned(), value);
    }
}

/// A patient as a FHIR `Patient`.
pub fn patient(id: PatientId, patient: &Patient, version: u64, redacted: bool) -> Value {
    let mut resource = json!({
        "resourceType": "Patient",
        "id": id.to_string(),
        "meta": meta(version, redacted),
        "active": patient.status() == PatientStatus::Active,
    });
    put(&mut resource, "managingOrganization", patient.hospital_id().map(hospital));
    if redacted {
        return resource;
    }
    if let Some(identifiers) = patient.identifiers().and_then(Phi::value) {
        let mut list = vec![json!({
            "use": "usual",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": MRN_TYPE_CODE}]},
            "system": patient.hospital_id().map_or_else(|| "urn:emr-ledger:hospital:unknown:mrn".to_owned(), Mrn::system),
            "value": identifiers.mrn.as_str(),
        })];
        list.extend(identifiers.external.iter().map(|e| json!({"system": e.system.as_str(), "value": e.value.as_str()})));
        put(&mut resource, "identifier", Some(Value::Array(list)));
    }
    if let Some(demographics) = patient.demographics().and_then(Phi::value) {
        let gender = match demographics.gender {
            Gender::Male => "male",
            Gender::Female => "female",
            Gender::Other => "other",
            Gender::Unknown => "unknown",
        };
        let telecom: Vec<Value> = [("phone", &demographics.phone_number), ("email", &demographics.email)]
            .into_iter()
            .filter_map(|(system, value)| value.as_ref().map(|v| json!({"system": system, "value": v.as_str()})))
            .collect();
        put(&mut resource, "name", Some(json!([{"text": demographics.full_name.as_str()}])));
        put(&mut resource, "telecom", (!telecom.is_empty()).then_some(Value::Array(telecom)));
        put(&mut resource, "gender", Some(json!(gender)));
        put(&mut resource, "birthDate", Some(json!(demographics.date_of_birth.format("%Y-%m-%d").to_string())));
        put(&mut resource, "address", demographics.address.as_ref().map(|a| json!([{"text": a.as_str()}])));
    }
    resource
}

/// A physician's or nurse's account as a FHIR `Practitioner` (what an `id_token`'s
/// `fhirUser` names): their licensed name, licence number, department and
/// specialization. `None` for other roles: a patient is a `Patient`, and
/// administrators, auditors and system accounts are not practitioners.
pub fn practitioner(id: UserId, account: &Account) -> Option<Value> {
    if !matches!(account.role(), Some(Role::Physician | Role::Nurse)) {
        return None;
    }
    let mut identifiers = vec![json!({"system": "urn:emr-ledger:user", "value": id.to_string()})];
    let mut resource = json!({"resourceType": "Practitioner", "id": id.to_string(), "active": account.status() == AccountStatus::Active});
    if let Some(profile) = account.profile() {
        identifiers.push(json!({"system": "urn:emr-ledger:licence", "value": profile.licence_number.as_str()}));
        put(&mut resource, "name", Some(json!([{"text": profile.full_name.as_str()}])));
        let qualification = json!([{"code": {"text": profile.specialization.as_str()}}, {"code": {"text": profile.department.as_str()}}]);
        put(&mut resource, "qualification", Some(qualification));
    }
    put(&mut resource, "identifier", Some(Value::Array(identifiers)));
    Some(resource)
}

/// The current content of a record, where it can be shown.
fn content(record: &MedicalRecord, redacted: bool) -> Option<&RecordContent> {
    if redacted {
        return None;
    }
    record.current().and_then(|version| version.content.value())
}

fn visit_date(record: &MedicalRecord) -> Option<Value> {
    record.visit_date().map(|date| json!(date.format("%Y-%m-%d").to_string()))
}

fn deleted(record: &MedicalRecord) -> bool {
    record.status() == RecordStatus::Deleted
}

/// A record's visit as a FHIR `Encounter`.
pub fn encounter(id: RecordId, record: &MedicalRecord, version: u64, redacted: bool) -> Value {
    let mut resource = json!({
        "resourceType": "Encounter",
        "id": id.to_string(),
        "meta": meta(version, redacted),
        "status": if deleted(record) { "entered-in-error" } else { "finished" },
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
    });
    let record_type = record.record_type().and_then(|t| serde_json::to_value(t).ok());
    let title = content(record, redacted).map(|c| c.title.as_str());
    let mut kind = json!({"coding": [{"system": RECORD_TYPE_SYSTEM, "code": record_type}]});
    if let Some(title) = title {
        kind["text"] = json!(title);
    }
    put(&mut resource, "type", record_type.is_some().then(|| json!([kind])));
    put(&mut resource, "subject", record.patient_id().map(patient_reference));
    put(&mut resource, "participant", record.doctor_id().map(|d| json!([{"individual": practitioner_reference(d)}])));
    put(&mut resource, "period", visit_date(record).map(|date| json!({"start": date})));
    if let Some(diagnosis) = content(record, redacted).and_then(|c| c.diagnosis.as_ref()) {
        let reason = json!([{"coding": [{"system": ICD_10, "code": diagnosis.code.as_str()}], "text": diagnosis.description.as_str()}]);
        put(&mut resource, "reasonCode", Some(reason));
    }
    put(&mut resource, "serviceProvider", record.hospital_id().map(hospital));
    resource
}

/// A record's coded diagnosis as a FHIR `Condition` (ICD-10); `None` when the
/// record's current version states none (a redacted read cannot tell, so it
/// always has one, without its code).
pub fn condition(id: RecordId, record: &MedicalRecord, version: u64, redacted: bool) -> Option<Value> {
    let diagnosis = match content(record, redacted) {
        Some(content) => Some(content.diagnosis.as_ref()?),
        None if redacted => None,
        None => return None,
    };
    let verification = if deleted(record) { "entered-in-error" } else { "confirmed" };
    let mut resource = json!({
        "resourceType": "Condition",
        "id": id.to_string(),
        "meta": meta(version, redacted),
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "encounter-diagnosis"}]}],
        "encounter": {"reference": format!("Encounter/{id}")},
    });
    // A condition entered in error has no clinical status (FHIR invariant con-5).
    if !deleted(record) {
        let clinical = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]});
        put(&mut resource, "clinicalStatus", Some(clinical));
    }
    if let Some(diagnosis) = diagnosis {
        let code = json!({"coding": [{"system": ICD_10, "code": diagnosis.code.as_str()}], "text": diagnosis.description.as_str()});
        put(&mut resource, "code", Some(code));
    }
    put(&mut resource, "subject", record.patient_id().map(patient_reference));
    put(&mut resource, "recordedDate", visit_date(record));
    put(&mut resource, "recorder", record.doctor_id().map(practitioner_reference));
    Some(resource)
}

/// A medication of a record, named `<record id>.<n>` (n from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MedicationRef {
    /// The record.
    pub record: RecordId,
    /// Its place in the record's list, from 1.
    pub index: usize,
}

impl MedicationRef {
    /// Parses `<record id>.<n>`.
    pub fn parse(id: &str) -> Option<Self> {
        let (record, index) = id.rsplit_once('.')?;
        let index: usize = index.parse().ok().filter(|&n| n >= 1)?;
        Some(Self { record: record.parse().ok()?, index })
    }
}

fn route(route: Route) -> Value {
    let (code, display) = match route {
        Route::Oral => (Some("26643006"), "oral"),
        Route::Intravenous => (Some("47625008"), "intravenous"),
        Route::Intramuscular => (Some("78421000"), "intramuscular"),
        Route::Subcutaneous => (Some("34206005"), "subcutaneous"),
        Route::Topical => (Some("6064005"), "topical"),
        Route::Inhaled => (Some("447694001"), "respiratory tract"),
        Route::Other => (None, "other"),
    };
    match code {
        Some(code) => json!({"coding": [{"system": SNOMED, "code": code, "display": display}], "text": display}),
        None => json!({"text": display}),
    }
}

fn dosage(medication: &Medication) -> Value {
    let dose = medication.dose;
    // The units' wire names are their UCUM codes.
    let unit = serde_json::to_value(dose.unit()).ok().and_then(|u| u.as_str().map(str::to_owned)).unwrap_or_default();
    let amount = dose.amount_text();
    json!({
        "text": format!("{amount} {unit} {}, {}", route_text(medication.route), medication.frequency.as_str()),
        "timing": {"code": {"text": medication.frequency.as_str()}},
        "route": route(medication.route),
        // Thousandths over 1000 is the double nearest the exact decimal, as parsing it would be.
        "doseAndRate": [{"doseQuantity": {"value": dose.thousandths() as f64 / 1000.0, "unit": unit, "system": UCUM, "code": unit}}],
    })
}

fn route_text(route: Route) -> String {
    serde_json::to_value(route).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The `index`-th medication (from 1) of a record as a FHIR `MedicationStatement`.
pub fn medication_statement(id: MedicationRef, record: &MedicalRecord, version: u64, redacted: bool) -> Option<Value> {
    let medication = match content(record, redacted) {
        Some(content) => Some(content.medications.get(id.index.checked_sub(1)?)?),
        None => None,
    };
    let mut resource = json!({
        "resourceType": "MedicationStatement",
        "id": format!("{}.{}", id.record, id.index),
        "meta": meta(version, redacted),
        "status": if deleted(record) { "entered-in-error" } else { "active" },
        "context": {"reference": format!("Encounter/{}", id.record)},
    });
    let concept = match medication {
        Some(medication) => json!({"text": medication.name.as_str()}),
        None => json!({"text": "redacted"}),
    };
    put(&mut resource, "medicationCodeableConcept", Some(concept));
    put(&mut resource, "subject", record.patient_id().map(patient_reference));
    put(&mut resource, "effectiveDateTime", visit_date(record));
    put(&mut resource, "dosage", medication.map(|m| json!([dosage(m)])));
    Some(resource)
}

/// Every medication of a record's current version.
pub fn medication_statements(record_id: RecordId, record: &MedicalRecord, version: u64) -> Vec<Value> {
    let count = content(record, false).map_or(0, |c| c.medications.len());
    (1..=count).filter_map(|index| medication_statement(MedicationRef { record: record_id, index }, record, version, false)).collect()
}

/// An AI-assisted suggestion on a record as a FHIR `DiagnosticReport`: the
/// report of an imaging study, `preliminary` until a physician reviewed it
/// (then `final`, or `corrected` with the physician's answer as conclusion).
/// Its id is the suggestion id.
pub fn diagnostic_report(id: RecordId, record: &MedicalRecord, suggestion: &SuggestionSummary, version: u64, redacted: bool) -> Value {
    let status = match suggestion.review.as_ref().map(|r| r.outcome) {
        None => "preliminary",
        Some(ReviewOutcome::Corrected) => "corrected",
        Some(ReviewOutcome::Accepted | ReviewOutcome::Rejected) => "final",
    };
    let mut resource = json!({
        "resourceType": "DiagnosticReport",
        "id": suggestion.suggestion_id.to_string(),
        "meta": meta(version, redacted),
        "status": status,
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD", "display": "Radiology"}]}],
        "code": {"text": format!("AI-assisted image classification ({} {})", suggestion.model.name, suggestion.model.version)},
        "encounter": {"reference": format!("Encounter/{id}")},
        "performer": [{"display": format!("{} {} (SHA-256 {})", suggestion.model.name, suggestion.model.version, suggestion.model.sha256)}],
    });
    put(&mut resource, "subject", record.patient_id().map(patient_reference));
    if let Some(review) = &suggestion.review {
        put(&mut resource, "resultsInterpreter", Some(json!([practitioner_reference(review.reviewer_id)])));
    }
    if redacted {
        return resource;
    }
    let answer = suggestion.finding.value().map(|finding| match &finding.top {
        Some(top) => format!("{top} ({:.1} %)", finding.confidence * 100.0),
        None => "inconclusive".to_owned(),
    });
    let reviewed = suggestion.review.as_ref().map(|review| match (review.outcome, review.correction.as_ref().and_then(Phi::value)) {
        (ReviewOutcome::Corrected, Some(correction)) => format!(" Corrected by the reviewing physician: {}.", correction.as_str()),
        (ReviewOutcome::Rejected, _) => " Rejected by the reviewing physician.".to_owned(),
        _ => " Accepted by the reviewing physician.".to_owned(),
    });
    if let Some(answer) = answer {
        let conclusion = format!("{answer}. {}.{}", emr_domain::diagnosis::REVIEW_NOTICE, reviewed.unwrap_or_default());
        put(&mut resource, "conclusion", Some(Value::String(conclusion)));
    }
    if let Some(explanation) = suggestion.explanation {
        let attachment = json!({"contentType": "image/png", "title": "explanation (occlusion sensitivity)",
                                "url": format!("/v1/records/{id}/attachments/{explanation}/content")});
        put(&mut resource, "presentedForm", Some(json!([attachment])));
    }
    resource
}

/// The extension carrying an attachment's SHA-256 (hex): FHIR's `Attachment.hash`
/// is SHA-1, which this ledger does not compute.
pub const SHA_256_EXTENSION: &str = "urn:emr-ledger:fhir:sha-256";

/// An attachment of a record as a `DocumentReference`: its content is the
/// `Binary` of the same id (decrypted when read), the record its context. The
/// file's name is PHI kept in the log only; the record's title stands for it.
pub fn document_reference(id: RecordId, record: &MedicalRecord, attachment: &AttachmentSummary, version: u64, redacted: bool) -> Value {
    let mut file = json!({
        "size": attachment.size_bytes,
        "url": format!("Binary/{}", attachment.attachment_id),
        "extension": [{"url": SHA_256_EXTENSION, "valueString": attachment.sha256.to_string()}],
    });
    put(&mut file, "contentType", attachment.mime_type.as_ref().map(|m| json!(m.as_str())));
    let mut resource = json!({
        "resourceType": "DocumentReference",
        "id": attachment.attachment_id.to_string(),
        "meta": meta(version, redacted),
        "status": if deleted(record) { "entered-in-error" } else { "current" },
        "content": [{"attachment": file}],
        "context": {"encounter": [{"reference": format!("Encounter/{id}")}]},
    });
    let record_type = record.record_type().and_then(|t| serde_json::to_value(t).ok());
    if let Some(record_type) = record_type {
        let mut kind = json!({"coding": [{"system": RECORD_TYPE_SYSTEM, "code": record_type}]});
        if let Some(title) = content(record, redacted).map(|c| c.title.as_str()) {
            kind["text"] = json!(title);
        }
        put(&mut resource, "type", Some(kind));
    }
    put(&mut resource, "subject", record.patient_id().map(patient_reference));
    put(&mut resource, "author", record.doctor_id().map(|d| json!([practitioner_reference(d)])));
    resource
}
