//! Authentication for EMR Ledger (seed 3.1): accounts registered by
//! administrators or by patients themselves, argon2id passwords under a
//! complexity policy, TOTP MFA (RFC 6238) with replay refusal, EdDSA-signed JWT
//! access tokens with rotatable keys (`kid`), rotating refresh tokens whose reuse
//! revokes the session, account lockout and per-address rate limits.
//!
//! Accounts live in the event log ([`emr_domain::account`]); short-lived session
//! state lives behind the [`SessionStore`] port (Redis, or in process for the
//! embedded default). Authorization is not here: it is the policy in
//! [`emr_domain::access`], applied by the application layer.

pub mod apps;
pub mod backend;
mod identity;
pub mod metrics;
pub mod oidc;
mod secrets;
mod sessions;
mod tokens;

pub use identity::{AuthError, AuthPolicy, Challenge, Enrolment, Identity, Registration, TokenPair};
pub use secrets::{SecretError, TOTP_STEP_SECONDS, hash_password, matching_step, totp};
pub use sessions::{MemorySessionStore, SessionError, SessionStore, conformance};
pub use tokens::{AccessClaims, KeyError, MfaClaims, SigningKeys, TokenError, Tokens};
