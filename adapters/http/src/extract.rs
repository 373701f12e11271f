//! Extractors that turn request metadata and bodies into typed values, with
//! problem+json rejections.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use emr_domain::actor::Actor;
use emr_domain::ids::CommandId;
use emr_domain::metadata::CommandContext;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::problem::{ApiError, Problem};

/// A JSON body whose rejection is a problem document.
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(Self(value))
    }
}

/// A JSON body that may be left out entirely (an empty body reads as `None`).
pub(crate) struct OptionalBody<T>(pub(crate) Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let empty = request.headers().get(axum::http::header::CONTENT_LENGTH).is_some_and(|length| length == "0")
            || (request.headers().get(axum::http::header::CONTENT_TYPE).is_none()
                && request.headers().get(axum::http::header::TRANSFER_ENCODING).is_none()
                && request.headers().get(axum::http::header::CONTENT_LENGTH).is_none());
        if empty {
            return Ok(Self(None));
        }
        let Body(value) = Body::<T>::from_request(request, state).await?;
        Ok(Self(Some(value)))
    }
}

fn header<'a>(parts: &'a Parts, name: &str) -> Result<Option<&'a str>, ApiError> {
    parts.headers.get(name).map(|value| value.to_str().map_err(|_| bad_header(name, "must be visible ASCII"))).transpose()
}

fn bad_header(name: &str, detail: &str) -> ApiError {
    ApiError::Problem(Problem::new(StatusCode::BAD_REQUEST, "invalid-header", "A request header is not valid", format!("{name}: {detail}")))
}

/// The authenticated caller: a verified bearer access token whose session is live.
pub(crate) struct Caller {
    pub(crate) actor: Actor,
    pub(crate) claims: emr_auth::AccessClaims,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let authorization =
            header(parts, "authorization")?.ok_or(ApiError::Unauthenticated("send Authorization: Bearer <access token>"))?;
        let token = authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("bearer "))
            .ok_or(ApiError::Unauthenticated("the Authorization scheme must be Bearer"))?;
        let claims = state.identity.authenticate(token.trim()).await?;
        if claims.app.is_some() && !parts.extensions.get::<axum::extract::OriginalUri>().is_some_and(|uri| uri.path().starts_with("/fhir/"))
        {
            // An app's scopes are FHIR's: the rest of the API has no way to narrow
            // what it would let the app do.
            return Err(ApiError::Problem(Problem::new(
                StatusCode::FORBIDDEN,
                "app-token-outside-fhir",
                "Not allowed",
                "a SMART app's token is good for /fhir/r4 only",
            )));
        }
        crate::request_log::record_actor(&claims.actor());
        Ok(Self { actor: claims.actor(), claims })
    }
}

/// The authenticated caller of a command, and its idempotency key.
pub(crate) struct Command(pub(crate) CommandContext);

impl FromRequestParts<AppState> for Command {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Self(CommandBy::from_request_parts(parts, state).await?.context))
    }
}

/// A command's context and the caller's claims (what a SMART app's scopes allow).
pub(crate) struct CommandBy {
    pub(crate) context: CommandContext,
    pub(crate) caller: Caller,
}

impl FromRequestParts<AppState> for CommandBy {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let actor = caller.actor;
        let mut context = match idempotency_key(parts)? {
            Some(id) => CommandContext::with_id(id, actor),
            None => CommandContext::new(actor),
        };
        if let Some(request) = parts.extensions.get::<crate::request_log::RequestId>() {
            context.correlation_id = request.0;
        }
        Ok(Self { context: context.expecting(if_match(parts)?), caller })
    }
}

/// The `Idempotency-Key` header as the OpenAPI document shows it: every command
/// handler lists it in its `#[utoipa::path(params(..))]`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Only documents the header; `idempotency_key` reads it.
pub(crate) struct IdempotencyKeyHeader {
    /// The command's id: a request sent again with the same key is applied once and
    /// answers as the first did (send one with every command a client may retry).
    /// Without it, each request is a new command.
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<uuid::Uuid>,
}

/// The `If-Match` header as the OpenAPI document shows it (see [`IdempotencyKeyHeader`]).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Only documents the header; `if_match` reads it.
pub(crate) struct IfMatchHeader {
    /// The version the command expects: a read's `sequence` (`"3"`) or a FHIR read's
    /// `ETag` (`W/"3"`). If the resource changed since, nothing is written and the
    /// answer is 412 `version-mismatch`. `*` or no header: the latest version.
    #[param(rename = "If-Match")]
    if_match: Option<String>,
}

/// The `Idempotency-Key` header as a command id.
pub(crate) fn idempotency_key(parts: &Parts) -> Result<Option<CommandId>, ApiError> {
    header(parts, "idempotency-key")?
        .map(|key| CommandId::parse(key).map_err(|_| bad_header("Idempotency-Key", "must be a UUID")))
        .transpose()
}

/// The version an `If-Match` header names (`W/"3"` or `"3"`, as the `ETag` of a
/// read gave it); `*` or no header makes the command unconditional.
pub(crate) fn if_match(parts: &Parts) -> Result<Option<u64>, ApiError> {
    let Some(value) = header(parts, "if-match")? else { return Ok(None) };
    let value = value.trim();
    if value == "*" {
        return Ok(None);
    }
    let tag = value.strip_prefix("W/").unwrap_or(value);
    tag.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|version| version.parse().ok())
        .map(Some)
        .ok_or_else(|| bad_header("If-Match", "must be one ETag this server gave, such as W/\"3\""))
}

/// The `ETag` of an aggregate at `version`: weak, as the representation may vary
/// (a redacted read) while the version is the same.
pub(crate) fn etag(version: u64) -> String {
    format!("W/\"{version}\"")
}

/// The `Idempotency-Key` of an unauthenticated request (self-registration).
pub(crate) struct IdempotencyKey(pub(crate) CommandId);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(idempotency_key(parts)?.unwrap_or_default()))
    }
}

/// Who is asking, for per-address rate limits: the peer address when the
/// server knows it (behind a proxy, configure the proxy to limit instead).
pub(crate) struct ClientAddress(pub(crate) Option<std::net::IpAddr>);

impl ClientAddress {
    /// The key rate limits count under.
    pub(crate) fn key(&self) -> String {
        self.0.map(|address| address.to_string()).unwrap_or_else(|| "local".to_owned())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|info| info.0.ip().to_canonical())))
    }
}
