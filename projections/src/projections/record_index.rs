//! `medical_records` and `attachments`: the record index dashboards and clinical
//! systems query by patient, visit date, type and status. Titles, diagnoses and
//! file names are PHI and stay sealed in the log.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use emr_domain::record::RecordEvent;

use super::distinct;
use crate::db::Tx;
use crate::decode::{Fact, Payload};
use crate::error::ProjectionError;
use crate::projection::Projection;
use crate::projections::snake;
use crate::sql::{Upsert, load_by_key, values};

/// The record index.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordIndex;

impl RecordIndex {
    /// Its name.
    pub const NAME: &'static str = "record_index";
}

const RECORDS: Upsert = Upsert {
    table: "medical_records",
    columns: &[
        "record_id",
        "patient_id",
        "doctor_id",
        "hospital_id",
        "record_type",
        "visit_date",
        "status",
        "content_version",
        "attachment_count",
        "created_at",
        "updated_at",
        "deleted_at",
        "version",
        "position",
    ],
    key: &["record_id"],
    replace: &["status", "content_version", "attachment_count", "updated_at", "deleted_at", "version", "position"],
    add: &[],
};

/// Attachments are facts: re-applying one only restates its position.
const ATTACHMENTS: Upsert = Upsert {
    table: "attachments",
    columns: &[
        "attachment_id",
        "record_id",
        "patient_id",
        "content_id",
        "mime_type",
        "size_bytes",
        "sha256",
        "added_at",
        "position",
        "modality",
        "study_date",
        "body_part",
        "image_rows",
        "image_cols",
    ],
    key: &["attachment_id"],
    replace: &["position"],
    add: &[],
};

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

impl Projection for RecordIndex {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["record_index_checkpoint", "medical_records", "attachments"]
    }

    async fn apply(&self, tx: &mut Tx, facts: &[Fact]) -> Result<(), ProjectionError> {
        let events: Vec<(&Fact, &RecordEvent)> =
            facts.iter().filter_map(|f| if let Payload::Record(e) = &f.payload { Some((f, e)) } else { None }).collect();
        if events.is_empty() {
            return Ok(());
        }
        let ids = distinct(events.iter().map(|(f, _)| f.aggregate_id.clone()));
        let mut rows: HashMap<String, Row> = load_by_key(
            tx,
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
                        record_type: snake(record_type),
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
                // A suggestion and its review change the record (its version
                // and time move on) but no column of the index.
                RecordEvent::DiagnosisSuggested { .. } | RecordEvent::DiagnosisReviewed { .. } => {}
            }
            row.updated_at = at;
            row.version = fact.sequence;
            row.position = fact.metadata.position;
        }
        let rows: Vec<Row> = ids.iter().filter_map(|id| rows.remove(id)).collect();
        RECORDS
            .run(tx, &rows, |row| {
                values![
                    &row.record_id,
                    &row.patient_id,
                    &row.doctor_id,
                    &row.hospital_id,
                    &row.record_type,
                    row.visit_date,
                    &row.status,
                    row.content_version,
                    row.attachment_count,
                    row.created_at,
                    row.updated_at,
                    row.deleted_at,
                    row.version,
                    row.position,
                ]
            })
            .await?;
        ATTACHMENTS
            .run(tx, &attachments, |a| {
                let dicom = a.dicom.clone().unwrap_or_default();
                values![
                    &a.attachment_id,
                    &a.record_id,
                    &a.patient_id,
                    &a.content_id,
                    &a.mime_type,
                    a.size_bytes,
                    &a.sha256,
                    a.added_at,
                    a.position,
                    dicom.modality,
                    dicom.study_date,
                    dicom.body_part,
                    dicom.rows,
                    dicom.columns,
                ]
            })
            .await
    }
}
