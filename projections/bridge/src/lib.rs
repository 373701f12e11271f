//! The cross-chain bridge: tree heads of the Merkle log carried to EVM target
//! chains (Ethereum, Polygon, BSC) so that no single party can forge them.
//!
//! - A [`Validator`] reads tree heads from the source ledger (Fabric or the
//!   embedded ledger), re-derives each root from the event log itself
//!   ([`LogTree`]) — never trusting anyone's copy — and signs the head for every
//!   target chain's bridge contract (EIP-712). Its signature is an event in the
//!   log (`bridge_attestation` aggregates), so relayers find it there and
//!   auditors see who vouched for what.
//! - A [`Relayer`] gathers k valid signatures for the next head, proves it
//!   extends the chain's latest head (RFC 9162 consistency proof, checked on
//!   chain) and submits it. It counts a transfer final after the chain's
//!   confirmations, detects a reorg that dropped it (the contract's
//!   `HeadBridged` event is gone) and submits again. Every transfer is a row of
//!   the BlockchainTransactions view (`bridge:<chain id>:<contract>`).
//!
//! Any relayer can submit and none can forge: the contract checks the
//! signatures and the consistency proof itself.

mod relayer;
mod tree;
mod validator;

pub use relayer::{RelayReport, Relayer};
pub use tree::LogTree;
pub use validator::Validator;

use std::time::Duration;

use emr_domain::DomainServices;
use emr_domain::actor::Actor;
use emr_domain::bridge::{Attest, AttestationError, HeadAttestations};
use emr_domain::metadata::CommandContext;
use emr_eventstore::{EmrEventStore, EventStorePorts, ExecuteError, StoreConfig, StoreError};

/// Why a bridge step failed.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The event log failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The source ledger failed.
    #[error(transparent)]
    Ledger(#[from] emr_anchor::LedgerError),
    /// A target chain failed or refused a transaction.
    #[error(transparent)]
    Chain(#[from] emr_evm::EvmError),
    /// The BlockchainTransactions view could not be written.
    #[error(transparent)]
    View(#[from] emr_projections::ProjectionError),
    /// An attestation was refused by its aggregate.
    #[error(transparent)]
    Attestation(#[from] AttestationError),
    /// A head on the source ledger is not signed by a trusted anchor node.
    #[error("tree head of size {size} is not validly signed by a trusted anchor key")]
    UntrustedHead {
        /// Its tree size.
        size: u64,
    },
    /// The event log does not give the root a head claims: a validator never signs it.
    #[error("tree head of size {size} claims root {claimed}, but the event log gives {derived}")]
    RootMismatch {
        /// Its tree size.
        size: u64,
        /// The head's root.
        claimed: String,
        /// What the log gives (`none` when the log is too short).
        derived: String,
    },
    /// A target chain holds another root for a size than the source ledger.
    #[error("chain {chain} holds root {on_chain} for tree size {size}, the source ledger {expected}")]
    ForeignRoot {
        /// Target name.
        chain: String,
        /// Tree size.
        size: u64,
        /// Root on the chain.
        on_chain: String,
        /// Root on the source ledger.
        expected: String,
    },
}

/// When the workers poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeConfig {
    /// Pause between steps.
    pub poll: Duration,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self { poll: Duration::from_secs(2) }
    }
}

/// The attestations in the event log.
pub(crate) struct Attestations {
    store: EmrEventStore<HeadAttestations>,
    services: DomainServices,
}

impl Attestations {
    pub(crate) fn new(ports: &EventStorePorts, services: DomainServices) -> Self {
        let store =
            EmrEventStore::new(ports.log.clone(), ports.phi_codec(), None, StoreConfig { cache_capacity: 0, ..StoreConfig::default() });
        Self { store, services }
    }

    /// Records an attestation, retrying when another validator's write raced it.
    pub(crate) async fn record(&self, command: Attest) -> Result<(), BridgeError> {
        let id = command.head.attestation_id();
        let mut attempts = 0;
        loop {
            let context = CommandContext::new(Actor::system());
            match self.store.execute(&id, command.clone(), &self.services, &context).await {
                Ok(_) => return Ok(()),
                Err(ExecuteError::Store(error)) if error.is_retryable() && attempts < 5 => attempts += 1,
                Err(error) => return Err(error.into_error()),
            }
        }
    }

    pub(crate) async fn load(&self, id: &str) -> Result<HeadAttestations, BridgeError> {
        Ok(self.store.load(id).await?.state().clone())
    }
}

/// Runs `step` every `poll` until `shutdown`, logging failures (they are retried).
pub(crate) async fn run_steps<F, Fut, T>(what: &str, poll: Duration, shutdown: impl std::future::Future<Output = ()>, mut step: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, BridgeError>>,
    T: std::fmt::Debug,
{
    tokio::pin!(shutdown);
    loop {
        match step().await {
            Ok(done) => tracing::debug!(?done, "{what} step"),
            Err(error) => tracing::warn!(%error, "{what} step failed; retrying"),
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(poll) => {}
        }
    }
}
