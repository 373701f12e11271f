//! Hyperledger Fabric, client side: the Gateway client of EMR Ledger and the
//! anchor ledger on Fabric.
//!
//! - [`identity`]: the MSP identity and its P-256 signer (low-S, DER), as peers verify;
//! - [`proposal`]: transaction proposals and ids as Fabric derives them;
//! - [`gateway`]: evaluate and submit through a peer's Gateway service;
//! - [`ledger`]: the ledger port on the chaincode's anchor contract.

pub mod gateway;
pub mod identity;
pub mod ledger;
pub mod metrics;
pub mod proposal;

pub use gateway::{Committed, FabricGateway, GatewayEndpoint, GatewayError, install_crypto_provider};
pub use identity::{Identity, IdentityError, Signer};
pub use ledger::FabricLedger;
pub use proposal::{Proposed, Target, propose, transaction_id};
