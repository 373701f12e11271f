//! The anchor ledger on Fabric: each signed tree head is submitted to the
//! chaincode's anchor contract (`RecordHead`) and counts as anchored once its
//! transaction committed valid; the heads read back with `AnchoredHeads`.

use emr_anchor::{Anchored, Ledger, LedgerError, TreeHead};
use emr_chaincode::anchor::RecordedHead;
use futures::FutureExt;
use futures::future::BoxFuture;

use crate::gateway::{FabricGateway, GatewayError};

/// The ledger port on a Fabric channel's `emr-ledger` chaincode.
#[derive(Debug, Clone)]
pub struct FabricLedger {
    gateway: FabricGateway,
}

impl FabricLedger {
    /// The ledger behind `gateway`.
    pub fn new(gateway: FabricGateway) -> Self {
        Self { gateway }
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
            Ok(Anchored { head: head.clone(), transaction_id: committed.transaction_id, block: committed.block })
        }
        .boxed()
    }

    /// Every head, smallest first. The chaincode knows each head's transaction
    /// but not its block (blocks are cut after endorsement): `block` is 0 here;
    /// [`Ledger::anchor`] reports the block at commit time.
    fn anchored(&self) -> BoxFuture<'_, Result<Vec<Anchored>, LedgerError>> {
        async move {
            let payload = self.gateway.evaluate("AnchoredHeads", &[]).await.map_err(unavailable)?;
            let heads: Vec<RecordedHead> =
                serde_json::from_slice(&payload).map_err(|e| LedgerError::Unavailable(format!("AnchoredHeads answered {e}")))?;
            Ok(heads.into_iter().map(|r| Anchored { head: r.head, transaction_id: r.transaction_id, block: 0 }).collect())
        }
        .boxed()
    }
}
