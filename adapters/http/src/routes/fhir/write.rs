//! Changes through FHIR, each one command on the same aggregates as the API:
//! `POST Patient` registers, `PUT Patient` replaces demographics, `PUT Condition`
//! amends a record's diagnosis, `DELETE Encounter` soft-deletes a record.
//!
//! `If-Match: W/"<version>"` makes a change conditional (412 once the resource has
//! moved on). A change that rewrites part of what it read (`PUT Condition`) is
//! always conditional on the version it read, so it never loses a concurrent
//! amendment. The reason an amendment or deletion needs comes from an
//! `X-Provenance` header (a `Provenance` whose `reason` says why), else a default
//! naming the interaction.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use emr_commands::Receipt;
use emr_domain::access::Basis;
use emr_domain::actor::Actor;
use emr_domain::ids::{PatientId, RecordId};
use emr_domain::metadata::CommandContext;
use emr_domain::patient::PatientCommand;
use emr_domain::record::{MedicalRecord, RecordCommand};
use emr_domain::values::{Diagnosis, RecordContent, ShortText};
use emr_fhir::input::{self, InvalidElement};
use emr_fhir::scopes::Interaction;
use serde_json::Value;

use super::{Fhir, base_url, invalid, permit, record_patient};
use crate::AppState;
use crate::extract::CommandBy;
use crate::problem::{ApiError, Problem};
use crate::routes::path_id;

pub(super) fn invalid_resource(error: &InvalidElement) -> Fhir {
    Fhir::from(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-resource", "The resource is not valid", error.to_string()))
}

pub(super) fn body(body: Result<Json<Value>, JsonRejection>) -> Result<Value, Fhir> {
    body.map(|Json(value)| value).map_err(|rejection| Fhir::from(ApiError::from(rejection)))
}

/// A resource sent to `<type>/<id>` must carry that id, if any.
pub(super) fn ensure_id(resource: &Value, id: &str) -> Result<(), Fhir> {
    match resource.get("id").and_then(Value::as_str) {
        Some(found) if found != id => {
            Err(invalid("id-mismatch", "The resource's id is not the address's", format!("the body's id is {found}, the address's {id}")))
        }
        _ => Ok(()),
    }
}

/// The aggregate's version after the command.
fn version_after(receipt: &Receipt) -> Option<u64> {
    receipt.events.last().map(|event| event.sequence)
}

/// The reason a change gives when its sender gave none.
pub(super) fn default_reason(default: &str) -> Result<ShortText, Fhir> {
    ShortText::parse("reason", default).map_err(|e| invalid("invalid-reason", "The reason is not valid", e.expected))
}

/// Why: the `X-Provenance` header's reason, else `default`.
fn reason(headers: &HeaderMap, default: &str) -> Result<ShortText, Fhir> {
    let Some(header) = headers.get("x-provenance") else { return default_reason(default) };
    let provenance: Value =
        header.to_str().ok().and_then(|text| serde_json::from_str(text).ok()).ok_or_else(|| {
            invalid("invalid-header", "A request header is not valid", "X-Provenance must be a Provenance resource as JSON")
        })?;
    input::provenance_reason(&provenance).map_err(|e| invalid_resource(&e))
}

/// `POST /fhir/r4/Patient`: registers a patient (the MRN is the identifier typed
/// `MR`, the hospital `managingOrganization.identifier.value`); the
/// `Idempotency-Key` makes a retry safe.
pub(super) async fn create_patient(
    State(state): State<AppState>,
    command: Result<CommandBy, ApiError>,
    headers: HeaderMap,
    resource: Result<Json<Value>, JsonRejection>,
) -> Result<Fhir, Fhir> {
    let CommandBy { context, caller } = command?;
    permit(&caller, "Patient", Interaction::Create, None)?;
    if headers.contains_key("if-none-exist") {
        // Identifiers are sealed PHI in the log and never indexed in plaintext, so
        // "create unless one exists" cannot be checked; refusing beats a duplicate.
        return Err(invalid(
            "not-supported",
            "Conditional create is not supported",
            "identifiers are sealed PHI and not searchable; send an Idempotency-Key to make the create safe to retry",
        ));
    }
    let registration = input::registration(&body(resource)?).map_err(|e| invalid_resource(&e))?;
    let patient_id = PatientId::from(context.command_id.as_uuid());
    let command = PatientCommand::Register {
        patient_id,
        hospital_id: registration.hospital_id,
        identifiers: registration.identifiers,
        demographics: registration.demographics,
    };
    let receipt = state.clinic.patient(patient_id, command, &context).await?;
    // Everything shown is what the caller just sent: not a disclosure, and a
    // registrar who may not read patients still sees what was registered.
    let registered = state.clinic.load_patient(patient_id).await?;
    let resource = emr_fhir::patient(patient_id, registered.state(), registered.sequence(), false);
    Ok(created(&headers, "Patient", &patient_id.to_string(), &receipt, resource, registered.sequence()))
}

/// A `201 Created`: `resource` as it stands at `current`, its `ETag` naming
/// that version and its `Location` the version the command created (they differ
/// only for a retried create the resource has moved on from).
fn created(headers: &HeaderMap, resource_type: &str, id: &str, receipt: &Receipt, resource: Value, current: u64) -> Fhir {
    let created_version = version_after(receipt).unwrap_or(1);
    let mut created = Fhir::new(StatusCode::CREATED, resource).at_version(current);
    created.location = Some(format!("{}/{resource_type}/{id}/_history/{created_version}", base_url(headers)));
    created
}

/// `PUT /fhir/r4/Patient/{id}`: replaces the patient's demographics (identifiers
/// and hospital stay as registered).
pub(super) async fn update_patient(
    State(state): State<AppState>,
    command: Result<CommandBy, ApiError>,
    Path(id): Path<String>,
    resource: Result<Json<Value>, JsonRejection>,
) -> Result<Fhir, Fhir> {
    let CommandBy { context, caller } = command?;
    let patient_id: PatientId = path_id(&id, "Patient id")?;
    permit(&caller, "Patient", Interaction::Update, Some(patient_id))?;
    let resource = body(resource)?;
    ensure_id(&resource, &id)?;
    let demographics = input::demographics(&resource).map_err(|e| invalid_resource(&e))?;
    state.clinic.patient(patient_id, PatientCommand::UpdateDemographics { demographics }, &context).await?;
    let read = state.clinic.read_patient(&context.actor, patient_id, None).await?;
    let version = read.loaded.sequence();
    Ok(Fhir::ok(emr_fhir::patient(patient_id, read.loaded.state(), version, read.basis == Basis::Redacted)).at_version(version))
}

/// `PUT /fhir/r4/Condition/{id}`: amends the record's diagnosis (the rest of its
/// content unchanged) as a new version of the record.
pub(super) async fn update_condition(
    State(state): State<AppState>,
    command: Result<CommandBy, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
    resource: Result<Json<Value>, JsonRejection>,
) -> Result<Fhir, Fhir> {
    let CommandBy { context, caller } = command?;
    let record_id: RecordId = path_id(&id, "Condition id")?;
    permit(&caller, "Condition", Interaction::Update, record_patient(&state, &caller, record_id).await?)?;
    let resource = body(resource)?;
    ensure_id(&resource, &id)?;
    let diagnosis = input::diagnosis(&resource).map_err(|e| invalid_resource(&e))?;
    let reason = reason(&headers, "diagnosis revised (FHIR Condition update)")?;
    let read = state.clinic.read_record(&context.actor, record_id, None, None).await?;
    if read.basis == Basis::Redacted {
        let denied =
            emr_domain::access::Denied::RoleNotPermitted { role: context.actor.role, action: emr_domain::access::Action::AmendRecord };
        return Err(Fhir::from(ApiError::Clinic(denied.into())));
    }
    let content = amended_diagnosis(&resource, diagnosis, read.loaded.state())?;
    let read_version = read.loaded.sequence();
    let context = CommandContext { expected_version: context.expected_version.or(Some(read_version)), ..context };
    state.clinic.record(record_id, RecordCommand::Amend { content, reason }, &context).await?;
    let now = state.clinic.load_record(record_id).await?;
    let condition = emr_fhir::condition(record_id, now.state(), now.sequence(), false).ok_or_else(|| super::not_found("Condition"))?;
    Ok(Fhir::ok(condition).at_version(now.sequence()))
}

/// The record's current content with `diagnosis`, which `condition` codes (its
/// `subject`, if given, must be the record's patient).
pub(super) fn amended_diagnosis(condition: &Value, diagnosis: Diagnosis, record: &MedicalRecord) -> Result<RecordContent, Fhir> {
    if let Some(subject) = condition.pointer("/subject/reference").and_then(Value::as_str) {
        let expected = record.patient_id().map(|p| format!("Patient/{p}")).unwrap_or_default();
        if subject != expected {
            let mismatch = InvalidElement { element: "Condition.subject".into(), expected: format!("the record's patient, {expected}") };
            return Err(invalid_resource(&mismatch));
        }
    }
    let mut content = record.current().and_then(|version| version.content.value()).cloned().ok_or_else(|| super::not_found("Condition"))?;
    content.diagnosis = Some(diagnosis);
    Ok(content)
}

/// The command creating a record from an `Encounter`, in the sender's name.
pub(super) fn record_creation(record_id: RecordId, patient_id: PatientId, author: &Actor, new: input::NewEncounter) -> RecordCommand {
    RecordCommand::Create {
        record_id,
        patient_id,
        doctor_id: author.user_id,
        hospital_id: new.hospital_id,
        record_type: new.record_type,
        visit_date: new.visit_date,
        content: new.content,
    }
}

/// `POST /fhir/r4/Encounter`: creates a record of the patient the `subject`
/// names, authored by the sender; the `Idempotency-Key` makes a retry safe.
pub(super) async fn create_encounter(
    State(state): State<AppState>,
    command: Result<CommandBy, ApiError>,
    headers: HeaderMap,
    resource: Result<Json<Value>, JsonRejection>,
) -> Result<Fhir, Fhir> {
    let CommandBy { context, caller } = command?;
    let new = input::encounter(&body(resource)?).map_err(|e| invalid_resource(&e))?;
    let patient_id = super::bundle::subject_patient(&new.subject)?;
    permit(&caller, "Encounter", Interaction::Create, Some(patient_id))?;
    let record_id = RecordId::from(context.command_id.as_uuid());
    let receipt = state.clinic.record(record_id, record_creation(record_id, patient_id, &context.actor, new), &context).await?;
    // What is shown is what the caller just wrote: not a disclosure.
    let record = state.clinic.load_record(record_id).await?;
    let resource = emr_fhir::encounter(record_id, record.state(), record.sequence(), false);
    Ok(created(&headers, "Encounter", &record_id.to_string(), &receipt, resource, record.sequence()))
}

/// `DELETE /fhir/r4/Encounter/{id}`: soft-deletes the record (it stays in the log
/// and reads as `entered-in-error`).
pub(super) async fn delete_encounter(
    State(state): State<AppState>,
    command: Result<CommandBy, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Fhir, Fhir> {
    let CommandBy { context, caller } = command?;
    let record_id: RecordId = path_id(&id, "Encounter id")?;
    permit(&caller, "Encounter", Interaction::Delete, record_patient(&state, &caller, record_id).await?)?;
    let reason = reason(&headers, "entered in error (FHIR Encounter delete)")?;
    let receipt = state.clinic.record(record_id, RecordCommand::Delete { reason }, &context).await?;
    let mut deleted = Fhir { status: StatusCode::NO_CONTENT, body: None, version: None, location: None };
    deleted.version = version_after(&receipt);
    Ok(deleted)
}
