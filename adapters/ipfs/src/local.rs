//! The embedded blob store: sealed blobs in a directory, each named by the CID
//! `ipfs add --cid-version=1 --raw-leaves --chunker=size-262144` would give it,
//! so moving to an IPFS node later changes no stored content id.
//!
//! `blobs/<cid>` holds the bytes, `pins/<owner>/<cid>` pins it for the patient
//! whose key seals it; a blob is written to `tmp/` while its CID is computed,
//! then renamed into place, so a crash never leaves a partial blob under a CID.

use std::path::{Path, PathBuf};

use emr_attachments::{BlobError, BlobReader, BlobStore, StoredBlob};
use emr_domain::ids::PatientId;
use emr_domain::values::ContentId;
use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::unixfs::{DagBuilder, Layout};

/// Sealed blobs in a local directory.
pub struct LocalBlobStore {
    root: PathBuf,
}

fn unavailable(error: std::io::Error) -> BlobError {
    BlobError::Unavailable(error.to_string())
}

impl LocalBlobStore {
    /// A store in `root` (created when absent).
    pub fn open(root: &Path) -> Result<Self, BlobError> {
        for dir in ["blobs", "pins", "tmp"] {
            std::fs::create_dir_all(root.join(dir)).map_err(unavailable)?;
        }
        Ok(Self { root: root.to_owned() })
    }

    fn blob_path(&self, content_id: &ContentId) -> PathBuf {
        self.root.join("blobs").join(content_id.as_str())
    }

    fn owner_dir(&self, owner: PatientId) -> PathBuf {
        self.root.join("pins").join(owner.to_string())
    }
}

impl BlobStore for LocalBlobStore {
    fn put<'a>(&'a self, owner: PatientId, blob: &'a mut (dyn AsyncRead + Send + Unpin)) -> BoxFuture<'a, Result<StoredBlob, BlobError>> {
        Box::pin(async move {
            let temporary = self.root.join("tmp").join(uuid_like());
            let mut file = tokio::fs::File::create(&temporary).await.map_err(unavailable)?;
            let mut builder = DagBuilder::new(Layout::V1RawLeaves, |_: &cid::Cid, _: &[u8]| {});
            let mut buffer = vec![0_u8; 256 * 1024];
            let mut size = 0_u64;
            loop {
                let read = blob.read(&mut buffer).await.map_err(unavailable)?;
                if read == 0 {
                    break;
                }
                builder.write(&buffer[..read]);
                file.write_all(&buffer[..read]).await.map_err(unavailable)?;
                size += read as u64;
            }
            file.sync_all().await.map_err(unavailable)?;
            drop(file);
            let cid = builder.finish().to_string();
            let content_id = ContentId::parse(&cid).map_err(|e| BlobError::Unavailable(e.to_string()))?;
            tokio::fs::rename(&temporary, self.blob_path(&content_id)).await.map_err(unavailable)?;
            let owner_dir = self.owner_dir(owner);
            tokio::fs::create_dir_all(&owner_dir).await.map_err(unavailable)?;
            tokio::fs::write(owner_dir.join(content_id.as_str()), b"").await.map_err(unavailable)?;
            Ok(StoredBlob { content_id, size })
        })
    }

    fn get<'a>(&'a self, content_id: &'a ContentId) -> BoxFuture<'a, Result<BlobReader, BlobError>> {
        Box::pin(async move {
            match tokio::fs::File::open(self.blob_path(content_id)).await {
                Ok(file) => Ok(Box::new(file) as BlobReader),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobError::NotFound(content_id.as_str().to_owned())),
                Err(e) => Err(unavailable(e)),
            }
        })
    }

    fn is_pinned<'a>(&'a self, content_id: &'a ContentId) -> BoxFuture<'a, Result<bool, BlobError>> {
        Box::pin(async move {
            let mut owners = tokio::fs::read_dir(self.root.join("pins")).await.map_err(unavailable)?;
            while let Some(owner) = owners.next_entry().await.map_err(unavailable)? {
                if tokio::fs::try_exists(owner.path().join(content_id.as_str())).await.map_err(unavailable)? {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    fn owned<'a>(&'a self, owner: PatientId) -> BoxFuture<'a, Result<Vec<ContentId>, BlobError>> {
        Box::pin(async move {
            let mut pins = match tokio::fs::read_dir(self.owner_dir(owner)).await {
                Ok(pins) => pins,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(unavailable(e)),
            };
            let mut owned = Vec::new();
            while let Some(pin) = pins.next_entry().await.map_err(unavailable)? {
                let name = pin.file_name().to_string_lossy().into_owned();
                owned.push(ContentId::parse(&name).map_err(|_| BlobError::Unavailable(format!("pin `{name}` is not a content id")))?);
            }
            Ok(owned)
        })
    }

    fn unpin_owner<'a>(&'a self, owner: PatientId) -> BoxFuture<'a, Result<usize, BlobError>> {
        Box::pin(async move {
            let owned = self.owned(owner).await?;
            let dir = self.owner_dir(owner);
            for content_id in &owned {
                // The blob goes first: a crash between the two leaves a pin to
                // nothing, which the next call removes, never an unpinned blob.
                match tokio::fs::remove_file(self.root.join("blobs").join(content_id.as_str())).await {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(unavailable(e)),
                    _ => {}
                }
                tokio::fs::remove_file(dir.join(content_id.as_str())).await.map_err(unavailable)?;
            }
            let _ = tokio::fs::remove_dir(&dir).await;
            Ok(owned.len())
        })
    }
}

/// A unique temporary file name.
fn uuid_like() -> String {
    let mut bytes = [0_u8; 16];
    // The name only has to be unique among concurrent uploads.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_stored_blob_is_named_by_its_ipfs_cid_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        let owner = PatientId::new();
        let stored = store.put(owner, &mut &b"hello world\n"[..]).await.unwrap();
        assert_eq!(stored.content_id.as_str(), "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4");
        assert_eq!(stored.size, 12);
        let mut back = Vec::new();
        store.get(&stored.content_id).await.unwrap().read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"hello world\n");
        assert!(store.is_pinned(&stored.content_id).await.unwrap());
        assert_eq!(store.unpin_owner(PatientId::new()).await.unwrap(), 0, "another patient's erasure frees nothing of this one");
        assert!(store.is_pinned(&stored.content_id).await.unwrap());
        assert_eq!(store.unpin_owner(owner).await.unwrap(), 1);
        assert!(!store.is_pinned(&stored.content_id).await.unwrap());
        assert!(matches!(store.get(&stored.content_id).await, Err(BlobError::NotFound(_))));
    }
}
