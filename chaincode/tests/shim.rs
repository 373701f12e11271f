//! The chaincode process, driven over the real shim protocol by a peer-side
//! harness (`emr_tests::fabric_peer`): handshake, interleaved transactions, state
//! reads and writes, keepalive, and errors as a peer sees them.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use chrono::{DateTime, Utc};
use emr_anchor::{NodeKey, TreeHead};
use emr_chaincode::fabric::protos::ChaincodeMessage;
use emr_chaincode::fabric::protos::chaincode_message::Type;
use emr_tests::fabric_peer::{CHANNEL, FabricPeer, Outcome, Submitter};

/// The `emr-chaincode` binary on a loopback port of its choosing, killed on drop.
struct ChaincodeProcess {
    child: Child,
    address: String,
}

impl ChaincodeProcess {
    fn start() -> Self {
        // The chaincode picks its own port and names it: a port chosen here and
        // handed over could be taken by a parallel test's process meanwhile.
        let mut child = Command::new(env!("CARGO_BIN_EXE_emr-chaincode"))
            .env("CHAINCODE_SERVER_ADDRESS", "127.0.0.1:0")
            .env("CHAINCODE_ID", "emr-ledger:0123abcd")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut first);
        match first.trim().strip_prefix("chaincode listening on ") {
            Some(address) => Self { child, address: address.to_owned() },
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("emr-chaincode did not name its address: {first:?}");
            }
        }
    }

    async fn peer(&self) -> FabricPeer {
        FabricPeer::connect(&self.address).await
    }
}

impl Drop for ChaincodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn signed_head(key: &NodeKey, size: u64, root_byte: u8) -> String {
    let mut head = TreeHead {
        size,
        root: format!("{root_byte:02x}").repeat(32),
        first_position: 1,
        last_position: size,
        signed_at: at("2026-11-24T10:00:00Z"),
        key: String::new(),
        signature: String::new(),
    };
    key.sign(&mut head);
    serde_json::to_string(&head).unwrap()
}

fn node_key() -> (tempfile::TempDir, NodeKey) {
    let dir = tempfile::tempdir().unwrap();
    let key = NodeKey::load_or_create(&dir.path().join("node.key")).unwrap();
    (dir, key)
}

#[tokio::test]
async fn the_chaincode_registers_with_its_package_id_and_echoes_keepalives() {
    let chaincode = ChaincodeProcess::start();
    let peer = chaincode.peer().await;
    assert_eq!(peer.registered_as, "emr-ledger:0123abcd");
    assert!(peer.keepalive().await, "KEEPALIVE is echoed");
    assert!(peer.protocol_errors().is_empty(), "{:?}", peer.protocol_errors());
}

#[tokio::test]
async fn an_anchored_head_reads_back_by_size_and_as_the_latest() {
    let chaincode = ChaincodeProcess::start();
    let peer = chaincode.peer().await;
    let (_dir, key) = node_key();
    let org1 = Submitter::new("Org1MSP", "anchor-worker");
    let now = at("2026-11-24T10:00:05Z");

    let recorded = peer.invoke(&org1, now, "RecordHead", &[&signed_head(&key, 10, 0xab)]).await.json();
    assert_eq!(recorded["size"], 10);
    let by_size = peer.invoke(&org1, now, "HeadBySize", &["10"]).await.json();
    assert_eq!(by_size, recorded);
    peer.invoke(&org1, now, "RecordHead", &[&signed_head(&key, 25, 0xcd)]).await.json();
    let latest = peer.invoke(&org1, now, "LatestHead", &[]).await.json();
    assert_eq!(latest["size"], 25);
    assert_eq!(latest["root"], "cd".repeat(32));
    assert_eq!(latest["transaction_id"].as_str().map(str::len), Some(64), "each head names the transaction that anchored it");
    assert!(peer.state("head~00000000000000000010").is_some(), "heads are keyed by zero-padded size");
    peer.invoke(&org1, now, "RecordHead", &[&signed_head(&key, 40, 0xef)]).await.json();
    let all = peer.invoke(&org1, now, "AnchoredHeads", &[]).await.json();
    let sizes: Vec<_> = all.as_array().unwrap().iter().map(|h| h["size"].as_u64().unwrap()).collect();
    assert_eq!(sizes, vec![10, 25, 40], "every head, smallest first, over paged range results");
    assert!(all[0]["transaction_id"].as_str().is_some_and(|t| t.len() == 64), "{all}");
    assert_eq!(peer.invoke(&org1, now, "HeadBySize", &["11"]).await.status(), 404);
}

#[tokio::test]
async fn a_different_root_for_an_anchored_size_is_refused_and_the_same_head_again_changes_nothing() {
    let chaincode = ChaincodeProcess::start();
    let peer = chaincode.peer().await;
    let (_dir, key) = node_key();
    let org1 = Submitter::new("Org1MSP", "anchor-worker");
    let now = at("2026-11-24T10:00:05Z");
    let head = signed_head(&key, 10, 0xab);
    peer.invoke(&org1, now, "RecordHead", &[&head]).await.json();

    let rewritten = peer.invoke(&org1, now, "RecordHead", &[&signed_head(&key, 10, 0xee)]).await;
    assert!(
        matches!(&rewritten, Outcome::Completed { status: 409, committed: false, message, .. } if message.contains("refusing root")),
        "{rewritten:?}"
    );
    let retried = peer.invoke(&org1, now, "RecordHead", &[&head]).await;
    assert_eq!(retried.status(), 200, "a retried submission of the same head succeeds");
    let older = peer.invoke(&org1, now, "RecordHead", &[&signed_head(&key, 5, 0x01)]).await;
    assert_eq!(older.status(), 409, "a head smaller than the latest does not extend the log: {older:?}");
    assert_eq!(peer.invoke(&org1, now, "HeadBySize", &["10"]).await.json()["root"], "ab".repeat(32));
}

#[tokio::test]
async fn heads_with_a_broken_signature_or_malformed_arguments_are_refused_with_400() {
    let chaincode = ChaincodeProcess::start();
    let peer = chaincode.peer().await;
    let (_dir, key) = node_key();
    let org1 = Submitter::new("Org1MSP", "anchor-worker");
    let now = at("2026-11-24T10:00:05Z");
    let mut forged: serde_json::Value = serde_json::from_str(&signed_head(&key, 10, 0xab)).unwrap();
    forged["root"] = serde_json::json!("ee".repeat(32));
    for (function, args) in [
        ("RecordHead", vec![forged.to_string()]),
        ("RecordHead", vec!["{not json".to_owned()]),
        ("RecordHead", vec![]),
        ("HeadBySize", vec!["ten".to_owned()]),
        ("GrantPermission", vec!["patient-1".into(), "dr-li".into(), "read,teleport".into(), "2027-01-01T00:00:00Z".into()]),
        ("GrantPermission", vec!["patient 1".into(), "dr-li".into(), "read".into(), "2027-01-01T00:00:00Z".into()]),
        ("NoSuchFunction", vec![]),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let outcome = peer.invoke(&org1, now, function, &args).await;
        assert!(matches!(&outcome, Outcome::Completed { status: 400, committed: false, .. }), "{function}{args:?}: {outcome:?}");
    }
    assert!(peer.state("head~latest").is_none(), "nothing was written");
}

#[tokio::test]
async fn a_transaction_the_shim_cannot_read_gets_an_error_message_and_the_stream_goes_on() {
    let chaincode = ChaincodeProcess::start();
    let peer = chaincode.peer().await;
    let garbage = ChaincodeMessage {
        r#type: Type::Transaction as i32,
        payload: vec![0xff, 0xff, 0xff],
        txid: "tx-garbage".into(),
        channel_id: CHANNEL.into(),
        ..Default::default()
    };
    assert!(matches!(peer.transact(garbage).await, Outcome::Error(reason) if reason.contains("malformed")));
    let unsigned = ChaincodeMessage {
        r#type: Type::Transaction as i32,
        payload: Vec::new(),
        txid: "tx-unsigned".into(),
        channel_id: CHANNEL.into(),
        ..Default::default()
    };
    assert!(matches!(peer.transact(unsigned).await, Outcome::Error(reason) if reason.contains("no signed proposal")));
    let org1 = Submitter::new("Org1MSP", "anchor-worker");
    assert_eq!(peer.invoke(&org1, at("2026-11-24T10:00:05Z"), "LatestHead", &[]).await.status(), 404, "still serving");
}

#[tokio::test]
async fn a_grant_takes_its_granting_identity_and_time_from_the_proposal() {
    let chaincode = ChaincodeProcess::start();
    let peer = chaincode.peer().await;
    let doctor = Submitter::new("Org1MSP", "dr-wang");
    let other = Submitter::new("Org2MSP", "dr-zhang");
    let granted_at = at("2026-11-24T10:00:00Z");

    let grant = peer
        .invoke(&doctor, granted_at, "GrantPermission", &["patient-1", "dr-li", "read,write,read", "2026-12-24T10:00:00Z"])
        .await
        .json();
    assert_eq!(grant["granted_by"]["msp_id"], "Org1MSP");
    assert_eq!(grant["granted_by"]["certificate_sha256"], doctor.fingerprint());
    assert_eq!(grant["granted_at"], "2026-11-24T10:00:00Z");
    assert_eq!(grant["scopes"], serde_json::json!(["read", "write"]));
    peer.invoke(&other, granted_at, "GrantPermission", &["patient-1", "nurse-chen", "read", "2026-11-25T10:00:00Z"]).await.json();

    let active = peer.invoke(&doctor, at("2026-11-24T12:00:00Z"), "ActivePermissions", &["patient-1"]).await.json();
    assert_eq!(active.as_array().unwrap().len(), 2);
    let later = peer.invoke(&doctor, at("2026-11-30T00:00:00Z"), "ActivePermissions", &["patient-1"]).await.json();
    assert_eq!(later.as_array().unwrap().len(), 1, "the nurse's grant expired by the transaction's time: {later}");

    let stolen = peer.invoke(&other, at("2026-11-24T12:00:00Z"), "RevokePermission", &["patient-1", "dr-li"]).await;
    assert_eq!(stolen.status(), 403, "only the granting identity revokes: {stolen:?}");
    let revoked = peer.invoke(&doctor, at("2026-11-24T12:00:00Z"), "RevokePermission", &["patient-1", "dr-li"]).await.json();
    assert_eq!(revoked["revoked_at"], "2026-11-24T12:00:00Z");
    let active = peer.invoke(&doctor, at("2026-11-24T12:00:01Z"), "ActivePermissions", &["patient-1"]).await.json();
    assert_eq!(active.as_array().unwrap().iter().map(|p| p["grantee"].clone()).collect::<Vec<_>>(), vec!["nurse-chen"]);
    let past = peer.invoke(&doctor, granted_at, "GrantPermission", &["patient-2", "dr-li", "read", "2026-11-24T09:00:00Z"]).await;
    assert_eq!(past.status(), 400, "an expiry before the transaction's time: {past:?}");
}

#[tokio::test]
async fn interleaved_transactions_each_get_their_own_answers_and_conflicting_writes_do_not_both_commit() {
    let chaincode = ChaincodeProcess::start();
    let peer = std::sync::Arc::new(chaincode.peer().await);
    let doctor = Submitter::new("Org1MSP", "dr-wang");
    let now = at("2026-11-24T10:00:00Z");
    // Twenty grants at once: ten patients, two grantees each, all in flight together.
    let mut tasks = Vec::new();
    for n in 0..20 {
        let (peer, doctor) = (peer.clone(), doctor.clone());
        tasks.push(tokio::spawn(async move {
            let patient = format!("patient-{}", n % 10);
            let grantee = format!("dr-{n}");
            (
                patient.clone(),
                grantee.clone(),
                peer.invoke(&doctor, now, "GrantPermission", &[&patient, &grantee, "read", "2027-01-01T00:00:00Z"]).await,
            )
        }));
    }
    let mut committed = 0;
    for task in tasks {
        let (_, grantee, outcome) = task.await.unwrap();
        match outcome {
            Outcome::Completed { status: 200, committed: true, payload, .. } => {
                let grant: serde_json::Value = serde_json::from_slice(&payload).unwrap();
                assert_eq!(grant["grantee"], grantee.as_str(), "each transaction got its own response");
                committed += 1;
            }
            Outcome::Completed { status: 200, committed: false, .. } => {} // MVCC: another grant on the same patient won
            other => panic!("{other:?}"),
        }
    }
    let mut stored = 0;
    for patient in 0..10 {
        let active = peer.invoke(&doctor, now, "ActivePermissions", &[&format!("patient-{patient}")]).await.json();
        stored += active.as_array().unwrap().len();
    }
    assert_eq!(stored, committed, "exactly the committed grants are in the world state");
    assert!(committed >= 10, "at least one grant per patient commits");
}
