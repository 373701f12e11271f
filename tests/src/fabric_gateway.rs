//! A gateway-side harness of Fabric's Gateway service: it checks what a peer and
//! an orderer would check of a client, and runs the real chaincode logic
//! (`emr_chaincode::invoke`) over an in-memory world state.
//!
//! Checked, as Fabric does: the proposal's creator is an enrolled member of an
//! MSP; every signature (proposal, prepared transaction, commit-status request)
//! is ECDSA P-256 over SHA-256 by the creator's key, DER, and low-S; the
//! transaction id is hex(SHA-256(nonce ‖ creator)); the channel and chaincode
//! are this network's; a transaction id is used once. Endorse simulates (reads of
//! committed state, writes in a write set), Submit validates the write set
//! against what changed since (MVCC) and cuts one block per transaction.
//! Membership is enrolled explicitly (certificate → public key) where a peer
//! would check the certificate's chain to its MSP's CA.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use emr_chaincode::contract::Entries;
use emr_chaincode::fabric::common::{Block, BlockHeader, ChannelHeader, Envelope, Header, Payload, SignatureHeader};
use emr_chaincode::fabric::gateway::gateway_server::{Gateway, GatewayServer};
use emr_chaincode::fabric::gateway::{
    CommitStatusRequest, CommitStatusResponse, EndorseRequest, EndorseResponse, EvaluateRequest, EvaluateResponse,
    SignedCommitStatusRequest, SubmitRequest, SubmitResponse,
};
use emr_chaincode::fabric::msp::SerializedIdentity;
use emr_chaincode::fabric::protos::{
    ChaincodeAction, ChaincodeActionPayload, ChaincodeEndorsedAction, ChaincodeHeaderExtension, ChaincodeInput, ChaincodeInvocationSpec,
    ChaincodeProposalPayload, Proposal, ProposalResponsePayload, Response, SignedProposal, Transaction, TransactionAction,
    TxValidationCode,
};
use emr_chaincode::{ContractError, Creator, Invocation, WorldState};
use futures::FutureExt;
use futures::future::BoxFuture;
use prost::Message;
use tonic::{Request, Status};

/// The channel and chaincode the harness serves.
pub const CHANNEL: &str = "emr-channel";
/// The chaincode's name on it.
pub const CHAINCODE: &str = "emr-ledger";

/// An endorsed transaction waiting for Submit.
struct Endorsed {
    creator: Vec<u8>,
    reads: HashMap<String, u64>,
    writes: BTreeMap<String, Vec<u8>>,
}

#[derive(Default)]
struct Network {
    /// Serialized identity → SEC1 public key.
    members: HashMap<Vec<u8>, Vec<u8>>,
    /// Key → (value, version).
    state: BTreeMap<String, (Vec<u8>, u64)>,
    endorsed: HashMap<String, Endorsed>,
    /// Transaction id → (validation code, block).
    committed: HashMap<String, (TxValidationCode, u64)>,
    blocks: u64,
    seen: std::collections::HashSet<String>,
    refusals: Vec<String>,
}

/// The harness: a Gateway server and what it has seen.
#[derive(Clone, Default)]
pub struct GatewayHarness {
    network: Arc<Mutex<Network>>,
}

/// What one proposal says, once checked.
struct Checked {
    chaincode: String,
    transaction_id: String,
    creator: Vec<u8>,
    creator_identity: Creator,
    timestamp: DateTime<Utc>,
    input: ChaincodeInput,
    header: Vec<u8>,
    signature_header: Vec<u8>,
    proposal_payload: Vec<u8>,
    proposal_bytes: Vec<u8>,
}

struct Simulation<'a> {
    state: &'a BTreeMap<String, (Vec<u8>, u64)>,
    reads: HashMap<String, u64>,
    writes: BTreeMap<String, Vec<u8>>,
}

impl WorldState for Simulation<'_> {
    fn get<'a>(&'a mut self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, ContractError>> {
        let (value, version) = self.state.get(key).cloned().map_or((None, 0), |(v, n)| (Some(v), n));
        self.reads.insert(key.to_owned(), version);
        async move { Ok(value) }.boxed()
    }

    fn put<'a>(&'a mut self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<(), ContractError>> {
        self.writes.insert(key.to_owned(), value);
        async move { Ok(()) }.boxed()
    }

    fn range<'a>(&'a mut self, start: &'a str, end: &'a str) -> BoxFuture<'a, Result<Entries, ContractError>> {
        let entries: Vec<(String, Vec<u8>, u64)> =
            self.state.range(start.to_owned()..end.to_owned()).map(|(k, (v, n))| (k.clone(), v.clone(), *n)).collect();
        for (key, _, version) in &entries {
            self.reads.insert(key.clone(), *version);
        }
        async move { Ok(entries.into_iter().map(|(k, v, _)| (k, v)).collect()) }.boxed()
    }
}

impl GatewayHarness {
    /// Enrols an identity (its serialized form) with its SEC1 public key.
    pub fn enrol(&self, serialized_identity: Vec<u8>, public_key_sec1: Vec<u8>) {
        self.network.lock().unwrap().members.insert(serialized_identity, public_key_sec1);
    }

    /// The gRPC service.
    pub fn service(&self) -> GatewayServer<Self> {
        GatewayServer::new(self.clone())
    }

    /// Serves on a free loopback port; returns `http://127.0.0.1:<port>`.
    pub async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(tonic::transport::Server::builder().add_service(self.service()).serve_with_incoming(incoming));
        url
    }

    /// Serves over TLS with `certificate_pem` and its `key_pem` on a free loopback
    /// port; returns `https://127.0.0.1:<port>`.
    pub async fn serve_tls(&self, certificate_pem: &str, key_pem: &str) -> String {
        emr_fabric::install_crypto_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let tls = tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(certificate_pem, key_pem));
        let mut server = tonic::transport::Server::builder().tls_config(tls).unwrap();
        tokio::spawn(server.add_service(self.service()).serve_with_incoming(incoming));
        url
    }

    /// Why requests were refused, in order.
    pub fn refusals(&self) -> Vec<String> {
        self.network.lock().unwrap().refusals.clone()
    }

    /// Blocks cut so far.
    pub fn blocks(&self) -> u64 {
        self.network.lock().unwrap().blocks
    }

    fn refuse(&self, status: Status) -> Status {
        self.network.lock().unwrap().refusals.push(status.message().to_owned());
        status
    }

    fn verified(&self, creator: &[u8], message: &[u8], signature: &[u8]) -> Result<(), Status> {
        let key = self.network.lock().unwrap().members.get(creator).cloned();
        let Some(key) = key else {
            return Err(self.refuse(Status::permission_denied("access denied: the creator is not a member of any MSP")));
        };
        if !emr_fabric::identity::is_low_s(signature) {
            return Err(self.refuse(Status::permission_denied("signature is not in low-S form")));
        }
        if !emr_fabric::identity::verify(&key, message, signature) {
            return Err(self.refuse(Status::permission_denied("the creator's signature does not verify")));
        }
        Ok(())
    }

    fn check(&self, channel_id: &str, transaction_id: &str, signed: Option<&SignedProposal>) -> Result<Checked, Status> {
        let malformed = |what: &str| Status::invalid_argument(format!("malformed {what}"));
        let signed = signed.ok_or_else(|| malformed("request: no proposal"))?;
        let proposal = Proposal::decode(signed.proposal_bytes.as_slice()).map_err(|_| malformed("proposal"))?;
        let header = Header::decode(proposal.header.as_slice()).map_err(|_| malformed("header"))?;
        let channel = ChannelHeader::decode(header.channel_header.as_slice()).map_err(|_| malformed("channel header"))?;
        let signature_header = SignatureHeader::decode(header.signature_header.as_slice()).map_err(|_| malformed("signature header"))?;
        self.verified(&signature_header.creator, &signed.proposal_bytes, &signed.signature)?;
        let expected = emr_fabric::transaction_id(&signature_header.nonce, &signature_header.creator);
        if channel.tx_id != expected || transaction_id != expected {
            return Err(self.refuse(Status::failed_precondition(format!("BAD_PROPOSAL_TXID: got {}, expected {expected}", channel.tx_id))));
        }
        if channel.channel_id != CHANNEL || channel_id != CHANNEL {
            return Err(self.refuse(Status::not_found(format!("channel {} not found", channel.channel_id))));
        }
        let extension = ChaincodeHeaderExtension::decode(channel.extension.as_slice()).map_err(|_| malformed("header extension"))?;
        let chaincode = extension.chaincode_id.map(|id| id.name).unwrap_or_default();
        if chaincode != CHAINCODE && chaincode != "qscc" {
            return Err(self.refuse(Status::not_found(format!("chaincode {chaincode} not found on {CHANNEL}"))));
        }
        let payload = ChaincodeProposalPayload::decode(proposal.payload.as_slice()).map_err(|_| malformed("proposal payload"))?;
        let spec = ChaincodeInvocationSpec::decode(payload.input.as_slice()).map_err(|_| malformed("invocation"))?;
        let input = spec.chaincode_spec.and_then(|s| s.input).ok_or_else(|| malformed("invocation: no input"))?;
        let timestamp = channel.timestamp.ok_or_else(|| malformed("channel header: no timestamp"))?;
        let timestamp = DateTime::from_timestamp(timestamp.seconds, u32::try_from(timestamp.nanos).unwrap_or(0))
            .ok_or_else(|| malformed("timestamp"))?;
        let identity = SerializedIdentity::decode(signature_header.creator.as_slice()).map_err(|_| malformed("creator"))?;
        Ok(Checked {
            chaincode,
            transaction_id: expected,
            creator: signature_header.creator.clone(),
            creator_identity: Creator::of(identity.mspid, &identity.id_bytes),
            timestamp,
            input,
            header: proposal.header.clone(),
            signature_header: header.signature_header,
            proposal_payload: proposal.payload,
            proposal_bytes: signed.proposal_bytes.clone(),
        })
    }

    /// Runs the chaincode on the committed state: its response, reads and writes.
    async fn simulate(&self, checked: &Checked) -> (Response, HashMap<String, u64>, BTreeMap<String, Vec<u8>>) {
        let state = self.network.lock().unwrap().state.clone();
        let mut args = checked.input.args.iter();
        let function = args.next().map(|f| String::from_utf8_lossy(f).into_owned()).unwrap_or_default();
        let invocation = Invocation {
            function,
            args: args.cloned().collect(),
            creator: checked.creator_identity.clone(),
            timestamp: checked.timestamp,
            transaction_id: checked.transaction_id.clone(),
        };
        let mut simulation = Simulation { state: &state, reads: HashMap::new(), writes: BTreeMap::new() };
        let response = match emr_chaincode::invoke(&invocation, &mut simulation).await {
            Ok(payload) => Response { status: 200, message: String::new(), payload },
            Err(error) => Response { status: error.status(), message: error.to_string(), payload: Vec::new() },
        };
        (response, simulation.reads, simulation.writes)
    }
}

impl GatewayHarness {
    /// The query system chaincode's `GetBlockByTxID(channel, txid)`: the block
    /// (its header) holding a committed transaction.
    fn query_system(&self, checked: &Checked) -> Result<tonic::Response<EvaluateResponse>, Status> {
        let args: Vec<String> = checked.input.args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let [function, channel, txid] = args.as_slice() else {
            return Err(self.refuse(Status::invalid_argument("qscc: expected GetBlockByTxID(channel, txid)")));
        };
        if function != "GetBlockByTxID" || channel != CHANNEL {
            return Err(self.refuse(Status::invalid_argument(format!("qscc: unsupported {function}({channel}, …)"))));
        }
        let committed = self.network.lock().unwrap().committed.get(txid).copied();
        let Some((_, block)) = committed else {
            return Err(Status::aborted(format!("evaluate: chaincode response 500, Failed to get block for txID {txid}")));
        };
        let block = Block { header: Some(BlockHeader { number: block, previous_hash: Vec::new(), data_hash: Vec::new() }) };
        let response = Response { status: 200, message: String::new(), payload: block.encode_to_vec() };
        Ok(tonic::Response::new(EvaluateResponse { result: Some(response) }))
    }
}

fn chaincode_error(response: &Response) -> Status {
    Status::aborted(format!("failed to endorse transaction: chaincode response {}, {}", response.status, response.message))
}

#[tonic::async_trait]
impl Gateway for GatewayHarness {
    async fn endorse(&self, request: Request<EndorseRequest>) -> Result<tonic::Response<EndorseResponse>, Status> {
        let request = request.into_inner();
        let checked = self.check(&request.channel_id, &request.transaction_id, request.proposed_transaction.as_ref())?;
        if checked.chaincode == "qscc" {
            return Err(self.refuse(Status::failed_precondition("qscc is evaluated, not endorsed")));
        }
        if !self.network.lock().unwrap().seen.insert(checked.transaction_id.clone()) {
            return Err(self.refuse(Status::already_exists(format!("DUPLICATE_TXID: {}", checked.transaction_id))));
        }
        let (response, reads, writes) = self.simulate(&checked).await;
        if response.status >= 400 {
            return Err(self.refuse(chaincode_error(&response)));
        }
        let action = ChaincodeAction { results: serde_json::to_vec(&writes).unwrap(), response: Some(response), ..Default::default() };
        let response_payload = ProposalResponsePayload {
            proposal_hash: ring::digest::digest(&ring::digest::SHA256, &checked.proposal_bytes).as_ref().to_vec(),
            extension: action.encode_to_vec(),
        };
        let action_payload = ChaincodeActionPayload {
            chaincode_proposal_payload: checked.proposal_payload.clone(),
            action: Some(ChaincodeEndorsedAction { proposal_response_payload: response_payload.encode_to_vec(), endorsements: Vec::new() }),
        };
        let transaction = Transaction {
            actions: vec![TransactionAction { header: checked.signature_header.clone(), payload: action_payload.encode_to_vec() }],
        };
        let header = Header::decode(checked.header.as_slice()).map_err(|_| Status::internal("header"))?;
        let payload = Payload { header: Some(header), data: transaction.encode_to_vec() };
        self.network
            .lock()
            .unwrap()
            .endorsed
            .insert(checked.transaction_id.clone(), Endorsed { creator: checked.creator.clone(), reads, writes });
        let prepared = Envelope { payload: payload.encode_to_vec(), signature: Vec::new() };
        Ok(tonic::Response::new(EndorseResponse { prepared_transaction: Some(prepared) }))
    }

    async fn submit(&self, request: Request<SubmitRequest>) -> Result<tonic::Response<SubmitResponse>, Status> {
        let request = request.into_inner();
        let envelope = request.prepared_transaction.ok_or_else(|| Status::invalid_argument("no prepared transaction"))?;
        let creator = {
            let network = self.network.lock().unwrap();
            let endorsed = network.endorsed.get(&request.transaction_id);
            endorsed
                .map(|e| e.creator.clone())
                .ok_or_else(|| Status::not_found(format!("no endorsed transaction {}", request.transaction_id)))?
        };
        self.verified(&creator, &envelope.payload, &envelope.signature)?;
        let mut network = self.network.lock().unwrap();
        let Some(endorsed) = network.endorsed.remove(&request.transaction_id) else {
            return Err(Status::not_found("transaction submitted twice"));
        };
        network.blocks += 1;
        let block = network.blocks;
        let valid = endorsed.reads.iter().all(|(key, version)| network.state.get(key).map_or(0, |(_, v)| *v) == *version);
        let code = if valid {
            for (key, value) in endorsed.writes {
                let version = network.state.get(&key).map_or(0, |(_, v)| *v) + 1;
                network.state.insert(key, (value, version));
            }
            TxValidationCode::Valid
        } else {
            TxValidationCode::MvccReadConflict
        };
        network.committed.insert(request.transaction_id, (code, block));
        Ok(tonic::Response::new(SubmitResponse {}))
    }

    async fn commit_status(&self, request: Request<SignedCommitStatusRequest>) -> Result<tonic::Response<CommitStatusResponse>, Status> {
        let signed = request.into_inner();
        let request = CommitStatusRequest::decode(signed.request.as_slice()).map_err(|_| Status::invalid_argument("malformed request"))?;
        self.verified(&request.identity, &signed.request, &signed.signature)?;
        let committed = self.network.lock().unwrap().committed.get(&request.transaction_id).copied();
        let (code, block) = committed.ok_or_else(|| Status::not_found(format!("transaction {} not committed", request.transaction_id)))?;
        Ok(tonic::Response::new(CommitStatusResponse { result: code as i32, block_number: block }))
    }

    async fn evaluate(&self, request: Request<EvaluateRequest>) -> Result<tonic::Response<EvaluateResponse>, Status> {
        let request = request.into_inner();
        let checked = self.check(&request.channel_id, &request.transaction_id, request.proposed_transaction.as_ref())?;
        if checked.chaincode == "qscc" {
            return self.query_system(&checked);
        }
        let (response, _, _) = self.simulate(&checked).await;
        if response.status >= 400 {
            return Err(self.refuse(chaincode_error(&response)));
        }
        Ok(tonic::Response::new(EvaluateResponse { result: Some(response) }))
    }
}
