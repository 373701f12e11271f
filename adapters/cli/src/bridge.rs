//! `emr bridge`: deploy the bridge contract, run a validator, run a relayer.

use std::time::Duration;

use anyhow::Context;
use emr_bridge::{BridgeConfig, Relayer, Validator};
use emr_domain::DomainServices;
use emr_evm::bridge::{BridgeChain, ValidatorKey};

use crate::settings::Settings;

fn key(variable: &str, whose: &str) -> anyhow::Result<String> {
    std::env::var(variable).with_context(|| format!("{variable} ({whose})"))
}

fn config(settings: &Settings) -> BridgeConfig {
    BridgeConfig { poll: Duration::from_millis(settings.bridge.poll_ms) }
}

async fn chains(settings: &Settings, private_key: Option<&str>) -> anyhow::Result<Vec<BridgeChain>> {
    anyhow::ensure!(!settings.bridge.chains.is_empty(), "no target chain is configured ([[bridge.chains]])");
    let mut chains = Vec::new();
    for chain in &settings.bridge.chains {
        chains.push(BridgeChain::connect(chain.clone(), private_key).await.with_context(|| format!("chain {}", chain.name))?);
    }
    Ok(chains)
}

/// Deploys a BridgeAnchor trusting `validators` with `threshold` (deployer key in
/// EMR_EVM_PRIVATE_KEY); prints its address.
pub(crate) async fn deploy(url: &str, validators: &[String], threshold: u8) -> anyhow::Result<String> {
    let deployer = key("EMR_EVM_PRIVATE_KEY", "the deployer's private key")?;
    let address = BridgeChain::deploy(url, &deployer, validators, threshold).await?;
    Ok(emr_evm::bridge::address_text(address))
}

/// Runs this validator: one pass with `once`, else until interrupted.
pub(crate) async fn validator(settings: &Settings, once: bool) -> anyhow::Result<()> {
    let ports = crate::wiring::ports(settings).await?;
    let key = ValidatorKey::parse(&key(&settings.bridge.validator_key_env, "this validator's key")?)?;
    let source = crate::audit::ledger(settings).await?;
    let chains = chains(settings, None).await?;
    let validator =
        Validator::open(&ports, source, key, chains, settings.bridge.trusted_anchor_keys.clone(), DomainServices::default()).await?;
    tracing::info!(address = %validator.address(), chains = settings.bridge.chains.len(), "bridge validator running");
    if once {
        let signed = validator.step().await?;
        println!("{}", serde_json::json!({"validator": validator.address(), "signed": signed}));
        return Ok(());
    }
    validator.run(config(settings), crate::shutdown()).await;
    Ok(())
}

/// Runs a relayer per target chain: one pass each with `once`, else until interrupted.
pub(crate) async fn relay(settings: &Settings, once: bool) -> anyhow::Result<()> {
    let ports = crate::wiring::ports(settings).await?;
    let relayer_key = key(&settings.bridge.relayer_key_env, "the relayer's key")?;
    let source = crate::audit::ledger(settings).await?;
    let view = Some(crate::read_models::ReadModels::open(settings).await?.db);
    let relayers: Vec<Relayer> = chains(settings, Some(&relayer_key))
        .await?
        .into_iter()
        .map(|chain| Relayer::new(&ports, source.clone(), chain, view.clone(), DomainServices::default()))
        .collect();
    if once {
        for relayer in &relayers {
            let report = relayer.step().await?;
            println!("{}", serde_json::json!({"chain": relayer.chain().config().name, "report": report}));
        }
        return Ok(());
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runs = relayers.iter().map(|relayer| {
        let mut stopped = stopped.clone();
        relayer.run(config(settings), async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        })
    });
    let all = futures::future::join_all(runs);
    tokio::pin!(all);
    tokio::select! {
        _ = &mut all => {}
        () = crate::shutdown() => {
            let _ = stop.send(true);
            all.await;
        }
    }
    Ok(())
}

/// The first bridge target whose accepted root differs from the local heads.
pub(crate) async fn check(settings: &Settings) -> anyhow::Result<Option<emr_anchor::Failure>> {
    let heads = crate::evm::heads(settings).await?;
    for chain in &settings.bridge.chains {
        let target = BridgeChain::connect(chain.clone(), None).await.with_context(|| format!("chain {}", chain.name))?;
        if let Some(size) = target.first_mismatch(&heads).await? {
            return Ok(Some(emr_anchor::Failure {
                kind: "chain-mismatch".into(),
                position: None,
                aggregate: None,
                event_id: None,
                detail: format!("bridge chain {} holds another root for tree size {size} than the local tree head", chain.name),
            }));
        }
    }
    Ok(None)
}
