//! Logs and traces of the process: structured logs on stderr (JSON with
//! `EMR_LOG_FORMAT=json`, filtered by `RUST_LOG`), and, when
//! `telemetry.otlp_endpoint` is set, every span exported over OTLP/gRPC to a
//! collector. A request's spans (request → command → append) and the spans of
//! the projectors folding its commits share one trace: the correlation id
//! (see `emr_eventstore::trace`).

use std::time::Duration;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::settings::TelemetrySettings;

/// The installed exporters; [`Telemetry::shutdown`] flushes what they hold.
pub(crate) struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

/// Installs the process's subscriber. Must run inside the tokio runtime (the
/// OTLP exporter's gRPC channel lives on it).
pub(crate) fn init(settings: &TelemetrySettings) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match std::env::var("EMR_LOG_FORMAT").is_ok_and(|format| format == "json") {
        true => tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).boxed(),
        false => tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed(),
    };
    let traces = match &settings.otlp_endpoint {
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(Duration::from_secs(settings.export_timeout_secs))
                .build()
                .context("telemetry.otlp_endpoint")?;
            let resource = opentelemetry_sdk::Resource::builder().with_service_name(settings.service_name.clone()).build();
            Some(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
        }
        None => None,
    };
    let otel = traces.as_ref().map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer("emr-ledger")));
    tracing_subscriber::registry().with(filter).with(logs).with(otel).try_init().context("installing the log subscriber")?;
    if let Some(endpoint) = &settings.otlp_endpoint {
        tracing::info!(%endpoint, "exporting traces over OTLP");
    }
    Ok(Telemetry { traces })
}

impl Telemetry {
    /// Exports the spans still buffered; off the runtime's threads, since the
    /// flush blocks until the exporter (on the runtime) is done.
    pub(crate) async fn shutdown(self) {
        if let Some(provider) = self.traces {
            let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(error)) = flushed {
                eprintln!("traces not flushed: {error}");
            }
        }
    }
}
