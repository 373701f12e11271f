//! AI-assisted diagnosis: ask for a diagnosis of an attachment (a background
//! job), follow or cancel it, read a record's suggestions and their diagnostic
//! reports (JSON or a printable page), review a suggestion; and the model
//! registry (register a card, install its artifact, validate, activate, retire).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use emr_commands::{Read, Receipt};
use emr_diagnosis::{DiagnosisError, ModelShelf};
use emr_diagnosis_jobs::{Ask, DiagnosisJobs, JobError, JobStatus};
use emr_domain::access::Basis;
use emr_domain::diagnosis::{
    ClassProbability, Finding, ModelCard, ModelCommand, ModelRef, REVIEW_NOTICE, Review, ReviewOutcome, Validation,
};
use emr_domain::ids::{AttachmentId, DiagnosisJobId, DisclosureId, ModelId, PatientId, RecordId, SuggestionId, UserId};
use emr_domain::phi::Phi;
use emr_domain::record::{MedicalRecord, RecordCommand, SuggestionSummary};
use emr_domain::values::ShortText;
use serde::{Deserialize, Serialize};

use super::path_id;
use crate::AppState;
use crate::extract::{Body, Caller, Command};
use crate::problem::{ApiError, Problem};

/// What the diagnosis endpoints need.
#[derive(Clone)]
pub struct DiagnosisState {
    /// The job queue and statuses.
    pub jobs: DiagnosisJobs,
    /// The installed model artifacts.
    pub shelf: Arc<dyn ModelShelf>,
}

fn diagnosis(state: &AppState) -> Result<&DiagnosisState, ApiError> {
    state.diagnosis.as_ref().ok_or_else(|| {
        ApiError::Problem(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "diagnosis-not-configured",
            "This server runs no diagnosis",
            "configure [diagnosis] to run AI-assisted diagnosis",
        ))
    })
}

impl From<JobError> for ApiError {
    fn from(error: JobError) -> Self {
        match error {
            JobError::Clinic(error) => Self::Clinic(error),
            JobError::Queue(error) => Self::Store(emr_eventstore::StoreError::Log(error)),
            JobError::NoSuchAttachment(_) => Self::NotFound("attachment".into()),
            JobError::NotFound => Self::NotFound("diagnosis job".into()),
            JobError::KeyReused => Self::Problem(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "The idempotency key names another request",
                error.to_string(),
            )),
            JobError::Corrupt(_) => {
                Self::Problem(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Something went wrong", "the error was logged"))
            }
        }
    }
}

fn artifact_problem(error: &DiagnosisError) -> ApiError {
    ApiError::Problem(Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-artifact",
        "The artifact is not the card's model",
        error.to_string(),
    ))
}

/// A diagnosis request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiagnosisAsk {
    /// The model to run (its registry id); it must be active.
    model_id: ModelId,
    /// The DICOM frame to read (0-based; 0 for images).
    #[serde(default)]
    frame: u32,
    /// Also store an explanation image (occlusion sensitivity) as an attachment.
    #[serde(default)]
    explain: bool,
}

/// A diagnosis job as its requester sees it (no PHI).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct JobView {
    #[schema(value_type = Object)]
    #[serde(flatten)]
    status: JobStatus,
    /// Where to poll.
    href: String,
}

impl From<JobStatus> for JobView {
    fn from(status: JobStatus) -> Self {
        let href = format!("/v1/diagnosis/jobs/{}", status.job_id);
        Self { status, href }
    }
}

#[utoipa::path(post, path = "/v1/records/{record_id}/attachments/{attachment_id}/diagnosis", tag = "diagnosis",
    summary = "Ask for an AI-assisted diagnosis of an attachment (a background job; Idempotency-Key = job id)",
    params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("record_id" = String, Path), ("attachment_id" = String, Path)), request_body = DiagnosisAsk,
    responses((status = 202, description = "queued: the job's status; poll its href", body = JobView),
              (status = "4XX", description = "problem+json: invalid input, forbidden, no such attachment or model, model not active", body = crate::Problem, content_type = "application/problem+json"),
              (status = "5XX", description = "problem+json: the queue is unavailable", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn request(
    State(state): State<AppState>,
    Path((record_id, attachment_id)): Path<(String, String)>,
    Command(context): Command,
    Body(body): Body<DiagnosisAsk>,
) -> Result<Response, ApiError> {
    let record_id: RecordId = path_id(&record_id, "record id")?;
    let attachment_id: AttachmentId = path_id(&attachment_id, "attachment id")?;
    let ask = Ask { record_id, attachment_id, model_id: body.model_id, frame: body.frame, explain: body.explain };
    let view = JobView::from(diagnosis(&state)?.jobs.request(&context, ask).await?);
    let location = HeaderValue::from_str(&view.href).unwrap_or(HeaderValue::from_static("/v1/diagnosis/jobs"));
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(view)).into_response())
}

#[utoipa::path(get, path = "/v1/diagnosis/jobs/{job_id}", tag = "diagnosis", summary = "A diagnosis job's status (its requester only)",
    params(("job_id" = String, Path)),
    responses((status = 200, body = JobView), (status = "4XX", description = "problem+json", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn job(State(state): State<AppState>, caller: Caller, Path(job_id): Path<String>) -> Result<Json<JobView>, ApiError> {
    let job_id: DiagnosisJobId = path_id(&job_id, "job id")?;
    Ok(Json(diagnosis(&state)?.jobs.status(&caller.actor, job_id).await?.into()))
}

#[utoipa::path(post, path = "/v1/diagnosis/jobs/{job_id}/cancellation", tag = "diagnosis",
    summary = "Cancel a diagnosis job: a queued one at once, a running one at its next step",
    params(("job_id" = String, Path)),
    responses((status = 200, body = JobView), (status = "4XX", description = "problem+json", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn cancel(State(state): State<AppState>, caller: Caller, Path(job_id): Path<String>) -> Result<Json<JobView>, ApiError> {
    let job_id: DiagnosisJobId = path_id(&job_id, "job id")?;
    Ok(Json(diagnosis(&state)?.jobs.cancel(&caller.actor, job_id).await?.into()))
}

/// A physician's verdict.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewBody {
    outcome: ReviewOutcome,
    /// The right answer, for `corrected` only.
    correction: Option<ShortText>,
    /// A remark.
    note: Option<ShortText>,
}

#[utoipa::path(post, path = "/v1/records/{record_id}/suggestions/{suggestion_id}/review", tag = "diagnosis",
    summary = "Accept, reject or correct a suggestion (physicians, in their own name, once)",
    params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("record_id" = String, Path), ("suggestion_id" = String, Path)), request_body = ReviewBody,
    responses((status = 200, description = "the commit", body = emr_commands::Receipt),
              (status = "4XX", description = "problem+json", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn review(
    State(state): State<AppState>,
    Path((record_id, suggestion_id)): Path<(String, String)>,
    Command(context): Command,
    Body(body): Body<ReviewBody>,
) -> Result<Json<Receipt>, ApiError> {
    let record_id: RecordId = path_id(&record_id, "record id")?;
    let suggestion_id: SuggestionId = path_id(&suggestion_id, "suggestion id")?;
    let review =
        Review { suggestion_id, reviewer_id: context.actor.user_id, outcome: body.outcome, correction: body.correction, note: body.note };
    Ok(Json(state.clinic.record(record_id, RecordCommand::ReviewDiagnosis(review), &context).await?))
}

/// A physician's review, as a report shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ReviewView {
    reviewer_id: UserId,
    outcome: ReviewOutcome,
    correction: Option<ShortText>,
    note: Option<ShortText>,
}

/// A suggestion: the diagnostic report's structured form.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct DiagnosticReport {
    suggestion_id: SuggestionId,
    record_id: RecordId,
    patient_id: Option<PatientId>,
    /// `preliminary` until a physician reviewed it, then `final`.
    status: &'static str,
    /// The attachment the model read.
    attachment_id: AttachmentId,
    #[schema(value_type = Object)]
    model: ModelRef,
    /// Every class probability (withheld when the reader may not see PHI or the patient was erased).
    #[schema(value_type = Vec<Object>)]
    probabilities: Option<Vec<ClassProbability>>,
    /// The top class; null when inconclusive or withheld.
    top: Option<String>,
    confidence: Option<f32>,
    /// The explanation image, an attachment of the record.
    explanation_attachment_id: Option<AttachmentId>,
    review: Option<ReviewView>,
    notice: &'static str,
    generated_at: DateTime<Utc>,
    /// The disclosure that recorded this read.
    disclosure_id: Option<DisclosureId>,
}

fn report(record_id: RecordId, read: &Read<MedicalRecord>, suggestion: &SuggestionSummary) -> DiagnosticReport {
    let visible = read.basis != Basis::Redacted;
    let finding: Option<&Finding> = suggestion.finding.value().filter(|_| visible);
    let open = |phi: &Option<Phi<ShortText>>| phi.as_ref().and_then(Phi::value).filter(|_| visible).cloned();
    DiagnosticReport {
        suggestion_id: suggestion.suggestion_id,
        record_id,
        patient_id: read.loaded.state().patient_id(),
        status: if suggestion.review.is_some() { "final" } else { "preliminary" },
        attachment_id: suggestion.attachment_id,
        model: suggestion.model.clone(),
        probabilities: finding.map(|f| f.probabilities.clone()),
        top: finding.and_then(|f| f.top.clone()),
        confidence: finding.map(|f| f.confidence),
        explanation_attachment_id: suggestion.explanation,
        review: suggestion.review.as_ref().map(|r| ReviewView {
            reviewer_id: r.reviewer_id,
            outcome: r.outcome,
            correction: open(&r.correction),
            note: open(&r.note),
        }),
        notice: REVIEW_NOTICE,
        generated_at: Utc::now(),
        disclosure_id: read.disclosure,
    }
}

#[utoipa::path(get, path = "/v1/records/{record_id}/suggestions", tag = "diagnosis",
    summary = "A record's AI-assisted suggestions with their reviews (recorded as a disclosure)",
    params(("record_id" = String, Path)),
    responses((status = 200, body = Vec<DiagnosticReport>), (status = "4XX", description = "problem+json", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn suggestions(
    State(state): State<AppState>,
    caller: Caller,
    Path(record_id): Path<String>,
) -> Result<Json<Vec<DiagnosticReport>>, ApiError> {
    let record_id: RecordId = path_id(&record_id, "record id")?;
    let read = state.clinic.read_record(&caller.actor, record_id, None, None).await?;
    Ok(Json(read.loaded.state().suggestions().iter().map(|s| report(record_id, &read, s)).collect()))
}

/// How to render a report.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReportFormat {
    /// `json` (the default) or `html` (a printable page).
    format: Option<String>,
}

#[utoipa::path(get, path = "/v1/records/{record_id}/suggestions/{suggestion_id}/report", tag = "diagnosis",
    summary = "A suggestion's diagnostic report, as JSON or a printable HTML page (recorded as a disclosure)",
    params(("record_id" = String, Path), ("suggestion_id" = String, Path), ReportFormat),
    responses((status = 200, body = DiagnosticReport), (status = "4XX", description = "problem+json", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn report_of(
    State(state): State<AppState>,
    caller: Caller,
    Path((record_id, suggestion_id)): Path<(String, String)>,
    format: Result<Query<ReportFormat>, QueryRejection>,
) -> Result<Response, ApiError> {
    let record_id: RecordId = path_id(&record_id, "record id")?;
    let suggestion_id: SuggestionId = path_id(&suggestion_id, "suggestion id")?;
    let Query(format) = format?;
    let html = match format.format.as_deref() {
        None | Some("json") => false,
        Some("html") => true,
        Some(other) => {
            return Err(ApiError::Problem(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-query",
                "The query string is not valid",
                format!("format must be json or html, not {:?}", other.chars().take(32).collect::<String>()),
            )));
        }
    };
    let read = state.clinic.read_record(&caller.actor, record_id, None, None).await?;
    let suggestion = read
        .loaded
        .state()
        .suggestions()
        .iter()
        .find(|s| s.suggestion_id == suggestion_id)
        .ok_or_else(|| ApiError::NotFound("suggestion".into()))?;
    let report = report(record_id, &read, suggestion);
    Ok(if html { Html(printable(&report)).into_response() } else { Json(report).into_response() })
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// The report as a page to print and sign.
fn printable(report: &DiagnosticReport) -> String {
    let rows: String = report
        .probabilities
        .iter()
        .flatten()
        .map(|p| format!("<tr><td>{}</td><td>{:.1} %</td></tr>", escape(&p.label), p.probability * 100.0))
        .collect();
    let top = match (&report.top, report.confidence, &report.probabilities) {
        (_, _, None) => "withheld".to_owned(),
        (Some(top), Some(confidence), _) => format!("{} ({:.1} %)", escape(top), confidence * 100.0),
        _ => "inconclusive".to_owned(),
    };
    let review = match &report.review {
        None => "Not yet reviewed by a physician.".to_owned(),
        Some(r) => format!(
            "{:?} by physician {}{}{}",
            r.outcome,
            r.reviewer_id,
            r.correction.as_ref().map(|c| format!("; correct diagnosis: {}", escape(c.as_str()))).unwrap_or_default(),
            r.note.as_ref().map(|n| format!("; note: {}", escape(n.as_str()))).unwrap_or_default()
        ),
    };
    let explanation =
        report.explanation_attachment_id.map(|id| format!("<p>Explanation image: attachment {id} of this record.</p>")).unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Diagnostic report {id}</title>\
<style>body{{font-family:sans-serif;max-width:48em;margin:2em auto}}table{{border-collapse:collapse}}td{{border:1px solid #999;padding:.3em .8em}}\
.notice{{font-weight:bold;border:2px solid #b00;padding:.5em}}@media print{{.notice{{border-color:#000}}}}</style></head><body>\
<h1>AI-assisted diagnostic report</h1><p class=\"notice\">{notice}</p>\
<p>Status: <strong>{status}</strong> · Record {record} · Patient {patient} · Generated {generated}</p>\
<p>Image: attachment {attachment}</p><p>Model: {model} {version} (SHA-256 {sha})</p>\
<h2>Finding</h2><p>Top class: {top}</p><table><tr><th>Class</th><th>Probability</th></tr>{rows}</table>{explanation}\
<h2>Review</h2><p>{review}</p></body></html>\n",
        id = report.suggestion_id,
        notice = escape(report.notice),
        status = report.status,
        record = report.record_id,
        patient = report.patient_id.map(|p| p.to_string()).unwrap_or_default(),
        generated = report.generated_at.to_rfc3339(),
        attachment = report.attachment_id,
        model = escape(&report.model.name),
        version = escape(&report.model.version),
        sha = report.model.sha256,
    )
}

/// A model in the registry.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ModelView {
    model_id: ModelId,
    #[schema(value_type = String)]
    status: emr_domain::diagnosis::ModelStatus,
    #[schema(value_type = Object)]
    card: Option<ModelCard>,
    #[schema(value_type = Vec<Object>)]
    validations: Vec<Validation>,
    /// Whether this server holds the artifact (a model is activated only once it does).
    installed: bool,
}

async fn model_view(state: &AppState, model_id: ModelId) -> Result<ModelView, ApiError> {
    let model = state.clinic.diagnostic_model(model_id).await?;
    let Some(card) = model.card().cloned() else { return Err(ApiError::NotFound("model".into())) };
    let installed = diagnosis(state)?.shelf.contains(&card);
    Ok(ModelView { model_id, status: model.status(), card: Some(card), validations: model.validations().to_vec(), installed })
}

/// A model card to register.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Registration {
    #[schema(value_type = Object)]
    card: ModelCard,
}

#[utoipa::path(post, path = "/v1/ai/models", tag = "diagnosis",
    summary = "Register a model by its card (administrators); its id is the UUIDv5 of its artifact's SHA-256",
    request_body = Registration, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader),
    responses((status = 201, body = ModelView), (status = "4XX", description = "problem+json", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn register(
    State(state): State<AppState>,
    Command(context): Command,
    Body(body): Body<Registration>,
) -> Result<(StatusCode, Json<ModelView>), ApiError> {
    diagnosis(&state)?;
    let model_id = ModelId::for_artifact(&body.card.sha256);
    let command = ModelCommand::Register { model_id, card: body.card, registered_by: context.actor.user_id };
    state.clinic.model(model_id, command, &context).await?;
    Ok((StatusCode::CREATED, Json(model_view(&state, model_id).await?)))
}

#[utoipa::path(get, path = "/v1/ai/models/{model_id}", tag = "diagnosis", summary = "A registered model: card, status, validations, whether installed",
    params(("model_id" = String, Path)),
    responses((status = 200, body = ModelView), (status = "4XX", description = "problem+json", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn model(
    State(state): State<AppState>,
    caller: Caller,
    Path(model_id): Path<String>,
) -> Result<Json<ModelView>, ApiError> {
    let model_id: ModelId = path_id(&model_id, "model id")?;
    state.clinic.authorize(&caller.actor, emr_domain::access::Action::ManageModels, emr_commands::Subject::default()).await?;
    Ok(Json(model_view(&state, model_id).await?))
}

#[utoipa::path(put, path = "/v1/ai/models/{model_id}/artifact", tag = "diagnosis",
    summary = "Install a registered model's artifact (raw ONNX bytes; refused unless they hash to its card and fit its input contract)",
    params(("model_id" = String, Path)), request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = ModelView), (status = "4XX", description = "problem+json", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn install(
    State(state): State<AppState>,
    caller: Caller,
    Path(model_id): Path<String>,
    artifact: Bytes,
) -> Result<Json<ModelView>, ApiError> {
    let model_id: ModelId = path_id(&model_id, "model id")?;
    state.clinic.authorize(&caller.actor, emr_domain::access::Action::ManageModels, emr_commands::Subject::default()).await?;
    let model = state.clinic.diagnostic_model(model_id).await?;
    let card = model.card().cloned().ok_or_else(|| ApiError::NotFound("model".into()))?;
    let shelf = diagnosis(&state)?.shelf.clone();
    match tokio::task::spawn_blocking(move || shelf.install(&card, &artifact)).await {
        Ok(installed) => installed.map_err(|e| artifact_problem(&e))?,
        Err(_) => {
            let problem = Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Something went wrong", "the error was logged");
            return Err(ApiError::Problem(problem));
        }
    }
    Ok(Json(model_view(&state, model_id).await?))
}

/// A validation run's figures.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ValidationBody {
    #[schema(value_type = Object)]
    validation: Validation,
}

#[utoipa::path(post, path = "/v1/ai/models/{model_id}/validation", tag = "diagnosis", summary = "Record a model's figures on a named validation set",
    params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("model_id" = String, Path)), request_body = ValidationBody,
    responses((status = 200, body = ModelView), (status = "4XX", description = "problem+json", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn validate(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
    Command(context): Command,
    Body(body): Body<ValidationBody>,
) -> Result<Json<ModelView>, ApiError> {
    let model_id: ModelId = path_id(&model_id, "model id")?;
    let command = ModelCommand::Validate { validation: body.validation, validated_by: context.actor.user_id };
    state.clinic.model(model_id, command, &context).await?;
    Ok(Json(model_view(&state, model_id).await?))
}

#[utoipa::path(post, path = "/v1/ai/models/{model_id}/activation", tag = "diagnosis",
    summary = "Let a validated model serve suggestions (refused until its artifact is installed here)",
    params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("model_id" = String, Path)),
    responses((status = 200, body = ModelView), (status = "4XX", description = "problem+json", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn activate(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
    Command(context): Command,
) -> Result<Json<ModelView>, ApiError> {
    let model_id: ModelId = path_id(&model_id, "model id")?;
    state.clinic.authorize(&context.actor, emr_domain::access::Action::ManageModels, emr_commands::Subject::default()).await?;
    if !model_view(&state, model_id).await?.installed {
        return Err(ApiError::Problem(Problem::new(
            StatusCode::CONFLICT,
            "artifact-not-installed",
            "The model's artifact is not installed",
            "PUT the artifact to /v1/ai/models/{model_id}/artifact first",
        )));
    }
    state.clinic.model(model_id, ModelCommand::Activate { activated_by: context.actor.user_id }, &context).await?;
    Ok(Json(model_view(&state, model_id).await?))
}

/// Why a model is retired.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Retirement {
    reason: ShortText,
}

#[utoipa::path(post, path = "/v1/ai/models/{model_id}/retirement", tag = "diagnosis", summary = "Stop a model for good",
    params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("model_id" = String, Path)), request_body = Retirement,
    responses((status = 200, body = ModelView), (status = "4XX", description = "problem+json", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn retire(
    State(state): State<AppState>,
    Path(model_id): Path<String>,
    Command(context): Command,
    Body(body): Body<Retirement>,
) -> Result<Json<ModelView>, ApiError> {
    let model_id: ModelId = path_id(&model_id, "model id")?;
    state.clinic.model(model_id, ModelCommand::Retire { reason: body.reason, retired_by: context.actor.user_id }, &context).await?;
    Ok(Json(model_view(&state, model_id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printable_report_escapes_what_it_quotes() {
        assert_eq!(escape("<script>&\"'"), "&lt;script&gt;&amp;&quot;&#39;");
    }
}
