//! The anchor contract: signed tree heads of EMR Ledger's Merkle log, one per
//! tree size. A size once anchored keeps its root: a different root for it is
//! refused, the same head again is a no-op (a retried submission). Heads must
//! grow: a smaller size than the latest is refused unless it is already there.

use emr_anchor::TreeHead;

use crate::contract::{ContractError, Invocation, WorldState, from_stored, to_json};

const LATEST: &str = "head~latest";
/// Every `head~<size>` key sorts between these (`~` follows the digits).
const FIRST_HEAD: &str = "head~0";
const PAST_HEADS: &str = "head~:";

/// Keys sort by size: zero-padded to u64's 20 digits.
fn head_key(size: u64) -> String {
    format!("head~{size:020}")
}

/// A head as the ledger holds it: with the transaction that recorded it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RecordedHead {
    /// The head.
    #[serde(flatten)]
    pub head: TreeHead,
    /// The transaction that anchored it.
    pub transaction_id: String,
}

fn parse_size(text: &str) -> Result<u64, ContractError> {
    text.parse().map_err(|_| ContractError::BadRequest(format!("tree size `{text}` is not a number")))
}

async fn stored_head(state: &mut dyn WorldState, key: &str) -> Result<Option<RecordedHead>, ContractError> {
    match state.get(key).await? {
        Some(bytes) => Ok(Some(from_stored(key, &bytes)?)),
        None => Ok(None),
    }
}

/// `RecordHead(head JSON)`: anchors a signed tree head; returns it as stored.
pub(crate) async fn record_head(invocation: &Invocation, state: &mut dyn WorldState) -> Result<Vec<u8>, ContractError> {
    invocation.expect_args(1)?;
    let head: TreeHead = serde_json::from_str(invocation.text(0, "head")?)
        .map_err(|e| ContractError::BadRequest(format!("RecordHead: not a tree head: {e}")))?;
    if head.root_hash().is_none() {
        return Err(ContractError::BadRequest(format!("RecordHead: root `{}` is not 64 hex digits", head.root)));
    }
    if !head.signature_valid() {
        return Err(ContractError::BadRequest(format!("RecordHead: the signature of the head of size {} does not verify", head.size)));
    }
    let key = head_key(head.size);
    if let Some(existing) = stored_head(state, &key).await? {
        return if existing.head.root == head.root {
            to_json(&existing)
        } else {
            Err(ContractError::Conflict(format!(
                "tree size {} is anchored with root {}; refusing root {}",
                head.size, existing.head.root, head.root
            )))
        };
    }
    if let Some(latest) = stored_head(state, LATEST).await?
        && latest.head.size >= head.size
    {
        return Err(ContractError::Conflict(format!(
            "the latest anchored head has size {}; size {} does not extend it",
            latest.head.size, head.size
        )));
    }
    let stored = to_json(&RecordedHead { head, transaction_id: invocation.transaction_id.clone() })?;
    state.put(&key, stored.clone()).await?;
    state.put(LATEST, stored.clone()).await?;
    Ok(stored)
}

/// `HeadBySize(size)`: the head anchored for that tree size.
pub(crate) async fn head_by_size(invocation: &Invocation, state: &mut dyn WorldState) -> Result<Vec<u8>, ContractError> {
    invocation.expect_args(1)?;
    let size = parse_size(invocation.text(0, "size")?)?;
    match stored_head(state, &head_key(size)).await? {
        Some(head) => to_json(&head),
        None => Err(ContractError::NotFound(format!("no head anchored for tree size {size}"))),
    }
}

/// `LatestHead()`: the largest head anchored.
pub(crate) async fn latest_head(invocation: &Invocation, state: &mut dyn WorldState) -> Result<Vec<u8>, ContractError> {
    invocation.expect_args(0)?;
    match stored_head(state, LATEST).await? {
        Some(head) => to_json(&head),
        None => Err(ContractError::NotFound("no head anchored yet".into())),
    }
}

/// `AnchoredHeads()`: every head, smallest first, each with its transaction.
pub(crate) async fn anchored_heads(invocation: &Invocation, state: &mut dyn WorldState) -> Result<Vec<u8>, ContractError> {
    invocation.expect_args(0)?;
    let mut heads = Vec::new();
    for (key, bytes) in state.range(FIRST_HEAD, PAST_HEADS).await? {
        heads.push(from_stored::<RecordedHead>(&key, &bytes)?);
    }
    to_json(&heads)
}
