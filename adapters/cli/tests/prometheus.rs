//! The alert rules and dashboards against Prometheus itself (Debian's
//! `prometheus` package, installed by tests/run.sh): `promtool` checks and
//! unit-tests the rules; a real Prometheus scraping `emr serve` sees every
//! series the Grafana dashboards use, evaluates every dashboard query, and takes
//! the seed's error-rate alert to pending when the read-model database dies
//! under it, while `/metrics` keeps answering and reports the dependency down.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use emr_tests::api_client::ApiClient;
use emr_tests::api_client::{patient_registration, record_creation};
use emr_tests::mariadb::TestDatabase;
use emr_tests::mariadb_server::MariaDbServer;
use emr_tests::nats_server::free_port;
use serde_json::Value;
use support::{create_admin, kill, physician, serve_command, started};

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus")
}

fn promtool(args: &[&str]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(rules_dir())
        .output()
        .expect("promtool not found: install the Debian package `prometheus` (tests/run.sh does)");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn the_alert_rules_are_valid_and_pass_their_unit_tests() {
    assert!(promtool(&["check", "rules", "alerts.yml"]).contains("SUCCESS"));
    assert!(promtool(&["test", "rules", "alerts.test.yml"]).contains("SUCCESS"));
}

/// Series a dashboard shows that only some deployments export, and why.
const CONDITIONAL_SERIES: [(&str, &str); 3] = [
    ("emr_jetstream_consumer_pending", "only on the NATS JetStream backend (this test runs embedded)"),
    ("emr_certificate_expiry_timestamp_seconds", "only when anchoring on Fabric with a client certificate"),
    ("emr_security_events_total", "only once a security event is raised"),
];

/// Every (panel title, PromQL expression) of the provisioned Grafana dashboards.
fn dashboard_queries() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/dashboards");
    let mut queries = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    files.sort();
    assert_eq!(files.len(), 4, "service overview, event pipeline, anchoring, security");
    for file in files {
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert!(dashboard["uid"].is_string() && dashboard["title"].is_string(), "{}", file.display());
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                queries.push((panel["title"].as_str().unwrap().to_owned(), target["expr"].as_str().unwrap().to_owned()));
            }
        }
    }
    queries
}

/// The metric names an expression reads (ours and the HTTP ones).
fn metric_names(expr: &str) -> Vec<&str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|token| token.starts_with("emr_") || token.starts_with("http_"))
        .collect()
}

struct Prometheus {
    process: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Prometheus on loopback scraping `target` every 2 s (its scrape timeout too),
/// evaluating the alert rules every second.
fn prometheus(target: &str) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    let rules = rules_dir().join("alerts.yml").canonicalize().unwrap();
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 2s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: emr\n    static_configs:\n      - targets: ['{target}']\n",
            rules.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let process = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus not found: install the Debian package `prometheus` (tests/run.sh does)");
    Prometheus { process, base: format!("http://127.0.0.1:{port}"), _dir: dir }
}

impl Prometheus {
    /// Polls `path` of the HTTP API until `holds` accepts its `data`.
    async fn until(&self, client: &ApiClient, path: &str, what: &str, holds: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(response) = client.http.get(format!("{}{path}", self.base)).send().await
                && let Ok(body) = response.json::<Value>().await
                && holds(&body["data"])
            {
                return body["data"].clone();
            }
            assert!(Instant::now() < deadline, "Prometheus never showed {what}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_sees_every_series_the_dashboards_use_and_the_error_rate_alert_when_the_database_dies() {
    let mut mariadb = MariaDbServer::start();
    let database = TestDatabase::fresh_on(&mariadb.url()).await;
    let dir = tempfile::tempdir().unwrap();
    let (http, grpc) = (free_port(), free_port());
    let mut command = serve_command(dir.path(), http, grpc, &format!("prom-{}", uuid::Uuid::new_v4().simple()));
    command.env("EMR__READ_MODELS__MYSQL_URL", database.url());
    let mut served = started(command, http).await;
    let prometheus = prometheus(&format!("127.0.0.1:{http}"));
    let client = served.api.clone();

    // A little clinical work: commands, a read model, an anchor, a stored blob.
    create_admin(dir.path(), "prom_admin");
    let (doctor, token) = physician(&client, "prom_admin", "prom_doctor").await;
    let (patient, _) = client.until_acknowledged(&token, "/v1/patients", uuid::Uuid::now_v7(), &patient_registration("Metric")).await;
    let patient = patient["aggregate_id"].as_str().unwrap();
    let (record, _) =
        client.until_acknowledged(&token, "/v1/records", uuid::Uuid::now_v7(), &record_creation(patient, &doctor, "Scan")).await;
    let record = record["aggregate_id"].as_str().unwrap();
    let uploaded = client
        .http
        .post(format!("{}/v1/records/{record}/attachments/content?filename=note.txt", client.base))
        .bearer_auth(&token)
        .header("idempotency-key", uuid::Uuid::now_v7().to_string())
        .header("content-type", "text/plain")
        .body("peak flow 320 l/min")
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201);

    let dashboards = dashboard_queries();
    let series = ["http_requests_total", "http_request_duration_seconds_bucket", "emr_log_head_position", "emr_projection_lag_seconds"];
    let used: std::collections::BTreeSet<&str> = dashboards.iter().flat_map(|(_, expr)| metric_names(expr)).collect();
    for series in series.into_iter().chain(used.iter().copied().filter(|name| !CONDITIONAL_SERIES.iter().any(|(c, _)| c == name))) {
        prometheus
            .until(&client, &format!("/api/v1/query?query={series}"), series, |data| {
                data["result"].as_array().is_some_and(|r| !r.is_empty())
            })
            .await;
    }
    // Every dashboard query is PromQL that Prometheus evaluates.
    for (panel, expr) in &dashboards {
        let answer: Value = client
            .http
            .get(format!("{}/api/v1/query", prometheus.base))
            .query(&[("query", expr)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["status"], "success", "panel {panel}: {expr}: {answer}");
    }
    // The read-model database dies: readiness answers 503 until it is back.
    mariadb.kill();
    let load = {
        let api = served.api.clone();
        tokio::spawn(async move {
            let mut failures = 0;
            for _ in 0..600 {
                if let Ok(response) = api.http.get(format!("{}/ready", api.base)).send().await
                    && response.status().is_server_error()
                {
                    failures += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            failures
        })
    };
    let alerts = prometheus
        .until(&client, "/api/v1/alerts", "HighErrorRate pending or firing", |data| {
            data["alerts"].as_array().is_some_and(|alerts| alerts.iter().any(|a| a["labels"]["alertname"] == "HighErrorRate"))
        })
        .await;
    let alert = alerts["alerts"].as_array().unwrap().iter().find(|a| a["labels"]["alertname"] == "HighErrorRate").unwrap().clone();
    assert!(["pending", "firing"].contains(&alert["state"].as_str().unwrap()), "{alert}");
    assert_eq!(alert["labels"]["route"], "/ready", "{alert}");
    // The scrape still answers, and says which dependency is down.
    prometheus
        .until(&client, "/api/v1/query?query=emr_dependency_up%7Bdependency%3D%22read_models%22%7D%3D%3D0", "read_models down", |data| {
            data["result"].as_array().is_some_and(|r| !r.is_empty())
        })
        .await;
    load.abort();
    kill(&mut served.process, "emr serve");
    emr_tests::report::record(
        "prometheus-alert",
        serde_json::json!({"series_seen": 4 + used.len(), "dashboard_queries": dashboards.len(), "alert": "HighErrorRate", "state": alert["state"]}),
    );
}
