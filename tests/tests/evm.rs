//! Anchoring to EVM chains, end to end on a real local EVM node (anvil): roots
//! land on chain, receipts and heads check against it, rewrites are refused.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use emr_anchor::{AnchorConfig, AnchorWorker, FileLedger, Ledger, TreeHead};
use emr_evm::EvmMirror;
use emr_tests::anvil::{Anvil, DEV_KEYS};
use emr_tests::{backends, history};

async fn anchored_heads(batch_commits: usize) -> (backends::TestBackend, Vec<TreeHead>, tempfile::TempDir) {
    let (test, heads, dir, _) = anchored_with_ledger(batch_commits).await;
    (test, heads, dir)
}

async fn anchored_with_ledger(batch_commits: usize) -> (backends::TestBackend, Vec<TreeHead>, tempfile::TempDir, Arc<FileLedger>) {
    let test = backends::sqlite().await;
    history::write(&backends::clinic(&test.backend), 2).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(FileLedger::open(dir.path()).unwrap());
    let worker =
        AnchorWorker::open(test.backend.log.clone(), ledger.clone(), dir.path(), AnchorConfig { batch_commits, ..Default::default() })
            .await
            .unwrap();
    worker.catch_up().await.unwrap();
    let heads = ledger.anchored().await.unwrap().into_iter().map(|a| a.head).collect();
    (test, heads, dir, ledger)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_receipt_verifies_against_the_chain() {
    let (test, heads, dir, ledger) = anchored_with_ledger(5).await;
    let node = Anvil::start(1);
    let contract = EvmMirror::deploy(&node.url(), DEV_KEYS[0]).await.unwrap();
    EvmMirror::connect(&node.url(), Some(DEV_KEYS[0]), contract, 1).await.unwrap().mirror(&heads).await.unwrap();
    let auditor = EvmMirror::connect(&node.url(), None, contract, 1).await.unwrap();
    let events = emr_eventstore::LogReader::new(test.backend.log.clone()).read(1, 10_000).await.unwrap();
    let trusted = [heads[0].key.clone()];
    for event in &events {
        let receipt = emr_anchor::receipt(ledger.as_ref(), dir.path(), event).await.unwrap().unwrap();
        assert!(receipt.verify(&event.canonical_bytes(), &trusted));
        let on_chain =
            auditor.root_of(receipt.tree_size).await.unwrap().map(|root| root.iter().map(|b| format!("{b:02x}")).collect::<String>());
        assert_eq!(
            on_chain.as_deref(),
            Some(receipt.root.as_str()),
            "the receipt's root is the chain's root for size {}",
            receipt.tree_size
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_heads_are_mirrored_to_every_configured_chain() {
    let (_test, heads, _dir) = anchored_heads(6).await;
    // Ethereum, Polygon and BSC differ only in chain id (and confirmations) to this client.
    for chain_id in [1u64, 137, 56] {
        let node = Anvil::start(chain_id);
        let contract = EvmMirror::deploy(&node.url(), DEV_KEYS[0]).await.unwrap();
        let mirror = EvmMirror::connect(&node.url(), Some(DEV_KEYS[0]), contract, 2).await.unwrap();
        assert_eq!(mirror.chain_id(), chain_id);
        let receipts = mirror.mirror(&heads).await.unwrap();
        assert_eq!(receipts.len(), heads.len());
        assert!(receipts.iter().all(|r| r.transaction_hash.is_some() && r.block.is_some()));
        assert_eq!(mirror.latest_size().await.unwrap(), heads.last().unwrap().size);
        for head in &heads {
            assert_eq!(mirror.root_of(head.size).await.unwrap(), head.root_hash(), "root of size {}", head.size);
        }
        assert_eq!(mirror.first_mismatch(&heads).await.unwrap(), None);
        assert!(mirror.mirror(&heads).await.unwrap().is_empty(), "mirroring again sends nothing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_refuses_to_rewrite_or_shrink_history() {
    let (_test, heads, _dir) = anchored_heads(10).await;
    let node = Anvil::start(31337);
    let contract = EvmMirror::deploy(&node.url(), DEV_KEYS[0]).await.unwrap();
    let mirror = EvmMirror::connect(&node.url(), Some(DEV_KEYS[0]), contract, 1).await.unwrap();
    mirror.mirror(&heads).await.unwrap();

    let mut rewritten = heads[0].clone();
    rewritten.root = "11".repeat(32);
    let refused = mirror.anchor(&rewritten).await;
    assert!(refused.is_err(), "a different root for an anchored size is refused: {refused:?}");
    assert_eq!(mirror.root_of(heads[0].size).await.unwrap(), heads[0].root_hash(), "the original root stands");

    let again = mirror.anchor(&heads[0]).await.unwrap();
    assert_eq!(again.transaction_hash, None, "re-sending the same root is a no-op");

    let stranger = EvmMirror::connect(&node.url(), Some(DEV_KEYS[1]), contract, 1).await.unwrap();
    let mut next = heads.last().unwrap().clone();
    next.size += 1;
    let refused = stranger.anchor(&next).await;
    // A funded account (anvil's second) whose transaction the contract reverts.
    assert!(matches!(&refused, Err(emr_evm::EvmError::Call(why)) if why.contains("revert")), "only the owner anchors: {refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_ledger_rewritten_and_resigned_by_the_node_itself_is_caught_by_the_chain() {
    let (_test, heads, _dir) = anchored_heads(6).await;
    let node = Anvil::start(31337);
    let contract = EvmMirror::deploy(&node.url(), DEV_KEYS[0]).await.unwrap();
    let mirror = EvmMirror::connect(&node.url(), Some(DEV_KEYS[0]), contract, 1).await.unwrap();
    mirror.mirror(&heads).await.unwrap();
    // An insider with the node key rewrites and re-signs a head locally: its signature
    // is valid, but the chain still holds the original root.
    let mut forged = heads.clone();
    forged[1].root = "22".repeat(32);
    let auditor = EvmMirror::connect(&node.url(), None, contract, 1).await.unwrap();
    assert_eq!(auditor.first_mismatch(&forged).await.unwrap(), Some(forged[1].size), "an auditor needs no key to check");
    assert_eq!(auditor.first_mismatch(&heads).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blockchain_transactions_view_follows_anchors_from_pending_to_confirmed() {
    use emr_tests::mariadb::TestDatabase;
    let (_test, heads, _dir, ledger) = anchored_with_ledger(5).await;
    let db = TestDatabase::fresh().await;
    for anchored in ledger.anchored().await.unwrap() {
        emr_projections::anchors::record(&db.db, &anchored.status("file")).await.unwrap();
    }
    let node = Anvil::start(137);
    let contract = EvmMirror::deploy(&node.url(), DEV_KEYS[0]).await.unwrap();
    let mirror = EvmMirror::connect(&node.url(), Some(DEV_KEYS[0]), contract, 3).await.unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    mirror
        .mirror_reporting(&heads, |status| {
            seen.lock().unwrap().push((status.tree_size, status.confirmed));
            let (pool, status) = (db.db.clone(), status.clone());
            async move { emr_projections::anchors::record(&pool, &status).await.unwrap() }
        })
        .await
        .unwrap();
    let seen = seen.into_inner().unwrap();
    let expected: Vec<(u64, bool)> = heads.iter().flat_map(|h| [(h.size, false), (h.size, true)]).collect();
    assert_eq!(seen, expected, "each anchor is reported pending, then confirmed");

    let rows = emr_projections::anchors::list(&db.db, 1000).await.unwrap();
    assert_eq!(rows.len(), heads.len() * 2, "one row per head per ledger");
    assert!(rows.iter().all(|r| r.status == "confirmed" && r.confirmed_at.is_some()), "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r.ledger == "evm:137").count(), heads.len());
    for head in &heads {
        assert!(rows.iter().any(|r| r.ledger == "evm:137" && r.tree_size == head.size && r.root == head.root && r.block_number > 0));
    }
    // A late "pending" report never downgrades a confirmed anchor.
    let mut stale = emr_anchor::AnchorStatus {
        ledger: "evm:137".into(),
        transaction_id: rows.iter().find(|r| r.ledger == "evm:137").unwrap().transaction_hash.clone(),
        block: 1,
        tree_size: 0,
        root: String::new(),
        last_position: 0,
        confirmed: false,
    };
    stale.tree_size = rows.iter().find(|r| r.transaction_hash == stale.transaction_id).unwrap().tree_size;
    emr_projections::anchors::record(&db.db, &stale).await.unwrap();
    let after = emr_projections::anchors::list(&db.db, 1000).await.unwrap();
    assert!(after.iter().all(|r| r.status == "confirmed"));
    db.drop_database().await;
}
