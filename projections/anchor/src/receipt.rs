//! Per-event receipts, in the spirit of Chainpoint: everything needed to check,
//! offline, that one event is in the anchored Merkle log.
//!
//! Offline check (also in `docs/receipts.md`):
//! 1. `leaf = SHA-256(0x00 ‖ canonical bytes of the event)` must equal `leaf_hash`;
//! 2. the RFC 9162 inclusion check of `leaf_hash` at `leaf_index` in a tree of
//!    `tree_size` with `path` must give `root`;
//! 3. `head` must carry that size and root and a valid Ed25519 signature by a key
//!    you trust; `anchors` say where that head was written (look it up there):
//!    for a bridge target, `bridge:<chain id>:<contract>` and the transaction
//!    whose `HeadBridged` event carries the root (`rootOf(tree_size)` on chain).

use serde::{Deserialize, Serialize};

use crate::head::{TreeHead, hex, parse_hash};
use crate::ledger::Anchored;
use crate::merkle::{self, Hash, MerkleTree};

/// A receipt for one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Receipt format.
    pub format: String,
    /// Hex SHA-256(0x00 ‖ canonical event bytes).
    pub leaf_hash: String,
    /// The event's index in the Merkle log (0-based).
    pub leaf_index: u64,
    /// Size of the tree the path proves against.
    pub tree_size: u64,
    /// Root of that tree, hex.
    pub root: String,
    /// Inclusion path, hex, leaf to root.
    pub path: Vec<String>,
    /// The signed tree head of that size.
    pub head: TreeHead,
    /// Where the head was anchored.
    pub anchors: Vec<ReceiptAnchor>,
}

/// One ledger entry holding the head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptAnchor {
    /// Ledger name.
    pub ledger: String,
    /// Transaction id on it.
    pub transaction_id: String,
    /// Block on it.
    pub block: u64,
    /// `pending` or `confirmed` on a chain that needs confirmations; absent
    /// where a head is final once written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl Receipt {
    /// Builds the receipt of leaf `index` against the first head that covers it.
    pub(crate) fn build(tree: &MerkleTree, index: u64, ledger: &str, heads: &[Anchored]) -> Option<Self> {
        let anchored = heads.iter().find(|a| a.head.size > index)?;
        let path = tree.inclusion_proof(index, anchored.head.size)?;
        Some(Self {
            format: Self::FORMAT.into(),
            leaf_hash: hex(tree.leaves().get(usize::try_from(index).ok()?)?),
            leaf_index: index,
            tree_size: anchored.head.size,
            root: anchored.head.root.clone(),
            path: path.iter().map(|h| hex(h)).collect(),
            head: anchored.head.clone(),
            anchors: vec![ReceiptAnchor {
                ledger: ledger.into(),
                transaction_id: anchored.transaction_id.clone(),
                block: anchored.block,
                status: None,
            }],
        })
    }

    /// The receipt format this build writes and verifies.
    pub const FORMAT: &str = "emr-receipt/1";

    /// The offline check, given the event's canonical bytes and the keys trusted.
    /// A receipt of another format is not understood, so it does not verify.
    pub fn verify(&self, canonical_bytes: &[u8], trusted_keys: &[String]) -> bool {
        if self.format != Self::FORMAT {
            return false;
        }
        let leaf = merkle::leaf_hash(canonical_bytes);
        let path: Option<Vec<Hash>> = self.path.iter().map(|h| parse_hash(h)).collect();
        let (Some(path), Some(root)) = (path, parse_hash(&self.root)) else { return false };
        hex(&leaf) == self.leaf_hash
            && merkle::verify_inclusion(self.leaf_index, self.tree_size, &leaf, &path, &root)
            && self.head.size == self.tree_size
            && self.head.root == self.root
            && self.head.signature_valid()
            && trusted_keys.contains(&self.head.key)
    }
}
