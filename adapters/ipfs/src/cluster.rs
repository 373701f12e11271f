//! Replication through an IPFS Cluster, over its REST API (default port 9094).
//!
//! The endpoints used: `POST /pins/{cid}` with `replication-min`,
//! `replication-max` and `name` (the cluster allocates the pin to that many of
//! its peers, which fetch the blob from the node that has it), `GET /pins/{cid}`
//! (every peer's status in `peer_map`) and `DELETE /pins/{cid}`. Errors come back
//! as `{"code": …, "message": …}`.

use std::collections::BTreeMap;
use std::time::Duration;

use emr_attachments::{BlobError, PeerReplica, PeerState, ReplicationPolicy, Replicator};
use emr_domain::values::ContentId;
use futures::future::BoxFuture;
use serde::Deserialize;

/// A cluster peer's REST API.
#[derive(Clone)]
pub struct ClusterReplicator {
    policy: ReplicationPolicy,
    http: reqwest::Client,
    timeout: Duration,
}

#[derive(Deserialize)]
struct GlobalPinInfo {
    #[serde(default)]
    peer_map: BTreeMap<String, PinInfoShort>,
}

#[derive(Deserialize)]
struct PinInfoShort {
    #[serde(default)]
    peername: String,
    status: String,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize)]
struct ClusterError {
    #[serde(default)]
    message: String,
}

/// The cluster's tracker statuses, folded into what the report distinguishes.
fn peer_state(status: &str) -> PeerState {
    match status {
        "pinned" => PeerState::Pinned,
        "pinning" | "pin_queued" => PeerState::Pinning,
        "pin_error" | "cluster_error" | "unexpectedly_unpinned" | "error" => PeerState::Failed,
        "remote" | "sharded" => PeerState::Remote,
        _ => PeerState::Unpinned,
    }
}

fn unavailable(error: impl std::fmt::Display) -> BlobError {
    BlobError::Unavailable(format!("IPFS Cluster: {error}"))
}

impl ClusterReplicator {
    /// A client of the cluster whose REST API is at `policy.target`
    /// (e.g. `http://127.0.0.1:9094`).
    pub fn new(policy: ReplicationPolicy, timeout: Duration) -> Result<Self, BlobError> {
        if policy.replication_min == 0 || policy.replication_min > policy.replication_max {
            return Err(unavailable(format!(
                "replication_min ({}) must be at least 1 and at most replication_max ({})",
                policy.replication_min, policy.replication_max
            )));
        }
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).timeout(timeout).build().map_err(unavailable)?;
        Ok(Self { policy: ReplicationPolicy { target: policy.target.trim_end_matches('/').to_owned(), ..policy }, http, timeout })
    }

    fn pin_url(&self, content_id: &ContentId) -> String {
        format!("{}/pins/{}", self.policy.target, content_id.as_str())
    }

    async fn checked(&self, response: Result<reqwest::Response, reqwest::Error>) -> Result<reqwest::Response, BlobError> {
        let response = response.map_err(|e| unavailable(format!("no answer within {:?}: {e}", self.timeout)))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let message = response.json::<ClusterError>().await.map(|e| e.message).unwrap_or_default();
        Err(unavailable(format!("{status}: {message}")))
    }
}

impl Replicator for ClusterReplicator {
    fn policy(&self) -> &ReplicationPolicy {
        &self.policy
    }

    fn replicate<'a>(&'a self, content_id: &'a ContentId, name: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            let query = [
                ("replication-min", self.policy.replication_min.to_string()),
                ("replication-max", self.policy.replication_max.to_string()),
                ("name", name.to_owned()),
            ];
            self.checked(self.http.post(self.pin_url(content_id)).query(&query).send().await).await?;
            Ok(())
        })
    }

    fn peers<'a>(&'a self, content_id: &'a ContentId) -> BoxFuture<'a, Result<Vec<PeerReplica>, BlobError>> {
        Box::pin(async move {
            let response = self.checked(self.http.get(self.pin_url(content_id)).send().await).await?;
            let info: GlobalPinInfo = response.json().await.map_err(unavailable)?;
            Ok(info
                .peer_map
                .into_iter()
                .map(|(peer, pin)| PeerReplica {
                    peer,
                    name: pin.peername,
                    state: peer_state(&pin.status),
                    error: Some(pin.error).filter(|e| !e.is_empty()),
                })
                .collect())
        })
    }

    fn release<'a>(&'a self, content_id: &'a ContentId) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            let response = self.http.delete(self.pin_url(content_id)).send().await;
            if response.as_ref().is_ok_and(|r| r.status() == reqwest::StatusCode::NOT_FOUND) {
                return Ok(()); // not tracked: already released
            }
            self.checked(response).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cluster_tracker_status_maps_to_a_peer_state() {
        assert_eq!(peer_state("pinned"), PeerState::Pinned);
        for fetching in ["pinning", "pin_queued"] {
            assert_eq!(peer_state(fetching), PeerState::Pinning);
        }
        for failed in ["pin_error", "cluster_error", "unexpectedly_unpinned"] {
            assert_eq!(peer_state(failed), PeerState::Failed);
        }
        assert_eq!(peer_state("remote"), PeerState::Remote);
        for gone in ["unpinned", "unpinning", "unpin_queued", "unpin_error", "something_new"] {
            assert_eq!(peer_state(gone), PeerState::Unpinned);
        }
    }

    #[test]
    fn a_policy_needing_no_replica_or_more_than_it_allows_is_refused() {
        let policy = |min, max| ReplicationPolicy { target: "http://127.0.0.1:9094/".into(), replication_min: min, replication_max: max };
        assert!(ClusterReplicator::new(policy(0, 2), Duration::from_secs(1)).is_err());
        assert!(ClusterReplicator::new(policy(3, 2), Duration::from_secs(1)).is_err());
        let accepted = ClusterReplicator::new(policy(2, 3), Duration::from_secs(1)).unwrap();
        assert_eq!(accepted.policy().target, "http://127.0.0.1:9094", "a trailing slash is dropped");
    }
}
