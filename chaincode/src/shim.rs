//! The chaincode shim protocol, chaincode side, for chaincode-as-a-service: the
//! peer dials our gRPC `Chaincode.Connect`, and over that one stream
//!
//! 1. we send `REGISTER` (our chaincode id), the peer answers `REGISTERED`, then `READY`;
//! 2. the peer sends `TRANSACTION`s (or `INIT`s), any number at once, each with
//!    its arguments and signed proposal; each runs in its own task, asking the
//!    peer for state with `GET_STATE` / `PUT_STATE` and getting `RESPONSE` or
//!    `ERROR` back, matched by channel and transaction id;
//! 3. each ends with `COMPLETED`, carrying a `Response` (status 200, or ≥ 400
//!    when the contract refused), or `ERROR` when the message itself was broken;
//! 4. `KEEPALIVE` is echoed.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};
use prost::Message;
use prost_types::Timestamp;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use crate::contract::{ContractError, Creator, Entries, Invocation, WorldState, invoke};
use crate::fabric::common::{ChannelHeader, Header, SignatureHeader};
use crate::fabric::msp::SerializedIdentity;
use crate::fabric::protos::chaincode_message::Type;
use crate::fabric::protos::chaincode_server::Chaincode;
use crate::fabric::protos::{
    ChaincodeId, ChaincodeInput, ChaincodeMessage, GetState, GetStateByRange, Kv, Proposal, PutState, QueryResponse, QueryStateNext,
    Response, SignedProposal,
};

/// Why a message from the peer could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// A payload did not decode as the message it must be.
    #[error("malformed {what}: {source}")]
    Malformed {
        /// Which message.
        what: &'static str,
        /// Cause.
        #[source]
        source: prost::DecodeError,
    },
    /// A message that the protocol does not allow here.
    #[error("unexpected {got} while {state}")]
    Unexpected {
        /// The message type received.
        got: String,
        /// Where the handshake stood.
        state: &'static str,
    },
    /// A transaction without what identifies its creator and time.
    #[error("transaction {txid}: {reason}")]
    BadProposal {
        /// The transaction.
        txid: String,
        /// What is missing.
        reason: String,
    },
}

fn type_name(r#type: i32) -> String {
    Type::try_from(r#type).map_or_else(|_| format!("type {type}"), |t| t.as_str_name().to_owned())
}

fn decode<M: Message + Default>(what: &'static str, bytes: &[u8]) -> Result<M, ShimError> {
    M::decode(bytes).map_err(|source| ShimError::Malformed { what, source })
}

fn message(r#type: Type, txid: &str, channel_id: &str, payload: Vec<u8>) -> ChaincodeMessage {
    ChaincodeMessage { r#type: r#type as i32, payload, txid: txid.to_owned(), channel_id: channel_id.to_owned(), ..Default::default() }
}

/// Creator and time of a transaction, from its signed proposal.
pub fn proposal_context(txid: &str, signed: Option<&SignedProposal>) -> Result<(Creator, DateTime<Utc>), ShimError> {
    let bad = |reason: &str| ShimError::BadProposal { txid: txid.to_owned(), reason: reason.to_owned() };
    let signed = signed.ok_or_else(|| bad("no signed proposal"))?;
    let proposal: Proposal = decode("proposal", &signed.proposal_bytes)?;
    let header: Header = decode("proposal header", &proposal.header)?;
    let channel: ChannelHeader = decode("channel header", &header.channel_header)?;
    let signature: SignatureHeader = decode("signature header", &header.signature_header)?;
    let identity: SerializedIdentity = decode("creator", &signature.creator)?;
    if identity.mspid.is_empty() || identity.id_bytes.is_empty() {
        return Err(bad("the creator has no MSP id or certificate"));
    }
    let Timestamp { seconds, nanos } = channel.timestamp.ok_or_else(|| bad("the channel header has no timestamp"))?;
    let timestamp = DateTime::from_timestamp(seconds, u32::try_from(nanos).unwrap_or(0)).ok_or_else(|| bad("timestamp out of range"))?;
    Ok((Creator::of(identity.mspid, &identity.id_bytes), timestamp))
}

/// Replies awaited by transactions, by channel and transaction id.
type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<ChaincodeMessage>>>>;

fn context_key(channel_id: &str, txid: &str) -> String {
    format!("{channel_id}\u{0}{txid}")
}

/// One transaction's view of the world state: requests over the peer's stream.
struct PeerState {
    txid: String,
    channel_id: String,
    outbound: mpsc::Sender<Result<ChaincodeMessage, tonic::Status>>,
    pending: Pending,
}

impl PeerState {
    async fn ask(&self, r#type: Type, payload: Vec<u8>) -> Result<Vec<u8>, ContractError> {
        let (reply, replied) = oneshot::channel();
        let key = context_key(&self.channel_id, &self.txid);
        self.pending.lock().map_err(|_| ContractError::Ledger("shim state poisoned".into()))?.insert(key, reply);
        let request = message(r#type, &self.txid, &self.channel_id, payload);
        self.outbound.send(Ok(request)).await.map_err(|_| ContractError::Ledger("the peer stream closed".into()))?;
        let answer = replied.await.map_err(|_| ContractError::Ledger("the peer stream closed before answering".into()))?;
        match Type::try_from(answer.r#type) {
            Ok(Type::Response) => Ok(answer.payload),
            Ok(Type::Error) => Err(ContractError::Ledger(String::from_utf8_lossy(&answer.payload).into_owned())),
            _ => Err(ContractError::Ledger(format!("the peer answered {} to {}", type_name(answer.r#type), r#type.as_str_name()))),
        }
    }
}

impl WorldState for PeerState {
    fn get<'a>(&'a mut self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, ContractError>> {
        async move {
            let value = self.ask(Type::GetState, GetState { key: key.to_owned(), collection: String::new() }.encode_to_vec()).await?;
            // The peer answers an absent key with an empty value.
            Ok((!value.is_empty()).then_some(value))
        }
        .boxed()
    }

    fn put<'a>(&'a mut self, key: &'a str, value: Vec<u8>) -> BoxFuture<'a, Result<(), ContractError>> {
        async move {
            self.ask(Type::PutState, PutState { key: key.to_owned(), value, collection: String::new() }.encode_to_vec()).await?;
            Ok(())
        }
        .boxed()
    }

    fn range<'a>(&'a mut self, start: &'a str, end: &'a str) -> BoxFuture<'a, Result<Entries, ContractError>> {
        async move {
            let unreadable = |e: prost::DecodeError| ContractError::Ledger(format!("range query answer: {e}"));
            let request = GetStateByRange { start_key: start.to_owned(), end_key: end.to_owned(), ..Default::default() };
            let mut page =
                QueryResponse::decode(self.ask(Type::GetStateByRange, request.encode_to_vec()).await?.as_slice()).map_err(unreadable)?;
            let mut entries = Vec::new();
            loop {
                for result in &page.results {
                    let kv = Kv::decode(result.result_bytes.as_slice()).map_err(unreadable)?;
                    entries.push((kv.key, kv.value));
                }
                if !page.has_more {
                    return Ok(entries);
                }
                let next = QueryStateNext { id: page.id.clone() }.encode_to_vec();
                page = QueryResponse::decode(self.ask(Type::QueryStateNext, next).await?.as_slice()).map_err(unreadable)?;
            }
        }
        .boxed()
    }
}

/// Runs one transaction and answers it.
async fn transact(request: ChaincodeMessage, outbound: mpsc::Sender<Result<ChaincodeMessage, tonic::Status>>, pending: Pending) {
    let (txid, channel_id) = (request.txid.clone(), request.channel_id.clone());
    let prepared = decode::<ChaincodeInput>("chaincode input", &request.payload)
        .and_then(|input| proposal_context(&txid, request.proposal.as_ref()).map(|context| (input, context)));
    let answer = match prepared {
        Err(error) => message(Type::Error, &txid, &channel_id, error.to_string().into_bytes()),
        Ok((input, (creator, timestamp))) => {
            let mut args = input.args.into_iter();
            let function = args.next().map(|f| String::from_utf8_lossy(&f).into_owned()).unwrap_or_default();
            let invocation = Invocation { function, args: args.collect(), creator, timestamp, transaction_id: txid.clone() };
            let mut state = PeerState { txid: txid.clone(), channel_id: channel_id.clone(), outbound: outbound.clone(), pending };
            let response = match invoke(&invocation, &mut state).await {
                Ok(payload) => Response { status: 200, message: String::new(), payload },
                Err(error) => {
                    tracing::info!(%txid, function = %invocation.function, status = error.status(), %error, "transaction refused");
                    Response { status: error.status(), message: error.to_string(), payload: Vec::new() }
                }
            };
            message(Type::Completed, &txid, &channel_id, response.encode_to_vec())
        }
    };
    let _ = outbound.send(Ok(answer)).await;
}

/// Where the handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Registering,
    Established,
    Ready,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Self::Registering => "waiting for REGISTERED",
            Self::Established => "waiting for READY",
            Self::Ready => "ready",
        }
    }
}

/// Serves one peer connection until the peer closes it or breaks the protocol.
async fn serve_peer(
    chaincode_id: String,
    mut inbound: impl Stream<Item = Result<ChaincodeMessage, tonic::Status>> + Unpin,
    outbound: mpsc::Sender<Result<ChaincodeMessage, tonic::Status>>,
) {
    let register = message(Type::Register, "", "", ChaincodeId { name: chaincode_id, ..Default::default() }.encode_to_vec());
    if outbound.send(Ok(register)).await.is_err() {
        return;
    }
    let pending: Pending = Arc::default();
    let mut stage = Stage::Registering;
    while let Some(Ok(received)) = inbound.next().await {
        let kind = Type::try_from(received.r#type).ok();
        match (stage, kind) {
            (_, Some(Type::Keepalive)) => {
                let _ = outbound.send(Ok(received)).await;
            }
            (Stage::Registering, Some(Type::Registered)) => stage = Stage::Established,
            (Stage::Established, Some(Type::Ready)) => stage = Stage::Ready,
            (Stage::Ready, Some(Type::Transaction | Type::Init)) => {
                tokio::spawn(transact(received, outbound.clone(), pending.clone()));
            }
            (Stage::Ready, Some(Type::Response | Type::Error)) => {
                let waiting = pending.lock().ok().and_then(|mut p| p.remove(&context_key(&received.channel_id, &received.txid)));
                match waiting {
                    Some(reply) => {
                        let _ = reply.send(received);
                    }
                    None => tracing::warn!(txid = %received.txid, "a reply for no waiting transaction; ignored"),
                }
            }
            (stage, _) => {
                let error = ShimError::Unexpected { got: type_name(received.r#type), state: stage.name() };
                tracing::warn!(%error, "closing the peer stream");
                let _ = outbound.send(Ok(message(Type::Error, &received.txid, &received.channel_id, error.to_string().into_bytes()))).await;
                return;
            }
        }
    }
}

/// The chaincode as a gRPC service.
#[derive(Debug, Clone)]
pub struct ChaincodeService {
    chaincode_id: String,
}

impl ChaincodeService {
    /// The service for the chaincode package id the peer knows it by
    /// (`CHAINCODE_ID`, e.g. `emr-ledger:<hash>`).
    pub fn new(chaincode_id: impl Into<String>) -> Self {
        Self { chaincode_id: chaincode_id.into() }
    }
}

type MessageStream = Pin<Box<dyn Stream<Item = Result<ChaincodeMessage, tonic::Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Chaincode for ChaincodeService {
    type ConnectStream = MessageStream;

    async fn connect(
        &self,
        request: tonic::Request<tonic::Streaming<ChaincodeMessage>>,
    ) -> Result<tonic::Response<Self::ConnectStream>, tonic::Status> {
        let (outbound, replies) = mpsc::channel(64);
        tokio::spawn(serve_peer(self.chaincode_id.clone(), request.into_inner(), outbound));
        Ok(tonic::Response::new(Box::pin(ReceiverStream::new(replies))))
    }
}
