//! SMART Backend Services: a registered service authenticates with a JWT it signs
//! with its private key (`private_key_jwt`, RS384 or ES384, checked against the
//! public keys it registered as a JWKS) and gets a short-lived token acting as a
//! system account, for system-level work such as a bulk export.

use emr_domain::actor::{Actor, Role};
use emr_domain::ids::UserId;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// The `client_assertion_type` of a JWT client assertion (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Longest lifetime an assertion may claim (SMART: no more than five minutes).
const MAX_ASSERTION_SECONDS: i64 = 300;

/// A backend service registered in `[[auth.backend_clients]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct BackendClient {
    /// The OAuth `client_id` (the assertion's `iss` and `sub`).
    pub client_id: String,
    /// What the access log and operators call it.
    pub name: String,
    /// Its public keys; each assertion names one by `kid`.
    pub jwks: JwkSet,
    /// The system scopes it may be granted (`system/*.rs`).
    pub scopes: Vec<String>,
}

/// Why an assertion was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the client assertion is not valid: {0}")]
pub struct InvalidAssertion(pub String);

/// What a verified assertion tells: its id and when it expires, so it is used once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// `jti`.
    pub id: String,
    /// `exp` (seconds since the epoch).
    pub expires_at: i64,
}

#[derive(Deserialize)]
struct AssertionClaims {
    sub: String,
    exp: i64,
    jti: String,
}

#[derive(Deserialize)]
struct Issuer {
    iss: String,
}

impl BackendClient {
    /// The account the service acts as: a system account of its own, so the
    /// access log names which service read what.
    pub fn actor(&self) -> Actor {
        let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("urn:emr-ledger:backend-client:{}", self.client_id).as_bytes());
        Actor::new(UserId::from(id), Role::System)
    }

    /// The requested scopes this service may hold, in the order asked.
    pub fn grantable(&self, requested: &str) -> Vec<String> {
        requested.split_whitespace().filter(|scope| self.scopes.iter().any(|allowed| allowed == scope)).map(str::to_owned).collect()
    }

    /// Checks `assertion`: signed (RS384 or ES384) by the key of this client its
    /// `kid` names, issued by and about this client, for `token_url`, unexpired and
    /// living at most five minutes.
    pub fn verify(&self, assertion: &str, token_url: &str, now: i64) -> Result<VerifiedAssertion, InvalidAssertion> {
        let refused = |why: &str| InvalidAssertion(why.to_owned());
        let header = jsonwebtoken::decode_header(assertion).map_err(|e| InvalidAssertion(format!("unreadable header: {e}")))?;
        if !matches!(header.alg, Algorithm::RS384 | Algorithm::ES384) {
            return Err(refused("the algorithm must be RS384 or ES384"));
        }
        let jwk = match &header.kid {
            Some(kid) => self.jwks.find(kid),
            None if self.jwks.keys.len() == 1 => self.jwks.keys.first(),
            None => None,
        }
        .ok_or_else(|| refused("no registered key has the assertion's kid"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| InvalidAssertion(format!("the registered key is unusable: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[token_url]);
        validation.set_issuer(&[&self.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud", "jti"]);
        validation.leeway = 30;
        let claims =
            jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation).map_err(|e| InvalidAssertion(format!("{e}")))?.claims;
        if claims.sub != self.client_id {
            return Err(refused("sub must be the client id"));
        }
        if claims.exp - now > MAX_ASSERTION_SECONDS {
            return Err(refused("the assertion may live at most five minutes"));
        }
        if claims.jti.is_empty() || claims.jti.len() > 256 {
            return Err(refused("jti must name the assertion (1-256 characters)"));
        }
        Ok(VerifiedAssertion { id: claims.jti, expires_at: claims.exp })
    }
}

/// The client an assertion says it comes from (its `iss`), read before the
/// signature is checked only to find which keys check it.
pub fn claimed_client(assertion: &str) -> Option<String> {
    jsonwebtoken::dangerous::insecure_decode::<Issuer>(assertion).ok().map(|data| data.claims.iss)
}
