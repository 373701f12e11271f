//! OpenTelemetry traces over OTLP, to a collector's real gRPC receiver (a
//! peer-side harness: `emr_tests::otlp_collector`). Off by default; with
//! `telemetry.otlp_endpoint` set, one HTTP command is one trace whose id is the
//! request's id (the commit's correlation id): request → command → append, and
//! the projectors folding the commit later, in that same trace.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use emr_tests::api_client::patient_registration;
use emr_tests::nats_server::free_port;
use emr_tests::otlp_collector::{OtlpCollector, ReceivedSpan};
use support::{create_admin, physician, serve_command, started, until_projected};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_command_is_one_trace_from_the_request_to_the_projectors() {
    let collector = OtlpCollector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (http, grpc) = (free_port(), free_port());
    let mut command = serve_command(dir.path(), http, grpc, &format!("otlp-{}", uuid::Uuid::new_v4().simple()));
    command.env("EMR__TELEMETRY__OTLP_ENDPOINT", &collector.endpoint).env("RUST_LOG", "info");
    let mut served = started(command, http).await;
    create_admin(dir.path(), "trace_admin");
    let (_, token) = physician(&served.api, "trace_admin", "trace_doctor").await;

    let request_id = uuid::Uuid::now_v7();
    let registered = served
        .api
        .http
        .post(format!("{}/v1/patients", served.api.base))
        .bearer_auth(&token)
        .header("x-request-id", request_id.to_string())
        .json(&patient_registration("Traced"))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    until_projected(dir.path()).await;
    // SIGTERM: the process drains and flushes its spans before it exits.
    let process = &mut served.process;
    assert!(std::process::Command::new("kill").args(["-TERM", &process.id().to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while process.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the server never exited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let spans = collector.spans();
    let trace: Vec<&ReceivedSpan> = spans.iter().filter(|span| span.trace_id == request_id.as_bytes()).collect();
    let named = |name: &str| trace.iter().copied().filter(|span| span.name == name).collect::<Vec<_>>();
    let (requests, commands, appends) = (named("request"), named("command"), named("append"));
    assert_eq!(requests.len(), 1, "the request is in the trace named by its id: {:?}", names(&trace));
    assert_eq!(commands.len(), 1, "{:?}", names(&trace));
    assert_eq!(appends.len(), 1, "{:?}", names(&trace));
    assert_eq!(commands[0].parent_span_id, requests[0].span_id, "the command runs inside the request");
    assert_eq!(appends[0].parent_span_id, commands[0].span_id, "the append runs inside the command");
    assert_eq!(commands[0].attributes["command"], "register_patient");
    assert_eq!(requests[0].attributes["route"], "/v1/patients");
    let folded: Vec<&str> = named("projection.fold").iter().map(|span| span.attributes["projection"].as_str()).collect();
    assert!(folded.contains(&"patient_directory"), "the projectors' folding of the commit is in its trace: {folded:?}");
    assert!(trace.iter().all(|span| span.service_name == "emr-ledger"));
    assert!(
        spans.iter().filter(|span| span.name == "request").count() > 1,
        "the other requests (sign-in, account opening) have traces of their own"
    );
    emr_tests::report::record("otlp-traces", serde_json::json!({"spans_received": spans.len(), "spans_in_the_trace": trace.len()}));
}

fn names<'a>(spans: &[&'a ReceivedSpan]) -> Vec<&'a str> {
    spans.iter().map(|span| span.name.as_str()).collect()
}
