//! A fresh read-model database per test, in either store the product supports:
//! a MariaDB database (see [`crate::mariadb`]) or a SQLite file in a temporary
//! directory (the embedded default).

use std::sync::Arc;

use emr_eventstore::EventLog;
use emr_projections::{
    AccessLogProjection, AccessProjection, AccountDirectory, BlindIndex, DashboardProjection, DiagnosisProjection, FederatedProjection,
    PatientDirectory, Projector, ReadModelDb, RecordIndex, SearchIndex, SecurityProjection,
};
use sqlx::{AssertSqlSafe, Row};

use crate::mariadb::TestDatabase;

/// Every read-model table, checkpoints included.
pub const TABLES: [&str; 24] = [
    "patient_directory_checkpoint",
    "patients",
    "record_index_checkpoint",
    "medical_records",
    "attachments",
    "access_checkpoint",
    "access_grants",
    "access_requests",
    "dashboard_checkpoint",
    "records_per_type_per_day",
    "patients_per_hospital",
    "dashboard_patient_hospitals",
    "access_log_checkpoint",
    "access_log",
    "access_denials",
    "security_checkpoint",
    "security_events",
    "security_risk",
    "federated_checkpoint",
    "federated_tasks",
    "federated_rounds",
    "federated_updates",
    "account_directory_checkpoint",
    "accounts",
];

/// The blind index of tests: one fixed key, so a test's API and projector agree.
pub fn blind_index() -> Arc<BlindIndex> {
    Arc::new(BlindIndex::new(&[7; 32]))
}

/// The search-index projector of tests, opening PHI with `codec`.
pub fn search_index(codec: Arc<emr_eventstore::PhiCodec>) -> SearchIndex {
    SearchIndex::new(codec, blind_index())
}

/// Folds the log, as it stands, into every projection of `db` that reads no PHI
/// (the search index needs a key vault: [`fold_search_index`]).
pub async fn fold_all(db: &ReadModelDb, log: &Arc<dyn EventLog>, batch: usize) {
    let head = log.head().await.unwrap();
    Projector::new(PatientDirectory, db.clone(), log.clone()).with_batch_size(batch).catch_up(head).await.unwrap();
    Projector::new(RecordIndex, db.clone(), log.clone()).with_batch_size(batch).catch_up(head).await.unwrap();
    Projector::new(AccessProjection, db.clone(), log.clone()).with_batch_size(batch).catch_up(head).await.unwrap();
    Projector::new(DashboardProjection, db.clone(), log.clone()).with_batch_size(batch).catch_up(head).await.unwrap();
    Projector::new(AccessLogProjection, db.clone(), log.clone()).with_batch_size(batch).catch_up(head).await.unwrap();
    Projector::new(SecurityProjection, db.clone(), log.clone()).with_batch_size(batch).catch_up(head).await.unwrap();
    Projector::new(FederatedProjection, db.clone(), log.clone()).with_batch_size(batch).catch_up(head).await.unwrap();
    Projector::new(DiagnosisProjection, db.clone(), log.clone()).with_batch_size(batch).catch_up(head).await.unwrap();
    Projector::new(AccountDirectory, db.clone(), log.clone()).with_batch_size(batch).catch_up(head).await.unwrap();
}

/// Folds the log, as it stands, into the search index of `db`.
pub async fn fold_search_index(db: &ReadModelDb, log: &Arc<dyn EventLog>, search: SearchIndex, batch: usize) {
    let head = log.head().await.unwrap();
    Projector::new(search, db.clone(), log.clone()).with_batch_size(batch).catch_up(head).await.unwrap();
}

/// Asserts that two dumps of every table ([`TestReadModels::dump_all`]) hold the
/// same rows, naming the table and a few rows that differ.
pub fn assert_same_tables(actual: &[(String, Vec<String>)], expected: &[(String, Vec<String>)], when: &str) {
    for ((table, rows), (_, expected_rows)) in actual.iter().zip(expected) {
        let missing: Vec<_> = expected_rows.iter().filter(|r| !rows.contains(r)).take(3).collect();
        let extra: Vec<_> = rows.iter().filter(|r| !expected_rows.contains(r)).take(3).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{table} differs from a clean fold {when}:\n  missing {missing:#?}\n  extra {extra:#?}"
        );
        assert_eq!(rows.len(), expected_rows.len(), "{table} row count {when}");
    }
}

/// Which store the read models live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// MariaDB at `EMR_TEST_MYSQL_URL`.
    MariaDb,
    /// A SQLite file.
    Sqlite,
}

enum Place {
    MariaDb(Box<TestDatabase>),
    /// The file, and the temporary directory holding it when the test made it.
    Sqlite(std::path::PathBuf, Option<tempfile::TempDir>),
}

/// Migrated, empty read models for one test.
pub struct TestReadModels {
    /// The database, as projectors and queries use it.
    pub db: ReadModelDb,
    place: Place,
}

impl TestReadModels {
    /// An empty database with the read-model schema.
    pub async fn fresh(store: Store) -> Self {
        match store {
            Store::MariaDb => {
                let database = TestDatabase::fresh().await;
                Self { db: database.db.clone(), place: Place::MariaDb(Box::new(database)) }
            }
            Store::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let file = dir.path().join("read-models.db");
                let db = ReadModelDb::open_sqlite(&file).await.unwrap();
                db.migrate().await.unwrap();
                Self { db, place: Place::Sqlite(file, Some(dir)) }
            }
        }
    }

    /// The read models in an existing MariaDB database (other processes', say).
    pub fn on_mariadb(database: TestDatabase) -> Self {
        Self { db: database.db.clone(), place: Place::MariaDb(Box::new(database)) }
    }

    /// Read models in an existing SQLite file (another process's, say).
    pub async fn open_sqlite(file: &std::path::Path) -> Self {
        Self { db: ReadModelDb::open_sqlite(file).await.unwrap(), place: Place::Sqlite(file.to_owned(), None) }
    }

    /// New connections to the same database, as another process would open.
    pub async fn connect_again(&self) -> ReadModelDb {
        match &self.place {
            Place::MariaDb(database) => ReadModelDb::MySql(
                sqlx::mysql::MySqlPoolOptions::new().max_connections(2).connect_with(database.options.clone()).await.unwrap(),
            ),
            Place::Sqlite(file, _) => ReadModelDb::open_sqlite(file).await.unwrap(),
        }
    }

    /// Ends every other connection's open transaction, as the death of the process
    /// holding it would. MariaDB: kills the server-side connections. SQLite has
    /// no server to ask; its transactions end with their connections, and a real
    /// process kill is tested by `adapters/cli/tests/read_models.rs`.
    pub async fn kill_connections(&self) {
        if let Place::MariaDb(database) = &self.place {
            database.kill_connections().await;
        }
    }

    /// `SELECT COUNT(*) …`-like query's single integer.
    pub async fn count(&self, sql: &str, params: Vec<emr_projections::Value>) -> i64 {
        let (count,): (i64,) = self.db.fetch_one(sql, params).await.unwrap();
        count
    }

    /// Every row of `table` as text, ordered, without `updated_at` columns of
    /// checkpoints (wall-clock time, not projected state).
    pub async fn dump(&self, table: &str) -> Vec<String> {
        match (&self.place, &self.db) {
            (Place::MariaDb(database), _) => database.dump(table).await,
            (Place::Sqlite(..), ReadModelDb::Sqlite(pool)) => {
                let columns: Vec<String> =
                    sqlx::query(AssertSqlSafe(format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid")))
                        .fetch_all(pool)
                        .await
                        .unwrap()
                        .iter()
                        .map(|row| row.try_get::<String, _>("name").unwrap())
                        .filter(|c| !(table.ends_with("_checkpoint") && c == "updated_at"))
                        .collect();
                assert!(!columns.is_empty(), "no table {table}");
                let expression =
                    columns.iter().map(|c| format!("IFNULL(CAST(\"{c}\" AS TEXT), '<null>')")).collect::<Vec<_>>().join(" || '|' || ");
                let sql = format!("SELECT {expression} AS line FROM \"{table}\" ORDER BY 1");
                sqlx::query(AssertSqlSafe(sql)).fetch_all(pool).await.unwrap().iter().map(|row| row.try_get("line").unwrap()).collect()
            }
            (Place::Sqlite(..), ReadModelDb::MySql(_)) => unreachable!("a SQLite place holds a SQLite database"),
        }
    }

    /// Every table's rows ([`TestReadModels::dump`]), in [`TABLES`] order.
    pub async fn dump_all(&self) -> Vec<(String, Vec<String>)> {
        let mut all = Vec::new();
        for table in TABLES {
            all.push((table.to_owned(), self.dump(table).await));
        }
        all
    }

    /// Removes the database.
    pub async fn remove(self) {
        match self.place {
            Place::MariaDb(database) => database.drop_database().await,
            Place::Sqlite(_, dir) => {
                self.db.close().await;
                drop(dir);
            }
        }
    }
}

/// Every projector folding a database in the background, as `emr serve` runs
/// them, until [`RunningProjectors::stop`].
pub struct RunningProjectors {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningProjectors {
    /// Starts every projector from `log` into `db`, `batch_size` commits per
    /// transaction; the search index opens PHI with `codec`.
    pub fn start(db: ReadModelDb, log: Arc<dyn EventLog>, codec: Arc<emr_eventstore::PhiCodec>, batch_size: usize) -> Self {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let search = search_index(codec);
        let task = tokio::spawn(async move { emr_projections::run_every_projection(&db, log, batch_size, search, stopped).await });
        Self { stop, task }
    }

    /// Stops them between batches (after their final fold) and waits until they have.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
    }
}
