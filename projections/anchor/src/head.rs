//! Signed tree heads and the node key that signs them.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, SubsecRound, Utc};
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::merkle::Hash;

/// A commitment to the first `size` leaves of the Merkle log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeHead {
    /// Leaves (events) covered.
    pub size: u64,
    /// Merkle root, hex.
    pub root: String,
    /// Log position of the first commit this head added (its batch).
    pub first_position: u64,
    /// Log position of the last commit covered.
    pub last_position: u64,
    /// When it was signed.
    pub signed_at: DateTime<Utc>,
    /// The signing key (hex of the Ed25519 public key).
    pub key: String,
    /// Ed25519 signature over [`TreeHead::signed_bytes`], base64.
    pub signature: String,
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A hash in its one canonical text form: 64 lowercase hex digits. Anything else
/// (upper case, signs) is refused, so a proof has exactly one encoding.
pub(crate) fn parse_hash(text: &str) -> Option<Hash> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut hash = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        hash[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(hash)
}

impl TreeHead {
    /// What the signature covers: every field but the signature, in a fixed layout.
    pub fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "emr-tree-head/1\n{}\n{}\n{}\n{}\n{}\n{}",
            self.size,
            self.root,
            self.first_position,
            self.last_position,
            self.signed_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            self.key
        )
        .into_bytes()
    }

    /// The root as bytes.
    pub fn root_hash(&self) -> Option<Hash> {
        parse_hash(&self.root)
    }

    /// True when the signature is valid for the head's own key. The signature
    /// covers `signed_at` to the microsecond, so a head carrying finer digits is
    /// refused: one signed head, one encoding.
    pub fn signature_valid(&self) -> bool {
        if self.signed_at != self.signed_at.trunc_subsecs(6) {
            return false;
        }
        let (Ok(signature), Some(key)) = (BASE64.decode(&self.signature), hex_bytes(&self.key)) else { return false };
        UnparsedPublicKey::new(&ED25519, key).verify(&self.signed_bytes(), &signature).is_ok()
    }
}

fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    text.len()
        .is_multiple_of(2)
        .then(|| text.as_bytes().chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok()).collect())?
}

/// The node's signing key (Ed25519, PKCS#8 file).
pub struct NodeKey {
    pair: Ed25519KeyPair,
}

/// A node key that cannot be read or created.
#[derive(Debug, thiserror::Error)]
#[error("node key {path}: {reason}")]
pub struct NodeKeyError {
    path: String,
    reason: String,
}

impl NodeKey {
    /// Reads the key, creating it (mode 0600) on first use.
    pub fn load_or_create(path: &Path) -> Result<Self, NodeKeyError> {
        let fail = |reason: String| NodeKeyError { path: path.display().to_string(), reason };
        if !path.exists() {
            let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|e| fail(e.to_string()))?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            use std::io::Write;
            options
                .open(path)
                .and_then(|mut f| f.write_all(document.as_ref()).and_then(|()| f.sync_all()))
                .map_err(|e| fail(e.to_string()))?;
        }
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let pair = Ed25519KeyPair::from_pkcs8(&bytes).map_err(|e| fail(e.to_string()))?;
        Ok(Self { pair })
    }

    /// The public key, hex.
    pub fn public_key(&self) -> String {
        hex(self.pair.public_key().as_ref())
    }

    /// Signs a head in place.
    pub fn sign(&self, head: &mut TreeHead) {
        head.signed_at = head.signed_at.trunc_subsecs(6);
        head.key = self.public_key();
        head.signature = BASE64.encode(self.pair.sign(&head.signed_bytes()).as_ref());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_head_verifies_and_any_change_breaks_it() {
        let dir = tempfile::tempdir().unwrap();
        let key = NodeKey::load_or_create(&dir.path().join("node.key")).unwrap();
        let mut head = TreeHead {
            size: 3,
            root: hex(&[7; 32]),
            first_position: 1,
            last_position: 3,
            signed_at: Utc::now(),
            key: String::new(),
            signature: String::new(),
        };
        key.sign(&mut head);
        assert!(head.signature_valid());
        let mut forged = head.clone();
        forged.root = hex(&[8; 32]);
        assert!(!forged.signature_valid());
        let again = NodeKey::load_or_create(&dir.path().join("node.key")).unwrap();
        assert_eq!(again.public_key(), key.public_key(), "the key persists");
    }
}
