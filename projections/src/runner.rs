//! Runs a projection: reads the log after its checkpoint and folds batches into
//! its tables, each batch and its checkpoint in one transaction.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use emr_eventstore::{CommitFeed, EventLog, LogReader, PollingFeed};

use crate::db::{ReadModelDb, Tx, Value};
use crate::decode::Decoder;
use crate::error::ProjectionError;
use crate::projection::{Checkpoint, Projection};

/// How long a stopping projector keeps folding what the log already holds.
const FINAL_FOLD_BUDGET: Duration = Duration::from_secs(5);

/// A projection bound to a log and a database.
pub struct Projector<P> {
    projection: Arc<P>,
    db: ReadModelDb,
    decoder: Arc<Decoder>,
    batch_size: usize,
    feed: Arc<FeedSlot>,
}

/// Where a projector's feed comes from, and the feed once the first batch opened it.
struct FeedSlot {
    log: Arc<dyn EventLog>,
    durable: bool,
    /// Batches take turns with the feed.
    opened: tokio::sync::Mutex<Option<Box<dyn CommitFeed>>>,
}

impl FeedSlot {
    async fn open(&self, db: &ReadModelDb, projection: &str) -> Result<Box<dyn CommitFeed>, ProjectionError> {
        if !self.durable {
            return Ok(Box::new(PollingFeed::new(self.log.clone())));
        }
        let reader = format!("projection-{projection}-{}", db.name().await?);
        Ok(PollingFeed::or_durable(self.log.clone(), &reader).await?)
    }
}

fn checkpoint_sql(table: &str) -> String {
    format!("SELECT position, events FROM {table} WHERE id = 1")
}

async fn read_checkpoint(db: &ReadModelDb, table: &'static str) -> Result<Checkpoint, ProjectionError> {
    let (position, events) = db.fetch_one::<(u64, u64)>(&checkpoint_sql(table), vec![]).await?;
    Ok(Checkpoint { position, events })
}

/// Reads the checkpoint and holds it until `tx` ends: no other instance can
/// advance it meanwhile.
async fn lock_checkpoint(tx: &mut Tx, table: &'static str) -> Result<Checkpoint, ProjectionError> {
    let sql = format!("{}{}", checkpoint_sql(table), tx.dialect().for_update());
    let (position, events) = tx.fetch_one::<(u64, u64)>(&sql, vec![]).await?;
    Ok(Checkpoint { position, events })
}

impl<P: Projection> Projector<P> {
    /// Commits read (and folded) per transaction by default.
    pub const DEFAULT_BATCH: usize = 1000;

    /// A projector of `projection` from `log` into `db`.
    pub fn new(projection: P, db: ReadModelDb, log: Arc<dyn EventLog>) -> Self {
        Self {
            projection: Arc::new(projection),
            db,
            decoder: Arc::new(Decoder::default()),
            batch_size: Self::DEFAULT_BATCH,
            feed: Arc::new(FeedSlot { log, durable: false, opened: tokio::sync::Mutex::default() }),
        }
    }

    /// Follows the log through a durable consumer where the log has them (named
    /// for the projection and the database), instead of reading ranges: how the
    /// long-running projectors of `serve` and `projections run` read.
    pub fn with_durable_feed(mut self) -> Self {
        self.feed = Arc::new(FeedSlot { log: self.feed.log.clone(), durable: true, opened: tokio::sync::Mutex::default() });
        self
    }

    /// Sets the batch size (commits per transaction).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    fn checkpoint_table(&self) -> &'static str {
        self.projection.tables()[0]
    }

    /// Where the projection stands.
    pub async fn checkpoint(&self) -> Result<Checkpoint, ProjectionError> {
        read_checkpoint(&self.db, self.checkpoint_table()).await
    }

    /// Folds the next batch; returns how many commits it consumed (0: caught up).
    ///
    /// The batch's transaction runs in a task of its own: cancelling the caller
    /// (shutdown, an aborted task) never interrupts a transaction halfway on a
    /// pooled connection; it only stops the projector between batches.
    pub async fn step(&self) -> Result<usize, ProjectionError> {
        let batch = apply_batch(self.db.clone(), self.projection.clone(), self.decoder.clone(), self.feed.clone(), self.batch_size);
        tokio::spawn(batch).await.map_err(|e| ProjectionError::BatchAborted(e.to_string()))?
    }

    /// Folds until the checkpoint reaches `target` (or the log's end, if sooner).
    pub async fn catch_up(&self, target: u64) -> Result<Checkpoint, ProjectionError> {
        loop {
            let checkpoint = self.checkpoint().await?;
            if checkpoint.position >= target || self.step().await? == 0 {
                return self.checkpoint().await;
            }
        }
    }

    /// Folds the log as it grows until `shutdown` completes, then folds what the
    /// log holds by then (for at most [`FINAL_FOLD_BUDGET`]), so a drained process
    /// leaves its read models at the head. Failures (database or log down) are
    /// logged and retried with backoff from the checkpoint.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        self.follow(shutdown).await;
        let final_fold = async { while matches!(self.step().await, Ok(consumed) if consumed > 0) {} };
        if tokio::time::timeout(FINAL_FOLD_BUDGET, final_fold).await.is_err() {
            tracing::warn!(projection = self.projection.name(), "stopped before reaching the log head; it resumes at its checkpoint");
        }
    }

    async fn follow(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_millis(100);
        loop {
            let pause = match self.step().await {
                Ok(0) => Duration::from_millis(100),
                Ok(_) => {
                    backoff = Duration::from_millis(100);
                    Duration::ZERO
                }
                Err(error) => {
                    tracing::warn!(projection = self.projection.name(), %error, retry_in_ms = backoff.as_millis() as u64, "projection batch failed");
                    let pause = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    pause
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

async fn apply_batch<P: Projection>(
    db: ReadModelDb,
    projection: Arc<P>,
    decoder: Arc<Decoder>,
    slot: Arc<FeedSlot>,
    batch_size: usize,
) -> Result<usize, ProjectionError> {
    let checkpoint_table = projection.tables()[0];
    let mut opened = slot.opened.lock().await;
    let feed = match &mut *opened {
        Some(feed) => feed,
        empty => empty.insert(slot.open(&db, projection.name()).await?),
    };
    let mut tx = db.begin().await?;
    // Lock the checkpoint row first, then read the log after it: the batch always
    // starts right after the checkpoint it will advance, even if another instance
    // moved it, or a rebuild swapped the tables in, since the caller last looked;
    // and instances sharing a durable consumer take turns with it. The feed
    // bounds how long it waits for the log, so the lock is never held for long.
    let current = lock_checkpoint(&mut tx, checkpoint_table).await?;
    let commits = feed.next(current.position, batch_size).await?;
    let Some(last) = commits.last().map(|commit| commit.position) else { return Ok(0) };
    let consumed = commits.len();
    let first = commits.first().map_or(last, |commit| commit.position);
    let events = LogReader::flatten(commits)?;
    // One span per correlation folded, in that correlation's trace: the request
    // that wrote a commit shows when each read model took it in.
    let correlations: std::collections::BTreeSet<uuid::Uuid> = events.iter().map(|event| event.metadata.context.correlation_id).collect();
    let fold_spans: Vec<tracing::Span> = correlations
        .into_iter()
        .map(|correlation_id| {
            let span = tracing::info_span!(parent: None, "projection.fold", projection = projection.name(), batch_first = first, batch_last = last);
            emr_eventstore::trace::join_correlation(&span, correlation_id);
            span
        })
        .collect();
    let mut facts = Vec::with_capacity(events.len());
    for event in &events {
        if let Some(fact) = decoder.decode(event)? {
            facts.push(fact);
        }
    }
    projection.apply(&mut tx, &facts).await?;
    let sql = format!("UPDATE {checkpoint_table} SET position = ?, events = events + ?, updated_at = ? WHERE id = 1");
    tx.execute(&sql, vec![Value::from(last), Value::from(facts.len() as u64), Value::from(chrono::Utc::now())]).await?;
    tx.commit().await?;
    drop(fold_spans);
    crate::metrics::folded(projection.name(), consumed);
    // Committed: the checkpoint is the truth now, so a failed acknowledgement
    // only means the feed repositions itself next time.
    if let Err(error) = feed.applied(last).await {
        tracing::warn!(projection = projection.name(), %error, "feed not acknowledged; it will reposition at the checkpoint");
    }
    Ok(consumed)
}

/// How far one projection is behind the log.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Lag {
    /// The projection.
    pub projection: String,
    /// Its checkpoint.
    pub position: u64,
    /// The log's last position.
    pub head: u64,
    /// Commits not yet applied.
    pub behind_commits: u64,
    /// Age of the oldest commit not yet applied (0 when caught up).
    pub behind_seconds: f64,
}

/// Runs every projection over `db`, each on a durable feed where the log has one,
/// until `shutdown` turns true: what `emr serve` and `emr projections run` do.
pub async fn run_every_projection(
    db: &ReadModelDb,
    log: Arc<dyn EventLog>,
    batch_size: usize,
    search_index: crate::SearchIndex,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use crate::{
        AccessLogProjection, AccessProjection, AccountDirectory, DashboardProjection, DiagnosisProjection, FederatedProjection,
        PatientDirectory, RecordIndex, SecurityProjection,
    };
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let patients = Projector::new(PatientDirectory, db.clone(), log.clone()).with_batch_size(batch_size).with_durable_feed();
    let records = Projector::new(RecordIndex, db.clone(), log.clone()).with_batch_size(batch_size).with_durable_feed();
    let access = Projector::new(AccessProjection, db.clone(), log.clone()).with_batch_size(batch_size).with_durable_feed();
    let dashboard = Projector::new(DashboardProjection, db.clone(), log.clone()).with_batch_size(batch_size).with_durable_feed();
    let access_log = Projector::new(AccessLogProjection, db.clone(), log.clone()).with_batch_size(batch_size).with_durable_feed();
    let security = Projector::new(SecurityProjection, db.clone(), log.clone()).with_batch_size(batch_size).with_durable_feed();
    let federated = Projector::new(FederatedProjection, db.clone(), log.clone()).with_batch_size(batch_size).with_durable_feed();
    let diagnosis = Projector::new(DiagnosisProjection, db.clone(), log.clone()).with_batch_size(batch_size).with_durable_feed();
    let accounts = Projector::new(AccountDirectory, db.clone(), log.clone()).with_batch_size(batch_size).with_durable_feed();
    let search = Projector::new(search_index, db.clone(), log).with_batch_size(batch_size).with_durable_feed();
    tokio::join!(
        patients.run(stopped(shutdown.clone())),
        records.run(stopped(shutdown.clone())),
        access.run(stopped(shutdown.clone())),
        dashboard.run(stopped(shutdown.clone())),
        access_log.run(stopped(shutdown.clone())),
        security.run(stopped(shutdown.clone())),
        federated.run(stopped(shutdown.clone())),
        diagnosis.run(stopped(shutdown.clone())),
        accounts.run(stopped(shutdown.clone())),
        search.run(stopped(shutdown)),
    );
}

/// The lag of a projection (named by its checkpoint table) against the log.
pub async fn lag(
    db: &ReadModelDb,
    log: Arc<dyn EventLog>,
    projection: &str,
    checkpoint_table: &'static str,
) -> Result<Lag, ProjectionError> {
    let position = read_checkpoint(db, checkpoint_table).await?.position;
    let reader = LogReader::new(log);
    let head = reader.head().await?;
    let oldest = reader.read(position + 1, 1).await?.first().map(|e| e.metadata.recorded_at);
    let behind_seconds = oldest.map_or(0.0, |at| (chrono::Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0);
    Ok(Lag { projection: projection.to_owned(), position, head, behind_commits: head.saturating_sub(position), behind_seconds })
}

/// Waits (bounded) until the projection's checkpoint reaches `position`: how a
/// caller reads its own writes.
pub async fn wait_for(db: &ReadModelDb, checkpoint_table: &'static str, position: u64, timeout: Duration) -> Result<u64, ProjectionError> {
    let started = Instant::now();
    loop {
        let reached = read_checkpoint(db, checkpoint_table).await?.position;
        if reached >= position {
            return Ok(reached);
        }
        if started.elapsed() >= timeout {
            return Err(ProjectionError::WaitTimedOut {
                projection: checkpoint_table.trim_end_matches("_checkpoint").to_owned(),
                position,
                reached,
                waited_ms: started.elapsed().as_millis(),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The lag of every projection.
pub async fn lags(db: &ReadModelDb, log: Arc<dyn EventLog>) -> Result<Vec<Lag>, ProjectionError> {
    let mut lags = Vec::new();
    for (name, table) in crate::projections::checkpoints() {
        lags.push(lag(db, log.clone(), name, table).await?);
    }
    Ok(lags)
}
