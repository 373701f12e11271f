//! Hyperledger Fabric's wire messages and gRPC services that EMR Ledger speaks,
//! generated from `proto/fabric` (written for EMR Ledger; field numbers, types and
//! service paths are Fabric 2.5's). Used by the chaincode, the Gateway client and
//! the peer-side test harnesses.

#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

/// Package `protos`: the shim protocol, proposals, transactions, the `Chaincode` service.
pub mod protos {
    tonic::include_proto!("protos");
}
/// Package `common`: envelopes and their headers.
pub mod common {
    tonic::include_proto!("common");
}
/// Package `msp`: identities.
pub mod msp {
    tonic::include_proto!("msp");
}
/// Package `gateway`: the peer's Gateway service (endorse, submit, commit status, evaluate).
pub mod gateway {
    tonic::include_proto!("gateway");
}
