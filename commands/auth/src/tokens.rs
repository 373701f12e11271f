//! Tokens: EdDSA-signed JWT access tokens and MFA challenge tokens (RFC 7519),
//! and opaque refresh tokens.
//!
//! Signing keys are Ed25519 PKCS#8 documents, each named by a key id that goes
//! into the JWT `kid` header. One key signs; every loaded key verifies, so a key
//! can be rotated in without logging anyone out and retired once the tokens it
//! signed have expired.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use emr_domain::actor::{Actor, Role};
use emr_domain::ids::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

/// The issuer every token names.
pub(crate) const ISSUER: &str = "emr-ledger";
/// Audience of access tokens.
pub(crate) const API_AUDIENCE: &str = "emr-api";
/// Audience of MFA challenge tokens (useless as access tokens).
pub(crate) const MFA_AUDIENCE: &str = "emr-mfa";

/// A key could not be loaded or generated.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("signing key {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not an Ed25519 PKCS#8 document.
    #[error("signing key {0} is not an Ed25519 PKCS#8 document")]
    Malformed(String),
    /// The active key id names no loaded key.
    #[error("no signing key with id {0}")]
    UnknownKid(String),
    /// The system random source failed.
    #[error("random source failed")]
    Random,
}

struct VerifyingKey {
    decoding: DecodingKey,
}

/// The token signing keys.
pub struct SigningKeys {
    active_kid: String,
    encoding: EncodingKey,
    verifying: HashMap<String, VerifyingKey>,
}

impl SigningKeys {
    /// Keys from PKCS#8 documents by key id; `active_kid` signs.
    pub fn from_pkcs8(documents: &[(String, Vec<u8>)], active_kid: &str) -> Result<Self, KeyError> {
        let mut verifying = HashMap::new();
        let mut encoding = None;
        for (kid, der) in documents {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| KeyError::Malformed(kid.clone()))?;
            verifying.insert(kid.clone(), VerifyingKey { decoding: DecodingKey::from_ed_der(pair.public_key().as_ref()) });
            if kid == active_kid {
                encoding = Some(EncodingKey::from_ed_der(der));
            }
        }
        let encoding = encoding.ok_or_else(|| KeyError::UnknownKid(active_kid.to_owned()))?;
        Ok(Self { active_kid: active_kid.to_owned(), encoding, verifying })
    }

    /// A fresh random key (tests, and the first start of the embedded default).
    pub fn generate(kid: &str) -> Result<Self, KeyError> {
        let der = generate_pkcs8()?;
        Self::from_pkcs8(&[(kid.to_owned(), der)], kid)
    }

    /// Writes a new key into `dir` (`k<UTC time>.pk8`), the newest-named and so
    /// the signing one from the next start; older keys still verify. Returns its id.
    pub fn add_to_dir(dir: &Path) -> Result<String, KeyError> {
        std::fs::create_dir_all(dir).map_err(|source| KeyError::Io { path: dir.display().to_string(), source })?;
        Ok(Self::write_new(dir)?.0)
    }

    fn write_new(dir: &Path) -> Result<(String, Vec<u8>), KeyError> {
        let kid = format!("k{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));
        let der = generate_pkcs8()?;
        let path = dir.join(format!("{kid}.pk8"));
        std::fs::write(&path, &der).map_err(|source| KeyError::Io { path: path.display().to_string(), source })?;
        Ok((kid, der))
    }

    /// Every `<kid>.pk8` file in `dir`; `active_kid` signs, or the newest-named
    /// key when none is given. An empty directory gets a new key first.
    pub fn load_dir(dir: &Path, active_kid: Option<&str>) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io { path: dir.display().to_string(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut documents = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_some_and(|ext| ext == "pk8") {
                let kid = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
                let der = std::fs::read(&path).map_err(|source| KeyError::Io { path: path.display().to_string(), source })?;
                documents.push((kid, der));
            }
        }
        if documents.is_empty() {
            documents.push(Self::write_new(dir)?);
        }
        documents.sort();
        let active = match active_kid {
            Some(kid) => kid.to_owned(),
            None => documents.last().map(|(kid, _)| kid.clone()).unwrap_or_default(),
        };
        Self::from_pkcs8(&documents, &active)
    }

    /// The key id that signs new tokens.
    pub fn active_kid(&self) -> &str {
        &self.active_kid
    }

    fn sign<C: Serialize>(&self, claims: &C) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.active_kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|_| TokenError::Invalid("could not be signed"))
    }

    fn verify<C: for<'de> Deserialize<'de>>(&self, token: &str, audience: &str) -> Result<C, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid("is not a JWT"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid("must be signed with EdDSA"));
        }
        let kid = header.kid.ok_or(TokenError::Invalid("names no key (kid)"))?;
        let key = self.verifying.get(&kid).ok_or(TokenError::Invalid("names an unknown key"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[audience]);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<C>(token, &key.decoding, &validation).map(|data| data.claims).map_err(|error| match error.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::Invalid("has a bad signature"),
            jsonwebtoken::errors::ErrorKind::InvalidAudience => TokenError::Invalid("is not meant for this use"),
            _ => TokenError::Invalid("is malformed or has invalid claims"),
        })
    }
}

fn generate_pkcs8() -> Result<Vec<u8>, KeyError> {
    Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map(|doc| doc.as_ref().to_vec()).map_err(|_| KeyError::Random)
}

/// A token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Expired.
    #[error("the token has expired")]
    Expired,
    /// Forged, malformed, for another audience, or signed by an unknown key.
    #[error("the token {0}")]
    Invalid(&'static str),
}

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The user.
    pub sub: UserId,
    /// Their role.
    pub role: Role,
    /// The session (refresh-token family): logging out revokes it.
    pub sid: uuid::Uuid,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Token id.
    pub jti: uuid::Uuid,
    /// For a SMART app's token: the app, its scopes and patient context (none for
    /// the API's own sessions, which scopes do not narrow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<crate::apps::AppGrant>,
}

impl AccessClaims {
    /// The actor these claims authenticate.
    pub fn actor(&self) -> Actor {
        Actor::new(self.sub, self.role)
    }
}

/// What an MFA challenge token says: the password was right, a code is due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaClaims {
    /// Issuer.
    pub iss: String,
    /// Audience ([`MFA_AUDIENCE`]).
    pub aud: String,
    /// The user.
    pub sub: UserId,
    /// Expiry.
    pub exp: i64,
}

/// Issues and verifies tokens.
pub struct Tokens {
    keys: SigningKeys,
}

impl Tokens {
    /// Tokens signed with `keys`.
    pub fn new(keys: SigningKeys) -> Self {
        Self { keys }
    }

    /// Signs an access token.
    pub fn access(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        self.keys.sign(claims)
    }

    /// Verifies an access token's signature, issuer, audience and expiry.
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.keys.verify(token, API_AUDIENCE)
    }

    /// Signs an MFA challenge.
    pub fn mfa(&self, claims: &MfaClaims) -> Result<String, TokenError> {
        self.keys.sign(claims)
    }

    /// Verifies an MFA challenge.
    pub fn verify_mfa(&self, token: &str) -> Result<MfaClaims, TokenError> {
        self.keys.verify(token, MFA_AUDIENCE)
    }
}

/// A new opaque refresh token (256 random bits, base64url).
pub(crate) fn new_refresh_token() -> Result<String, KeyError> {
    let mut bytes = [0_u8; 32];
    SystemRandom::new().fill(&mut bytes).map_err(|_| KeyError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// What the session store keys a refresh token by: its SHA-256, so a leaked
/// store does not leak usable tokens.
pub(crate) fn refresh_token_digest(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            iss: ISSUER.into(),
            aud: API_AUDIENCE.into(),
            sub: UserId::new(),
            role: Role::Physician,
            sid: uuid::Uuid::new_v4(),
            iat: 0,
            exp,
            jti: uuid::Uuid::new_v4(),
            app: None,
        }
    }

    fn later() -> i64 {
        chrono::Utc::now().timestamp() + 600
    }

    #[test]
    fn an_access_token_round_trips_and_names_its_key() {
        let tokens = Tokens::new(SigningKeys::generate("k1").unwrap());
        let token = tokens.access(&claims(later())).unwrap();
        assert_eq!(jsonwebtoken::decode_header(&token).unwrap().kid.as_deref(), Some("k1"));
        assert_eq!(tokens.verify_access(&token).unwrap().role, Role::Physician);
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_are_refused() {
        let tokens = Tokens::new(SigningKeys::generate("k1").unwrap());
        let expired = tokens.access(&claims(chrono::Utc::now().timestamp() - 60)).unwrap();
        assert_eq!(tokens.verify_access(&expired), Err(TokenError::Expired));

        let token = tokens.access(&claims(later())).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut payload: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
        payload["role"] = "admin".into();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
        assert!(matches!(tokens.verify_access(&parts.join(".")), Err(TokenError::Invalid(_))));

        let other = Tokens::new(SigningKeys::generate("k1").unwrap());
        assert!(matches!(other.verify_access(&token), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn an_unsigned_alg_none_token_is_refused() {
        let tokens = Tokens::new(SigningKeys::generate("k1").unwrap());
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(later())).unwrap());
        assert!(matches!(tokens.verify_access(&format!("{header}.{payload}.")), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn an_mfa_challenge_is_no_access_token() {
        let tokens = Tokens::new(SigningKeys::generate("k1").unwrap());
        let challenge = tokens.mfa(&MfaClaims { iss: ISSUER.into(), aud: MFA_AUDIENCE.into(), sub: UserId::new(), exp: later() }).unwrap();
        assert!(matches!(tokens.verify_access(&challenge), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn rotated_keys_keep_verifying_tokens_signed_before_the_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let old = SigningKeys::load_dir(dir.path(), None).unwrap();
        let token = Tokens::new(SigningKeys::load_dir(dir.path(), None).unwrap()).access(&claims(later())).unwrap();
        std::fs::write(dir.path().join("z-new.pk8"), generate_pkcs8().unwrap()).unwrap();
        let rotated = SigningKeys::load_dir(dir.path(), None).unwrap();
        assert_eq!(rotated.active_kid(), "z-new");
        assert_ne!(rotated.active_kid(), old.active_kid());
        assert!(Tokens::new(rotated).verify_access(&token).is_ok());
    }
}
