//! Content addressing exactly as IPFS (Kubo) does it, so that an attachment's
//! content id never depends on which blob store holds it.
//!
//! [`DagBuilder`] turns a byte stream into the UnixFS file DAG that `ipfs add`
//! builds — fixed 256 KiB chunks, a balanced tree of at most 174 links per node
//! — and yields every block with its CID, holding at most one chunk and one
//! partial node per tree level in memory, whatever the file size:
//! - [`Layout::V1RawLeaves`]: `ipfs add --cid-version=1 --raw-leaves
//!   --chunker=size-262144` (leaves are raw blocks; the product's default);
//! - [`Layout::V0`]: Kubo's default `ipfs add` (CIDv0, leaves wrapped in dag-pb).
//!
//! [`LocalBlobStore`] is the embedded default of the attachments' blob store port.

mod cluster;
mod dagpb;
mod kubo;
mod local;
mod unixfs;

pub use cid::Cid;
pub use cluster::ClusterReplicator;
pub use kubo::KuboBlobStore;
pub use local::LocalBlobStore;
pub use unixfs::{CHUNK_SIZE, DagBuilder, Layout, MAX_LINKS, cid_of};
