//! The RS256 key of OpenID Connect id_tokens: made once, kept, and verifying
//! what it signs through its published JWKS.

#![allow(clippy::unwrap_used)]

use emr_auth::oidc::{IdTokenClaims, IdTokenKey};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

#[test]
fn the_id_token_key_is_made_once_and_its_jwks_verifies_what_it_signs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys").join("id-token-rs256.der");
    let started = std::time::Instant::now();
    let key = IdTokenKey::load_or_create(&path).unwrap();
    eprintln!("made a 2048-bit RSA key in {:?}", started.elapsed());
    let again = IdTokenKey::load_or_create(&path).unwrap();
    assert_eq!(key.jwks(), again.jwks(), "the kept key is read back, not replaced");

    let claims = IdTokenClaims {
        iss: "http://localhost/fhir/r4".into(),
        sub: "u1".into(),
        aud: "viewer".into(),
        iat: chrono::Utc::now().timestamp(),
        exp: chrono::Utc::now().timestamp() + 60,
        nonce: Some("n-0S6_WzA2Mj".into()),
        fhir_user: Some("Patient/p1".into()),
    };
    let token = key.sign(&claims).unwrap();
    let jwk = &key.jwks().keys[0];
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["viewer"]);
    validation.set_issuer(&["http://localhost/fhir/r4"]);
    let verified = jsonwebtoken::decode::<serde_json::Value>(&token, &DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap();
    assert_eq!((verified.claims["fhirUser"].as_str(), verified.claims["nonce"].as_str()), (Some("Patient/p1"), Some("n-0S6_WzA2Mj")));
    assert!(IdTokenKey::from_pkcs8_der(b"not a key").is_err());
}
