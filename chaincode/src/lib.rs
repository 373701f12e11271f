//! EMR Ledger's Hyperledger Fabric chaincode, run as a service (the peer's
//! `ccaas` builder): the anchor contract, where signed tree heads of the Merkle
//! log are recorded, and the seed's access-permission contract.
//!
//! - [`contract`]: the functions and what they see of a transaction;
//! - [`anchor`], [`permission`]: the two contracts;
//! - [`shim`]: the chaincode shim protocol over the peer's gRPC stream;
//! - [`fabric`]: Fabric's wire messages and services (`chaincode/protos`).

pub mod anchor;
pub mod contract;
pub mod permission;
pub mod shim;

/// Fabric's wire messages (crate `emr-fabric-protos`).
pub use emr_fabric_protos as fabric;

pub use contract::{ContractError, Creator, FUNCTIONS, Invocation, WorldState, invoke};
pub use shim::{ChaincodeService, ShimError};

/// The chaincode gRPC service, ready to add to a tonic server.
pub fn server(chaincode_id: impl Into<String>) -> fabric::protos::chaincode_server::ChaincodeServer<ChaincodeService> {
    fabric::protos::chaincode_server::ChaincodeServer::new(ChaincodeService::new(chaincode_id))
}
