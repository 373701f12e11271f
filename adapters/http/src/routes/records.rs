use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::NaiveDate;
use emr_commands::{Clinic, Read, Receipt};
use emr_domain::access::Basis;
use emr_domain::ids::{DisclosureId, HospitalId, PatientId, RecordId, UserId};
use emr_domain::phi::Phi;
use emr_domain::record::{AttachmentDescriptor, MedicalRecord, RecordCommand, RecordStatus};
use emr_domain::values::{RecordContent, RecordType, ShortText};
use emr_eventstore::Cutoff;
use serde::{Deserialize, Serialize};

use super::path_id;
use crate::AppState;
use crate::extract::{Body, Caller, Command};
use crate::problem::ApiError;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RecordCreation)]
pub(crate) struct Create {
    record_id: Option<RecordId>,
    patient_id: PatientId,
    doctor_id: UserId,
    hospital_id: HospitalId,
    record_type: RecordType,
    visit_date: NaiveDate,
    content: RecordContent,
}

#[utoipa::path(post, path = "/v1/records", tag = "records", summary = "Create a record", request_body = Create, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader), responses((status = 201, description = "created", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Command(context): Command,
    Body(body): Body<Create>,
) -> Result<(StatusCode, Json<Receipt>), ApiError> {
    let (record_id, command) = body.into_command(context.command_id.as_uuid());
    Ok((StatusCode::CREATED, Json(state.clinic.record(record_id, command, &context).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RecordBatch)]
pub(crate) struct Batch {
    /// 1 to 1000 records, each as `POST /v1/records` takes it.
    records: Vec<Create>,
}

/// One record's answer in a batch: its receipt, or the problem that refused it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = RecordBatchEntry)]
pub(crate) struct BatchEntry {
    /// 201 when created (or, for a retried batch, created before); otherwise the problem's status.
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt: Option<Receipt>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<crate::Problem>,
}

#[utoipa::path(post, path = "/v1/records/batch", tag = "records", summary = "Create many records in one request (a bulk import, a backlog after downtime)", request_body = Batch, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader), responses((status = 200, description = "every record answered, in the order sent: a receipt or a problem each", body = Vec<BatchEntry>), (status = "4XX", description = "problem+json: the batch itself is invalid (empty, over 1000, malformed), unauthenticated", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// Each record is checked as `POST /v1/records` checks one, and the accepted
/// ones are written to the log together, so a batch goes at the log's own pace.
/// Record `i`'s command id derives from the batch's `Idempotency-Key` and `i`:
/// a retried batch creates each record once and answers with its receipts.
pub(crate) async fn create_batch(
    State(state): State<AppState>,
    Command(context): Command,
    Body(body): Body<Batch>,
) -> Result<Json<Vec<BatchEntry>>, ApiError> {
    if body.records.is_empty() || body.records.len() > Clinic::MAX_BATCH {
        return Err(ApiError::Problem(crate::Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-batch",
            "The batch is not valid",
            format!("send 1 to {} records; this batch has {}", Clinic::MAX_BATCH, body.records.len()),
        )));
    }
    let batch = body
        .records
        .into_iter()
        .enumerate()
        .map(|(index, record)| {
            let entry = context.batch_entry(index);
            let (record_id, command) = record.into_command(entry.command_id.as_uuid());
            (record_id, command, entry)
        })
        .collect();
    let answers = state.clinic.create_records(batch).await;
    Ok(Json(
        answers
            .into_iter()
            .map(|answer| match answer {
                Ok(receipt) => BatchEntry { status: StatusCode::CREATED.as_u16(), receipt: Some(receipt), problem: None },
                Err(refused) => {
                    let problem = ApiError::from(refused).logged_problem();
                    BatchEntry { status: problem.status, receipt: None, problem: Some(problem) }
                }
            })
            .collect(),
    ))
}

impl Create {
    /// The creation this body asks for: the record id given, or one derived
    /// from the command id (so a retry names the same record).
    fn into_command(self, command_id: uuid::Uuid) -> (RecordId, RecordCommand) {
        let record_id = self.record_id.unwrap_or_else(|| RecordId::from(command_id));
        let command = RecordCommand::Create {
            record_id,
            patient_id: self.patient_id,
            doctor_id: self.doctor_id,
            hospital_id: self.hospital_id,
            record_type: self.record_type,
            visit_date: self.visit_date,
            content: self.content,
        };
        (record_id, command)
    }
}

async fn on_record(state: AppState, record_id: &str, command: RecordCommand, context: Command) -> Result<Json<Receipt>, ApiError> {
    let record_id: RecordId = path_id(record_id, "record id")?;
    Ok(Json(state.clinic.record(record_id, command, &context.0).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Amendment)]
pub(crate) struct Amend {
    content: RecordContent,
    reason: ShortText,
}

#[utoipa::path(post, path = "/v1/records/{record_id}/amendments", tag = "records", summary = "Amend a record (new version)", request_body = Amend, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("record_id" = String, Path, description = "record id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn amend(
    State(state): State<AppState>,
    Path(id): Path<String>,
    context: Command,
    Body(body): Body<Amend>,
) -> Result<Json<Receipt>, ApiError> {
    on_record(state, &id, RecordCommand::Amend { content: body.content, reason: body.reason }, context).await
}

#[utoipa::path(post, path = "/v1/records/{record_id}/attachments", tag = "records", summary = "Attach an uploaded blob", request_body = emr_domain::record::AttachmentDescriptor, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("record_id" = String, Path, description = "record id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn add_attachment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    context: Command,
    Body(attachment): Body<AttachmentDescriptor>,
) -> Result<Json<Receipt>, ApiError> {
    on_record(state, &id, RecordCommand::AddAttachment(attachment), context).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RecordReason)]
pub(crate) struct Reason {
    reason: ShortText,
}

#[utoipa::path(post, path = "/v1/records/{record_id}/deletion", tag = "records", summary = "Soft-delete a record", request_body = Reason, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("record_id" = String, Path, description = "record id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    context: Command,
    Body(body): Body<Reason>,
) -> Result<Json<Receipt>, ApiError> {
    on_record(state, &id, RecordCommand::Delete { reason: body.reason }, context).await
}

#[utoipa::path(post, path = "/v1/records/{record_id}/restoration", tag = "records", summary = "Restore a deleted record", request_body = Reason, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("record_id" = String, Path, description = "record id (UUID)")), responses((status = 200, description = "the commit", body = emr_commands::Receipt), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn restore(
    State(state): State<AppState>,
    Path(id): Path<String>,
    context: Command,
    Body(body): Body<Reason>,
) -> Result<Json<Receipt>, ApiError> {
    on_record(state, &id, RecordCommand::Restore { reason: body.reason }, context).await
}

#[derive(Serialize, utoipa::ToSchema)]
struct VersionView {
    version: u32,
    shredded: bool,
    content: Option<RecordContent>,
    reason: Option<ShortText>,
}

/// An attachment as the record lists it (its file name is sealed PHI and stays out).
#[derive(Serialize, utoipa::ToSchema)]
struct AttachmentView {
    attachment_id: emr_domain::ids::AttachmentId,
    mime_type: Option<emr_domain::values::MimeType>,
    size_bytes: u64,
    sha256: emr_domain::values::Sha256Digest,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RecordView {
    record_id: RecordId,
    patient_id: Option<PatientId>,
    doctor_id: Option<UserId>,
    hospital_id: Option<HospitalId>,
    record_type: Option<RecordType>,
    visit_date: Option<NaiveDate>,
    status: RecordStatus,
    /// Content withheld (an auditor replaying the record's structure).
    redacted: bool,
    versions: Vec<VersionView>,
    attachments: Vec<AttachmentView>,
    /// The disclosure that recorded this read.
    disclosure_id: Option<DisclosureId>,
    sequence: u64,
    position: u64,
}

/// Point-in-time replay: the record as it was at a log position or an instant.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AsOf {
    at_position: Option<u64>,
    at_time: Option<chrono::DateTime<chrono::Utc>>,
}

pub(crate) fn view(record_id: RecordId, read: &Read<MedicalRecord>) -> RecordView {
    let record = read.loaded.state();
    let redacted = read.basis == Basis::Redacted;
    let versions = record
        .versions()
        .iter()
        .map(|v| VersionView {
            version: v.version,
            shredded: v.content.is_shredded(),
            content: v.content.value().filter(|_| !redacted).cloned(),
            reason: v.reason.as_ref().and_then(Phi::value).filter(|_| !redacted).cloned(),
        })
        .collect();
    RecordView {
        record_id,
        patient_id: record.patient_id(),
        doctor_id: record.doctor_id(),
        hospital_id: record.hospital_id().cloned(),
        record_type: record.record_type(),
        visit_date: record.visit_date(),
        status: record.status(),
        redacted,
        versions,
        attachments: record
            .attachments()
            .iter()
            .map(|a| AttachmentView {
                attachment_id: a.attachment_id,
                mime_type: a.mime_type.clone(),
                size_bytes: a.size_bytes,
                sha256: a.sha256,
            })
            .collect(),
        disclosure_id: read.disclosure,
        sequence: read.loaded.sequence(),
        position: read.loaded.position(),
    }
}

#[utoipa::path(get, path = "/v1/records/{record_id}", tag = "records", summary = "Read a record, now or as of a position or time (recorded as a disclosure)", params(("record_id" = String, Path, description = "record id (UUID)"), AsOf), responses((status = 200, body = RecordView), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    as_of: Result<Query<AsOf>, QueryRejection>,
) -> Result<Json<RecordView>, ApiError> {
    let record_id: RecordId = path_id(&id, "record id")?;
    let Query(as_of) = as_of?;
    let cutoff = match (as_of.at_position, as_of.at_time) {
        (None, None) => None,
        (Some(position), None) => Some(Cutoff::Position(position)),
        (None, Some(time)) => Some(Cutoff::Time(time)),
        (Some(_), Some(_)) => {
            return Err(ApiError::Problem(crate::Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-query",
                "The query string is not valid",
                "give at_position or at_time, not both",
            )));
        }
    };
    let read = state.clinic.read_record(&caller.actor, record_id, cutoff, None).await?;
    Ok(Json(view(record_id, &read)))
}

#[utoipa::path(post, path = "/v1/records/{record_id}/break-glass", tag = "records", summary = "Emergency read without a grant", request_body = Reason, params(("record_id" = String, Path, description = "record id (UUID)")), responses((status = 200, body = RecordView), (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict", body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// A practitioner without a grant opens a record in an emergency.
pub(crate) async fn break_glass(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<Reason>,
) -> Result<Json<RecordView>, ApiError> {
    let record_id: RecordId = path_id(&id, "record id")?;
    let read = state.clinic.read_record(&caller.actor, record_id, None, Some(body.reason)).await?;
    Ok(Json(view(record_id, &read)))
}
