//! Rebuilding a read model without downtime for readers.
//!
//! 1. Create a shadow database with empty copies of the projection's tables
//!    (`CREATE TABLE … LIKE`), checkpoint at 0.
//! 2. Fold the whole log into the shadow.
//! 3. Swap with one `RENAME TABLE` of every table, checkpoint included: atomic for
//!    readers, and a live projector's next batch continues from the shadow's
//!    checkpoint because the checkpoint moved with the tables.
//! 4. Fold whatever arrived meanwhile; drop the old tables.

use std::sync::Arc;

use emr_eventstore::EventLog;
use sqlx::mysql::MySqlConnectOptions;
use sqlx::{AssertSqlSafe, MySqlPool};

use crate::error::ProjectionError;
use crate::projection::{Checkpoint, Projection};
use crate::runner::Projector;

async fn execute(pool: &MySqlPool, sql: String) -> Result<(), ProjectionError> {
    sqlx::query(AssertSqlSafe(sql)).execute(pool).await?;
    Ok(())
}

/// Rebuilds `projection` in `pool`'s database from the first event; returns the
/// checkpoint it ends at.
pub async fn rebuild<P: Projection + Clone>(
    projection: P,
    pool: &MySqlPool,
    options: &MySqlConnectOptions,
    log: Arc<dyn EventLog>,
    batch_size: usize,
) -> Result<Checkpoint, ProjectionError> {
    let live: String = sqlx::query_scalar("SELECT DATABASE()").fetch_one(pool).await?;
    let shadow = format!("{live}__rebuild_{}", projection.name());
    let retired = format!("{live}__retired_{}", projection.name());
    for database in [&shadow, &retired] {
        execute(pool, format!("DROP DATABASE IF EXISTS `{database}`")).await?;
        execute(pool, format!("CREATE DATABASE `{database}`")).await?;
    }
    for table in projection.tables() {
        execute(pool, format!("CREATE TABLE `{shadow}`.`{table}` LIKE `{live}`.`{table}`")).await?;
    }
    let checkpoint = projection.tables()[0];
    execute(pool, format!("INSERT INTO `{shadow}`.`{checkpoint}` (id, position, events, updated_at) VALUES (1, 0, 0, UTC_TIMESTAMP(6))"))
        .await?;

    let shadow_pool = sqlx::mysql::MySqlPoolOptions::new().max_connections(2).connect_with(options.clone().database(&shadow)).await?;
    let shadow_projector = Projector::new(projection.clone(), shadow_pool.clone(), log.clone()).with_batch_size(batch_size);
    let head = log.head().await?;
    shadow_projector.catch_up(head).await?;
    shadow_pool.close().await;

    let renames: Vec<String> = projection
        .tables()
        .iter()
        .flat_map(|table| [format!("`{live}`.`{table}` TO `{retired}`.`{table}`"), format!("`{shadow}`.`{table}` TO `{live}`.`{table}`")])
        .collect();
    execute(pool, format!("RENAME TABLE {}", renames.join(", "))).await?;
    for database in [&shadow, &retired] {
        execute(pool, format!("DROP DATABASE IF EXISTS `{database}`")).await?;
    }

    let live_projector = Projector::new(projection, pool.clone(), log.clone()).with_batch_size(batch_size);
    let head = log.head().await?;
    live_projector.catch_up(head).await
}
