//! The BlockchainTransactions read model: where each tree head was anchored and
//! whether it is final (pending → confirmed; never back, unless a reorg drops
//! the transaction from its chain: then `dropped`).

use chrono::{DateTime, Utc};
use emr_anchor::AnchorStatus;
use serde::Serialize;

use crate::db::{ReadModelDb, Value};
use crate::error::ProjectionError;

/// Records (or advances) the status of an anchor.
pub async fn record(db: &ReadModelDb, status: &AnchorStatus) -> Result<(), ProjectionError> {
    let dialect = db.dialect();
    let state = if status.confirmed { "confirmed" } else { "pending" };
    let now = chrono::Utc::now();
    // Once confirmed, a row keeps its status and the time it became final.
    let sql = format!(
        "INSERT INTO blockchain_transactions (ledger, transaction_hash, block_number, operation_type, tree_size, root, last_position, status, \
         created_at, confirmed_at) VALUES (?, ?, ?, 'anchor_tree_head', ?, ?, ?, ?, ?, ?){on_conflict}block_number = {block}, \
         confirmed_at = CASE WHEN status = 'confirmed' THEN confirmed_at ELSE {confirmed_at} END, \
         status = CASE WHEN status = 'confirmed' THEN status ELSE {status} END",
        on_conflict = dialect.on_conflict(&["ledger", "transaction_hash"]),
        block = dialect.inserted("block_number"),
        confirmed_at = dialect.inserted("confirmed_at"),
        status = dialect.inserted("status"),
    );
    let params: Vec<Value> = vec![
        status.ledger.as_str().into(),
        status.transaction_id.as_str().into(),
        status.block.into(),
        status.tree_size.into(),
        status.root.as_str().into(),
        status.last_position.into(),
        state.into(),
        now.into(),
        status.confirmed.then_some(now).into(),
    ];
    db.execute(&sql, params).await?;
    Ok(())
}

/// Marks a transaction that is no longer on its chain (a reorg dropped it). If
/// the chain includes it again, [`record`] brings it back.
pub async fn dropped(db: &ReadModelDb, ledger: &str, transaction: &str) -> Result<(), ProjectionError> {
    db.execute(
        "UPDATE blockchain_transactions SET status = 'dropped', confirmed_at = NULL WHERE ledger = ? AND transaction_hash = ?",
        vec![ledger.into(), transaction.into()],
    )
    .await?;
    Ok(())
}

/// One row of the view.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// `pending`, `confirmed` or `dropped`.
    pub status: String,
    /// When first recorded.
    pub created_at: DateTime<Utc>,
    /// When it became final.
    pub confirmed_at: Option<DateTime<Utc>>,
}

/// The latest anchors, newest first.
pub async fn list(db: &ReadModelDb, limit: u32) -> Result<Vec<BlockchainTransaction>, ProjectionError> {
    db.fetch_all(
        "SELECT ledger, transaction_hash, block_number, operation_type, tree_size, root, last_position, status, created_at, confirmed_at \
         FROM blockchain_transactions ORDER BY tree_size DESC, ledger LIMIT ?",
        vec![limit.clamp(1, 1000).into()],
    )
    .await
}

/// Where the head of `tree_size` stands on every ledger and chain it reached
/// (transactions a reorg dropped left out): what a receipt's anchors list.
pub async fn at_size(db: &ReadModelDb, tree_size: u64) -> Result<Vec<BlockchainTransaction>, ProjectionError> {
    db.fetch_all(
        "SELECT ledger, transaction_hash, block_number, operation_type, tree_size, root, last_position, status, created_at, confirmed_at \
         FROM blockchain_transactions WHERE tree_size = ? AND status <> 'dropped' ORDER BY ledger, block_number",
        vec![tree_size.into()],
    )
    .await
}
