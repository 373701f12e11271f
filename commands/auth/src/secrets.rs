//! Password hashing (argon2id, RFC 9106) and TOTP codes (RFC 6238).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, PasswordHash as PhcString};
use emr_domain::account::{PasswordHash, TotpSecret};
use ring::rand::{SecureRandom, SystemRandom};
use totp_rs::{Algorithm, Secret, TOTP};

/// Hashing or code generation failed (never the user's fault).
#[derive(Debug, thiserror::Error)]
#[error("credential crypto failed: {0}")]
pub struct SecretError(pub String);

/// Hashes a password with argon2id and a random salt, off the async runtime
/// (it takes tens of milliseconds on purpose).
pub async fn hash_password(password: String) -> Result<PasswordHash, SecretError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        let phc = Argon2::default().hash_password(password.as_bytes(), &salt).map_err(|e| SecretError(e.to_string()))?;
        PasswordHash::parse(phc.to_string()).map_err(|e| SecretError(e.to_string()))
    })
    .await
    .map_err(|e| SecretError(e.to_string()))?
}

/// Whether `password` matches `hash` (constant-time inside argon2).
pub(crate) async fn verify_password(password: String, hash: Option<PasswordHash>) -> bool {
    tokio::task::spawn_blocking(move || {
        // An unknown user still costs one verification, so timing does not reveal
        // which usernames exist.
        let phc = hash.map(|h| h.expose().to_owned()).unwrap_or_else(|| DUMMY_HASH.to_owned());
        PhcString::new(&phc).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// argon2id of a random string nobody knows, with the default parameters.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$5mUe6TdXKSyBpjj2nHGg8EDRgrcQjwvBJW8oUGaCGW8";

/// A new 160-bit TOTP secret (RFC 4226's recommended length).
pub(crate) fn new_totp_secret() -> Result<TotpSecret, SecretError> {
    let mut bytes = vec![0_u8; 20];
    SystemRandom::new().fill(&mut bytes).map_err(|_| SecretError("random source failed".into()))?;
    TotpSecret::parse(Secret::Raw(bytes).to_encoded().to_string()).map_err(|e| SecretError(e.to_string()))
}

/// Six-digit, 30-second SHA-1 TOTP: what every authenticator app speaks.
pub fn totp(secret: &TotpSecret, issuer: &str, account: &str) -> Result<TOTP, SecretError> {
    let bytes = Secret::Encoded(secret.expose().to_owned()).to_bytes().map_err(|e| SecretError(format!("{e:?}")))?;
    TOTP::new(Algorithm::SHA1, 6, 1, TOTP_STEP_SECONDS, bytes, Some(issuer.to_owned()), account.to_owned())
        .map_err(|e| SecretError(e.to_string()))
}

/// Length of one TOTP time step.
pub const TOTP_STEP_SECONDS: u64 = 30;

/// The time step `code` belongs to, accepting one step of clock drift either
/// way; none when it matches no step in the window.
pub fn matching_step(totp: &TOTP, code: &str, unix_seconds: u64) -> Option<u64> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now_step = unix_seconds / TOTP_STEP_SECONDS;
    [now_step.saturating_sub(1), now_step, now_step + 1].into_iter().find(|step| {
        let expected = totp.generate(step * TOTP_STEP_SECONDS);
        // Compare every byte so the time taken does not depend on where codes differ.
        expected.len() == code.len() && expected.bytes().zip(code.bytes()).fold(0_u8, |acc, (a, b)| acc | (a ^ b)) == 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_password_verifies_against_its_own_hash_only() {
        let hash = hash_password("Correct-Horse-Battery-9".into()).await.unwrap();
        assert!(hash.expose().starts_with("$argon2id$"));
        assert!(verify_password("Correct-Horse-Battery-9".into(), Some(hash.clone())).await);
        assert!(!verify_password("Correct-Horse-Battery-8".into(), Some(hash)).await);
        assert!(!verify_password("anything".into(), None).await);
    }

    #[test]
    fn a_code_matches_its_step_and_one_step_of_drift_but_no_further() {
        let secret = new_totp_secret().unwrap();
        let totp = totp(&secret, "EMR Ledger", "dr_li").unwrap();
        let now = 1_790_000_000;
        let code = totp.generate(now);
        assert_eq!(matching_step(&totp, &code, now), Some(now / 30));
        assert_eq!(matching_step(&totp, &code, now + 30), Some(now / 30));
        assert_eq!(matching_step(&totp, &code, now + 90), None);
        assert_eq!(matching_step(&totp, "12a456", now), None);
        assert!(totp.get_url().starts_with("otpauth://totp/"));
    }
}
