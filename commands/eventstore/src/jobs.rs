//! Background work: a [`WorkQueue`] that hands each job to one worker and gives
//! it to another when the first dies before saying it is done, and a
//! [`StatusBoard`] of job statuses written by compare-and-set, so that a
//! cancellation and a worker's progress never overwrite each other.
//!
//! JetStream implements both in production (a work-queue stream with a durable
//! pull consumer, a KV bucket: `emr-nats`); [`MemoryWorkQueue`] and
//! [`MemoryStatusBoard`] serve the embedded single-process deployment, where
//! jobs last as long as the process.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::LogError;

/// A queue of jobs, each delivered to one worker at a time.
pub trait WorkQueue: Send + Sync + 'static {
    /// Enqueues `payload` as job `job_id`. Submitting an id already submitted
    /// (a client's retry) enqueues nothing.
    fn submit<'a>(&'a self, job_id: &'a str, payload: Vec<u8>) -> BoxFuture<'a, Result<(), LogError>>;

    /// The next job, waiting up to `wait` for one.
    fn next(&self, wait: Duration) -> BoxFuture<'_, Result<Option<Delivery>, LogError>>;
}

/// How a delivery is settled with the queue that made it.
pub trait Settle: Send + Sync {
    /// The job is finished (whatever its outcome): never deliver it again.
    fn done(&self) -> BoxFuture<'_, Result<(), LogError>>;
    /// The worker is still on it: do not give it to another yet.
    fn in_progress(&self) -> BoxFuture<'_, Result<(), LogError>>;
    /// The worker could not finish it: deliver it again after `delay`.
    fn retry_after(&self, delay: Duration) -> BoxFuture<'_, Result<(), LogError>>;
}

/// A job handed to a worker.
pub struct Delivery {
    /// The id it was submitted under.
    pub job_id: String,
    /// What was submitted.
    pub payload: Vec<u8>,
    /// How many times it has been delivered, this time included (1 the first time).
    pub attempt: u64,
    settle: Box<dyn Settle>,
}

impl Delivery {
    /// A delivery a backend made, settled through `settle`.
    pub fn new(job_id: String, payload: Vec<u8>, attempt: u64, settle: Box<dyn Settle>) -> Self {
        Self { job_id, payload, attempt, settle }
    }

    /// See [`Settle::done`].
    pub async fn done(&self) -> Result<(), LogError> {
        self.settle.done().await
    }

    /// See [`Settle::in_progress`].
    pub async fn in_progress(&self) -> Result<(), LogError> {
        self.settle.in_progress().await
    }

    /// See [`Settle::retry_after`].
    pub async fn retry_after(&self, delay: Duration) -> Result<(), LogError> {
        self.settle.retry_after(delay).await
    }
}

/// A value and its revision.
pub type Versioned = (Vec<u8>, u64);

/// One versioned value per key; every write names the revision it replaces.
pub trait StatusBoard: Send + Sync + 'static {
    /// The value under `key` and its revision.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Versioned>, LogError>>;

    /// Writes `value` under `key` if its revision is still `expected` (0: the
    /// key is absent) and returns the new revision; [`LogError::Conflict`] when
    /// another writer came first.
    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>, expected: u64) -> BoxFuture<'a, Result<u64, LogError>>;
}

#[derive(Default)]
struct QueueState {
    waiting: VecDeque<(String, Vec<u8>, u64)>,
    submitted: HashSet<String>,
}

/// A work queue in this process's memory.
#[derive(Clone, Default)]
pub struct MemoryWorkQueue {
    state: Arc<Mutex<QueueState>>,
    arrived: Arc<tokio::sync::Notify>,
}

impl MemoryWorkQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // A panic while holding the lock leaves plain data behind, still usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, job: (String, Vec<u8>, u64)) {
        self.lock().waiting.push_back(job);
        self.arrived.notify_one();
    }
}

impl WorkQueue for MemoryWorkQueue {
    fn submit<'a>(&'a self, job_id: &'a str, payload: Vec<u8>) -> BoxFuture<'a, Result<(), LogError>> {
        let fresh = self.lock().submitted.insert(job_id.to_owned());
        if fresh {
            self.push((job_id.to_owned(), payload, 0));
        }
        futures::future::ready(Ok(())).boxed()
    }

    fn next(&self, wait: Duration) -> BoxFuture<'_, Result<Option<Delivery>, LogError>> {
        async move {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let arrived = self.arrived.notified();
                if let Some((job_id, payload, delivered)) = self.lock().waiting.pop_front() {
                    let settle =
                        MemorySettle { queue: self.clone(), job: Mutex::new(Some((job_id.clone(), payload.clone(), delivered + 1))) };
                    return Ok(Some(Delivery::new(job_id, payload, delivered + 1, Box::new(settle))));
                }
                if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                    return Ok(None);
                }
            }
        }
        .boxed()
    }
}

struct MemorySettle {
    queue: MemoryWorkQueue,
    job: Mutex<Option<(String, Vec<u8>, u64)>>,
}

impl MemorySettle {
    fn take(&self) -> Option<(String, Vec<u8>, u64)> {
        self.job.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}

impl Settle for MemorySettle {
    fn done(&self) -> BoxFuture<'_, Result<(), LogError>> {
        self.take();
        futures::future::ready(Ok(())).boxed()
    }

    fn in_progress(&self) -> BoxFuture<'_, Result<(), LogError>> {
        futures::future::ready(Ok(())).boxed()
    }

    fn retry_after(&self, delay: Duration) -> BoxFuture<'_, Result<(), LogError>> {
        if let Some(job) = self.take() {
            let queue = self.queue.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                queue.push(job);
            });
        }
        futures::future::ready(Ok(())).boxed()
    }
}

/// A status board in this process's memory.
#[derive(Clone, Default)]
pub struct MemoryStatusBoard {
    entries: Arc<Mutex<HashMap<String, Versioned>>>,
}

impl MemoryStatusBoard {
    /// An empty board.
    pub fn new() -> Self {
        Self::default()
    }
}

impl StatusBoard for MemoryStatusBoard {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Versioned>, LogError>> {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        futures::future::ready(Ok(entries.get(key).cloned())).boxed()
    }

    fn put<'a>(&'a self, key: &'a str, value: Vec<u8>, expected: u64) -> BoxFuture<'a, Result<u64, LogError>> {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = entries.get(key).map_or(0, |(_, revision)| *revision);
        let result = if current == expected {
            entries.insert(key.to_owned(), (value, current + 1));
            Ok(current + 1)
        } else {
            Err(LogError::Conflict { key: key.to_owned(), expected })
        };
        futures::future::ready(result).boxed()
    }
}
