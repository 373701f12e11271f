//! Record creation through the HTTP API at a fixed concurrency, beside the same
//! commands sent straight to the application layer in the same run: what the
//! transport, bearer authentication (a Redis lookup per request for revoked
//! sessions) and authorization cost; and the same creations sent 500 to a request
//! (`POST /v1/records/batch`).
//!
//! Run with: `cargo run --release -p emr-tests --bin bench-api -- [COMMANDS] [CONCURRENCY]`
//! (defaults 2000 and 32). Real parts: JetStream on a throwaway nats-server
//! (file storage), Redis at `EMR_TEST_REDIS_URL` (default 127.0.0.1:6379),
//! HTTP/1.1 keep-alive over loopback. Writes `bench-api.json`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;

use emr_domain::actor::{Actor, Role};
use emr_domain::fixtures::{self, create_record};
use emr_domain::ids::{PatientId, RecordId};
use emr_domain::metadata::CommandContext;
use emr_domain::record::RecordCommand;
use emr_tests::api_server::ApiServer;
use emr_tests::backends;
use emr_tests::bench::{Rate, drive};
use serde_json::json;

emr_tests::shipped_allocator!();

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let commands: usize = args.next().map(|a| a.parse().unwrap()).unwrap_or(2000);
    let concurrency: usize = args.next().map(|a| a.parse().unwrap()).unwrap_or(32);
    let test = backends::jetstream().await;
    let backend = test.backend.clone();
    let sessions = emr_tests::sessions::redis("bench").await;
    let api = ApiServer::start_with(&backend, sessions, None).await;
    let (doctor, token) = api.account("bench_doctor", Role::Physician).await;
    let (clinic, http, base) = (api.clinic.clone(), api.http.clone(), api.base.clone());
    let actor = Actor::new(doctor, Role::Physician);
    let mut patients = Vec::new();
    for _ in 0..200 {
        let patient = PatientId::new();
        clinic.patient(patient, fixtures::register(patient, "Bench"), &CommandContext::new(actor)).await.unwrap();
        patients.push(patient);
    }
    let patients = Arc::new(patients);
    let authored = move |record: RecordId, patient: PatientId| {
        let mut command = create_record(record, patient, "Consultation");
        if let RecordCommand::Create { doctor_id, .. } = &mut command {
            *doctor_id = doctor;
        }
        command
    };

    let (c, p) = (clinic.clone(), patients.clone());
    let direct = drive(commands, concurrency, move |i| {
        let (clinic, patient) = (c.clone(), p[i % p.len()]);
        async move {
            let record = RecordId::new();
            clinic.record(record, authored(record, patient), &CommandContext::new(actor)).await.unwrap();
        }
    })
    .await;

    let body = move |patient: PatientId| {
        json!({"patient_id": patient, "doctor_id": doctor, "hospital_id": "HOSP-001", "record_type": "consultation", "visit_date": "2026-01-15",
               "content": {"title": "Consultation", "description": null, "diagnosis": null, "treatment": null, "medications": []}})
    };
    let (token, base) = (Arc::new(token), Arc::new(base.clone()));
    let (h, p, t, b) = (http.clone(), patients.clone(), token.clone(), base.clone());
    let over_http = drive(commands, concurrency, move |i| {
        let (http, patient, token, base) = (h.clone(), p[i % p.len()], t.clone(), b.clone());
        let body = body(patient);
        async move {
            let response = http.post(format!("{base}/v1/records")).bearer_auth(token.as_str()).json(&body).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 201, "{}", response.text().await.unwrap_or_default());
        }
    })
    .await;

    // The same creations as `POST /v1/records/batch`, 500 records a request, two requests in flight.
    let (h, p, t, b) = (http.clone(), patients.clone(), token, base);
    let batches = commands.div_ceil(500);
    let batched = drive(batches, 2, move |n| {
        let (http, patients, token, base) = (h.clone(), p.clone(), t.clone(), b.clone());
        let records: Vec<_> = (n * 500..((n + 1) * 500).min(commands)).map(|i| body(patients[i % patients.len()])).collect();
        async move {
            let response = http
                .post(format!("{base}/v1/records/batch"))
                .bearer_auth(token.as_str())
                .header("idempotency-key", uuid::Uuid::now_v7().to_string())
                .json(&json!({"records": records}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 200);
            let answers: serde_json::Value = response.json().await.unwrap();
            assert!(answers.as_array().unwrap().iter().all(|a| a["status"] == 201), "{answers}");
        }
    })
    .await;
    let batched =
        Rate { per_second: batched.per_second * commands as f64 / batches as f64, p50_ms: batched.p50_ms, p99_ms: batched.p99_ms };

    let machine = format!("{} cores, {}", std::thread::available_parallelism().map_or(0, usize::from), std::env::consts::ARCH);
    println!("## API benchmark ({commands} record creations, concurrency {concurrency}, {machine})\n");
    println!("| what | per second | p50 ms | p99 ms | ratio |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let row = |name: &str, r: &Rate, base: f64| {
        println!("| {name} | {:.0} | {:.2} | {:.2} | {:.2} |", r.per_second, r.p50_ms, r.p99_ms, r.per_second / base)
    };
    row("application layer, direct (baseline)", &direct, direct.per_second);
    row("HTTP API: bearer auth + authorization + JSON", &over_http, direct.per_second);
    row("HTTP API, POST /v1/records/batch of 500 (latency per batch)", &batched, direct.per_second);
    let r = |r: &Rate| json!({"per_second": r.per_second, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms});
    let report = json!({
        "machine": machine, "commands": commands, "concurrency": concurrency,
        "application_layer": r(&direct), "http_api": r(&over_http), "http_over_direct": over_http.per_second / direct.per_second,
        "http_batch_of_500": r(&batched), "http_batch_over_direct": batched.per_second / direct.per_second,
    });
    println!("\n{report}");
    std::fs::write("bench-api.json", serde_json::to_string_pretty(&report).unwrap()).unwrap();
}
