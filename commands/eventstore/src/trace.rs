//! One trace per correlation: the correlation id every commit carries (the
//! HTTP request id, for commands sent over HTTP) is, as 128 bits, also the
//! OpenTelemetry trace id. The API's request span, the command and append spans
//! beneath it, and a projector's span for folding that commit later, in another
//! task or process, all land in the same trace, and nothing new is stored in
//! the log to make it so. Without an OpenTelemetry layer installed this is a no-op.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Makes `span` (a root span, just created) part of the trace of `correlation_id`.
pub fn join_correlation(span: &tracing::Span, correlation_id: uuid::Uuid) {
    let trace_id = TraceId::from_bytes(*correlation_id.as_bytes());
    // A remote parent that stands for the correlation's origin: its span id is
    // derived from the same id, so every joiner names the same parent.
    let origin = u64::from_be_bytes(correlation_id.as_bytes()[8..].try_into().unwrap_or([1; 8])).max(1);
    let parent = SpanContext::new(trace_id, SpanId::from_bytes(origin.to_be_bytes()), TraceFlags::SAMPLED, true, TraceState::default());
    // Fails only when no OpenTelemetry layer is installed: nothing to join then.
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
}
