//! The Merkle log re-derived from the event log by whoever needs it, so a
//! validator never takes a root (or a relayer a proof) on anyone's word.

use std::collections::VecDeque;
use std::sync::Arc;

use emr_anchor::merkle::{self, Hash, MerkleTree};
use emr_eventstore::{EventLog, LogFollower, LogReader, StoreError};

/// Leaf hashes of the log's events, in order, up to a log position.
pub struct LogTree {
    follower: LogFollower,
    tree: MerkleTree,
    /// The log is in the tree up to here.
    last_position: u64,
    /// The follower has read the log up to here.
    read_to: u64,
    /// Leaves read past the position last asked for, with their positions: the
    /// next extension takes them, so the follower reads on from `read_to`
    /// instead of reopening behind it.
    pending: VecDeque<(u64, Hash)>,
}

impl LogTree {
    /// An empty tree over `log`.
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Self { follower: LogReader::new(log).follower(), tree: MerkleTree::new(), last_position: 0, read_to: 0, pending: VecDeque::new() }
    }

    /// Leaves derived so far.
    pub fn size(&self) -> u64 {
        self.tree.len()
    }

    /// Reads the log up to and including `position` (a head's last position).
    pub async fn extend_to(&mut self, position: u64) -> Result<(), StoreError> {
        while self.last_position < position {
            if self.pending.is_empty() {
                let events = self.follower.events_after(self.read_to, 10_000).await?;
                let Some(last) = events.last() else { break };
                self.read_to = last.metadata.position;
                self.pending.extend(events.iter().map(|e| (e.metadata.position, merkle::leaf_hash(&e.canonical_bytes()))));
            }
            while let Some(&(_, leaf)) = self.pending.front().filter(|(at, _)| *at <= position) {
                self.tree.push(leaf);
                self.pending.pop_front();
            }
            self.last_position = if self.pending.is_empty() { self.read_to.min(position) } else { position };
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
