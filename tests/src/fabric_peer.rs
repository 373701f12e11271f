//! A peer-side harness of the chaincode shim protocol: what a Fabric peer does
//! with a chaincode-as-a-service, over the real gRPC stream, with the world
//! state in memory.
//!
//! It dials the chaincode's `Connect`, expects `REGISTER`, answers `REGISTERED`
//! and `READY`, then sends `TRANSACTION`s carrying a signed proposal (built by
//! the Gateway client's own `emr_fabric::propose`) and serves the
//! chaincode's `GET_STATE` / `PUT_STATE` like a peer simulating a proposal: reads
//! see the committed state (not the transaction's own writes), writes collect in
//! a write set, and a successful transaction commits only if no key it read
//! changed meanwhile (Fabric's MVCC validation).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use emr_chaincode::Creator;
use emr_chaincode::fabric::protos::chaincode_client::ChaincodeClient;
use emr_chaincode::fabric::protos::chaincode_message::Type;
use emr_chaincode::fabric::protos::{
    ChaincodeId, ChaincodeInput, ChaincodeMessage, GetState, GetStateByRange, Kv, PutState, QueryResponse, QueryResultBytes,
    QueryStateNext, Response,
};
use emr_fabric::{Identity, Signer, Target};
use futures::StreamExt;
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

/// The channel every harness transaction runs on.
pub const CHANNEL: &str = "emr-channel";

/// An identity submitting transactions, with its signing key: proposals are
/// built and signed by the Gateway client's own code (`emr_fabric::propose`).
#[derive(Debug, Clone)]
pub struct Submitter {
    /// The MSP id and certificate.
    pub identity: Identity,
    signer: Signer,
}

impl Submitter {
    /// An identity of `msp_id` named `name`, with a fresh P-256 key (a stand-in
    /// certificate: the shim never verifies it; the peer did, before the chaincode
    /// saw the proposal).
    pub fn new(msp_id: &str, name: &str) -> Self {
        let certificate = format!("-----BEGIN CERTIFICATE-----\n{name}@{msp_id}\n-----END CERTIFICATE-----\n").into_bytes();
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        Self { identity: Identity::new(msp_id, certificate).unwrap(), signer: Signer::from_pkcs8_der(pkcs8.as_ref()).unwrap() }
    }

    /// SHA-256 of the certificate, hex: how the chaincode names the identity.
    pub fn fingerprint(&self) -> String {
        Creator::of(self.identity.msp_id.clone(), &self.identity.certificate_pem).certificate_sha256
    }
}

/// How a transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `COMPLETED`: the chaincode's response (status 200 on success, ≥ 400 when
    /// it refused) and whether the write set was committed.
    Completed {
        /// The response.
        status: i32,
        /// Its message.
        message: String,
        /// Its payload.
        payload: Vec<u8>,
        /// The write set was committed (success and no MVCC conflict).
        committed: bool,
    },
    /// `ERROR`: the message could not be handled at all.
    Error(String),
}

impl Outcome {
    /// The payload of a successful, committed transaction as JSON; panics otherwise.
    pub fn json(&self) -> serde_json::Value {
        match self {
            Self::Completed { status: 200, payload, committed: true, .. } => serde_json::from_slice(payload).unwrap(),
            other => panic!("expected a committed success, got {other:?}"),
        }
    }

    /// The response status (0 for `ERROR`).
    pub fn status(&self) -> i32 {
        match self {
            Self::Completed { status, .. } => *status,
            Self::Error(_) => 0,
        }
    }
}

#[derive(Default)]
struct Simulation {
    /// Key → version read.
    reads: HashMap<String, u64>,
    writes: BTreeMap<String, Vec<u8>>,
}

#[derive(Default)]
struct Ledger {
    /// Key → (value, version).
    state: BTreeMap<String, (Vec<u8>, u64)>,
    simulations: HashMap<String, Simulation>,
    waiting: HashMap<String, oneshot::Sender<ChaincodeMessage>>,
    keepalives: usize,
    protocol_errors: Vec<String>,
    /// Open range queries: id → the results not yet sent.
    queries: HashMap<String, Vec<Kv>>,
}

/// Results per range-query page: small, so paging (`QUERY_STATE_NEXT`) is exercised.
const PAGE: usize = 2;

fn page(queries: &mut HashMap<String, Vec<Kv>>, id: &str, mut rest: Vec<Kv>) -> Vec<u8> {
    let tail = rest.split_off(rest.len().min(PAGE));
    let has_more = !tail.is_empty();
    if has_more {
        queries.insert(id.to_owned(), tail);
    }
    let results = rest.into_iter().map(|kv| QueryResultBytes { result_bytes: kv.encode_to_vec() }).collect();
    QueryResponse { results, has_more, id: id.to_owned(), metadata: Vec::new() }.encode_to_vec()
}

/// A peer connected to one chaincode.
pub struct FabricPeer {
    outbound: mpsc::Sender<ChaincodeMessage>,
    ledger: Arc<Mutex<Ledger>>,
    /// The name the chaincode registered with.
    pub registered_as: String,
}

fn send_now(outbound: &mpsc::Sender<ChaincodeMessage>, message: ChaincodeMessage) {
    // The harness's own queue is far larger than any test's traffic.
    let _ = outbound.try_send(message);
}

impl FabricPeer {
    /// Dials the chaincode at `address` and completes the handshake.
    pub async fn connect(address: &str) -> Self {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
        let (outbound, queued) = mpsc::channel::<ChaincodeMessage>(1024);
        let mut inbound = ChaincodeClient::new(channel).connect(ReceiverStream::new(queued)).await.unwrap().into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), inbound.next()).await.expect("REGISTER in time").unwrap().unwrap();
        assert_eq!(Type::try_from(first.r#type), Ok(Type::Register), "the chaincode speaks first, with REGISTER");
        let registered_as = ChaincodeId::decode(first.payload.as_slice()).unwrap().name;
        for kind in [Type::Registered, Type::Ready] {
            outbound.send(ChaincodeMessage { r#type: kind as i32, ..Default::default() }).await.unwrap();
        }
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        tokio::spawn(Self::serve(inbound, outbound.clone(), ledger.clone()));
        Self { outbound, ledger, registered_as }
    }

    /// Answers the chaincode's requests; hands `COMPLETED`/`ERROR` to the waiting caller.
    async fn serve(mut inbound: tonic::Streaming<ChaincodeMessage>, outbound: mpsc::Sender<ChaincodeMessage>, ledger: Arc<Mutex<Ledger>>) {
        while let Some(Ok(message)) = inbound.next().await {
            let mut ledger = ledger.lock().unwrap();
            let reply = |r#type: Type, payload: Vec<u8>| ChaincodeMessage {
                r#type: r#type as i32,
                payload,
                txid: message.txid.clone(),
                channel_id: message.channel_id.clone(),
                ..Default::default()
            };
            match Type::try_from(message.r#type) {
                Ok(Type::GetState) => {
                    let key = GetState::decode(message.payload.as_slice()).unwrap().key;
                    let (value, version) = ledger.state.get(&key).cloned().unwrap_or_default();
                    match ledger.simulations.get_mut(&message.txid) {
                        Some(simulation) => {
                            simulation.reads.insert(key, version);
                            send_now(&outbound, reply(Type::Response, value));
                        }
                        None => send_now(&outbound, reply(Type::Error, b"no such transaction".to_vec())),
                    }
                }
                Ok(Type::PutState) => {
                    let put = PutState::decode(message.payload.as_slice()).unwrap();
                    match ledger.simulations.get_mut(&message.txid) {
                        Some(simulation) if !put.key.is_empty() => {
                            simulation.writes.insert(put.key, put.value);
                            send_now(&outbound, reply(Type::Response, Vec::new()));
                        }
                        _ => send_now(&outbound, reply(Type::Error, b"invalid PUT_STATE".to_vec())),
                    }
                }
                Ok(Type::GetStateByRange) => {
                    let range = GetStateByRange::decode(message.payload.as_slice()).unwrap();
                    let matches: Vec<(String, (Vec<u8>, u64))> =
                        ledger.state.range(range.start_key.clone()..range.end_key.clone()).map(|(k, v)| (k.clone(), v.clone())).collect();
                    let Some(simulation) = ledger.simulations.get_mut(&message.txid) else {
                        send_now(&outbound, reply(Type::Error, b"no such transaction".to_vec()));
                        continue;
                    };
                    for (key, (_, version)) in &matches {
                        simulation.reads.insert(key.clone(), *version);
                    }
                    let results = matches.into_iter().map(|(key, (value, _))| Kv { namespace: "emr-ledger".into(), key, value }).collect();
                    let id = format!("{}-query", message.txid);
                    let answer = page(&mut ledger.queries, &id, results);
                    send_now(&outbound, reply(Type::Response, answer));
                }
                Ok(Type::QueryStateNext) => {
                    let id = QueryStateNext::decode(message.payload.as_slice()).unwrap().id;
                    match ledger.queries.remove(&id) {
                        Some(rest) => {
                            let answer = page(&mut ledger.queries, &id, rest);
                            send_now(&outbound, reply(Type::Response, answer));
                        }
                        None => send_now(&outbound, reply(Type::Error, b"no such query".to_vec())),
                    }
                }
                Ok(Type::Keepalive) => ledger.keepalives += 1,
                Ok(Type::Completed | Type::Error) => {
                    if let Some(waiting) = ledger.waiting.remove(&message.txid) {
                        let _ = waiting.send(message);
                    }
                }
                _ => ledger.protocol_errors.push(format!("unexpected message type {} from the chaincode", message.r#type)),
            }
        }
    }

    /// Submits `function(args)` as `submitter` at `timestamp`; waits for its end.
    pub async fn invoke(&self, submitter: &Submitter, timestamp: DateTime<Utc>, function: &str, args: &[&str]) -> Outcome {
        let input = ChaincodeInput {
            args: std::iter::once(function).chain(args.iter().copied()).map(|a| a.as_bytes().to_vec()).collect(),
            ..Default::default()
        };
        let target = Target { channel: CHANNEL.into(), chaincode: "emr-ledger".into() };
        let arguments: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        let proposed = emr_fabric::propose(&submitter.identity, &submitter.signer, &target, function, &arguments, timestamp);
        self.transact(ChaincodeMessage {
            r#type: Type::Transaction as i32,
            payload: input.encode_to_vec(),
            txid: proposed.transaction_id,
            proposal: Some(proposed.signed),
            channel_id: CHANNEL.into(),
            ..Default::default()
        })
        .await
    }

    /// Sends any transaction message (malformed ones included); waits for its end.
    pub async fn transact(&self, message: ChaincodeMessage) -> Outcome {
        let txid = message.txid.clone();
        let (done, finished) = oneshot::channel();
        {
            let mut ledger = self.ledger.lock().unwrap();
            ledger.simulations.insert(txid.clone(), Simulation::default());
            ledger.waiting.insert(txid.clone(), done);
        }
        self.outbound.send(message).await.unwrap();
        let end = tokio::time::timeout(Duration::from_secs(10), finished).await.expect("the chaincode answers in time").unwrap();
        let mut ledger = self.ledger.lock().unwrap();
        let simulation = ledger.simulations.remove(&txid).unwrap_or_default();
        match Type::try_from(end.r#type) {
            Ok(Type::Completed) => {
                let response = Response::decode(end.payload.as_slice()).unwrap();
                let valid = simulation.reads.iter().all(|(key, version)| ledger.state.get(key).map_or(0, |(_, v)| *v) == *version);
                let committed = response.status < 400 && valid;
                if committed {
                    for (key, value) in simulation.writes {
                        let version = ledger.state.get(&key).map_or(0, |(_, v)| *v) + 1;
                        ledger.state.insert(key, (value, version));
                    }
                }
                Outcome::Completed { status: response.status, message: response.message, payload: response.payload, committed }
            }
            _ => Outcome::Error(String::from_utf8_lossy(&end.payload).into_owned()),
        }
    }

    /// Sends a `KEEPALIVE` and waits until the chaincode echoed one more.
    pub async fn keepalive(&self) -> bool {
        let before = self.ledger.lock().unwrap().keepalives;
        self.outbound.send(ChaincodeMessage { r#type: Type::Keepalive as i32, ..Default::default() }).await.unwrap();
        for _ in 0..200 {
            if self.ledger.lock().unwrap().keepalives > before {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Committed value at `key`.
    pub fn state(&self, key: &str) -> Option<Vec<u8>> {
        self.ledger.lock().unwrap().state.get(key).map(|(value, _)| value.clone())
    }

    /// Messages the chaincode sent that a peer would not expect.
    pub fn protocol_errors(&self) -> Vec<String> {
        self.ledger.lock().unwrap().protocol_errors.clone()
    }
}
