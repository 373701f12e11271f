//! The research dataset (`GET /v1/research/export`): every active,
//! unrestricted patient de-identified (`emr_domain::deidentify`, HIPAA Safe
//! Harbor), for researchers, who otherwise see no patient data at all.
//! Pseudonyms and date shifts come from a key drawn for each export and never
//! kept: a subject's records link within one dataset, and no dataset links to
//! another or back to the patient.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use emr_commands::Subject;
use emr_domain::access::Action;
use emr_domain::deidentify::{ResearchSubject, SubjectDisguise, deidentify};
use emr_domain::ids::{PatientId, RecordId};
use emr_projections::queries::{self, RecordFilter};
use emr_projections::{PatientDirectory, Projection, RecordIndex};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;

use super::{path_id, read};
use crate::AppState;
use crate::extract::Caller;
use crate::problem::ApiError;

/// Rows per read-model page while gathering.
const PAGE: u32 = 500;

/// A de-identified dataset.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ResearchDataset {
    /// `emr-ledger/research/1`.
    format: &'static str,
    /// `hipaa-safe-harbor` (with per-subject date shifting).
    method: &'static str,
    generated_at: DateTime<Utc>,
    /// The log position the dataset reflects.
    log_position: u64,
    #[schema(value_type = Vec<Object>)]
    subjects: Vec<ResearchSubject>,
}

/// A subject's pseudonym and date shift under this export's key.
fn disguise(key: &hmac::Key, patient_id: PatientId) -> SubjectDisguise {
    let tag = hmac::sign(key, patient_id.as_uuid().as_bytes());
    let bytes = tag.as_ref();
    let pseudonym = bytes[..8].iter().map(|b| format!("{b:02x}")).collect::<String>();
    // 1 to 365 days either way, never none: a shifted date is never the true one.
    let magnitude = i64::from(u16::from_be_bytes([bytes[8], bytes[9]]) % 365) + 1;
    let date_shift_days = if bytes[10] % 2 == 0 { magnitude } else { -magnitude };
    SubjectDisguise { pseudonym: format!("S-{pseudonym}"), date_shift_days }
}

#[utoipa::path(get, path = "/v1/research/export", tag = "read models", summary = "The de-identified research dataset (HIPAA Safe Harbor; researchers)", responses((status = 200, body = ResearchDataset), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable, or the read models are behind", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn export(State(state): State<AppState>, caller: Caller) -> Result<Json<ResearchDataset>, ApiError> {
    state.clinic.authorize(&caller.actor, Action::ExportDeidentified, Subject::default()).await?;
    let (models, log_position) = read::caught_up(&state, &[PatientDirectory.tables()[0], RecordIndex.tables()[0]]).await?;
    let mut seed = [0u8; 32];
    SystemRandom::new().fill(&mut seed).map_err(|_| {
        let status = axum::http::StatusCode::INTERNAL_SERVER_ERROR;
        ApiError::Problem(crate::Problem::new(status, "internal", "Something went wrong", "no randomness for the export's key"))
    })?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, &seed);
    let today = Utc::now().date_naive();
    let mut subjects = Vec::new();
    for offset in (0..).step_by(PAGE as usize) {
        let page = queries::active_patient_ids(&models.db, PAGE, offset).await?;
        for id in &page {
            let patient_id: PatientId = path_id(id, "patient id")?;
            let patient = state.clinic.load_patient(patient_id).await?;
            let mut records = Vec::new();
            let filter = RecordFilter { patient_id: Some(patient_id.as_uuid()), limit: Some(PAGE), ..RecordFilter::default() };
            for summary in queries::records(&models.db, &filter).await? {
                let record_id: RecordId = path_id(&summary.record_id, "record id")?;
                records.push(state.clinic.load_record(record_id).await?.state().clone());
            }
            if let Some(subject) = deidentify(patient.state(), &records, &disguise(&key, patient_id), today) {
                subjects.push(subject);
            }
        }
        if page.len() < PAGE as usize {
            break;
        }
    }
    tracing::info!(subjects = subjects.len(), "research dataset exported");
    Ok(Json(ResearchDataset {
        format: "emr-ledger/research/1",
        method: "hipaa-safe-harbor",
        generated_at: Utc::now(),
        log_position,
        subjects,
    }))
}
