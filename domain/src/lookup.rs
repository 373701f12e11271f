//! What patients and records are found by: the keys of the search index.
//!
//! A clinician finds a patient by the start of a name, a birth date, a gender or an
//! identifier, and a patient's diagnoses by their ICD-10 code. All of these are
//! PHI, sealed in the log; the search index keeps only keyed hashes of the
//! [`LookupKey`]s below (see `emr_projections::search_index`). This module is the
//! one place that says what matches what: the keys a patient or record *has*, and
//! the key a search *asks for*, normalized the same way so that equal means match.

use chrono::{Datelike, NaiveDate};

use crate::ids::HospitalId;
use crate::values::{Demographics, Gender, Icd10Code, PatientIdentifiers, RecordContent};

/// Longest name prefix that is indexed, in characters: a longer query matches the
/// names that start with its first this many characters.
pub const MAX_NAME_PREFIX: usize = 24;

/// A birth date as precise as a search gives it: a year, a month or a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PartialDate {
    /// `YYYY`.
    Year(i32),
    /// `YYYY-MM`.
    Month(i32, u32),
    /// `YYYY-MM-DD`.
    Day(NaiveDate),
}

impl PartialDate {
    /// Reads `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Option<Self> {
        let parts: Vec<&str> = text.split('-').collect();
        let number =
            |part: &str, len: usize| (part.len() == len && part.bytes().all(|b| b.is_ascii_digit())).then(|| part.parse().ok()).flatten();
        match parts.as_slice() {
            [year] => Some(Self::Year(number(year, 4)?)),
            [year, month] => {
                let (year, month) = (number(year, 4)?, number(month, 2)? as u32);
                NaiveDate::from_ymd_opt(year, month, 1).map(|_| Self::Month(year, month))
            }
            [_, _, _] => NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(Self::Day),
            _ => None,
        }
    }

    /// The three precisions a day is found by.
    fn of_day(day: NaiveDate) -> [Self; 3] {
        [Self::Year(day.year()), Self::Month(day.year(), day.month()), Self::Day(day)]
    }

    fn text(self) -> String {
        match self {
            Self::Year(year) => format!("{year:04}"),
            Self::Month(year, month) => format!("{year:04}-{month:02}"),
            Self::Day(day) => day.format("%Y-%m-%d").to_string(),
        }
    }
}

/// One thing a patient or a record can be found by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LookupKey {
    /// The start of the full name or of one of its words, case-insensitively
    /// (FHIR's default string match), at most [`MAX_NAME_PREFIX`] characters.
    NamePrefix(String),
    /// The whole name exactly as written, spacing normalized (FHIR `:exact`).
    ExactName(String),
    /// A birth date at some precision.
    BirthDate(PartialDate),
    /// Administrative gender.
    Gender(Gender),
    /// An identifier within a namespace (`None`: in any namespace).
    Identifier {
        /// The namespace, or `None` to match the value in any.
        system: Option<String>,
        /// The identifier, exactly.
        value: String,
    },
    /// A record's coded diagnosis.
    Diagnosis(Icd10Code),
}

/// Lower case with runs of white space as one space, trimmed.
fn folded(text: &str) -> String {
    spaced(&text.to_lowercase())
}

fn spaced(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn prefix(text: &str) -> String {
    text.chars().take(MAX_NAME_PREFIX).collect()
}

impl LookupKey {
    /// A name search (`name=wang f`): `None` when nothing but spaces is given.
    pub fn name_prefix(query: &str) -> Option<Self> {
        let folded = folded(query);
        (!folded.is_empty()).then(|| Self::NamePrefix(prefix(&folded)))
    }

    /// An exact name search: `None` when nothing but spaces is given.
    pub fn exact_name(query: &str) -> Option<Self> {
        let spaced = spaced(query);
        (!spaced.is_empty()).then_some(Self::ExactName(spaced))
    }

    /// Which field of the index the key belongs to: keys of different fields never
    /// match each other, and a change of demographics replaces exactly their fields.
    pub fn field(&self) -> Field {
        match self {
            Self::NamePrefix(_) | Self::ExactName(_) => Field::Name,
            Self::BirthDate(_) => Field::BirthDate,
            Self::Gender(_) => Field::Gender,
            Self::Identifier { .. } => Field::Identifier,
            Self::Diagnosis(_) => Field::Diagnosis,
        }
    }

    /// The canonical text of the key: equal texts (within a field) match.
    pub fn text(&self) -> String {
        match self {
            Self::NamePrefix(prefix) => format!("prefix:{prefix}"),
            Self::ExactName(name) => format!("exact:{name}"),
            Self::BirthDate(date) => date.text(),
            Self::Gender(gender) => format!("{gender:?}").to_lowercase(),
            Self::Identifier { system: Some(system), value } => format!("{system}|{value}"),
            Self::Identifier { system: None, value } => format!("*|{value}"),
            Self::Diagnosis(code) => code.as_str().to_owned(),
        }
    }

    /// The keys a patient's demographics give: the prefixes of their name and of
    /// each of its words, the name itself, the birth date at each precision, and
    /// the gender.
    pub fn of_demographics(demographics: &Demographics) -> Vec<Self> {
        let mut keys = Vec::new();
        let name = folded(demographics.full_name.as_str());
        let words: Vec<&str> = name.split(' ').collect();
        let starts = std::iter::once(name.as_str()).chain(if words.len() > 1 { words } else { Vec::new() });
        for start in starts {
            let chars: Vec<char> = start.chars().take(MAX_NAME_PREFIX).collect();
            keys.extend((1..=chars.len()).map(|n| Self::NamePrefix(chars[..n].iter().collect())));
        }
        keys.extend(Self::exact_name(demographics.full_name.as_str()));
        keys.extend(PartialDate::of_day(demographics.date_of_birth).map(Self::BirthDate));
        keys.push(Self::Gender(demographics.gender));
        let mut seen = std::collections::HashSet::new();
        keys.retain(|key| seen.insert(key.clone()));
        keys
    }

    /// The keys a patient's identifiers give: each with and without its namespace
    /// (the MRN's namespace is the registering hospital's, [`crate::values::Mrn::system`]).
    pub fn of_identifiers(hospital: &HospitalId, identifiers: &PatientIdentifiers) -> Vec<Self> {
        let mrn = (crate::values::Mrn::system(hospital), identifiers.mrn.as_str().to_owned());
        let external = identifiers.external.iter().map(|e| (e.system.as_str().to_owned(), e.value.as_str().to_owned()));
        std::iter::once(mrn)
            .chain(external)
            .flat_map(|(system, value)| {
                [Self::Identifier { system: None, value: value.clone() }, Self::Identifier { system: Some(system), value }]
            })
            .collect()
    }

    /// The keys a record version is found by: its diagnosis code.
    pub fn of_record(content: &RecordContent) -> Vec<Self> {
        content.diagnosis.iter().map(|diagnosis| Self::Diagnosis(diagnosis.code.clone())).collect()
    }
}

/// The fields of the search index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// Names (prefixes and exact).
    Name,
    /// Birth dates.
    BirthDate,
    /// Gender.
    Gender,
    /// Identifiers.
    Identifier,
    /// Diagnosis codes of records.
    Diagnosis,
}

impl Field {
    /// Its name in the index.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::BirthDate => "birthdate",
            Self::Gender => "gender",
            Self::Identifier => "identifier",
            Self::Diagnosis => "diagnosis",
        }
    }

    /// Whether a change of demographics replaces this field's keys.
    pub fn is_demographic(self) -> bool {
        matches!(self, Self::Name | Self::BirthDate | Self::Gender)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fixtures::{demographics, identifiers};

    fn hospital() -> HospitalId {
        HospitalId::parse("HOSP-001").unwrap()
    }

    #[test]
    fn a_patient_is_found_by_the_start_of_their_name_or_of_any_word_of_it_in_any_case() {
        let keys = LookupKey::of_demographics(&demographics("Wang  Fang"));
        for query in ["w", "WANG", "wang f", "Wang Fang", "fa", "FANG"] {
            assert!(keys.contains(&LookupKey::name_prefix(query).unwrap()), "{query}");
        }
        for query in ["ang", "fang w", "wang fang x"] {
            assert!(!keys.contains(&LookupKey::name_prefix(query).unwrap()), "{query}");
        }
        assert!(keys.contains(&LookupKey::exact_name("Wang Fang").unwrap()));
        assert!(!keys.contains(&LookupKey::exact_name("wang fang").unwrap()), "exact is case-sensitive");
        assert_eq!(LookupKey::name_prefix("   "), None);
    }

    #[test]
    fn names_without_spaces_are_found_by_their_leading_characters() {
        let keys = LookupKey::of_demographics(&demographics("王芳"));
        assert!(keys.contains(&LookupKey::name_prefix("王").unwrap()));
        assert!(keys.contains(&LookupKey::name_prefix("王芳").unwrap()));
        assert!(!keys.contains(&LookupKey::name_prefix("芳").unwrap()));
    }

    #[test]
    fn a_birth_date_is_found_by_its_year_month_or_day_and_identifiers_with_or_without_namespace() {
        let mut details = demographics("Li Lei");
        details.date_of_birth = NaiveDate::from_ymd_opt(1980, 2, 29).unwrap();
        let mut keys = LookupKey::of_demographics(&details);
        keys.extend(LookupKey::of_identifiers(&hospital(), &identifiers()));
        for date in ["1980", "1980-02", "1980-02-29"] {
            assert!(keys.contains(&LookupKey::BirthDate(PartialDate::parse(date).unwrap())), "{date}");
        }
        assert!(!keys.contains(&LookupKey::BirthDate(PartialDate::parse("1980-03").unwrap())));
        let mrn = identifiers().mrn.as_str().to_owned();
        assert!(keys.contains(&LookupKey::Identifier { system: None, value: mrn.clone() }));
        assert!(keys.contains(&LookupKey::Identifier { system: Some("urn:emr-ledger:hospital:HOSP-001:mrn".into()), value: mrn.clone() }));
        assert!(!keys.contains(&LookupKey::Identifier { system: Some("urn:emr-ledger:hospital:HOSP-002:mrn".into()), value: mrn }));
    }

    #[test]
    fn partial_dates_refuse_what_is_not_a_calendar_date() {
        assert_eq!(PartialDate::parse("1980-13"), None);
        assert_eq!(PartialDate::parse("1981-02-29"), None);
        assert_eq!(PartialDate::parse("80"), None);
        assert_eq!(PartialDate::parse("1980-1"), None);
        assert_eq!(PartialDate::parse("1980-01-02").map(PartialDate::text).as_deref(), Some("1980-01-02"));
    }

    #[test]
    fn keys_of_different_fields_never_share_a_text_within_their_field() {
        let name = LookupKey::name_prefix("1980").unwrap();
        let date = LookupKey::BirthDate(PartialDate::Year(1980));
        assert_ne!(name.field(), date.field());
        assert_ne!(LookupKey::name_prefix("ab").unwrap().text(), LookupKey::exact_name("ab").unwrap().text());
    }
}
