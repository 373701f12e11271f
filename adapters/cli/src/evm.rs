//! EVM mirrors from the configuration: the relayer and the verification check.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use emr_anchor::{Ledger, TreeHead};
use emr_evm::EvmMirror;

use crate::settings::{EvmChainSettings, Settings};

async fn connect(chain: &EvmChainSettings, signing: bool) -> anyhow::Result<EvmMirror> {
    let key = match (&chain.private_key_env, signing) {
        (Some(variable), true) => {
            Some(std::env::var(variable).with_context(|| format!("{} (private key of chain {})", variable, chain.name))?)
        }
        _ => None,
    };
    let contract = emr_evm::parse_address(&chain.contract)?;
    Ok(EvmMirror::connect(&chain.url, key.as_deref(), contract, chain.confirmations)
        .await
        .with_context(|| format!("chain {}", chain.name))?)
}

pub(crate) async fn heads(settings: &Settings) -> anyhow::Result<Vec<TreeHead>> {
    Ok(crate::audit::ledger(settings).await?.anchored().await?.into_iter().map(|a| a.head).collect())
}

/// Mirrors every head of `ledger` to every configured chain, and records every
/// anchor's status in the BlockchainTransactions view when read models are
/// configured, until `stop` is set.
pub(crate) async fn relay(
    settings: Settings,
    ledger: Arc<dyn Ledger>,
    view: Option<emr_projections::ReadModelDb>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if settings.audit.evm.is_empty() && view.is_none() {
        return;
    }
    let record = |status: &emr_anchor::AnchorStatus| {
        let (view, status) = (view.clone(), status.clone());
        async move {
            if let Some(db) = view
                && let Err(error) = emr_projections::anchors::record(&db, &status).await
            {
                tracing::warn!(%error, "anchor status not recorded");
            }
        }
    };
    loop {
        match ledger.anchored().await {
            Ok(anchored) => {
                for head in &anchored {
                    record(&head.status(ledger.name())).await;
                }
                let heads: Vec<TreeHead> = anchored.into_iter().map(|a| a.head).collect();
                for chain in &settings.audit.evm {
                    let result =
                        async { connect(chain, true).await?.mirror_reporting(&heads, &record).await.map_err(anyhow::Error::from) }.await;
                    if let Err(error) = result {
                        tracing::warn!(chain = %chain.name, error = %format!("{error:#}"), "mirroring failed; retrying");
                    }
                }
            }
            Err(error) => tracing::warn!(error = %format!("{error:#}"), "cannot read the ledger"),
        }
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// The first chain whose mirrored root differs from the local heads.
pub(crate) async fn check(settings: &Settings) -> anyhow::Result<Option<emr_anchor::Failure>> {
    let heads = heads(settings).await?;
    for chain in &settings.audit.evm {
        if let Some(size) = connect(chain, false).await?.first_mismatch(&heads).await? {
            return Ok(Some(emr_anchor::Failure {
                kind: "chain-mismatch".into(),
                position: None,
                aggregate: None,
                event_id: None,
                detail: format!("chain {} holds another root for tree size {size} than the local tree head", chain.name),
            }));
        }
    }
    Ok(None)
}

/// Deploys the anchor contract with the key in `EMR_EVM_PRIVATE_KEY`.
pub(crate) async fn deploy(url: &str) -> anyhow::Result<String> {
    let key = std::env::var("EMR_EVM_PRIVATE_KEY").context("EMR_EVM_PRIVATE_KEY (the deployer's private key)")?;
    Ok(EvmMirror::deploy(url, &key).await?.to_string())
}
