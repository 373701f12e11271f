//! The detection worker: reads the log in order, feeds the detector, raises
//! what it detects, and responds to every security event raised.
//!
//! Crash safety rests on determinism, not on transactions: the detector's state
//! is saved with the log position it reflects every `save_every`; after a crash
//! the worker resumes from the saved state and re-reads the events after it.
//! The detector then finds the same detections with the same ids, raised with
//! the detection id as the command id, so a re-raise is a replay that appends
//! nothing. Responses are recorded on the security event, and a response
//! recorded there is never carried out again (an alert whose delivery crashed
//! before it was recorded may be sent twice: at least once, never lost).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use emr_domain::DomainServices;
use emr_domain::actor::Actor;
use emr_domain::detection::{DetectionSettings, Detector};
use emr_domain::ids::{CommandId, UserId};
use emr_domain::metadata::CommandContext;
use emr_domain::security::{Raise, Response, SecurityCommand, SecurityError, SecurityEvent, SecurityIncident, Severity};
use emr_eventstore::{
    CodecError, CommitFeed, EmrEventStore, EventLog, EventStorePorts, ExecuteError, LogError, LogReader, PollingFeed, StoreConfig,
    StoreError,
};
use emr_projections::{Decoder, Fact, Payload, ProjectionError, ReadModelDb, Value};

use crate::observe::observation;
use crate::responses::{Alert, Responders, ResponsePolicy};

/// Why a detection step failed (it is retried from the same position).
#[derive(Debug, thiserror::Error)]
pub enum DetectionError {
    /// The log could not be read.
    #[error(transparent)]
    Log(#[from] LogError),
    /// An event could not be decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The event store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A security-event rule refused (never expected: ids are derived).
    #[error(transparent)]
    Security(#[from] SecurityError),
    /// The state table could not be read or written.
    #[error(transparent)]
    ReadModel(#[from] ProjectionError),
    /// The saved state does not parse.
    #[error("saved detector state: {0}")]
    State(#[from] serde_json::Error),
}

/// How the worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The rules.
    pub rules: DetectionSettings,
    /// Responses per severity.
    pub responses: ResponsePolicy,
    /// Commits read per step.
    pub batch_size: usize,
    /// How often the detector's state is saved.
    pub save_every: Duration,
    /// Security events older than this (by wall clock) when the worker first
    /// sees them get no automatic response: replaying last year's log must not
    /// lock anyone today.
    pub respond_within: chrono::Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            rules: DetectionSettings::default(),
            responses: ResponsePolicy::default(),
            batch_size: 1000,
            save_every: Duration::from_secs(30),
            respond_within: chrono::Duration::hours(24),
        }
    }
}

struct Progress {
    detector: Detector,
    position: u64,
    saved_position: u64,
    saved_at: Instant,
    /// The log's durable feed for the detector (JetStream), or a polling one;
    /// opened on the first step.
    feed: Option<Box<dyn CommitFeed>>,
}

/// The durable consumer's name.
const READER: &str = "detection";

/// Threat detection over the event log.
pub struct DetectionWorker {
    log: Arc<dyn EventLog>,
    db: ReadModelDb,
    decoder: Decoder,
    incidents: EmrEventStore<SecurityIncident>,
    responders: Responders,
    config: WorkerConfig,
    services: DomainServices,
    progress: tokio::sync::Mutex<Progress>,
}

#[derive(sqlx::FromRow)]
struct SavedState {
    position: u64,
    state: String,
}

impl DetectionWorker {
    /// A worker resuming from the state saved in `db` (or from the log's start).
    pub async fn open(
        ports: &EventStorePorts,
        db: ReadModelDb,
        responders: Responders,
        config: WorkerConfig,
        services: DomainServices,
    ) -> Result<Self, DetectionError> {
        let phi = ports.phi_codec();
        let incidents = EmrEventStore::new(ports.log.clone(), phi, None, StoreConfig { cache_capacity: 0, ..StoreConfig::default() });
        let saved = db.fetch_all::<SavedState>("SELECT position, state FROM detection_state WHERE id = 1", vec![]).await?.pop();
        let (detector, position) = match saved {
            Some(saved) => (Detector::restore(config.rules, serde_json::from_str(&saved.state)?), saved.position),
            None => (Detector::new(config.rules), 0),
        };
        let progress = Progress { detector, position, saved_position: position, saved_at: Instant::now(), feed: None };
        Ok(Self {
            log: ports.log.clone(),
            db,
            decoder: Decoder::default(),
            incidents,
            responders,
            config,
            services,
            progress: tokio::sync::Mutex::new(progress),
        })
    }

    /// The last log position the detector has seen.
    pub async fn position(&self) -> u64 {
        self.progress.lock().await.position
    }

    /// A user's risk score now, as the detector sees it.
    pub async fn risk(&self, user: UserId) -> f64 {
        self.progress.lock().await.detector.risk(user, Utc::now())
    }

    /// Detects over the next batch of commits; returns how many it read (0: caught up).
    pub async fn step(&self) -> Result<usize, DetectionError> {
        let mut guard = self.progress.lock().await;
        let progress = &mut *guard;
        let feed = match &mut progress.feed {
            Some(feed) => feed,
            empty => empty.insert(PollingFeed::or_durable(self.log.clone(), READER).await?),
        };
        let commits = feed.next(progress.position, self.config.batch_size).await?;
        let Some(last) = commits.last().map(|commit| commit.position) else {
            crate::metrics::lag(0.0);
            return Ok(0);
        };
        let consumed = commits.len();
        let mut observed = 0u64;
        let mut newest = None;
        for event in LogReader::flatten(commits)? {
            newest = Some(event.metadata.recorded_at);
            let Some(fact) = self.decoder.decode(&event)? else { continue };
            if let Some(observation) = observation(&fact) {
                observed += 1;
                for detection in progress.detector.observe(&observation) {
                    self.raise(&detection).await?;
                }
            }
            self.respond_if_raised(&fact).await?;
        }
        progress.position = last;
        crate::metrics::observed(observed, last);
        if let Some(newest) = newest {
            crate::metrics::lag((Utc::now() - newest).num_milliseconds() as f64 / 1000.0);
        }
        if progress.saved_at.elapsed() >= self.config.save_every {
            self.save_locked(progress).await?;
        }
        Ok(consumed)
    }

    /// Detects until the log's end (or `target`), then saves the state.
    pub async fn catch_up(&self, target: u64) -> Result<u64, DetectionError> {
        while self.position().await < target && self.step().await? > 0 {}
        self.save().await?;
        Ok(self.position().await)
    }

    /// Saves the detector's state with the position it reflects.
    pub async fn save(&self) -> Result<(), DetectionError> {
        let mut progress = self.progress.lock().await;
        self.save_locked(&mut progress).await
    }

    async fn save_locked(&self, progress: &mut Progress) -> Result<(), DetectionError> {
        if progress.saved_position == progress.position {
            progress.saved_at = Instant::now();
            return Ok(());
        }
        let state = serde_json::to_string(progress.detector.state())?;
        let mut tx = self.db.begin().await?;
        tx.execute("DELETE FROM detection_state WHERE id = 1", vec![]).await?;
        tx.execute(
            "INSERT INTO detection_state (id, position, state, saved_at) VALUES (1, ?, ?, ?)",
            vec![Value::from(progress.position), Value::from(state), Value::from(Utc::now())],
        )
        .await?;
        tx.commit().await?;
        progress.saved_position = progress.position;
        progress.saved_at = Instant::now();
        // Saved: the feed may forget what came before. A failed acknowledgement
        // only means the feed repositions itself on the next read.
        if let Some(feed) = &mut progress.feed
            && let Err(error) = feed.applied(progress.position).await
        {
            tracing::warn!(%error, "detection feed not acknowledged; it repositions at the saved state");
        }
        Ok(())
    }

    async fn raise(&self, detection: &Raise) -> Result<(), DetectionError> {
        let trigger = detection.evidence.last().map(|evidence| evidence.event_id.as_uuid()).unwrap_or_else(|| detection.id.as_uuid());
        // The detection id is the command id: raising it again is a replay.
        let context =
            CommandContext::with_id(CommandId::from(detection.id.as_uuid()), Actor::system()).caused_by(detection.id.as_uuid(), trigger);
        let executed = self
            .incidents
            .execute(&detection.id.to_string(), SecurityCommand::Raise(detection.clone()), &self.services, &context)
            .await
            .map_err(ExecuteError::into_error::<DetectionError>)?;
        if !executed.replayed {
            emr_auth::metrics::security_event_raised(detection.kind, detection.severity);
            tracing::info!(id = %detection.id, kind = detection.kind.name(), severity = detection.severity.name(), "security event raised");
        }
        Ok(())
    }

    async fn respond_if_raised(&self, fact: &Fact) -> Result<(), DetectionError> {
        let Payload::Security(SecurityEvent::SecurityEventRaised { id, kind, severity, user_id, risk_score, summary, .. }) = &fact.payload
        else {
            return Ok(());
        };
        let wanted = self.config.responses.for_severity(*severity);
        if wanted.is_empty() || Utc::now() - fact.metadata.recorded_at > self.config.respond_within {
            return Ok(());
        }
        let incident = self.incidents.load(&id.to_string()).await?.state().clone();
        let alert = Alert {
            security_event_id: *id,
            kind: kind.name(),
            severity: severity.name(),
            user_id: *user_id,
            risk_score: *risk_score,
            summary: summary.clone(),
            raised_at: fact.metadata.recorded_at.to_rfc3339(),
        };
        for response in wanted {
            if incident.responded(*response) {
                continue;
            }
            let detail = self.carry_out(*response, &alert, *severity).await;
            let command = SecurityCommand::RecordResponse { response: *response, detail };
            let context = CommandContext::new(Actor::system()).caused_by(id.as_uuid(), fact.metadata.event_id.as_uuid());
            self.incidents
                .execute(&id.to_string(), command, &self.services, &context)
                .await
                .map_err(ExecuteError::into_error::<DetectionError>)?;
        }
        Ok(())
    }

    /// Carries out one response; answers what it did (failures included, so an
    /// officer sees them on the security event).
    async fn carry_out(&self, response: Response, alert: &Alert, severity: Severity) -> String {
        match (response, alert.user_id) {
            (Response::Alert, _) => {
                let mut delivered = Vec::new();
                for sink in &self.responders.sinks {
                    match sink.deliver(alert).await {
                        Ok(place) => delivered.push(place),
                        Err(error) => {
                            tracing::warn!(%error, "alert not delivered");
                            delivered.push(format!("failed: {error}"));
                        }
                    }
                }
                delivered.join("; ")
            }
            (Response::Reauthenticate, Some(user)) => match self.responders.guard.reauthenticate(user).await {
                Ok(()) => format!("sessions of {user} revoked"),
                Err(error) => format!("failed: {error}"),
            },
            (Response::LockAccount, Some(user)) if severity == Severity::Critical => {
                match self.responders.guard.suspend(user, alert.security_event_id).await {
                    Ok(()) => format!("account {user} suspended until an administrator unlocks it"),
                    Err(error) => format!("failed: {error}"),
                }
            }
            (Response::LockAccount, Some(_)) => "not locked: locking is for critical events only".to_owned(),
            (_, None) => "no account concerned".to_owned(),
        }
    }

    /// Follows the log until `shutdown` completes, then saves the state.
    /// Failures are logged and retried with backoff from the last position.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_millis(100);
        loop {
            let pause = match self.step().await {
                Ok(0) => Duration::from_millis(200),
                Ok(_) => {
                    backoff = Duration::from_millis(100);
                    Duration::ZERO
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in_ms = backoff.as_millis() as u64, "detection step failed");
                    let pause = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    pause
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        if let Err(error) = self.save().await {
            tracing::warn!(%error, "detector state not saved at shutdown; it resumes from the last save");
        }
    }
}
