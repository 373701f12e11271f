//! Between protobuf messages and domain values. The messages mirror the REST
//! JSON bodies, so each converts through serde into the domain's value objects,
//! whose parsing is the validation.

use emr_auth::TokenPair;
use emr_commands::{Read, Receipt};
use emr_domain::ids::RecordId;
use emr_domain::metadata::CommandContext;
use emr_domain::record::MedicalRecord;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

use crate::pb;

/// INVALID_ARGUMENT naming the field, with a google.rpc.BadRequest and the
/// `invalid-field` reason.
pub(crate) fn invalid(field: &str, description: &str) -> Status {
    let mut details = ErrorDetails::with_bad_request_violation(field, description);
    details.set_error_info("invalid-field", "emr-ledger", [("field".to_owned(), field.to_owned())]);
    Status::with_error_details(tonic::Code::InvalidArgument, format!("invalid {field}: {description}"), details)
}

/// A domain value from a JSON value.
pub(crate) fn field<T: DeserializeOwned>(name: &str, value: serde_json::Value) -> Result<T, Status> {
    serde_json::from_value(value).map_err(|e| invalid(name, &e.to_string()))
}

/// A domain value from a message (absent messages are invalid).
pub(crate) fn message<M: Serialize, T: DeserializeOwned>(name: &str, message: Option<M>) -> Result<T, Status> {
    let message = message.ok_or_else(|| invalid(name, "is required"))?;
    let value = serde_json::to_value(message).map_err(|e| invalid(name, &e.to_string()))?;
    field(name, value)
}

/// An id from its text.
pub(crate) fn id<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, Status> {
    text.parse().map_err(|_| invalid(name, "must be a UUID"))
}

/// The id a creation names, or else its command id: a retry under the same
/// command id names the same aggregate.
pub(crate) fn id_or_command<T: std::str::FromStr + From<uuid::Uuid>>(
    name: &str,
    given: Option<String>,
    context: &CommandContext,
) -> Result<T, Status> {
    given.map_or_else(|| Ok(T::from(context.command_id.as_uuid())), |text| id(name, &text))
}

pub(crate) fn receipt(receipt: Receipt) -> pb::Receipt {
    pb::Receipt {
        aggregate_type: receipt.aggregate_type,
        aggregate_id: receipt.aggregate_id,
        position: receipt.position.unwrap_or(0),
        replayed: receipt.replayed,
        events: receipt.events.into_iter().map(|e| pb::EventSummary { sequence: e.sequence, event_type: e.event_type }).collect(),
    }
}

pub(crate) fn tokens(pair: TokenPair) -> pb::TokenPair {
    pb::TokenPair {
        access_token: pair.access_token,
        token_type: pair.token_type.to_owned(),
        expires_in: pair.expires_in,
        refresh_token: pair.refresh_token,
    }
}

fn text<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        _ => String::new(),
    }
}

pub(crate) fn record_view(record_id: RecordId, read: &Read<MedicalRecord>, redacted: bool) -> Result<pb::RecordView, Status> {
    let record = read.loaded.state();
    let mut versions = Vec::new();
    for version in record.versions() {
        let content = match version.content.value().filter(|_| !redacted) {
            Some(content) => Some(field("content", serde_json::to_value(content).map_err(|e| Status::internal(e.to_string()))?)?),
            None => None,
        };
        versions.push(pb::Version { version: version.version, shredded: version.content.is_shredded(), content });
    }
    Ok(pb::RecordView {
        record_id: record_id.to_string(),
        patient_id: record.patient_id().map(|id| id.to_string()).unwrap_or_default(),
        status: text(&record.status()),
        redacted,
        versions,
        disclosure_id: read.disclosure.map(|id| id.to_string()),
        position: read.loaded.position(),
    })
}
