//! `patients`: who is registered where, and who was erased. No demographics: those
//! are PHI and stay sealed in the log.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use emr_domain::patient::PatientEvent;
use sqlx::MySqlConnection;

use super::distinct;
use crate::decode::{Fact, Payload};
use crate::error::ProjectionError;
use crate::projection::Projection;
use crate::sql::{load_by_key, upsert};

/// The patient directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct PatientDirectory;

impl PatientDirectory {
    /// Its name.
    pub const NAME: &'static str = "patient_directory";
}

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

    async fn apply(&self, conn: &mut MySqlConnection, facts: &[Fact]) -> Result<(), ProjectionError> {
        let events: Vec<(&Fact, &PatientEvent)> =
            facts.iter().filter_map(|f| if let Payload::Patient(e) = &f.payload { Some((f, e)) } else { None }).collect();
        if events.is_empty() {
            return Ok(());
        }
        let ids = distinct(events.iter().map(|(f, _)| f.aggregate_id.clone()));
        let mut rows: HashMap<String, Row> = load_by_key(
            conn,
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
        upsert(
            conn,
            "INSERT INTO patients (patient_id, hospital_id, status, registered_at, updated_at, erased_at, version, position) ",
            &rows,
            |values, row| {
                values
                    .push_bind(row.patient_id.clone())
                    .push_bind(row.hospital_id.clone())
                    .push_bind(row.status.clone())
                    .push_bind(row.registered_at)
                    .push_bind(row.updated_at)
                    .push_bind(row.erased_at)
                    .push_bind(row.version)
                    .push_bind(row.position);
            },
            " ON DUPLICATE KEY UPDATE hospital_id = VALUES(hospital_id), status = VALUES(status), registered_at = VALUES(registered_at), \
             updated_at = VALUES(updated_at), erased_at = VALUES(erased_at), version = VALUES(version), position = VALUES(position)",
        )
        .await
    }
}
