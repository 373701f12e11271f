//! A record's attachments through FHIR: `DocumentReference` says what a file is,
//! whose, and from which visit; `Binary` is the file itself, decrypted as it
//! streams (or, asked for as FHIR JSON, base64 in a `Binary` resource). Both read
//! under the record's grants, and every read is recorded in the access log.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use emr_domain::access::Basis;
use emr_domain::ids::{AttachmentId, RecordId};
use emr_fhir::scopes::Interaction;
use serde_json::json;

use super::{Fhir, not_found, permit, record_patient};
use crate::AppState;
use crate::extract::Caller;
use crate::problem::{ApiError, Problem};
use crate::routes::path_id;

/// Largest file answered inside a `Binary` resource (base64 in JSON); larger
/// ones are read raw.
const MAX_INLINE_BYTES: u64 = 16 * 1024 * 1024;

/// The record an attachment belongs to, from the record index.
async fn record_of(state: &AppState, attachment_id: AttachmentId, what: &str) -> Result<RecordId, Fhir> {
    let models = crate::routes::read::models(state)?;
    emr_projections::queries::record_of_attachment(&models.db, &attachment_id.to_string())
        .await
        .map_err(ApiError::from)?
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| not_found(what))
}

/// `GET /fhir/r4/DocumentReference/{attachment id}`.
pub(super) async fn document_reference(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path(id): Path<String>,
) -> Result<Fhir, Fhir> {
    let caller = caller?;
    let attachment_id: AttachmentId = path_id(&id, "DocumentReference id")?;
    let record_id = record_of(&state, attachment_id, "DocumentReference").await?;
    permit(&caller, "DocumentReference", Interaction::Read, record_patient(&state, &caller, record_id).await?)?;
    let read = state.clinic.read_record(&caller.actor, record_id, None, None).await?;
    let (version, record) = (read.loaded.sequence(), read.loaded.state());
    let attachment =
        record.attachments().iter().find(|a| a.attachment_id == attachment_id).ok_or_else(|| not_found("DocumentReference"))?;
    let resource = emr_fhir::document_reference(record_id, record, attachment, version, read.basis == Basis::Redacted);
    Ok(Fhir::ok(resource).at_version(version))
}

/// The search `DocumentReference?encounter=`: one record's attachments.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DocumentSearch {
    /// `<record id>` or `Encounter/<record id>`.
    encounter: Option<String>,
}

/// `GET /fhir/r4/DocumentReference?encounter=…`: every attachment of a record,
/// read (and recorded) as one read of the record.
pub(super) async fn document_references(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    search: Result<Query<DocumentSearch>, QueryRejection>,
) -> Result<Fhir, Fhir> {
    let caller = caller?;
    let search = search.map_err(|e| super::search::invalid_search(&e.body_text()))?.0;
    let record_id = super::search::encounter_parameter(search.encounter)?;
    permit(&caller, "DocumentReference", Interaction::Search, record_patient(&state, &caller, record_id).await?)?;
    let read = state.clinic.read_record(&caller.actor, record_id, None, None).await?;
    let (version, redacted, record) = (read.loaded.sequence(), read.basis == Basis::Redacted, read.loaded.state());
    let base = super::base_url(&headers);
    let entries = record
        .attachments()
        .iter()
        .map(|a| {
            (format!("{base}/DocumentReference/{}", a.attachment_id), emr_fhir::document_reference(record_id, record, a, version, redacted))
        })
        .collect();
    Ok(Fhir::ok(emr_fhir::searchset(&format!("{base}/DocumentReference?encounter={record_id}"), None, entries)))
}

/// `GET /fhir/r4/Binary/{attachment id}`: the file, decrypted and verified as it
/// streams, in its own type; with `Accept: application/fhir+json`, a `Binary`
/// resource carrying it in base64 (files up to 16 MiB).
pub(super) async fn binary(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Fhir> {
    let caller = caller?;
    let attachment_id: AttachmentId = path_id(&id, "Binary id")?;
    let record_id = record_of(&state, attachment_id, "Binary").await?;
    permit(&caller, "Binary", Interaction::Read, record_patient(&state, &caller, record_id).await?)?;
    let as_resource =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("application/fhir+json"));
    let store = crate::routes::attachments::store(&state)?;
    if as_resource {
        // Checked before the read is recorded: a refused request discloses nothing.
        let size = state
            .clinic
            .load_record(record_id)
            .await?
            .state()
            .attachments()
            .iter()
            .find(|a| a.attachment_id == attachment_id)
            .map(|a| a.size_bytes);
        if size.is_some_and(|size| size > MAX_INLINE_BYTES) {
            return Err(Fhir::from(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "The file is too large for a Binary resource",
                format!("files over {MAX_INLINE_BYTES} bytes are read raw: ask without Accept: application/fhir+json"),
            )));
        }
    }
    let download = store.download(&caller.actor, record_id, attachment_id).await.map_err(ApiError::from)?;
    if !as_resource {
        return Ok(crate::routes::attachments::streamed(download));
    }
    let content_type = download.attachment.mime_type.as_ref().map_or("application/octet-stream".to_owned(), |m| m.as_str().to_owned());
    let mut bytes = Vec::new();
    download.stream_into(&mut bytes).await.map_err(ApiError::from)?;
    let resource = json!({
        "resourceType": "Binary",
        "id": attachment_id.to_string(),
        "contentType": content_type,
        "data": base64::engine::general_purpose::STANDARD.encode(&bytes),
    });
    Ok(Fhir::ok(resource).into_response())
}
