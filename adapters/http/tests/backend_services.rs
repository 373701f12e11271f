//! SMART Backend Services: a registered service signs a JWT with its private key
//! (RS384 or ES384), trades it for a system token, and runs system-wide and
//! Group (hospital) bulk exports with it.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use emr_domain::actor::Role;
use http_body_util::BodyExt;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::{TestApp, User, send, sign_in};
use tower::ServiceExt;

const CLIENT: &str = "population-health";
const TOKEN_URL: &str = "http://localhost/oauth/token";

/// A private key made by `openssl genpkey` (PKCS#8 PEM).
fn private_key(args: &[&str]) -> Vec<u8> {
    let output = std::process::Command::new("openssl").arg("genpkey").args(args).output().expect("openssl is installed");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

struct Signer {
    key: EncodingKey,
    algorithm: Algorithm,
    kid: &'static str,
}

impl Signer {
    fn rsa() -> Self {
        let pem = private_key(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
        Self { key: EncodingKey::from_rsa_pem(&pem).unwrap(), algorithm: Algorithm::RS384, kid: "rs384-2026" }
    }

    fn ec() -> Self {
        let pem = private_key(&["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]);
        Self { key: EncodingKey::from_ec_pem(&pem).unwrap(), algorithm: Algorithm::ES384, kid: "es384-2026" }
    }

    fn public(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.algorithm).unwrap();
        jwk.common.key_id = Some(self.kid.to_owned());
        jwk
    }

    fn assertion(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

fn claims(lifetime_secs: i64, audience: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"iss": CLIENT, "sub": CLIENT, "aud": audience, "exp": now + lifetime_secs, "jti": uuid::Uuid::now_v7().to_string()})
}

/// `POST /oauth/token` with client credentials: the status and the body.
async fn token(app: &TestApp, assertion: &str, scope: &str) -> (StatusCode, Value) {
    let form = format!(
        "grant_type=client_credentials&scope={}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}",
        scope.replace('/', "%2F").replace(' ', "+")
    );
    let request = Request::post("/oauth/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::HOST, "localhost")
        .body(Body::from(form))
        .unwrap();
    let (status, _, body) = send(app, request).await;
    (status, body)
}

/// Kicks off an export at `path` as `bearer` and waits for its manifest: the
/// ids of the patients it exported.
async fn export(app: &TestApp, bearer: &str, path: &str) -> Result<BTreeSet<String>, StatusCode> {
    let authorized = |request: axum::http::request::Builder| request.header(header::AUTHORIZATION, format!("Bearer {bearer}"));
    let kick_off = authorized(Request::get(format!("/fhir/r4/{path}"))).header("prefer", "respond-async").body(Body::empty()).unwrap();
    let response = app.router.clone().oneshot(kick_off).await.unwrap();
    if response.status() != StatusCode::ACCEPTED {
        return Err(response.status());
    }
    let status_url = response.headers()[header::CONTENT_LOCATION].to_str().unwrap().to_owned();
    let status_path = format!("/fhir/r4/{}", status_url.split("/fhir/r4/").nth(1).unwrap());
    let manifest: Value = loop {
        let response = app.router.clone().oneshot(authorized(Request::get(&status_path)).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        if status == StatusCode::OK {
            break serde_json::from_slice(&bytes).unwrap();
        }
        assert_eq!(status, StatusCode::ACCEPTED, "{}", String::from_utf8_lossy(&bytes));
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut patients = BTreeSet::new();
    for output in manifest["output"].as_array().unwrap().iter().filter(|o| o["type"] == "Patient") {
        let path = format!("/fhir/r4/{}", output["url"].as_str().unwrap().split("/fhir/r4/").nth(1).unwrap());
        let response = app.router.clone().oneshot(authorized(Request::get(&path)).body(Body::empty()).unwrap()).await.unwrap();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        for line in String::from_utf8(bytes.to_vec()).unwrap().lines() {
            let resource: Value = serde_json::from_str(line).unwrap();
            let violations = emr_fhir::validation::violations(&resource);
            assert!(violations.is_empty(), "{resource}\n{violations:#?}");
            patients.insert(resource["id"].as_str().unwrap().to_owned());
        }
    }
    Ok(patients)
}

async fn patient_at(app: &TestApp, registrar: &User, hospital: &str) -> String {
    let mut body = support::patient_body();
    body["hospital_id"] = json!(hospital);
    body["identifiers"]["mrn"] = json!(format!("MRN-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]));
    let (status, _, created) = send(app, support::command(registrar, "POST", "/v1/patients", &body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["aggregate_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_backend_service_signs_in_with_its_key_and_exports_the_system_and_a_hospital() {
    let (rsa, ec) = (Signer::rsa(), Signer::ec());
    let mut app = support::app_with_everything().await;
    let service = emr_auth::backend::BackendClient {
        client_id: CLIENT.into(),
        name: "Population health".into(),
        jwks: JwkSet { keys: vec![rsa.public(), ec.public()] },
        scopes: vec!["system/*.rs".into()],
    };
    app.state.identity = app.state.identity.clone().with_backend_clients(vec![service]);
    app.router = emr_http::router(app.state.clone());

    let registrar = sign_in(&app, Role::Physician).await;
    let first = support::patient_with_a_record(&app).await.patient.id;
    let second = patient_at(&app, &registrar, "HOSP-001").await;
    let elsewhere = patient_at(&app, &registrar, "HOSP-002").await;
    support::fold(&app).await;

    // Each key signs an assertion that buys a short-lived token, without a refresh token.
    let (status, issued) = token(&app, &rsa.assertion(&claims(240, TOKEN_URL)), "system/*.rs system/*.cruds").await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    assert_eq!(issued["scope"], "system/*.rs", "narrowed to what the service was registered for");
    assert!(issued.get("refresh_token").is_none(), "{issued}");
    let bearer = issued["access_token"].as_str().unwrap().to_owned();
    let (status, by_ec) = token(&app, &ec.assertion(&claims(240, TOKEN_URL)), "system/*.rs").await;
    assert_eq!(status, StatusCode::OK, "{by_ec}");

    // Assertions that do not hold are refused as invalid_client.
    let used = rsa.assertion(&claims(240, TOKEN_URL));
    assert_eq!(token(&app, &used, "system/*.rs").await.0, StatusCode::OK);
    let mut refusals = vec![("replayed", used)];
    refusals.push(("another audience", rsa.assertion(&claims(240, "http://elsewhere/oauth/token"))));
    refusals.push(("living an hour", rsa.assertion(&claims(3600, TOKEN_URL))));
    refusals.push(("expired", rsa.assertion(&claims(-120, TOKEN_URL))));
    let mut stranger = claims(240, TOKEN_URL);
    stranger["iss"] = json!("someone-else");
    stranger["sub"] = json!("someone-else");
    refusals.push(("unregistered", rsa.assertion(&stranger)));
    let forged = Signer { kid: rsa.kid, ..Signer::ec() };
    refusals.push(("signed by another key", forged.assertion(&claims(240, TOKEN_URL))));
    let shared = Signer { key: EncodingKey::from_secret(b"shared secret"), algorithm: Algorithm::HS384, kid: rsa.kid };
    refusals.push(("a shared secret", shared.assertion(&claims(240, TOKEN_URL))));
    for (why, assertion) in refusals {
        let (status, refused) = token(&app, &assertion, "system/*.rs").await;
        assert_eq!((status, refused["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")), "{why}: {refused}");
    }

    // The system token exports every active patient; a Group is one hospital's patients.
    let everyone = export(&app, &bearer, "$export").await.unwrap();
    assert_eq!(everyone, BTreeSet::from([first.clone(), second.clone(), elsewhere.clone()]));
    let hospital = export(&app, &bearer, "Group/HOSP-002/$export").await.unwrap();
    assert_eq!(hospital, BTreeSet::from([elsewhere]));
    assert_eq!(export(&app, &bearer, "Group/not%20a%20code/$export").await, Err(StatusCode::BAD_REQUEST));

    // A practitioner's session cannot run a system-wide export.
    assert_eq!(export(&app, &registrar.token, "$export").await, Err(StatusCode::FORBIDDEN));
}
