//! The IPFS blob store against a real IPFS node (the JS implementation serving
//! the Kubo RPC API): the node and the embedded store name the same bytes with
//! the same CIDs, blobs stream back, pins follow their owners, and a missing CID
//! is a clear error within the timeout instead of a hang.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use emr_attachments::{BlobError, BlobStore};
use emr_domain::ids::PatientId;
use emr_ipfs::{CHUNK_SIZE, KuboBlobStore, Layout, cid_of};
use emr_tests::ipfs_node::IpfsNode;
use tokio::io::AsyncReadExt;

fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

#[tokio::test]
async fn the_node_and_the_embedded_store_agree_on_every_cid_and_pins_follow_owners() {
    let node = IpfsNode::start();
    let store = KuboBlobStore::new(&node.api(), Duration::from_secs(5)).unwrap();
    let owner = PatientId::new();
    for size in [0, 12, CHUNK_SIZE, CHUNK_SIZE + 10, 1 << 20, CHUNK_SIZE * 175 + 3] {
        let bytes = pattern(size);
        let stored = store.put(owner, &mut &bytes[..]).await.unwrap();
        assert_eq!(stored.content_id.as_str(), cid_of(Layout::V1RawLeaves, &bytes).to_string(), "{size} bytes");
        if size <= 1 << 20 {
            let mut back = Vec::new();
            store.get(&stored.content_id).await.unwrap().read_to_end(&mut back).await.unwrap();
            assert_eq!(back, bytes, "{size} bytes stream back");
        }
        assert!(store.is_pinned(&stored.content_id).await.unwrap());
    }
    let kept = store.put(PatientId::new(), &mut &b"another patient's scan"[..]).await.unwrap();
    assert_eq!(store.unpin_owner(owner).await.unwrap(), 6);
    assert!(
        !store
            .is_pinned(&emr_domain::values::ContentId::parse(&cid_of(Layout::V1RawLeaves, &pattern(12)).to_string()).unwrap())
            .await
            .unwrap()
    );
    assert!(store.is_pinned(&kept.content_id).await.unwrap(), "only the erased owner's blobs are unpinned");
    assert_eq!(store.unpin_owner(owner).await.unwrap(), 0, "unpinning again finds nothing");

    let missing = emr_domain::values::ContentId::parse("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy").unwrap();
    let started = Instant::now();
    let answer = store.get(&missing).await.map(|_| ());
    assert!(matches!(answer, Err(BlobError::NotFound(_))), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(15), "a missing CID must not hang");
}
