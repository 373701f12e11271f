//! The blob store on an IPFS node, through the Kubo RPC API (`/api/v0`).
//!
//! A small typed client for the endpoints used — `add`, `cat`, `pin/ls`,
//! `pin/rm` and the MFS calls that record owners — on reqwest, the HTTP client
//! already in the build, instead of `ipfs-api-backend-hyper` (unreleased since
//! 2022; its dependency chain needs a yanked crate). Every call carries the
//! node-side `timeout` option and a client-side timeout: asking a node for a
//! CID it does not have would otherwise hang.
//!
//! Owners: each blob is also linked into the node's MFS at `/emr/<patient>/<cid>`;
//! erasing a patient removes that directory and unpins its blobs.
//!
//! Tolerated differences of the JS node (npm `ipfs` 0.66) from Kubo: `add`
//! answers CIDv1 in base58btc and `Size` as a number; CIDs are normalised to
//! base32 here, so the stored content id is Kubo's either way.

use std::time::Duration;

use emr_attachments::{BlobError, BlobReader, BlobStore, StoredBlob};
use emr_domain::ids::PatientId;
use emr_domain::values::ContentId;
use futures::TryStreamExt;
use futures::future::BoxFuture;
use serde_json::Value;
use tokio::io::AsyncRead;

/// A Kubo RPC API endpoint.
#[derive(Clone)]
pub struct KuboBlobStore {
    api: String,
    http: reqwest::Client,
    timeout: Duration,
}

fn unavailable(error: impl std::fmt::Display) -> BlobError {
    BlobError::Unavailable(error.to_string())
}

/// A CID in Kubo's default text form (base32 for CIDv1).
fn normalised(text: &str) -> Result<ContentId, BlobError> {
    let cid = cid::Cid::try_from(text).map_err(|e| unavailable(format!("the node answered an invalid CID {text}: {e}")))?;
    ContentId::parse(&cid.to_string()).map_err(unavailable)
}

impl KuboBlobStore {
    /// A client of the node whose RPC API is at `api` (e.g. `http://127.0.0.1:5001`).
    pub fn new(api: &str, timeout: Duration) -> Result<Self, BlobError> {
        let http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build().map_err(unavailable)?;
        Ok(Self { api: api.trim_end_matches('/').to_owned(), http, timeout })
    }

    fn url(&self, command: &str) -> String {
        format!("{}/api/v0/{command}", self.api)
    }

    async fn call(&self, command: &str, query: &[(&str, String)]) -> Result<reqwest::Response, BlobError> {
        let mut query = query.to_vec();
        query.push(("timeout", format!("{}ms", self.timeout.as_millis())));
        let response = self.http.post(self.url(command)).query(&query).timeout(self.timeout * 2).send().await.map_err(unavailable)?;
        if response.status().is_success() {
            return Ok(response);
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = body["Message"].as_str().unwrap_or("no message").to_owned();
        Err(BlobError::Unavailable(format!("{command}: {message}")))
    }

    async fn json(&self, command: &str, query: &[(&str, String)]) -> Result<Value, BlobError> {
        self.call(command, query).await?.json().await.map_err(unavailable)
    }

    fn owner_dir(owner: PatientId) -> String {
        format!("/emr/{owner}")
    }
}

impl BlobStore for KuboBlobStore {
    fn put<'a>(&'a self, owner: PatientId, blob: &'a mut (dyn AsyncRead + Send + Unpin)) -> BoxFuture<'a, Result<StoredBlob, BlobError>> {
        Box::pin(async move {
            // The body streams from `blob`; reqwest needs an owned 'static stream,
            // so chunks are forwarded through a channel while the request runs.
            let (sender, receiver) = futures::channel::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
            let body = reqwest::Body::wrap_stream(receiver);
            let part =
                reqwest::multipart::Part::stream(body).file_name("blob").mime_str("application/octet-stream").map_err(unavailable)?;
            let form = reqwest::multipart::Form::new().part("file", part);
            let query = [
                ("cid-version", "1"),
                ("raw-leaves", "true"),
                ("chunker", "size-262144"),
                ("hash", "sha2-256"),
                ("pin", "true"),
                ("progress", "false"),
            ];
            let request = self.http.post(self.url("add")).query(&query).multipart(form).send();
            let feeding = async move {
                let mut sender = sender;
                let mut buffer = vec![0_u8; 256 * 1024];
                loop {
                    let read = tokio::io::AsyncReadExt::read(blob, &mut buffer).await;
                    let done = matches!(read, Ok(0) | Err(_));
                    let item = read.map(|n| buffer[..n].to_vec());
                    if futures::SinkExt::send(&mut sender, item).await.is_err() || done {
                        return;
                    }
                }
            };
            let (response, ()) = tokio::join!(request, feeding);
            let response = response.map_err(unavailable)?;
            if !response.status().is_success() {
                return Err(BlobError::Unavailable(format!("add: {}", response.status())));
            }
            // `add` answers one JSON object per line; the last names the file.
            let text = response.text().await.map_err(unavailable)?;
            let last: Value = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .next_back()
                .map_or(Ok(Value::Null), serde_json::from_str)
                .map_err(unavailable)?;
            let content_id = normalised(last["Hash"].as_str().ok_or_else(|| unavailable("add answered no Hash"))?)?;
            let size = match &last["Size"] {
                Value::Number(n) => n.as_u64().unwrap_or(0),
                Value::String(s) => s.parse().unwrap_or(0),
                _ => 0,
            };
            let dir = Self::owner_dir(owner);
            self.json("files/mkdir", &[("arg", dir.clone()), ("parents", "true".into())]).await.ok();
            let link = format!("{dir}/{}", content_id.as_str());
            if let Err(error) = self.call("files/cp", &[("arg", format!("/ipfs/{}", content_id.as_str())), ("arg", link)]).await {
                // Already linked (a retried upload) is fine; anything else is not.
                if !error.to_string().contains("exist") {
                    return Err(error);
                }
            }
            Ok(StoredBlob { content_id, size })
        })
    }

    fn get<'a>(&'a self, content_id: &'a ContentId) -> BoxFuture<'a, Result<BlobReader, BlobError>> {
        Box::pin(async move {
            let response = self.call("cat", &[("arg", content_id.as_str().to_owned())]).await.map_err(|error| match error {
                BlobError::Unavailable(message) if message.contains("timed out") || message.contains("not found") => {
                    BlobError::NotFound(content_id.as_str().to_owned())
                }
                other => other,
            })?;
            let stream = response.bytes_stream().map_err(std::io::Error::other);
            Ok(Box::new(tokio_util::io::StreamReader::new(stream)) as BlobReader)
        })
    }

    fn is_pinned<'a>(&'a self, content_id: &'a ContentId) -> BoxFuture<'a, Result<bool, BlobError>> {
        Box::pin(async move {
            match self.json("pin/ls", &[("arg", content_id.as_str().to_owned()), ("type", "recursive".into())]).await {
                Ok(listing) => {
                    let keys = listing["Keys"].as_object().map(|keys| keys.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
                    Ok(keys.iter().any(|key| normalised(key).is_ok_and(|cid| &cid == content_id)))
                }
                Err(BlobError::Unavailable(message)) if message.contains("not pinned") => Ok(false),
                Err(error) => Err(error),
            }
        })
    }

    fn owned<'a>(&'a self, owner: PatientId) -> BoxFuture<'a, Result<Vec<ContentId>, BlobError>> {
        Box::pin(async move {
            let listing = match self.json("files/ls", &[("arg", Self::owner_dir(owner))]).await {
                Ok(listing) => listing,
                Err(BlobError::Unavailable(message)) if message.contains("not exist") || message.contains("not found") => {
                    return Ok(Vec::new());
                }
                Err(error) => return Err(error),
            };
            listing["Entries"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|entry| entry["Name"].as_str())
                .map(|name| ContentId::parse(name).map_err(|_| BlobError::Unavailable(format!("MFS entry `{name}` is not a content id"))))
                .collect()
        })
    }

    fn unpin_owner<'a>(&'a self, owner: PatientId) -> BoxFuture<'a, Result<usize, BlobError>> {
        Box::pin(async move {
            let owned = self.owned(owner).await?;
            for content_id in &owned {
                match self.call("pin/rm", &[("arg", content_id.as_str().to_owned())]).await {
                    Err(BlobError::Unavailable(message)) if !message.contains("not pinned") => return Err(BlobError::Unavailable(message)),
                    _ => {}
                }
            }
            if !owned.is_empty() {
                self.call("files/rm", &[("arg", Self::owner_dir(owner)), ("recursive", "true".into())]).await?;
            }
            Ok(owned.len())
        })
    }
}
