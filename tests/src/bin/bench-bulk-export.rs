//! Bulk Data export throughput: NDJSON resources per second of a system-wide
//! `$export` job (each patient and record read through the authorization rule,
//! recorded in the access log, written and checkpointed a page at a time), beside
//! a baseline measured in the same run — the same aggregates loaded and mapped to
//! the same NDJSON with no authorization, no disclosure and no checkpoint — and
//! the process's peak resident memory before and after the export (bounded: one
//! page of patients is held at a time).
//!
//! Run with: `cargo run --release -p emr-tests --bin bench-bulk-export -- [PATIENTS]`
//! (default 2000; 100000 for the figure). Embedded SQLite log and read
//! models. Writes `bench-bulk-export.json`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use emr_auth::{AuthPolicy, Identity, MemorySessionStore, SigningKeys, Tokens};
use emr_domain::DomainServices;
use emr_domain::actor::Actor;
use emr_domain::fixtures::create_record;
use emr_domain::ids::RecordId;
use emr_http::bulk::{BulkExports, Job, Level};
use emr_tests::charts::{registered_patient, system};

emr_tests::shipped_allocator!();

/// Peak resident set of this process (KiB), from /proc.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let patients: usize = std::env::args().nth(1).map(|a| a.parse().expect("PATIENTS must be a number")).unwrap_or(2000);
    let backend = emr_tests::backends::sqlite().await;
    let clinic = emr_tests::backends::clinic(&backend.backend);
    let dir = tempfile::tempdir().unwrap();
    let db = emr_projections::ReadModelDb::open_sqlite(&dir.path().join("read-models.db")).await.unwrap();
    db.migrate().await.unwrap();

    let started = Instant::now();
    let mut charts = Vec::with_capacity(patients);
    for n in 0..patients {
        let patient = registered_patient(&clinic, &format!("Patient {n}")).await;
        let record = RecordId::new();
        clinic.record(record, create_record(record, patient, "Follow-up"), &system()).await.unwrap();
        charts.push((patient, record));
    }
    emr_tests::read_models::fold_all(&db, &backend.backend.log, 1000).await;
    let setup = started.elapsed().as_secs_f64();

    // Baseline: the same resources, loaded and mapped, with nothing else.
    let started = Instant::now();
    let mut baseline = std::io::BufWriter::new(std::fs::File::create(dir.path().join("baseline.ndjson")).unwrap());
    let mut baseline_resources = 0_u64;
    for (patient, record) in &charts {
        let loaded = clinic.load_patient(*patient).await.unwrap();
        writeln!(baseline, "{}", emr_fhir::patient(*patient, loaded.state(), loaded.sequence(), false)).unwrap();
        let loaded = clinic.load_record(*record).await.unwrap();
        writeln!(baseline, "{}", emr_fhir::encounter(*record, loaded.state(), loaded.sequence(), false)).unwrap();
        baseline_resources += 2;
        if let Some(condition) = emr_fhir::condition(*record, loaded.state(), loaded.sequence(), false) {
            writeln!(baseline, "{condition}").unwrap();
            baseline_resources += 1;
        }
        for statement in emr_fhir::medication_statements(*record, loaded.state(), loaded.sequence()) {
            writeln!(baseline, "{statement}").unwrap();
            baseline_resources += 1;
        }
    }
    baseline.flush().unwrap();
    let baseline_secs = started.elapsed().as_secs_f64();

    let tokens = Tokens::new(SigningKeys::generate("bench").unwrap());
    let identity =
        Identity::new(&backend.backend, Arc::new(MemorySessionStore::new()), tokens, AuthPolicy::default(), DomainServices::default());
    let exports = BulkExports::open(dir.path().join("exports")).unwrap();
    let state = emr_http::AppState {
        clinic,
        identity,
        login_attempts_per_minute: 1000,
        read_models: Some(emr_http::ReadModelState {
            db,
            log: backend.backend.log.clone(),
            search_index: emr_tests::read_models::blind_index(),
        }),
        audit: None,
        attachments: None,
        federated: None,
        exports: Some(exports.clone()),
        diagnosis: None,
    };
    let job = Job {
        id: uuid::Uuid::now_v7(),
        owner: Actor::system(),
        level: Level::System,
        types: emr_http::bulk::EXPORTABLE.iter().map(|t| (*t).to_owned()).collect(),
        since: None,
        request: "bench".into(),
        transaction_time: chrono::Utc::now(),
    };
    let rss_before = peak_rss_kib();
    let started = Instant::now();
    exports.start(state, job.clone()).unwrap().await.unwrap();
    let export_secs = started.elapsed().as_secs_f64();
    let rss_after = peak_rss_kib();
    let (_, progress) = exports.status(job.id, &Actor::system()).unwrap();
    let exported: u64 = progress.files.values().map(|f| f.count).sum();
    assert_eq!(progress.patients as usize, patients, "every patient exported");
    assert_eq!(exported, baseline_resources, "the export holds what the baseline wrote");

    let export_rate = exported as f64 / export_secs;
    let baseline_rate = baseline_resources as f64 / baseline_secs;
    println!("## Bulk Data export ({patients} patients, {exported} resources, embedded SQLite)\n");
    println!("| measure | value |");
    println!("| --- | --- |");
    println!("| set-up (patients and records written, read models folded) | {setup:.1} s |");
    println!("| `$export` job: NDJSON resources/s (authorized, access-logged, checkpointed per page) | {export_rate:.0} |");
    println!("| baseline: load + map + write, nothing else (resources/s) | {baseline_rate:.0} |");
    println!("| ratio export / baseline | {:.2} |", export_rate / baseline_rate);
    println!("| peak RSS before → after the export | {} MiB → {} MiB |", rss_before / 1024, rss_after / 1024);
    let figures = serde_json::json!({
        "patients": patients, "resources": exported, "export_resources_per_second": export_rate,
        "baseline_resources_per_second": baseline_rate, "ratio": export_rate / baseline_rate,
        "peak_rss_kib_before": rss_before, "peak_rss_kib_after": rss_after,
    });
    std::fs::write("bench-bulk-export.json", figures.to_string()).unwrap();
    println!("{figures}");
}
