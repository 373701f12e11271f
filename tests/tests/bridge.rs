//! The cross-chain bridge, end to end on real local EVM nodes (anvil): k-of-n
//! validators who re-derive every head from the event log, a relayer nobody has
//! to trust, a contract that checks signatures and consistency itself, reorgs.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use emr_eventstore::LogError;
use futures::future::BoxFuture;
use std::time::{Duration, Instant};

use emr_anchor::{AnchorConfig, AnchorWorker, Anchored, FileLedger, Ledger, NodeKey};
use emr_bridge::{BridgeError, Relayer, Validator};
use emr_domain::DomainServices;
use emr_domain::bridge::HeadAttestations;
use emr_evm::EvmError;
use emr_evm::bridge::{BridgeChain, ChainConfig, ValidatorKey};
use emr_tests::anvil::{Anvil, DEV_KEYS};
use emr_tests::{backends, history};

/// Test-only validator keys (small, well-known scalars: never use elsewhere).
fn validator_key(i: u64) -> ValidatorKey {
    ValidatorKey::parse(&format!("0x{:064x}", 0xb0b0_0000_u64 + i)).unwrap()
}

fn addresses(keys: &[&ValidatorKey]) -> Vec<String> {
    let mut addresses: Vec<String> = keys.iter().map(|k| k.address()).collect();
    addresses.sort();
    addresses
}

/// A log with several anchored heads in the embedded ledger.
struct Source {
    test: backends::TestBackend,
    ledger: Arc<FileLedger>,
    dir: tempfile::TempDir,
}

impl Source {
    async fn anchored(batch_commits: usize) -> Self {
        let test = backends::sqlite().await;
        history::write(&backends::clinic(&test.backend), 2).await;
        let dir = tempfile::tempdir().unwrap();
        let ledger = Arc::new(FileLedger::open(dir.path()).unwrap());
        let config = AnchorConfig { batch_commits, ..Default::default() };
        AnchorWorker::open(test.backend.log.clone(), ledger.clone(), dir.path(), config).await.unwrap().catch_up().await.unwrap();
        Self { test, ledger, dir }
    }

    async fn heads(&self) -> Vec<Anchored> {
        self.ledger.anchored().await.unwrap()
    }

    async fn validator(&self, key: ValidatorKey, chains: Vec<BridgeChain>) -> Validator {
        Validator::open(&self.test.backend, self.ledger.clone(), key, chains, Vec::new(), DomainServices::default()).await.unwrap()
    }

    fn relayer(&self, chain: BridgeChain, view: Option<emr_projections::ReadModelDb>) -> Relayer {
        Relayer::new(&self.test.backend, self.ledger.clone(), chain, view, DomainServices::default())
    }
}

fn config(node: &Anvil, chain_id: u64, contract: &str, confirmations: u64) -> ChainConfig {
    ChainConfig {
        name: format!("chain-{chain_id}"),
        url: node.url(),
        chain_id,
        contract: contract.to_owned(),
        confirmations,
        max_fee_per_gas: None,
        max_priority_fee_per_gas: None,
    }
}

/// Deploys a bridge contract trusting `validators` with threshold `k`; returns a
/// relayer's (gas-paying) connection and one without a key for validators.
async fn deploy(node: &Anvil, chain_id: u64, validators: &[String], k: u8, confirmations: u64) -> (BridgeChain, BridgeChain) {
    let contract = BridgeChain::deploy(&node.url(), DEV_KEYS[0], validators, k).await.unwrap();
    let config = config(node, chain_id, &emr_evm::bridge::address_text(contract), confirmations);
    (BridgeChain::connect(config.clone(), Some(DEV_KEYS[1])).await.unwrap(), BridgeChain::connect(config, None).await.unwrap())
}

/// Steps the relayer until every head of the source is confirmed on its chain.
async fn relay_until_confirmed(relayer: &Relayer, heads: &[Anchored]) -> Vec<emr_bridge::RelayReport> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut reports = Vec::new();
    loop {
        let report = relayer.step().await.unwrap();
        reports.push(report);
        let last = heads.last().map(|a| a.head.size);
        let done = reports.iter().any(|r| r.confirmed.iter().copied().max() == last);
        if done {
            return reports;
        }
        assert!(Instant::now() < deadline, "the relayer did not settle: {reports:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn root_bytes(anchored: &Anchored) -> [u8; 32] {
    anchored.head.root_hash().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_three_validators_get_every_head_accepted_and_one_alone_gets_none() {
    let source = Source::anchored(5).await;
    let heads = source.heads().await;
    assert!(heads.len() >= 3, "several heads to bridge");
    let node = Anvil::start(137);
    let keys = [validator_key(1), validator_key(2), validator_key(3)];
    let (relay_chain, _) = deploy(&node, 137, &addresses(&keys.iter().collect::<Vec<_>>()), 2, 2).await;
    let relayer = source.relayer(relay_chain, None);

    let chain = || async { BridgeChain::connect(relayer.chain().config().clone(), None).await.unwrap() };
    let first = source.validator(validator_key(1), vec![chain().await]).await;
    assert_eq!(first.step().await.unwrap(), heads.len(), "one signature per head");
    assert_eq!(first.step().await.unwrap(), 0, "nothing new to sign");
    let report = relayer.step().await.unwrap();
    assert!(report.submitted.is_empty(), "one validator of three is not a quorum: {report:?}");
    assert_eq!(report.waiting_for_signatures, Some(heads[0].head.size));
    assert_eq!(relayer.chain().latest_size().await.unwrap(), 0);

    let second = source.validator(validator_key(2), vec![chain().await]).await;
    second.step().await.unwrap();
    let reports = relay_until_confirmed(&relayer, &heads).await;
    let submitted: Vec<u64> = reports.iter().flat_map(|r| r.submitted.clone()).collect();
    assert_eq!(submitted, heads.iter().map(|a| a.head.size).collect::<Vec<_>>(), "every head, in order, once");
    for anchored in &heads {
        assert_eq!(relayer.chain().root_of(anchored.head.size).await.unwrap(), Some(root_bytes(anchored)));
        let inclusion = relayer.chain().inclusion(anchored.head.size).await.unwrap().unwrap();
        assert_eq!(inclusion.signers, addresses(&[&keys[0], &keys[1]]), "the two honest validators signed");
    }
    assert_eq!(relayer.chain().first_mismatch(&heads.iter().map(|a| a.head.clone()).collect::<Vec<_>>()).await.unwrap(), None);

    // Each signature is an event in the log, for auditors.
    let attestations = emr_eventstore::EmrEventStore::<HeadAttestations>::new(
        source.test.backend.log.clone(),
        source.test.backend.phi_codec(),
        None,
        Default::default(),
    );
    let head = relayer.chain().head(heads[0].head.size, &heads[0].head.root, "file", heads[0].block);
    let recorded = attestations.load(&head.attestation_id()).await.unwrap();
    assert_eq!(recorded.state().signatures_for(&head).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_contract_refuses_one_validator_forged_replayed_or_altered_signatures() {
    let source = Source::anchored(100).await;
    let heads = source.heads().await;
    let anchored = &heads[0];
    let keys = [validator_key(1), validator_key(2), validator_key(3)];
    let validators = addresses(&keys.iter().collect::<Vec<_>>());
    let ethereum = Anvil::start(1);
    let polygon = Anvil::start(137);
    // Same deployer, same nonce: the same contract address on both chains, so only
    // the chain id tells their signatures apart.
    let (on_ethereum, _) = deploy(&ethereum, 1, &validators, 2, 1).await;
    let (on_polygon, _) = deploy(&polygon, 137, &validators, 2, 1).await;
    assert_eq!(on_ethereum.contract_address(), on_polygon.contract_address());
    let (other_contract, _) = deploy(&polygon, 137, &validators, 2, 1).await;

    let head = on_polygon.head(anchored.head.size, &anchored.head.root, "file", anchored.block);
    let sign = |key: &ValidatorKey, chain: &BridgeChain, head| key.sign(chain.head_digest(head).unwrap()).unwrap();
    let ordered = |mut signed: Vec<(String, String)>| {
        signed.sort();
        signed.into_iter().map(|(_, signature)| signature).collect::<Vec<_>>()
    };
    let honest = |chain: &BridgeChain, head| ordered(keys[..2].iter().map(|k| (k.address(), sign(k, chain, head))).collect());
    let refused = |result: Result<emr_evm::bridge::Sent, EvmError>, reason: &str| match result {
        Err(EvmError::Refused(why)) => assert!(why.contains(reason), "refused for {why}, expected {reason}"),
        other => panic!("expected a refusal ({reason}), got {other:?}"),
    };

    refused(on_polygon.submit(&head, &[], &[sign(&keys[0], &on_polygon, &head)]).await, "NotEnoughSignatures");
    let stranger = validator_key(99);
    refused(
        on_polygon
            .submit(
                &head,
                &[],
                &ordered(vec![
                    (keys[0].address(), sign(&keys[0], &on_polygon, &head)),
                    (stranger.address(), sign(&stranger, &on_polygon, &head)),
                ]),
            )
            .await,
        "NotValidator",
    );
    let once = sign(&keys[0], &on_polygon, &head);
    refused(on_polygon.submit(&head, &[], &[once.clone(), once]).await, "SignersNotAscending");
    let ethereum_head = on_ethereum.head(head.tree_size, &head.root, "file", head.source_block);
    refused(on_polygon.submit(&head, &[], &honest(&on_ethereum, &ethereum_head)).await, "NotValidator");
    let other_head = other_contract.head(head.tree_size, &head.root, "file", head.source_block);
    refused(on_polygon.submit(&head, &[], &honest(&other_contract, &other_head)).await, "NotValidator");
    let mut altered = head.clone();
    altered.root = "ee".repeat(32);
    refused(on_polygon.submit(&altered, &[], &honest(&on_polygon, &head)).await, "NotValidator");
    let mut moved = head.clone();
    moved.source_block += 1;
    refused(on_polygon.submit(&moved, &[], &honest(&on_polygon, &head)).await, "NotValidator");
    assert_eq!(on_polygon.latest_size().await.unwrap(), 0, "nothing was accepted");

    let sent = on_polygon.submit(&head, &[], &honest(&on_polygon, &head)).await.unwrap();
    assert!(sent.gas_used > 0);
    assert_eq!(on_polygon.root_of(head.tree_size).await.unwrap(), Some(root_bytes(anchored)));
    assert_eq!(on_ethereum.latest_size().await.unwrap(), 0, "the head went to the chain it was signed for only");
    let replay = on_polygon.submit(&head, &[], &honest(&on_polygon, &head)).await.unwrap();
    assert_eq!(
        on_polygon.inclusion(head.tree_size).await.unwrap().unwrap().transaction,
        sent.transaction,
        "the same head again changes nothing ({replay:?})"
    );
    refused(on_polygon.submit(&altered, &[], &honest(&on_polygon, &altered)).await, "RootAlreadyAnchored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn even_every_validator_together_cannot_fork_history_already_on_chain() {
    let source = Source::anchored(4).await;
    let heads = source.heads().await;
    let node = Anvil::start(31337);
    let keys = [validator_key(1), validator_key(2), validator_key(3)];
    let (chain, _) = deploy(&node, 31337, &addresses(&keys.iter().collect::<Vec<_>>()), 2, 1).await;
    let sign_all = |head| {
        let mut signed: Vec<(String, String)> =
            keys.iter().map(|k| (k.address(), k.sign(chain.head_digest(head).unwrap()).unwrap())).collect();
        signed.sort();
        signed.into_iter().map(|(_, s)| s).collect::<Vec<_>>()
    };
    let first = chain.head(heads[0].head.size, &heads[0].head.root, "file", heads[0].block);
    chain.submit(&first, &[], &sign_all(&first)).await.unwrap();

    // All three validators sign a second head whose tree rewrites the first one.
    let mut tree = emr_bridge::LogTree::new(source.test.backend.log.clone());
    tree.extend_to(heads[1].head.last_position).await.unwrap();
    let honest_proof = tree.consistency_proof(heads[0].head.size, heads[1].head.size).unwrap();
    let forged = chain.head(heads[1].head.size, &"ab".repeat(32), "file", heads[1].block);
    match chain.submit(&forged, &honest_proof, &sign_all(&forged)).await {
        Err(EvmError::Refused(why)) => assert!(why.contains("InconsistentHead"), "{why}"),
        other => panic!("a head that does not extend the chain's must be refused: {other:?}"),
    }
    let second = chain.head(heads[1].head.size, &heads[1].head.root, "file", heads[1].block);
    match chain.submit(&second, &[], &sign_all(&second)).await {
        Err(EvmError::Refused(why)) => assert!(why.contains("InconsistentHead"), "a missing proof is refused too: {why}"),
        other => panic!("{other:?}"),
    }
    chain.submit(&second, &honest_proof, &sign_all(&second)).await.unwrap();
    assert_eq!(chain.latest_size().await.unwrap(), heads[1].head.size);

    // The contract's consistency check agrees with ours on every pair of sizes.
    let leaves: Vec<_> = (0..13).map(|i| emr_anchor::merkle::leaf_hash(format!("leaf {i}").as_bytes())).collect();
    for n in 1..=leaves.len() {
        for m in 1..=n {
            let proof = emr_anchor::merkle::consistency_proof(&leaves[..n], m).unwrap();
            let (first_root, second_root) = (emr_anchor::merkle::root(&leaves[..m]), emr_anchor::merkle::root(&leaves[..n]));
            assert!(chain.extends(m as u64, n as u64, first_root, second_root, &proof).await.unwrap(), "{m} → {n}");
            if m < n {
                let wrong = emr_anchor::merkle::root(&leaves[1..=m]);
                assert!(!chain.extends(m as u64, n as u64, wrong, second_root, &proof).await.unwrap(), "rewritten {m} → {n}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_validator_set_rotates_only_with_k_signatures_of_the_current_set() {
    let source = Source::anchored(100).await;
    let heads = source.heads().await;
    let node = Anvil::start(56);
    let old = [validator_key(1), validator_key(2), validator_key(3)];
    let new = [validator_key(4), validator_key(5), validator_key(6), validator_key(7)];
    let (chain, _) = deploy(&node, 56, &addresses(&old.iter().collect::<Vec<_>>()), 2, 1).await;
    let next = addresses(&new.iter().collect::<Vec<_>>());
    let approve = |keys: &[&ValidatorKey], epoch| {
        let digest = chain.validator_set_digest(&next, 3, epoch).unwrap();
        let mut signed: Vec<(String, String)> = keys.iter().map(|k| (k.address(), k.sign(digest).unwrap())).collect();
        signed.sort();
        signed.into_iter().map(|(_, s)| s).collect::<Vec<_>>()
    };
    assert!(matches!(chain.rotate(&next, 3, &approve(&[&old[0]], 1)).await, Err(EvmError::Refused(_))), "one of three cannot rotate");
    assert!(
        matches!(chain.rotate(&next, 3, &approve(&[&new[0], &new[1]], 1)).await, Err(EvmError::Refused(_))),
        "the new set cannot appoint itself"
    );
    assert!(
        matches!(chain.rotate(&next, 3, &approve(&[&old[0], &old[1]], 2)).await, Err(EvmError::Refused(_))),
        "a signature for another epoch does not count"
    );
    chain.rotate(&next, 3, &approve(&[&old[0], &old[2]], 1)).await.unwrap();
    let set = chain.validator_set().await.unwrap();
    assert_eq!((set.validators, set.threshold, set.epoch), (next.clone(), 3, 1));
    assert!(
        matches!(chain.rotate(&next, 3, &approve(&[&old[0], &old[2]], 1)).await, Err(EvmError::Refused(_))),
        "an approval is not replayed"
    );

    // The old validators no longer count; three of the new ones do.
    let head = chain.head(heads[0].head.size, &heads[0].head.root, "file", heads[0].block);
    let sign = |keys: &[&ValidatorKey]| {
        let mut signed: Vec<(String, String)> =
            keys.iter().map(|k| (k.address(), k.sign(chain.head_digest(&head).unwrap()).unwrap())).collect();
        signed.sort();
        signed.into_iter().map(|(_, s)| s).collect::<Vec<_>>()
    };
    assert!(matches!(chain.submit(&head, &[], &sign(&[&old[0], &old[1], &old[2]])).await, Err(EvmError::Refused(_))));
    assert!(matches!(chain.submit(&head, &[], &sign(&[&new[0], &new[1]])).await, Err(EvmError::Refused(_))), "the new threshold is 3");
    chain.submit(&head, &[], &sign(&[&new[0], &new[1], &new[3]])).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_that_drops_a_bridged_head_is_detected_and_the_head_submitted_again() {
    use emr_tests::mariadb::TestDatabase;
    let source = Source::anchored(100).await;
    let heads = source.heads().await;
    let node = Anvil::start(137);
    let keys = [validator_key(1), validator_key(2), validator_key(3)];
    let (chain, read_only) = deploy(&node, 137, &addresses(&keys.iter().collect::<Vec<_>>()), 2, 3).await;
    let db = TestDatabase::fresh().await;
    let relayer = source.relayer(chain, Some(db.db.clone()));
    for key in [validator_key(1), validator_key(2)] {
        source.validator(key, vec![BridgeChain::connect(read_only.config().clone(), None).await.unwrap()]).await.step().await.unwrap();
    }

    let before = node.snapshot().await;
    let report = relayer.step().await.unwrap();
    assert_eq!(report.submitted, vec![heads[0].head.size]);
    let lost = relayer.chain().inclusion(heads[0].head.size).await.unwrap().unwrap();
    node.revert(before).await;
    assert_eq!(relayer.chain().inclusion(heads[0].head.size).await.unwrap(), None, "the reorg took the transfer away");
    // The relayer's account moved on in the new branch, so its resubmission is a
    // new transaction (an identical one would have the same hash).
    node.self_transfer("0x70997970c51812dc3a010c7d01b50e0d17dc79c8").await;

    let report = relayer.step().await.unwrap();
    assert_eq!(report.dropped, vec![heads[0].head.size], "the relayer noticed: {report:?}");
    assert_eq!(report.submitted, vec![heads[0].head.size], "and submitted the head again");
    relay_until_confirmed(&relayer, &heads).await;
    let now = relayer.chain().inclusion(heads[0].head.size).await.unwrap().unwrap();
    assert_eq!(relayer.chain().root_of(heads[0].head.size).await.unwrap(), Some(root_bytes(&heads[0])));

    let rows = emr_projections::anchors::list(&db.db, 100).await.unwrap();
    let row = |tx: &str| rows.iter().find(|r| r.transaction_hash == tx).unwrap_or_else(|| panic!("no row for {tx}: {rows:?}"));
    assert_eq!(row(&lost.transaction).status, "dropped");
    assert_ne!(lost.transaction, now.transaction);
    assert_eq!(row(&now.transaction).status, "confirmed");
    assert!(rows.iter().all(|r| r.ledger == relayer.chain().ledger_name() && r.tree_size == heads[0].head.size));
    let holding: Vec<String> =
        emr_projections::anchors::at_size(&db.db, heads[0].head.size).await.unwrap().into_iter().map(|r| r.transaction_hash).collect();
    assert_eq!(holding, vec![now.transaction.clone()], "a receipt names the transaction the chain holds, not the dropped one");
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_never_signs_a_head_the_event_log_does_not_give_or_an_untrusted_node_signed() {
    let source = Source::anchored(100).await;
    let heads = source.heads().await;
    let node = Anvil::start(137);
    let keys = [validator_key(1), validator_key(2), validator_key(3)];
    let (_, chain) = deploy(&node, 137, &addresses(&keys.iter().collect::<Vec<_>>()), 2, 1).await;

    // The anchor node itself (its key) writes a head with another root to a ledger.
    let forged_dir = tempfile::tempdir().unwrap();
    let forged_ledger = Arc::new(FileLedger::open(forged_dir.path()).unwrap());
    let mut forged = heads[0].head.clone();
    forged.root = "cd".repeat(32);
    NodeKey::load_or_create(&source.dir.path().join("node.key")).unwrap().sign(&mut forged);
    forged_ledger.anchor(&forged).await.unwrap();
    let validator = Validator::open(
        &source.test.backend,
        forged_ledger,
        validator_key(1),
        vec![BridgeChain::connect(chain.config().clone(), None).await.unwrap()],
        Vec::new(),
        DomainServices::default(),
    )
    .await
    .unwrap();
    match validator.step().await {
        Err(BridgeError::RootMismatch { size, derived, .. }) => {
            assert_eq!(size, forged.size);
            assert_eq!(derived, heads[0].head.root, "the validator says what the log gives");
        }
        other => panic!("expected a root mismatch, got {other:?}"),
    }

    let untrusting = Validator::open(
        &source.test.backend,
        source.ledger.clone(),
        validator_key(2),
        vec![chain],
        vec!["00".repeat(32)],
        DomainServices::default(),
    )
    .await
    .unwrap();
    assert!(matches!(untrusting.step().await, Err(BridgeError::UntrustedHead { .. })));

    let events = emr_eventstore::LogReader::new(source.test.backend.log.clone()).read(1, 100_000).await.unwrap();
    assert!(events.iter().all(|e| e.key.aggregate_type() != "bridge_attestation"), "no signature was recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_verifies_against_the_target_chain_with_nothing_but_its_rpc() {
    let source = Source::anchored(5).await;
    let heads = source.heads().await;
    let node = Anvil::start(137);
    let keys = [validator_key(1), validator_key(2), validator_key(3)];
    let (chain, read_only) = deploy(&node, 137, &addresses(&keys.iter().collect::<Vec<_>>()), 2, 2).await;
    let contract = chain.contract_address();
    let relayer = source.relayer(chain, None);
    for key in [validator_key(2), validator_key(3)] {
        source.validator(key, vec![BridgeChain::connect(read_only.config().clone(), None).await.unwrap()]).await.step().await.unwrap();
    }
    relay_until_confirmed(&relayer, &heads).await;

    let events = emr_eventstore::LogReader::new(source.test.backend.log.clone()).read(1, 100).await.unwrap();
    let event = &events[events.len() / 2];
    let receipt = emr_anchor::receipt(source.ledger.as_ref(), source.dir.path(), event).await.unwrap().unwrap();
    let transaction = relayer.chain().inclusion(receipt.tree_size).await.unwrap().unwrap().transaction;
    let files = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = files.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../adapters/evm/contracts/verify-receipt.mjs");
    let verify = |receipt: &std::path::Path, event: &std::path::Path| {
        let output = std::process::Command::new("node")
            .arg(&script)
            .args(["--rpc", &node.url(), "--contract", &contract, "--receipt"])
            .arg(receipt)
            .arg("--event")
            .arg(event)
            .args(["--transaction", &transaction, "--confirmations", "2"])
            .output()
            .unwrap();
        (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let receipt_file = write("receipt.json", &serde_json::to_vec(&receipt).unwrap());
    let event_file = write("event.bin", &event.canonical_bytes());
    let (ok, report) = verify(&receipt_file, &event_file);
    assert!(ok, "{report}");
    assert!(report.contains("\"root-on-chain\""), "{report}");

    let other_event = write("other.bin", &events[0].canonical_bytes());
    assert!(!verify(&receipt_file, &other_event).0, "another event's bytes do not verify");
    let mut forged = receipt.clone();
    forged.root = "ab".repeat(32);
    let forged_file = write("forged.json", &serde_json::to_vec(&forged).unwrap());
    let (ok, report) = verify(&forged_file, &event_file);
    assert!(!ok, "a receipt with a root the chain does not hold fails: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_validator_set_bridges_every_head_to_ethereum_polygon_and_bsc() {
    let source = Source::anchored(8).await;
    let heads = source.heads().await;
    let keys = [validator_key(1), validator_key(2), validator_key(3)];
    let validators = addresses(&keys.iter().collect::<Vec<_>>());
    let nodes: Vec<(u64, Anvil)> = [1u64, 137, 56].into_iter().map(|id| (id, Anvil::start(id))).collect();
    let mut targets = Vec::new();
    for (chain_id, node) in &nodes {
        targets.push(deploy(node, *chain_id, &validators, 2, 2).await);
    }
    for key in [validator_key(1), validator_key(3)] {
        let mut chains = Vec::new();
        for (_, read_only) in &targets {
            chains.push(BridgeChain::connect(read_only.config().clone(), None).await.unwrap());
        }
        let validator = source.validator(key, chains).await;
        assert_eq!(validator.step().await.unwrap(), heads.len() * 3, "each head signed once per chain");
    }
    for (relay_chain, _) in targets {
        let chain_id = relay_chain.chain_id();
        let relayer = source.relayer(relay_chain, None);
        relay_until_confirmed(&relayer, &heads).await;
        let expected: Vec<_> = heads.iter().map(|a| a.head.clone()).collect();
        assert_eq!(relayer.chain().latest_size().await.unwrap(), expected.last().unwrap().size, "chain {chain_id}");
        assert_eq!(relayer.chain().first_mismatch(&expected).await.unwrap(), None, "chain {chain_id}");
    }
}

/// The log as it is, counting the subscriptions opened on it.
struct CountingSubscriptions {
    log: Arc<dyn emr_eventstore::EventLog>,
    opened: std::sync::atomic::AtomicUsize,
}

impl emr_eventstore::EventLog for CountingSubscriptions {
    fn append(&self, request: emr_eventstore::CommitRequest) -> BoxFuture<'_, Result<emr_eventstore::Appended, LogError>> {
        self.log.append(request)
    }

    fn append_together(
        &self,
        requests: Vec<emr_eventstore::CommitRequest>,
    ) -> BoxFuture<'_, Result<Vec<emr_eventstore::Appended>, LogError>> {
        self.log.append_together(requests)
    }

    fn read_aggregate<'a>(
        &'a self,
        key: &'a emr_eventstore::AggregateKey,
        after_position: u64,
    ) -> BoxFuture<'a, Result<Vec<emr_eventstore::StoredCommit>, LogError>> {
        self.log.read_aggregate(key, after_position)
    }

    fn read_from(&self, from_position: u64, limit: usize) -> BoxFuture<'_, Result<Vec<emr_eventstore::StoredCommit>, LogError>> {
        self.log.read_from(from_position, limit)
    }

    fn head(&self) -> BoxFuture<'_, Result<u64, LogError>> {
        self.log.head()
    }

    fn subscribe(
        &self,
        from_position: u64,
    ) -> BoxFuture<'_, Result<futures::stream::BoxStream<'static, Result<emr_eventstore::StoredCommit, LogError>>, LogError>> {
        self.opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.log.subscribe(from_position)
    }
}

#[tokio::test]
async fn a_log_tree_extended_head_by_head_reads_the_log_once_and_gives_the_anchored_roots() {
    let test = backends::sqlite().await;
    history::write(&emr_tests::backends::clinic(&test.backend), 6).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(FileLedger::open(dir.path()).unwrap());
    let config = AnchorConfig { batch_commits: 3, ..AnchorConfig::default() };
    let heads = AnchorWorker::open(test.backend.log.clone(), ledger.clone(), dir.path(), config).await.unwrap().catch_up().await.unwrap();
    assert!(heads.len() >= 5, "{} heads", heads.len());

    let counting = Arc::new(CountingSubscriptions { log: test.backend.log.clone(), opened: Default::default() });
    let mut tree = emr_bridge::LogTree::new(counting.clone());
    for anchored in &heads {
        tree.extend_to(anchored.head.last_position).await.unwrap();
        assert_eq!(tree.size(), anchored.head.size, "the tree stops at the head's last position");
        assert_eq!(tree.root(anchored.head.size), Some(anchored.head.root_hash().unwrap()));
    }
    assert_eq!(counting.opened.load(std::sync::atomic::Ordering::Relaxed), 1, "one subscription, read on from head to head");
}
