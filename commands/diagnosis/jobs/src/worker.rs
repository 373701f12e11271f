//! [`DiagnosisWorker`]: takes jobs off the queue, at most `concurrency` at a
//! time, and carries each through its steps:
//!
//! ```text
//! reading ─→ decoding (time budget) ─→ classifying ─→ explaining? ─→ recording
//! ```
//!
//! Before each step the worker writes the step to the job's status, unless
//! the requester asked to cancel: then the job ends there, cancelled. Every
//! step acts in the requester's name, so the record's access rules and its
//! access log apply as if they had read the image themself.
//!
//! A crash at any point is safe: the job is delivered again, and every write
//! it makes repeats its command id (derived from the job id), so the
//! explanation image and the suggestion are recorded once.

use std::sync::Arc;
use std::time::Duration;

use emr_attachments::{AttachmentError, Attachments, Upload};
use emr_commands::ClinicError;
use emr_diagnosis::{Classifier, Diagnoser, DiagnosisError, ModelShelf};
use emr_domain::diagnosis::ModelError;
use emr_domain::ids::CommandId;
use emr_domain::metadata::CommandContext;
use emr_domain::record::RecordCommand;
use emr_domain::values::{MimeType, ShortText};
use emr_eventstore::{Delivery, LogError};

use crate::job::{DiagnosisRequest, JobState, Stage};
use crate::service::{DiagnosisJobs, JobError};

/// How a worker runs jobs.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Jobs run at the same time (each holds one decoded image and one model run).
    pub concurrency: usize,
    /// The longest a decode may take before the job fails: hostile files can
    /// make a decoder crawl.
    pub decode_budget: Duration,
    /// The probability a top class needs; below it the suggestion is inconclusive.
    pub min_confidence: f32,
    /// Cells per side of the explanation's occlusion grid.
    pub explanation_grid: usize,
    /// Deliveries before a job that keeps failing for a passing reason is
    /// failed; a delivery beyond them (its workers died) fails it at once. The
    /// queue must deliver at least once more than this (JetStream's default: 5).
    pub max_attempts: u64,
    /// How often a running job tells the queue it is still being worked on.
    pub keep_alive: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 2,
            decode_budget: Duration::from_secs(30),
            min_confidence: 0.5,
            explanation_grid: 6,
            max_attempts: 4,
            keep_alive: Duration::from_secs(10),
        }
    }
}

/// Why a job stopped.
enum Stop {
    /// For good: the job failed with this code and detail.
    Failed(&'static str, String),
    /// For now: try again later.
    Transient(String),
    /// The requester cancelled it.
    Cancelled,
}

impl From<JobError> for Stop {
    fn from(error: JobError) -> Self {
        match error {
            JobError::Clinic(error) => error.into(),
            JobError::Queue(error) => Self::Transient(error.to_string()),
            other => Self::Failed("job-error", other.to_string()),
        }
    }
}

impl From<ClinicError> for Stop {
    fn from(error: ClinicError) -> Self {
        if error.is_retryable() {
            return Self::Transient(error.to_string());
        }
        let code = match &error {
            ClinicError::Forbidden(_) => "forbidden",
            ClinicError::NotFound { .. } | ClinicError::Model(ModelError::NotFound) => "not-found",
            ClinicError::Model(_) => "model-not-serving",
            _ => "refused",
        };
        Self::Failed(code, error.to_string())
    }
}

impl From<AttachmentError> for Stop {
    fn from(error: AttachmentError) -> Self {
        match error {
            AttachmentError::Clinic(error) => error.into(),
            AttachmentError::Blob(emr_attachments::BlobError::Unavailable(_)) | AttachmentError::Key(_) => {
                Self::Transient(error.to_string())
            }
            AttachmentError::Erased => Self::Failed("patient-erased", error.to_string()),
            other => Self::Failed("attachment-unreadable", other.to_string()),
        }
    }
}

impl From<DiagnosisError> for Stop {
    fn from(error: DiagnosisError) -> Self {
        let code = match &error {
            DiagnosisError::Refused(_) => "input-refused",
            DiagnosisError::Imaging(_) => "undecodable",
            DiagnosisError::NotInstalled { .. } | DiagnosisError::ArtifactMismatch { .. } | DiagnosisError::Card(_) => "model-unavailable",
            DiagnosisError::Classifier(_) | DiagnosisError::Output(_) => "model-failed",
        };
        Self::Failed(code, error.to_string())
    }
}

/// Runs diagnosis jobs.
pub struct DiagnosisWorker {
    jobs: DiagnosisJobs,
    attachments: Attachments,
    shelf: Arc<dyn ModelShelf>,
    settings: WorkerSettings,
}

impl DiagnosisWorker {
    /// A worker for `jobs`, reading through `attachments`, loading models from `shelf`.
    pub fn new(jobs: DiagnosisJobs, attachments: Attachments, shelf: Arc<dyn ModelShelf>, settings: WorkerSettings) -> Self {
        Self { jobs, attachments, shelf, settings }
    }

    /// Takes jobs until `shutdown` resolves, `concurrency` at a time; jobs
    /// under way when it does are finished first.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let worker = Arc::new(self);
        let slots = Arc::new(tokio::sync::Semaphore::new(worker.settings.concurrency.max(1)));
        tokio::pin!(shutdown);
        loop {
            let slot = tokio::select! {
                () = &mut shutdown => break,
                slot = slots.clone().acquire_owned() => match slot { Ok(slot) => slot, Err(_) => break },
            };
            let delivery = tokio::select! {
                () = &mut shutdown => break,
                next = worker.jobs.queue().next(Duration::from_secs(1)) => next,
            };
            match delivery {
                Ok(Some(delivery)) => {
                    let worker = worker.clone();
                    tokio::spawn(async move {
                        worker.handle(delivery).await;
                        drop(slot);
                    });
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "diagnosis queue unavailable; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        let _ = slots.acquire_many(u32::try_from(worker.settings.concurrency.max(1)).unwrap_or(u32::MAX)).await;
    }

    /// Takes one job, waiting up to `wait`, and carries it to its end; false when none came.
    pub async fn run_one(&self, wait: Duration) -> Result<bool, LogError> {
        match self.jobs.queue().next(wait).await? {
            Some(delivery) => {
                self.handle(delivery).await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn handle(&self, delivery: Delivery) {
        let request: DiagnosisRequest = match serde_json::from_slice(&delivery.payload) {
            Ok(request) => request,
            Err(error) => {
                tracing::error!(job = %delivery.job_id, %error, "a diagnosis job that is not a request; dropped");
                let _ = delivery.done().await;
                return;
            }
        };
        let delivery = Arc::new(delivery);
        if delivery.attempt > self.settings.max_attempts {
            // Every attempt that fails for a passing reason settles before the
            // last one; a delivery past it means workers died running the job
            // (a decoder exhausting memory, say): it is not tried again.
            let detail = format!("{} workers stopped while running it", delivery.attempt - 1);
            self.finish(&request, &delivery, JobState::Failed { code: "worker-died".to_owned(), detail }, std::time::Instant::now()).await;
            return;
        }
        let keep_alive = {
            let (delivery, every) = (delivery.clone(), self.settings.keep_alive);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let _ = delivery.in_progress().await;
                }
            })
        };
        let started = std::time::Instant::now();
        let outcome = self.perform(&request, delivery.attempt).await;
        keep_alive.abort();
        let state = match outcome {
            Ok(state) => state,
            Err(Stop::Cancelled) => JobState::Cancelled,
            Err(Stop::Failed(code, detail)) => JobState::Failed { code: code.to_owned(), detail },
            Err(Stop::Transient(detail)) if delivery.attempt < self.settings.max_attempts => {
                tracing::warn!(job = %request.job_id, attempt = delivery.attempt, %detail, "diagnosis job will be retried");
                let _ = delivery.retry_after(Duration::from_secs(2 * delivery.attempt)).await;
                return;
            }
            Err(Stop::Transient(detail)) => JobState::Failed { code: "unavailable".to_owned(), detail },
        };
        self.finish(&request, &delivery, state, started).await;
    }

    /// Writes the job's final state, then tells the queue it is done (or, when
    /// the status could not be written, to deliver it again).
    async fn finish(&self, request: &DiagnosisRequest, delivery: &Delivery, state: JobState, started: std::time::Instant) {
        let name = state.name();
        let recorded = self
            .jobs
            .update(request.job_id, |status| {
                if status.state.is_final() {
                    return false;
                }
                status.state = state.clone();
                true
            })
            .await;
        match recorded {
            Ok(_) => {
                crate::metrics::finished(name, started.elapsed());
                let _ = delivery.done().await;
            }
            Err(error) => {
                tracing::warn!(job = %request.job_id, %error, "job status not written; the job will run again");
                let _ = delivery.retry_after(Duration::from_secs(2)).await;
            }
        }
    }

    /// Moves the job to `stage`, or stops it if its requester cancelled it or
    /// it already ended.
    async fn step(&self, request: &DiagnosisRequest, stage: Stage, attempt: Option<u64>) -> Result<(), Stop> {
        let status = self
            .jobs
            .update(request.job_id, |status| {
                if status.cancel_requested || status.state.is_final() {
                    return false;
                }
                status.state = JobState::Running { stage };
                if let Some(attempt) = attempt {
                    status.attempts = attempt;
                }
                true
            })
            .await?;
        if status.cancel_requested || matches!(status.state, JobState::Cancelled) {
            return Err(Stop::Cancelled);
        }
        if status.state.is_final() {
            // Another delivery of the same job already finished it.
            return Err(Stop::Failed("duplicate-delivery", "the job had already ended".to_owned()));
        }
        Ok(())
    }

    async fn perform(&self, request: &DiagnosisRequest, attempt: u64) -> Result<JobState, Stop> {
        match self.jobs.read(request.job_id).await? {
            Some((status, _)) if status.state.is_final() => return Ok(status.state),
            _ => {}
        }
        let actor = &request.requested_by;
        self.step(request, Stage::Reading, Some(attempt)).await?;
        let card = self.jobs.clinic.diagnostic_model(request.model_id).await?.serving_card().map_err(ClinicError::from)?.clone();
        let download = self.attachments.download(actor, request.record_id, request.attachment_id).await?;
        if download.attachment.size_bytes > emr_diagnosis::MAX_INPUT_BYTES {
            return Err(Stop::Failed("too-large", format!("{} bytes is more than an image may have", download.attachment.size_bytes)));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(download.attachment.size_bytes).unwrap_or(0));
        download.stream_into(&mut bytes).await?;

        self.step(request, Stage::Decoding, None).await?;
        let classifier = self.shelf.classifier(&card)?;
        let diagnoser = Arc::new(Diagnoser::new(card, classifier, self.settings.min_confidence)?);
        let (frame, budget) = (request.frame, self.settings.decode_budget);
        let examining = {
            let diagnoser = diagnoser.clone();
            blocking("undecodable", move || diagnoser.examine(&bytes, frame))
        };
        let examination = tokio::time::timeout(budget, examining)
            .await
            .map_err(|_| Stop::Failed("decode-timeout", format!("decoding took longer than {budget:?}")))??;

        self.step(request, Stage::Classifying, None).await?;
        let prediction = blocking("model-failed", {
            let (diagnoser, examination) = (diagnoser.clone(), examination.clone());
            move || diagnoser.predict(vec![examination])
        })
        .await?
        .pop()
        .ok_or_else(|| Stop::Failed("model-failed", "no prediction".to_owned()))?;

        let explanation = if request.explain {
            self.step(request, Stage::Explaining, None).await?;
            Some(self.explain(request, diagnoser, examination).await?)
        } else {
            None
        };

        self.step(request, Stage::Recording, None).await?;
        let mut suggestion = prediction.into_suggestion(request.suggestion_id(), request.attachment_id);
        suggestion.explanation = explanation;
        let context = self.context(request, "suggestion");
        let receipt = self.jobs.clinic.record(request.record_id, RecordCommand::SuggestDiagnosis(suggestion), &context).await?;
        Ok(JobState::Succeeded { suggestion_id: request.suggestion_id(), explanation, position: receipt.position })
    }

    /// Computes the occlusion map and stores it as an attachment of the record.
    async fn explain(
        &self,
        request: &DiagnosisRequest,
        diagnoser: Arc<Diagnoser<Arc<dyn Classifier>>>,
        examination: emr_diagnosis::Examination,
    ) -> Result<emr_domain::ids::AttachmentId, Stop> {
        let grid = self.settings.explanation_grid;
        let png =
            blocking("model-failed", move || diagnoser.occlusion(&examination, grid, 8).and_then(|map| map.render(&examination))).await?;
        let attachment_id = request.explanation_id();
        let upload = Upload {
            record_id: request.record_id,
            attachment_id,
            mime_type: MimeType::parse("image/png").map_err(|e| Stop::Failed("explanation", e.to_string()))?,
            filename: ShortText::parse("filename", format!("explanation-{}.png", request.suggestion_id()))
                .map_err(|e| Stop::Failed("explanation", e.to_string()))?,
        };
        let context = self.context(request, "explanation");
        self.attachments.upload(&context, upload, &mut png.as_slice()).await?;
        Ok(attachment_id)
    }

    /// The context of one of the job's writes: in the requester's name, with an
    /// id that a repeat of the job repeats.
    fn context(&self, request: &DiagnosisRequest, what: &str) -> CommandContext {
        CommandContext::with_id(CommandId::from(request.derived(what)), request.requested_by)
            .caused_by(request.correlation_id, request.job_id.as_uuid())
    }
}

/// Runs CPU-bound work off the async threads; a panic in it fails the job with `on_panic`.
async fn blocking<T: Send + 'static>(
    on_panic: &'static str,
    work: impl FnOnce() -> Result<T, DiagnosisError> + Send + 'static,
) -> Result<T, Stop> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => Ok(result?),
        Err(panicked) => Err(Stop::Failed(on_panic, panicked.to_string())),
    }
}
