//! Extractors that turn request metadata and bodies into typed values, with
//! problem+json rejections.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use emr_domain::actor::{Actor, Role};
use emr_domain::ids::{CommandId, UserId};
use emr_domain::metadata::CommandContext;
use serde::de::DeserializeOwned;

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

fn header<'a>(parts: &'a Parts, name: &str) -> Result<Option<&'a str>, ApiError> {
    parts.headers.get(name).map(|value| value.to_str().map_err(|_| bad_header(name, "must be visible ASCII"))).transpose()
}

fn bad_header(name: &str, detail: &str) -> ApiError {
    ApiError::Problem(Problem::new(StatusCode::BAD_REQUEST, "invalid-header", "A request header is not valid", format!("{name}: {detail}")))
}

/// Who sends a command and under which idempotency key.
pub(crate) struct Command(pub(crate) CommandContext);

impl<S: Send + Sync> FromRequestParts<S> for Command {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let user = header(parts, "x-emr-user")?.ok_or_else(|| bad_header("X-Emr-User", "is required (the acting user's UUID)"))?;
        let user = UserId::parse(user).map_err(|_| bad_header("X-Emr-User", "must be a UUID"))?;
        let role = header(parts, "x-emr-role")?.ok_or_else(|| bad_header("X-Emr-Role", "is required"))?;
        let role: Role = serde_json::from_value(serde_json::Value::String(role.to_owned()))
            .map_err(|_| bad_header("X-Emr-Role", "must be one of patient, physician, nurse, admin, auditor, researcher"))?;
        if role == Role::System {
            return Err(bad_header("X-Emr-Role", "system is reserved for the server itself"));
        }
        let actor = Actor::new(user, role);
        let context = match header(parts, "idempotency-key")? {
            Some(key) => {
                let id = CommandId::parse(key).map_err(|_| bad_header("Idempotency-Key", "must be a UUID"))?;
                CommandContext::with_id(id, actor)
            }
            None => CommandContext::new(actor),
        };
        Ok(Self(context))
    }
}
