//! Accounts for tests and benchmarks: opened on the server side (as the `emr
//! accounts create-admin` bootstrap does) and signed in over real HTTP with
//! password and TOTP.

use emr_auth::{Identity, Registration};
use emr_domain::account::{TotpSecret, Username};
use emr_domain::actor::{Actor, Role};
use emr_domain::fixtures::practitioner_profile;
use emr_domain::ids::{CommandId, UserId};
use serde_json::{Value, json};

/// Every test account's password.
pub const PASSWORD: &str = "Correct-Horse-Battery-9";

/// Opens an account as the system; physicians and nurses get a profile.
pub async fn open_account(identity: &Identity, username: &str, role: Role) -> UserId {
    let profile = matches!(role, Role::Physician | Role::Nurse).then(|| practitioner_profile("Li Wei"));
    let registration = Registration { username: Username::parse(username).unwrap(), password: PASSWORD.into(), role, profile };
    identity.register(Some(&Actor::system()), registration, None, CommandId::new()).await.unwrap()
}

/// The current TOTP code of an enrolment secret.
pub fn totp_code(secret: &str, username: &str) -> String {
    let secret = TotpSecret::parse(secret).unwrap();
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    emr_auth::totp(&secret, "EMR Ledger", username).unwrap().generate(now)
}

/// Password, enrolment, TOTP over HTTP at `base`: the access token.
pub async fn sign_in(http: &reqwest::Client, base: &str, username: &str) -> String {
    sign_in_and_enrol(http, base, username).await.0
}

/// [`sign_in`], also answering the enrolled TOTP secret (base32), for a client
/// that signs in again on its own.
pub async fn sign_in_and_enrol(http: &reqwest::Client, base: &str, username: &str) -> (String, String) {
    let post = |path: &str, body: Value| {
        let request = http.post(format!("{base}{path}")).json(&body);
        let path = path.to_owned();
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert_eq!(status, 200, "{path}: {body}");
            body
        }
    };
    let challenge = post("/v1/auth/login", json!({"username": username, "password": PASSWORD})).await;
    let enrolment = post("/v1/auth/mfa/enrolment", json!({"mfa_token": challenge["mfa_token"]})).await;
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    let code = totp_code(&secret, username);
    let tokens = post("/v1/auth/mfa/verification", json!({"mfa_token": challenge["mfa_token"], "code": code})).await;
    (tokens["access_token"].as_str().unwrap().to_owned(), secret)
}
