//! Fixtures shared by the aggregates' tests.

use chrono::{DateTime, NaiveDate, Utc};

use crate::values::{
    Demographics, Diagnosis, Dose, DoseUnit, Gender, Icd10Code, LongText, Medication, Mrn, PatientIdentifiers,
    RecordContent, Route, ShortText,
};

pub(crate) fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T09:00:00Z").unwrap().to_utc()
}

pub(crate) fn text(value: &str) -> ShortText {
    ShortText::parse("text", value).unwrap()
}

pub(crate) fn demographics(name: &str) -> Demographics {
    Demographics {
        full_name: text(name),
        date_of_birth: NaiveDate::from_ymd_opt(1980, 5, 17).unwrap(),
        gender: Gender::Female,
        phone_number: None,
        email: None,
        address: None,
    }
}

pub(crate) fn identifiers() -> PatientIdentifiers {
    PatientIdentifiers { mrn: Mrn::parse("MRN-0001").unwrap(), external: vec![] }
}

pub(crate) fn content(title: &str) -> RecordContent {
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
