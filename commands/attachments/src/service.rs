//! [`Attachments`]: upload and download, authorized by the clinic, sealed with
//! the patient's key, stored by content id, recorded as `AttachmentAdded`.

use std::sync::Arc;

use emr_commands::{Clinic, ClinicError, Receipt};
use emr_domain::actor::Actor;
use emr_domain::ids::{AttachmentId, DisclosureId, PatientId, RecordId};
use emr_domain::metadata::CommandContext;
use emr_domain::record::{AttachmentDescriptor, AttachmentSummary, RecordCommand};
use emr_domain::values::{MimeType, ShortText};
use emr_eventstore::{DataKey, KeyError};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::replication::{PeerReplica, PeerState, ReplicationReport, Replicator};
use crate::store::{BlobError, BlobReader, BlobStore};
use crate::stream::{self, BlobHeader, StreamError};

/// Why an upload or download failed.
#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    /// Authorization, the record's rules or the log refused it.
    #[error(transparent)]
    Clinic(#[from] ClinicError),
    /// Sealing or opening failed (tampered, truncated, wrong digest, I/O).
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The patient was erased: their data key is gone, the blob unreadable.
    #[error("the patient was erased; their attachments can no longer be opened")]
    Erased,
    /// The key service failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The reader takes files up to `limit` bytes; this one has `size`.
    #[error("the attachment has {size} bytes; this read takes at most {limit}")]
    TooLarge {
        /// The attachment's plaintext size.
        size: u64,
        /// The most the reader takes.
        limit: u64,
    },
}

/// What the client sends with the bytes.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The record it belongs to.
    pub record_id: RecordId,
    /// The attachment's id.
    pub attachment_id: AttachmentId,
    /// MIME type of the plaintext.
    pub mime_type: MimeType,
    /// Original file name (sealed as PHI in the event).
    pub filename: ShortText,
}

/// An authorized download, ready to stream.
pub struct Download {
    /// What is being read.
    pub attachment: AttachmentSummary,
    /// The disclosure that recorded the read.
    pub disclosure: Option<DisclosureId>,
    key: Arc<DataKey>,
    header: BlobHeader,
    blob: BlobReader,
}

impl Download {
    /// Streams the plaintext into `sink`; the last chunk is released only once
    /// the whole plaintext matched its recorded SHA-256.
    pub async fn stream_into(mut self, sink: &mut (dyn AsyncWrite + Send + Unpin)) -> Result<u64, AttachmentError> {
        let served = stream::open(&self.key, self.header, &self.attachment.sha256, &mut self.blob, sink).await.map(|opened| opened.size);
        crate::metrics::observe("served", &served);
        Ok(served?)
    }
}

/// Attachments of medical records.
#[derive(Clone)]
pub struct Attachments {
    clinic: Clinic,
    store: Arc<dyn BlobStore>,
    replicator: Option<Arc<dyn Replicator>>,
}

/// An attachment's facts, whether the store keeps it, and its replication.
#[derive(Debug, Clone)]
pub struct AttachmentStatus {
    /// What the record says of it.
    pub attachment: AttachmentSummary,
    /// Whether the blob store keeps (pins) it.
    pub pinned: bool,
    /// How far it is replicated, measured against the configured policy.
    pub replication: ReplicationReport,
}

impl Attachments {
    /// Attachments kept in `store`.
    pub fn new(clinic: Clinic, store: Arc<dyn BlobStore>) -> Self {
        Self { clinic, store, replicator: None }
    }

    /// Also asks `replicator` to replicate every stored blob under its policy.
    #[must_use]
    pub fn with_replication(mut self, replicator: Arc<dyn Replicator>) -> Self {
        self.replicator = Some(replicator);
        self
    }

    /// Seals `body` with the patient's key while storing it, then records the
    /// attachment. Authorization comes first: nothing is stored for a caller
    /// who may not amend the record.
    pub async fn upload(
        &self,
        context: &CommandContext,
        upload: Upload,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<Receipt, AttachmentError> {
        let (patient_id, earlier) = self.clinic.attachment_target(&context.actor, upload.record_id, upload.attachment_id).await?;
        if let Some(earlier) = earlier {
            // A retry of an upload that already landed (the attachment id is the
            // command id): answer the original receipt without storing again.
            if let Some(content_id) = earlier.content_id.clone() {
                let descriptor = AttachmentDescriptor {
                    attachment_id: upload.attachment_id,
                    content_id,
                    mime_type: upload.mime_type,
                    size_bytes: earlier.size_bytes,
                    sha256: earlier.sha256,
                    filename: upload.filename,
                    dicom: None,
                };
                return Ok(self.clinic.record(upload.record_id, RecordCommand::AddAttachment(descriptor), context).await?);
            }
        }
        let key = self.clinic.vault().key_for_sealing(patient_id).await?;
        let header = BlobHeader { patient_id, attachment_id: upload.attachment_id };
        // Sealing writes into one end of a pipe while the store reads the other:
        // memory stays at a few chunks whatever the file size.
        let (mut writer, mut reader) = tokio::io::duplex(256 * 1024);
        let is_dicom = upload.mime_type.as_str() == "application/dicom";
        let mut head = HeadCopy { inner: body, head: Vec::new(), keep: if is_dicom { crate::dicom::HEADER_BYTES } else { 0 } };
        let sealing = async {
            let sealed = stream::seal(&key, header, &mut head, &mut writer).await;
            drop(writer);
            sealed
        };
        let (sealed, stored) = tokio::join!(sealing, self.store.put(patient_id, &mut reader));
        let stored_bytes = match (&sealed, &stored) {
            (Ok(sealed), Ok(_)) => Ok(sealed.size),
            _ => Err(()),
        };
        crate::metrics::observe("stored", &stored_bytes);
        let (sealed, stored) = (sealed?, stored?);
        let dicom =
            if is_dicom { crate::dicom::summarize_within(std::mem::take(&mut head.head), upload.attachment_id).await } else { None };
        if let Some(replicator) = &self.replicator {
            // The blob is already durable in the store; a cluster that cannot be
            // reached now leaves it under-replicated, which its status reports,
            // rather than turning a clinician's upload away.
            if let Err(error) = replicator.replicate(&stored.content_id, &upload.attachment_id.to_string()).await {
                tracing::warn!(attachment = %upload.attachment_id, %error, "replication not requested; the blob is under-replicated");
            }
        }
        let descriptor = AttachmentDescriptor {
            attachment_id: upload.attachment_id,
            content_id: stored.content_id,
            mime_type: upload.mime_type,
            size_bytes: sealed.size,
            sha256: sealed.sha256,
            filename: upload.filename,
            dicom,
        };
        Ok(self.clinic.record(upload.record_id, RecordCommand::AddAttachment(descriptor), context).await?)
    }

    /// Authorizes a read of an attachment, opens its blob and records the read
    /// as a disclosure: recorded only once the content can be served.
    pub async fn download(&self, actor: &Actor, record_id: RecordId, attachment_id: AttachmentId) -> Result<Download, AttachmentError> {
        self.download_within(actor, record_id, attachment_id, u64::MAX).await
    }

    /// As [`Attachments::download`], for a reader that takes files of at most
    /// `max_bytes` (a preview holds the file whole): a larger one is refused
    /// before anything is recorded as disclosed.
    pub async fn download_within(
        &self,
        actor: &Actor,
        record_id: RecordId,
        attachment_id: AttachmentId,
        max_bytes: u64,
    ) -> Result<Download, AttachmentError> {
        let read = self.clinic.attachment_for_reading(actor, record_id, attachment_id).await?;
        let attachment = read.attachment().clone();
        if attachment.size_bytes > max_bytes {
            return Err(AttachmentError::TooLarge { size: attachment.size_bytes, limit: max_bytes });
        }
        let key = self.clinic.vault().key_for_opening(read.patient_id()).await?.ok_or(AttachmentError::Erased)?;
        let content_id = attachment.content_id.clone().ok_or(BlobError::NotFound(attachment_id.to_string()))?;
        let blob = self.store.get(&content_id).await?;
        let disclosure = self.clinic.disclose_attachment(&read).await?;
        Ok(Download { attachment, disclosure, key, header: BlobHeader { patient_id: read.patient_id(), attachment_id }, blob })
    }

    /// Frees an erased patient's blobs, on the replicas first and then in the
    /// store, so that a repeat after a crash still finds what to release. Their
    /// key is already destroyed, so this reclaims storage.
    pub async fn release_erased(&self, patient_id: PatientId) -> Result<usize, AttachmentError> {
        if let Some(replicator) = &self.replicator {
            for content_id in self.store.owned(patient_id).await? {
                replicator.release(&content_id).await?;
            }
        }
        Ok(self.store.unpin_owner(patient_id).await?)
    }

    /// An attachment's facts, pin and replication status.
    pub async fn status(
        &self,
        actor: &Actor,
        record_id: RecordId,
        attachment_id: AttachmentId,
    ) -> Result<AttachmentStatus, AttachmentError> {
        let attachment = self.clinic.attachment_metadata(actor, record_id, attachment_id).await?;
        let pinned = match &attachment.content_id {
            Some(content_id) => self.store.is_pinned(content_id).await?,
            None => false,
        };
        let replication = match (&self.replicator, &attachment.content_id) {
            // An unreachable cluster is part of the answer, not a failure of it.
            (Some(replicator), Some(content_id)) => match replicator.peers(content_id).await {
                Ok(peers) => ReplicationReport::judge(Some(replicator.policy().clone()), peers),
                Err(error) => ReplicationReport::unknown(replicator.policy().clone(), &error),
            },
            (Some(replicator), None) => ReplicationReport::judge(Some(replicator.policy().clone()), Vec::new()),
            (None, _) => {
                let state = if pinned { PeerState::Pinned } else { PeerState::Unpinned };
                ReplicationReport::judge(None, vec![PeerReplica { peer: "blob-store".into(), name: "primary".into(), state, error: None }])
            }
        };
        Ok(AttachmentStatus { attachment, pinned, replication })
    }

    /// The blob store.
    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }
}

/// Passes a stream through, keeping a copy of its first `keep` bytes.
struct HeadCopy<'a> {
    inner: &'a mut (dyn AsyncRead + Send + Unpin),
    head: Vec<u8>,
    keep: usize,
}

impl AsyncRead for HeadCopy<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
        buffer: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buffer.filled().len();
        let polled = std::pin::Pin::new(&mut *self.inner).poll_read(context, buffer);
        if polled.is_ready() {
            let room = self.keep.saturating_sub(self.head.len());
            let fresh = &buffer.filled()[before..];
            let take = room.min(fresh.len());
            let copied = fresh[..take].to_vec();
            self.head.extend_from_slice(&copied);
        }
        polled
    }
}
