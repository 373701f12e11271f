//! A peer-side harness of an OpenTelemetry Collector's OTLP/gRPC trace receiver:
//! it serves `opentelemetry.proto.collector.trace.v1.TraceService/Export` from
//! the official protobufs (`opentelemetry-proto`), as a collector does, and
//! keeps every span it is sent. No collector binary can be installed on these
//! machines from a reachable registry; the wire protocol is the real one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;

/// A span as the collector received it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// The span's name.
    pub name: String,
    /// Its trace id (16 bytes).
    pub trace_id: Vec<u8>,
    /// Its span id (8 bytes).
    pub span_id: Vec<u8>,
    /// Its parent's span id (empty for a root).
    pub parent_span_id: Vec<u8>,
    /// Its attributes, as text.
    pub attributes: BTreeMap<String, String>,
    /// `service.name` of the resource that sent it.
    pub service_name: String,
}

#[derive(Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
}

fn text(attributes: &[KeyValue]) -> BTreeMap<String, String> {
    attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::IntValue(i)) => i.to_string(),
                Some(Value::BoolValue(b)) => b.to_string(),
                Some(Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans.resource.map(|r| text(&r.attributes)).unwrap_or_default();
            let service_name = resource.get("service.name").cloned().unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    received.push(ReceivedSpan {
                        name: span.name,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                        attributes: text(&span.attributes),
                        service_name: service_name.clone(),
                    });
                }
            }
        }
        self.spans.lock().map_err(|_| tonic::Status::internal("poisoned"))?.extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// A running receiver on loopback.
pub struct OtlpCollector {
    /// `http://127.0.0.1:<port>`: what `telemetry.otlp_endpoint` names.
    pub endpoint: String,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    server: tokio::task::JoinHandle<()>,
}

impl OtlpCollector {
    /// Starts a receiver on a free loopback port.
    pub async fn start() -> Self {
        let receiver = Receiver::default();
        let spans = receiver.spans.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder().add_service(TraceServiceServer::new(receiver)).serve_with_incoming(incoming).await;
        });
        Self { endpoint, spans, server }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().clone()
    }
}

impl Drop for OtlpCollector {
    fn drop(&mut self) {
        self.server.abort();
    }
}
