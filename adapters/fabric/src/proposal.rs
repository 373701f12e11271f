//! Transaction proposals as Fabric builds them: the transaction id derived from a
//! fresh nonce and the creator, the channel and signature headers, the chaincode
//! invocation, and the creator's signature over the proposal bytes.

use chrono::{DateTime, Utc};
use prost::Message;

use emr_fabric_protos::common::{ChannelHeader, Header, HeaderType, SignatureHeader};
use emr_fabric_protos::protos::{
    ChaincodeHeaderExtension, ChaincodeId, ChaincodeInput, ChaincodeInvocationSpec, ChaincodeProposalPayload, ChaincodeSpec, Proposal,
    SignedProposal, chaincode_spec,
};

use crate::identity::{Identity, Signer};

/// hex(SHA-256(nonce ‖ creator)): Fabric's transaction id, which the peer
/// recomputes and refuses when it differs (`BAD_PROPOSAL_TXID`).
pub fn transaction_id(nonce: &[u8], creator: &[u8]) -> String {
    let mut hashed = Vec::with_capacity(nonce.len() + creator.len());
    hashed.extend_from_slice(nonce);
    hashed.extend_from_slice(creator);
    hex(ring::digest::digest(&ring::digest::SHA256, &hashed).as_ref())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn nonce() -> [u8; 24] {
    let mut nonce = [0u8; 24];
    // The system's randomness failing is not something a proposal can recover from.
    #[allow(clippy::expect_used)]
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).expect("system randomness");
    nonce
}

/// A signed proposal and its transaction id.
#[derive(Debug, Clone)]
pub struct Proposed {
    /// The transaction id.
    pub transaction_id: String,
    /// What goes to the Gateway.
    pub signed: SignedProposal,
}

/// Where a proposal goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The channel.
    pub channel: String,
    /// The chaincode's name on it.
    pub chaincode: String,
}

/// Builds and signs the proposal of `function(args)` on `target`, at `timestamp`.
pub fn propose(
    identity: &Identity,
    signer: &Signer,
    target: &Target,
    function: &str,
    args: &[Vec<u8>],
    timestamp: DateTime<Utc>,
) -> Proposed {
    let creator = identity.serialized();
    let nonce = nonce();
    let transaction_id = transaction_id(&nonce, &creator);
    let chaincode_id = ChaincodeId { name: target.chaincode.clone(), ..Default::default() };
    let channel_header = ChannelHeader {
        r#type: HeaderType::EndorserTransaction as i32,
        timestamp: Some(prost_types::Timestamp {
            seconds: timestamp.timestamp(),
            nanos: i32::try_from(timestamp.timestamp_subsec_nanos()).unwrap_or(0),
        }),
        channel_id: target.channel.clone(),
        tx_id: transaction_id.clone(),
        extension: ChaincodeHeaderExtension { chaincode_id: Some(chaincode_id.clone()) }.encode_to_vec(),
        ..Default::default()
    };
    let header = Header {
        channel_header: channel_header.encode_to_vec(),
        signature_header: SignatureHeader { creator, nonce: nonce.to_vec() }.encode_to_vec(),
    };
    let input =
        ChaincodeInput { args: std::iter::once(function.as_bytes().to_vec()).chain(args.iter().cloned()).collect(), ..Default::default() };
    let invocation = ChaincodeInvocationSpec {
        chaincode_spec: Some(ChaincodeSpec {
            r#type: chaincode_spec::Type::Undefined as i32,
            chaincode_id: Some(chaincode_id),
            input: Some(input),
            timeout: 0,
        }),
    };
    let payload = ChaincodeProposalPayload { input: invocation.encode_to_vec(), ..Default::default() };
    let proposal = Proposal { header: header.encode_to_vec(), payload: payload.encode_to_vec(), extension: Vec::new() };
    let proposal_bytes = proposal.encode_to_vec();
    let signature = signer.sign(&proposal_bytes);
    Proposed { transaction_id, signed: SignedProposal { proposal_bytes, signature } }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_transaction_id_hashes_the_nonce_then_the_creator() {
        // SHA-256 of the 6 bytes "abc" ‖ "def" ("abcdef").
        assert_eq!(transaction_id(b"abc", b"def"), "bef57ec7f53a6d40beb640a780a639c83bc29ac8a9816f1fc6c5c6dcd93c4721");
    }
}
