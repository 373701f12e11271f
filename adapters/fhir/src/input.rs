//! FHIR resources a client sends, read into the domain's values: a `Patient` into
//! a registration or new demographics, a `Condition` into a record's diagnosis, and
//! the reason an `X-Provenance` header gives for a change. Each refusal names the
//! element at fault, as an `OperationOutcome` expression does.

use emr_domain::ids::HospitalId;
use emr_domain::values::{
    Demographics, Diagnosis, ExternalIdentifier, Gender, Icd10Code, LongText, Mrn, PatientIdentifiers, RecordContent, RecordType, ShortText,
};
use serde_json::Value;

use crate::resources::{ICD_10, MRN_TYPE_CODE, RECORD_TYPE_SYSTEM};

/// An element of a resource that cannot be read into the domain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{element}: {expected}")]
pub struct InvalidElement {
    /// The element, as a FHIRPath expression (`Patient.birthDate`).
    pub element: String,
    /// What a valid element holds.
    pub expected: String,
}

impl InvalidElement {
    fn new(element: impl Into<String>, expected: impl Into<String>) -> Self {
        Self { element: element.into(), expected: expected.into() }
    }
}

/// A `Patient` to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientRegistration {
    /// `managingOrganization.identifier.value`: the registering hospital.
    pub hospital_id: HospitalId,
    /// The MRN (the identifier typed `MR`) and the others.
    pub identifiers: PatientIdentifiers,
    /// Name, birth date, gender, telecom, address.
    pub demographics: Demographics,
}

fn expect_type(resource: &Value, resource_type: &str) -> Result<(), InvalidElement> {
    match resource.get("resourceType").and_then(Value::as_str) {
        Some(found) if found == resource_type => Ok(()),
        _ => Err(InvalidElement::new("resourceType", format!("must be {resource_type}"))),
    }
}

fn text<'a>(value: &'a Value, element: &str) -> Result<Option<&'a str>, InvalidElement> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) => Ok(Some(text)),
        _ => Err(InvalidElement::new(element, "must be a string")),
    }
}

fn short(field: &'static str, element: &str, value: &str) -> Result<ShortText, InvalidElement> {
    ShortText::parse(field, value).map_err(|e| InvalidElement::new(element, format!("text that {}", e.expected)))
}

fn array<'a>(resource: &'a Value, element: &str) -> Result<&'a [Value], InvalidElement> {
    match resource.get(element.rsplit('.').next().unwrap_or(element)) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(InvalidElement::new(element, "must be an array")),
    }
}

/// The person's name: `name[0].text`, or its given names and family name joined.
fn full_name(patient: &Value) -> Result<ShortText, InvalidElement> {
    let names = array(patient, "Patient.name")?;
    let name = names.first().ok_or_else(|| InvalidElement::new("Patient.name", "a name is required"))?;
    let written = match text(name.get("text").unwrap_or(&Value::Null), "Patient.name[0].text")? {
        Some(text) => text.to_owned(),
        None => {
            let given: Vec<&str> = array(name, "Patient.name[0].given")?.iter().filter_map(Value::as_str).collect();
            let family = text(name.get("family").unwrap_or(&Value::Null), "Patient.name[0].family")?;
            given.into_iter().chain(family).collect::<Vec<_>>().join(" ")
        }
    };
    short("full name", "Patient.name[0]", &written)
}

fn gender(patient: &Value) -> Result<Gender, InvalidElement> {
    let element = "Patient.gender";
    match text(patient.get("gender").unwrap_or(&Value::Null), element)? {
        None | Some("unknown") => Ok(Gender::Unknown),
        Some("male") => Ok(Gender::Male),
        Some("female") => Ok(Gender::Female),
        Some("other") => Ok(Gender::Other),
        Some(_) => Err(InvalidElement::new(element, "one of male, female, other, unknown")),
    }
}

/// Demographics from a `Patient` (the resource as a whole replaces them).
pub fn demographics(patient: &Value) -> Result<Demographics, InvalidElement> {
    expect_type(patient, "Patient")?;
    let birth = text(patient.get("birthDate").unwrap_or(&Value::Null), "Patient.birthDate")?
        .ok_or_else(|| InvalidElement::new("Patient.birthDate", "a full date (YYYY-MM-DD) is required"))?;
    let date_of_birth = chrono::NaiveDate::parse_from_str(birth, "%Y-%m-%d")
        .map_err(|_| InvalidElement::new("Patient.birthDate", "a full date (YYYY-MM-DD)"))?;
    let mut phone_number = None;
    let mut email = None;
    for (n, contact) in array(patient, "Patient.telecom")?.iter().enumerate() {
        let element = format!("Patient.telecom[{n}]");
        let value = text(contact.get("value").unwrap_or(&Value::Null), &element)?;
        let slot = match contact.get("system").and_then(Value::as_str) {
            Some("phone") => &mut phone_number,
            Some("email") => &mut email,
            _ => return Err(InvalidElement::new(format!("{element}.system"), "phone or email (the contacts this server keeps)")),
        };
        if let (Some(value), None) = (value, slot.as_ref()) {
            *slot = Some(short("contact", &element, value)?);
        }
    }
    let address = match array(patient, "Patient.address")?.first() {
        None => None,
        Some(address) => {
            let written = match text(address.get("text").unwrap_or(&Value::Null), "Patient.address[0].text")? {
                Some(text) => text.to_owned(),
                None => array(address, "Patient.address[0].line")?.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
            };
            Some(
                LongText::parse("address", written)
                    .map_err(|e| InvalidElement::new("Patient.address[0]", format!("text that {}", e.expected)))?,
            )
        }
    };
    Ok(Demographics { full_name: full_name(patient)?, date_of_birth, gender: gender(patient)?, phone_number, email, address })
}

fn is_mrn(identifier: &Value) -> bool {
    let codings = identifier.pointer("/type/coding").and_then(Value::as_array);
    codings.is_some_and(|codings| codings.iter().any(|c| c.get("code").and_then(Value::as_str) == Some(MRN_TYPE_CODE)))
}

/// The hospital, identifiers and demographics of a `Patient` to register.
pub fn registration(patient: &Value) -> Result<PatientRegistration, InvalidElement> {
    let demographics = demographics(patient)?;
    let hospital = patient.pointer("/managingOrganization/identifier/value").and_then(Value::as_str).ok_or_else(|| {
        InvalidElement::new("Patient.managingOrganization.identifier.value", "the registering hospital's code is required")
    })?;
    let hospital_id = HospitalId::parse(hospital)
        .map_err(|e| InvalidElement::new("Patient.managingOrganization.identifier.value", e.reason.to_string()))?;
    let mut mrn = None;
    let mut external = Vec::new();
    for (n, identifier) in array(patient, "Patient.identifier")?.iter().enumerate() {
        let element = format!("Patient.identifier[{n}]");
        let value = text(identifier.get("value").unwrap_or(&Value::Null), &element)?
            .ok_or_else(|| InvalidElement::new(format!("{element}.value"), "is required"))?;
        if is_mrn(identifier) && mrn.is_none() {
            mrn = Some(Mrn::parse(value).map_err(|e| InvalidElement::new(format!("{element}.value"), e.expected))?);
            continue;
        }
        let system = text(identifier.get("system").unwrap_or(&Value::Null), &element)?
            .ok_or_else(|| InvalidElement::new(format!("{element}.system"), "is required for an identifier other than the MRN"))?;
        external.push(ExternalIdentifier { system: short("system", &element, system)?, value: short("identifier", &element, value)? });
    }
    let mrn = mrn.ok_or_else(|| {
        InvalidElement::new(
            "Patient.identifier",
            format!("the medical record number is required (an identifier with type code {MRN_TYPE_CODE})"),
        )
    })?;
    let identifiers = PatientIdentifiers { mrn, external };
    identifiers.validate().map_err(|e| InvalidElement::new("Patient.identifier", e.expected))?;
    Ok(PatientRegistration { hospital_id, identifiers, demographics })
}

/// The ICD-10 diagnosis a `Condition` codes (`code.coding` in the ICD-10 system;
/// the wording from `code.text`, else the coding's `display`).
pub fn diagnosis(condition: &Value) -> Result<Diagnosis, InvalidElement> {
    expect_type(condition, "Condition")?;
    let code = condition.get("code").ok_or_else(|| InvalidElement::new("Condition.code", "an ICD-10 coded diagnosis is required"))?;
    coded_diagnosis(code, "Condition.code")
}

/// An ICD-10 diagnosis from a `CodeableConcept` at `element`.
fn coded_diagnosis(code: &Value, element: &str) -> Result<Diagnosis, InvalidElement> {
    let codings = array(code, &format!("{element}.coding"))?;
    let coding = codings
        .iter()
        .find(|c| c.get("system").and_then(Value::as_str) == Some(ICD_10))
        .ok_or_else(|| InvalidElement::new(format!("{element}.coding"), format!("a coding with system {ICD_10} is required")))?;
    let value = coding.get("code").and_then(Value::as_str).unwrap_or_default();
    let code_value = Icd10Code::parse(value).map_err(|e| InvalidElement::new(format!("{element}.coding.code"), e.expected))?;
    let wording = text(code.get("text").unwrap_or(&Value::Null), &format!("{element}.text"))?
        .or_else(|| coding.get("display").and_then(Value::as_str))
        .ok_or_else(|| InvalidElement::new(format!("{element}.text"), "the clinician's wording is required (or the coding's display)"))?;
    Ok(Diagnosis { code: code_value, description: short("diagnosis", &format!("{element}.text"), wording)? })
}

/// An `Encounter` to create: a new record of the patient its `subject` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEncounter {
    /// `subject.reference` as written (`Patient/<id>`, or in a transaction the
    /// `fullUrl` of a patient created with it): the caller resolves it.
    pub subject: String,
    /// `serviceProvider.identifier.value`: the hospital of the visit.
    pub hospital_id: HospitalId,
    /// `type[0].coding` in the record-type system.
    pub record_type: RecordType,
    /// `period.start`: the day of the visit.
    pub visit_date: chrono::NaiveDate,
    /// The title (`type[0].text`) and the diagnosis (`reasonCode[0]`, ICD-10).
    pub content: RecordContent,
}

/// A new record from an `Encounter` (its author is whoever sends it).
pub fn encounter(resource: &Value) -> Result<NewEncounter, InvalidElement> {
    expect_type(resource, "Encounter")?;
    let subject = resource
        .pointer("/subject/reference")
        .and_then(Value::as_str)
        .ok_or_else(|| InvalidElement::new("Encounter.subject.reference", "the patient the visit belongs to is required"))?;
    let hospital = resource.pointer("/serviceProvider/identifier/value").and_then(Value::as_str).ok_or_else(|| {
        InvalidElement::new("Encounter.serviceProvider.identifier.value", "the code of the hospital of the visit is required")
    })?;
    let hospital_id =
        HospitalId::parse(hospital).map_err(|e| InvalidElement::new("Encounter.serviceProvider.identifier.value", e.reason.to_string()))?;
    let kind = array(resource, "Encounter.type")?
        .first()
        .ok_or_else(|| InvalidElement::new("Encounter.type", "the record type and title are required"))?;
    let code = array(kind, "Encounter.type[0].coding")?
        .iter()
        .find(|c| c.get("system").and_then(Value::as_str) == Some(RECORD_TYPE_SYSTEM))
        .and_then(|c| c.get("code"))
        .ok_or_else(|| InvalidElement::new("Encounter.type[0].coding", format!("a coding with system {RECORD_TYPE_SYSTEM} is required")))?;
    let record_type: RecordType = serde_json::from_value(code.clone()).map_err(|_| {
        let known: Vec<String> = RecordType::ALL.iter().filter_map(|t| serde_json::to_value(t).ok()).map(|v| v.to_string()).collect();
        InvalidElement::new("Encounter.type[0].coding.code", format!("one of {}", known.join(", ")))
    })?;
    let title = text(kind.get("text").unwrap_or(&Value::Null), "Encounter.type[0].text")?
        .ok_or_else(|| InvalidElement::new("Encounter.type[0].text", "the record's title is required"))?;
    let start = resource
        .pointer("/period/start")
        .and_then(Value::as_str)
        .ok_or_else(|| InvalidElement::new("Encounter.period.start", "the day of the visit is required"))?;
    let visit_date = start
        .get(..10)
        .and_then(|day| chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok())
        .ok_or_else(|| InvalidElement::new("Encounter.period.start", "a date (YYYY-MM-DD) or a date-time"))?;
    let diagnosis = match array(resource, "Encounter.reasonCode")?.first() {
        Some(reason) => Some(coded_diagnosis(reason, "Encounter.reasonCode[0]")?),
        None => None,
    };
    let content = RecordContent {
        title: short("title", "Encounter.type[0].text", title)?,
        description: None,
        diagnosis,
        treatment: None,
        medications: Vec::new(),
    };
    Ok(NewEncounter { subject: subject.to_owned(), hospital_id, record_type, visit_date, content })
}

/// The reason an `X-Provenance` header (a `Provenance` resource sent with a write)
/// gives for the change: `reason[0].text`, else its first coding's display or code.
pub fn provenance_reason(provenance: &Value) -> Result<ShortText, InvalidElement> {
    expect_type(provenance, "Provenance")?;
    let reason = array(provenance, "Provenance.reason")?
        .first()
        .ok_or_else(|| InvalidElement::new("Provenance.reason", "the reason for the change is required"))?;
    let coding = reason.pointer("/coding/0");
    let written = reason
        .get("text")
        .and_then(Value::as_str)
        .or_else(|| coding.and_then(|c| c.get("display")).and_then(Value::as_str))
        .or_else(|| coding.and_then(|c| c.get("code")).and_then(Value::as_str))
        .ok_or_else(|| InvalidElement::new("Provenance.reason[0]", "a text or a coding"))?;
    short("reason", "Provenance.reason[0]", written)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_condition_needs_an_icd_10_coding_and_wording() {
        let coded = |system: &str, code: &str| json!({"resourceType": "Condition", "code": {"coding": [{"system": system, "code": code, "display": "Essential hypertension"}]}});
        let read = diagnosis(&coded(ICD_10, "i10")).unwrap();
        assert_eq!((read.code.as_str(), read.description.as_str()), ("I10", "Essential hypertension"));
        assert_eq!(diagnosis(&coded("http://snomed.info/sct", "38341003")).unwrap_err().element, "Condition.code.coding");
        assert_eq!(diagnosis(&coded(ICD_10, "hypertension")).unwrap_err().element, "Condition.code.coding.code");
        assert_eq!(diagnosis(&json!({"resourceType": "Patient"})).unwrap_err().element, "resourceType");
    }

    #[test]
    fn an_encounter_needs_a_subject_hospital_type_title_and_day() {
        let visit = json!({
            "resourceType": "Encounter",
            "subject": {"reference": "urn:uuid:2f1c0d0e-0000-4000-8000-000000000001"},
            "serviceProvider": {"identifier": {"value": "HOSP-001"}},
            "type": [{"coding": [{"system": RECORD_TYPE_SYSTEM, "code": "lab_result"}], "text": "Full blood count"}],
            "period": {"start": "2026-03-02T09:30:00+08:00"},
            "reasonCode": [{"coding": [{"system": ICD_10, "code": "D50.9", "display": "Iron deficiency anaemia"}]}],
        });
        let read = encounter(&visit).unwrap();
        assert_eq!((read.record_type, read.visit_date.to_string()), (RecordType::LabResult, "2026-03-02".to_owned()));
        assert_eq!(read.content.diagnosis.unwrap().code.as_str(), "D50.9");
        let without = |pointer: &str| {
            let mut changed = visit.clone();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            changed.pointer_mut(parent).unwrap().as_object_mut().unwrap().remove(key);
            encounter(&changed).unwrap_err().element
        };
        assert_eq!(without("/subject/reference"), "Encounter.subject.reference");
        assert_eq!(without("/serviceProvider/identifier"), "Encounter.serviceProvider.identifier.value");
        assert_eq!(without("/type/0/text"), "Encounter.type[0].text");
        assert_eq!(without("/period/start"), "Encounter.period.start");
        let mut unknown = visit.clone();
        unknown["type"][0]["coding"][0]["code"] = json!("x-ray");
        assert_eq!(encounter(&unknown).unwrap_err().element, "Encounter.type[0].coding.code");
        unknown = visit.clone();
        unknown["reasonCode"][0]["coding"][0]["code"] = json!("anaemia");
        assert_eq!(encounter(&unknown).unwrap_err().element, "Encounter.reasonCode[0].coding.code");
    }

    #[test]
    fn a_provenance_gives_its_reason_as_text_or_coding() {
        let written = json!({"resourceType": "Provenance", "reason": [{"text": "wrong patient chart"}]});
        assert_eq!(provenance_reason(&written).unwrap().as_str(), "wrong patient chart");
        let coded = json!({"resourceType": "Provenance", "reason": [{"coding": [{"code": "PATADMIN"}]}]});
        assert_eq!(provenance_reason(&coded).unwrap().as_str(), "PATADMIN");
        let silent = json!({"resourceType": "Provenance", "reason": []});
        assert_eq!(provenance_reason(&silent).unwrap_err().element, "Provenance.reason");
    }

    #[test]
    fn demographics_refuse_what_they_cannot_keep() {
        let patient = |extra: serde_json::Value| {
            let mut resource = json!({"resourceType": "Patient", "name": [{"text": "Li Wei"}], "birthDate": "1982-07-14"});
            resource.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            resource
        };
        assert_eq!(demographics(&patient(json!({}))).unwrap().gender, Gender::Unknown);
        assert_eq!(demographics(&patient(json!({"gender": "f"}))).unwrap_err().element, "Patient.gender");
        assert_eq!(demographics(&patient(json!({"birthDate": "1982"}))).unwrap_err().element, "Patient.birthDate");
        assert_eq!(
            demographics(&patient(json!({"telecom": [{"system": "fax", "value": "1"}]}))).unwrap_err().element,
            "Patient.telecom[0].system"
        );
        assert_eq!(demographics(&patient(json!({"name": "Li Wei"}))).unwrap_err().element, "Patient.name");
        assert_eq!(demographics(&patient(json!({"name": [{"text": " "}]}))).unwrap_err().element, "Patient.name[0]");
    }
}
