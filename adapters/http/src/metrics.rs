//! Prometheus metrics at `/metrics`. The HTTP series use the names the seed's
//! alert rules (section 7.2) are written against — `http_requests_total{status}`
//! and `http_request_duration_seconds` — so those rules work unchanged
//! (`deploy/prometheus/alerts.yml`). Projection lag is read at scrape time.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::OperationsState;
use crate::problem::ApiError;

/// The metric families of one server.
pub(crate) struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    log_head: IntGauge,
    lag_events: IntGaugeVec,
    lag_seconds: GaugeVec,
    up: IntGaugeVec,
    pool: IntGaugeVec,
    model_accuracy: GaugeVec,
    model_reviews: IntGaugeVec,
}

/// How long a scrape waits for each dependency's figures: `/metrics` must answer
/// even (especially) while a dependency is down.
const REFRESH_BUDGET: std::time::Duration = std::time::Duration::from_secs(1);

impl Metrics {
    pub(crate) fn new() -> Result<Arc<Self>, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by method, route and status"),
            &["method", "route", "status"],
        )?;
        let buckets = vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
        let duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by method and route").buckets(buckets),
            &["method", "route"],
        )?;
        let log_head = IntGauge::new("emr_log_head_position", "Position of the last commit in the event log")?;
        let lag_events =
            IntGaugeVec::new(Opts::new("emr_projection_lag_events", "Commits a read model is behind the log"), &["projection"])?;
        let lag_seconds = GaugeVec::new(
            Opts::new("emr_projection_lag_seconds", "Age of the oldest commit a read model has not folded"),
            &["projection"],
        )?;
        let up = IntGaugeVec::new(
            Opts::new(
                "emr_dependency_up",
                "1 when the dependency answered the last scrape in time, else 0 (its gauges keep their last values)",
            ),
            &["dependency"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(log_head.clone()))?;
        registry.register(Box::new(lag_events.clone()))?;
        registry.register(Box::new(lag_seconds.clone()))?;
        let pool = IntGaugeVec::new(
            Opts::new("emr_db_pool_connections", "Read-model database connections of this process, in use or idle"),
            &["pool", "state"],
        )?;
        registry.register(Box::new(up.clone()))?;
        registry.register(Box::new(pool.clone()))?;
        // The seed's business target (AI diagnosis accuracy > 95%), measured by
        // physicians' reviews against each model version's validated figure.
        let model_accuracy = GaugeVec::new(
            Opts::new(
                "emr_diagnosis_model_accuracy",
                "A diagnostic model's accuracy: `validated` on its validation set, `reviewed` as accepted among physician-reviewed suggestions",
            ),
            &["model", "version", "kind"],
        )?;
        let model_reviews = IntGaugeVec::new(
            Opts::new("emr_diagnosis_model_reviews", "Physician-reviewed suggestions of a diagnostic model"),
            &["model", "version"],
        )?;
        registry.register(Box::new(model_accuracy.clone()))?;
        registry.register(Box::new(model_reviews.clone()))?;
        Ok(Arc::new(Self { registry, requests, duration, log_head, lag_events, lag_seconds, up, pool, model_accuracy, model_reviews }))
    }
}

/// Counts and times every request under its route template (never the raw
/// path: ids in paths would explode the series).
pub(crate) async fn record(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.duration.with_label_values(&[&method, &route]).observe(started.elapsed().as_secs_f64());
    metrics.requests.with_label_values(&[&method, &route, response.status().as_str()]).inc();
    response
}

/// The text exposition format, with log head and projection lag refreshed.
pub(crate) async fn render(State(state): State<OperationsState>, metrics: axum::Extension<Arc<Metrics>>) -> Result<Response, ApiError> {
    let head = tokio::time::timeout(REFRESH_BUDGET, state.log.head()).await;
    let log_up = match head {
        Ok(Ok(head)) => {
            metrics.log_head.set(i64::try_from(head).unwrap_or(i64::MAX));
            1
        }
        _ => 0,
    };
    metrics.up.with_label_values(&["event_log"]).set(log_up);
    if let Some(models) = &state.read_models {
        let (open, idle) = models.db.connections();
        let idle = i64::try_from(idle).unwrap_or(i64::MAX);
        metrics.pool.with_label_values(&["read_models", "idle"]).set(idle);
        metrics.pool.with_label_values(&["read_models", "in_use"]).set(i64::from(open) - idle);
        let lags = tokio::time::timeout(REFRESH_BUDGET, emr_projections::lags(&models.db, models.log.clone())).await;
        let models_up = match lags {
            Ok(Ok(lags)) => {
                for lag in lags {
                    metrics
                        .lag_events
                        .with_label_values(&[lag.projection.as_str()])
                        .set(i64::try_from(lag.behind_commits).unwrap_or(i64::MAX));
                    metrics.lag_seconds.with_label_values(&[lag.projection.as_str()]).set(lag.behind_seconds);
                }
                1
            }
            _ => 0,
        };
        metrics.up.with_label_values(&["read_models"]).set(models_up);
        // Only while the database answers: a second wait on a dead one would
        // push the scrape past Prometheus's timeout and lose every series.
        let accuracy = match models_up {
            1 => tokio::time::timeout(REFRESH_BUDGET, emr_projections::queries::model_accuracy(&models.db)).await.ok(),
            _ => None,
        };
        if let Some(Ok(models)) = accuracy {
            for model in models.iter().filter(|m| m.status == "active") {
                let labels = [model.name.as_str(), model.version.as_str()];
                if let Some(validated) = model.validated_accuracy {
                    metrics.model_accuracy.with_label_values(&[labels[0], labels[1], "validated"]).set(validated);
                }
                if let Some(reviewed) = model.reviewed_accuracy() {
                    metrics.model_accuracy.with_label_values(&[labels[0], labels[1], "reviewed"]).set(reviewed);
                }
                metrics.model_reviews.with_label_values(&labels).set(model.reviewed);
            }
        }
    }
    let mut body = Vec::new();
    // This server's families, then the process-wide ones the libraries count
    // (commands, projectors, anchoring, JetStream consumers, blobs).
    let mut families = metrics.registry.gather();
    families.extend(prometheus::gather());
    TextEncoder::new().encode(&families, &mut body).map_err(|_| ApiError::NotFound("metrics".into()))?;
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    Ok(response)
}
