//! `emr bridge` end to end on a real local EVM node (anvil): the contract deployed
//! by the CLI, two validator processes with their own keys, a relayer process,
//! and `emr audit verify` checking the roots on the target chain.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use emr_anchor::{AnchorConfig, AnchorWorker, FileLedger};
use emr_evm::bridge::{BridgeChain, ChainConfig, ValidatorKey};
use emr_tests::anvil::{Anvil, DEV_KEYS};
use emr_tests::{backends, history};

/// Test-only validator keys (small, well-known scalars: never use elsewhere).
const VALIDATORS: [&str; 3] = [
    "0x00000000000000000000000000000000000000000000000000000000c11e0001",
    "0x00000000000000000000000000000000000000000000000000000000c11e0002",
    "0x00000000000000000000000000000000000000000000000000000000c11e0003",
];

fn emr(config: &Path, args: &[&str], key: Option<(&str, &str)>) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_emr"));
    command.arg("--config").arg(config).args(args).env("RUST_LOG", "warn").env("EMR_EVM_PRIVATE_KEY", DEV_KEYS[0]);
    if let Some((variable, value)) = key {
        command.env(variable, value);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.success(), format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)))
}

fn write_config(dir: &Path, data_dir: &Path, node: &Anvil, contract: &str) -> std::path::PathBuf {
    let path = dir.join(format!("emr-{contract}.toml"));
    let text = format!(
        "[store]\ndata_dir = \"{}\"\n\n[[bridge.chains]]\nname = \"polygon\"\nurl = \"{}\"\nchain_id = 137\ncontract = \"{contract}\"\nconfirmations = 1\n",
        data_dir.display(),
        node.url()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_validator_processes_and_a_relayer_bridge_every_head_and_audit_verify_checks_the_chain() {
    let store = backends::sqlite().await;
    let data_dir = store.storage_dir().to_owned();
    history::write(&backends::clinic(&store.backend), 2).await;
    let audit_dir = data_dir.join("audit");
    let ledger = Arc::new(FileLedger::open(&audit_dir).unwrap());
    let config = AnchorConfig { batch_commits: 6, ..AnchorConfig::default() };
    let heads = AnchorWorker::open(store.backend.log.clone(), ledger, &audit_dir, config).await.unwrap().catch_up().await.unwrap();
    let last = heads.last().unwrap().head.size;

    let node = Anvil::start(137);
    let addresses: Vec<String> = VALIDATORS.iter().map(|k| ValidatorKey::parse(k).unwrap().address()).collect();
    let files = tempfile::tempdir().unwrap();
    let bootstrap = write_config(files.path(), &data_dir, &node, "0x0000000000000000000000000000000000000000");
    let (ok, contract) =
        emr(&bootstrap, &["bridge", "deploy", "--url", &node.url(), "--validators", &addresses.join(","), "--threshold", "2"], None);
    assert!(ok, "{contract}");
    let contract = contract.trim().to_owned();
    let config = write_config(files.path(), &data_dir, &node, &contract);

    let (ok, output) = emr(&config, &["bridge", "relay", "--once"], Some(("EMR_BRIDGE_RELAYER_KEY", DEV_KEYS[1])));
    assert!(ok && output.contains(&format!("\"waiting_for_signatures\":{}", heads[0].head.size)), "no signatures yet: {output}");
    for key in &VALIDATORS[..2] {
        let (ok, output) = emr(&config, &["bridge", "validator", "--once"], Some(("EMR_BRIDGE_VALIDATOR_KEY", key)));
        assert!(ok && output.contains(&format!("\"signed\":{}", heads.len())), "{output}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let chain_config = ChainConfig {
        name: "polygon".into(),
        url: node.url(),
        chain_id: 137,
        contract: contract.clone(),
        confirmations: 1,
        max_fee_per_gas: None,
        max_priority_fee_per_gas: None,
    };
    let chain = BridgeChain::connect(chain_config.clone(), None).await.unwrap();
    loop {
        let (ok, output) = emr(&config, &["bridge", "relay", "--once"], Some(("EMR_BRIDGE_RELAYER_KEY", DEV_KEYS[1])));
        assert!(ok, "{output}");
        let report: serde_json::Value = serde_json::from_str(output.lines().next().unwrap()).unwrap();
        let confirmed = report["report"]["confirmed"].as_array().unwrap().iter().any(|size| size.as_u64() == Some(last));
        if chain.latest_size().await.unwrap() == last && confirmed {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the relayer did not bridge every head: {output}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    for anchored in &heads {
        assert_eq!(chain.root_of(anchored.head.size).await.unwrap(), anchored.head.root_hash());
    }
    let (ok, report) = emr(&config, &["audit", "verify"], None);
    assert!(ok, "{report}");

    // A second contract whose validators (all three, colluding) accepted another
    // root for the first head: audit verify names the chain.
    let (ok, rogue) =
        emr(&bootstrap, &["bridge", "deploy", "--url", &node.url(), "--validators", &addresses.join(","), "--threshold", "2"], None);
    assert!(ok, "{rogue}");
    let rogue_config = ChainConfig { contract: rogue.trim().to_owned(), ..chain_config };
    let rogue_chain = BridgeChain::connect(rogue_config, Some(DEV_KEYS[1])).await.unwrap();
    let forged = rogue_chain.head(heads[0].head.size, &"ab".repeat(32), "file", heads[0].block);
    let mut signed: Vec<(String, String)> = VALIDATORS[..2]
        .iter()
        .map(|k| {
            let key = ValidatorKey::parse(k).unwrap();
            (key.address(), key.sign(rogue_chain.head_digest(&forged).unwrap()).unwrap())
        })
        .collect();
    signed.sort();
    rogue_chain.submit(&forged, &[], &signed.into_iter().map(|(_, s)| s).collect::<Vec<_>>()).await.unwrap();
    let (ok, report) = emr(&write_config(files.path(), &data_dir, &node, rogue.trim()), &["audit", "verify"], None);
    assert!(!ok && report.contains("chain-mismatch") && report.contains("polygon"), "{report}");
}
