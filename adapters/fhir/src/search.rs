//! The search parameters of patients (`Patient?`, [`PatientSearch`]) and of a
//! patient's records (`Encounter?`, `Condition?`, [`RecordSearch`]): read
//! from the query string into bounds the record index answers, and written back
//! as the canonical query of a Bundle's `self` and `next` links.
//!
//! Served: `patient` (required), `_id`, `date` (the visit date, day precision),
//! `_lastUpdated` (an instant or a day), each with the prefixes `eq` `ge` `gt`
//! `le` `lt` and repeatable to form a range; `_sort` (`date`, `-date`,
//! `_lastUpdated`, `-_lastUpdated`); `_count` (1–500) and `_offset`; `_include`
//! of the patient (`Encounter:subject`, `Condition:subject`); for Encounter, `type`
//! (the record type) and `status` (`finished`, `entered-in-error`); for
//! Condition, `code` (ICD-10, from the search index: diagnoses are sealed). `_format`
//! and `_pretty` are accepted and ignored; any other parameter is refused, so a
//! client never mistakes an unfiltered answer for a filtered one.

use chrono::{DateTime, Days, Duration, NaiveDate, Utc};
use emr_domain::lookup::{LookupKey, PartialDate};
use emr_domain::values::{Gender, Icd10Code};

/// A search parameter that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {expected}")]
pub struct InvalidSearch {
    /// The parameter at fault.
    pub parameter: String,
    /// What it accepts.
    pub expected: String,
}

fn invalid(parameter: &str, expected: impl Into<String>) -> InvalidSearch {
    InvalidSearch { parameter: parameter.to_owned(), expected: expected.into() }
}

/// How matches are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Most recent visit first (`-date`, the default).
    #[default]
    DateDescending,
    /// Oldest visit first (`date`).
    DateAscending,
    /// Most recently changed first (`-_lastUpdated`).
    UpdatedDescending,
    /// Least recently changed first (`_lastUpdated`).
    UpdatedAscending,
}

impl Sort {
    fn parameter(self) -> &'static str {
        match self {
            Self::DateDescending => "-date",
            Self::DateAscending => "date",
            Self::UpdatedDescending => "-_lastUpdated",
            Self::UpdatedAscending => "_lastUpdated",
        }
    }
}

/// A search of a patient's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSearch {
    /// The patient (`patient=<id>` or `Patient/<id>`), as given without the prefix.
    pub patient: String,
    /// Only this record (`_id`).
    pub id: Option<String>,
    /// Visits on or after this day.
    pub visit_from: Option<NaiveDate>,
    /// Visits on or before this day.
    pub visit_to: Option<NaiveDate>,
    /// Changed at or after this instant.
    pub updated_from: Option<DateTime<Utc>>,
    /// Changed before this instant (exclusive).
    pub updated_before: Option<DateTime<Utc>>,
    /// The order.
    pub sort: Sort,
    /// Page size.
    pub count: u32,
    /// Matches to skip.
    pub offset: u32,
    /// `_include=<type>:subject` (or `:patient`): the patient too, as it is named,
    /// so the caller can check it is the searched type's.
    pub include: Option<String>,
    /// `type` (Encounter): the record type's code (`lab_result`), its system
    /// (`urn:emr-ledger:record-type|`) optional.
    pub record_type: Option<String>,
    /// `status` (Encounter): `finished` (the record stands) or `entered-in-error`
    /// (deleted), as the record index names them (`active`, `deleted`).
    pub status: Option<&'static str>,
    /// `code` (Condition): ICD-10 codes, any of which the diagnosis must be
    /// (`I10` or `http://hl7.org/fhir/sid/icd-10|I10`, comma-separated).
    pub code: Option<Vec<Icd10Code>>,
}

impl RecordSearch {
    /// The parameters that only an Encounter search serves, if any was given.
    pub fn encounter_only(&self) -> Option<&'static str> {
        match (&self.record_type, &self.status) {
            (Some(_), _) => Some("type"),
            (_, Some(_)) => Some("status"),
            _ => None,
        }
    }
}

/// The system of a `type` token naming a record type.
const RECORD_TYPE_TOKEN: &str = "urn:emr-ledger:record-type|";

/// The `_include` values served: the searched resource's patient.
const INCLUDES: [&str; 4] = ["Encounter:subject", "Encounter:patient", "Condition:subject", "Condition:patient"];

/// A comparison prefix and its value (`ge2026-01-01` → (`ge`, `2026-01-01`)).
fn prefixed(value: &str) -> (&str, &str) {
    match value.get(..2) {
        Some(prefix @ ("eq" | "ne" | "gt" | "lt" | "ge" | "le" | "sa" | "eb" | "ap")) => (prefix, &value[2..]),
        _ => ("eq", value),
    }
}

fn day(parameter: &str, text: &str) -> Result<NaiveDate, InvalidSearch> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| invalid(parameter, "a day (YYYY-MM-DD), optionally prefixed eq, ge, gt, le or lt"))
}

fn later(current: Option<NaiveDate>, bound: NaiveDate) -> Option<NaiveDate> {
    Some(current.map_or(bound, |c| c.max(bound)))
}

fn earlier(current: Option<NaiveDate>, bound: NaiveDate) -> Option<NaiveDate> {
    Some(current.map_or(bound, |c| c.min(bound)))
}

/// The `_lastUpdated` bounds of a search: at or after `from`, before `before`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdatedWindow {
    /// Changed at or after.
    pub from: Option<DateTime<Utc>>,
    /// Changed before (exclusive).
    pub before: Option<DateTime<Utc>>,
}

impl UpdatedWindow {
    /// Narrows the window by one `_lastUpdated` value: an instant or a day, with
    /// the prefixes `eq` `ge` `gt` `le` `lt`; repeated values intersect.
    fn narrow(&mut self, name: &str, value: &str) -> Result<(), InvalidSearch> {
        let (prefix, text) = prefixed(value);
        let (first, after) = instant_bounds(text).ok_or_else(|| invalid(name, "an instant (RFC 3339) or a day, optionally prefixed"))?;
        let from = |at: DateTime<Utc>, window: &mut Self| window.from = Some(window.from.map_or(at, |c| c.max(at)));
        let before = |at: DateTime<Utc>, window: &mut Self| window.before = Some(window.before.map_or(at, |c| c.min(at)));
        match prefix {
            "eq" => {
                from(first, self);
                before(after, self);
            }
            "ge" => from(first, self),
            "gt" => from(after, self),
            "le" => before(after, self),
            "lt" => before(first, self),
            _ => return Err(invalid(name, "the prefixes eq, ge, gt, le and lt")),
        }
        Ok(())
    }

    /// The window as `_lastUpdated` values.
    fn parameters(&self) -> Vec<String> {
        let instant = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        self.from.map(|at| format!("ge{}", instant(at))).into_iter().chain(self.before.map(|at| format!("lt{}", instant(at)))).collect()
    }
}

/// An instant, or a day (its first and last instants).
fn instant_bounds(text: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        let at = at.to_utc();
        return Some((at, at + Duration::microseconds(1)));
    }
    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let start = day.and_hms_opt(0, 0, 0)?.and_utc();
    Some((start, start + Duration::days(1)))
}

impl RecordSearch {
    /// Reads the query string's `(name, value)` pairs.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, InvalidSearch> {
        let mut search = Self {
            patient: String::new(),
            id: None,
            visit_from: None,
            visit_to: None,
            updated_from: None,
            updated_before: None,
            sort: Sort::default(),
            count: 50,
            offset: 0,
            include: None,
            record_type: None,
            status: None,
            code: None,
        };
        let mut patient = None;
        for (name, value) in pairs {
            match name {
                "patient" => patient = Some(value.strip_prefix("Patient/").unwrap_or(value).to_owned()),
                "_id" => search.id = Some(value.to_owned()),
                "date" => {
                    let (prefix, text) = prefixed(value);
                    let day = day(name, text)?;
                    let next = || day.checked_add_days(Days::new(1)).ok_or_else(|| invalid(name, "a day within the calendar"));
                    let previous = || day.checked_sub_days(Days::new(1)).ok_or_else(|| invalid(name, "a day within the calendar"));
                    match prefix {
                        "eq" => (search.visit_from, search.visit_to) = (later(search.visit_from, day), earlier(search.visit_to, day)),
                        "ge" => search.visit_from = later(search.visit_from, day),
                        "gt" => search.visit_from = later(search.visit_from, next()?),
                        "le" => search.visit_to = earlier(search.visit_to, day),
                        "lt" => search.visit_to = earlier(search.visit_to, previous()?),
                        _ => return Err(invalid(name, "the prefixes eq, ge, gt, le and lt")),
                    }
                }
                "_lastUpdated" => {
                    let mut window = UpdatedWindow { from: search.updated_from, before: search.updated_before };
                    window.narrow(name, value)?;
                    (search.updated_from, search.updated_before) = (window.from, window.before);
                }
                "_sort" => {
                    search.sort = match value {
                        "date" => Sort::DateAscending,
                        "-date" => Sort::DateDescending,
                        "_lastUpdated" => Sort::UpdatedAscending,
                        "-_lastUpdated" => Sort::UpdatedDescending,
                        _ => return Err(invalid(name, "date, -date, _lastUpdated or -_lastUpdated")),
                    }
                }
                "_count" => {
                    search.count = value.parse().ok().filter(|n| (1..=500).contains(n)).ok_or_else(|| invalid(name, "1 to 500"))?;
                }
                "_offset" => search.offset = value.parse().map_err(|_| invalid(name, "a number of matches to skip"))?,
                "_include" if INCLUDES.contains(&value) => search.include = Some(value.to_owned()),
                "type" => {
                    let code = value.strip_prefix(RECORD_TYPE_TOKEN).unwrap_or(value);
                    let known = emr_domain::values::RecordType::ALL.iter().filter_map(|t| serde_json::to_value(t).ok());
                    if !known.clone().any(|t| t == code) {
                        let names: Vec<String> = known.map(|t| t.as_str().unwrap_or_default().to_owned()).collect();
                        return Err(invalid(name, format!("a record type: {}", names.join(", "))));
                    }
                    search.record_type = Some(code.to_owned());
                }
                "status" => {
                    search.status = Some(match value {
                        "finished" => "active",
                        "entered-in-error" => "deleted",
                        _ => return Err(invalid(name, "finished or entered-in-error")),
                    });
                }
                "code" if search.code.is_some() => return Err(invalid(name, "once, with the codes separated by commas")),
                "code" => {
                    let system = format!("{}|", crate::resources::ICD_10);
                    let codes = value
                        .split(',')
                        .map(|code| Icd10Code::parse(code.trim().strip_prefix(system.as_str()).unwrap_or(code.trim())))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|_| invalid(name, format!("ICD-10 codes (I10 or {system}I10), comma-separated")))?;
                    search.code = Some(codes);
                }
                "_include" => return Err(invalid(name, "the searched type's patient: Encounter:subject or Condition:subject")),
                "_format" | "_pretty" => {}
                other => {
                    return Err(invalid(
                        other,
                        "not served here; the parameters are patient, _id, date, _lastUpdated, type, status, code, _sort, _count, _offset, _include",
                    ));
                }
            }
        }
        search.patient = patient.filter(|p| !p.is_empty()).ok_or_else(|| invalid("patient", "required: ?patient=<id>"))?;
        Ok(search)
    }

    /// The search as a canonical query string, at `offset`.
    pub fn to_query(&self, offset: u32) -> String {
        let mut pairs = vec![("patient".to_owned(), self.patient.clone())];
        let mut push = |name: &str, value: String| pairs.push((name.to_owned(), value));
        if let Some(id) = &self.id {
            push("_id", id.clone());
        }
        if let Some(from) = self.visit_from {
            push("date", format!("ge{from}"));
        }
        if let Some(to) = self.visit_to {
            push("date", format!("le{to}"));
        }
        for bound in (UpdatedWindow { from: self.updated_from, before: self.updated_before }).parameters() {
            push("_lastUpdated", bound);
        }
        if self.sort != Sort::default() {
            push("_sort", self.sort.parameter().to_owned());
        }
        if let Some(include) = &self.include {
            push("_include", include.clone());
        }
        if let Some(record_type) = &self.record_type {
            push("type", record_type.clone());
        }
        if let Some(status) = self.status {
            push("status", if status == "active" { "finished" } else { "entered-in-error" }.to_owned());
        }
        if let Some(codes) = &self.code {
            push("code", codes.iter().map(Icd10Code::as_str).collect::<Vec<_>>().join(","));
        }
        push("_count", self.count.to_string());
        push("_offset", offset.to_string());
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
    }
}

/// A search of patients (`Patient?`), answered from the search index.
///
/// Served: `_id`; `name` (the start of the name or of a word of it, any case) and
/// `name:exact`; `birthdate` as a year, month or day (`eq` only: birth dates are
/// sealed, so the index holds no order to search ranges in); `gender`;
/// `identifier` as `system|value` or `value`; `_lastUpdated` (as for records);
/// `_sort` by `_lastUpdated` only (id order by default); `_count` (1–500) and `_offset`.
/// A comma separates alternatives; repeated parameters must all match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientSearch {
    /// Only these patients (`_id`, comma-separated).
    pub ids: Option<Vec<String>>,
    /// What is searched: a patient matches when, for every group, they have one
    /// of its keys.
    pub groups: Vec<Vec<LookupKey>>,
    /// `_lastUpdated`: when the patient last changed.
    pub updated: UpdatedWindow,
    /// `_sort`: `None` in id order, else by last change (`true`: most recent first).
    pub newest_first: Option<bool>,
    /// Page size.
    pub count: u32,
    /// Matches to skip.
    pub offset: u32,
    /// The search parameters as given, for the Bundle's links.
    given: Vec<(String, String)>,
}

const PATIENT_PARAMETERS: &str =
    "not served here; the parameters are _id, name, name:exact, birthdate, gender, identifier, _count, _offset";

fn lookup_key(name: &str, value: &str) -> Result<LookupKey, InvalidSearch> {
    match name {
        "name" => LookupKey::name_prefix(value).ok_or_else(|| invalid(name, "some letters of the name")),
        "name:exact" => LookupKey::exact_name(value).ok_or_else(|| invalid(name, "the whole name")),
        "birthdate" => {
            let (prefix, text) = prefixed(value);
            match (prefix, PartialDate::parse(text)) {
                ("eq", Some(date)) => Ok(LookupKey::BirthDate(date)),
                _ => Err(invalid(
                    name,
                    "a year, month or day (YYYY, YYYY-MM, YYYY-MM-DD), without a prefix or with eq: birth dates are sealed, so ranges cannot be searched",
                )),
            }
        }
        "gender" => match value {
            "male" => Ok(LookupKey::Gender(Gender::Male)),
            "female" => Ok(LookupKey::Gender(Gender::Female)),
            "other" => Ok(LookupKey::Gender(Gender::Other)),
            "unknown" => Ok(LookupKey::Gender(Gender::Unknown)),
            _ => Err(invalid(name, "male, female, other or unknown")),
        },
        "identifier" => match value.split_once('|') {
            None if !value.is_empty() => Ok(LookupKey::Identifier { system: None, value: value.to_owned() }),
            Some((system, identifier)) if !system.is_empty() && !identifier.is_empty() => {
                Ok(LookupKey::Identifier { system: Some(system.to_owned()), value: identifier.to_owned() })
            }
            _ => Err(invalid(name, "system|value or value")),
        },
        other => Err(invalid(other, PATIENT_PARAMETERS)),
    }
}

impl PatientSearch {
    /// Reads the query string's `(name, value)` pairs.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, InvalidSearch> {
        let mut search = Self {
            ids: None,
            groups: Vec::new(),
            updated: UpdatedWindow::default(),
            newest_first: None,
            count: 50,
            offset: 0,
            given: Vec::new(),
        };
        for (name, value) in pairs {
            match name {
                "_count" => {
                    search.count = value.parse().ok().filter(|n| (1..=500).contains(n)).ok_or_else(|| invalid(name, "1 to 500"))?;
                    continue;
                }
                "_offset" => {
                    search.offset = value.parse().map_err(|_| invalid(name, "a number of matches to skip"))?;
                    continue;
                }
                "_format" | "_pretty" => continue,
                "_lastUpdated" => search.updated.narrow(name, value)?,
                "_sort" => {
                    search.newest_first = Some(match value {
                        "_lastUpdated" => false,
                        "-_lastUpdated" => true,
                        _ => {
                            return Err(invalid(
                                name,
                                "_lastUpdated or -_lastUpdated (names and birth dates are sealed: they have no order)",
                            ));
                        }
                    })
                }
                "_id" if search.ids.is_some() => return Err(invalid(name, "once, with the ids separated by commas")),
                "_id" => search.ids = Some(value.split(',').map(|id| id.trim().to_owned()).filter(|id| !id.is_empty()).collect()),
                _ => {
                    let keys = value.split(',').map(|alternative| lookup_key(name, alternative.trim())).collect::<Result<Vec<_>, _>>()?;
                    search.groups.push(keys);
                }
            }
            search.given.push((name.to_owned(), value.to_owned()));
        }
        Ok(search)
    }

    /// The search as a query string, at `offset`.
    pub fn to_query(&self, offset: u32) -> String {
        let paging = [("_count".to_owned(), self.count.to_string()), ("_offset".to_owned(), offset.to_string())];
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(self.given.iter().chain(&paging)).finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(query: &[(&'static str, &'static str)]) -> Result<RecordSearch, InvalidSearch> {
        RecordSearch::parse(query.iter().copied())
    }

    #[test]
    fn dates_with_prefixes_become_a_closed_range_of_days() {
        let search = parse(&[("patient", "Patient/p1"), ("date", "gt2026-01-31"), ("date", "lt2026-03-01")]).unwrap();
        assert_eq!(search.patient, "p1");
        assert_eq!((search.visit_from, search.visit_to), (NaiveDate::from_ymd_opt(2026, 2, 1), NaiveDate::from_ymd_opt(2026, 2, 28)));
        let one_day = parse(&[("patient", "p1"), ("date", "2026-10-01")]).unwrap();
        assert_eq!(one_day.visit_from, one_day.visit_to);
        assert_eq!(parse(&[("patient", "p1"), ("date", "ap2026-10-01")]).unwrap_err().parameter, "date");
        assert_eq!(parse(&[("patient", "p1"), ("date", "2026-10")]).unwrap_err().parameter, "date");
    }

    #[test]
    fn last_updated_takes_instants_or_days_and_ends_exclusively() {
        let search = parse(&[("patient", "p1"), ("_lastUpdated", "ge2026-12-01"), ("_lastUpdated", "le2026-12-01T10:00:00Z")]).unwrap();
        assert_eq!(search.updated_from.unwrap().to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(search.updated_before.unwrap(), DateTime::parse_from_rfc3339("2026-12-01T10:00:00.000001Z").unwrap().to_utc());
    }

    fn patients(query: &[(&'static str, &'static str)]) -> Result<PatientSearch, InvalidSearch> {
        PatientSearch::parse(query.iter().copied())
    }

    #[test]
    fn a_patient_search_ands_its_parameters_and_ors_the_alternatives_of_one() {
        let search = patients(&[("name", "Wang,li"), ("birthdate", "eq1980-02"), ("gender", "female"), ("_count", "5")]).unwrap();
        assert_eq!(search.groups.len(), 3);
        assert_eq!(search.groups[0], vec![LookupKey::name_prefix("wang").unwrap(), LookupKey::name_prefix("LI").unwrap()]);
        assert_eq!(search.groups[1], vec![LookupKey::BirthDate(PartialDate::Month(1980, 2))]);
        assert_eq!(search.count, 5);
        let recent = patients(&[("_lastUpdated", "ge2026-12-01"), ("_sort", "-_lastUpdated")]).unwrap();
        assert_eq!(
            (recent.updated.from.map(|at| at.to_rfc3339()), recent.newest_first),
            (Some("2026-12-01T00:00:00+00:00".into()), Some(true))
        );
        assert_eq!(patients(&[("_sort", "birthdate")]).unwrap_err().parameter, "_sort");
        let identifier = patients(&[("identifier", "urn:emr-ledger:hospital:H1:mrn|MRN-1"), ("identifier", "MRN-1")]).unwrap();
        assert_eq!(
            identifier.groups[0],
            vec![LookupKey::Identifier { system: Some("urn:emr-ledger:hospital:H1:mrn".into()), value: "MRN-1".into() }]
        );
        assert_eq!(identifier.groups[1], vec![LookupKey::Identifier { system: None, value: "MRN-1".into() }]);
        let again: Vec<(String, String)> = url::form_urlencoded::parse(search.to_query(10).as_bytes()).into_owned().collect();
        let again = PatientSearch::parse(again.iter().map(|(n, v)| (n.as_str(), v.as_str()))).unwrap();
        assert_eq!(again.groups, search.groups);
        assert_eq!(again.offset, 10);
    }

    #[test]
    fn patient_searches_the_sealed_index_cannot_answer_are_refused_by_name() {
        for (name, value) in [
            ("birthdate", "ge1980-01-01"),
            ("birthdate", "1980-13"),
            ("gender", "f"),
            ("identifier", "system|"),
            ("name", " "),
            ("name:contains", "ang"),
            ("address", "Beijing"),
        ] {
            assert_eq!(patients(&[(name, value)]).unwrap_err().parameter, name, "{name}={value}");
        }
    }

    #[test]
    fn the_canonical_query_reads_back_as_the_same_search() {
        let search = parse(&[
            ("patient", "p1"),
            ("date", "ge2026-01-01"),
            ("_lastUpdated", "gt2026-12-01T10:00:00+08:00"),
            ("_sort", "_lastUpdated"),
            ("_include", "Encounter:subject"),
            ("type", "urn:emr-ledger:record-type|lab_result"),
            ("status", "entered-in-error"),
            ("code", "http://hl7.org/fhir/sid/icd-10|i10,E11.9"),
            ("_count", "10"),
        ])
        .unwrap();
        let query = search.to_query(20);
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let again = RecordSearch::parse(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))).unwrap();
        assert_eq!(again, RecordSearch { offset: 20, ..search });
    }

    #[test]
    fn unknown_parameters_and_a_missing_patient_are_refused() {
        assert_eq!(parse(&[("patient", "p1"), ("category", "problem-list-item")]).unwrap_err().parameter, "category");
        assert_eq!(parse(&[("patient", "p1"), ("code", "not-a-code")]).unwrap_err().parameter, "code");
        assert_eq!(parse(&[("patient", "p1"), ("code", "I10"), ("code", "E11")]).unwrap_err().parameter, "code");
        assert_eq!(parse(&[("_count", "10")]).unwrap_err().parameter, "patient");
        assert_eq!(parse(&[("patient", "p1"), ("_count", "0")]).unwrap_err().parameter, "_count");
        assert!(parse(&[("patient", "p1"), ("_format", "json")]).is_ok());
        assert_eq!(parse(&[("patient", "p1"), ("_include", "Encounter:participant")]).unwrap_err().parameter, "_include");
        assert_eq!(parse(&[("patient", "p1"), ("type", "x-ray")]).unwrap_err().parameter, "type");
        assert_eq!(parse(&[("patient", "p1"), ("status", "planned")]).unwrap_err().parameter, "status");
    }
}
