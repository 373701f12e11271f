//! Bulk Data Access 2.0 `$export` as a background job: the patients the requester
//! may read (every active patient, or a hospital's, for a system account — a
//! backend service —, the patients who granted a practitioner access, a patient themself), a page of patients at a time, each
//! read through the same rule as a single read — authorized and recorded in the
//! patient's access log — and written as NDJSON files, one per resource type.
//!
//! Memory is bounded by one page of patients. A job survives a restart: after
//! every page the files are flushed to disk and then the progress (the last
//! patient done, each file's length and count) is replaced atomically; a job
//! resumed after a crash cuts each file back to the recorded length (dropping a
//! page written but not recorded) and goes on after the last recorded patient, so
//! every resource is in the output exactly once.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use emr_domain::access::Basis;
use emr_domain::actor::{Actor, Role};
use emr_domain::ids::{PatientId, RecordId};
use emr_projections::queries::{RecordFilter, RecordSort};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppState;

/// The resource types an export can hold.
pub const EXPORTABLE: &[&str] = &["Patient", "Encounter", "Condition", "MedicationStatement"];

/// Patients read per page (and per progress record), unless configured.
const PAGE: u32 = 200;

/// A patient's records read from the record index at a time.
const RECORDS_PAGE: u32 = 500;

/// Why an export request or job failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// No such job for this requester.
    #[error("no such export")]
    NotFound,
    /// The job's files or progress could not be read or written.
    #[error("export storage: {0}")]
    Io(#[from] std::io::Error),
    /// The job's progress file is not valid.
    #[error("export progress is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// A backing service failed in a way that retrying may mend.
    #[error("a backing service is unavailable: {0}")]
    Transient(String),
}

/// Which patients a job covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// `GET /$export`: every active patient (system accounts: backend services).
    System,
    /// `GET /Patient/$export`: the patients the requester may read (every active
    /// patient for a system account).
    Patient,
    /// `GET /Group/<hospital>/$export`: the active patients a hospital registered
    /// (system accounts).
    Group {
        /// The hospital's code.
        hospital: String,
    },
}

/// What was asked, by whom.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// The job id (the status URL names it).
    pub id: uuid::Uuid,
    /// Who asked: only they poll, download and cancel.
    pub owner: Actor,
    /// Which patients.
    pub level: Level,
    /// Resource types, from [`EXPORTABLE`].
    pub types: Vec<String>,
    /// Only resources changed at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// The kick-off URL, for the manifest.
    pub request: String,
    /// When the export started: data changed later may be missing.
    pub transaction_time: DateTime<Utc>,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Being written.
    #[default]
    Running,
    /// Every file is complete.
    Complete,
    /// Stopped by an error (in `error`).
    Failed,
}

/// One output file's recorded length and resource count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileProgress {
    /// Bytes recorded as complete.
    pub bytes: u64,
    /// Resources in those bytes.
    pub count: u64,
}

/// A job's progress, replaced atomically after every page.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    /// Where the job stands.
    pub status: Status,
    /// The last patient exported (patients go in id order).
    pub after_patient: Option<String>,
    /// Patients exported.
    pub patients: u64,
    /// Per file name (`Patient.ndjson`, `OperationOutcome.ndjson`): what is complete.
    pub files: BTreeMap<String, FileProgress>,
    /// Why the job failed.
    pub error: Option<String>,
}

/// The jobs of this node, in a directory of their own.
#[derive(Clone)]
pub struct BulkExports {
    dir: PathBuf,
    page: u32,
    cancels: Arc<Mutex<HashMap<uuid::Uuid, Arc<AtomicBool>>>>,
}

fn write_atomically(path: &Path, value: &impl Serialize) -> Result<(), ExportError> {
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(&serde_json::to_vec_pretty(value)?)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ExportError> {
    Ok(serde_json::from_slice(&std::fs::read(path)?)?)
}

impl BulkExports {
    /// The jobs kept under `dir` (created if missing).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, ExportError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir, page: PAGE, cancels: Arc::default() })
    }

    /// The same jobs, reading `patients` patients per page (small pages record
    /// progress more often).
    #[must_use]
    pub fn with_page_size(mut self, patients: u32) -> Self {
        self.page = patients.clamp(1, 1000);
        self
    }

    fn job_dir(&self, id: uuid::Uuid) -> PathBuf {
        self.dir.join(id.to_string())
    }

    /// Records a new job and starts it; the handle lets a caller wait for it.
    pub fn start(&self, state: AppState, job: Job) -> Result<tokio::task::JoinHandle<()>, ExportError> {
        let dir = self.job_dir(job.id);
        std::fs::create_dir_all(&dir)?;
        write_atomically(&dir.join("job.json"), &job)?;
        write_atomically(&dir.join("progress.json"), &Progress::default())?;
        Ok(self.spawn(state, dir, job))
    }

    fn spawn(&self, state: AppState, dir: PathBuf, job: Job) -> tokio::task::JoinHandle<()> {
        let cancelled = Arc::new(AtomicBool::new(false));
        if let Ok(mut cancels) = self.cancels.lock() {
            cancels.insert(job.id, cancelled.clone());
        }
        let (page, cancels) = (self.page, self.cancels.clone());
        tokio::spawn(async move {
            let id = job.id;
            if let Err(error) = run(&state, &dir, &job, page, &cancelled).await {
                tracing::warn!(%id, %error, "bulk export failed");
                let mut progress: Progress = read_json(&dir.join("progress.json")).unwrap_or_default();
                progress.status = Status::Failed;
                progress.error = Some(error.to_string());
                let _ = write_atomically(&dir.join("progress.json"), &progress);
            }
            if let Ok(mut cancels) = cancels.lock() {
                cancels.remove(&id);
            }
        })
    }

    /// Starts again every job a previous process left running (after a crash or a
    /// restart); the handles let a caller wait for them.
    pub fn resume(&self, state: &AppState) -> Result<Vec<tokio::task::JoinHandle<()>>, ExportError> {
        let mut resumed = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let dir = entry?.path();
            let (Ok(job), Ok(progress)) = (read_json::<Job>(&dir.join("job.json")), read_json::<Progress>(&dir.join("progress.json")))
            else {
                continue;
            };
            if progress.status == Status::Running {
                tracing::info!(id = %job.id, patients = progress.patients, "resuming bulk export");
                resumed.push(self.spawn(state.clone(), dir, job));
            }
        }
        Ok(resumed)
    }

    /// A job of `owner` and its progress.
    pub fn status(&self, id: uuid::Uuid, owner: &Actor) -> Result<(Job, Progress), ExportError> {
        let dir = self.job_dir(id);
        let job: Job = read_json(&dir.join("job.json")).map_err(|_| ExportError::NotFound)?;
        if job.owner != *owner {
            return Err(ExportError::NotFound);
        }
        Ok((job, read_json(&dir.join("progress.json"))?))
    }

    /// Stops a job of `owner` and deletes its files.
    pub fn cancel(&self, id: uuid::Uuid, owner: &Actor) -> Result<(), ExportError> {
        self.status(id, owner)?;
        if let Some(flag) = self.cancels.lock().ok().and_then(|cancels| cancels.get(&id).cloned()) {
            flag.store(true, Ordering::SeqCst);
        }
        std::fs::remove_dir_all(self.job_dir(id))?;
        Ok(())
    }

    /// The path of a complete output file of a job of `owner`, with its recorded
    /// length (the only bytes to serve).
    pub fn file(&self, id: uuid::Uuid, owner: &Actor, name: &str) -> Result<(PathBuf, u64), ExportError> {
        let (_, progress) = self.status(id, owner)?;
        let recorded = progress.files.get(name).filter(|_| progress.status == Status::Complete).ok_or(ExportError::NotFound)?;
        Ok((self.job_dir(id).join(name), recorded.bytes))
    }
}

/// The patients of the next page (id order, after `after`) the job's owner may
/// be exported, with when each last changed.
async fn candidates(state: &AppState, job: &Job, after: Option<&str>, page: u32) -> Result<Vec<(String, DateTime<Utc>)>, ExportError> {
    let owner = job.owner;
    let models = state.read_models.as_ref().ok_or_else(|| std::io::Error::other("this server has no read models"))?;
    let scope = match (&job.level, owner.role) {
        (Level::Group { hospital }, Role::System) => emr_projections::queries::ExportScope::Hospital(hospital.clone()),
        (_, Role::System) => emr_projections::queries::ExportScope::Everyone,
        (Level::Patient, Role::Physician | Role::Nurse) => emr_projections::queries::ExportScope::GrantedTo(owner.user_id.as_uuid()),
        (Level::Patient, Role::Patient) => emr_projections::queries::ExportScope::Only(owner.user_id.as_uuid()),
        _ => return Ok(Vec::new()),
    };
    emr_projections::queries::export_candidates(&models.db, scope, Utc::now(), after, page)
        .await
        .map_err(|e| ExportError::Transient(e.to_string()))
}

fn wants(job: &Job, resource_type: &str) -> bool {
    job.types.iter().any(|t| t == resource_type)
}

fn changed_since(job: &Job, at: DateTime<Utc>) -> bool {
    job.since.is_none_or(|since| at >= since)
}

/// Lines per output file.
type Lines = BTreeMap<String, Vec<String>>;

fn push(lines: &mut Lines, resource: &Value) {
    let name = format!("{}.ndjson", resource["resourceType"].as_str().unwrap_or("OperationOutcome"));
    lines.entry(name).or_default().push(resource.to_string());
}

/// One patient's resources, read as the job's owner (each read authorized and
/// recorded). A patient the owner may no longer read is an OperationOutcome line.
async fn export_patient(state: &AppState, job: &Job, patient: &str, changed: DateTime<Utc>, lines: &mut Lines) -> Result<(), ExportError> {
    let Ok(patient_id) = patient.parse::<PatientId>() else { return Ok(()) };
    match export_patient_resources(state, job, patient_id, changed, lines).await {
        Ok(()) => Ok(()),
        Err(error) => {
            let problem = error.problem();
            if problem.retryable {
                return Err(ExportError::Transient(problem.detail));
            }
            let detail = format!("Patient/{patient_id}: {}", problem.detail);
            push(
                lines,
                &emr_fhir::operation_outcome(emr_fhir::IssueType::of_status(problem.status), &problem.code, &problem.title, &detail),
            );
            Ok(())
        }
    }
}

async fn export_patient_resources(
    state: &AppState,
    job: &Job,
    patient_id: PatientId,
    changed: DateTime<Utc>,
    lines: &mut Lines,
) -> Result<(), crate::ApiError> {
    let owner = &job.owner;
    if wants(job, "Patient") && changed_since(job, changed) {
        let read = state.clinic.read_patient(owner, patient_id, None).await?;
        push(lines, &emr_fhir::patient(patient_id, read.loaded.state(), read.loaded.sequence(), read.basis == Basis::Redacted));
    }
    if !["Encounter", "Condition", "MedicationStatement"].iter().any(|t| wants(job, t)) {
        return Ok(());
    }
    let Some(models) = state.read_models.as_ref() else { return Ok(()) };
    let mut offset = 0;
    loop {
        let filter = RecordFilter {
            patient_id: Some(patient_id.as_uuid()),
            sort: Some(RecordSort::VisitDateAsc),
            limit: Some(RECORDS_PAGE),
            offset: Some(offset),
            ..RecordFilter::default()
        };
        let page = emr_projections::queries::records(&models.db, &filter).await?;
        for summary in page.iter().filter(|s| changed_since(job, s.updated_at)) {
            let Ok(record_id) = summary.record_id.parse::<RecordId>() else { continue };
            let read = state.clinic.read_record(owner, record_id, None, None).await?;
            let (record, version, redacted) = (read.loaded.state(), read.loaded.sequence(), read.basis == Basis::Redacted);
            if wants(job, "Encounter") {
                push(lines, &emr_fhir::encounter(record_id, record, version, redacted));
            }
            if let Some(condition) = wants(job, "Condition").then(|| emr_fhir::condition(record_id, record, version, redacted)).flatten() {
                push(lines, &condition);
            }
            if wants(job, "MedicationStatement") && !redacted {
                for statement in emr_fhir::medication_statements(record_id, record, version) {
                    push(lines, &statement);
                }
            }
        }
        if page.len() < RECORDS_PAGE as usize {
            return Ok(());
        }
        offset += RECORDS_PAGE;
    }
}

/// Cuts each file back to its recorded length: what a crash left beyond it was
/// never recorded, and is written again.
fn truncate_to_progress(dir: &Path, progress: &Progress) -> Result<(), ExportError> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).filter(|n| n.ends_with(".ndjson")) else { continue };
        let recorded = progress.files.get(name).map_or(0, |file| file.bytes);
        let file = std::fs::OpenOptions::new().write(true).open(&path)?;
        if file.metadata()?.len() != recorded {
            file.set_len(recorded)?;
            file.sync_all()?;
        }
    }
    Ok(())
}

/// A page of patients' lines, the page retried (with backoff) while a backing
/// service is down: a long export outlives a brief outage.
async fn export_page(state: &AppState, job: &Job, page: &[(String, DateTime<Utc>)]) -> Result<Lines, ExportError> {
    let mut attempt = 0;
    loop {
        let mut lines = Lines::new();
        let mut outcome = Ok(());
        for (patient, changed) in page {
            outcome = export_patient(state, job, patient, *changed, &mut lines).await;
            if outcome.is_err() {
                break;
            }
        }
        match outcome {
            Ok(()) => return Ok(lines),
            Err(ExportError::Transient(_)) if attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Appends a page's lines to their files and syncs them, then records the new
/// lengths, counts and last patient: files first, progress last.
fn record_page(dir: &Path, lines: Lines, mut progress: Progress, patients: u64, last: Option<String>) -> Result<Progress, ExportError> {
    for (name, written) in lines {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(&name))?;
        let mut bytes = written.join("\n");
        bytes.push('\n');
        file.write_all(bytes.as_bytes())?;
        file.sync_data()?;
        let recorded = progress.files.entry(name).or_default();
        recorded.bytes += bytes.len() as u64;
        recorded.count += written.len() as u64;
    }
    progress.patients += patients;
    progress.after_patient = last;
    write_atomically(&dir.join("progress.json"), &progress)?;
    Ok(progress)
}

async fn run(state: &AppState, dir: &Path, job: &Job, page_size: u32, cancelled: &AtomicBool) -> Result<(), ExportError> {
    let mut progress: Progress = read_json(&dir.join("progress.json"))?;
    truncate_to_progress(dir, &progress)?;
    while progress.status == Status::Running {
        if cancelled.load(Ordering::SeqCst) {
            return Ok(());
        }
        let page = candidates(state, job, progress.after_patient.as_deref(), page_size).await?;
        if page.is_empty() {
            progress.status = Status::Complete;
            write_atomically(&dir.join("progress.json"), &progress)?;
            return Ok(());
        }
        let lines = export_page(state, job, &page).await?;
        if cancelled.load(Ordering::SeqCst) {
            return Ok(());
        }
        let last = page.last().map(|(id, _)| id.clone());
        let (page_dir, patients) = (dir.to_owned(), page.len() as u64);
        // Appending and syncing files blocks: off the async workers that serve requests.
        progress = tokio::task::spawn_blocking(move || record_page(&page_dir, lines, progress, patients, last))
            .await
            .map_err(|e| ExportError::Io(std::io::Error::other(e.to_string())))??;
    }
    Ok(())
}

/// The manifest of a complete job (Bulk Data 2.0 §"Response - Complete Status").
pub fn manifest(base: &str, job: &Job, progress: &Progress) -> Value {
    let url = |name: &str| format!("{base}/$export-file/{}/{name}", job.id);
    let entries = |outcomes: bool| -> Vec<Value> {
        progress
            .files
            .iter()
            .filter(|(name, file)| file.count > 0 && (name.as_str() == "OperationOutcome.ndjson") == outcomes)
            .map(|(name, file)| serde_json::json!({"type": name.trim_end_matches(".ndjson"), "url": url(name), "count": file.count}))
            .collect()
    };
    serde_json::json!({
        "transactionTime": job.transaction_time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "request": job.request,
        "requiresAccessToken": true,
        "output": entries(false),
        "error": entries(true),
    })
}
