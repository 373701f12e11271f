//! SMART App Launch on the identity service: the apps a hospital registered, the
//! authorization code an app trades for tokens (with PKCE, S256 only), and what an
//! app's access token carries — the app, the scopes the user approved and the
//! patient in context. The user behind an app signs in exactly as on the API
//! (password, then a TOTP code), so an app never holds more than its user may do;
//! its scopes only narrow that (the FHIR transport enforces them).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use emr_domain::ids::PatientId;
use serde::{Deserialize, Serialize};

/// An app registered to launch against this server (a public client: it holds
/// no secret, PKCE protects its code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmartApp {
    /// The OAuth `client_id`.
    pub client_id: String,
    /// What the consent page calls it.
    pub name: String,
    /// Where its codes may be sent (exact match).
    pub redirect_uris: Vec<String>,
    /// The scopes it may be granted (a request for others is narrowed to these).
    pub scopes: Vec<String>,
}

impl SmartApp {
    /// The requested scopes this app may hold, in the order asked.
    pub fn grantable(&self, requested: &str) -> Vec<String> {
        requested.split_whitespace().filter(|scope| self.scopes.iter().any(|allowed| allowed == scope)).map(str::to_owned).collect()
    }
}

/// What an app's access token carries beyond its user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppGrant {
    /// The app.
    pub client_id: String,
    /// The scopes granted, space-separated.
    pub scope: String,
    /// The patient in context (standalone launch with `launch/patient`).
    pub patient: Option<PatientId>,
}

impl AppGrant {
    /// Whether `scope` was granted.
    pub fn has(&self, scope: &str) -> bool {
        self.scope.split_whitespace().any(|granted| granted == scope)
    }
}

/// An approved authorization request, waiting for the app to redeem its code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    /// The app and what its user approved.
    pub grant: AppGrant,
    /// The redirect URI the code was sent to (the token request must name it again).
    pub redirect_uri: String,
    /// BASE64URL(SHA-256(code_verifier)), from the authorization request.
    pub code_challenge: String,
    /// The request's OpenID Connect `nonce`, echoed in the `id_token`.
    #[serde(default)]
    pub nonce: Option<String>,
}

/// What an EHR launch opens an app on (SMART EHR launch): made by a signed-in
/// user for one app, and named to the app by an opaque `launch` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchContext {
    /// The app launched.
    pub client_id: String,
    /// Who launched it: only they may approve it.
    pub user_id: emr_domain::ids::UserId,
    /// The patient open in the EHR, if any.
    pub patient: Option<PatientId>,
}

/// The token endpoint's answer to an app (RFC 6749 §5.1, SMART's launch context).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppTokens {
    /// The bearer token for `/fhir/r4`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The scopes granted.
    pub scope: String,
    /// The patient in context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<PatientId>,
    /// OpenID Connect: who signed in (when the app asked for `openid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// A refresh token, when `offline_access` or `online_access` was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// Whether `verifier` answers `challenge` under S256 (RFC 7636 §4.6); a verifier
/// must be 43–128 unreserved characters.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len()) && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    well_formed && {
        let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
        let expected = URL_SAFE_NO_PAD.encode(digest.as_ref());
        // Compare every byte so the time taken does not depend on where they differ.
        expected.len() == challenge.len() && expected.bytes().zip(challenge.bytes()).fold(0_u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_accepts_the_rfc_7636_example_and_nothing_else() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(!pkce_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj", challenge));
        assert!(!pkce_matches("short", challenge), "a verifier has at least 43 characters");
        assert!(!pkce_matches(verifier, verifier), "plain is not accepted");
    }

    #[test]
    fn an_app_is_granted_only_the_scopes_it_was_registered_for() {
        let app = SmartApp {
            client_id: "growth-chart".into(),
            name: "Growth chart".into(),
            redirect_uris: vec!["https://app.example/callback".into()],
            scopes: vec!["launch/patient".into(), "patient/Condition.rs".into()],
        };
        assert_eq!(app.grantable("launch/patient patient/*.cruds patient/Condition.rs"), ["launch/patient", "patient/Condition.rs"]);
    }
}
