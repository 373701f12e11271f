//! Replication of blobs beyond the store that first holds them, IPFS Cluster
//! style: a policy says how many peers must hold each blob, a [`Replicator`]
//! asks the cluster to pin with that policy and reports what each peer holds,
//! and [`ReplicationReport`] tells an operator whether the policy is met.

use emr_domain::values::ContentId;
use futures::future::BoxFuture;
use serde::Serialize;

use crate::store::BlobError;

/// How many peers should hold each blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicationPolicy {
    /// Where replicas are requested (the cluster's API address).
    pub target: String,
    /// Fewest peers that must hold a blob for it to count as replicated.
    pub replication_min: u32,
    /// Most peers the cluster should allocate it to.
    pub replication_max: u32,
}

/// One peer's part in a blob, as the cluster reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerState {
    /// Holds the whole blob.
    Pinned,
    /// Fetching it, or queued to.
    Pinning,
    /// Tried and failed.
    Failed,
    /// Allocated to other peers, not this one.
    Remote,
    /// Does not track it.
    Unpinned,
}

/// A peer and what it holds of one blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerReplica {
    /// The peer's id.
    pub peer: String,
    /// Its human name, when it has one.
    pub name: String,
    /// Its state for this blob.
    pub state: PeerState,
    /// Why it failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Whether a blob's replication meets the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicationState {
    /// At least `replication_min` peers hold it.
    Satisfied,
    /// Too few hold it yet, but peers are fetching it.
    Replicating,
    /// Too few hold it and none is fetching it: needs an operator.
    UnderReplicated,
    /// The replication target did not answer.
    Unknown,
}

/// A blob's replication, for operators and dashboards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicationReport {
    /// The policy it is measured against; `None` when no replication target is
    /// configured and the blob store alone holds the blob.
    pub policy: Option<ReplicationPolicy>,
    /// Peers holding the whole blob.
    pub holders: usize,
    /// The verdict.
    pub state: ReplicationState,
    /// Every peer's state.
    pub peers: Vec<PeerReplica>,
    /// Why the state is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ReplicationReport {
    /// Judges `peers` against `policy`; without a policy one holder suffices.
    pub fn judge(policy: Option<ReplicationPolicy>, peers: Vec<PeerReplica>) -> Self {
        let holders = peers.iter().filter(|peer| peer.state == PeerState::Pinned).count();
        let required = policy.as_ref().map_or(1, |policy| usize::try_from(policy.replication_min).unwrap_or(usize::MAX));
        let state = if holders >= required {
            ReplicationState::Satisfied
        } else if peers.iter().any(|peer| peer.state == PeerState::Pinning) {
            ReplicationState::Replicating
        } else {
            ReplicationState::UnderReplicated
        };
        Self { policy, holders, state, peers, error: None }
    }

    /// The report when the replication target cannot be asked.
    pub fn unknown(policy: ReplicationPolicy, error: &BlobError) -> Self {
        Self { policy: Some(policy), holders: 0, state: ReplicationState::Unknown, peers: Vec::new(), error: Some(error.to_string()) }
    }
}

/// A cluster of peers that replicates pinned blobs.
pub trait Replicator: Send + Sync {
    /// The policy every blob is pinned with.
    fn policy(&self) -> &ReplicationPolicy;
    /// Asks the cluster to pin `content_id` under the policy; repeating is harmless.
    fn replicate<'a>(&'a self, content_id: &'a ContentId, name: &'a str) -> BoxFuture<'a, Result<(), BlobError>>;
    /// Every peer's state for `content_id`.
    fn peers<'a>(&'a self, content_id: &'a ContentId) -> BoxFuture<'a, Result<Vec<PeerReplica>, BlobError>>;
    /// Asks every peer to drop `content_id`; repeating is harmless.
    fn release<'a>(&'a self, content_id: &'a ContentId) -> BoxFuture<'a, Result<(), BlobError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(state: PeerState) -> PeerReplica {
        PeerReplica { peer: "12D3KooW".into(), name: "peer".into(), state, error: None }
    }

    fn policy(min: u32) -> Option<ReplicationPolicy> {
        Some(ReplicationPolicy { target: "http://cluster:9094".into(), replication_min: min, replication_max: min + 1 })
    }

    #[test]
    fn a_blob_is_replicated_once_the_minimum_of_peers_hold_all_of_it() {
        let report = ReplicationReport::judge(policy(2), vec![peer(PeerState::Pinned), peer(PeerState::Pinned), peer(PeerState::Failed)]);
        assert_eq!((report.holders, report.state), (2, ReplicationState::Satisfied));
    }

    #[test]
    fn too_few_holders_is_replicating_while_a_peer_fetches_and_under_replicated_otherwise() {
        let fetching = ReplicationReport::judge(policy(2), vec![peer(PeerState::Pinned), peer(PeerState::Pinning)]);
        assert_eq!(fetching.state, ReplicationState::Replicating);
        let stuck = ReplicationReport::judge(policy(2), vec![peer(PeerState::Pinned), peer(PeerState::Failed), peer(PeerState::Remote)]);
        assert_eq!((stuck.holders, stuck.state), (1, ReplicationState::UnderReplicated));
    }

    #[test]
    fn without_a_target_the_store_alone_must_hold_the_blob() {
        assert_eq!(ReplicationReport::judge(None, vec![peer(PeerState::Pinned)]).state, ReplicationState::Satisfied);
        assert_eq!(ReplicationReport::judge(None, vec![peer(PeerState::Unpinned)]).state, ReplicationState::UnderReplicated);
    }
}
