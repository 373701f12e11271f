//! Who the client is to Fabric, and how it signs: an MSP id with its X.509
//! certificate, and the certificate's P-256 private key.
//!
//! Fabric verifies ECDSA signatures over SHA-256 of the signed bytes, DER encoded,
//! and rejects any whose `s` lies in the upper half of the curve order (malleable
//! signatures), so every signature is normalised to low-S.

use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey;
use prost::Message;

use emr_fabric_protos::msp::SerializedIdentity;

/// Why an identity could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The private key is not a PKCS#8 P-256 key.
    #[error("private key: {0}")]
    Key(String),
    /// The certificate is not PEM.
    #[error("certificate: not a PEM certificate")]
    Certificate,
}

/// The client's identity: its organisation and certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// MSP id (`Org1MSP`).
    pub msp_id: String,
    /// The X.509 certificate, PEM, as the MSP issued it.
    pub certificate_pem: Vec<u8>,
}

impl Identity {
    /// An identity from its MSP id and PEM certificate.
    pub fn new(msp_id: impl Into<String>, certificate_pem: Vec<u8>) -> Result<Self, IdentityError> {
        if !String::from_utf8_lossy(&certificate_pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(IdentityError::Certificate);
        }
        Ok(Self { msp_id: msp_id.into(), certificate_pem })
    }

    /// When the certificate stops being valid (its `notAfter`), as Unix seconds;
    /// `None` when it does not parse as X.509.
    pub fn expires_at(&self) -> Option<i64> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(&self.certificate_pem).ok()?;
        let certificate = pem.parse_x509().ok()?;
        Some(certificate.validity().not_after.timestamp())
    }

    /// The identity as proposals carry it (`msp.SerializedIdentity`).
    pub fn serialized(&self) -> Vec<u8> {
        SerializedIdentity { mspid: self.msp_id.clone(), id_bytes: self.certificate_pem.clone() }.encode_to_vec()
    }
}

/// Signs with the identity's private key.
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(P-256)")
    }
}

impl Signer {
    /// From a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`), as Fabric's CAs issue them.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, IdentityError> {
        SigningKey::from_pkcs8_pem(pem).map(|key| Self { key }).map_err(|e| IdentityError::Key(e.to_string()))
    }

    /// From a PKCS#8 DER private key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, IdentityError> {
        SigningKey::from_pkcs8_der(der).map(|key| Self { key }).map_err(|e| IdentityError::Key(e.to_string()))
    }

    /// ECDSA P-256 over SHA-256 of `message`, low-S, DER encoded.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: Signature = self.key.sign(message);
        signature.normalize_s().unwrap_or(signature).to_der().as_bytes().to_vec()
    }

    /// The public key, SEC1 uncompressed (what a verifier needs).
    pub fn public_key_sec1(&self) -> Vec<u8> {
        self.key.verifying_key().to_encoded_point(false).as_bytes().to_vec()
    }
}

/// True when the DER signature's `s` is in the lower half of the P-256 order:
/// the only form Fabric accepts.
pub fn is_low_s(der: &[u8]) -> bool {
    Signature::from_der(der).is_ok_and(|signature| signature.normalize_s().is_none())
}

/// Verifies a DER signature by the SEC1 public key over `message`, as a peer
/// does: valid and low-S.
pub fn verify(public_key_sec1: &[u8], message: &[u8], der: &[u8]) -> bool {
    use p256::ecdsa::signature::Verifier as _;
    let Ok(key) = p256::ecdsa::VerifyingKey::from_sec1_bytes(public_key_sec1) else { return false };
    let Ok(signature) = Signature::from_der(der) else { return false };
    is_low_s(der) && key.verify(message, &signature).is_ok()
}

/// The high-S twin of a low-S signature (same `r`, `s' = n − s`): valid ECDSA,
/// refused by Fabric. For tests of verifiers.
pub fn high_s_twin(der: &[u8]) -> Option<Vec<u8>> {
    let signature = Signature::from_der(der).ok()?;
    let (r, s) = signature.split_scalars();
    let twin = Signature::from_scalars(r, -*s).ok()?;
    (twin.normalize_s().is_some()).then(|| twin.to_der().as_bytes().to_vec())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        Signer::from_pkcs8_der(pkcs8.as_ref()).unwrap()
    }

    #[test]
    fn signatures_are_low_s_and_verify() {
        let signer = signer();
        for n in 0..64u8 {
            let message = [n; 40];
            let signature = signer.sign(&message);
            assert!(is_low_s(&signature), "signature {n} is high-S");
            assert!(verify(&signer.public_key_sec1(), &message, &signature));
            assert!(!verify(&signer.public_key_sec1(), &[n ^ 1; 40], &signature), "another message");
        }
    }

    #[test]
    fn a_high_s_twin_is_valid_ecdsa_but_refused() {
        let signer = signer();
        let signature = signer.sign(b"proposal");
        let twin = high_s_twin(&signature).unwrap();
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&signer.public_key_sec1()).unwrap();
        use p256::ecdsa::signature::Verifier as _;
        assert!(key.verify(b"proposal", &Signature::from_der(&twin).unwrap()).is_ok(), "plain ECDSA accepts it");
        assert!(!verify(&signer.public_key_sec1(), b"proposal", &twin), "Fabric does not");
    }

    #[test]
    fn an_identity_needs_a_pem_certificate() {
        assert!(matches!(Identity::new("Org1MSP", b"not a certificate".to_vec()), Err(IdentityError::Certificate)));
        assert!(Signer::from_pkcs8_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
    }
}
