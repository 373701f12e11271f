//! `medical_records` and `attachments`: the record index dashboards and clinical
//! systems query by patient, visit date, type and status. Titles, diagnoses and
//! file names are PHI and stay sealed in the log.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use emr_domain::record::RecordEvent;
use sqlx::MySqlConnection;

use super::distinct;
use crate::decode::{Fact, Payload};
use crate::error::ProjectionError;
use crate::projection::Projection;
use crate::sql::{load_by_key, upsert};

/// The record index.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordIndex;

impl RecordIndex {
    /// Its name.
    pub const NAME: &'static str = "record_index";
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    record_id: String,
    patient_id: String,
    doctor_id: String,
    hospital_id: String,
    record_type: String,
    visit_date: NaiveDate,
    status: String,
    content_version: u32,
    attachment_count: u32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
    version: u64,
    position: u64,
}

struct Attachment {
    dicom: Option<emr_domain::values::DicomSummary>,
    attachment_id: String,
    record_id: String,
    patient_id: String,
    content_id: String,
    mime_type: String,
    size_bytes: u64,
    sha256: String,
    added_at: DateTime<Utc>,
    position: u64,
}

fn enum_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

impl Projection for RecordIndex {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["record_index_checkpoint", "medical_records", "attachments"]
    }

    async fn apply(&self, conn: &mut MySqlConnection, facts: &[Fact]) -> Result<(), ProjectionError> {
        let events: Vec<(&Fact, &RecordEvent)> =
            facts.iter().filter_map(|f| if let Payload::Record(e) = &f.payload { Some((f, e)) } else { None }).collect();
        if events.is_empty() {
            return Ok(());
        }
        let ids = distinct(events.iter().map(|(f, _)| f.aggregate_id.clone()));
        let mut rows: HashMap<String, Row> = load_by_key(
            conn,
            "SELECT record_id, patient_id, doctor_id, hospital_id, record_type, visit_date, status, content_version, attachment_count, \
             created_at, updated_at, deleted_at, version, position FROM medical_records WHERE record_id IN ",
            &ids,
            |row: &Row| row.record_id.clone(),
        )
        .await?;
        let mut attachments = Vec::new();
        for (fact, event) in events {
            let at = fact.metadata.recorded_at;
            if let RecordEvent::RecordCreated { patient_id, doctor_id, hospital_id, record_type, visit_date, .. } = event {
                rows.insert(
                    fact.aggregate_id.clone(),
                    Row {
                        record_id: fact.aggregate_id.clone(),
                        patient_id: patient_id.to_string(),
                        doctor_id: doctor_id.to_string(),
                        hospital_id: hospital_id.to_string(),
                        record_type: enum_text(record_type),
                        visit_date: *visit_date,
                        status: "active".into(),
                        content_version: 1,
                        attachment_count: 0,
                        created_at: at,
                        updated_at: at,
                        deleted_at: None,
                        version: 0,
                        position: 0,
                    },
                );
            }
            let Some(row) = rows.get_mut(&fact.aggregate_id) else {
                tracing::warn!(record = %fact.aggregate_id, "event for a record never created; skipped");
                continue;
            };
            match event {
                RecordEvent::RecordCreated { .. } => {}
                RecordEvent::RecordAmended { version, .. } => row.content_version = *version,
                RecordEvent::AttachmentAdded { attachment_id, content_id, mime_type, size_bytes, sha256, dicom, .. } => {
                    row.attachment_count += 1;
                    attachments.push(Attachment {
                        dicom: dicom.clone(),
                        attachment_id: attachment_id.to_string(),
                        record_id: row.record_id.clone(),
                        patient_id: row.patient_id.clone(),
                        content_id: content_id.as_str().to_owned(),
                        mime_type: mime_type.as_str().to_owned(),
                        size_bytes: *size_bytes,
                        sha256: sha256.to_string(),
                        added_at: at,
                        position: fact.metadata.position,
                    });
                }
                RecordEvent::RecordDeleted { .. } => {
                    row.status = "deleted".into();
                    row.deleted_at = Some(at);
                }
                RecordEvent::RecordRestored { .. } => {
                    row.status = "active".into();
                    row.deleted_at = None;
                }
            }
            row.updated_at = at;
            row.version = fact.sequence;
            row.position = fact.metadata.position;
        }
        let rows: Vec<Row> = ids.iter().filter_map(|id| rows.remove(id)).collect();
        upsert(
            conn,
            "INSERT INTO medical_records (record_id, patient_id, doctor_id, hospital_id, record_type, visit_date, status, content_version, \
             attachment_count, created_at, updated_at, deleted_at, version, position) ",
            &rows,
            |values, row| {
                values
                    .push_bind(row.record_id.clone())
                    .push_bind(row.patient_id.clone())
                    .push_bind(row.doctor_id.clone())
                    .push_bind(row.hospital_id.clone())
                    .push_bind(row.record_type.clone())
                    .push_bind(row.visit_date)
                    .push_bind(row.status.clone())
                    .push_bind(row.content_version)
                    .push_bind(row.attachment_count)
                    .push_bind(row.created_at)
                    .push_bind(row.updated_at)
                    .push_bind(row.deleted_at)
                    .push_bind(row.version)
                    .push_bind(row.position);
            },
            " ON DUPLICATE KEY UPDATE status = VALUES(status), content_version = VALUES(content_version), \
             attachment_count = VALUES(attachment_count), updated_at = VALUES(updated_at), deleted_at = VALUES(deleted_at), \
             version = VALUES(version), position = VALUES(position)",
        )
        .await?;
        upsert(
            conn,
            "INSERT INTO attachments (attachment_id, record_id, patient_id, content_id, mime_type, size_bytes, sha256, added_at, position, \
             modality, study_date, body_part, image_rows, image_cols) ",
            &attachments,
            |values, a| {
                values
                    .push_bind(a.attachment_id.clone())
                    .push_bind(a.record_id.clone())
                    .push_bind(a.patient_id.clone())
                    .push_bind(a.content_id.clone())
                    .push_bind(a.mime_type.clone())
                    .push_bind(a.size_bytes)
                    .push_bind(a.sha256.clone())
                    .push_bind(a.added_at)
                    .push_bind(a.position);
                let dicom = a.dicom.clone().unwrap_or_default();
                values
                    .push_bind(dicom.modality)
                    .push_bind(dicom.study_date)
                    .push_bind(dicom.body_part)
                    .push_bind(dicom.rows)
                    .push_bind(dicom.columns);
            },
            " ON DUPLICATE KEY UPDATE position = VALUES(position)",
        )
        .await
    }
}
