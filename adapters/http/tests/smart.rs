//! SMART App Launch through the router: the authorization page refuses what it
//! cannot trust before anyone signs in, a code is good once and only with its
//! PKCE verifier, and an app's token reads within its scopes and its patient, is
//! refused outside `/fhir/r4`, refreshes with its grant, and dies when revoked.

#![allow(clippy::unwrap_used)]

mod support;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use emr_auth::apps::SmartApp;
use emr_domain::actor::Role;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use support::{TestApp, User, code_for, now_secs, open_account, send, sign_in, sign_in_as};
use tower::ServiceExt;

const REDIRECT: &str = "https://app.example/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

async fn app_with_smart() -> TestApp {
    let mut app = support::app_with_everything().await;
    let viewer = SmartApp {
        client_id: "viewer".into(),
        name: "Viewer".into(),
        redirect_uris: vec![REDIRECT.into()],
        scopes: vec![
            "launch".into(),
            "launch/patient".into(),
            "patient/Condition.rs".into(),
            "offline_access".into(),
            "openid".into(),
            "fhirUser".into(),
        ],
    };
    let id_token_key = emr_auth::oidc::IdTokenKey::from_pkcs8_der(&emr_auth::oidc::IdTokenKey::generate_pkcs8().unwrap()).unwrap();
    app.state.identity = app.state.identity.clone().with_apps(vec![viewer]).with_id_token_key(id_token_key);
    app.identity = app.state.identity.clone();
    app.router = emr_http::router(app.state.clone());
    app
}

fn authorize_query(extra: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", "viewer"),
        ("redirect_uri", REDIRECT),
        ("scope", "launch/patient patient/Condition.rs patient/Encounter.rs offline_access"),
        ("state", "xyz"),
        ("aud", "http://localhost/fhir/r4"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (name, value) in extra {
        params.retain(|(n, _)| n != name);
        if !value.is_empty() {
            params.push((name, value));
        }
    }
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish()
}

/// Sends a request and answers the status, the `Location` and the body text.
async fn raw(app: &TestApp, request: Request<Body>) -> (StatusCode, Option<String>, String) {
    let response = app.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let location = response.headers().get(header::LOCATION).map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, location, String::from_utf8_lossy(&body).into_owned())
}

fn form(path: &str, body: String) -> Request<Body> {
    Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(Body::from(body)).unwrap()
}

fn query_of(location: &str) -> Vec<(String, String)> {
    url::Url::parse(location).unwrap().query_pairs().into_owned().collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// A patient who signed in on the API (their enrolled TOTP secret and username)
/// and has one record with diagnosis I10.
async fn patient_with_a_record(app: &TestApp) -> (User, String, String) {
    let author = sign_in(app, Role::Physician).await;
    let (id, username) = open_account(app, Role::Patient).await;
    let (patient, secret, _) = sign_in_as(app, id, &username).await;
    let mut body = support::patient_body();
    body["patient_id"] = json!(patient.id);
    assert_eq!(send(app, support::command(&author, "POST", "/v1/patients", &body)).await.0, StatusCode::CREATED);
    let (status, _, _) = send(app, support::command(&author, "POST", "/v1/records", &support::record_body(&patient.id, &author))).await;
    assert_eq!(status, StatusCode::CREATED);
    (patient, secret, username)
}

/// Signs in on the authorization page (with the next step's TOTP code: the API
/// sign-in spent this step's) and approves: the redirect's query.
async fn approve(app: &TestApp, username: &str, secret: &str) -> Vec<(String, String)> {
    let code = code_for(secret, username, now_secs() + 30);
    let body = format!("{}&username={username}&password={}&code={code}&decision=approve", authorize_query(&[]), support::PASSWORD);
    let (status, location, page) = raw(app, form("/oauth/authorize", body)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    query_of(&location.unwrap())
}

async fn token(app: &TestApp, fields: &[(&str, &str)]) -> (StatusCode, Value) {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let (status, _, text) = raw(app, form("/oauth/token", body)).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Trades the code of an approval (with the PKCE verifier) for tokens.
async fn redeem(app: &TestApp, code: &str) -> (StatusCode, Value) {
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("client_id", "viewer"),
        ("code_verifier", VERIFIER),
    ];
    token(app, &fields).await
}

#[tokio::test]
async fn requests_that_cannot_be_trusted_are_refused_before_anyone_signs_in() {
    let app = app_with_smart().await;
    let get = |query: String| Request::get(format!("/oauth/authorize?{query}")).body(Body::empty()).unwrap();

    let (status, location, page) = raw(&app, get(authorize_query(&[]))).await;
    assert_eq!((status, location), (StatusCode::OK, None), "{page}");
    assert!(page.contains("Authorize Viewer") && page.contains("patient/Condition.rs"), "{page}");
    assert!(!page.contains("<code>patient/Encounter.rs</code>"), "a scope the app was not registered for is not offered: {page}");

    // Unknown apps and unregistered redirect URIs get a page, never a redirect.
    for query in [authorize_query(&[("client_id", "stranger")]), authorize_query(&[("redirect_uri", "https://evil.example/cb")])] {
        let (status, location, _) = raw(&app, get(query)).await;
        assert_eq!((status, location), (StatusCode::BAD_REQUEST, None));
    }
    // Without S256 PKCE, or for another server, the app is told why.
    for (query, error) in [
        (authorize_query(&[("code_challenge_method", "plain")]), "invalid_request"),
        (authorize_query(&[("code_challenge", "")]), "invalid_request"),
        (authorize_query(&[("aud", "https://other.example/fhir")]), "invalid_request"),
        (authorize_query(&[("response_type", "token")]), "unsupported_response_type"),
    ] {
        let (status, location, _) = raw(&app, get(query)).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let pairs = query_of(&location.unwrap());
        assert_eq!((param(&pairs, "error"), param(&pairs, "state")), (Some(error), Some("xyz")));
    }

    // A denial goes back as access_denied; a wrong code keeps the user on the page.
    let (status, location, _) = raw(&app, form("/oauth/authorize", format!("{}&decision=deny", authorize_query(&[])))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(param(&query_of(&location.unwrap()), "error"), Some("access_denied"));
    let (_, _, username) = patient_with_a_record(&app).await;
    let body = format!("{}&username={username}&password={}&code=000000&decision=approve", authorize_query(&[]), support::PASSWORD);
    let (status, location, page) = raw(&app, form("/oauth/authorize", body)).await;
    assert_eq!((status, location), (StatusCode::OK, None));
    assert!(page.contains("role=\"alert\""), "{page}");

    let request = Request::get("/fhir/r4/.well-known/smart-configuration").body(Body::empty()).unwrap();
    let (status, _, configuration) = raw(&app, request).await;
    let configuration: Value = serde_json::from_str(&configuration).unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(configuration["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(configuration["token_endpoint"], "http://localhost/oauth/token");
}

#[tokio::test]
async fn a_code_is_good_once_and_only_with_its_verifier() {
    let app = app_with_smart().await;
    let (_, secret, username) = patient_with_a_record(&app).await;
    let redirect = approve(&app, &username, &secret).await;
    assert_eq!(param(&redirect, "state"), Some("xyz"));
    let code = param(&redirect, "code").unwrap();
    let exchange = |verifier: &'static str| {
        [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", "viewer"),
            ("code_verifier", verifier),
        ]
    };
    let (status, refused) = token(&app, &exchange("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "{refused}");
    assert_eq!(refused["status"], 400, "a problem document too: {refused}");
    let (status, refused) = token(&app, &exchange(VERIFIER)).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")), "a tried code is spent: {refused}");
    let (status, refused) = token(&app, &[("grant_type", "password"), ("client_id", "viewer")]).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
    let (status, refused) = token(&app, &[("grant_type", "authorization_code"), ("client_id", "stranger")]).await;
    assert_eq!((status, refused["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
}

#[tokio::test]
async fn an_app_token_reads_within_its_scopes_refreshes_with_them_and_dies_when_revoked() {
    let app = app_with_smart().await;
    let (patient, secret, username) = patient_with_a_record(&app).await;
    let redirect = approve(&app, &username, &secret).await;
    let (status, tokens) = redeem(&app, param(&redirect, "code").unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["patient"], patient.id.as_str(), "the patient signed in is the context");
    assert_eq!(tokens["scope"], "launch/patient patient/Condition.rs offline_access");
    let bearer = User { id: patient.id.clone(), token: tokens["access_token"].as_str().unwrap().to_owned() };

    support::fold(&app).await;
    let (status, _, condition) = send(&app, support::get(&bearer, &format!("/fhir/r4/Condition?patient={}", patient.id))).await;
    assert_eq!(status, StatusCode::OK, "{condition}");
    assert_eq!(condition["entry"][0]["resource"]["code"]["coding"][0]["code"], "I10", "{condition}");
    let (status, _, refused) = send(&app, support::get(&bearer, &format!("/fhir/r4/Encounter?patient={}", patient.id))).await;
    assert_eq!((status, refused["issue"][0]["details"]["coding"][0]["code"].as_str()), (StatusCode::FORBIDDEN, Some("insufficient-scope")));
    let (status, _, refused) = send(&app, support::get(&bearer, &format!("/fhir/r4/Condition?patient={}", uuid::Uuid::now_v7()))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another patient is outside the context: {refused}");
    let (status, _, refused) = send(&app, support::get(&bearer, &format!("/v1/patients/{}", patient.id))).await;
    assert_eq!((status, refused["code"].as_str()), (StatusCode::FORBIDDEN, Some("app-token-outside-fhir")));

    let introspect = |token: String| form("/oauth/introspect", format!("token={token}"));
    let (_, _, active) = raw(&app, introspect(bearer.token.clone())).await;
    let active: Value = serde_json::from_str(&active).unwrap();
    assert_eq!((active["active"].as_bool(), active["client_id"].as_str()), (Some(true), Some("viewer")), "{active}");

    let refresh = tokens["refresh_token"].as_str().expect("offline_access brings a refresh token");
    let (status, renewed) = token(&app, &[("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", "viewer")]).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!((renewed["scope"].as_str(), renewed["patient"].as_str()), (tokens["scope"].as_str(), Some(patient.id.as_str())));

    let renewed_token = renewed["access_token"].as_str().unwrap().to_owned();
    let (status, _, _) = raw(&app, form("/oauth/revoke", format!("token={renewed_token}"))).await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, inactive) = raw(&app, introspect(renewed_token.clone())).await;
    assert_eq!(serde_json::from_str::<Value>(&inactive).unwrap(), json!({"active": false}));
    let revoked = User { id: patient.id.clone(), token: renewed_token };
    let (status, _, _) = send(&app, support::get(&revoked, &format!("/fhir/r4/Condition?patient={}", patient.id))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_ehr_launch_opens_the_app_on_the_launching_users_patient_and_no_one_elses() {
    let app = app_with_smart().await;
    let (patient, secret, username) = patient_with_a_record(&app).await;
    // The EHR (here the patient's portal) launches the app on the patient in front of it.
    let request = json!({"client_id": "viewer", "patient_id": patient.id});
    let (status, _, launched) = send(&app, support::command(&patient, "POST", "/v1/smart/launches", &request)).await;
    assert_eq!(status, StatusCode::CREATED, "{launched}");
    assert_eq!(launched["iss"], "http://localhost/fhir/r4");
    let launch = launched["launch"].as_str().unwrap().to_owned();

    // The app asks with the launch: the page asks for no patient, the launching user approves.
    let query = authorize_query(&[("launch", launch.as_str()), ("scope", "launch patient/Condition.rs")]);
    let (status, _, page) = raw(&app, Request::get(format!("/oauth/authorize?{query}")).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(!page.contains("name=\"patient\""), "the launch names the patient: {page}");
    let (other, other_secret, other_username) = patient_with_a_record(&app).await;
    let approve_as = |username: &str, secret: &str| {
        let code = code_for(secret, username, now_secs() + 30);
        format!("{query}&username={username}&password={}&code={code}&decision=approve", support::PASSWORD)
    };
    let (status, location, page) = raw(&app, form("/oauth/authorize", approve_as(&other_username, &other_secret))).await;
    assert_eq!((status, location), (StatusCode::OK, None), "another user cannot take over the launch");
    assert!(page.contains("another user"), "{page}");
    let _ = other;
    let (status, location, page) = raw(&app, form("/oauth/authorize", approve_as(&username, &secret))).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let redirect = query_of(&location.unwrap());
    let (status, tokens) = redeem(&app, param(&redirect, "code").unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!((tokens["patient"].as_str(), tokens["scope"].as_str()), (Some(patient.id.as_str()), Some("launch patient/Condition.rs")));

    // A launch on a patient the user may not read, for an unknown app, or made up, goes nowhere.
    let stranger = sign_in(&app, Role::Physician).await;
    let (status, _, refused) = send(&app, support::command(&stranger, "POST", "/v1/smart/launches", &request)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let unknown = json!({"client_id": "stranger-app"});
    let (status, _, refused) = send(&app, support::command(&patient, "POST", "/v1/smart/launches", &unknown)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let made_up = authorize_query(&[("launch", "made-up"), ("scope", "launch patient/Condition.rs")]);
    let code = code_for(&secret, &username, now_secs() + 60);
    let body = format!("{made_up}&username={username}&password={}&code={code}&decision=approve", support::PASSWORD);
    let (status, location, page) = raw(&app, form("/oauth/authorize", body)).await;
    assert_eq!((status, location), (StatusCode::OK, None));
    assert!(page.contains("launch the app again"), "{page}");
}

#[tokio::test]
async fn the_user_can_untick_scopes_on_the_consent_screen_and_the_token_carries_only_the_rest() {
    let app = app_with_smart().await;
    let (patient, secret, username) = patient_with_a_record(&app).await;
    let (_, _, page) = raw(&app, Request::get(format!("/oauth/authorize?{}", authorize_query(&[]))).body(Body::empty()).unwrap()).await;
    assert!(page.contains("type=\"checkbox\"") && page.contains("value=\"offline_access\" checked"), "{page}");

    let code = code_for(&secret, &username, now_secs() + 30);
    let credentials = format!("username={username}&password={}&code={code}&decision=approve&consent_shown=1", support::PASSWORD);
    let nothing = format!("{}&{credentials}", authorize_query(&[]));
    let (status, location, page) = raw(&app, form("/oauth/authorize", nothing)).await;
    assert_eq!((status, location), (StatusCode::OK, None), "nothing ticked is not an approval");
    assert!(page.contains("tick at least one"), "{page}");
    // Ticked: the patient context and Conditions; offline_access unticked. A scope
    // slipped into the form that was never offered is not granted either.
    let ticked = "consent_0=launch%2Fpatient&consent_1=patient%2FCondition.rs&consent_9=user%2F*.cruds";
    let body = format!("{}&{credentials}&{ticked}", authorize_query(&[]));
    let (status, location, page) = raw(&app, form("/oauth/authorize", body)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let redirect = query_of(&location.unwrap());
    let (status, tokens) = redeem(&app, param(&redirect, "code").unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(
        (tokens["scope"].as_str(), tokens["patient"].as_str()),
        (Some("launch/patient patient/Condition.rs"), Some(patient.id.as_str()))
    );
    assert!(tokens.get("refresh_token").is_none(), "offline_access was not given: {tokens}");
    assert!(tokens.get("id_token").is_none(), "no id_token without openid: {tokens}");
}

#[tokio::test]
async fn an_app_that_asks_for_openid_gets_an_rs256_id_token_naming_the_user_that_its_jwks_verifies() {
    let app = app_with_smart().await;
    let (patient, secret, username) = patient_with_a_record(&app).await;
    let (status, _, discovery) = send(&app, Request::get("/fhir/r4/.well-known/openid-configuration").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{discovery}");
    assert_eq!(
        (discovery["issuer"].as_str(), discovery["jwks_uri"].as_str()),
        (Some("http://localhost/fhir/r4"), Some("http://localhost/oauth/jwks"))
    );
    assert_eq!(discovery["id_token_signing_alg_values_supported"], json!(["RS256"]));

    let tokens = approved_tokens(&app, &username, &secret, "launch/patient patient/Condition.rs openid fhirUser", "n-0S6_WzA2Mj").await;
    let claims = verified_id_token(&app, tokens["id_token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], patient.id.as_str());
    assert_eq!(claims["fhirUser"], format!("Patient/{}", patient.id));
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
}

/// Signs `username` in on the authorization page, approves `scope` (with `nonce`)
/// and redeems the code: the token response.
async fn approved_tokens(app: &TestApp, username: &str, secret: &str, scope: &str, nonce: &str) -> Value {
    let query = authorize_query(&[("scope", scope), ("nonce", nonce)]);
    let code = code_for(secret, username, now_secs() + 30);
    let body = format!("{query}&username={username}&password={}&code={code}&decision=approve", support::PASSWORD);
    let (status, location, page) = raw(app, form("/oauth/authorize", body)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let (status, tokens) = redeem(app, param(&query_of(&location.unwrap()), "code").unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

/// The claims of an `id_token`, verified (RS256) with the key the server publishes.
async fn verified_id_token(app: &TestApp, id_token: &str) -> Value {
    let (_, _, jwks) = send(app, Request::get("/oauth/jwks").body(Body::empty()).unwrap()).await;
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["viewer"]);
    validation.set_issuer(&["http://localhost/fhir/r4"]);
    jsonwebtoken::decode::<Value>(id_token, &key, &validation).unwrap().claims
}

#[tokio::test]
async fn a_clinicians_id_token_names_them_as_a_practitioner_the_server_serves() {
    let app = app_with_smart().await;
    let (id, username) = support::open_account(&app, Role::Physician).await;
    let (physician, secret, _) = sign_in_as(&app, id, &username).await;
    let tokens = approved_tokens(&app, &username, &secret, "openid fhirUser", "n-1").await;
    let claims = verified_id_token(&app, tokens["id_token"].as_str().unwrap()).await;
    let fhir_user = format!("Practitioner/{}", physician.id);
    assert_eq!(claims["fhirUser"], fhir_user.as_str());

    // The resource it names is served, to any signed-in caller; a patient is no practitioner.
    let reader = support::sign_in(&app, Role::Nurse).await;
    let (status, _, practitioner) = send(&app, support::get(&reader, &format!("/fhir/r4/{fhir_user}"))).await;
    assert_eq!(status, StatusCode::OK, "{practitioner}");
    assert!(emr_fhir::validation::violations(&practitioner).is_empty(), "{practitioner}");
    assert_eq!(practitioner["name"][0]["text"], "Li Wei");
    assert_eq!(practitioner["identifier"][0]["value"], physician.id.as_str());
    let patient = support::sign_in(&app, Role::Patient).await;
    let (status, _, missing) = send(&app, support::get(&reader, &format!("/fhir/r4/Practitioner/{}", patient.id))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
}
