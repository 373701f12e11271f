//! The rights of access and to data portability (GDPR Art. 15 and 20): a patient
//! downloads everything held about them, machine-readable: their demographics,
//! every record with every version, and the accounting of who read their data.
//! Each read in it is recorded as a disclosure, as any other read is.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use emr_commands::Subject;
use emr_domain::access::Action;
use emr_domain::ids::{PatientId, RecordId};
use emr_projections::queries::{self, AccessLogEntry, AccessLogFilter, RecordFilter};
use emr_projections::{AccessLogProjection, Projection, RecordIndex};
use serde::Serialize;

use super::patients::{self, PatientView};
use super::records::{self, RecordView};
use super::{path_id, read};
use crate::AppState;
use crate::extract::Caller;
use crate::problem::ApiError;

/// Rows per read-model page while gathering.
const PAGE: u32 = 500;

/// Everything held about one patient.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SubjectAccessExport {
    /// `emr-ledger/subject-access/1`.
    format: &'static str,
    generated_at: DateTime<Utc>,
    /// The log position the export is complete up to.
    log_position: u64,
    patient: PatientView,
    /// Every record, deleted ones included, with every version.
    records: Vec<RecordView>,
    /// Every disclosure of the patient's data up to `log_position`, most recent first.
    #[schema(value_type = Vec<Object>)]
    access_log: Vec<AccessLogEntry>,
}

#[utoipa::path(get, path = "/v1/patients/{patient_id}/export", tag = "patients", summary = "Everything held about the patient, for the patient (GDPR Art. 15 and 20)", params(("patient_id" = String, Path, description = "patient id (UUID)")), responses((status = 200, body = SubjectAccessExport), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable, or the read models are behind", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Path(patient_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let patient_id: PatientId = path_id(&patient_id, "patient id")?;
    state.clinic.authorize(&caller.actor, Action::ExportData, Subject::patient(patient_id)).await?;
    let (models, log_position) = read::caught_up(&state, &[RecordIndex.tables()[0], AccessLogProjection.tables()[0]]).await?;
    let patient = patients::view(patient_id, &state.clinic.read_patient(&caller.actor, patient_id, None).await?);
    let mut records = Vec::new();
    for offset in (0..).step_by(PAGE as usize) {
        let filter =
            RecordFilter { patient_id: Some(patient_id.as_uuid()), limit: Some(PAGE), offset: Some(offset), ..RecordFilter::default() };
        let page = queries::records(&models.db, &filter).await?;
        for summary in &page {
            let record_id: RecordId = path_id(&summary.record_id, "record id")?;
            records.push(records::view(record_id, &state.clinic.read_record(&caller.actor, record_id, None, None).await?));
        }
        if page.len() < PAGE as usize {
            break;
        }
    }
    let mut access_log = Vec::new();
    for offset in (0..).step_by(PAGE as usize) {
        let filter = AccessLogFilter {
            patient_id: Some(patient_id.as_uuid()),
            limit: Some(PAGE),
            offset: Some(offset),
            ..AccessLogFilter::default()
        };
        let page = queries::access_log(&models.db, &filter).await?;
        let full = page.len() == PAGE as usize;
        access_log.extend(page.into_iter().filter(|entry| entry.position <= log_position));
        if !full {
            break;
        }
    }
    let export =
        SubjectAccessExport { format: "emr-ledger/subject-access/1", generated_at: Utc::now(), log_position, patient, records, access_log };
    let disposition = format!("attachment; filename=\"patient-{patient_id}.json\"");
    Ok(([(header::CONTENT_DISPOSITION, disposition)], Json(export)))
}
