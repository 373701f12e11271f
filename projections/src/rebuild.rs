//! Rebuilding a read model without downtime for readers.
//!
//! 1. Create a shadow database with empty copies of the projection's tables,
//!    checkpoint at 0.
//! 2. Fold the whole log into the shadow.
//! 3. Swap the shadow's tables, checkpoint included, into place atomically for
//!    readers; a live projector's next batch continues from the shadow's
//!    checkpoint because the checkpoint moved with the tables.
//! 4. Fold whatever arrived meanwhile; drop the shadow.
//!
//! On MySQL the shadow is a database beside the live one and the swap is one
//! `RENAME TABLE` of every table. On SQLite the shadow is a file beside the live
//! one, and the swap copies its tables over the live ones in one transaction
//! (SQLite cannot rename a table across files); readers see the old tables until
//! it commits.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use emr_eventstore::EventLog;
use sqlx::{AssertSqlSafe, MySqlPool, SqlitePool};

use crate::db::ReadModelDb;
use crate::error::ProjectionError;
use crate::projection::{Checkpoint, Projection};
use crate::runner::Projector;

/// Rebuilds `projection` in `db` from the first event; returns the checkpoint it
/// ends at.
pub async fn rebuild<P: Projection + Clone>(
    projection: P,
    db: &ReadModelDb,
    log: Arc<dyn EventLog>,
    batch_size: usize,
) -> Result<Checkpoint, ProjectionError> {
    match db {
        ReadModelDb::MySql(pool) => rebuild_mysql(projection.clone(), pool, log.clone(), batch_size).await?,
        ReadModelDb::Sqlite(pool) => rebuild_sqlite(projection.clone(), pool, log.clone(), batch_size).await?,
    }
    let live_projector = Projector::new(projection, db.clone(), log.clone()).with_batch_size(batch_size);
    let head = log.head().await?;
    live_projector.catch_up(head).await
}

/// Folds the whole log into `shadow` (its schema in place, its checkpoint at 0),
/// then closes it.
async fn fold_into<P: Projection>(
    projection: P,
    shadow: &ReadModelDb,
    log: Arc<dyn EventLog>,
    batch_size: usize,
) -> Result<(), ProjectionError> {
    let projector = Projector::new(projection, shadow.clone(), log.clone()).with_batch_size(batch_size);
    let head = log.head().await?;
    projector.catch_up(head).await?;
    shadow.close().await;
    Ok(())
}

async fn execute_mysql(pool: &MySqlPool, sql: String) -> Result<(), ProjectionError> {
    sqlx::query(AssertSqlSafe(sql)).execute(pool).await?;
    Ok(())
}

async fn rebuild_mysql<P: Projection>(
    projection: P,
    pool: &MySqlPool,
    log: Arc<dyn EventLog>,
    batch_size: usize,
) -> Result<(), ProjectionError> {
    let live: String = sqlx::query_scalar("SELECT DATABASE()").fetch_one(pool).await?;
    let shadow = format!("{live}__rebuild_{}", projection.name());
    let retired = format!("{live}__retired_{}", projection.name());
    for database in [&shadow, &retired] {
        execute_mysql(pool, format!("DROP DATABASE IF EXISTS `{database}`")).await?;
        execute_mysql(pool, format!("CREATE DATABASE `{database}`")).await?;
    }
    for table in projection.tables() {
        execute_mysql(pool, format!("CREATE TABLE `{shadow}`.`{table}` LIKE `{live}`.`{table}`")).await?;
    }
    let checkpoint = projection.tables()[0];
    execute_mysql(
        pool,
        format!("INSERT INTO `{shadow}`.`{checkpoint}` (id, position, events, updated_at) VALUES (1, 0, 0, UTC_TIMESTAMP(6))"),
    )
    .await?;

    let options = pool.connect_options().as_ref().clone().database(&shadow);
    let shadow_pool = sqlx::mysql::MySqlPoolOptions::new().max_connections(2).connect_with(options).await?;
    let tables = projection.tables();
    fold_into(projection, &ReadModelDb::MySql(shadow_pool), log, batch_size).await?;

    let renames: Vec<String> = tables
        .iter()
        .flat_map(|table| [format!("`{live}`.`{table}` TO `{retired}`.`{table}`"), format!("`{shadow}`.`{table}` TO `{live}`.`{table}`")])
        .collect();
    execute_mysql(pool, format!("RENAME TABLE {}", renames.join(", "))).await?;
    for database in [&shadow, &retired] {
        execute_mysql(pool, format!("DROP DATABASE IF EXISTS `{database}`")).await?;
    }
    Ok(())
}

/// The shadow file and its WAL companions.
fn sqlite_files(shadow: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = shadow.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [shadow.to_owned(), with("-wal"), with("-shm")]
}

fn remove_sqlite(shadow: &Path) -> Result<(), ProjectionError> {
    for file in sqlite_files(shadow) {
        match std::fs::remove_file(&file) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(ProjectionError::Database(sqlx::Error::Io(error))),
            _ => {}
        }
    }
    Ok(())
}

async fn rebuild_sqlite<P: Projection>(
    projection: P,
    pool: &SqlitePool,
    log: Arc<dyn EventLog>,
    batch_size: usize,
) -> Result<(), ProjectionError> {
    let live = pool.connect_options().get_filename().to_owned();
    let mut shadow_name = live.as_os_str().to_owned();
    shadow_name.push(format!(".rebuild-{}", projection.name()));
    let shadow = PathBuf::from(shadow_name);
    remove_sqlite(&shadow)?;
    let shadow_db = ReadModelDb::open_sqlite(&shadow).await?;
    shadow_db.migrate().await?;
    let tables = projection.tables();
    fold_into(projection, &shadow_db, log, batch_size).await?;

    // ATTACH holds for one connection, outside any transaction.
    let mut conn = pool.acquire().await?;
    sqlx::query("ATTACH DATABASE ? AS shadow").bind(shadow.to_string_lossy().into_owned()).execute(&mut *conn).await?;
    let swapped = async {
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
        for table in tables {
            sqlx::query(AssertSqlSafe(format!("DELETE FROM main.{table}"))).execute(&mut *tx).await?;
            sqlx::query(AssertSqlSafe(format!("INSERT INTO main.{table} SELECT * FROM shadow.{table}"))).execute(&mut *tx).await?;
        }
        tx.commit().await
    }
    .await;
    let detached = sqlx::query("DETACH DATABASE shadow").execute(&mut *conn).await;
    swapped?;
    detached?;
    drop(conn);
    remove_sqlite(&shadow)
}
