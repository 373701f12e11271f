//! The relayer: carries heads with k valid signatures to one target chain, counts
//! confirmations, and resubmits what a reorg dropped.

use std::collections::BTreeMap;
use std::sync::Arc;

use emr_anchor::{AnchorStatus, Ledger};
use emr_domain::DomainServices;
use emr_domain::bridge::BridgedHead;
use emr_eventstore::EventStorePorts;
use emr_evm::bridge::{BridgeChain, Sent, signer_of};
use emr_projections::ReadModelDb;
use serde::Serialize;

use crate::{Attestations, BridgeConfig, BridgeError, LogTree};

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RelayReport {
    /// Heads submitted (tree sizes).
    pub submitted: Vec<u64>,
    /// Transfers that reached the chain's confirmations.
    pub confirmed: Vec<u64>,
    /// Transfers a reorg dropped (they are submitted again).
    pub dropped: Vec<u64>,
    /// The first head still short of signatures, if any.
    pub waiting_for_signatures: Option<u64>,
    /// Gas used by the transactions sent.
    pub gas_used: u64,
}

/// A transfer this relayer knows of: where the chain held the head last time it looked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Transfer {
    transaction: String,
    block: u64,
    confirmed: bool,
}

struct Progress {
    tree: LogTree,
    /// Heads up to this size are confirmed on the chain.
    settled: u64,
    transfers: BTreeMap<u64, Transfer>,
}

/// Relays heads from the source ledger to one target chain.
pub struct Relayer {
    source: Arc<dyn Ledger>,
    chain: BridgeChain,
    attestations: Attestations,
    view: Option<ReadModelDb>,
    progress: tokio::sync::Mutex<Progress>,
}

impl Relayer {
    /// A relayer for `chain` (connected with the key that pays gas); transfers are
    /// recorded in the BlockchainTransactions view when `view` is given.
    pub fn new(
        ports: &EventStorePorts,
        source: Arc<dyn Ledger>,
        chain: BridgeChain,
        view: Option<ReadModelDb>,
        services: DomainServices,
    ) -> Self {
        let progress = Progress { tree: LogTree::new(ports.log.clone()), settled: 0, transfers: BTreeMap::new() };
        Self { source, chain, attestations: Attestations::new(ports, services), view, progress: tokio::sync::Mutex::new(progress) }
    }

    /// The target chain.
    pub fn chain(&self) -> &BridgeChain {
        &self.chain
    }

    /// Looks at every head not yet final on the chain, in order: follows its
    /// transfer to its confirmations, notices when a reorg dropped it, and submits
    /// the next head once k validators signed it.
    pub async fn step(&self) -> Result<RelayReport, BridgeError> {
        let mut progress = self.progress.lock().await;
        let mut report = RelayReport::default();
        let confirmations = self.chain.config().confirmations.max(1);
        let now = self.chain.block_number().await?;
        let mut latest = self.chain.latest_size().await?;
        let mut contiguous = true;
        let settled = progress.settled;
        for anchored in self.source.anchored().await?.into_iter().filter(|a| a.head.size > settled) {
            let (size, last_position) = (anchored.head.size, anchored.head.last_position);
            let head = self.chain.head(size, &anchored.head.root, self.source.name(), anchored.block);
            match self.chain.inclusion(size).await? {
                Some(inclusion) => {
                    if inclusion.root != head.root {
                        return Err(BridgeError::ForeignRoot {
                            chain: self.chain.config().name.clone(),
                            size,
                            on_chain: inclusion.root,
                            expected: head.root,
                        });
                    }
                    let confirmed = now + 1 >= inclusion.block + confirmations;
                    let transfer = Transfer { transaction: inclusion.transaction, block: inclusion.block, confirmed };
                    if let Some(previous) = progress.transfers.get(&size).filter(|t| t.transaction != transfer.transaction) {
                        self.dropped(size, previous).await?;
                    }
                    if progress.transfers.get(&size) != Some(&transfer) {
                        self.record(&head, last_position, &transfer).await?;
                        if confirmed {
                            report.confirmed.push(size);
                        }
                    }
                    progress.transfers.insert(size, transfer);
                    contiguous &= confirmed;
                    if contiguous {
                        progress.settled = size;
                        progress.transfers.remove(&size);
                    }
                }
                None => {
                    contiguous = false;
                    if let Some(lost) = progress.transfers.remove(&size) {
                        tracing::warn!(size, transaction = %lost.transaction, chain = %self.chain.config().name, "a reorg dropped a bridged head; submitting it again");
                        self.dropped(size, &lost).await?;
                        report.dropped.push(size);
                    }
                    if size <= latest {
                        // The chain went past this size without it: nothing can add it now.
                        continue;
                    }
                    let Some(signatures) = self.quorum(&head).await? else {
                        report.waiting_for_signatures = Some(size);
                        break;
                    };
                    let proof = if latest == 0 {
                        Vec::new()
                    } else {
                        progress.tree.extend_to(last_position).await?;
                        progress.tree.consistency_proof(latest, size).unwrap_or_default()
                    };
                    let sent = self.chain.submit(&head, &proof, &signatures).await?;
                    report.gas_used += sent.gas_used;
                    report.submitted.push(size);
                    let transfer = self.transfer(&sent);
                    self.record(&head, last_position, &transfer).await?;
                    progress.transfers.insert(size, transfer);
                    latest = size;
                }
            }
        }
        Ok(report)
    }

    fn transfer(&self, sent: &Sent) -> Transfer {
        Transfer { transaction: sent.transaction.clone(), block: sent.block, confirmed: false }
    }

    /// `threshold` signatures over `head` by current validators, ascending by
    /// signer, each checked here first: one bad signature would revert the lot.
    async fn quorum(&self, head: &BridgedHead) -> Result<Option<Vec<String>>, BridgeError> {
        let set = self.chain.validator_set().await?;
        let digest = self.chain.head_digest(head)?;
        let attestations = self.attestations.load(&head.attestation_id()).await?;
        let valid: Vec<String> = attestations
            .signatures_for(head)
            .into_iter()
            .filter(|(validator, signature)| {
                set.validators.iter().any(|v| v == validator) && signer_of(digest, signature).as_deref() == Some(*validator)
            })
            .map(|(_, signature)| signature.to_owned())
            .take(usize::from(set.threshold))
            .collect();
        Ok((valid.len() >= usize::from(set.threshold)).then_some(valid))
    }

    async fn record(&self, head: &BridgedHead, last_position: u64, transfer: &Transfer) -> Result<(), BridgeError> {
        if let Some(db) = &self.view {
            let status = AnchorStatus {
                ledger: self.chain.ledger_name(),
                transaction_id: transfer.transaction.clone(),
                block: transfer.block,
                tree_size: head.tree_size,
                root: head.root.clone(),
                last_position,
                confirmed: transfer.confirmed,
            };
            emr_projections::anchors::record(db, &status).await?;
        }
        Ok(())
    }

    async fn dropped(&self, size: u64, transfer: &Transfer) -> Result<(), BridgeError> {
        tracing::info!(size, transaction = %transfer.transaction, "bridged transaction no longer on chain");
        if let Some(db) = &self.view {
            emr_projections::anchors::dropped(db, &self.chain.ledger_name(), &transfer.transaction).await?;
        }
        Ok(())
    }

    /// Relays until `shutdown`.
    pub async fn run(&self, config: BridgeConfig, shutdown: impl std::future::Future<Output = ()>) {
        crate::run_steps("bridge relayer", config.poll, shutdown, || self.step()).await;
    }
}
