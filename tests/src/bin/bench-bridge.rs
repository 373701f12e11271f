//! Bridge throughput on real local EVM nodes (anvil, one block every 200 ms): tree
//! heads bridged per minute (signed by every validator, relayed, confirmed) and
//! gas per head as the validator set grows (n = 3, 5, 7; k = n/2 + 1), beside
//! the single-key mirror (`MerkleAnchor`, one owner) measured in the same run.
//!
//! Run with: `cargo run --release -p emr-tests --bin bench-bridge -- [HEADS]` (default 30).
//! Writes `bench-bridge.json`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use emr_anchor::{AnchorConfig, AnchorWorker, FileLedger, Ledger};
use emr_bridge::{Relayer, Validator};
use emr_domain::DomainServices;
use emr_evm::EvmMirror;
use emr_evm::bridge::{BridgeChain, ChainConfig, ValidatorKey};
use emr_tests::anvil::{Anvil, DEV_KEYS};
use emr_tests::{backends, history};

emr_tests::shipped_allocator!();

struct Figures {
    validators: usize,
    threshold: usize,
    heads: usize,
    sign_seconds: f64,
    relay_seconds: f64,
    gas_per_head: f64,
}

#[tokio::main]
async fn main() {
    let wanted: usize = std::env::args().nth(1).map(|a| a.parse().expect("HEADS must be a number")).unwrap_or(30);
    let test = backends::sqlite().await;
    history::write(&backends::clinic(&test.backend), 2).await;
    let commits = usize::try_from(test.backend.log.head().await.unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(FileLedger::open(dir.path()).unwrap());
    let config = AnchorConfig { batch_commits: (commits / wanted).max(1), ..Default::default() };
    AnchorWorker::open(test.backend.log.clone(), ledger.clone(), dir.path(), config).await.unwrap().catch_up().await.unwrap();
    let heads = ledger.anchored().await.unwrap();

    // Baseline: one owner anchors each root and waits for its confirmation.
    let node = Anvil::start(137);
    let contract = EvmMirror::deploy(&node.url(), DEV_KEYS[0]).await.unwrap();
    let mirror = EvmMirror::connect(&node.url(), Some(DEV_KEYS[0]), contract, 1).await.unwrap();
    let started = Instant::now();
    mirror.mirror(&heads.iter().map(|a| a.head.clone()).collect::<Vec<_>>()).await.unwrap();
    let mirror_seconds = started.elapsed().as_secs_f64();
    let mirror_per_minute = heads.len() as f64 / mirror_seconds * 60.0;

    let mut figures = Vec::new();
    for n in [3usize, 5, 7] {
        let threshold = n / 2 + 1;
        let node = Anvil::start(137);
        let keys: Vec<ValidatorKey> =
            (0..n).map(|i| ValidatorKey::parse(&format!("0x{:064x}", 0xbe7c_0000_u64 + i as u64)).unwrap()).collect();
        let addresses: Vec<String> = keys.iter().map(ValidatorKey::address).collect();
        let address = BridgeChain::deploy(&node.url(), DEV_KEYS[0], &addresses, u8::try_from(threshold).unwrap()).await.unwrap();
        let chain_config = ChainConfig {
            name: format!("bench-{n}"),
            url: node.url(),
            chain_id: 137,
            contract: emr_evm::bridge::address_text(address),
            confirmations: 1,
            max_fee_per_gas: None,
            max_priority_fee_per_gas: None,
        };
        let started = Instant::now();
        for key in keys {
            let chain = BridgeChain::connect(chain_config.clone(), None).await.unwrap();
            let validator =
                Validator::open(&test.backend, ledger.clone(), key, vec![chain], Vec::new(), DomainServices::default()).await.unwrap();
            validator.step().await.unwrap();
        }
        let sign_seconds = started.elapsed().as_secs_f64();
        let chain = BridgeChain::connect(chain_config, Some(DEV_KEYS[1])).await.unwrap();
        let relayer = Relayer::new(&test.backend, ledger.clone(), chain, None, DomainServices::default());
        let started = Instant::now();
        let (mut gas, mut confirmed) = (0u64, 0usize);
        while confirmed < heads.len() {
            let report = relayer.step().await.unwrap();
            gas += report.gas_used;
            confirmed += report.confirmed.len();
            if report.submitted.is_empty() && report.confirmed.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        figures.push(Figures {
            validators: n,
            threshold,
            heads: heads.len(),
            sign_seconds,
            relay_seconds: started.elapsed().as_secs_f64(),
            gas_per_head: gas as f64 / heads.len() as f64,
        });
    }

    println!("## Bridge benchmark ({} tree heads, anvil with a block every 200 ms, 1 confirmation)\n", heads.len());
    println!(
        "| validators (k of n) | signing, s (all n) | relayed to final, s | heads bridged per minute | ratio to single-key mirror | gas per head |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    println!("| single-key mirror (baseline) | – | {mirror_seconds:.2} | {mirror_per_minute:.0} | 1.00 | – |");
    for f in &figures {
        let per_minute = f.heads as f64 / f.relay_seconds * 60.0;
        println!(
            "| {} of {} | {:.2} | {:.2} | {per_minute:.0} | {:.2} | {:.0} |",
            f.threshold,
            f.validators,
            f.sign_seconds,
            f.relay_seconds,
            per_minute / mirror_per_minute,
            f.gas_per_head
        );
    }
    let json = serde_json::json!({
        "heads": heads.len(),
        "mirror_heads_per_minute": mirror_per_minute,
        "bridge": figures.iter().map(|f| serde_json::json!({
            "validators": f.validators, "threshold": f.threshold, "sign_seconds": f.sign_seconds,
            "relay_seconds": f.relay_seconds, "heads_per_minute": f.heads as f64 / f.relay_seconds * 60.0,
            "gas_per_head": f.gas_per_head,
        })).collect::<Vec<_>>(),
    });
    std::fs::write("bench-bridge.json", serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("{json}");
}
