//! Retention: the review queue of patients whose every record's retention has
//! ended, and their approved disposal (crypto-shredding). Erasure of any kind
//! goes through here so that it is checked against the retention schedule with
//! the read models caught up to the log's head.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use chrono::NaiveDate;
use emr_commands::{Receipt, Subject};
use emr_domain::access::Action;
use emr_domain::ids::{HospitalId, PatientId};
use emr_domain::metadata::CommandContext;
use emr_domain::patient::ErasureReason;
use emr_domain::retention::RetainedRecord;
use emr_projections::Projection;
use emr_projections::queries::{self, RetentionRow};
use serde::{Deserialize, Serialize};

use super::read::caught_up;
use super::{from_snake, path_id};
use crate::AppState;
use crate::extract::{Caller, Command};
use crate::problem::ApiError;

fn retained(rows: &[RetentionRow]) -> Vec<RetainedRecord> {
    rows.iter()
        .filter_map(|row| {
            Some(RetainedRecord {
                record_type: from_snake(&row.record_type)?,
                hospital_id: HospitalId::parse(&row.hospital_id).ok()?,
                visit_date: row.visit_date,
            })
        })
        .collect()
}

/// Erases `patient_id` for `reason`, checked against the retention schedule on
/// the patient's records as the caught-up record index holds them.
pub(crate) async fn erase_checked(
    state: &AppState,
    patient_id: PatientId,
    reason: ErasureReason,
    context: &CommandContext,
) -> Result<Receipt, ApiError> {
    let records = match state.clinic.retention().is_empty() {
        true => Vec::new(),
        false => {
            let (models, _) = caught_up(state, &[emr_projections::RecordIndex.tables()[0]]).await?;
            retained(&queries::records_for_retention(&models.db, &patient_id.to_string()).await?)
        }
    };
    Ok(state.clinic.erase_patient(patient_id, reason, &records, context).await?)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReviewQuery {
    /// How many patients (1–1000, default 100).
    limit: Option<usize>,
}

/// A patient whose records may all be disposed of.
#[derive(Serialize)]
pub(crate) struct Due {
    patient_id: String,
    /// The day the last record's retention ended.
    retained_until: NaiveDate,
    jurisdiction: String,
    records: usize,
}

#[utoipa::path(get, path = "/v1/retention/review", tag = "patients", summary = "Patients whose every record's retention has ended (the disposal review queue)", params(ReviewQuery), responses((status = 200, description = "patients due for disposal, longest due first"), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// The review queue: active patients all of whose records are past retention.
pub(crate) async fn review(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ReviewQuery>, QueryRejection>,
) -> Result<Json<Vec<Due>>, ApiError> {
    let Query(query) = query?;
    state.clinic.authorize(&caller.actor, Action::ErasePatient, Subject::default()).await?;
    let (models, _) = caught_up(&state, &[emr_projections::RecordIndex.tables()[0], emr_projections::PatientDirectory.tables()[0]]).await?;
    let rows = queries::active_patients_records(&models.db).await?;
    let today = chrono::Utc::now().date_naive();
    let mut due = Vec::new();
    for patient in rows.chunk_by(|a, b| a.patient_id == b.patient_id) {
        let records = retained(patient);
        if let Some((until, jurisdiction)) = state.clinic.retention().patient_retained_until(&records)
            && until <= today
            && records.len() == patient.len()
        {
            due.push(Due {
                patient_id: patient[0].patient_id.clone(),
                retained_until: until,
                jurisdiction: jurisdiction.to_owned(),
                records: records.len(),
            });
        }
    }
    due.sort_by(|a, b| a.retained_until.cmp(&b.retained_until).then_with(|| a.patient_id.cmp(&b.patient_id)));
    due.truncate(query.limit.unwrap_or(100).clamp(1, 1000));
    Ok(Json(due))
}

#[utoipa::path(post, path = "/v1/patients/{patient_id}/disposal", tag = "patients", summary = "Dispose of a patient whose retention has ended (crypto-shredding)", params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("patient_id" = String, Path, description = "patient id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// An approved disposal: refused before retention ends and under a legal hold.
pub(crate) async fn dispose(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Command(context): Command,
) -> Result<Json<Receipt>, ApiError> {
    let patient_id: PatientId = path_id(&id, "patient id")?;
    let receipt = erase_checked(&state, patient_id, ErasureReason::RetentionExpired, &context).await?;
    super::patients::release_blobs(&state, patient_id).await;
    Ok(Json(receipt))
}
