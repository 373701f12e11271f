//! The sealed blob format, `emr-blob/1`:
//!
//! ```text
//! "EMRB1" | 19-byte random nonce prefix | chunk 0 | chunk 1 | … | last chunk
//! ```
//!
//! Every chunk but the last holds [`CHUNK_SIZE`] plaintext bytes plus a 16-byte
//! tag; the last holds the remaining 0..=CHUNK_SIZE bytes plus its tag and is
//! sealed with STREAM's last-chunk flag. The associated data binds the blob to
//! its patient and attachment, so a blob cannot be passed off as another's.

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::{KeyInit, Payload};
use emr_domain::ids::{AttachmentId, PatientId};
use emr_domain::values::Sha256Digest;
use emr_eventstore::DataKey;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Plaintext bytes per chunk.
pub const CHUNK_SIZE: usize = 64 * 1024;
const TAG: usize = 16;
const MAGIC: &[u8; 5] = b"EMRB1";
/// XChaCha20's 24-byte nonce minus STREAM's 5 bytes of counter and flag.
const NONCE_PREFIX: usize = 19;

/// Why a blob could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Reading or writing failed.
    #[error("blob I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Not a sealed blob of a known format.
    #[error("not an emr-blob/1 stream")]
    NotABlob,
    /// A chunk failed authentication: altered, reordered, truncated, or sealed
    /// with another key or for another attachment.
    #[error("chunk {index} failed authentication (altered, reordered, truncated, or not this attachment's)")]
    Corrupt {
        /// The chunk's position.
        index: u64,
    },
    /// The final chunk failed authentication: the stream was cut (at or inside a
    /// chunk) or its end was altered.
    #[error("the blob is truncated or its final chunk was altered")]
    Truncated,
    /// Decryption succeeded but the plaintext is not the recorded one.
    #[error("the plaintext's SHA-256 differs from the recorded one")]
    DigestMismatch,
    /// More than 2^32 chunks (256 TiB): STREAM's counter would wrap.
    #[error("the blob is too large for one stream")]
    TooLarge,
    /// The random source failed.
    #[error("random source failed")]
    Random,
}

/// What a sealed blob is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobHeader {
    /// Whose blob (their data key seals it).
    pub patient_id: PatientId,
    /// Which attachment.
    pub attachment_id: AttachmentId,
}

impl BlobHeader {
    fn associated_data(&self) -> Vec<u8> {
        format!("emr-blob/1\n{}\n{}", self.patient_id, self.attachment_id).into_bytes()
    }
}

/// The result of sealing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// SHA-256 of the plaintext.
    pub sha256: Sha256Digest,
    /// Plaintext bytes.
    pub size: u64,
    /// Sealed bytes written.
    pub sealed_size: u64,
}

/// The result of opening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Plaintext bytes written.
    pub size: u64,
}

/// Reads until `buffer` is full or the stream ends; returns how much was read.
async fn fill<R: AsyncRead + Unpin + ?Sized>(reader: &mut R, buffer: &mut [u8]) -> Result<usize, std::io::Error> {
    let mut filled = 0;
    while filled < buffer.len() {
        let read = reader.read(&mut buffer[filled..]).await?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    Ok(filled)
}

fn cipher(key: &DataKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.as_bytes().into())
}

/// Encrypts `plaintext` into `sealed`, chunk by chunk.
pub async fn seal<R, W>(key: &DataKey, header: BlobHeader, plaintext: &mut R, sealed: &mut W) -> Result<Sealed, StreamError>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut prefix = [0_u8; NONCE_PREFIX];
    SystemRandom::new().fill(&mut prefix).map_err(|_| StreamError::Random)?;
    let aad = header.associated_data();
    let mut encryptor = EncryptorBE32::from_aead(cipher(key), prefix.as_ref().into());
    sealed.write_all(MAGIC).await?;
    sealed.write_all(&prefix).await?;
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    let (mut size, mut sealed_size) = (0_u64, (MAGIC.len() + NONCE_PREFIX) as u64);
    let mut current = vec![0_u8; CHUNK_SIZE];
    let mut next = vec![0_u8; CHUNK_SIZE];
    let mut current_len = fill(plaintext, &mut current).await?;
    let mut chunks = 0_u64;
    // One chunk of lookahead: a chunk is last when nothing follows it.
    loop {
        let next_len = if current_len == CHUNK_SIZE { fill(plaintext, &mut next).await? } else { 0 };
        hasher.update(&current[..current_len]);
        size += current_len as u64;
        if next_len == 0 {
            break;
        }
        let chunk = encryptor.encrypt_next(Payload { msg: &current[..current_len], aad: &aad }).map_err(|_| StreamError::TooLarge)?;
        sealed.write_all(&chunk).await?;
        sealed_size += chunk.len() as u64;
        chunks += 1;
        if chunks >= u64::from(u32::MAX) {
            return Err(StreamError::TooLarge);
        }
        std::mem::swap(&mut current, &mut next);
        current_len = next_len;
    }
    let chunk = encryptor.encrypt_last(Payload { msg: &current[..current_len], aad: &aad }).map_err(|_| StreamError::TooLarge)?;
    sealed.write_all(&chunk).await?;
    sealed_size += chunk.len() as u64;
    sealed.flush().await?;
    let sha256 = Sha256Digest::from_bytes(hasher.finish().as_ref().try_into().map_err(|_| StreamError::Random)?);
    Ok(Sealed { sha256, size, sealed_size })
}

/// Decrypts `sealed` into `plaintext`, checking the plaintext against `expected`
/// (the digest recorded when it was attached) before the final chunk is
/// written. On any error the bytes already written must be discarded.
pub async fn open<R, W>(
    key: &DataKey,
    header: BlobHeader,
    expected: &Sha256Digest,
    sealed: &mut R,
    plaintext: &mut W,
) -> Result<Opened, StreamError>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut preamble = [0_u8; MAGIC.len() + NONCE_PREFIX];
    if fill(sealed, &mut preamble).await? != preamble.len() || &preamble[..MAGIC.len()] != MAGIC {
        return Err(StreamError::NotABlob);
    }
    let aad = header.associated_data();
    let prefix: [u8; NONCE_PREFIX] = preamble[MAGIC.len()..].try_into().map_err(|_| StreamError::NotABlob)?;
    let mut decryptor = DecryptorBE32::from_aead(cipher(key), prefix.as_ref().into());
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    let mut current = vec![0_u8; CHUNK_SIZE + TAG];
    let mut next = vec![0_u8; CHUNK_SIZE + TAG];
    let mut current_len = fill(sealed, &mut current).await?;
    if current_len < TAG {
        return Err(StreamError::Truncated);
    }
    let (mut index, mut size) = (0_u64, 0_u64);
    loop {
        let next_len = if current_len == CHUNK_SIZE + TAG { fill(sealed, &mut next).await? } else { 0 };
        if next_len == 0 {
            break;
        }
        if next_len < TAG {
            return Err(StreamError::Truncated);
        }
        // A chunk sealed as last but followed by more fails here, as does a
        // reordered or altered one.
        let chunk =
            decryptor.decrypt_next(Payload { msg: &current[..current_len], aad: &aad }).map_err(|_| StreamError::Corrupt { index })?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        plaintext.write_all(&chunk).await?;
        std::mem::swap(&mut current, &mut next);
        current_len = next_len;
        index += 1;
    }
    // A stream cut at a chunk boundary ends with a chunk not sealed as last.
    let chunk = decryptor.decrypt_last(Payload { msg: &current[..current_len], aad: &aad }).map_err(|_| StreamError::Truncated)?;
    hasher.update(&chunk);
    size += chunk.len() as u64;
    // The final chunk is held back until the whole plaintext matches its
    // recorded digest: a reader never receives a complete, wrong file.
    if hasher.finish().as_ref() != expected.as_bytes() {
        return Err(StreamError::DigestMismatch);
    }
    plaintext.write_all(&chunk).await?;
    plaintext.flush().await?;
    Ok(Opened { size })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn header() -> BlobHeader {
        BlobHeader { patient_id: PatientId::new(), attachment_id: AttachmentId::new() }
    }

    fn bytes(size: usize) -> Vec<u8> {
        (0..size).map(|i| (i * 13 % 256) as u8).collect()
    }

    async fn sealed(key: &DataKey, header: BlobHeader, plaintext: &[u8]) -> (Vec<u8>, Sealed) {
        let mut out = Vec::new();
        let summary = seal(key, header, &mut &plaintext[..], &mut out).await.unwrap();
        (out, summary)
    }

    async fn opened(key: &DataKey, header: BlobHeader, digest: &Sha256Digest, blob: &[u8]) -> Result<Vec<u8>, StreamError> {
        let mut out = Vec::new();
        open(key, header, digest, &mut &blob[..], &mut out).await?;
        Ok(out)
    }

    fn chunk_range(index: usize) -> std::ops::Range<usize> {
        let start = MAGIC.len() + NONCE_PREFIX + index * (CHUNK_SIZE + TAG);
        start..start + CHUNK_SIZE + TAG
    }

    #[tokio::test]
    async fn blobs_of_every_shape_round_trip_with_their_digest() {
        let key = DataKey::generate();
        for size in [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE, 3 * CHUNK_SIZE + 17] {
            let (plaintext, header) = (bytes(size), header());
            let (blob, summary) = sealed(&key, header, &plaintext).await;
            assert_eq!(summary.size, size as u64);
            assert_eq!(summary.sealed_size, blob.len() as u64);
            let digest = ring::digest::digest(&ring::digest::SHA256, &plaintext);
            assert_eq!(summary.sha256.as_bytes(), digest.as_ref());
            assert_eq!(opened(&key, header, &summary.sha256, &blob).await.unwrap(), plaintext, "{size} bytes");
        }
    }

    #[tokio::test]
    async fn one_altered_byte_is_detected() {
        let (key, header) = (DataKey::generate(), header());
        let (mut blob, summary) = sealed(&key, header, &bytes(2 * CHUNK_SIZE + 5)).await;
        blob[chunk_range(1).start + 100] ^= 1;
        assert!(matches!(opened(&key, header, &summary.sha256, &blob).await, Err(StreamError::Corrupt { index: 1 })));
    }

    #[tokio::test]
    async fn two_swapped_chunks_are_detected() {
        let (key, header) = (DataKey::generate(), header());
        let (mut blob, summary) = sealed(&key, header, &bytes(3 * CHUNK_SIZE + 5)).await;
        let (first, second) = (blob[chunk_range(0)].to_vec(), blob[chunk_range(1)].to_vec());
        blob[chunk_range(0)].copy_from_slice(&second);
        blob[chunk_range(1)].copy_from_slice(&first);
        assert!(matches!(opened(&key, header, &summary.sha256, &blob).await, Err(StreamError::Corrupt { index: 0 })));
    }

    #[tokio::test]
    async fn a_truncated_or_dropped_last_chunk_is_detected() {
        let (key, header) = (DataKey::generate(), header());
        let (blob, summary) = sealed(&key, header, &bytes(2 * CHUNK_SIZE + 500)).await;
        let cut = &blob[..blob.len() - 10];
        assert!(matches!(opened(&key, header, &summary.sha256, cut).await, Err(StreamError::Truncated)));
        let without_last = &blob[..chunk_range(2).start];
        assert!(matches!(opened(&key, header, &summary.sha256, without_last).await, Err(StreamError::Truncated)));
    }

    #[tokio::test]
    async fn another_key_attachment_or_digest_is_refused() {
        let (key, header) = (DataKey::generate(), header());
        let (blob, summary) = sealed(&key, header, &bytes(1000)).await;
        assert!(opened(&DataKey::generate(), header, &summary.sha256, &blob).await.is_err(), "another patient's key");
        let elsewhere = BlobHeader { attachment_id: AttachmentId::new(), ..header };
        assert!(opened(&key, elsewhere, &summary.sha256, &blob).await.is_err(), "moved to another attachment");
        let recorded = Sha256Digest::from_bytes([0; 32]);
        assert!(matches!(opened(&key, header, &recorded, &blob).await, Err(StreamError::DigestMismatch)));
        assert!(matches!(opened(&key, header, &summary.sha256, b"PK\x03\x04 not a blob").await, Err(StreamError::NotABlob)));
    }
}
