//! The blob store port: where sealed attachment blobs live, addressed by the
//! CID IPFS gives them. Adapters: the embedded local store (`emr-ipfs`) and,
//! with its issue, a Kubo RPC client.

use emr_domain::ids::PatientId;
use emr_domain::values::ContentId;
use futures::future::BoxFuture;
use tokio::io::AsyncRead;

/// A readable stream of sealed bytes.
pub type BlobReader = Box<dyn AsyncRead + Send + Unpin>;

/// A blob store failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// No blob with this content id (never stored, or unpinned and collected).
    #[error("no blob {0}")]
    NotFound(String),
    /// The store is unreachable or failed.
    #[error("blob store: {0}")]
    Unavailable(String),
}

/// A stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// Its CIDv1 (raw leaves, 256 KiB chunks: what `ipfs add --cid-version=1 --raw-leaves` gives).
    pub content_id: ContentId,
    /// Sealed bytes.
    pub size: u64,
}

/// Content-addressed storage of sealed blobs. Every blob is pinned under its
/// owner (the patient whose key seals it), so that erasing a patient can unpin
/// all of their blobs without an index of their records.
pub trait BlobStore: Send + Sync {
    /// Stores the bytes read from `blob`, streaming, and pins them for `owner`.
    fn put<'a>(&'a self, owner: PatientId, blob: &'a mut (dyn AsyncRead + Send + Unpin)) -> BoxFuture<'a, Result<StoredBlob, BlobError>>;
    /// Streams a blob's bytes.
    fn get<'a>(&'a self, content_id: &'a ContentId) -> BoxFuture<'a, Result<BlobReader, BlobError>>;
    /// Whether the blob is pinned (kept).
    fn is_pinned<'a>(&'a self, content_id: &'a ContentId) -> BoxFuture<'a, Result<bool, BlobError>>;
    /// The blobs pinned for `owner`.
    fn owned<'a>(&'a self, owner: PatientId) -> BoxFuture<'a, Result<Vec<ContentId>, BlobError>>;
    /// Unpins every blob of `owner`; the store may then collect them. Returns how many.
    fn unpin_owner<'a>(&'a self, owner: PatientId) -> BoxFuture<'a, Result<usize, BlobError>>;
}
