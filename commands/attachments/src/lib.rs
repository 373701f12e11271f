//! Attachment blobs: imaging studies, scans and documents, encrypted before they
//! leave the process and streamed in bounded memory whatever their size.
//!
//! [`seal`] encrypts a plaintext stream with the patient's data key using the
//! STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár) over
//! XChaCha20-Poly1305, as the `chacha20poly1305` crate provides it: every chunk
//! carries its position and the last one a final flag in its nonce, so a
//! reordered, dropped, truncated or altered chunk fails authentication. It
//! returns the plaintext's SHA-256 and size, which the `AttachmentAdded` event
//! records. [`open`] decrypts and checks that hash before it reports success.

mod dicom;
mod metrics;
mod replication;
mod service;
mod store;
mod stream;

pub use dicom::summarize as summarize_dicom;
pub use replication::{PeerReplica, PeerState, ReplicationPolicy, ReplicationReport, ReplicationState, Replicator};
pub use service::{AttachmentError, AttachmentStatus, Attachments, Download, Upload};
pub use store::{BlobError, BlobReader, BlobStore, StoredBlob};
pub use stream::{BlobHeader, CHUNK_SIZE, Opened, Sealed, StreamError, open, seal};
