//! [`DiagnosisJobs`]: asking for a diagnosis, following it, cancelling it.

use std::sync::Arc;

use chrono::Utc;
use emr_commands::{Clinic, ClinicError};
use emr_domain::actor::Actor;
use emr_domain::ids::{AttachmentId, DiagnosisJobId, ModelId, RecordId};
use emr_domain::metadata::CommandContext;
use emr_eventstore::{LogError, StatusBoard, WorkQueue};

use crate::job::{DiagnosisRequest, JobState, JobStatus};

/// Why a request, a status read or a cancellation failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Authorization, the record or the model registry refused it.
    #[error(transparent)]
    Clinic(#[from] ClinicError),
    /// The queue or the status board failed.
    #[error("the job queue is unavailable: {0}")]
    Queue(#[from] LogError),
    /// The record has no such attachment.
    #[error("the record has no attachment {0}")]
    NoSuchAttachment(AttachmentId),
    /// No such job for this caller (another user's job is not shown either).
    #[error("no such diagnosis job")]
    NotFound,
    /// The idempotency key names another user's job.
    #[error("the idempotency key is already used by another request")]
    KeyReused,
    /// A stored status could not be read.
    #[error("a stored job status is corrupt: {0}")]
    Corrupt(String),
}

/// What a clinician asks for; the job id is the command id, so a retried
/// request (same `Idempotency-Key`) finds the job its first attempt queued.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    /// The record.
    pub record_id: RecordId,
    /// The attachment to read.
    pub attachment_id: AttachmentId,
    /// The model.
    pub model_id: ModelId,
    /// The DICOM frame.
    pub frame: u32,
    /// Store an explanation image too.
    pub explain: bool,
}

/// Diagnosis jobs: requests go on a work queue, statuses on a board.
#[derive(Clone)]
pub struct DiagnosisJobs {
    pub(crate) clinic: Clinic,
    queue: Arc<dyn WorkQueue>,
    board: Arc<dyn StatusBoard>,
}

impl DiagnosisJobs {
    /// Jobs queued on `queue`, followed on `board`.
    pub fn new(clinic: Clinic, queue: Arc<dyn WorkQueue>, board: Arc<dyn StatusBoard>) -> Self {
        Self { clinic, queue, board }
    }

    /// The queue, for workers.
    pub(crate) fn queue(&self) -> &Arc<dyn WorkQueue> {
        &self.queue
    }

    /// Queues a diagnosis of an attachment. Refused at once, before anything is
    /// queued, when the caller may not amend the record, the attachment is not
    /// the record's, or the model is not active.
    pub async fn request(&self, context: &CommandContext, ask: Ask) -> Result<JobStatus, JobError> {
        let actor = &context.actor;
        let (_, attachment) = self.clinic.attachment_target(actor, ask.record_id, ask.attachment_id).await?;
        if attachment.is_none() {
            return Err(JobError::NoSuchAttachment(ask.attachment_id));
        }
        self.clinic.diagnostic_model(ask.model_id).await?.serving_card().map_err(ClinicError::from)?;
        let request = DiagnosisRequest {
            job_id: DiagnosisJobId::from(context.command_id.as_uuid()),
            record_id: ask.record_id,
            attachment_id: ask.attachment_id,
            model_id: ask.model_id,
            frame: ask.frame,
            explain: ask.explain,
            requested_by: *actor,
            correlation_id: context.correlation_id,
        };
        let queued = JobStatus::queued(&request, Utc::now());
        let status = match self.write(&queued, 0).await {
            Ok(_) => queued,
            Err(LogError::Conflict { .. }) => {
                let (earlier, _) = self.read(request.job_id).await?.ok_or(JobError::NotFound)?;
                if earlier.requested_by != actor.user_id || (earlier.record_id, earlier.attachment_id) != (ask.record_id, ask.attachment_id)
                {
                    return Err(JobError::KeyReused);
                }
                if earlier.state != JobState::Queued {
                    return Ok(earlier);
                }
                // Queued but perhaps never submitted (a crash in between):
                // submitting again is harmless, workers skip finished jobs.
                earlier
            }
            Err(error) => return Err(error.into()),
        };
        let payload = serde_json::to_vec(&request).map_err(|e| JobError::Corrupt(e.to_string()))?;
        self.queue.submit(&request.job_id.to_string(), payload).await?;
        crate::metrics::requested();
        Ok(status)
    }

    /// A job's status, for the user who asked for it.
    pub async fn status(&self, actor: &Actor, job_id: DiagnosisJobId) -> Result<JobStatus, JobError> {
        match self.read(job_id).await? {
            Some((status, _)) if status.requested_by == actor.user_id => Ok(status),
            _ => Err(JobError::NotFound),
        }
    }

    /// Cancels a job of the caller's: a queued one at once, a running one at its
    /// next step. A finished job is left as it is (and returned).
    pub async fn cancel(&self, actor: &Actor, job_id: DiagnosisJobId) -> Result<JobStatus, JobError> {
        self.status(actor, job_id).await?;
        self.update(job_id, |status| {
            if status.state.is_final() {
                return false;
            }
            status.cancel_requested = true;
            if status.state == JobState::Queued {
                status.state = JobState::Cancelled;
            }
            true
        })
        .await
    }

    /// The status and its revision.
    pub(crate) async fn read(&self, job_id: DiagnosisJobId) -> Result<Option<(JobStatus, u64)>, JobError> {
        let Some((bytes, revision)) = self.board.get(&job_id.to_string()).await? else { return Ok(None) };
        let status = serde_json::from_slice(&bytes).map_err(|e| JobError::Corrupt(e.to_string()))?;
        Ok(Some((status, revision)))
    }

    async fn write(&self, status: &JobStatus, expected: u64) -> Result<u64, LogError> {
        let bytes = serde_json::to_vec(status).map_err(LogError::unavailable)?;
        self.board.put(&status.job_id.to_string(), bytes, expected).await
    }

    /// Applies `change` to the job's status and stores it, again on a fresh
    /// read whenever another writer came first; `change` returns false to
    /// leave the status as it is.
    pub(crate) async fn update(&self, job_id: DiagnosisJobId, change: impl Fn(&mut JobStatus) -> bool) -> Result<JobStatus, JobError> {
        loop {
            let (mut status, revision) = self.read(job_id).await?.ok_or(JobError::NotFound)?;
            if !change(&mut status) {
                return Ok(status);
            }
            status.updated_at = Utc::now();
            match self.write(&status, revision).await {
                Ok(_) => return Ok(status),
                Err(LogError::Conflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
    }
}
