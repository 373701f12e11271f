//! Retention (the seed's data_retention_policies): how long each kind of record
//! must be kept, per jurisdiction, and what that means for erasure.
//!
//! PHI is sealed with one key per patient, so disposal works per patient: once
//! the retention of every record of a patient has ended, the patient enters the
//! review queue, and an approved disposal crypto-shreds them (an erasure with
//! reason `retention_expired`; the log keeps its hashes and still verifies).
//! Before that, a legal retention duty refuses a patient's own erasure request;
//! a court or regulator's order is not refused by it. Legal holds refuse both
//! (the patient aggregate enforces those).

use std::collections::BTreeMap;

use chrono::{Months, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::ids::HospitalId;
use crate::patient::ErasureReason;
use crate::values::RecordType;

/// One jurisdiction's retention periods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// The jurisdiction (e.g. `US-CA`, `DE`), for reports.
    pub jurisdiction: String,
    /// The hospitals it governs.
    pub hospitals: Vec<HospitalId>,
    /// Years to keep each record type, counted from the visit date.
    #[serde(default)]
    pub years: BTreeMap<RecordType, u32>,
    /// Years for record types not listed.
    pub default_years: u32,
}

/// A record as far as retention cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedRecord {
    /// Its type.
    pub record_type: RecordType,
    /// Where the visit was.
    pub hospital_id: HospitalId,
    /// When.
    pub visit_date: NaiveDate,
}

/// Every jurisdiction's policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RetentionSchedule {
    policies: Vec<RetentionPolicy>,
}

/// Why retention refuses an erasure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    /// The law requires keeping the records until `until`.
    #[error("a legal retention duty ({jurisdiction}) keeps this patient's records until {until}")]
    RetentionDuty {
        /// The jurisdiction whose policy requires it.
        jurisdiction: String,
        /// The first day they may be disposed of.
        until: NaiveDate,
    },
    /// A disposal for expired retention before it expired.
    #[error("the retention of this patient's records ends on {until}, not before")]
    NotYetDue {
        /// The first day they may be disposed of.
        until: NaiveDate,
    },
}

impl RetentionSchedule {
    /// A schedule of `policies`.
    pub fn new(policies: Vec<RetentionPolicy>) -> Self {
        Self { policies }
    }

    /// Whether any policy is configured.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The policies.
    pub fn policies(&self) -> &[RetentionPolicy] {
        &self.policies
    }

    /// The day a record's retention ends and the jurisdiction requiring it
    /// (none when no policy governs its hospital).
    pub fn retained_until(&self, record: &RetainedRecord) -> Option<(NaiveDate, &str)> {
        let policy = self.policies.iter().find(|policy| policy.hospitals.contains(&record.hospital_id))?;
        let years = policy.years.get(&record.record_type).copied().unwrap_or(policy.default_years);
        let until = record.visit_date.checked_add_months(Months::new(years.saturating_mul(12))).unwrap_or(NaiveDate::MAX);
        Some((until, policy.jurisdiction.as_str()))
    }

    /// The day the last of `records` may be disposed of, and the jurisdiction
    /// requiring it (none when nothing retains them).
    pub fn patient_retained_until(&self, records: &[RetainedRecord]) -> Option<(NaiveDate, &str)> {
        records.iter().filter_map(|record| self.retained_until(record)).max_by_key(|(until, _)| *until)
    }

    /// Whether an erasure for `reason` of a patient with `records` may go ahead on `today`.
    pub fn check_erasure(&self, reason: ErasureReason, records: &[RetainedRecord], today: NaiveDate) -> Result<(), RetentionError> {
        let Some((until, jurisdiction)) = self.patient_retained_until(records) else { return Ok(()) };
        match reason {
            ErasureReason::LegalOrder => Ok(()),
            _ if today >= until => Ok(()),
            ErasureReason::PatientRequest => Err(RetentionError::RetentionDuty { jurisdiction: jurisdiction.to_owned(), until }),
            ErasureReason::RetentionExpired => Err(RetentionError::NotYetDue { until }),
        }
    }

    /// What is wrong with the schedule, if anything.
    pub fn problems(&self) -> Vec<String> {
        let mut seen = std::collections::BTreeSet::new();
        let mut problems = Vec::new();
        for policy in &self.policies {
            if policy.jurisdiction.trim().is_empty() {
                problems.push("a retention policy needs a jurisdiction".to_owned());
            }
            for hospital in &policy.hospitals {
                if !seen.insert(hospital.clone()) {
                    problems.push(format!("hospital {hospital} is governed by two retention policies"));
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> RetentionSchedule {
        RetentionSchedule::new(vec![RetentionPolicy {
            jurisdiction: "DE".into(),
            hospitals: vec![HospitalId::parse("HOSP-001").unwrap()],
            years: [(RecordType::Imaging, 30)].into_iter().collect(),
            default_years: 10,
        }])
    }

    fn record(record_type: RecordType, year: i32, hospital: &str) -> RetainedRecord {
        RetainedRecord {
            record_type,
            hospital_id: HospitalId::parse(hospital).unwrap(),
            visit_date: NaiveDate::from_ymd_opt(year, 3, 1).unwrap(),
        }
    }

    fn day(year: i32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, 6, 1).unwrap()
    }

    #[test]
    fn a_patient_is_retained_until_their_longest_kept_record_expires() {
        let records = [record(RecordType::Consultation, 2000, "HOSP-001"), record(RecordType::Imaging, 1990, "HOSP-001")];
        assert_eq!(schedule().patient_retained_until(&records), Some((NaiveDate::from_ymd_opt(2020, 3, 1).unwrap(), "DE")));
        assert_eq!(schedule().patient_retained_until(&[record(RecordType::Imaging, 2000, "HOSP-999")]), None, "no policy, no duty");
    }

    #[test]
    fn a_retention_duty_refuses_the_patients_request_but_not_a_court_order() {
        let records = [record(RecordType::Consultation, 2020, "HOSP-001")];
        let duty = schedule().check_erasure(ErasureReason::PatientRequest, &records, day(2026));
        assert_eq!(
            duty,
            Err(RetentionError::RetentionDuty { jurisdiction: "DE".into(), until: NaiveDate::from_ymd_opt(2030, 3, 1).unwrap() })
        );
        assert_eq!(schedule().check_erasure(ErasureReason::LegalOrder, &records, day(2026)), Ok(()));
        assert_eq!(schedule().check_erasure(ErasureReason::PatientRequest, &records, day(2031)), Ok(()));
    }

    #[test]
    fn disposal_waits_for_the_end_of_retention() {
        let records = [record(RecordType::Consultation, 2015, "HOSP-001")];
        let until = NaiveDate::from_ymd_opt(2025, 3, 1).unwrap();
        assert_eq!(
            schedule().check_erasure(ErasureReason::RetentionExpired, &records, day(2024)),
            Err(RetentionError::NotYetDue { until })
        );
        assert_eq!(schedule().check_erasure(ErasureReason::RetentionExpired, &records, day(2025)), Ok(()));
    }

    #[test]
    fn one_hospital_under_two_policies_is_a_configuration_error() {
        let mut twice = schedule();
        twice.policies.push(twice.policies[0].clone());
        assert_eq!(twice.problems().len(), 1);
    }
}
