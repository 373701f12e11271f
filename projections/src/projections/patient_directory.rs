//! `patients`: who is registered where, and who was erased. No demographics: those
//! are PHI and stay sealed in the log.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use emr_domain::patient::PatientEvent;

use super::distinct;
use crate::db::Tx;
use crate::decode::{Fact, Payload};
use crate::error::ProjectionError;
use crate::projection::Projection;
use crate::sql::{Upsert, load_by_key, values};

/// The patient directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct PatientDirectory;

impl PatientDirectory {
    /// Its name.
    pub const NAME: &'static str = "patient_directory";
}

const PATIENTS: Upsert = Upsert {
    table: "patients",
    columns: &["patient_id", "hospital_id", "status", "registered_at", "updated_at", "erased_at", "version", "position"],
    key: &["patient_id"],
    replace: &["hospital_id", "status", "registered_at", "updated_at", "erased_at", "version", "position"],
    add: &[],
};

#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    patient_id: String,
    hospital_id: String,
    status: String,
    registered_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    erased_at: Option<DateTime<Utc>>,
    version: u64,
    position: u64,
}

impl Projection for PatientDirectory {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["patient_directory_checkpoint", "patients"]
    }

    async fn apply(&self, tx: &mut Tx, facts: &[Fact]) -> Result<(), ProjectionError> {
        let events: Vec<(&Fact, &PatientEvent)> =
            facts.iter().filter_map(|f| if let Payload::Patient(e) = &f.payload { Some((f, e)) } else { None }).collect();
        if events.is_empty() {
            return Ok(());
        }
        let ids = distinct(events.iter().map(|(f, _)| f.aggregate_id.clone()));
        let mut rows: HashMap<String, Row> = load_by_key(
            tx,
            "SELECT patient_id, hospital_id, status, registered_at, updated_at, erased_at, version, position FROM patients WHERE patient_id IN ",
            &ids,
            |row: &Row| row.patient_id.clone(),
        )
        .await?;
        for (fact, event) in events {
            let at = fact.metadata.recorded_at;
            if let PatientEvent::PatientRegistered { hospital_id, .. } = event {
                rows.insert(
                    fact.aggregate_id.clone(),
                    Row {
                        patient_id: fact.aggregate_id.clone(),
                        hospital_id: hospital_id.to_string(),
                        status: "active".into(),
                        registered_at: at,
                        updated_at: at,
                        erased_at: None,
                        version: 0,
                        position: 0,
                    },
                );
            }
            let Some(row) = rows.get_mut(&fact.aggregate_id) else {
                tracing::warn!(patient = %fact.aggregate_id, "event for a patient never registered; skipped");
                continue;
            };
            if let PatientEvent::PatientErased { .. } = event {
                row.status = "erased".into();
                row.erased_at = Some(at);
            }
            row.updated_at = at;
            row.version = fact.sequence;
            row.position = fact.metadata.position;
        }
        let rows: Vec<Row> = ids.iter().filter_map(|id| rows.remove(id)).collect();
        PATIENTS
            .run(tx, &rows, |row| {
                values![
                    &row.patient_id,
                    &row.hospital_id,
                    &row.status,
                    row.registered_at,
                    row.updated_at,
                    row.erased_at,
                    row.version,
                    row.position
                ]
            })
            .await
    }
}
