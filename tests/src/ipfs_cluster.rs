//! A peer-side harness of the IPFS Cluster REST API, for replication tests.
//!
//! No `ipfs-cluster-service` binary can be installed on these machines, so this
//! serves the endpoints the replicator calls, answering as a cluster peer does
//! (see the cluster's `api.GlobalPinInfo` and `api.PinInfoShort`):
//! - `POST /pins/{cid}?replication-min=&replication-max=&name=`: allocates the pin
//!   to up to `max` online peers, or answers 500 when fewer than `min` are online;
//! - `GET /pins/{cid}`: `{"cid", "name", "allocations", "peer_map": {peer:
//!   {"peername", "status", "timestamp", "error"}}}`, where an allocated peer is
//!   `pinned` (or `pin_error` if it is set to fail), an online peer that was not
//!   chosen is `remote`, an offline one `cluster_error`, and an untracked CID
//!   `unpinned` on every peer;
//! - `DELETE /pins/{cid}`: untracks it (404 `{"code", "message"}` if untracked).
//!
//! What it does not do is move bytes: peers here hold no blocks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

/// How a simulated peer behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// Pins what it is allocated.
    Healthy,
    /// Is allocated pins but fails to fetch them.
    FailsPins,
    /// Cannot be reached; never allocated.
    Offline,
}

#[derive(Default)]
struct Pins {
    /// CID → (name, allocated peer ids).
    tracked: BTreeMap<String, (String, Vec<String>)>,
}

#[derive(Clone)]
struct Cluster {
    peers: Arc<Vec<(String, Peer)>>,
    pins: Arc<Mutex<Pins>>,
}

/// A running harness; stops when dropped.
pub struct ClusterHarness {
    url: String,
    pins: Arc<Mutex<Pins>>,
    server: tokio::task::JoinHandle<()>,
}

impl ClusterHarness {
    /// Serves a cluster of `peers` on a free loopback port.
    pub async fn start(peers: &[Peer]) -> Self {
        let peers: Vec<(String, Peer)> = peers.iter().enumerate().map(|(i, peer)| (format!("12D3KooWPeer{i}"), *peer)).collect();
        let cluster = Cluster { peers: Arc::new(peers), pins: Arc::default() };
        let router = axum::Router::new().route("/pins/{cid}", post(pin).get(status).delete(unpin)).with_state(cluster.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("loopback port");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { url, pins: cluster.pins, server }
    }

    /// The REST API's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The CIDs the cluster tracks.
    pub fn tracked(&self) -> Vec<String> {
        self.pins.lock().unwrap_or_else(|p| p.into_inner()).tracked.keys().cloned().collect()
    }
}

impl Drop for ClusterHarness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn error(status: StatusCode, message: String) -> (StatusCode, Json<Value>) {
    (status, Json(json!({"code": status.as_u16(), "message": message})))
}

fn pin_json(cid: &str, name: &str, allocations: &[String]) -> Value {
    json!({"cid": cid, "name": name, "allocations": allocations, "type": "pin", "max_depth": -1})
}

async fn pin(
    State(cluster): State<Cluster>,
    Path(cid): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let number = |key: &str| query.get(key).map_or(Ok(-1), |v| v.parse::<i64>().map_err(|_| format!("{key}: not a number")));
    let (min, max) = match (number("replication-min"), number("replication-max")) {
        (Ok(min), Ok(max)) => (min, max),
        (Err(message), _) | (_, Err(message)) => return Err(error(StatusCode::BAD_REQUEST, message)),
    };
    let online: Vec<String> = cluster.peers.iter().filter(|(_, peer)| *peer != Peer::Offline).map(|(id, _)| id.clone()).collect();
    let wanted = if max < 0 { online.len() } else { usize::try_from(max).unwrap_or(0).min(online.len()) };
    if usize::try_from(min).is_ok_and(|min| online.len() < min) {
        return Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "not enough peers to allocate CID. Needed at least: {min}. Wanted at most: {max}. Available candidates: {}",
                online.len()
            ),
        ));
    }
    let name = query.get("name").cloned().unwrap_or_default();
    let allocations: Vec<String> = online.into_iter().take(wanted).collect();
    let mut pins = cluster.pins.lock().unwrap_or_else(|p| p.into_inner());
    let entry = pins.tracked.entry(cid.clone()).or_insert_with(|| (name, allocations));
    Ok(Json(pin_json(&cid, &entry.0, &entry.1)))
}

async fn status(State(cluster): State<Cluster>, Path(cid): Path<String>) -> Json<Value> {
    let pins = cluster.pins.lock().unwrap_or_else(|p| p.into_inner());
    let tracked = pins.tracked.get(&cid);
    let peer_map: serde_json::Map<String, Value> = cluster
        .peers
        .iter()
        .enumerate()
        .map(|(i, (id, peer))| {
            let allocated = tracked.is_some_and(|(_, allocations)| allocations.contains(id));
            let (status, error) = match (tracked, peer, allocated) {
                (None, _, _) => ("unpinned", ""),
                (Some(_), Peer::Offline, _) => ("cluster_error", "peer unreachable"),
                (Some(_), Peer::FailsPins, true) => ("pin_error", "context deadline exceeded"),
                (Some(_), _, true) => ("pinned", ""),
                (Some(_), _, false) => ("remote", ""),
            };
            let info = json!({"peername": format!("peer-{i}"), "status": status, "timestamp": "2026-11-24T00:00:00Z", "error": error});
            (id.clone(), info)
        })
        .collect();
    let (name, allocations) = tracked.cloned().unwrap_or_default();
    Json(json!({"cid": cid, "name": name, "allocations": allocations, "peer_map": peer_map}))
}

async fn unpin(State(cluster): State<Cluster>, Path(cid): Path<String>) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let mut pins = cluster.pins.lock().unwrap_or_else(|p| p.into_inner());
    match pins.tracked.remove(&cid) {
        Some((name, allocations)) => Ok(Json(pin_json(&cid, &name, &allocations))),
        None => Err(error(StatusCode::NOT_FOUND, "cid is not part of the global state".into())),
    }
}
