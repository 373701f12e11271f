//! SMART App Launch 2.x, standalone launch: an app registered with the identity
//! service sends its user to `/oauth/authorize`, where the user signs in exactly as
//! on the API (password and TOTP code), picks the patient when the app asks for
//! one (`launch/patient`), and approves the app's scopes; the app trades the code
//! for tokens at `/oauth/token` with its PKCE verifier (S256 only, as SMART 2.x
//! requires). Tokens can be introspected and revoked. Discovery: the FHIR base's
//! `.well-known/smart-configuration` and the CapabilityStatement's `oauth-uris`.
//!
//! Errors at the token, introspection and revocation endpoints are problem
//! documents that also carry RFC 6749's `error` and `error_description`, so OAuth
//! clients read them as they expect. An authorization request from an unknown app
//! or to an unregistered redirect URI is answered with a page, never redirected.

use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use emr_auth::apps::{AppGrant, AuthorizationRequest, LaunchContext, SmartApp};
use emr_commands::Subject;
use emr_domain::access::Action;
use emr_domain::account::Username;
use emr_domain::actor::Role;
use emr_domain::ids::PatientId;
use serde::Deserialize;
use serde_json::{Value, json};

use super::fhir::origin;
use crate::AppState;
use crate::extract::ClientAddress;
use crate::problem::{ApiError, Problem};

/// The scopes this server understands (an app is granted those it was registered for).
const SCOPES_SUPPORTED: &[&str] = &[
    "launch",
    "launch/patient",
    "offline_access",
    "online_access",
    "patient/*.rs",
    "patient/*.cruds",
    "user/*.rs",
    "user/*.cruds",
    "patient/*.read",
    "user/*.read",
    "user/*.write",
    "system/*.rs",
    "system/*.read",
];

/// The absolute URL of the OAuth endpoint `name` (`authorize`, `token`, …) at
/// `origin`: what discovery names, beside the routes that serve them.
pub(crate) fn endpoint(origin: &str, name: &str) -> String {
    format!("{origin}/oauth/{name}")
}

/// `GET /fhir/r4/.well-known/smart-configuration`.
pub(crate) async fn configuration(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let origin = origin(&headers);
    let mut body = json!({
        "authorization_endpoint": endpoint(&origin, "authorize"),
        "token_endpoint": endpoint(&origin, "token"),
        "introspection_endpoint": endpoint(&origin, "introspect"),
        "revocation_endpoint": endpoint(&origin, "revoke"),
        "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": SCOPES_SUPPORTED,
        "capabilities": [
            "launch-standalone", "launch-ehr", "client-public", "context-standalone-patient", "context-ehr-patient",
            "permission-offline", "permission-online", "permission-patient", "permission-user",
            "permission-v1", "permission-v2", "client-confidential-asymmetric",
        ],
    });
    if state.identity.id_token_keys().is_some() {
        body["issuer"] = json!(format!("{origin}/fhir/r4"));
        body["jwks_uri"] = json!(endpoint(&origin, "jwks"));
        body["capabilities"].as_array_mut().into_iter().for_each(|c| c.push(json!("sso-openid-connect")));
        body["scopes_supported"].as_array_mut().into_iter().for_each(|s| s.extend([json!("openid"), json!("fhirUser")]));
    }
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// `GET /fhir/r4/.well-known/openid-configuration`: OpenID Connect discovery
/// for apps that sign users in (`openid fhirUser`); 404 when no id-token key is set.
pub(crate) async fn openid_configuration(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.identity.id_token_keys().is_none() {
        return oauth_error(StatusCode::NOT_FOUND, "not_found", "this server issues no id_token");
    }
    let origin = origin(&headers);
    let body = json!({
        "issuer": format!("{origin}/fhir/r4"),
        "authorization_endpoint": endpoint(&origin, "authorize"),
        "token_endpoint": endpoint(&origin, "token"),
        "jwks_uri": endpoint(&origin, "jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "fhirUser"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser"],
        "code_challenge_methods_supported": ["S256"],
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// `GET /oauth/jwks`: the public key that signs `id_token`s.
pub(crate) async fn jwks(State(state): State<AppState>) -> Response {
    match state.identity.id_token_keys() {
        Some(keys) => (StatusCode::OK, axum::Json(keys)).into_response(),
        None => oauth_error(StatusCode::NOT_FOUND, "not_found", "this server issues no id_token"),
    }
}

/// What an EHR launch opens an app on.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LaunchRequest {
    /// The registered SMART app to launch.
    client_id: String,
    /// The patient open in the EHR (the user must be allowed to read them).
    patient_id: Option<PatientId>,
}

/// The launch the app is opened with.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Launch {
    /// Opaque; the app sends it back as `launch` when it asks to be authorized.
    launch: String,
    /// The FHIR server the app is launched against (its `iss` parameter).
    iss: String,
    /// Seconds the launch stays usable.
    expires_in: u64,
}

/// `POST /v1/smart/launches`: the EHR's side of a SMART EHR launch. A signed-in
/// user opens a registered app on the patient in front of them; the app is then
/// opened with `?iss=<iss>&launch=<launch>`, asks `/oauth/authorize` with that
/// `launch` and the `launch` scope, and gets the patient as its context once the
/// same user signs in and approves.
#[utoipa::path(post, path = "/v1/smart/launches", tag = "auth", summary = "Launch a SMART app on a patient (EHR launch)",
    request_body = LaunchRequest,
    responses((status = 201, description = "the launch to open the app with", body = Launch),
              (status = "4XX", description = "problem+json: invalid input, unauthenticated, forbidden", body = crate::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub(crate) async fn launch(
    State(state): State<AppState>,
    caller: crate::extract::Caller,
    headers: HeaderMap,
    crate::extract::Body(request): crate::extract::Body<LaunchRequest>,
) -> Result<(StatusCode, axum::Json<Launch>), ApiError> {
    if let Some(patient) = request.patient_id {
        // The app gets the patient only if its user may read them.
        state.clinic.authorize(&caller.actor, Action::ReadPatient, Subject::patient(patient)).await?;
    }
    let context = LaunchContext { client_id: request.client_id, user_id: caller.actor.user_id, patient: request.patient_id };
    let launch = state.identity.create_launch(&context).await?;
    let body = Launch { launch, iss: format!("{}/fhir/r4", origin(&headers)), expires_in: state.identity.launch_lifetime().as_secs() };
    Ok((StatusCode::CREATED, axum::Json(body)))
}

/// The authorization request (RFC 6749 §4.1.1 with PKCE and SMART's `aud`),
/// carried from the query string into the sign-in form and back.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AuthorizeRequest {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    aud: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    /// An EHR launch's opaque value (with the `launch` scope).
    launch: Option<String>,
    /// OpenID Connect's `nonce`, echoed in the `id_token`.
    nonce: Option<String>,
}

/// What the sign-in form adds to the request.
#[derive(Debug, Deserialize)]
pub(crate) struct Approval {
    #[serde(flatten)]
    request: AuthorizeRequest,
    username: Option<String>,
    password: Option<String>,
    code: Option<String>,
    patient: Option<String>,
    decision: Option<String>,
    /// Present when the page offered the scopes as choices (`consent_<n>` fields
    /// then carry the ones the user kept ticked).
    consent_shown: Option<String>,
    #[serde(flatten)]
    choices: std::collections::HashMap<String, String>,
}

impl Approval {
    /// The offered scopes the user kept: all of them unless the page offered a
    /// choice; never one that was not offered.
    fn kept(&self, offered: &[String]) -> Vec<String> {
        if self.consent_shown.is_none() {
            return offered.to_vec();
        }
        let ticked: Vec<&String> = self.choices.iter().filter(|(name, _)| name.starts_with("consent_")).map(|(_, scope)| scope).collect();
        offered.iter().filter(|scope| ticked.contains(scope)).cloned().collect()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// A page for what cannot be sent back to the app.
fn error_page(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Authorization failed</title></head>\
         <body><main><h1>Authorization failed</h1><p role=\"alert\">{}</p></main></body></html>",
        escape(message)
    );
    (status, Html(body)).into_response()
}

/// The registered app and redirect URI of a request, or why there is none (for
/// the page that says so: such a request is never redirected).
fn registered<'a>(state: &'a AppState, request: &AuthorizeRequest) -> Result<(&'a SmartApp, String), &'static str> {
    let client_id = request.client_id.as_deref().unwrap_or_default();
    let app = state.identity.app(client_id).ok_or("this app is not registered")?;
    let redirect_uri = request.redirect_uri.clone().unwrap_or_default();
    if !app.redirect_uris.contains(&redirect_uri) {
        return Err("the redirect URI is not registered for this app");
    }
    Ok((app, redirect_uri))
}

/// Sends the user back to the app with `params` (and the request's `state`).
fn back_to_app(redirect_uri: &str, request: &AuthorizeRequest, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return error_page(StatusCode::BAD_REQUEST, "the redirect URI is not a URL");
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
        if let Some(state) = &request.state {
            query.append_pair("state", state);
        }
    }
    Redirect::to(url.as_str()).into_response()
}

/// Checks what OAuth and SMART require of the request itself; the error code
/// and description to send back to the app when it falls short.
fn check(request: &AuthorizeRequest, headers: &HeaderMap) -> Result<(), (&'static str, String)> {
    if request.response_type.as_deref() != Some("code") {
        return Err(("unsupported_response_type", "response_type must be code".into()));
    }
    if request.code_challenge_method.as_deref() != Some("S256") || request.code_challenge.as_deref().is_none_or(str::is_empty) {
        return Err(("invalid_request", "PKCE is required: code_challenge with code_challenge_method S256".into()));
    }
    let fhir_base = format!("{}/fhir/r4", origin(headers));
    if request.aud.as_deref().map(|aud| aud.trim_end_matches('/')) != Some(fhir_base.as_str()) {
        return Err(("invalid_request", format!("aud must name this FHIR server, {fhir_base}")));
    }
    Ok(())
}

/// The sign-in and consent page.
fn sign_in_page(app: &SmartApp, request: &AuthorizeRequest, granted: &[String], message: Option<&str>) -> Response {
    let hidden: String = [
        ("response_type", &request.response_type),
        ("client_id", &request.client_id),
        ("redirect_uri", &request.redirect_uri),
        ("scope", &request.scope),
        ("state", &request.state),
        ("aud", &request.aud),
        ("code_challenge", &request.code_challenge),
        ("code_challenge_method", &request.code_challenge_method),
        ("launch", &request.launch),
        ("nonce", &request.nonce),
    ]
    .iter()
    .filter_map(|(name, value)| value.as_ref().map(|v| format!("<input type=\"hidden\" name=\"{name}\" value=\"{}\">", escape(v))))
    .collect();
    let scopes: String = granted
        .iter()
        .enumerate()
        .map(|(n, scope)| {
            format!(
                "<li><input type=\"checkbox\" id=\"consent_{n}\" name=\"consent_{n}\" value=\"{scope}\" checked> \
                 <label for=\"consent_{n}\"><code>{scope}</code></label></li>",
                scope = escape(scope)
            )
        })
        .collect();
    let patient_field = if request.launch.is_none() && granted.iter().any(|scope| scope == "launch/patient") {
        "<p><label for=\"patient\">Patient id (practitioners: the patient to open; patients: leave empty)</label>\
         <input id=\"patient\" name=\"patient\" autocomplete=\"off\"></p>"
    } else {
        ""
    };
    let alert = message.map(|m| format!("<p role=\"alert\">{}</p>", escape(m))).unwrap_or_default();
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in to authorize {name}</title></head><body><main>\
         <h1>Authorize {name}</h1>{alert}<form method=\"post\" action=\"/oauth/authorize\">{hidden}\
         <input type=\"hidden\" name=\"consent_shown\" value=\"1\">\
         <p>{name} asks to act for you with these permissions; untick any you do not give:</p><ul>{scopes}</ul>\
         <p><label for=\"username\">Username</label><input id=\"username\" name=\"username\" autocomplete=\"username\" required></p>\
         <p><label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></p>\
         <p><label for=\"code\">Authenticator code</label><input id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" required></p>\
         {patient_field}\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\" formnovalidate>Deny</button></form></main></body></html>",
        name = escape(&app.name),
    );
    let mut response = Html(body).into_response();
    // The page takes credentials: never framed by another site, never cached.
    response.headers_mut().insert("x-frame-options", HeaderValue::from_static("DENY"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /oauth/authorize`: the sign-in and consent page for a registered app.
pub(crate) async fn authorize_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Result<Query<AuthorizeRequest>, QueryRejection>,
) -> Response {
    let Ok(Query(request)) = request else {
        return error_page(StatusCode::BAD_REQUEST, "the authorization request is malformed");
    };
    let (app, redirect_uri) = match registered(&state, &request) {
        Ok(found) => found,
        Err(why) => return error_page(StatusCode::BAD_REQUEST, why),
    };
    if let Err((error, description)) = check(&request, &headers) {
        return back_to_app(&redirect_uri, &request, &[("error", error), ("error_description", &description)]);
    }
    let granted = app.grantable(request.scope.as_deref().unwrap_or_default());
    sign_in_page(app, &request, &granted, None)
}

/// `POST /oauth/authorize`: the user's sign-in and decision. Approval sends the
/// app a one-use code for the scopes it may hold; denial sends `access_denied`.
pub(crate) async fn authorize(
    State(state): State<AppState>,
    client: ClientAddress,
    headers: HeaderMap,
    form: Result<Form<Approval>, FormRejection>,
) -> Response {
    let Ok(Form(approval)) = form else {
        return error_page(StatusCode::BAD_REQUEST, "the form is malformed");
    };
    let request = &approval.request;
    let (app, redirect_uri) = match registered(&state, request) {
        Ok(found) => found,
        Err(why) => return error_page(StatusCode::BAD_REQUEST, why),
    };
    if let Err((error, description)) = check(request, &headers) {
        return back_to_app(&redirect_uri, request, &[("error", error), ("error_description", &description)]);
    }
    if approval.decision.as_deref() != Some("approve") {
        return back_to_app(&redirect_uri, request, &[("error", "access_denied"), ("error_description", "the user denied the request")]);
    }
    let offered = app.grantable(request.scope.as_deref().unwrap_or_default());
    let again = |message: &str| sign_in_page(app, request, &offered, Some(message));
    let granted = approval.kept(&offered);
    if granted.is_empty() && !offered.is_empty() {
        return again("tick at least one permission, or deny the app");
    }
    if let Err(error) = state.identity.rate_limit(&client.key(), state.login_attempts_per_minute).await {
        return again(&ApiError::from(error).problem().detail);
    }
    // A launch is checked before anyone signs in: a stale one spends no credentials.
    let launched = match &request.launch {
        None => None,
        Some(launch) => match state.identity.launch_context(launch).await {
            Ok(Some(context)) if context.client_id == app.client_id => Some(context),
            Ok(_) => return again("this launch is unknown, expired, or for another app: launch the app again"),
            Err(error) => return again(&ApiError::from(error).problem().detail),
        },
    };
    let Ok(username) = Username::parse(approval.username.as_deref().unwrap_or_default()) else {
        return again("the username or password is wrong");
    };
    let password = approval.password.clone().unwrap_or_default();
    let code = approval.code.as_deref().unwrap_or_default();
    let actor = match state.identity.authenticate_for_app(&username, password, code, client.0).await {
        Ok(actor) => actor,
        Err(error) => return again(&ApiError::from(error).problem().detail),
    };
    let patient = if let Some(context) = launched {
        // An EHR launch: the patient is the one the launching user opened, and
        // only that user may approve it.
        if context.user_id != actor.user_id {
            return again("this launch was made by another user");
        }
        if let Some(patient) = context.patient
            && let Err(error) = state.clinic.authorize(&actor, Action::ReadPatient, Subject::patient(patient)).await
        {
            return again(&ApiError::from(error).problem().detail);
        }
        context.patient
    } else if granted.iter().any(|scope| scope == "launch/patient") {
        let chosen = match (actor.role, approval.patient.as_deref().map(str::trim).filter(|p| !p.is_empty())) {
            (Role::Patient, None) => Ok(PatientId::from(actor.user_id.as_uuid())),
            (_, Some(text)) => text.parse::<PatientId>().map_err(|_| "the patient id must be a UUID"),
            (_, None) => Err("choose the patient the app opens"),
        };
        let patient = match chosen {
            Ok(patient) => patient,
            Err(message) => return again(message),
        };
        // The app gets the patient only if its user may read them.
        if let Err(error) = state.clinic.authorize(&actor, Action::ReadPatient, Subject::patient(patient)).await {
            return again(&ApiError::from(error).problem().detail);
        }
        Some(patient)
    } else {
        None
    };
    let grant = AppGrant { client_id: app.client_id.clone(), scope: granted.join(" "), patient };
    let pending = AuthorizationRequest {
        grant,
        redirect_uri: redirect_uri.clone(),
        code_challenge: request.code_challenge.clone().unwrap_or_default(),
        nonce: request.nonce.clone(),
    };
    match state.identity.issue_authorization_code(actor, pending).await {
        Ok(code) => back_to_app(&redirect_uri, request, &[("code", &code)]),
        Err(error) => again(&ApiError::from(error).problem().detail),
    }
}

/// An OAuth error as a problem document carrying RFC 6749's members too.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let problem = Problem::new(status, error, "The OAuth request failed", description);
    let mut body = serde_json::to_value(&problem).unwrap_or_else(|_| json!({}));
    body["error"] = json!(error);
    body["error_description"] = json!(description);
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn from_auth(error: emr_auth::AuthError) -> Response {
    let problem = ApiError::from(error).problem();
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
    let error = match status {
        _ if status.is_server_error() => "server_error",
        StatusCode::UNAUTHORIZED => "invalid_client",
        _ => "invalid_grant",
    };
    oauth_error(status, error, &problem.detail)
}

/// The token request (RFC 6749 §4.1.3 and §6).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenRequest {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// `POST /oauth/token`: a code (with its PKCE verifier) or a refresh token for tokens.
pub(crate) async fn token(
    State(state): State<AppState>,
    client: ClientAddress,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Response {
    let Ok(Form(request)) = form else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "send an application/x-www-form-urlencoded token request");
    };
    if request.grant_type.as_deref() == Some("client_credentials") {
        let (Some(emr_auth::backend::JWT_BEARER), Some(assertion)) = (request.client_assertion_type.as_deref(), &request.client_assertion)
        else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "client_credentials takes a client_assertion of client_assertion_type urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            );
        };
        let token_url = endpoint(&origin(&headers), "token");
        let scope = request.scope.as_deref().unwrap_or_default();
        return match state.identity.client_credentials(assertion, scope, &token_url, client.0).await {
            Ok(tokens) => no_store(tokens),
            Err(error) => from_auth(error),
        };
    }
    let client_id = request.client_id.as_deref().unwrap_or_default();
    if state.identity.app(client_id).is_none() {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "this app is not registered");
    }
    let tokens = match request.grant_type.as_deref() {
        Some("authorization_code") => {
            let (Some(code), Some(redirect_uri), Some(verifier)) = (&request.code, &request.redirect_uri, &request.code_verifier) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "code, redirect_uri and code_verifier are required");
            };
            let issuer = format!("{}/fhir/r4", origin(&headers));
            state.identity.redeem_authorization_code(code, client_id, redirect_uri, verifier, client.0, &issuer).await
        }
        Some("refresh_token") => {
            let Some(refresh_token) = &request.refresh_token else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "refresh_token is required");
            };
            state.identity.refresh_app(refresh_token, client_id, client.0).await
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type is authorization_code, refresh_token or client_credentials",
            );
        }
    };
    match tokens {
        Ok(tokens) => no_store(tokens),
        Err(error) => from_auth(error),
    }
}

/// Tokens, never cached (RFC 6749 §5.1).
fn no_store(tokens: emr_auth::apps::AppTokens) -> Response {
    let mut response = (StatusCode::OK, axum::Json(tokens)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A token to introspect or revoke (RFC 7662, RFC 7009).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenForm {
    token: Option<String>,
}

/// `POST /oauth/introspect`: whether a token is live, and for whom and what. It
/// tells nothing beyond the token itself to whoever holds it.
pub(crate) async fn introspect(State(state): State<AppState>, form: Result<Form<TokenForm>, FormRejection>) -> Response {
    let Some(token) = form.ok().and_then(|Form(form)| form.token) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "token is required");
    };
    let body: Value = match state.identity.authenticate(&token).await {
        Ok(claims) => {
            let mut body = json!({"active": true, "token_type": "Bearer", "sub": claims.sub, "exp": claims.exp, "iat": claims.iat});
            if let Some(app) = claims.app {
                body["client_id"] = json!(app.client_id);
                body["scope"] = json!(app.scope);
                if let Some(patient) = app.patient {
                    body["patient"] = json!(patient);
                }
            }
            body
        }
        Err(emr_auth::AuthError::Sessions(_)) => {
            return oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "try again shortly");
        }
        Err(_) => json!({"active": false}),
    };
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// `POST /oauth/revoke`: ends the session of an access or refresh token.
pub(crate) async fn revoke(State(state): State<AppState>, form: Result<Form<TokenForm>, FormRejection>) -> Response {
    let Some(token) = form.ok().and_then(|Form(form)| form.token) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "token is required");
    };
    match state.identity.revoke(&token).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => from_auth(error),
    }
}
