//! Graceful shutdown: SIGTERM (what Kubernetes sends before it kills a pod)
//! stops `emr serve` taking connections, lets the requests it has finish, and
//! exits cleanly; whatever it acknowledged is in the log.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use emr_tests::api_client::{patient_registration, record_creation};
use emr_tests::nats_server::free_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::{assert_read_models_equal_a_rebuild, create_admin, emr, physician, serve};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_upload_in_flight_refuses_new_connections_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (http, grpc) = (free_port(), free_port());
    let mut served = serve(dir.path(), http, grpc, &format!("drain-{}", uuid::Uuid::new_v4().simple())).await;
    create_admin(dir.path(), "drain_admin");
    let (doctor, token) = physician(&served.api, "drain_admin", "drain_doctor").await;
    let (patient, _) = served.api.until_acknowledged(&token, "/v1/patients", uuid::Uuid::now_v7(), &patient_registration("Drain")).await;
    let patient = patient["aggregate_id"].as_str().unwrap();
    let (record, _) =
        served.api.until_acknowledged(&token, "/v1/records", uuid::Uuid::now_v7(), &record_creation(patient, &doctor, "Scan")).await;
    let record = record["aggregate_id"].as_str().unwrap().to_owned();

    // An upload whose body is half sent when the signal arrives.
    let body: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let key = uuid::Uuid::now_v7();
    let mut upload = TcpStream::connect(("127.0.0.1", http)).await.unwrap();
    let head = format!(
        "POST /v1/records/{record}/attachments/content?filename=scan.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Idempotency-Key: {key}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    upload.write_all(head.as_bytes()).await.unwrap();
    upload.write_all(&body[..body.len() / 2]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let process = &mut served.process;
    let signalled = std::process::Command::new("kill").args(["-TERM", &process.id().to_string()]).status().unwrap();
    assert!(signalled.success());

    // Draining: the process lives on for its request, but takes no new connection.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(process.try_wait().unwrap(), None, "the server waits for the upload in flight");
    assert!(TcpStream::connect(("127.0.0.1", http)).await.is_err(), "a draining server accepts no new connection");

    upload.write_all(&body[body.len() / 2..]).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), upload.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "the upload in flight was finished and acknowledged: {answer}");

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = process.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the server never exited after draining");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "a drained server exits cleanly: {status}");

    // What it acknowledged is written: the attachment, under the upload's command id.
    let output = emr(dir.path()).args(["history", "medical_record", &record]).stdout(Stdio::piped()).output().unwrap();
    assert!(output.status.success());
    let history = String::from_utf8_lossy(&output.stdout);
    let added: Vec<&str> = history.lines().filter(|line| line.contains("AttachmentAdded")).collect();
    assert_eq!(added.len(), 1, "the acknowledged upload is in the log once: {history}");
    assert!(added[0].contains(&key.to_string()), "under the upload's Idempotency-Key: {}", added[0]);
    support::verify(dir.path(), "after a graceful shutdown");
    assert_read_models_equal_a_rebuild(dir.path(), "after a graceful shutdown").await;
}
