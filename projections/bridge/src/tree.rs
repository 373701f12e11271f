//! The Merkle log re-derived from the event log by whoever needs it, so a
//! validator never takes a root (or a relayer a proof) on anyone's word.

use std::sync::Arc;

use emr_anchor::merkle::{self, Hash, MerkleTree};
use emr_eventstore::{EventLog, LogFollower, LogReader, StoreError};

/// Leaf hashes of the log's events, in order, up to a log position.
pub struct LogTree {
    follower: LogFollower,
    tree: MerkleTree,
    last_position: u64,
}

impl LogTree {
    /// An empty tree over `log`.
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Self { follower: LogReader::new(log).follower(), tree: MerkleTree::new(), last_position: 0 }
    }

    /// Leaves derived so far.
    pub fn size(&self) -> u64 {
        self.tree.len()
    }

    /// Reads the log up to and including `position` (a head's last position).
    pub async fn extend_to(&mut self, position: u64) -> Result<(), StoreError> {
        while self.last_position < position {
            let events = self.follower.events_after(self.last_position, 10_000).await?;
            if events.is_empty() {
                break;
            }
            for event in events.iter().filter(|e| e.metadata.position <= position) {
                self.tree.push(merkle::leaf_hash(&event.canonical_bytes()));
            }
            let read_to = events.last().map_or(position, |e| e.metadata.position);
            self.last_position = read_to.min(position);
        }
        Ok(())
    }

    /// The root of the first `size` leaves, when that many are derived.
    pub fn root(&self, size: u64) -> Option<Hash> {
        self.tree.root(size)
    }

    /// The RFC 9162 proof that the tree of `first` leaves is a prefix of the tree
    /// of `second` leaves.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Option<Vec<Hash>> {
        self.tree.consistency_proof(first, second)
    }
}
