//! The Fabric Gateway client against a gateway-side harness that checks what a
//! peer and an orderer would (membership, low-S signatures, transaction ids, one
//! use per id, MVCC) and runs the real chaincode logic: anchors round-trip from
//! the client through the harness and the anchor contract into the world state,
//! and `emr audit verify` checks the log against heads read back from Fabric.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use emr_anchor::{AnchorConfig, AnchorWorker, Ledger, NodeKey, TreeHead, verify};
use emr_chaincode::fabric::gateway::gateway_client::GatewayClient;
use emr_chaincode::fabric::gateway::{EndorseRequest, SubmitRequest};
use emr_fabric::identity::high_s_twin;
use emr_fabric::{FabricGateway, FabricLedger, GatewayEndpoint, GatewayError, Identity, Signer, Target, propose};
use emr_tests::fabric_gateway::{CHAINCODE, CHANNEL, GatewayHarness};
use emr_tests::{backends, history};

struct Member {
    identity: Identity,
    signer: Signer,
}

fn member(msp_id: &str, name: &str) -> Member {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let certificate = format!("-----BEGIN CERTIFICATE-----\n{name}@{msp_id}\n-----END CERTIFICATE-----\n");
    Member { identity: Identity::new(msp_id, certificate.into_bytes()).unwrap(), signer: Signer::from_pkcs8_der(pkcs8.as_ref()).unwrap() }
}

fn target() -> Target {
    Target { channel: CHANNEL.into(), chaincode: CHAINCODE.into() }
}

async fn network() -> (GatewayHarness, String, Member) {
    let harness = GatewayHarness::default();
    let worker = member("Org1MSP", "anchor-worker");
    harness.enrol(worker.identity.serialized(), worker.signer.public_key_sec1());
    let url = harness.serve().await;
    (harness, url, worker)
}

async fn gateway(url: &str, member: &Member) -> FabricGateway {
    let endpoint =
        GatewayEndpoint { url: url.to_owned(), tls_ca_pem: None, tls_server_name: None, timeout: std::time::Duration::from_secs(10) };
    FabricGateway::connect(&endpoint, member.identity.clone(), member.signer.clone(), target()).await.unwrap()
}

fn signed_head(key: &NodeKey, size: u64, root_byte: u8) -> TreeHead {
    let mut head = TreeHead {
        size,
        root: format!("{root_byte:02x}").repeat(32),
        first_position: 1,
        last_position: size,
        signed_at: chrono::Utc::now(),
        key: String::new(),
        signature: String::new(),
    };
    key.sign(&mut head);
    head
}

#[tokio::test]
async fn a_head_submitted_through_the_gateway_commits_in_a_block_and_reads_back() {
    let (harness, url, worker) = network().await;
    let ledger = FabricLedger::new(gateway(&url, &worker).await);
    let dir = tempfile::tempdir().unwrap();
    let key = NodeKey::load_or_create(&dir.path().join("node.key")).unwrap();

    let first = ledger.anchor(&signed_head(&key, 10, 0xab)).await.unwrap();
    let second = ledger.anchor(&signed_head(&key, 20, 0xcd)).await.unwrap();
    assert_eq!((first.block, second.block), (1, 2), "one block per transaction");
    assert_eq!(first.transaction_id.len(), 64);
    let anchored = ledger.anchored().await.unwrap();
    assert_eq!(
        anchored.iter().map(|a| (a.head.size, a.transaction_id.clone())).collect::<Vec<_>>(),
        vec![(10, first.transaction_id), (20, second.transaction_id)]
    );
    assert_eq!(anchored.iter().map(|a| a.block).collect::<Vec<_>>(), vec![1, 2], "blocks from the commit statuses");
    // Another process (an auditor, a restarted relayer) learns the blocks from qscc.
    let fresh = FabricLedger::new(gateway(&url, &worker).await).anchored().await.unwrap();
    assert_eq!(fresh.iter().map(|a| a.block).collect::<Vec<_>>(), vec![1, 2], "blocks from GetBlockByTxID");
    assert_eq!(harness.blocks(), 2, "evaluations cut no block");
    assert!(harness.refusals().is_empty(), "{:?}", harness.refusals());
}

#[tokio::test]
async fn a_contract_refusal_comes_back_as_an_endorsement_error_and_commits_nothing() {
    let (harness, url, worker) = network().await;
    let ledger = FabricLedger::new(gateway(&url, &worker).await);
    let dir = tempfile::tempdir().unwrap();
    let key = NodeKey::load_or_create(&dir.path().join("node.key")).unwrap();
    ledger.anchor(&signed_head(&key, 10, 0xab)).await.unwrap();
    let refused = ledger.anchor(&signed_head(&key, 10, 0xee)).await.unwrap_err();
    assert!(refused.to_string().contains("chaincode response 409"), "{refused}");
    assert_eq!(harness.blocks(), 1);
    assert_eq!(ledger.anchored().await.unwrap()[0].head.root, "ab".repeat(32));
}

#[tokio::test]
async fn the_harness_refuses_what_fabric_refuses_high_s_wrong_transaction_ids_strangers_and_unsigned_submits() {
    let (harness, url, worker) = network().await;
    let channel = tonic::transport::Endpoint::from_shared(url.clone()).unwrap().connect().await.unwrap();
    let mut client = GatewayClient::new(channel);
    let now = chrono::Utc::now();
    let endorse = |proposed: emr_fabric::Proposed| EndorseRequest {
        transaction_id: proposed.transaction_id,
        channel_id: CHANNEL.into(),
        proposed_transaction: Some(proposed.signed),
        endorsing_organizations: Vec::new(),
    };

    let mut high_s = propose(&worker.identity, &worker.signer, &target(), "LatestHead", &[], now);
    high_s.signed.signature = high_s_twin(&high_s.signed.signature).unwrap();
    let refused = client.endorse(endorse(high_s)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("low-S"));

    let mut wrong_id = propose(&worker.identity, &worker.signer, &target(), "LatestHead", &[], now);
    wrong_id.transaction_id = "00".repeat(32);
    let refused = client.endorse(endorse(wrong_id)).await.unwrap_err();
    assert!(refused.message().contains("BAD_PROPOSAL_TXID"), "{refused:?}");

    let stranger = member("Org9MSP", "mallory");
    let refused =
        client.endorse(endorse(propose(&stranger.identity, &stranger.signer, &target(), "LatestHead", &[], now))).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    let impostor = Member { identity: worker.identity.clone(), signer: member("Org1MSP", "other-key").signer };
    let refused =
        client.endorse(endorse(propose(&impostor.identity, &impostor.signer, &target(), "LatestHead", &[], now))).await.unwrap_err();
    assert!(refused.message().contains("does not verify"), "another key under an enrolled certificate: {refused:?}");

    // Endorsed, then submitted unsigned: the orderer would refuse it.
    let dir = tempfile::tempdir().unwrap();
    let key = NodeKey::load_or_create(&dir.path().join("node.key")).unwrap();
    let head = serde_json::to_vec(&signed_head(&key, 5, 0x11)).unwrap();
    let proposed = propose(&worker.identity, &worker.signer, &target(), "RecordHead", &[head], now);
    let transaction_id = proposed.transaction_id.clone();
    let prepared = client.endorse(endorse(proposed.clone())).await.unwrap().into_inner().prepared_transaction.unwrap();
    let refused = client
        .submit(SubmitRequest { transaction_id, channel_id: CHANNEL.into(), prepared_transaction: Some(prepared) })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    let replayed = client.endorse(endorse(proposed)).await.unwrap_err();
    assert!(replayed.message().contains("DUPLICATE_TXID"), "{replayed:?}");
    assert_eq!(harness.blocks(), 0, "nothing was committed");

    // The client, used properly, gets through to the contract (which has no head yet).
    let evaluated = gateway(&url, &worker).await.evaluate("LatestHead", &[]).await;
    assert!(
        matches!(&evaluated, Err(GatewayError::Status { status, .. }) if status.message().contains("chaincode response 404")),
        "{evaluated:?}"
    );
}

#[tokio::test]
async fn the_client_reaches_a_gateway_over_tls_only_when_it_trusts_the_peers_certificate() {
    let harness = GatewayHarness::default();
    let worker = member("Org1MSP", "anchor-worker");
    harness.enrol(worker.identity.serialized(), worker.signer.public_key_sec1());
    let peer = rcgen::generate_simple_self_signed(vec!["peer0.org1.example.com".to_owned()]).unwrap();
    let url = harness.serve_tls(&peer.cert.pem(), &peer.signing_key.serialize_pem()).await;
    let endpoint = |ca: Option<Vec<u8>>| GatewayEndpoint {
        url: url.clone(),
        tls_ca_pem: ca,
        tls_server_name: Some("peer0.org1.example.com".into()),
        timeout: std::time::Duration::from_secs(10),
    };

    let trusted =
        FabricGateway::connect(&endpoint(Some(peer.cert.pem().into_bytes())), worker.identity.clone(), worker.signer.clone(), target())
            .await
            .unwrap();
    let answer = trusted.evaluate("LatestHead", &[]).await.unwrap_err();
    assert!(answer.to_string().contains("chaincode response 404"), "reached the contract over TLS: {answer}");

    let stranger = rcgen::generate_simple_self_signed(vec!["peer0.org1.example.com".to_owned()]).unwrap();
    let untrusted = async {
        let gateway = FabricGateway::connect(
            &endpoint(Some(stranger.cert.pem().into_bytes())),
            worker.identity.clone(),
            worker.signer.clone(),
            target(),
        )
        .await?;
        gateway.evaluate("LatestHead", &[]).await
    }
    .await
    .unwrap_err();
    assert!(
        !untrusted.to_string().contains("chaincode response"),
        "a peer whose certificate we do not trust is never reached: {untrusted}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_checks_the_log_against_heads_anchored_on_fabric() {
    let (harness, url, worker) = network().await;
    let test = backends::sqlite().await;
    let clinic = backends::clinic(&test.backend);
    history::write(&clinic, 3).await;
    let ledger = Arc::new(FabricLedger::new(gateway(&url, &worker).await));
    let dir = tempfile::tempdir().unwrap();
    let config = AnchorConfig { batch_commits: 10, ..AnchorConfig::default() };
    let anchor = AnchorWorker::open(test.backend.log.clone(), ledger.clone(), dir.path(), config).await.unwrap();
    let heads = anchor.catch_up().await.unwrap();
    assert!(heads.len() > 1, "several heads: {}", heads.len());
    assert!(heads.iter().all(|h| h.block > 0), "each head committed in a block");

    let report = verify(test.backend.log.clone(), ledger.as_ref(), dir.path(), &[anchor.public_key()]).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.tree_heads, heads.len());
    assert_eq!(harness.blocks() as usize, heads.len());

    // Heads from a signer the auditor does not trust do not verify.
    let untrusted = verify(test.backend.log.clone(), ledger.as_ref(), dir.path(), &["ab".repeat(32)]).await.unwrap();
    assert!(!untrusted.ok && untrusted.failure.unwrap().kind == "untrusted-key");
}

#[test]
fn the_client_certificates_expiry_is_read_from_its_not_after() {
    let mut params = rcgen::CertificateParams::new(vec!["client.org1.example.com".to_owned()]).unwrap();
    params.not_after = rcgen::date_time_ymd(2031, 1, 2);
    let certificate = params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap();
    let identity = emr_fabric::Identity::new("Org1MSP", certificate.pem().into_bytes()).unwrap();
    let expected = chrono::NaiveDate::from_ymd_opt(2031, 1, 2).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
    assert_eq!(identity.expires_at(), Some(expected));
    let not_x509 =
        emr_fabric::Identity::new("Org1MSP", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec()).unwrap();
    assert_eq!(not_x509.expires_at(), None, "an unreadable certificate has no expiry to report, rather than a wrong one");
}
