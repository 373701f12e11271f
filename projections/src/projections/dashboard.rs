//! Dashboard counters: records created per type per day, active and erased
//! patients per hospital. Counters move by deltas; exactly-once comes from the
//! checkpoint being in the same transaction.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use emr_domain::patient::PatientEvent;
use emr_domain::record::RecordEvent;

use super::distinct;
use crate::db::Tx;
use crate::decode::{Fact, Payload};
use crate::error::ProjectionError;
use crate::projection::Projection;
use crate::sql::{Upsert, select_in, values};

/// Dashboard aggregates.
#[derive(Debug, Clone, Copy, Default)]
pub struct DashboardProjection;

impl DashboardProjection {
    /// Its name.
    pub const NAME: &'static str = "dashboard";
}

/// Counters move by deltas: a batch adds what it counted.
const RECORDS_PER_TYPE_PER_DAY: Upsert = Upsert {
    table: "records_per_type_per_day",
    columns: &["record_type", "day", "records"],
    key: &["record_type", "day"],
    replace: &[],
    add: &["records"],
};

const PATIENTS_PER_HOSPITAL: Upsert = Upsert {
    table: "patients_per_hospital",
    columns: &["hospital_id", "active_patients", "erased_patients"],
    key: &["hospital_id"],
    replace: &[],
    add: &["active_patients", "erased_patients"],
};

const PATIENT_HOSPITALS: Upsert = Upsert {
    table: "dashboard_patient_hospitals",
    columns: &["patient_id", "hospital_id"],
    key: &["patient_id"],
    replace: &["hospital_id"],
    add: &[],
};

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

    async fn apply(&self, tx: &mut Tx, facts: &[Fact]) -> Result<(), ProjectionError> {
        let mut records: BTreeMap<(String, NaiveDate), u64> = BTreeMap::new();
        let mut hospitals: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        let mut registered: Vec<(String, String)> = Vec::new();
        let erased: Vec<String> = distinct(facts.iter().filter_map(|f| match &f.payload {
            Payload::Patient(PatientEvent::PatientErased { .. }) => Some(f.aggregate_id.clone()),
            _ => None,
        }));
        let mut hospital_of: BTreeMap<String, String> = select_in::<PatientHospital>(
            tx,
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
                    let kind = super::snake(record_type);
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
        RECORDS_PER_TYPE_PER_DAY.run(tx, &records, |((kind, day), count)| values![kind, *day, *count]).await?;
        let hospitals: Vec<_> = hospitals.into_iter().collect();
        PATIENTS_PER_HOSPITAL.run(tx, &hospitals, |(hospital, (active, erased))| values![hospital, *active, *erased]).await?;
        PATIENT_HOSPITALS.run(tx, &registered, |(patient, hospital)| values![patient, hospital]).await
    }
}
