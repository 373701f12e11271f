//! The bridge contract (`contracts/BridgeAnchor.sol`) on one target chain, and the
//! validators' keys that sign for it.
//!
//! Unlike [`crate::EvmMirror`], whose contract trusts one owner, the bridge
//! contract accepts a root only with EIP-712 signatures of k of its n validators
//! and a consistency proof from the previous root; whoever sends the transaction
//! (the relayer) pays gas and nothing more.

use alloy::primitives::{Address, B256, Bytes, Signature, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::Filter;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol;
use alloy::sol_types::{SolEvent, SolStruct, eip712_domain};
use emr_domain::bridge::BridgedHead;
use serde::Serialize;

use crate::{EvmError, call_error, parse_address};

sol!(
    #[allow(missing_docs)]
    #[sol(rpc, all_derives)]
    BridgeAnchor,
    "contracts/BridgeAnchor.json"
);

/// The EIP-712 types the validators sign; the contract hashes the same fields.
mod typed {
    alloy::sol! {
        struct TreeHead { uint64 treeSize; bytes32 root; string sourceLedger; uint64 sourceBlock; }
        struct ValidatorSet { address[] validators; uint8 threshold; uint64 epoch; }
    }
}

/// How a chain is reached and paid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// A name for logs and reports (`ethereum`, `polygon`, `bsc`).
    pub name: String,
    /// JSON-RPC URL.
    pub url: String,
    /// The chain id the node must report (a guard against a misrouted URL).
    pub chain_id: u64,
    /// Address of the deployed BridgeAnchor contract.
    pub contract: String,
    /// Blocks on top of a transfer's block before it counts as final.
    pub confirmations: u64,
    /// Gas policy: fee cap per gas, in wei (none: the node's estimate).
    #[serde(default)]
    pub max_fee_per_gas: Option<u128>,
    /// Gas policy: priority fee per gas, in wei (none: the node's estimate).
    #[serde(default)]
    pub max_priority_fee_per_gas: Option<u128>,
}

/// A transaction the bridge sent and the chain mined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sent {
    /// Transaction hash.
    pub transaction: String,
    /// Block it was mined in.
    pub block: u64,
    /// Gas it used.
    pub gas_used: u64,
}

/// Where the chain holds a head: the `HeadBridged` event that accepted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inclusion {
    /// Transaction hash.
    pub transaction: String,
    /// Block.
    pub block: u64,
    /// Root accepted, hex.
    pub root: String,
    /// The validators whose signatures the contract checked.
    pub signers: Vec<String>,
}

/// The validator set a contract currently trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidatorSet {
    /// Addresses, ascending, `0x` lowercase.
    pub validators: Vec<String>,
    /// Signatures needed.
    pub threshold: u8,
    /// Rotations so far.
    pub epoch: u64,
}

/// Lowercase `0x` text of an address: the one form in events and configuration.
pub fn address_text(address: Address) -> String {
    format!("{address:#x}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn root_bytes(head: &BridgedHead) -> Result<B256, EvmError> {
    head.root.parse().map_err(|_| EvmError::MalformedHead(head.tree_size))
}

fn signature_bytes(signatures: &[String]) -> Result<Vec<Bytes>, EvmError> {
    signatures
        .iter()
        .map(|text| text.trim_start_matches("0x").parse::<Bytes>().map_err(|_| EvmError::Config(format!("malformed signature {text}"))))
        .collect()
}

/// The signer of a 65-byte signature over `digest`, if it is a valid signature.
pub fn signer_of(digest: B256, signature: &str) -> Option<String> {
    let bytes: Vec<u8> = signature.trim_start_matches("0x").parse::<Bytes>().ok()?.into();
    let signature = Signature::from_raw(&bytes).ok()?;
    signature.recover_address_from_prehash(&digest).ok().map(address_text)
}

/// A validator's secp256k1 key.
pub struct ValidatorKey {
    signer: PrivateKeySigner,
}

impl ValidatorKey {
    /// Parses a hex private key.
    pub fn parse(private_key: &str) -> Result<Self, EvmError> {
        Ok(Self { signer: private_key.parse().map_err(|_| EvmError::Config("invalid validator key".into()))? })
    }

    /// The validator's address, `0x` lowercase.
    pub fn address(&self) -> String {
        address_text(self.signer.address())
    }

    /// Signs an EIP-712 digest: 65 bytes (r ‖ s ‖ v), hex, low s.
    pub fn sign(&self, digest: B256) -> Result<String, EvmError> {
        let signature = self.signer.sign_hash_sync(&digest).map_err(call_error)?;
        Ok(hex(&signature.as_bytes()))
    }
}

/// The bridge contract on one target chain.
pub struct BridgeChain {
    provider: DynProvider,
    contract: Address,
    config: ChainConfig,
}

impl BridgeChain {
    /// Deploys the contract trusting `validators` (any order) with `threshold`.
    pub async fn deploy(url: &str, private_key: &str, validators: &[String], threshold: u8) -> Result<Address, EvmError> {
        let mut addresses = validators.iter().map(|v| parse_address(v)).collect::<Result<Vec<_>, _>>()?;
        addresses.sort();
        let provider = crate::provider(url, Some(private_key))?;
        let contract = BridgeAnchor::deploy(provider, addresses, threshold).await.map_err(call_error)?;
        Ok(*contract.address())
    }

    /// Connects to a deployed contract, checking the node serves the configured
    /// chain. Without a key the chain can only be read (what validators and
    /// auditors need); with one, transactions are sent from it.
    pub async fn connect(config: ChainConfig, private_key: Option<&str>) -> Result<Self, EvmError> {
        let provider = crate::provider(&config.url, private_key)?;
        let contract = parse_address(&config.contract)?;
        let reported = provider.get_chain_id().await.map_err(call_error)?;
        if reported != config.chain_id {
            return Err(EvmError::Config(format!(
                "chain {} is configured as chain id {} but the node reports {reported}",
                config.name, config.chain_id
            )));
        }
        Ok(Self { provider, contract, config })
    }

    /// The configuration.
    pub fn config(&self) -> &ChainConfig {
        &self.config
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.config.chain_id
    }

    /// The contract's address, `0x` lowercase.
    pub fn contract_address(&self) -> String {
        address_text(self.contract)
    }

    /// The name of this target in the BlockchainTransactions view:
    /// `bridge:<chain id>:<contract>`.
    pub fn ledger_name(&self) -> String {
        format!("bridge:{}:{}", self.config.chain_id, self.contract_address())
    }

    fn instance(&self) -> BridgeAnchor::BridgeAnchorInstance<&DynProvider> {
        BridgeAnchor::new(self.contract, &self.provider)
    }

    fn domain(&self) -> alloy::sol_types::Eip712Domain {
        eip712_domain! { name: "EMR Ledger Bridge", version: "1", chain_id: self.config.chain_id, verifying_contract: self.contract, }
    }

    /// A head for this target, ready to sign.
    pub fn head(&self, tree_size: u64, root: &str, source_ledger: &str, source_block: u64) -> BridgedHead {
        BridgedHead {
            chain_id: self.config.chain_id,
            contract: self.contract_address(),
            tree_size,
            root: root.to_owned(),
            source_ledger: source_ledger.to_owned(),
            source_block,
        }
    }

    /// What validators sign for `head` (EIP-712, bound to this chain and contract).
    pub fn head_digest(&self, head: &BridgedHead) -> Result<B256, EvmError> {
        let typed = typed::TreeHead {
            treeSize: head.tree_size,
            root: root_bytes(head)?,
            sourceLedger: head.source_ledger.clone(),
            sourceBlock: head.source_block,
        };
        Ok(typed.eip712_signing_hash(&self.domain()))
    }

    /// What validators sign to rotate to `validators` (ascending) at `epoch`.
    pub fn validator_set_digest(&self, validators: &[String], threshold: u8, epoch: u64) -> Result<B256, EvmError> {
        let validators = validators.iter().map(|v| parse_address(v)).collect::<Result<Vec<_>, _>>()?;
        Ok(typed::ValidatorSet { validators, threshold, epoch }.eip712_signing_hash(&self.domain()))
    }

    /// The validators the contract trusts now.
    pub async fn validator_set(&self) -> Result<ValidatorSet, EvmError> {
        let contract = self.instance();
        let validators = contract.getValidators().call().await.map_err(call_error)?;
        Ok(ValidatorSet {
            validators: validators.into_iter().map(address_text).collect(),
            threshold: contract.threshold().call().await.map_err(call_error)?,
            epoch: contract.epoch().call().await.map_err(call_error)?,
        })
    }

    /// The largest tree size accepted.
    pub async fn latest_size(&self) -> Result<u64, EvmError> {
        self.instance().latestSize().call().await.map_err(call_error)
    }

    /// The root accepted for `size`, if any.
    pub async fn root_of(&self, size: u64) -> Result<Option<[u8; 32]>, EvmError> {
        let root: B256 = self.instance().rootOf(size).call().await.map_err(call_error)?;
        Ok((root != B256::ZERO).then_some(root.0))
    }

    /// Asks the contract whether the tree of `second` leaves with `second_root`
    /// extends the tree of `first` leaves with `first_root`, given `proof`: the
    /// check it makes before accepting a head.
    pub async fn extends(
        &self,
        first: u64,
        second: u64,
        first_root: [u8; 32],
        second_root: [u8; 32],
        proof: &[[u8; 32]],
    ) -> Result<bool, EvmError> {
        let proof: Vec<B256> = proof.iter().map(|h| B256::from(*h)).collect();
        self.instance()
            .verifyConsistency(first, second, B256::from(first_root), B256::from(second_root), proof)
            .call()
            .await
            .map_err(call_error)
    }

    /// The current block number.
    pub async fn block_number(&self) -> Result<u64, EvmError> {
        self.provider.get_block_number().await.map_err(call_error)
    }

    /// Sends `head` with `signatures` (ascending by signer) and the consistency
    /// proof from the chain's latest head; waits until it is mined.
    pub async fn submit(&self, head: &BridgedHead, consistency_proof: &[[u8; 32]], signatures: &[String]) -> Result<Sent, EvmError> {
        let contract = self.instance();
        let proof: Vec<B256> = consistency_proof.iter().map(|h| B256::from(*h)).collect();
        let call = contract.submitHead(
            head.tree_size,
            root_bytes(head)?,
            head.source_ledger.clone(),
            head.source_block,
            proof,
            signature_bytes(signatures)?,
        );
        let call = with_fees(&self.config, call);
        let receipt = call.send().await.map_err(refusal)?.get_receipt().await.map_err(call_error)?;
        mined(receipt)
    }

    /// Replaces the validator set, with k signatures of the current validators
    /// over [`BridgeChain::validator_set_digest`] for the next epoch.
    pub async fn rotate(&self, validators: &[String], threshold: u8, signatures: &[String]) -> Result<Sent, EvmError> {
        let contract = self.instance();
        let validators = validators.iter().map(|v| parse_address(v)).collect::<Result<Vec<_>, _>>()?;
        let call = with_fees(&self.config, contract.rotateValidators(validators, threshold, signature_bytes(signatures)?));
        let receipt = call.send().await.map_err(refusal)?.get_receipt().await.map_err(call_error)?;
        mined(receipt)
    }

    /// The transaction that got `size` accepted, read from the contract's
    /// `HeadBridged` events as the chain holds them now: after a reorg that
    /// dropped it, none.
    pub async fn inclusion(&self, size: u64) -> Result<Option<Inclusion>, EvmError> {
        let filter = Filter::new()
            .address(self.contract)
            .event_signature(BridgeAnchor::HeadBridged::SIGNATURE_HASH)
            .topic1(B256::from(U256::from(size)))
            .from_block(0);
        let logs = self.provider.get_logs(&filter).await.map_err(call_error)?;
        let Some(log) = logs.into_iter().last() else { return Ok(None) };
        let (transaction, block) = (log.transaction_hash, log.block_number);
        let event = log.log_decode::<BridgeAnchor::HeadBridged>().map_err(call_error)?.inner.data;
        Ok(Some(Inclusion {
            transaction: transaction.map(|h| h.to_string()).unwrap_or_default(),
            block: block.unwrap_or_default(),
            root: hex(event.root.as_slice()),
            signers: event.signers.into_iter().map(address_text).collect(),
        }))
    }

    /// Checks heads against the chain: the first head whose accepted root differs.
    pub async fn first_mismatch(&self, heads: &[emr_anchor::TreeHead]) -> Result<Option<u64>, EvmError> {
        crate::first_mismatch(heads, |size| self.root_of(size)).await
    }
}

/// A send that failed: the contract's own error, by name, when it refused.
fn refusal(error: alloy::contract::Error) -> EvmError {
    match error.as_decoded_interface_error::<BridgeAnchor::BridgeAnchorErrors>() {
        Some(refused) => EvmError::Refused(format!("{refused:?}")),
        None => call_error(error),
    }
}

fn with_fees<P: Provider, D: alloy::contract::CallDecoder>(
    config: &ChainConfig,
    mut call: alloy::contract::CallBuilder<P, D>,
) -> alloy::contract::CallBuilder<P, D> {
    if let Some(fee) = config.max_fee_per_gas {
        call = call.max_fee_per_gas(fee);
    }
    if let Some(fee) = config.max_priority_fee_per_gas {
        call = call.max_priority_fee_per_gas(fee);
    }
    call
}

fn mined(receipt: alloy::rpc::types::TransactionReceipt) -> Result<Sent, EvmError> {
    let transaction = receipt.transaction_hash.to_string();
    if !receipt.status() {
        return Err(EvmError::Reverted(transaction));
    }
    Ok(Sent { transaction, block: receipt.block_number.unwrap_or_default(), gas_used: receipt.gas_used })
}
