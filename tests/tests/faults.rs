//! Faults injected into real servers while the system works, and what must hold
//! afterwards: nothing acknowledged is lost, nothing is stored twice, and every
//! read model equals a clean rebuild. Each scenario reports its figures
//! (`emr_tests::report`) for docs/reliability.md.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use emr_domain::actor::Role;
use emr_tests::api_client::{patient_registration, record_creation};
use emr_tests::api_server::ApiServer;
use emr_tests::mariadb::TestDatabase;
use emr_tests::mariadb_server::MariaDbServer;
use emr_tests::read_models::{RunningProjectors, Store, TABLES, TestReadModels, assert_same_tables, fold_all};
use emr_tests::{backends, history, report};
use serde_json::json;

/// What one client learnt about one command it sent.
enum Outcome {
    /// The API acknowledged it with this receipt position.
    Acknowledged(u64),
    /// The client gave up after one attempt that failed (it never retries these).
    Unacknowledged,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarted_under_load_loses_nothing_acknowledged_and_stores_nothing_twice() {
    // Appends fail after a second, so an outage fails commands in flight instead
    // of holding them until the server is back.
    let mut test = backends::jetstream_with_request_timeout(Duration::from_secs(1)).await;
    let api = Arc::new(ApiServer::start(&test.backend).await);
    let (doctor, token) = api.account("fault_doctor", Role::Physician).await;
    let token = Arc::new(token);
    let mut patients = Vec::new();
    for p in 0..10 {
        let (receipt, _) =
            api.until_acknowledged(&token, "/v1/patients", uuid::Uuid::now_v7(), &patient_registration(&format!("Fault {p}"))).await;
        patients.push(receipt["aggregate_id"].as_str().unwrap().to_owned());
    }
    let patients = Arc::new(patients);

    // Clients send record creations until the outages are over; every fourth
    // command is sent once and never retried.
    let stop = Arc::new(AtomicBool::new(false));
    let failed_attempts = Arc::new(AtomicUsize::new(0));
    // Commands an outage held (acknowledged only after more than the request
    // timeout) were in flight during it too, even when no attempt failed.
    let held = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for client in 0..6 {
        let (api, token, patients, stop, failed_attempts, held) =
            (api.clone(), token.clone(), patients.clone(), stop.clone(), failed_attempts.clone(), held.clone());
        let doctor = doctor.to_string();
        clients.push(tokio::spawn(async move {
            let mut outcomes = BTreeMap::new();
            for i in 0usize.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let key = uuid::Uuid::now_v7();
                let body = record_creation(&patients[(client + i) % patients.len()], &doctor, &format!("Visit {client}-{i}"));
                if i % 4 == 3 {
                    let once = api.try_send(reqwest::Method::POST, "/v1/records", Some(&token), Some(key), Some(&body)).await;
                    let outcome = match once {
                        Ok((201, receipt)) => Outcome::Acknowledged(receipt["position"].as_u64().unwrap()),
                        _ => Outcome::Unacknowledged,
                    };
                    outcomes.insert(key, outcome);
                    continue;
                }
                let sent = Instant::now();
                let (receipt, failed) = api.until_acknowledged(&token, "/v1/records", key, &body).await;
                failed_attempts.fetch_add(failed, Ordering::Relaxed);
                if failed == 0 && sent.elapsed() > Duration::from_secs(1) {
                    held.fetch_add(1, Ordering::Relaxed);
                }
                let position = receipt["position"].as_u64().unwrap();
                // A client that lost the answer retries with the same key: it gets the original.
                let (again, _) = api.until_acknowledged(&token, "/v1/records", key, &body).await;
                assert_eq!((again["replayed"].as_bool(), again["position"].as_u64()), (Some(true), Some(position)), "{again}");
                assert_eq!(again["events"], receipt["events"]);
                outcomes.insert(key, Outcome::Acknowledged(position));
            }
            outcomes
        }));
    }

    let server = test.nats.as_mut().unwrap();
    let outages = 3;
    for _ in 0..outages {
        tokio::time::sleep(Duration::from_millis(700)).await;
        server.stop(); // SIGKILL: the server gets no chance to flush or answer
        tokio::time::sleep(Duration::from_millis(3000)).await;
        server.start_again();
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = BTreeMap::new();
    for client in clients {
        outcomes.append(&mut client.await.unwrap());
    }

    let stored = report::commits_by_command(&test.backend.log).await;
    let (mut acknowledged, mut unacknowledged_present, mut unacknowledged_absent) = (0, 0, 0);
    for (key, outcome) in &outcomes {
        let positions = stored.get(&key.to_string()).map_or(&[][..], Vec::as_slice);
        match outcome {
            Outcome::Acknowledged(position) => {
                assert_eq!(positions, [*position], "acknowledged command {key} must be stored exactly once, where its receipt says");
                acknowledged += 1;
            }
            Outcome::Unacknowledged => {
                assert!(positions.len() <= 1, "unacknowledged command {key} stored {} times", positions.len());
                if positions.is_empty() { unacknowledged_absent += 1 } else { unacknowledged_present += 1 }
            }
        }
    }
    for (command, positions) in &stored {
        assert_eq!(positions.len(), 1, "command {command} stored at {positions:?}");
    }
    let (failed, held) = (failed_attempts.load(Ordering::Relaxed), held.load(Ordering::Relaxed));
    assert!(
        failed + held + unacknowledged_present + unacknowledged_absent > 0,
        "the outages must hit commands in flight: {failed} failed attempts, {held} held, {} commands",
        outcomes.len()
    );
    report::record(
        "nats-restart-under-load",
        json!({"outages": outages, "commands": outcomes.len(), "acknowledged": acknowledged,
               "failed_attempts_retried": failed, "held_by_an_outage": held, "unacknowledged_stored_once": unacknowledged_present,
               "unacknowledged_absent": unacknowledged_absent, "stored_twice": 0, "lost": 0}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_killed_during_projection_ends_equal_to_a_clean_rebuild() {
    let test = backends::sqlite().await;
    let clinic = backends::clinic(&test.backend);
    history::write(&clinic, 12).await;
    let mut server = MariaDbServer::start();
    let database = TestDatabase::fresh_on(&server.url()).await;

    // Every projection follows the log, as `emr serve` runs them.
    let projectors = RunningProjectors::start(database.db.clone(), test.backend.log.clone(), test.backend.phi_codec(), 2);
    let outages = 3;
    for _ in 0..outages {
        tokio::time::sleep(Duration::from_millis(400)).await;
        server.kill();
        // The log grows while the read models are down.
        history::write(&clinic, 2).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        server.restart();
    }
    let head = test.backend.log.head().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut behind = least_checkpoint(&database).await;
    while behind < head {
        assert!(Instant::now() < deadline, "projectors stuck at {behind} of {head} after MariaDB came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
        behind = least_checkpoint(&database).await;
    }
    projectors.stop().await;

    let clean = TestReadModels::fresh(Store::MariaDb).await;
    fold_all(&clean.db, &test.backend.log, 1000).await;
    let mut recovered = Vec::new();
    for table in TABLES {
        recovered.push((table.to_owned(), database.dump(table).await));
    }
    assert_same_tables(&recovered, &clean.dump_all().await, &format!("after {outages} MariaDB kills"));
    report::record(
        "mariadb-killed-during-projection",
        json!({"outages": outages, "commits": head, "tables_equal_to_rebuild": TABLES.len()}),
    );
    clean.remove().await;
}

/// The least checkpoint over every projection: 0 while the server is down.
async fn least_checkpoint(database: &TestDatabase) -> u64 {
    let mut least = u64::MAX;
    for (_, table) in emr_projections::checkpoints() {
        let position =
            database.db.fetch_one::<(u64,)>(&format!("SELECT position FROM {table} WHERE id = 1"), vec![]).await.map_or(0, |(p,)| p);
        least = least.min(position);
    }
    least
}
