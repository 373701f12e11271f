//! The embedded backend of the event store: one SQLite file with the same
//! semantics as JetStream (ordering, optimistic concurrency, idempotent appends,
//! subscriptions from a position), so EMR Ledger runs with no server installed.
//!
//! Differences from JetStream, both in the safe direction: a commit id is
//! remembered forever, not for a duplicate window; and the log is protected by
//! triggers instead of stream flags.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use emr_domain::ids::PatientId;
use emr_eventstore::{
    AggregateKey, Appended, CommitRequest, EventLog, KeyError, KeyState, KeyStore, LogError, SnapshotStore, StoredCommit, WrappedKey,
};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use sqlx::sqlite::SqliteConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Row};
use tokio::sync::watch;

/// Failures opening the embedded store.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory cannot be created or written.
    #[error("cannot use data directory {path}: {source}")]
    DataDirectory {
        /// The directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The database cannot be opened or migrated.
    #[error("cannot open event store {path}: {source}")]
    Database {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The embedded event store: log, snapshots and data keys in one file.
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    head: watch::Sender<u64>,
}

/// How often a subscription looks for commits written by other processes.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Commits a subscription reads per query.
const SUBSCRIPTION_BATCH: usize = 512;

/// A failed write: SQLITE_FULL (or an `ENOSPC` surfacing as I/O) means the disk
/// is full, which an operator must fix; anything else is an outage.
fn write_failed(error: sqlx::Error) -> LogError {
    const SQLITE_FULL: &str = "13";
    let full = match &error {
        sqlx::Error::Database(database) => database.code().as_deref() == Some(SQLITE_FULL),
        sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::StorageFull,
        _ => false,
    };
    if full { LogError::StorageFull(Box::new(error)) } else { LogError::unavailable(error) }
}

impl SqliteStore {
    /// Opens (creating if needed) `events.db` in `data_dir`.
    pub async fn open(data_dir: &Path) -> Result<Self, OpenError> {
        std::fs::create_dir_all(data_dir).map_err(|source| OpenError::DataDirectory { path: data_dir.to_owned(), source })?;
        let path = data_dir.join("events.db");
        let database = |source: sqlx::Error| OpenError::Database { path: path.clone(), source: Box::new(source) };
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .pragma("secure_delete", "ON");
        // One writer: appends are serialized in-process; BEGIN IMMEDIATE serializes
        // them across processes sharing the file.
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await.map_err(database)?;
        sqlx::migrate!("./migrations").run(&writer).await.map_err(|e| OpenError::Database { path: path.clone(), source: Box::new(e) })?;
        let reader = SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await.map_err(database)?;
        let store = Self { writer, reader, head: watch::channel(0).0 };
        let head = store.last_position().await.map_err(|e| OpenError::Database { path, source: Box::new(e) })?;
        store.head.send_replace(head);
        Ok(store)
    }

    /// The log, snapshot and key-store ports of this store.
    pub fn ports(&self) -> (Arc<dyn EventLog>, Arc<dyn SnapshotStore>, Arc<dyn KeyStore>) {
        (Arc::new(self.clone()), Arc::new(self.clone()), Arc::new(self.clone()))
    }

    /// Appends `requests` in one SQLite transaction: all of them or none.
    async fn append_commits(&self, requests: &[CommitRequest]) -> Result<Vec<Appended>, LogError> {
        let mut connection = self.writer.acquire().await.map_err(write_failed)?;
        let appended = Self::append_on(&mut connection, requests).await;
        if let Err(LogError::Unavailable(_) | LogError::StorageFull(_)) = &appended {
            // A failed COMMIT (a full disk, say) may have rolled the transaction
            // back inside SQLite already; sqlx's ROLLBACK then fails and the
            // connection believes it is still in a transaction, refusing every
            // later BEGIN. A fresh connection knows no such thing.
            connection.close_on_drop();
        }
        let appended = appended?;
        let last = appended.iter().map(|a| a.position).max().unwrap_or(0);
        self.head.send_if_modified(|head| {
            let advanced = last > *head;
            *head = (*head).max(last);
            advanced
        });
        Ok(appended)
    }

    async fn append_commit(&self, request: CommitRequest) -> Result<Appended, LogError> {
        let mut appended = self.append_commits(std::slice::from_ref(&request)).await?;
        appended.pop().ok_or_else(|| LogError::NotTogether("there is nothing to append"))
    }

    async fn append_on(connection: &mut SqliteConnection, requests: &[CommitRequest]) -> Result<Vec<Appended>, LogError> {
        let mut tx = connection.begin_with("BEGIN IMMEDIATE").await.map_err(write_failed)?;
        let mut appended = Vec::with_capacity(requests.len());
        for request in requests {
            appended.push(Self::append_in(&mut tx, request).await?);
        }
        tx.commit().await.map_err(write_failed)?;
        Ok(appended)
    }

    async fn append_in(tx: &mut SqliteConnection, request: &CommitRequest) -> Result<Appended, LogError> {
        let existing = sqlx::query("SELECT position FROM commits WHERE commit_id = ?")
            .bind(&request.commit_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(write_failed)?;
        if let Some(row) = existing {
            let position: i64 = row.try_get("position").map_err(write_failed)?;
            return Ok(Appended { position: position as u64, duplicate: true });
        }
        let last: Option<i64> = sqlx::query("SELECT MAX(position) AS last FROM commits WHERE aggregate_type = ? AND aggregate_id = ?")
            .bind(request.key.aggregate_type())
            .bind(request.key.aggregate_id())
            .fetch_one(&mut *tx)
            .await
            .and_then(|row| row.try_get("last"))
            .map_err(write_failed)?;
        if last.unwrap_or(0) as u64 != request.expected_last_position {
            return Err(LogError::Conflict { key: request.key.dotted(), expected: request.expected_last_position });
        }
        let inserted = sqlx::query("INSERT INTO commits (aggregate_type, aggregate_id, commit_id, payload) VALUES (?, ?, ?, ?)")
            .bind(request.key.aggregate_type())
            .bind(request.key.aggregate_id())
            .bind(&request.commit_id)
            .bind(&request.payload)
            .execute(&mut *tx)
            .await
            .map_err(write_failed)?;
        Ok(Appended { position: inserted.last_insert_rowid() as u64, duplicate: false })
    }

    fn to_commit(row: &sqlx::sqlite::SqliteRow) -> Result<StoredCommit, LogError> {
        let position: i64 = row.try_get("position").map_err(LogError::unavailable)?;
        let position = position as u64;
        let aggregate_type: String = row.try_get("aggregate_type").map_err(LogError::unavailable)?;
        let aggregate_id: String = row.try_get("aggregate_id").map_err(LogError::unavailable)?;
        let key = AggregateKey::new(&aggregate_type, &aggregate_id).map_err(|e| LogError::Malformed { position, reason: e.to_string() })?;
        Ok(StoredCommit { position, key, payload: row.try_get("payload").map_err(LogError::unavailable)? })
    }

    async fn read_subject(&self, key: &AggregateKey, after_position: u64) -> Result<Vec<StoredCommit>, LogError> {
        sqlx::query(
            "SELECT position, aggregate_type, aggregate_id, payload FROM commits
             WHERE aggregate_type = ? AND aggregate_id = ? AND position > ? ORDER BY position",
        )
        .bind(key.aggregate_type())
        .bind(key.aggregate_id())
        .bind(after_position as i64)
        .fetch_all(&self.reader)
        .await
        .map_err(LogError::unavailable)?
        .iter()
        .map(Self::to_commit)
        .collect()
    }

    async fn read_range(&self, from_position: u64, limit: usize) -> Result<Vec<StoredCommit>, LogError> {
        sqlx::query("SELECT position, aggregate_type, aggregate_id, payload FROM commits WHERE position >= ? ORDER BY position LIMIT ?")
            .bind(from_position as i64)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.reader)
            .await
            .map_err(LogError::unavailable)?
            .iter()
            .map(Self::to_commit)
            .collect()
    }

    async fn last_position(&self) -> Result<u64, LogError> {
        let last: Option<i64> = sqlx::query("SELECT MAX(position) AS last FROM commits")
            .fetch_one(&self.reader)
            .await
            .and_then(|row| row.try_get("last"))
            .map_err(LogError::unavailable)?;
        Ok(last.unwrap_or(0) as u64)
    }

    fn follow(&self, from_position: u64) -> BoxStream<'static, Result<StoredCommit, LogError>> {
        struct Cursor {
            store: SqliteStore,
            next: u64,
            buffer: std::collections::VecDeque<StoredCommit>,
            head: watch::Receiver<u64>,
        }
        let cursor = Cursor { store: self.clone(), next: from_position.max(1), buffer: Default::default(), head: self.head.subscribe() };
        futures::stream::unfold(cursor, |mut cursor| async move {
            loop {
                if let Some(commit) = cursor.buffer.pop_front() {
                    cursor.next = commit.position + 1;
                    return Some((Ok(commit), cursor));
                }
                match cursor.store.read_range(cursor.next, SUBSCRIPTION_BATCH).await {
                    Ok(batch) if !batch.is_empty() => cursor.buffer.extend(batch),
                    Ok(_) => {
                        // Woken by an append in this process, or by the poll for others.
                        let _ = tokio::time::timeout(POLL_INTERVAL, cursor.head.changed()).await;
                    }
                    Err(error) => return Some((Err(error), cursor)),
                }
            }
        })
        .boxed()
    }

    async fn key_state(&self, subject: PatientId) -> Result<KeyState, KeyError> {
        let row = sqlx::query("SELECT state FROM data_keys WHERE patient_id = ?")
            .bind(subject.to_string())
            .fetch_optional(&self.writer)
            .await
            .map_err(KeyError::unavailable)?;
        match row {
            None => Ok(KeyState::Absent),
            Some(row) => {
                let state: String = row.try_get("state").map_err(KeyError::unavailable)?;
                serde_json::from_str(&state).map_err(|e| KeyError::Corrupt { reason: e.to_string() })
            }
        }
    }

    /// Secure-delete zeroes a replaced key inside the page that held it, but in WAL
    /// mode that page reaches the database file only at a checkpoint, and the old
    /// page lingers in the log until then. A truncating checkpoint writes the page
    /// back and empties the log, so no copy of the replaced key stays on disk.
    async fn flush_replaced_pages(&self) -> Result<(), KeyError> {
        let (busy, _, _): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&self.writer).await.map_err(KeyError::unavailable)?;
        if busy != 0 {
            return Err(KeyError::unavailable(std::io::Error::other(
                "readers kept the key store's write-ahead log from being checkpointed",
            )));
        }
        Ok(())
    }

    fn encode_key_state(state: &KeyState) -> Result<String, KeyError> {
        serde_json::to_string(state).map_err(|e| KeyError::Corrupt { reason: e.to_string() })
    }

    async fn write_key_state(&self, subject: PatientId, state: &KeyState, overwrite: bool) -> Result<(), KeyError> {
        let json = Self::encode_key_state(state)?;
        let sql = if overwrite {
            "INSERT INTO data_keys (patient_id, state) VALUES (?, ?) ON CONFLICT (patient_id) DO UPDATE SET state = excluded.state"
        } else {
            "INSERT INTO data_keys (patient_id, state) VALUES (?, ?) ON CONFLICT (patient_id) DO NOTHING"
        };
        sqlx::query(sql).bind(subject.to_string()).bind(json).execute(&self.writer).await.map_err(KeyError::unavailable)?;
        Ok(())
    }
}

impl EventLog for SqliteStore {
    fn append(&self, request: CommitRequest) -> BoxFuture<'_, Result<Appended, LogError>> {
        self.append_commit(request).boxed()
    }

    fn append_together(&self, requests: Vec<CommitRequest>) -> BoxFuture<'_, Result<Vec<Appended>, LogError>> {
        async move {
            emr_eventstore::check_together(&requests)?;
            self.append_commits(&requests).await
        }
        .boxed()
    }

    fn read_aggregate<'a>(&'a self, key: &'a AggregateKey, after_position: u64) -> BoxFuture<'a, Result<Vec<StoredCommit>, LogError>> {
        self.read_subject(key, after_position).boxed()
    }

    fn read_from(&self, from_position: u64, limit: usize) -> BoxFuture<'_, Result<Vec<StoredCommit>, LogError>> {
        self.read_range(from_position, limit).boxed()
    }

    fn head(&self) -> BoxFuture<'_, Result<u64, LogError>> {
        self.last_position().boxed()
    }

    fn subscribe(&self, from_position: u64) -> BoxFuture<'_, Result<BoxStream<'static, Result<StoredCommit, LogError>>, LogError>> {
        futures::future::ready(Ok(self.follow(from_position))).boxed()
    }
}

impl SnapshotStore for SqliteStore {
    fn get<'a>(&'a self, key: &'a AggregateKey) -> BoxFuture<'a, Result<Option<Vec<u8>>, LogError>> {
        async move {
            let row = sqlx::query("SELECT snapshot FROM snapshots WHERE aggregate_key = ?")
                .bind(key.dotted())
                .fetch_optional(&self.reader)
                .await
                .map_err(LogError::unavailable)?;
            row.map(|row| row.try_get("snapshot").map_err(LogError::unavailable)).transpose()
        }
        .boxed()
    }

    fn put<'a>(&'a self, key: &'a AggregateKey, snapshot: Vec<u8>) -> BoxFuture<'a, Result<(), LogError>> {
        async move {
            sqlx::query("INSERT INTO snapshots (aggregate_key, snapshot) VALUES (?, ?) ON CONFLICT (aggregate_key) DO UPDATE SET snapshot = excluded.snapshot")
                .bind(key.dotted())
                .bind(snapshot)
                .execute(&self.writer)
                .await
                .map_err(LogError::unavailable)?;
            Ok(())
        }
        .boxed()
    }
}

impl KeyStore for SqliteStore {
    fn get(&self, subject: PatientId) -> BoxFuture<'_, Result<KeyState, KeyError>> {
        self.key_state(subject).boxed()
    }

    fn create(&self, subject: PatientId, wrapped: WrappedKey) -> BoxFuture<'_, Result<KeyState, KeyError>> {
        async move {
            self.write_key_state(subject, &KeyState::Active { wrapped }, false).await?;
            self.key_state(subject).await
        }
        .boxed()
    }

    fn destroy(&self, subject: PatientId) -> BoxFuture<'_, Result<(), KeyError>> {
        async move {
            self.write_key_state(subject, &KeyState::Destroyed, true).await?;
            self.flush_replaced_pages().await
        }
        .boxed()
    }

    fn subjects(&self) -> BoxFuture<'_, Result<Vec<PatientId>, KeyError>> {
        async move {
            let ids: Vec<String> =
                sqlx::query_scalar("SELECT patient_id FROM data_keys").fetch_all(&self.reader).await.map_err(KeyError::unavailable)?;
            ids.iter()
                .map(|id| id.parse().map_err(|_| KeyError::Corrupt { reason: format!("data_keys row `{id}` is not a patient id") }))
                .collect()
        }
        .boxed()
    }

    fn rewrap<'a>(&'a self, subject: PatientId, current: &'a WrappedKey, next: WrappedKey) -> BoxFuture<'a, Result<bool, KeyError>> {
        async move {
            let replaced = sqlx::query("UPDATE data_keys SET state = ? WHERE patient_id = ? AND state = ?")
                .bind(Self::encode_key_state(&KeyState::Active { wrapped: next })?)
                .bind(subject.to_string())
                .bind(Self::encode_key_state(&KeyState::Active { wrapped: current.clone() })?)
                .execute(&self.writer)
                .await
                .map_err(KeyError::unavailable)?
                .rows_affected();
            if replaced == 1 {
                self.flush_replaced_pages().await?;
            }
            Ok(replaced == 1)
        }
        .boxed()
    }
}
