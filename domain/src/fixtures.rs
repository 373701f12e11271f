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
