//! One log line per request, and a span around it whose fields every log line of
//! the request carries: the request id, method, route template (never the raw
//! path: ids in paths are personal data) and, once authenticated, the actor.
//! Bodies and query strings are never logged: they carry PHI.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The `X-Request-Id` header.
pub(crate) const HEADER: &str = "x-request-id";

/// A request's id: the caller's `X-Request-Id` when it is a UUID, else a new one.
/// Answered in `X-Request-Id`, logged with the request, and the correlation id
/// of the commands the request sends, so logs and events meet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestId(pub(crate) uuid::Uuid);

pub(crate) async fn trace(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| uuid::Uuid::parse_str(v).ok())
        .unwrap_or_else(uuid::Uuid::now_v7);
    request.extensions_mut().insert(RequestId(id));
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let method = request.method().clone();
    let span =
        tracing::info_span!("request", request_id = %id, %method, %route, actor = tracing::field::Empty, role = tracing::field::Empty);
    // The request id is the correlation id of the commands it sends: their trace.
    emr_eventstore::trace::join_correlation(&span, id);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.in_scope(|| tracing::info!(status, latency_ms = started.elapsed().as_secs_f64() * 1000.0, "request served"));
    if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

/// Names the authenticated caller in the request's span.
pub(crate) fn record_actor(actor: &emr_domain::actor::Actor) {
    let span = tracing::Span::current();
    span.record("actor", tracing::field::display(actor.user_id));
    span.record("role", tracing::field::debug(actor.role));
}
