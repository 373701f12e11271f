use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::NaiveDate;
use emr_commands::{Read, Receipt};
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Create {
    record_id: Option<RecordId>,
    patient_id: PatientId,
    doctor_id: UserId,
    hospital_id: HospitalId,
    record_type: RecordType,
    visit_date: NaiveDate,
    content: RecordContent,
}

pub(crate) async fn create(
    State(state): State<AppState>,
    Command(context): Command,
    Body(body): Body<Create>,
) -> Result<(StatusCode, Json<Receipt>), ApiError> {
    let record_id = body.record_id.unwrap_or_else(|| RecordId::from(context.command_id.as_uuid()));
    let command = RecordCommand::Create {
        record_id,
        patient_id: body.patient_id,
        doctor_id: body.doctor_id,
        hospital_id: body.hospital_id,
        record_type: body.record_type,
        visit_date: body.visit_date,
        content: body.content,
    };
    Ok((StatusCode::CREATED, Json(state.clinic.record(record_id, command, &context).await?)))
}

async fn on_record(state: AppState, record_id: &str, command: RecordCommand, context: Command) -> Result<Json<Receipt>, ApiError> {
    let record_id: RecordId = path_id(record_id, "record id")?;
    Ok(Json(state.clinic.record(record_id, command, &context.0).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Amend {
    content: RecordContent,
    reason: ShortText,
}

pub(crate) async fn amend(
    State(state): State<AppState>,
    Path(id): Path<String>,
    context: Command,
    Body(body): Body<Amend>,
) -> Result<Json<Receipt>, ApiError> {
    on_record(state, &id, RecordCommand::Amend { content: body.content, reason: body.reason }, context).await
}

pub(crate) async fn add_attachment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    context: Command,
    Body(attachment): Body<AttachmentDescriptor>,
) -> Result<Json<Receipt>, ApiError> {
    on_record(state, &id, RecordCommand::AddAttachment(attachment), context).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reason {
    reason: ShortText,
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    context: Command,
    Body(body): Body<Reason>,
) -> Result<Json<Receipt>, ApiError> {
    on_record(state, &id, RecordCommand::Delete { reason: body.reason }, context).await
}

pub(crate) async fn restore(
    State(state): State<AppState>,
    Path(id): Path<String>,
    context: Command,
    Body(body): Body<Reason>,
) -> Result<Json<Receipt>, ApiError> {
    on_record(state, &id, RecordCommand::Restore { reason: body.reason }, context).await
}

#[derive(Serialize)]
struct VersionView {
    version: u32,
    shredded: bool,
    content: Option<RecordContent>,
    reason: Option<ShortText>,
}

#[derive(Serialize)]
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
    attachments: usize,
    /// The disclosure that recorded this read.
    disclosure_id: Option<DisclosureId>,
    sequence: u64,
    position: u64,
}

/// Point-in-time replay: the record as it was at a log position or an instant.
#[derive(Deserialize)]
pub(crate) struct AsOf {
    at_position: Option<u64>,
    at_time: Option<chrono::DateTime<chrono::Utc>>,
}

fn view(record_id: RecordId, read: &Read<MedicalRecord>) -> RecordView {
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
        attachments: record.attachments().len(),
        disclosure_id: read.disclosure,
        sequence: read.loaded.sequence(),
        position: read.loaded.position(),
    }
}

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
