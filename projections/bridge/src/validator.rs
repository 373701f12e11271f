//! A bridge validator: re-derives each tree head from the event log and signs it
//! for every target chain.

use std::collections::HashMap;
use std::sync::Arc;

use emr_anchor::Ledger;
use emr_domain::DomainServices;
use emr_domain::bridge::Attest;
use emr_eventstore::EventStorePorts;
use emr_evm::bridge::{BridgeChain, ValidatorKey};

use crate::{Attestations, BridgeConfig, BridgeError, LogTree};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One validator, with its own key, its own copy of the Merkle log and its own
/// view of the source ledger.
pub struct Validator {
    source: Arc<dyn Ledger>,
    key: ValidatorKey,
    chains: Vec<BridgeChain>,
    trusted_anchor_keys: Vec<String>,
    attestations: Attestations,
    progress: tokio::sync::Mutex<Progress>,
}

struct Progress {
    tree: LogTree,
    /// Per chain id: the largest tree size signed (or accepted on chain).
    signed: HashMap<u64, u64>,
}

impl Validator {
    /// A validator signing with `key` for `chains`. Heads must be signed by one of
    /// `trusted_anchor_keys` (hex Ed25519), when given. It resumes at each chain's
    /// latest accepted head: signing again what is already signed adds nothing.
    pub async fn open(
        ports: &EventStorePorts,
        source: Arc<dyn Ledger>,
        key: ValidatorKey,
        chains: Vec<BridgeChain>,
        trusted_anchor_keys: Vec<String>,
        services: DomainServices,
    ) -> Result<Self, BridgeError> {
        let mut signed = HashMap::new();
        for chain in &chains {
            signed.insert(chain.chain_id(), chain.latest_size().await?);
        }
        Ok(Self {
            source,
            key,
            chains,
            trusted_anchor_keys,
            attestations: Attestations::new(ports, services),
            progress: tokio::sync::Mutex::new(Progress { tree: LogTree::new(ports.log.clone()), signed }),
        })
    }

    /// The validator's address.
    pub fn address(&self) -> String {
        self.key.address()
    }

    /// Signs every head not signed yet, in order; returns how many signatures it
    /// recorded. It stops at the first head it cannot vouch for (untrusted, or a
    /// root the log does not give), so it never signs past a bad head.
    pub async fn step(&self) -> Result<usize, BridgeError> {
        let mut progress = self.progress.lock().await;
        let lowest = progress.signed.values().copied().min().unwrap_or(u64::MAX);
        let mut recorded = 0;
        for anchored in self.source.anchored().await?.into_iter().filter(|a| a.head.size > lowest) {
            let head = &anchored.head;
            let trusted = self.trusted_anchor_keys.is_empty() || self.trusted_anchor_keys.contains(&head.key);
            if !head.signature_valid() || !trusted {
                return Err(BridgeError::UntrustedHead { size: head.size });
            }
            progress.tree.extend_to(head.last_position).await?;
            let derived = progress.tree.root(head.size).filter(|_| progress.tree.size() == head.size);
            if derived.is_none() || derived != head.root_hash() {
                return Err(BridgeError::RootMismatch {
                    size: head.size,
                    claimed: head.root.clone(),
                    derived: derived.map_or_else(|| "none".into(), |root| hex(&root)),
                });
            }
            for chain in &self.chains {
                if progress.signed.get(&chain.chain_id()).is_some_and(|&signed| signed >= head.size) {
                    continue;
                }
                let bridged = chain.head(head.size, &head.root, self.source.name(), anchored.block);
                let signature = self.key.sign(chain.head_digest(&bridged)?)?;
                self.attestations.record(Attest { head: bridged, validator: self.key.address(), signature }).await?;
                progress.signed.insert(chain.chain_id(), head.size);
                recorded += 1;
            }
        }
        Ok(recorded)
    }

    /// Signs new heads until `shutdown`.
    pub async fn run(&self, config: BridgeConfig, shutdown: impl std::future::Future<Output = ()>) {
        crate::run_steps("bridge validator", config.poll, shutdown, || self.step()).await;
    }
}
