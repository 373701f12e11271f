//! EVM chains as mirrors of the anchored Merkle log.
//!
//! The primary ledger holds the signed tree heads; an EVM chain holds, per tree
//! size, the 32-byte root in the `MerkleAnchor` contract
//! (`contracts/MerkleAnchor.sol`, compiled offline by `contracts/build.mjs`; CI
//! checks the committed artifact against a fresh compile). The contract refuses a
//! different root for an anchored size and sizes that do not grow, so once a root
//! is mirrored, nobody — not even this node — can rewrite history unnoticed.
//!
//! One client serves Ethereum, Polygon and BSC: they differ only in RPC URL, chain
//! id and the confirmations worth waiting for.

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol;
use emr_anchor::{AnchorStatus, TreeHead};
use serde::Serialize;

pub mod bridge;

sol!(
    #[allow(missing_docs)]
    #[sol(rpc)]
    MerkleAnchor,
    "contracts/MerkleAnchor.json"
);

/// Why an EVM operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvmError {
    /// Bad configuration (URL, key, address).
    #[error("EVM configuration: {0}")]
    Config(String),
    /// The node or the contract call failed (including a revert).
    #[error("EVM call failed: {0}")]
    Call(String),
    /// The contract refused the transaction (its custom error, decoded).
    #[error("the contract refused: {0}")]
    Refused(String),
    /// The transaction was mined but reverted.
    #[error("transaction {0} reverted")]
    Reverted(String),
    /// A head whose root is not 32 bytes of hex.
    #[error("tree head of size {0} has a malformed root")]
    MalformedHead(u64),
}

/// Where a root landed on a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvmReceipt {
    /// Chain id.
    pub chain_id: u64,
    /// Transaction hash (none when the root was already anchored).
    pub transaction_hash: Option<String>,
    /// Block of the transaction.
    pub block: Option<u64>,
    /// Tree size anchored.
    pub size: u64,
}

/// Parses a contract address.
pub fn parse_address(text: &str) -> Result<Address, EvmError> {
    text.parse().map_err(|_| EvmError::Config(format!("invalid contract address {text}")))
}

/// The anchor contract on one chain.
pub struct EvmMirror {
    provider: DynProvider,
    contract: Address,
    chain_id: u64,
    confirmations: u64,
}

pub(crate) fn call_error(error: impl std::fmt::Display) -> EvmError {
    EvmError::Call(error.to_string())
}

pub(crate) fn provider(url: &str, private_key: Option<&str>) -> Result<DynProvider, EvmError> {
    let url = url.parse().map_err(|_| EvmError::Config(format!("invalid RPC URL {url}")))?;
    match private_key {
        Some(key) => {
            let signer: PrivateKeySigner = key.parse().map_err(|_| EvmError::Config("invalid private key".into()))?;
            // Nonces come from the node for every transaction: alloy's default cache
            // also counts a send the node refused, and every later transaction
            // would then wait forever behind the gap.
            Ok(ProviderBuilder::new()
                .disable_recommended_fillers()
                .with_gas_estimation()
                .with_blob_gas_estimation()
                .with_simple_nonce_management()
                .fetch_chain_id()
                .wallet(EthereumWallet::from(signer))
                .connect_http(url)
                .erased())
        }
        None => Ok(ProviderBuilder::new().connect_http(url).erased()),
    }
}

impl EvmMirror {
    /// Deploys the anchor contract; the signer becomes its owner.
    pub async fn deploy(url: &str, private_key: &str) -> Result<Address, EvmError> {
        let contract = MerkleAnchor::deploy(provider(url, Some(private_key))?).await.map_err(call_error)?;
        Ok(*contract.address())
    }

    /// Connects to a deployed contract; anchoring waits for `confirmations` blocks.
    /// Without a key the mirror can only be read (what verification needs).
    pub async fn connect(url: &str, private_key: Option<&str>, contract: Address, confirmations: u64) -> Result<Self, EvmError> {
        let provider = provider(url, private_key)?;
        let chain_id = provider.get_chain_id().await.map_err(call_error)?;
        Ok(Self { provider, contract, chain_id, confirmations: confirmations.max(1) })
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    fn contract(&self) -> MerkleAnchor::MerkleAnchorInstance<&DynProvider> {
        MerkleAnchor::new(self.contract, &self.provider)
    }

    /// The largest tree size anchored on this chain.
    pub async fn latest_size(&self) -> Result<u64, EvmError> {
        self.contract().latestSize().call().await.map_err(call_error)
    }

    /// The root anchored for `size`, if any.
    pub async fn root_of(&self, size: u64) -> Result<Option<[u8; 32]>, EvmError> {
        let root: B256 = self.contract().rootOf(size).call().await.map_err(call_error)?;
        Ok((root != B256::ZERO).then_some(root.0))
    }

    /// The ledger name of this chain in anchor statuses (`evm:<chain id>`).
    pub fn ledger_name(&self) -> String {
        format!("evm:{}", self.chain_id)
    }

    /// Sends a head's root; `None` when the chain already holds it. The status is
    /// pending until [`EvmMirror::confirm`].
    pub async fn submit(&self, head: &TreeHead) -> Result<Option<AnchorStatus>, EvmError> {
        let root = head.root_hash().ok_or(EvmError::MalformedHead(head.size))?;
        if self.root_of(head.size).await? == Some(root) {
            return Ok(None);
        }
        let contract = self.contract();
        let call = contract.anchor(head.size, B256::from(root), head.last_position);
        let receipt = call.send().await.map_err(call_error)?.get_receipt().await.map_err(call_error)?;
        let hash = receipt.transaction_hash.to_string();
        if !receipt.status() {
            return Err(EvmError::Reverted(hash));
        }
        Ok(Some(AnchorStatus {
            ledger: self.ledger_name(),
            transaction_id: hash,
            block: receipt.block_number.unwrap_or_default(),
            tree_size: head.size,
            root: head.root.clone(),
            last_position: head.last_position,
            confirmed: false,
        }))
    }

    /// Waits until a submitted anchor has the configured confirmations.
    pub async fn confirm(&self, mut status: AnchorStatus) -> Result<AnchorStatus, EvmError> {
        while self.provider.get_block_number().await.map_err(call_error)? + 1 < status.block + self.confirmations {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        status.confirmed = true;
        Ok(status)
    }

    /// Anchors a head's root and waits for the configured confirmations.
    pub async fn anchor(&self, head: &TreeHead) -> Result<EvmReceipt, EvmError> {
        let Some(pending) = self.submit(head).await? else {
            return Ok(EvmReceipt { chain_id: self.chain_id, transaction_hash: None, block: None, size: head.size });
        };
        let confirmed = self.confirm(pending).await?;
        Ok(EvmReceipt {
            chain_id: self.chain_id,
            transaction_hash: Some(confirmed.transaction_id),
            block: Some(confirmed.block),
            size: head.size,
        })
    }

    /// The relayer's job: anchors, in order, every head the chain has not seen.
    pub async fn mirror(&self, heads: &[TreeHead]) -> Result<Vec<EvmReceipt>, EvmError> {
        let mut receipts = Vec::new();
        self.mirror_reporting(heads, |status| {
            if status.confirmed {
                receipts.push(EvmReceipt {
                    chain_id: self.chain_id,
                    transaction_hash: Some(status.transaction_id.clone()),
                    block: Some(status.block),
                    size: status.tree_size,
                });
            }
            std::future::ready(())
        })
        .await?;
        Ok(receipts)
    }

    /// Like [`EvmMirror::mirror`], reporting each anchor when it is sent (pending)
    /// and when it is final (confirmed): what feeds the BlockchainTransactions view.
    pub async fn mirror_reporting<F, Fut>(&self, heads: &[TreeHead], mut report: F) -> Result<(), EvmError>
    where
        F: FnMut(&AnchorStatus) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let latest = self.latest_size().await?;
        for head in heads.iter().filter(|h| h.size > latest) {
            let submitted = std::time::Instant::now();
            let mirrored = async {
                if let Some(pending) = self.submit(head).await? {
                    report(&pending).await;
                    let confirmed = self.confirm(pending).await?;
                    report(&confirmed).await;
                }
                Ok::<_, EvmError>(())
            };
            match mirrored.await {
                Ok(()) => emr_anchor::metrics::confirmed(&self.ledger_name(), submitted.elapsed()),
                Err(error) => {
                    emr_anchor::metrics::failed(&self.ledger_name());
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Checks heads against the chain: the first head whose mirrored root differs.
    pub async fn first_mismatch(&self, heads: &[TreeHead]) -> Result<Option<u64>, EvmError> {
        first_mismatch(heads, |size| self.root_of(size)).await
    }
}

/// The first head whose root on a chain (read through `root_of`) differs from the
/// head's own; sizes the chain does not hold are skipped.
pub(crate) async fn first_mismatch<F, Fut>(heads: &[TreeHead], root_of: F) -> Result<Option<u64>, EvmError>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<Option<[u8; 32]>, EvmError>>,
{
    for head in heads {
        if let Some(root) = root_of(head.size).await?
            && Some(root) != head.root_hash()
        {
            return Ok(Some(head.size));
        }
    }
    Ok(None)
}
