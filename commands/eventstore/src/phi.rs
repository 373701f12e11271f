//! Sealing and opening PHI inside event payloads and snapshots.
//!
//! The codec walks the JSON for objects tagged [`wire::TAG`] and works on those
//! alone, so it needs no knowledge of event types. Each value is sealed with
//! XChaCha20-Poly1305 under its subject's data key, the subject bound as associated
//! data, so a sealed value cannot be moved to another patient.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use emr_domain::ids::PatientId;
use emr_domain::phi::{Phi, wire};
use rand::RngCore;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::keys::{DataKey, KeyError, KeyVault};

const AAD_PREFIX: &[u8] = b"emr-phi/1|";
const NONCE_LEN: usize = 24;

/// Failures of sealing or opening PHI.
#[derive(Debug, thiserror::Error)]
pub enum PhiError {
    /// A `$phi` object of the wrong shape.
    #[error("malformed PHI object: {0}")]
    Malformed(&'static str),
    /// A sealed value that fails authentication (tampered, or another key).
    #[error("sealed PHI of patient {subject} fails authentication")]
    Corrupt {
        /// The data subject.
        subject: PatientId,
    },
    /// The key service failed.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Seals and opens PHI with per-patient keys from the [`KeyVault`].
pub struct PhiCodec {
    vault: Arc<KeyVault>,
}

fn phi_body_mut(value: &mut Value) -> Option<&mut Map<String, Value>> {
    match value {
        Value::Object(map) if map.len() == 1 => map.get_mut(wire::TAG).and_then(Value::as_object_mut),
        _ => None,
    }
}

fn subject_of(body: &Map<String, Value>) -> Result<PatientId, PhiError> {
    body.get(wire::SUBJECT)
        .and_then(Value::as_str)
        .and_then(|s| PatientId::parse(s).ok())
        .ok_or(PhiError::Malformed("missing or invalid subject"))
}

/// What is done to each PHI body found.
type PhiVisit<'a> = dyn FnMut(&mut Map<String, Value>) -> Result<(), PhiError> + 'a;

/// Visits every PHI body in `value`, depth first.
fn for_each_phi(value: &mut Value, visit: &mut PhiVisit<'_>) -> Result<(), PhiError> {
    if let Some(body) = phi_body_mut(value) {
        return visit(body);
    }
    match value {
        Value::Object(map) => map.values_mut().try_for_each(|v| for_each_phi(v, visit)),
        Value::Array(items) => items.iter_mut().try_for_each(|v| for_each_phi(v, visit)),
        _ => Ok(()),
    }
}

fn aad(subject: PatientId) -> Vec<u8> {
    [AAD_PREFIX, subject.to_string().as_bytes()].concat()
}

fn cipher(key: &DataKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.as_bytes().into())
}

impl PhiCodec {
    /// A codec over a key vault.
    pub fn new(vault: Arc<KeyVault>) -> Self {
        Self { vault }
    }

    /// The vault, for erasure.
    pub fn vault(&self) -> &Arc<KeyVault> {
        &self.vault
    }

    /// The subjects whose PHI `value` holds in any form.
    pub fn subjects(value: &mut Value) -> Result<BTreeSet<PatientId>, PhiError> {
        Self::subjects_where(value, |_| true)
    }

    fn subjects_where(value: &mut Value, wanted: impl Fn(&Map<String, Value>) -> bool) -> Result<BTreeSet<PatientId>, PhiError> {
        let mut subjects = BTreeSet::new();
        for_each_phi(value, &mut |body| {
            let subject = subject_of(body)?;
            if wanted(body) {
                subjects.insert(subject);
            }
            Ok(())
        })?;
        Ok(subjects)
    }

    /// Replaces every clear PHI value in `value` by its sealed form; returns the
    /// subjects whose PHI `value` holds in any form (as [`Self::subjects`] would).
    pub async fn seal(&self, value: &mut Value) -> Result<BTreeSet<PatientId>, PhiError> {
        let mut keys = BTreeMap::new();
        for subject in Self::subjects_where(value, |body| body.contains_key(wire::CLEAR))? {
            keys.insert(subject, self.vault.key_for_sealing(subject).await?);
        }
        // The sealing pass visits every PHI body, so it gathers the subjects too.
        let mut subjects = BTreeSet::new();
        for_each_phi(value, &mut |body| {
            let subject = subject_of(body)?;
            subjects.insert(subject);
            if body.contains_key(wire::SHREDDED) || body.contains_key(wire::SEALED) {
                return Ok(());
            }
            let Some(clear) = body.remove(wire::CLEAR) else {
                return Err(PhiError::Malformed("only clear PHI can be sealed"));
            };
            let key = keys.get(&subject).ok_or(PhiError::Malformed("subject without key"))?;
            let plaintext = serde_json::to_vec(&clear).map_err(|_| PhiError::Malformed("unserializable value"))?;
            // A random 192-bit nonce from the thread's CSPRNG (seeded and reseeded
            // from the OS): XChaCha's nonce space makes random nonces safe, and it
            // saves a system call per value.
            let mut nonce = XNonce::default();
            rand::rng().fill_bytes(&mut nonce);
            let sealed = cipher(key)
                .encrypt(&nonce, Payload { msg: &plaintext, aad: &aad(subject) })
                .map_err(|_| PhiError::Malformed("encryption failed"))?;
            body.insert(wire::SEALED.to_owned(), Value::String(BASE64.encode([nonce.as_slice(), &sealed].concat())));
            Ok(())
        })?;
        Ok(subjects)
    }

    /// One value of PHI as decoded from the log, opened: its clear value, or `None`
    /// once its subject was erased. For the few projectors that must read PHI to
    /// derive something that is not PHI (the search index's keyed hashes).
    pub async fn open_one<T: Clone + Serialize + DeserializeOwned>(&self, phi: &Phi<T>) -> Result<Option<T>, PhiError> {
        match phi {
            Phi::Clear { value, .. } => Ok(Some(value.clone())),
            Phi::Shredded { .. } => Ok(None),
            Phi::Sealed { subject, .. } => {
                let mut value = serde_json::to_value(phi).map_err(|_| PhiError::Malformed("unserializable value"))?;
                self.open(&mut value).await?;
                let opened: Phi<T> = serde_json::from_value(value).map_err(|_| PhiError::Corrupt { subject: *subject })?;
                Ok(opened.value().cloned())
            }
        }
    }

    /// Replaces every sealed PHI value in `value` by its clear form, or by a
    /// shredded marker when its subject was erased.
    pub async fn open(&self, value: &mut Value) -> Result<(), PhiError> {
        let mut keys = BTreeMap::new();
        for subject in Self::subjects_where(value, |body| body.contains_key(wire::SEALED))? {
            keys.insert(subject, self.vault.key_for_opening(subject).await?);
        }
        for_each_phi(value, &mut |body| {
            let subject = subject_of(body)?;
            if body.contains_key(wire::SHREDDED) {
                return Ok(());
            }
            let Some(Value::String(sealed)) = body.remove(wire::SEALED) else {
                return Err(PhiError::Malformed("stored PHI must be sealed"));
            };
            match keys.get(&subject).cloned().flatten() {
                None => {
                    body.insert(wire::SHREDDED.to_owned(), Value::Bool(true));
                }
                Some(key) => {
                    let bytes = BASE64.decode(sealed).map_err(|_| PhiError::Corrupt { subject })?;
                    if bytes.len() < NONCE_LEN {
                        return Err(PhiError::Corrupt { subject });
                    }
                    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
                    let plaintext = cipher(&key)
                        .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad(subject) })
                        .map_err(|_| PhiError::Corrupt { subject })?;
                    let clear = serde_json::from_slice(&plaintext).map_err(|_| PhiError::Corrupt { subject })?;
                    body.insert(wire::CLEAR.to_owned(), clear);
                }
            }
            Ok(())
        })
    }
}
