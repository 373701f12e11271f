//! `emr audit verify` with `[audit.fabric]` configured checks the log against the
//! heads read back from Fabric, through the Gateway client, exactly as it does
//! against the embedded ledger. The Gateway is the gateway-side harness
//! (`emr_tests::fabric_gateway`), which verifies every signature and runs the
//! real anchor contract.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::Arc;

use base64::Engine;
use emr_anchor::{AnchorConfig, AnchorWorker};
use emr_fabric::{FabricGateway, FabricLedger, GatewayEndpoint, Identity, Signer, Target};
use emr_tests::fabric_gateway::{CHAINCODE, CHANNEL, GatewayHarness};
use emr_tests::{backends, history};

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

fn verify(data_dir: &std::path::Path, url: &str, files: &std::path::Path) -> (bool, serde_json::Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_emr"))
        .args(["audit", "verify"])
        .env("EMR__STORE__DATA_DIR", data_dir)
        .env("EMR__AUDIT__FABRIC__GATEWAY_URL", url)
        .env("EMR__AUDIT__FABRIC__MSP_ID", "Org1MSP")
        .env("EMR__AUDIT__FABRIC__CERTIFICATE_FILE", files.join("cert.pem"))
        .env("EMR__AUDIT__FABRIC__PRIVATE_KEY_FILE", files.join("key.pem"))
        .env("EMR__AUDIT__FABRIC__CHANNEL", CHANNEL)
        .env("EMR__AUDIT__FABRIC__CHAINCODE", CHAINCODE)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let report = serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
    (output.status.success(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_checks_the_log_against_heads_anchored_on_fabric() {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let certificate = "-----BEGIN CERTIFICATE-----\nanchor-worker@Org1MSP\n-----END CERTIFICATE-----\n";
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("cert.pem"), certificate).unwrap();
    std::fs::write(files.path().join("key.pem"), pem("PRIVATE KEY", pkcs8.as_ref())).unwrap();
    let identity = Identity::new("Org1MSP", certificate.as_bytes().to_vec()).unwrap();
    let signer = Signer::from_pkcs8_der(pkcs8.as_ref()).unwrap();
    let harness = GatewayHarness::default();
    harness.enrol(identity.serialized(), signer.public_key_sec1());
    let url = harness.serve().await;

    let store = backends::sqlite().await;
    let data_dir = store.storage_dir().to_owned();
    history::write(&backends::clinic(&store.backend), 2).await;
    let endpoint =
        GatewayEndpoint { url: url.clone(), tls_ca_pem: None, tls_server_name: None, timeout: std::time::Duration::from_secs(10) };
    let target = Target { channel: CHANNEL.into(), chaincode: CHAINCODE.into() };
    let ledger = Arc::new(FabricLedger::new(FabricGateway::connect(&endpoint, identity, signer, target).await.unwrap()));
    let config = AnchorConfig { batch_commits: 20, ..AnchorConfig::default() };
    let worker = AnchorWorker::open(store.backend.log.clone(), ledger, &data_dir.join("audit"), config).await.unwrap();
    let heads = worker.catch_up().await.unwrap();

    let (ok, report) = verify(&data_dir, &url, files.path());
    assert!(ok, "{report}");
    assert_eq!(report["tree_heads"].as_u64(), Some(heads.len() as u64));
    assert_eq!(report["latest_root"], serde_json::json!(heads.last().unwrap().head.root));

    // The leaf file no longer gives the roots on Fabric: verification fails.
    let leaves = std::fs::read_dir(data_dir.join("audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("leaves"))
        .unwrap();
    let mut bytes = std::fs::read(&leaves).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&leaves, bytes).unwrap();
    let (ok, report) = verify(&data_dir, &url, files.path());
    assert!(!ok, "{report}");
}
