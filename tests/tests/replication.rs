//! Replication of attachment blobs through an IPFS Cluster: each stored blob is
//! pinned across the cluster under the configured policy, its replication is
//! reported per peer, and erasing its patient releases it on every peer.
//!
//! The cluster is the peer-side harness `emr_tests::ipfs_cluster` (no cluster
//! binary can run here); the blob store is the embedded one on real files.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use emr_attachments::{Attachments, PeerState, ReplicationPolicy, ReplicationState};
use emr_domain::actor::Actor;
use emr_domain::ids::{AttachmentId, PatientId, RecordId};
use emr_ipfs::{ClusterReplicator, LocalBlobStore};
use emr_tests::backends::{TestBackend, clinic, sqlite};
use emr_tests::charts::{record_with_scan, registered_patient};
use emr_tests::ipfs_cluster::{ClusterHarness, Peer};

struct Setup {
    clinic: emr_commands::Clinic,
    attachments: Attachments,
    _backend: TestBackend,
    _blobs: tempfile::TempDir,
}

fn policy(target: &str) -> ReplicationPolicy {
    ReplicationPolicy { target: target.to_owned(), replication_min: 2, replication_max: 3 }
}

async fn setup(cluster_url: &str) -> Setup {
    let backend = sqlite().await;
    let blobs = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalBlobStore::open(blobs.path()).unwrap());
    let replicator = Arc::new(ClusterReplicator::new(policy(cluster_url), Duration::from_secs(5)).unwrap());
    let clinic = clinic(&backend.backend);
    let attachments = Attachments::new(clinic.clone(), store).with_replication(replicator);
    Setup { clinic, attachments, _backend: backend, _blobs: blobs }
}

/// Registers a patient with one record and uploads a scan to it.
async fn upload_scan(setup: &Setup) -> (PatientId, RecordId, AttachmentId) {
    let patient = registered_patient(&setup.clinic, "Sun Mei").await;
    let (record, attachment) = record_with_scan(&setup.clinic, &setup.attachments, patient, &[7_u8; 100_000]).await;
    (patient, record, attachment)
}

#[tokio::test]
async fn a_stored_blob_is_pinned_across_the_cluster_and_reported_per_peer() {
    let cluster = ClusterHarness::start(&[Peer::Healthy, Peer::Healthy, Peer::FailsPins, Peer::Healthy]).await;
    let setup = setup(cluster.url()).await;
    let (_, record, attachment) = upload_scan(&setup).await;

    let status = setup.attachments.status(&Actor::system(), record, attachment).await.unwrap();
    let content_id = status.attachment.content_id.clone().unwrap();
    assert_eq!(cluster.tracked(), vec![content_id.as_str().to_owned()], "the cluster was asked to pin the blob's CID");
    let report = status.replication;
    assert_eq!(report.policy, Some(policy(cluster.url())));
    assert_eq!((report.holders, report.state), (2, ReplicationState::Satisfied), "{report:?}");
    let states: Vec<PeerState> = report.peers.iter().map(|peer| peer.state).collect();
    assert_eq!(states, [PeerState::Pinned, PeerState::Pinned, PeerState::Failed, PeerState::Remote], "max 3 peers allocated");
    assert_eq!(report.peers[2].error.as_deref(), Some("context deadline exceeded"));
}

#[tokio::test]
async fn too_few_healthy_peers_leave_the_blob_stored_but_under_replicated() {
    let cluster = ClusterHarness::start(&[Peer::Healthy, Peer::FailsPins, Peer::Offline]).await;
    let setup = setup(cluster.url()).await;
    let (_, record, attachment) = upload_scan(&setup).await;
    let status = setup.attachments.status(&Actor::system(), record, attachment).await.unwrap();
    assert!(status.pinned, "the blob store holds it regardless");
    assert_eq!((status.replication.holders, status.replication.state), (1, ReplicationState::UnderReplicated), "{:?}", status.replication);
}

#[tokio::test]
async fn an_unreachable_cluster_does_not_turn_an_upload_away_and_is_reported_as_unknown() {
    let cluster = ClusterHarness::start(&[Peer::Healthy]).await;
    let url = cluster.url().to_owned();
    drop(cluster);
    let setup = setup(&url).await;
    let (_, record, attachment) = upload_scan(&setup).await;
    let status = setup.attachments.status(&Actor::system(), record, attachment).await.unwrap();
    assert!(status.pinned);
    assert_eq!(status.replication.state, ReplicationState::Unknown);
    assert!(status.replication.error.is_some_and(|e| e.contains("IPFS Cluster")));
}

#[tokio::test]
async fn erasing_the_patient_releases_their_blobs_on_every_peer() {
    let cluster = ClusterHarness::start(&[Peer::Healthy, Peer::Healthy, Peer::Healthy]).await;
    let setup = setup(cluster.url()).await;
    let (patient, record, attachment) = upload_scan(&setup).await;
    let (_, other_record, other_attachment) = upload_scan(&setup).await;
    assert_eq!(cluster.tracked().len(), 2, "each upload is sealed under a fresh nonce, so each is its own blob");

    assert_eq!(setup.attachments.release_erased(patient).await.unwrap(), 1);
    assert_eq!(setup.attachments.release_erased(patient).await.unwrap(), 0, "repeating the release is harmless");
    assert_eq!(cluster.tracked().len(), 1, "the cluster no longer tracks the erased patient's blob");
    let status = setup.attachments.status(&Actor::system(), record, attachment).await.unwrap();
    assert!(!status.pinned);
    assert!(status.replication.peers.iter().all(|peer| peer.state == PeerState::Unpinned), "{:?}", status.replication);
    let kept = setup.attachments.status(&Actor::system(), other_record, other_attachment).await.unwrap();
    assert_eq!(kept.replication.state, ReplicationState::Satisfied, "another patient's blob stays replicated");
}
