//! The processes of EMR Ledger killed with SIGKILL at arbitrary points, in a loop,
//! and restarted: afterwards the log holds every acknowledged command exactly
//! once, `emr audit verify` is clean, and the read models equal a clean fold.
//! (`read_models.rs` does the same for `emr projections run` alone.)

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use emr_tests::api_client::{patient_registration, record_creation};
use emr_tests::nats_server::free_port;
use emr_tests::{backends, history, report};
use serde_json::json;
use support::{
    assert_read_models_equal_a_rebuild, create_admin, emr, kill, physician, serve, until_fully_anchored, until_projected, verify,
};

/// Spread over start-up, serving, folding and anchoring, and the same every run.
fn kill_delay(round: u64, from_ms: u64, span_ms: u64) -> Duration {
    Duration::from_millis(from_ms + (round * 7919 + 104_729) % span_ms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emr_serve_killed_at_random_points_under_load_keeps_log_anchors_and_read_models_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir: PathBuf = dir.path().to_owned();
    let (http, grpc, sessions) = (free_port(), free_port(), format!("crash-{}", uuid::Uuid::new_v4().simple()));
    create_admin(&data_dir, "crash_admin");
    let mut served = serve(&data_dir, http, grpc, &sessions).await;
    let api = served.api.clone();
    let (doctor, token) = physician(&api, "crash_admin", "crash_doctor").await;
    let token = Arc::new(token);
    let mut patients = Vec::new();
    for p in 0..6 {
        let (receipt, _) =
            api.until_acknowledged(&token, "/v1/patients", uuid::Uuid::now_v7(), &patient_registration(&format!("Crash {p}"))).await;
        patients.push(receipt["aggregate_id"].as_str().unwrap().to_owned());
    }
    let patients = Arc::new(patients);

    // Clients keep creating records across the kills, retrying each with its key.
    let stop = Arc::new(AtomicBool::new(false));
    let failed_attempts = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for client in 0..4 {
        let (api, token, patients, stop, failed_attempts, doctor) =
            (api.clone(), token.clone(), patients.clone(), stop.clone(), failed_attempts.clone(), doctor.clone());
        clients.push(tokio::spawn(async move {
            let mut acknowledged = BTreeMap::new();
            for i in 0usize.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let key = uuid::Uuid::now_v7();
                let body = record_creation(&patients[(client + i) % patients.len()], &doctor, &format!("Visit {client}-{i}"));
                let (receipt, failed) = api.until_acknowledged(&token, "/v1/records", key, &body).await;
                failed_attempts.fetch_add(failed, Ordering::Relaxed);
                acknowledged.insert(key.to_string(), receipt["position"].as_u64().unwrap());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            acknowledged
        }));
    }
    let kills = 6;
    for round in 0..kills {
        tokio::time::sleep(kill_delay(round, 150, 900)).await;
        kill(&mut served.process, "emr serve");
        served = serve(&data_dir, http, grpc, &sessions).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = BTreeMap::new();
    for client in clients {
        acknowledged.append(&mut client.await.unwrap());
    }
    let failed = failed_attempts.load(Ordering::Relaxed);
    assert!(failed > 0, "the kills must hit commands in flight");

    until_projected(&data_dir).await;
    let report = until_fully_anchored(&data_dir).await;
    kill(&mut served.process, "emr serve");
    let store = emr_sqlite::SqliteStore::open(&data_dir).await.unwrap();
    let stored = report::commits_by_command(&store.ports().0).await;
    report::assert_each_stored_once(&stored, acknowledged.iter().map(|(key, position)| (key, *position)));
    assert_read_models_equal_a_rebuild(&data_dir, &format!("after {kills} kills of emr serve")).await;
    report::record(
        "sigkill-emr-serve",
        json!({"kills": kills, "commands_acknowledged": acknowledged.len(), "failed_attempts_retried": failed,
               "events_verified": report["events"], "tree_heads": report["tree_heads"], "stored_twice": 0, "lost": 0}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emr_anchor_killed_at_random_points_never_leaves_the_audit_inconsistent() {
    let test = backends::sqlite().await;
    let data_dir = test.storage_dir().to_owned();
    let clinic = backends::clinic(&test.backend);
    history::write(&clinic, 6).await;
    let kills = 10;
    for round in 0..kills {
        let mut process = emr(&data_dir).arg("anchor").spawn().unwrap();
        tokio::time::sleep(kill_delay(round, 30, 400)).await;
        kill(&mut process, "emr anchor");
        // Whatever the worker had done when it died verifies.
        verify(&data_dir, &format!("after kill {}", round + 1));
        history::write(&clinic, 1).await;
    }
    let mut process = emr(&data_dir).arg("anchor").spawn().unwrap();
    let report = until_fully_anchored(&data_dir).await;
    kill(&mut process, "emr anchor");
    assert_eq!(report["events"].as_u64(), Some(history_events(&test).await), "every event of the log is verified");
    report::record(
        "sigkill-emr-anchor",
        json!({"kills": kills, "verified_after_every_kill": kills, "events_verified": report["events"], "tree_heads": report["tree_heads"]}),
    );
}

/// Events in the log.
async fn history_events(test: &backends::TestBackend) -> u64 {
    let mut events = 0;
    let mut from = 1;
    loop {
        let commits = test.backend.log.read_from(from, 1000).await.unwrap();
        let Some(last) = commits.last() else { return events };
        from = last.position + 1;
        for commit in &commits {
            events += emr_eventstore::CommitRecord::decode(commit).unwrap().events.len() as u64;
        }
    }
}
