//! OpenID Connect for SMART apps (`openid fhirUser`): an `id_token` naming the
//! signed-in user, signed RS256 (what SMART App Launch requires of an EHR) with
//! a key kept beside the access-token keys and published as a JWKS.

use std::path::Path;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use serde::Serialize;

use crate::tokens::{KeyError, TokenError};

/// The id of the id-token key in the JWKS.
const KID: &str = "id-token-rs256";

/// What an `id_token` says (OpenID Connect Core §2, SMART's `fhirUser`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdTokenClaims {
    /// The issuer: the FHIR base the app was launched against.
    pub iss: String,
    /// The user.
    pub sub: String,
    /// The app (`client_id`).
    pub aud: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at.
    pub exp: i64,
    /// The authorization request's `nonce`, echoed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The user as a FHIR resource (`Patient/<id>` for a patient), when the app asked for `fhirUser`.
    #[serde(rename = "fhirUser", skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
}

/// The RS256 key that signs `id_token`s.
pub struct IdTokenKey {
    encoding: EncodingKey,
    public: Jwk,
}

impl IdTokenKey {
    /// The key in a PKCS#8 DER document.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let key = rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(|_| KeyError::Malformed(KID.into()))?;
        let pkcs1 = key.to_pkcs1_der().map_err(|_| KeyError::Malformed(KID.into()))?;
        let encoding = EncodingKey::from_rsa_der(pkcs1.as_bytes());
        let mut public = Jwk::from_encoding_key(&encoding, Algorithm::RS256).map_err(|_| KeyError::Malformed(KID.into()))?;
        public.common.key_id = Some(KID.into());
        public.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        Ok(Self { encoding, public })
    }

    /// A fresh 2048-bit key, as PKCS#8 DER.
    pub fn generate_pkcs8() -> Result<Vec<u8>, KeyError> {
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).map_err(|_| KeyError::Random)?;
        Ok(key.to_pkcs8_der().map_err(|_| KeyError::Random)?.as_bytes().to_vec())
    }

    /// The id of the file the key is kept in, inside the auth keys directory (not
    /// `*.pk8`: those are the access-token keys).
    pub const FILE_NAME: &'static str = "id-token-rs256.der";

    /// The key kept in the auth keys directory `dir`, made there if there is none
    /// and the directory is writable; `None` when there is none and it is not (a
    /// read-only mounted secret made before this key existed: run
    /// `emr keys new-signing-key` to add one).
    pub fn in_dir(dir: &Path) -> Result<Option<Self>, KeyError> {
        let path = dir.join(Self::FILE_NAME);
        let existed = path.exists();
        match Self::load_or_create(&path) {
            Ok(key) => Ok(Some(key)),
            Err(KeyError::Io { .. }) if !existed => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// The key kept at `path`, made there on first use.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io { path: path.display().to_string(), source };
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            std::fs::write(path, Self::generate_pkcs8()?).map_err(io)?;
        }
        Self::from_pkcs8_der(&std::fs::read(path).map_err(io)?)
    }

    /// The public key, for `jwks_uri`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: vec![self.public.clone()] }
    }

    /// Signs `claims`.
    pub fn sign(&self, claims: &IdTokenClaims) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(KID.into());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|_| TokenError::Invalid("could not be signed"))
    }
}
