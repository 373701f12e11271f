//! The BlockchainTransactions read model: where each tree head was anchored and
//! whether it is final (pending → confirmed; never back).

use chrono::{DateTime, Utc};
use emr_anchor::AnchorStatus;
use serde::Serialize;
use sqlx::MySqlPool;

use crate::error::ProjectionError;

/// Records (or advances) the status of an anchor.
pub async fn record(pool: &MySqlPool, status: &AnchorStatus) -> Result<(), ProjectionError> {
    let state = if status.confirmed { "confirmed" } else { "pending" };
    sqlx::query(
        "INSERT INTO blockchain_transactions (ledger, transaction_hash, block_number, operation_type, tree_size, root, last_position, status, \
         created_at, confirmed_at) VALUES (?, ?, ?, 'anchor_tree_head', ?, ?, ?, ?, UTC_TIMESTAMP(6), IF(? = 'confirmed', UTC_TIMESTAMP(6), NULL)) \
         ON DUPLICATE KEY UPDATE block_number = VALUES(block_number), \
         confirmed_at = IF(status = 'confirmed', confirmed_at, VALUES(confirmed_at)), \
         status = IF(status = 'confirmed', status, VALUES(status))",
    )
    .bind(&status.ledger)
    .bind(&status.transaction_id)
    .bind(status.block)
    .bind(status.tree_size)
    .bind(&status.root)
    .bind(status.last_position)
    .bind(state)
    .bind(state)
    .execute(pool)
    .await?;
    Ok(())
}

/// One row of the view.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct BlockchainTransaction {
    /// `file` or `evm:<chain id>`.
    pub ledger: String,
    /// Transaction id or hash.
    pub transaction_hash: String,
    /// Block.
    pub block_number: u64,
    /// `anchor_tree_head`.
    pub operation_type: String,
    /// Tree size anchored.
    pub tree_size: u64,
    /// Root, hex.
    pub root: String,
    /// Last log position covered.
    pub last_position: u64,
    /// `pending` or `confirmed`.
    pub status: String,
    /// When first recorded.
    pub created_at: DateTime<Utc>,
    /// When it became final.
    pub confirmed_at: Option<DateTime<Utc>>,
}

/// The latest anchors, newest first.
pub async fn list(pool: &MySqlPool, limit: u32) -> Result<Vec<BlockchainTransaction>, ProjectionError> {
    Ok(sqlx::query_as(
        "SELECT ledger, transaction_hash, block_number, operation_type, tree_size, root, last_position, status, created_at, confirmed_at \
         FROM blockchain_transactions ORDER BY tree_size DESC, ledger LIMIT ?",
    )
    .bind(limit.clamp(1, 1000))
    .fetch_all(pool)
    .await?)
}
