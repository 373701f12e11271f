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
    let mut clients = Vec::new();
    for client in 0..6 {
        let (api, token, patients, stop, failed_attempts) =
            (api.clone(), token.clone(), patients.clone(), stop.clone(), failed_attempts.clone());
        let doctor = doctor.to_string();
        clients.push(tokio::spawn(async move {
            let mut outcomes = BTreeMap::new();
            // When each call was sent and answered, to tell which ones an outage caught.
            let mut calls = Vec::new();
            for i in 0usize.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let key = uuid::Uuid::now_v7();
                let body = record_creation(&patients[(client + i) % patients.len()], &doctor, &format!("Visit {client}-{i}"));
                let sent = Instant::now();
                if i % 4 == 3 {
                    let once = api.try_send(reqwest::Method::POST, "/v1/records", Some(&token), Some(key), Some(&body)).await;
                    calls.push((sent, Instant::now()));
                    let outcome = match once {
                        Ok((201, receipt)) => Outcome::Acknowledged(receipt["position"].as_u64().unwrap()),
                        _ => Outcome::Unacknowledged,
                    };
                    outcomes.insert(key, outcome);
                    continue;
                }
                let (receipt, failed) = api.until_acknowledged(&token, "/v1/records", key, &body).await;
                calls.push((sent, Instant::now()));
                failed_attempts.fetch_add(failed, Ordering::Relaxed);
                let position = receipt["position"].as_u64().unwrap();
                // A client that lost the answer retries with the same key: it gets the original.
                let sent = Instant::now();
                let (again, _) = api.until_acknowledged(&token, "/v1/records", key, &body).await;
                calls.push((sent, Instant::now()));
                assert_eq!((again["replayed"].as_bool(), again["position"].as_u64()), (Some(true), Some(position)), "{again}");
                assert_eq!(again["events"], receipt["events"]);
                outcomes.insert(key, Outcome::Acknowledged(position));
            }
            (outcomes, calls)
        }));
    }

    let server = test.nats.as_mut().unwrap();
    let outages = 3;
    let mut down = Vec::new();
    for _ in 0..outages {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let stopped = Instant::now();
        server.stop(); // SIGKILL: the server gets no chance to flush or answer
        tokio::time::sleep(Duration::from_millis(3000)).await;
        server.start_again();
        down.push((stopped, Instant::now()));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut outcomes, mut calls) = (BTreeMap::new(), Vec::new());
    for client in clients {
        let (mut client_outcomes, mut client_calls) = client.await.unwrap();
        outcomes.append(&mut client_outcomes);
        calls.append(&mut client_calls);
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
    let failed = failed_attempts.load(Ordering::Relaxed);
    let caught = calls.iter().filter(|(sent, answered)| down.iter().any(|(stopped, back)| sent < back && stopped < answered)).count();
    assert!(caught > 0, "the outages must catch calls in flight: none of {} calls was ({failed} failed attempts)", calls.len());
    report::record(
        "nats-restart-under-load",
        json!({"outages": outages, "commands": outcomes.len(), "acknowledged": acknowledged,
               "failed_attempts_retried": failed, "calls_caught_by_an_outage": caught, "unacknowledged_stored_once": unacknowledged_present,
               "unacknowledged_absent": unacknowledged_absent, "stored_twice": 0, "lost": 0}),
    );
}

/// How long an API call may take to say the event store is away, when its
/// request timeout is one second: a few sequential NATS requests, each bounded.
const UNAVAILABLE_WITHIN: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_nats_is_away_the_api_answers_503_within_the_request_timeout_instead_of_waiting() {
    let mut test = backends::jetstream_with_request_timeout(Duration::from_secs(1)).await;
    let api = ApiServer::start(&test.backend).await;
    let (doctor, token) = api.account("outage_doctor", Role::Physician).await;
    let (registered, _) =
        api.until_acknowledged(&token, "/v1/patients", uuid::Uuid::now_v7(), &patient_registration("Outage Patient")).await;
    let patient = registered["aggregate_id"].as_str().unwrap().to_owned();
    let before_key = uuid::Uuid::now_v7();
    let before = record_creation(&patient, &doctor.to_string(), "Before the outage");
    let (acknowledged, _) = api.until_acknowledged(&token, "/v1/records", before_key, &before).await;
    let record = acknowledged["aggregate_id"].as_str().unwrap().to_owned();

    // The outage outlasts the bound, so a call that waits for the server fails it.
    test.nats.as_mut().unwrap().stop();
    let during_key = uuid::Uuid::now_v7();
    let during = record_creation(&patient, &doctor.to_string(), "During the outage");
    let calls = [
        ("a new record", reqwest::Method::POST, "/v1/records".to_owned(), Some(during_key), Some(&during)),
        ("a retry of an acknowledged record", reqwest::Method::POST, "/v1/records".to_owned(), Some(before_key), Some(&before)),
        ("a record read", reqwest::Method::GET, format!("/v1/records/{record}"), None, None),
    ];
    let mut waited = serde_json::Map::new();
    for (what, method, path, key, body) in calls {
        let sent = Instant::now();
        let (status, problem) = api.try_send(method, &path, Some(&token), key, body).await.unwrap();
        let elapsed = sent.elapsed();
        assert_eq!(status, 503, "{what} while NATS is away: {problem}");
        assert_eq!(problem["retryable"], true, "{what}: {problem}");
        assert!(elapsed < UNAVAILABLE_WITHIN, "{what} waited {elapsed:?} for a server that is away");
        waited.insert(what.to_owned(), json!(elapsed.as_millis()));
    }
    test.nats.as_mut().unwrap().start_again();

    // Back again: the retry is answered with the original, and the command the
    // outage refused goes in (or, if its publish reached the server after all, is
    // answered from the log) exactly once.
    let (again, _) = api.until_acknowledged(&token, "/v1/records", before_key, &before).await;
    assert_eq!((again["replayed"].as_bool(), &again["position"]), (Some(true), &acknowledged["position"]), "{again}");
    let (after, _) = api.until_acknowledged(&token, "/v1/records", during_key, &during).await;
    let stored = report::commits_by_command(&test.backend.log).await;
    assert_eq!(stored[&during_key.to_string()], [after["position"].as_u64().unwrap()]);
    report::record("nats-away-answers-503", json!({"request_timeout_ms": 1000, "answered_after_ms": waited}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_read_the_server_dies_under_fails_within_the_request_timeout_instead_of_waiting_for_its_return() {
    use emr_eventstore::{AggregateKey, CommitRequest, LogError};

    let mut test = backends::jetstream_with_request_timeout(Duration::from_secs(1)).await;
    let log = test.backend.log.clone();
    // Long enough a read that the server's death finds one streaming.
    let commits: Vec<CommitRequest> = (0..5000)
        .map(|i| CommitRequest {
            key: AggregateKey::new("patient", &uuid::Uuid::now_v7().to_string()).unwrap(),
            expected_last_position: 0,
            commit_id: format!("bulk-{i}"),
            payload: vec![b'x'; 600],
        })
        .collect();
    for chunk in commits.chunks(500) {
        log.append_in_order(chunk.to_vec()).await.unwrap();
    }

    // Three readers, each reading the whole log over and over: when the server
    // dies, one of them is almost surely streaming.
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (log, stop) = (log.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut slowest, mut failed) = (Duration::ZERO, 0);
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let read = log.read_from(1, 5000).await;
                    slowest = slowest.max(started.elapsed());
                    match read {
                        Ok(read) => assert_eq!(read.len(), 5000, "a read that ends well is whole"),
                        Err(LogError::Unavailable(_)) => failed += 1,
                        Err(other) => panic!("a read during an outage fails as unavailable, not {other}"),
                    }
                }
                (slowest, failed)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = test.nats.as_mut().unwrap();
    server.stop();
    // Down for longer than the bound: a read waiting for the server would outlast it.
    tokio::time::sleep(UNAVAILABLE_WITHIN + Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    server.start_again();
    let (mut slowest, mut failed) = (Duration::ZERO, 0);
    for reader in readers {
        let (reader_slowest, reader_failed) = reader.await.unwrap();
        (slowest, failed) = (slowest.max(reader_slowest), failed + reader_failed);
    }
    assert!(failed > 0, "reads during the outage must fail");
    assert!(slowest < UNAVAILABLE_WITHIN, "a read waited {slowest:?} for a server that was away");
    report::record(
        "log-read-server-dies",
        json!({"request_timeout_ms": 1000, "reads_failed_as_unavailable": failed, "slowest_read_ms": slowest.as_millis()}),
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
