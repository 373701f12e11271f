//! Attachment content, streamed both ways: uploads are sealed while they arrive,
//! downloads decrypted while they leave; neither is ever held whole in memory.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use emr_attachments::{AttachmentError, Attachments, Upload};
use emr_commands::Receipt;
use emr_domain::ids::{AttachmentId, RecordId};
use emr_domain::values::{MimeType, ShortText};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;

use super::path_id;
use crate::AppState;
use crate::extract::{Caller, Command};
use crate::problem::{ApiError, Problem};

pub(crate) fn store(state: &AppState) -> Result<&Attachments, ApiError> {
    state.attachments.as_ref().ok_or_else(|| {
        ApiError::Problem(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "attachments-not-configured",
            "This server stores no attachments",
            "configure a blob store to accept attachments",
        ))
    })
}

fn invalid(field: &str, detail: impl Into<String>) -> ApiError {
    ApiError::Problem(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", &format!("The {field} is not valid"), detail))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FileName {
    /// The original file name (sealed as PHI).
    filename: String,
}

/// Streams the request body, sealed with the patient's key, into the blob store
/// and records the attachment. `Content-Type` is the file's MIME type; the
/// `Idempotency-Key` becomes the attachment id.
#[utoipa::path(post, path = "/v1/records/{record_id}/attachments/content", tag = "records",
    summary = "Upload an attachment (raw body, any size; sealed while streaming)",
    params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("record_id" = String, Path, description = "record id (UUID)"), FileName),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, description = "stored and recorded", body = emr_commands::Receipt),
              (status = "4XX", description = "problem+json", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn upload(
    State(state): State<AppState>,
    Path(record_id): Path<String>,
    Command(context): Command,
    name: Result<Query<FileName>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Receipt>), ApiError> {
    let record_id: RecordId = path_id(&record_id, "record id")?;
    let Query(name) = name?;
    let filename = ShortText::parse("filename", name.filename).map_err(|e| invalid("filename", e.to_string()))?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/octet-stream");
    let mime_type =
        MimeType::parse(content_type.split(';').next().unwrap_or_default().trim()).map_err(|e| invalid("Content-Type", e.to_string()))?;
    let upload = Upload { record_id, attachment_id: AttachmentId::from(context.command_id.as_uuid()), mime_type, filename };
    let mut reader = tokio_util::io::StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    let receipt = store(&state)?.upload(&context, upload, &mut reader).await?;
    Ok((StatusCode::CREATED, Json(receipt)))
}

/// Streams an attachment's plaintext; the read is recorded as a disclosure first.
/// If the blob was altered the stream breaks off before its last chunk.
#[utoipa::path(get, path = "/v1/records/{record_id}/attachments/{attachment_id}/content", tag = "records",
    summary = "Download an attachment (recorded as a disclosure; verified against its SHA-256)",
    params(("record_id" = String, Path), ("attachment_id" = String, Path)),
    responses((status = 200, description = "the file", content_type = "application/octet-stream"),
              (status = "4XX", description = "problem+json", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path((record_id, attachment_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let record_id: RecordId = path_id(&record_id, "record id")?;
    let attachment_id: AttachmentId = path_id(&attachment_id, "attachment id")?;
    let download = store(&state)?.download(&caller.actor, record_id, attachment_id).await?;
    Ok(streamed(download))
}

/// A download as a response: the plaintext streamed as it is decrypted, with
/// its type, length, digest and the disclosure that recorded the read.
pub(crate) fn streamed(download: emr_attachments::Download) -> Response {
    let mime = download.attachment.mime_type.as_ref().map_or("application/octet-stream".to_owned(), |m| m.as_str().to_owned());
    let size = download.attachment.size_bytes;
    let disclosure = download.disclosure.map(|id| id.to_string()).unwrap_or_default();
    let digest = download.attachment.sha256.to_string();
    let (mut writer, reader) = tokio::io::duplex(256 * 1024);
    let (verdict_tx, verdict_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let outcome = download.stream_into(&mut writer).await;
        drop(writer);
        if let Err(error) = &outcome {
            tracing::warn!(%error, "attachment download aborted");
        }
        let _ = verdict_tx.send(outcome.map(|_| ()).map_err(|error| error.to_string()));
    });
    // After the data, the stream ends with the verdict: an error aborts the
    // response, so the client sees a broken transfer, never a complete wrong file.
    let verdict = futures::stream::once(async move {
        match verdict_rx.await {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(Err(std::io::Error::other(error))),
            Err(_) => Some(Err(std::io::Error::other("the download ended without a verdict"))),
        }
    })
    .filter_map(futures::future::ready);
    let mut response = Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(reader).chain(verdict)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(&mime).unwrap_or(HeaderValue::from_static("application/octet-stream")));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(value) = HeaderValue::from_str(&disclosure) {
        headers.insert("x-emr-disclosure-id", value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("sha-256={digest}")) {
        headers.insert("x-emr-content-sha256", value);
    }
    response
}

/// The largest attachment a preview decodes (it is read whole into memory).
const MAX_PREVIEW_INPUT_BYTES: u64 = 128 * 1024 * 1024;
/// How long drawing a preview may take before the request gives up.
const PREVIEW_BUDGET: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct PreviewOptions {
    /// The frame of a multi-frame DICOM object (0-based; default 0).
    #[serde(default)]
    frame: u32,
    /// The largest side of the PNG in pixels (default 512, at most 2048).
    #[serde(default = "default_preview_side")]
    size: u32,
}

fn default_preview_side() -> u32 {
    512
}

/// A picture of an image attachment a browser can show: a DICOM frame after
/// its window, or a JPEG/PNG, shrunk into a PNG. It reveals the image, so it is
/// recorded as a disclosure like a download.
#[utoipa::path(get, path = "/v1/records/{record_id}/attachments/{attachment_id}/preview", tag = "records",
    summary = "A PNG preview of an image attachment (DICOM, JPEG or PNG; recorded as a disclosure)",
    params(("record_id" = String, Path), ("attachment_id" = String, Path), PreviewOptions),
    responses((status = 200, description = "the preview", content_type = "image/png"),
              (status = "4XX", description = "problem+json: not an image, frame out of range, too large", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    Path((record_id, attachment_id)): Path<(String, String)>,
    options: Result<Query<PreviewOptions>, QueryRejection>,
) -> Result<Response, ApiError> {
    let record_id: RecordId = path_id(&record_id, "record id")?;
    let attachment_id: AttachmentId = path_id(&attachment_id, "attachment id")?;
    let Query(options) = options?;
    if options.size == 0 || options.size > emr_imaging::MAX_PREVIEW_SIDE {
        return Err(invalid("size", format!("give 1 to {} pixels", emr_imaging::MAX_PREVIEW_SIDE)));
    }
    // Refused before the read is recorded: a preview that is never drawn discloses nothing.
    let download = match store(&state)?.download_within(&caller.actor, record_id, attachment_id, MAX_PREVIEW_INPUT_BYTES).await {
        Err(AttachmentError::TooLarge { size, limit }) => {
            return Err(ApiError::Problem(Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large-to-preview",
                "The attachment is too large to preview",
                format!("{size} bytes; previews are drawn of files up to {limit} bytes — download it instead"),
            )));
        }
        download => download?,
    };
    let disclosure = download.disclosure;
    let mut bytes = Vec::with_capacity(usize::try_from(download.attachment.size_bytes).unwrap_or(0));
    download.stream_into(&mut bytes).await?;
    let not_previewable = |detail: String| {
        ApiError::Problem(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "not-previewable", "The attachment cannot be previewed", detail))
    };
    let drawing = tokio::task::spawn_blocking(move || emr_imaging::preview_png(&bytes, options.frame, options.size));
    let preview = match tokio::time::timeout(PREVIEW_BUDGET, drawing).await {
        Err(_) => return Err(not_previewable(format!("drawing it took longer than {PREVIEW_BUDGET:?}"))),
        Ok(Err(failed)) => {
            tracing::error!(error = %failed, "the preview task failed");
            return Err(ApiError::Problem(Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Something went wrong",
                "the error was logged",
            )));
        }
        Ok(Ok(drawn)) => drawn.map_err(|e| not_previewable(e.to_string()))?,
    };
    let mut response = Response::new(Body::from(preview.png));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(Ok(value)) = disclosure.map(|id| HeaderValue::from_str(&id.to_string())) {
        headers.insert("x-emr-disclosure-id", value);
    }
    Ok(response)
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct AttachmentStatus {
    attachment_id: AttachmentId,
    content_id: Option<emr_domain::values::ContentId>,
    mime_type: Option<MimeType>,
    size_bytes: u64,
    sha256: emr_domain::values::Sha256Digest,
    /// Whether the blob store keeps (pins) the blob; false after the patient's erasure.
    pinned: bool,
    /// How many peers hold the blob against the configured replication policy
    /// (`policy` null: no replication target, the blob store alone holds it).
    #[schema(value_type = Object)]
    replication: emr_attachments::ReplicationReport,
}

/// An attachment's facts and pin status (no content, no disclosure).
#[utoipa::path(get, path = "/v1/records/{record_id}/attachments/{attachment_id}", tag = "records",
    summary = "An attachment's content id, size, digest and pin status",
    params(("record_id" = String, Path), ("attachment_id" = String, Path)),
    responses((status = 200, body = AttachmentStatus),
              (status = "4XX", description = "problem+json", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn status(
    State(state): State<AppState>,
    caller: Caller,
    Path((record_id, attachment_id)): Path<(String, String)>,
) -> Result<Json<AttachmentStatus>, ApiError> {
    let record_id: RecordId = path_id(&record_id, "record id")?;
    let attachment_id: AttachmentId = path_id(&attachment_id, "attachment id")?;
    let status = store(&state)?.status(&caller.actor, record_id, attachment_id).await?;
    let attachment = status.attachment;
    Ok(Json(AttachmentStatus {
        attachment_id,
        content_id: attachment.content_id,
        mime_type: attachment.mime_type,
        size_bytes: attachment.size_bytes,
        sha256: attachment.sha256,
        pinned: status.pinned,
        replication: status.replication,
    }))
}
