//! Dashboard counters: records created per type per day, active and erased
//! patients per hospital. Counters move by deltas; exactly-once comes from the
//! checkpoint being in the same transaction.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use emr_domain::patient::PatientEvent;
use emr_domain::record::RecordEvent;
use sqlx::MySqlConnection;

use super::distinct;
use crate::decode::{Fact, Payload};
use crate::error::ProjectionError;
use crate::projection::Projection;
use crate::sql::{select_in, upsert};

/// Dashboard aggregates.
#[derive(Debug, Clone, Copy, Default)]
pub struct DashboardProjection;

impl DashboardProjection {
    /// Its name.
    pub const NAME: &'static str = "dashboard";
}

#[derive(sqlx::FromRow)]
struct PatientHospital {
    patient_id: String,
    hospital_id: String,
}

impl Projection for DashboardProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["dashboard_checkpoint", "records_per_type_per_day", "patients_per_hospital", "dashboard_patient_hospitals"]
    }

    async fn apply(&self, conn: &mut MySqlConnection, facts: &[Fact]) -> Result<(), ProjectionError> {
        let mut records: BTreeMap<(String, NaiveDate), u64> = BTreeMap::new();
        let mut hospitals: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        let mut registered: Vec<(String, String)> = Vec::new();
        let erased: Vec<String> = distinct(facts.iter().filter_map(|f| match &f.payload {
            Payload::Patient(PatientEvent::PatientErased { .. }) => Some(f.aggregate_id.clone()),
            _ => None,
        }));
        let mut hospital_of: BTreeMap<String, String> = select_in::<PatientHospital>(
            conn,
            "SELECT patient_id, hospital_id FROM dashboard_patient_hospitals WHERE patient_id IN ",
            &erased,
        )
        .await?
        .into_iter()
        .map(|row| (row.patient_id, row.hospital_id))
        .collect();
        for fact in facts {
            match &fact.payload {
                Payload::Record(RecordEvent::RecordCreated { record_type, .. }) => {
                    let kind = serde_json::to_value(record_type).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
                    *records.entry((kind, fact.metadata.recorded_at.date_naive())).or_default() += 1;
                }
                Payload::Patient(PatientEvent::PatientRegistered { hospital_id, .. }) => {
                    hospitals.entry(hospital_id.to_string()).or_default().0 += 1;
                    hospital_of.insert(fact.aggregate_id.clone(), hospital_id.to_string());
                    registered.push((fact.aggregate_id.clone(), hospital_id.to_string()));
                }
                Payload::Patient(PatientEvent::PatientErased { .. }) => match hospital_of.get(&fact.aggregate_id) {
                    Some(hospital) => {
                        let counts = hospitals.entry(hospital.clone()).or_default();
                        counts.0 -= 1;
                        counts.1 += 1;
                    }
                    None => tracing::warn!(patient = %fact.aggregate_id, "erasure of a patient never registered; not counted"),
                },
                _ => {}
            }
        }
        let records: Vec<_> = records.into_iter().collect();
        upsert(
            conn,
            "INSERT INTO records_per_type_per_day (record_type, day, records) ",
            &records,
            |values, ((kind, day), count)| {
                values.push_bind(kind.clone()).push_bind(*day).push_bind(*count);
            },
            " ON DUPLICATE KEY UPDATE records = records + VALUES(records)",
        )
        .await?;
        let hospitals: Vec<_> = hospitals.into_iter().collect();
        upsert(
            conn,
            "INSERT INTO patients_per_hospital (hospital_id, active_patients, erased_patients) ",
            &hospitals,
            |values, (hospital, (active, erased))| {
                values.push_bind(hospital.clone()).push_bind(*active).push_bind(*erased);
            },
            " ON DUPLICATE KEY UPDATE active_patients = active_patients + VALUES(active_patients), \
             erased_patients = erased_patients + VALUES(erased_patients)",
        )
        .await?;
        upsert(
            conn,
            "INSERT INTO dashboard_patient_hospitals (patient_id, hospital_id) ",
            &registered,
            |values, (patient, hospital)| {
                values.push_bind(patient.clone()).push_bind(hospital.clone());
            },
            " ON DUPLICATE KEY UPDATE hospital_id = VALUES(hospital_id)",
        )
        .await
    }
}
