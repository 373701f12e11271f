//! The anchor ledger on Fabric: each signed tree head is submitted to the
//! chaincode's anchor contract (`RecordHead`) and counts as anchored once its
//! transaction committed valid; the heads read back with `AnchoredHeads`.

use std::collections::HashMap;
use std::sync::Mutex;

use emr_anchor::{Anchored, Ledger, LedgerError, TreeHead};
use emr_chaincode::anchor::RecordedHead;
use futures::FutureExt;
use futures::future::BoxFuture;

use crate::gateway::{FabricGateway, GatewayError};

/// The ledger port on a Fabric channel's `emr-ledger` chaincode.
#[derive(Debug)]
pub struct FabricLedger {
    gateway: FabricGateway,
    /// Block of each anchoring transaction, once known (blocks never change).
    blocks: Mutex<HashMap<String, u64>>,
}

impl FabricLedger {
    /// The ledger behind `gateway`.
    pub fn new(gateway: FabricGateway) -> Self {
        Self { gateway, blocks: Mutex::default() }
    }

    fn known_block(&self, transaction_id: &str) -> Option<u64> {
        self.blocks.lock().ok().and_then(|blocks| blocks.get(transaction_id).copied())
    }

    fn remember(&self, transaction_id: &str, block: u64) {
        if let Ok(mut blocks) = self.blocks.lock() {
            blocks.insert(transaction_id.to_owned(), block);
        }
    }
}

fn unavailable(error: GatewayError) -> LedgerError {
    LedgerError::Unavailable(error.to_string())
}

impl Ledger for FabricLedger {
    fn name(&self) -> &str {
        "fabric"
    }

    fn anchor<'a>(&'a self, head: &'a TreeHead) -> BoxFuture<'a, Result<Anchored, LedgerError>> {
        async move {
            let json = serde_json::to_vec(head).map_err(|e| LedgerError::Unavailable(e.to_string()))?;
            let committed = self.gateway.submit("RecordHead", &[json]).await.map_err(unavailable)?;
            self.remember(&committed.transaction_id, committed.block);
            Ok(Anchored { head: head.clone(), transaction_id: committed.transaction_id, block: committed.block })
        }
        .boxed()
    }

    /// Every head, smallest first, with its block. The chaincode knows each
    /// head's transaction but not its block (blocks are cut after endorsement):
    /// blocks come from commit statuses and, for heads anchored elsewhere or
    /// before a restart, from the peer's query system chaincode, once each.
    fn anchored(&self) -> BoxFuture<'_, Result<Vec<Anchored>, LedgerError>> {
        async move {
            let payload = self.gateway.evaluate("AnchoredHeads", &[]).await.map_err(unavailable)?;
            let heads: Vec<RecordedHead> =
                serde_json::from_slice(&payload).map_err(|e| LedgerError::Unavailable(format!("AnchoredHeads answered {e}")))?;
            let mut anchored = Vec::with_capacity(heads.len());
            for recorded in heads {
                let block = match self.known_block(&recorded.transaction_id) {
                    Some(block) => block,
                    None => {
                        let block = self.gateway.block_of(&recorded.transaction_id).await.map_err(unavailable)?;
                        self.remember(&recorded.transaction_id, block);
                        block
                    }
                };
                anchored.push(Anchored { head: recorded.head, transaction_id: recorded.transaction_id, block });
            }
            Ok(anchored)
        }
        .boxed()
    }
}
