//! The read-model database: MySQL/MariaDB for deployments, a SQLite file for the
//! embedded default. The projections speak one SQL; this module is where the two
//! dialects part: parameters, upserts, write locks, migrations, connections.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::mysql::{MySql, MySqlArguments, MySqlConnectOptions, MySqlPoolOptions, MySqlRow};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Arguments, AssertSqlSafe, FromRow, MySqlPool, SqlitePool, Transaction};

use crate::error::ProjectionError;

/// One SQL parameter, typed the way both dialects can store it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text (ids, statuses, codes).
    Text(Option<String>),
    /// A signed integer.
    Int(Option<i64>),
    /// An unsigned integer (positions, versions, sizes).
    UInt(Option<u64>),
    /// An instant, stored in UTC with microseconds.
    Time(Option<DateTime<Utc>>),
    /// A calendar date.
    Date(Option<NaiveDate>),
    /// A floating-point number (scores).
    Float(Option<f64>),
}

macro_rules! value_from {
    ($variant:ident: $($type:ty => $convert:expr),+ $(,)?) => {$(
        impl From<$type> for Value {
            fn from(value: $type) -> Self {
                Value::$variant(Some($convert(value)))
            }
        }
        impl From<Option<$type>> for Value {
            fn from(value: Option<$type>) -> Self {
                Value::$variant(value.map($convert))
            }
        }
    )+};
}

value_from!(Text: String => |v| v, &str => str::to_owned, &String => String::clone);
value_from!(Int: i64 => |v| v);
value_from!(UInt: u64 => |v| v, u32 => u64::from);
value_from!(Time: DateTime<Utc> => |v| v);
value_from!(Date: NaiveDate => |v| v);
value_from!(Float: f64 => |v| v);

/// How SQLite holds instants: fixed width, so text order is time order.
const SQLITE_TIME: &str = "%Y-%m-%d %H:%M:%S%.6f";

/// Which SQL a statement must be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// MySQL 8 / MariaDB 10.11.
    MySql,
    /// SQLite 3.35 or later.
    Sqlite,
}

impl Dialect {
    /// The clause that turns an `INSERT` into an upsert on `key`.
    pub(crate) fn on_conflict(self, key: &[&str]) -> String {
        match self {
            Self::MySql => " ON DUPLICATE KEY UPDATE ".to_owned(),
            Self::Sqlite => format!(" ON CONFLICT ({}) DO UPDATE SET ", key.join(", ")),
        }
    }

    /// The value an upsert tried to insert into `column`, inside its update clause.
    pub(crate) fn inserted(self, column: &str) -> String {
        match self {
            Self::MySql => format!("VALUES({column})"),
            Self::Sqlite => format!("excluded.{column}"),
        }
    }

    /// What makes a `SELECT` lock the rows it reads until the transaction ends.
    /// SQLite has no row locks: its write transactions start with the database's
    /// write lock already held (`BEGIN IMMEDIATE`), which serves the same purpose.
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Self::MySql => " FOR UPDATE",
            Self::Sqlite => "",
        }
    }
}

fn encoding(error: sqlx::error::BoxDynError) -> ProjectionError {
    ProjectionError::Database(sqlx::Error::Encode(error))
}

fn mysql_arguments(params: Vec<Value>) -> Result<MySqlArguments, ProjectionError> {
    let mut arguments = MySqlArguments::default();
    for param in params {
        match param {
            Value::Text(v) => arguments.add(v),
            Value::Int(v) => arguments.add(v),
            Value::UInt(v) => arguments.add(v),
            Value::Time(v) => arguments.add(v),
            Value::Date(v) => arguments.add(v),
            Value::Float(v) => arguments.add(v),
        }
        .map_err(encoding)?;
    }
    Ok(arguments)
}

fn sqlite_arguments(params: Vec<Value>) -> Result<SqliteArguments, ProjectionError> {
    let mut arguments = SqliteArguments::default();
    for param in params {
        match param {
            Value::Text(v) => arguments.add(v),
            Value::Int(v) => arguments.add(v),
            // SQLite integers are signed 64-bit; positions and sizes stay far below 2^63.
            Value::UInt(v) => arguments.add(v.map(|v| i64::try_from(v).unwrap_or(i64::MAX))),
            Value::Time(v) => arguments.add(v.map(|v| v.format(SQLITE_TIME).to_string())),
            Value::Date(v) => arguments.add(v),
            Value::Float(v) => arguments.add(v),
        }
        .map_err(encoding)?;
    }
    Ok(arguments)
}

/// Rows a query can be read into from either database.
pub trait Readable: for<'r> FromRow<'r, MySqlRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin {}
impl<R> Readable for R where R: for<'r> FromRow<'r, MySqlRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin {}

/// A connected read-model database.
#[derive(Debug, Clone)]
pub enum ReadModelDb {
    /// MySQL or MariaDB.
    MySql(MySqlPool),
    /// A SQLite file.
    Sqlite(SqlitePool),
}

impl ReadModelDb {
    /// Connects to a MySQL/MariaDB database (no migration).
    pub async fn connect_mysql(url: &str, max_connections: u32) -> Result<Self, ProjectionError> {
        let options = MySqlConnectOptions::from_str(url)?;
        // A dead server answers reads and batches with an error in seconds, not the
        // 30 s sqlx waits by default: dashboards get a 503, projectors back off.
        let pool =
            MySqlPoolOptions::new().max_connections(max_connections).acquire_timeout(Duration::from_secs(5)).connect_with(options).await?;
        Ok(Self::MySql(pool))
    }

    /// Opens (creating it if absent) a SQLite read-model file (no migration).
    /// WAL lets dashboards read while a projector writes; writers queue on the
    /// database's write lock for up to the busy timeout.
    pub async fn open_sqlite(file: &Path) -> Result<Self, ProjectionError> {
        if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| ProjectionError::Database(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30));
        Ok(Self::Sqlite(SqlitePoolOptions::new().max_connections(8).connect_with(options).await?))
    }

    /// Creates or upgrades the read-model schema.
    pub async fn migrate(&self) -> Result<(), ProjectionError> {
        let migrated = match self {
            Self::MySql(pool) => sqlx::migrate!("./migrations/mysql").run(pool).await,
            Self::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
        };
        migrated.map_err(|e| ProjectionError::Database(sqlx::Error::Migrate(Box::new(e))))
    }

    /// Its dialect.
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::MySql(_) => Dialect::MySql,
            Self::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Connections of the pool: (open, idle).
    pub fn connections(&self) -> (u32, usize) {
        match self {
            Self::MySql(pool) => (pool.size(), pool.num_idle()),
            Self::Sqlite(pool) => (pool.size(), pool.num_idle()),
        }
    }

    /// A name for this database among others the same log feeds: the MySQL
    /// schema, or the SQLite file's name.
    pub async fn name(&self) -> Result<String, ProjectionError> {
        match self {
            Self::MySql(pool) => {
                Ok(sqlx::query_scalar::<_, Option<String>>("SELECT DATABASE()").fetch_one(pool).await?.unwrap_or_default())
            }
            Self::Sqlite(_) => {
                let file = self.sqlite_file().unwrap_or_default();
                Ok(file.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default())
            }
        }
    }

    /// The SQLite file, for a SQLite database.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        match self {
            Self::MySql(_) => None,
            Self::Sqlite(pool) => Some(pool.connect_options().get_filename().to_owned()),
        }
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx, ProjectionError> {
        Ok(match self {
            Self::MySql(pool) => Tx::MySql(pool.begin().await?),
            // Take the write lock now: a deferred transaction that reads first and
            // writes later fails outright if another writer committed meanwhile.
            Self::Sqlite(pool) => Tx::Sqlite(SqliteTx::begin_immediate(pool).await?),
        })
    }

    /// Rows of `sql` (with `?` placeholders) read into `R`.
    pub async fn fetch_all<R: Readable>(&self, sql: &str, params: Vec<Value>) -> Result<Vec<R>, ProjectionError> {
        Ok(match self {
            Self::MySql(pool) => sqlx::query_as_with(AssertSqlSafe(sql.to_owned()), mysql_arguments(params)?).fetch_all(pool).await?,
            Self::Sqlite(pool) => sqlx::query_as_with(AssertSqlSafe(sql.to_owned()), sqlite_arguments(params)?).fetch_all(pool).await?,
        })
    }

    /// The one row of `sql`.
    pub async fn fetch_one<R: Readable>(&self, sql: &str, params: Vec<Value>) -> Result<R, ProjectionError> {
        Ok(match self {
            Self::MySql(pool) => sqlx::query_as_with(AssertSqlSafe(sql.to_owned()), mysql_arguments(params)?).fetch_one(pool).await?,
            Self::Sqlite(pool) => sqlx::query_as_with(AssertSqlSafe(sql.to_owned()), sqlite_arguments(params)?).fetch_one(pool).await?,
        })
    }

    /// Runs one statement outside any transaction; returns the rows it changed.
    pub async fn execute(&self, sql: &str, params: Vec<Value>) -> Result<u64, ProjectionError> {
        Ok(match self {
            Self::MySql(pool) => {
                sqlx::query_with(AssertSqlSafe(sql.to_owned()), mysql_arguments(params)?).execute(pool).await?.rows_affected()
            }
            Self::Sqlite(pool) => {
                sqlx::query_with(AssertSqlSafe(sql.to_owned()), sqlite_arguments(params)?).execute(pool).await?.rows_affected()
            }
        })
    }

    /// Closes every connection.
    pub async fn close(&self) {
        match self {
            Self::MySql(pool) => pool.close().await,
            Self::Sqlite(pool) => pool.close().await,
        }
    }
}

/// A write transaction on the read-model database; dropped without
/// [`Tx::commit`], it rolls back.
pub enum Tx {
    /// On MySQL/MariaDB.
    MySql(Transaction<'static, MySql>),
    /// On SQLite.
    Sqlite(SqliteTx),
}

/// A SQLite write transaction of plain `BEGIN IMMEDIATE` and `COMMIT`
/// statements on a pooled connection, closed unless it committed.
///
/// Not sqlx's `Transaction`: when a COMMIT fails (a full disk, say), SQLite may
/// already have rolled back; sqlx's ROLLBACK then fails, and the connection goes
/// back to the pool believing it is still inside a transaction, refusing every
/// later BEGIN. Closing it instead rolls back whatever is open, and the pool
/// opens a fresh connection.
pub struct SqliteTx {
    connection: PoolConnection<Sqlite>,
    committed: bool,
}

impl SqliteTx {
    async fn begin_immediate(pool: &SqlitePool) -> Result<Self, sqlx::Error> {
        let mut connection = pool.acquire().await?;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *connection).await?;
        Ok(Self { connection, committed: false })
    }

    async fn commit(mut self) -> Result<(), sqlx::Error> {
        sqlx::query("COMMIT").execute(&mut *self.connection).await?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if !self.committed {
            self.connection.close_on_drop();
        }
    }
}

impl Tx {
    /// Its dialect.
    pub fn dialect(&self) -> Dialect {
        match self {
            Self::MySql(_) => Dialect::MySql,
            Self::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Rows of `sql` read into `R`.
    pub async fn fetch_all<R: Readable>(&mut self, sql: &str, params: Vec<Value>) -> Result<Vec<R>, ProjectionError> {
        Ok(match self {
            Self::MySql(tx) => sqlx::query_as_with(AssertSqlSafe(sql.to_owned()), mysql_arguments(params)?).fetch_all(&mut **tx).await?,
            Self::Sqlite(tx) => {
                sqlx::query_as_with(AssertSqlSafe(sql.to_owned()), sqlite_arguments(params)?).fetch_all(&mut *tx.connection).await?
            }
        })
    }

    /// The one row of `sql`.
    pub async fn fetch_one<R: Readable>(&mut self, sql: &str, params: Vec<Value>) -> Result<R, ProjectionError> {
        Ok(match self {
            Self::MySql(tx) => sqlx::query_as_with(AssertSqlSafe(sql.to_owned()), mysql_arguments(params)?).fetch_one(&mut **tx).await?,
            Self::Sqlite(tx) => {
                sqlx::query_as_with(AssertSqlSafe(sql.to_owned()), sqlite_arguments(params)?).fetch_one(&mut *tx.connection).await?
            }
        })
    }

    /// Runs one statement; returns the rows it changed.
    pub async fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<u64, ProjectionError> {
        Ok(match self {
            Self::MySql(tx) => {
                sqlx::query_with(AssertSqlSafe(sql.to_owned()), mysql_arguments(params)?).execute(&mut **tx).await?.rows_affected()
            }
            Self::Sqlite(tx) => sqlx::query_with(AssertSqlSafe(sql.to_owned()), sqlite_arguments(params)?)
                .execute(&mut *tx.connection)
                .await?
                .rows_affected(),
        })
    }

    /// Makes everything it wrote visible at once.
    pub async fn commit(self) -> Result<(), ProjectionError> {
        match self {
            Self::MySql(tx) => tx.commit().await?,
            Self::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_instants_sort_as_text_in_time_order() {
        let earlier = Utc::now();
        let later = earlier + chrono::Duration::microseconds(1);
        let whole_second = earlier.with_timezone(&Utc).date_naive().and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or(earlier);
        let text = |t: DateTime<Utc>| t.format(SQLITE_TIME).to_string();
        assert!(text(earlier) < text(later));
        assert_eq!(text(whole_second).len(), text(earlier).len(), "fixed width: {}", text(whole_second));
    }

    #[test]
    fn upsert_clauses_name_the_inserted_value_in_each_dialect() {
        assert_eq!(Dialect::MySql.on_conflict(&["id"]), " ON DUPLICATE KEY UPDATE ");
        assert_eq!(Dialect::Sqlite.on_conflict(&["a", "b"]), " ON CONFLICT (a, b) DO UPDATE SET ");
        assert_eq!(Dialect::MySql.inserted("status"), "VALUES(status)");
        assert_eq!(Dialect::Sqlite.inserted("status"), "excluded.status");
    }
}
