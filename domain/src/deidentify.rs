//! De-identification for research datasets, after HIPAA's Safe Harbor method
//! (45 CFR 164.514(b)(2)): of the 18 identifiers, names, addresses, telephone
//! numbers, e-mail addresses and record numbers are removed; dates are
//! generalised (birth to its year, ages over 89 to "90 or over") or shifted by
//! one offset per subject, so intervals between a subject's visits survive; the
//! subject is a pseudonym that links their records and names no one. Free text
//! (titles, narratives, treatment plans, amendment reasons, the clinician's
//! wording of a diagnosis) is dropped whole: it may hold any identifier. What is
//! kept is coded: record type, ICD-10 code, drug, dose, route, gender.

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use crate::patient::{Patient, PatientStatus};
use crate::phi::Phi;
use crate::record::{MedicalRecord, RecordStatus};
use crate::values::{Dose, Gender, Icd10Code, RecordType, Route, ShortText};

/// How one subject is disguised in one dataset: chosen by the caller from a
/// key the dataset never holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectDisguise {
    /// The pseudonym.
    pub pseudonym: String,
    /// Days every date of the subject moves by (the same for all of them).
    pub date_shift_days: i64,
}

/// One subject of a research dataset.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResearchSubject {
    /// The pseudonym linking the subject's records.
    pub subject: String,
    /// Year of birth; none for subjects aged 90 or over (Safe Harbor aggregates them).
    pub birth_year: Option<i32>,
    /// Aged 90 or over on the day of the export.
    pub aged_90_or_over: bool,
    /// Administrative gender.
    pub gender: Gender,
    /// The subject's records (deleted ones left out), current version only.
    pub records: Vec<ResearchRecord>,
}

/// One record of a research subject.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResearchRecord {
    /// Kind of record.
    pub record_type: Option<RecordType>,
    /// The visit date moved by the subject's shift.
    pub shifted_visit_date: Option<NaiveDate>,
    /// ICD-10 code of the diagnosis, without the clinician's wording.
    pub diagnosis_code: Option<Icd10Code>,
    /// Drugs, doses and routes.
    pub medications: Vec<ResearchMedication>,
}

/// A medication without its free-text frequency.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResearchMedication {
    /// Drug name.
    pub name: ShortText,
    /// Dose.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub dose: Dose,
    /// Route.
    pub route: Route,
}

/// Age in whole years on `today`.
fn age(born: NaiveDate, today: NaiveDate) -> i32 {
    let had_birthday = (today.month(), today.day()) >= (born.month(), born.day());
    today.year() - born.year() - i32::from(!had_birthday)
}

/// The research view of a patient and their records; `None` for a patient whose
/// data may not be processed: erased (nothing readable is left), or restricted
/// (GDPR Art. 18), or whose demographics cannot be read.
pub fn deidentify(patient: &Patient, records: &[MedicalRecord], disguise: &SubjectDisguise, today: NaiveDate) -> Option<ResearchSubject> {
    if patient.status() != PatientStatus::Active || patient.restriction().is_some() {
        return None;
    }
    let demographics = patient.demographics().and_then(Phi::value)?;
    let aged_90_or_over = age(demographics.date_of_birth, today) >= 90;
    let shift = chrono::Duration::days(disguise.date_shift_days);
    let records = records
        .iter()
        .filter(|record| record.status() == RecordStatus::Active)
        .map(|record| {
            let content = record.current().and_then(|version| version.content.value());
            ResearchRecord {
                record_type: record.record_type(),
                shifted_visit_date: record.visit_date().and_then(|date| date.checked_add_signed(shift)),
                diagnosis_code: content.and_then(|c| c.diagnosis.as_ref()).map(|d| d.code.clone()),
                medications: content
                    .map(|c| {
                        c.medications.iter().map(|m| ResearchMedication { name: m.name.clone(), dose: m.dose, route: m.route }).collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    Some(ResearchSubject {
        subject: disguise.pseudonym.clone(),
        birth_year: (!aged_90_or_over).then_some(demographics.date_of_birth.year()),
        aged_90_or_over,
        gender: demographics.gender,
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_count_whole_years_and_birthdays() {
        let born = NaiveDate::from_ymd_opt(1936, 6, 15).unwrap();
        assert_eq!(age(born, NaiveDate::from_ymd_opt(2026, 6, 14).unwrap()), 89);
        assert_eq!(age(born, NaiveDate::from_ymd_opt(2026, 6, 15).unwrap()), 90);
    }
}
