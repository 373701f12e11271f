//! The Fabric Gateway client: evaluate (a query, answered by one peer) and submit
//! (endorse → sign the prepared transaction → submit → wait for its commit
//! status), over the peer's Gateway gRPC service.

use std::time::Duration;

use prost::Message;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use emr_fabric_protos::common::{Block, Envelope, Payload};
use emr_fabric_protos::gateway::gateway_client::GatewayClient;
use emr_fabric_protos::gateway::{CommitStatusRequest, EndorseRequest, EvaluateRequest, SignedCommitStatusRequest, SubmitRequest};
use emr_fabric_protos::protos::{ChaincodeAction, ChaincodeActionPayload, ProposalResponsePayload, Transaction, TxValidationCode};

use crate::identity::{Identity, Signer};
use crate::proposal::{Target, propose};

/// Why a Gateway call failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The peer could not be reached, or answered with a gRPC error.
    #[error("gateway {call}: {status}")]
    Status {
        /// The call.
        call: &'static str,
        /// The peer's status (for endorsement failures, the details name each peer).
        status: Box<tonic::Status>,
    },
    /// The endpoint or TLS settings are unusable.
    #[error("gateway connection: {0}")]
    Connect(String),
    /// The chaincode answered with an error status.
    #[error("chaincode refused {function}: {status} {message}")]
    Refused {
        /// The function called.
        function: String,
        /// The chaincode's status (≥ 400).
        status: i32,
        /// Its message.
        message: String,
    },
    /// The transaction was ordered but not valid (MVCC conflict, endorsement policy, …).
    #[error("transaction {transaction_id} committed as {code} in block {block}")]
    Invalid {
        /// The transaction.
        transaction_id: String,
        /// Fabric's validation code.
        code: String,
        /// The block it landed in.
        block: u64,
    },
    /// The Gateway answered something that is not what Fabric sends.
    #[error("gateway answered a malformed {0}")]
    Malformed(&'static str),
}

/// How to reach a peer's Gateway.
#[derive(Debug, Clone)]
pub struct GatewayEndpoint {
    /// `http://host:7051` or `https://host:7051`.
    pub url: String,
    /// The CA certificate (PEM) that signed the peer's TLS certificate, for `https`.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// The name the peer's TLS certificate is issued for, when it differs from the
    /// URL's host (`peer0.org1.example.com`).
    pub tls_server_name: Option<String>,
    /// Per-call deadline.
    pub timeout: Duration,
}

/// Selects rustls's ring backend for the process, unless one is selected already:
/// with more than one backend compiled in (other dependencies bring aws-lc-rs),
/// rustls cannot pick one by itself and would panic on the first TLS connection.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A transaction that committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Its id.
    pub transaction_id: String,
    /// The block it is in.
    pub block: u64,
    /// The chaincode's response payload.
    pub payload: Vec<u8>,
}

/// A client of one channel's chaincode through a peer's Gateway.
#[derive(Debug, Clone)]
pub struct FabricGateway {
    client: GatewayClient<Channel>,
    identity: Identity,
    signer: Signer,
    target: Target,
}

fn status(call: &'static str) -> impl Fn(tonic::Status) -> GatewayError {
    move |status| GatewayError::Status { call, status: Box::new(status) }
}

impl FabricGateway {
    /// Connects to the Gateway at `endpoint` as `identity`.
    pub async fn connect(endpoint: &GatewayEndpoint, identity: Identity, signer: Signer, target: Target) -> Result<Self, GatewayError> {
        let mut channel =
            Endpoint::from_shared(endpoint.url.clone()).map_err(|e| GatewayError::Connect(e.to_string()))?.timeout(endpoint.timeout);
        if let Some(ca) = &endpoint.tls_ca_pem {
            install_crypto_provider();
            let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
            if let Some(name) = &endpoint.tls_server_name {
                tls = tls.domain_name(name.clone());
            }
            channel = channel.tls_config(tls).map_err(|e| GatewayError::Connect(e.to_string()))?;
        }
        let channel = channel.connect().await.map_err(|e| GatewayError::Connect(format!("{}: {e}", endpoint.url)))?;
        Ok(Self { client: GatewayClient::new(channel), identity, signer, target })
    }

    /// Asks one peer to run `function(args)` without ordering it: a read.
    pub async fn evaluate(&self, function: &str, args: &[Vec<u8>]) -> Result<Vec<u8>, GatewayError> {
        self.evaluate_on(&self.target.chaincode, function, args).await
    }

    /// The number of the block holding transaction `transaction_id`, from the
    /// peer's query system chaincode (`qscc GetBlockByTxID`).
    pub async fn block_of(&self, transaction_id: &str) -> Result<u64, GatewayError> {
        let args = [self.target.channel.as_bytes().to_vec(), transaction_id.as_bytes().to_vec()];
        let block = self.evaluate_on("qscc", "GetBlockByTxID", &args).await?;
        let block = Block::decode(block.as_slice()).map_err(|_| GatewayError::Malformed("block"))?;
        Ok(block.header.ok_or(GatewayError::Malformed("block without header"))?.number)
    }

    async fn evaluate_on(&self, chaincode: &str, function: &str, args: &[Vec<u8>]) -> Result<Vec<u8>, GatewayError> {
        let target = Target { channel: self.target.channel.clone(), chaincode: chaincode.to_owned() };
        let proposed = propose(&self.identity, &self.signer, &target, function, args, chrono::Utc::now());
        let request = EvaluateRequest {
            transaction_id: proposed.transaction_id,
            channel_id: self.target.channel.clone(),
            proposed_transaction: Some(proposed.signed),
            target_organizations: Vec::new(),
        };
        let response = self.client.clone().evaluate(request).await.map_err(status("Evaluate"))?.into_inner();
        let result = response.result.ok_or(GatewayError::Malformed("evaluate response"))?;
        if result.status >= 400 {
            return Err(GatewayError::Refused { function: function.to_owned(), status: result.status, message: result.message });
        }
        Ok(result.payload)
    }

    /// Endorses, orders and waits for the commit of `function(args)`.
    pub async fn submit(&self, function: &str, args: &[Vec<u8>]) -> Result<Committed, GatewayError> {
        let proposed = propose(&self.identity, &self.signer, &self.target, function, args, chrono::Utc::now());
        let transaction_id = proposed.transaction_id.clone();
        let mut client = self.client.clone();
        let endorse = EndorseRequest {
            transaction_id: transaction_id.clone(),
            channel_id: self.target.channel.clone(),
            proposed_transaction: Some(proposed.signed),
            endorsing_organizations: Vec::new(),
        };
        let endorsed = client.endorse(endorse).await.map_err(status("Endorse"))?.into_inner();
        let mut prepared = endorsed.prepared_transaction.ok_or(GatewayError::Malformed("endorse response"))?;
        let response = chaincode_response(&prepared)?;
        if response.0 >= 400 {
            return Err(GatewayError::Refused { function: function.to_owned(), status: response.0, message: response.1 });
        }
        prepared.signature = self.signer.sign(&prepared.payload);
        let submit = SubmitRequest {
            transaction_id: transaction_id.clone(),
            channel_id: self.target.channel.clone(),
            prepared_transaction: Some(prepared),
        };
        client.submit(submit).await.map_err(status("Submit"))?;
        let request = CommitStatusRequest {
            transaction_id: transaction_id.clone(),
            channel_id: self.target.channel.clone(),
            identity: self.identity.serialized(),
        }
        .encode_to_vec();
        let signature = self.signer.sign(&request);
        let commit =
            client.commit_status(SignedCommitStatusRequest { request, signature }).await.map_err(status("CommitStatus"))?.into_inner();
        if commit.result != TxValidationCode::Valid as i32 {
            let code = TxValidationCode::try_from(commit.result).map_or_else(|_| commit.result.to_string(), |c| c.as_str_name().to_owned());
            return Err(GatewayError::Invalid { transaction_id, code, block: commit.block_number });
        }
        Ok(Committed { transaction_id, block: commit.block_number, payload: response.2 })
    }
}

/// The chaincode's response inside a prepared transaction (status, message,
/// payload): envelope → payload → transaction → action → endorsed action →
/// proposal response payload → chaincode action.
fn chaincode_response(prepared: &Envelope) -> Result<(i32, String, Vec<u8>), GatewayError> {
    let malformed = |_| GatewayError::Malformed("prepared transaction");
    let payload = Payload::decode(prepared.payload.as_slice()).map_err(malformed)?;
    let transaction = Transaction::decode(payload.data.as_slice()).map_err(malformed)?;
    let action = transaction.actions.first().ok_or(GatewayError::Malformed("prepared transaction without actions"))?;
    let action_payload = ChaincodeActionPayload::decode(action.payload.as_slice()).map_err(malformed)?;
    let endorsed = action_payload.action.ok_or(GatewayError::Malformed("prepared transaction without endorsed action"))?;
    let response_payload = ProposalResponsePayload::decode(endorsed.proposal_response_payload.as_slice()).map_err(malformed)?;
    let chaincode_action = ChaincodeAction::decode(response_payload.extension.as_slice()).map_err(malformed)?;
    let response = chaincode_action.response.ok_or(GatewayError::Malformed("chaincode action without response"))?;
    Ok((response.status, response.message, response.payload))
}
