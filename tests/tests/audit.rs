//! Verifiable audit: the log is anchored in signed, hash-chained tree heads, and
//! `verify` detects every kind of tampering, naming the first bad event.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use emr_anchor::{AnchorConfig, AnchorError, AnchorWorker, FileLedger, Ledger, VerifyReport, verify};
use emr_eventstore::conformance::Backend;
use emr_tests::backends::{self, clinic};
use emr_tests::history;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, SqlitePool};

struct Audit {
    dir: tempfile::TempDir,
    ledger: Arc<FileLedger>,
    trusted: Vec<String>,
}

async fn anchored(backend: &Backend, batch_commits: usize) -> Audit {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(FileLedger::open(dir.path()).unwrap());
    let config = AnchorConfig { batch_commits, ..AnchorConfig::default() };
    let worker = AnchorWorker::open(backend.log.clone(), ledger.clone(), dir.path(), config).await.unwrap();
    worker.catch_up().await.unwrap();
    Audit { trusted: vec![worker.public_key()], dir, ledger }
}

async fn check(backend: &Backend, audit: &Audit) -> VerifyReport {
    verify(backend.log.clone(), audit.ledger.as_ref(), audit.dir.path(), &audit.trusted).await.unwrap()
}

async fn an_untouched_log_verifies_clean(backend: Backend) {
    history::write(&clinic(&backend), 4).await;
    let audit = anchored(&backend, 7).await;
    let report = check(&backend, &audit).await;
    assert!(report.ok, "{report:?}");
    assert_eq!(report.events, report.anchored_events);
    assert!(report.tree_heads >= 5 && report.consistency_proofs == report.tree_heads - 1, "{report:?}");
}

async fn a_crash_between_leaves_and_head_neither_skips_nor_doubles(backend: Backend) {
    let clinic = clinic(&backend);
    history::write(&clinic, 2).await;
    let audit = anchored(&backend, 5).await;
    let before = check(&backend, &audit).await;
    // A crash after the leaves of the next batch were written, before its head was anchored.
    std::fs::OpenOptions::new()
        .append(true)
        .open(audit.dir.path().join("leaves.bin"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, &[0xAB; 32 * 3]))
        .unwrap();
    history::write(&clinic, 1).await;
    let worker = AnchorWorker::open(
        backend.log.clone(),
        audit.ledger.clone(),
        audit.dir.path(),
        AnchorConfig { batch_commits: 5, ..Default::default() },
    )
    .await
    .unwrap();
    worker.catch_up().await.unwrap();
    let after = check(&backend, &audit).await;
    assert!(after.ok, "{after:?}");
    assert!(after.events > before.events);
    assert_eq!(after.anchored_events, after.events, "every event anchored exactly once");
}

#[tokio::test]
async fn a_second_anchor_worker_on_one_directory_is_refused_while_the_first_runs() {
    let test = backends::sqlite().await;
    history::write(&clinic(&test.backend), 1).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(FileLedger::open(dir.path()).unwrap());
    let open = || AnchorWorker::open(test.backend.log.clone(), ledger.clone(), dir.path(), AnchorConfig::default());
    let first = open().await.unwrap();
    let second = open().await.err();
    assert!(matches!(&second, Some(AnchorError::Busy { dir: busy }) if busy == dir.path()), "{second:?}");
    first.catch_up().await.unwrap();
    drop(first);
    let next = open().await.unwrap();
    assert!(next.catch_up().await.unwrap().is_empty(), "the first anchored everything; its successor resumes after it");
    let trusted = vec![next.public_key()];
    let report = verify(test.backend.log.clone(), ledger.as_ref(), dir.path(), &trusted).await.unwrap();
    assert!(report.ok && report.anchored_events == report.events, "{report:?}");
}

emr_tests::on_every_backend!(
    an_untouched_log_verifies_clean,
    a_crash_between_leaves_and_head_neither_skips_nor_doubles,
    every_event_has_a_receipt_that_verifies_offline,
);

/// Tampering as an attacker with write access to the embedded store would: the
/// append-only triggers dropped, rows rewritten behind the application's back.
async fn tampered() -> (backends::TestBackend, Audit, SqlitePool, Vec<(i64, String)>) {
    let test = backends::sqlite().await;
    history::write(&clinic(&test.backend), 3).await;
    let audit = anchored(&test.backend, 4).await;
    assert!(check(&test.backend, &audit).await.ok);
    let options = SqliteConnectOptions::new().filename(test.sqlite_file().unwrap());
    let db = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
    for trigger in ["commits_are_immutable", "commits_are_never_deleted"] {
        sqlx::query(AssertSqlSafe(format!("DROP TRIGGER {trigger}"))).execute(&db).await.unwrap();
    }
    let rows: Vec<(i64, String)> = sqlx::query_as("SELECT position, aggregate_type || '.' || aggregate_id FROM commits ORDER BY position")
        .fetch_all(&db)
        .await
        .unwrap();
    (test, audit, db, rows)
}

/// Rewrites the stored bytes of the commit at `position`, replacing `from` by `to`.
async fn rewrite_commit(db: &SqlitePool, position: i64, from: &str, to: &str) {
    let payload: Vec<u8> = sqlx::query_scalar("SELECT payload FROM commits WHERE position = ?").bind(position).fetch_one(db).await.unwrap();
    let original = String::from_utf8(payload).unwrap();
    let rewritten = original.replace(from, to);
    assert_ne!(rewritten, original, "the commit at {position} holds no {from}");
    sqlx::query("UPDATE commits SET payload = ? WHERE position = ?").bind(rewritten.into_bytes()).bind(position).execute(db).await.unwrap();
}

#[tokio::test]
async fn a_rewritten_payload_is_detected_at_its_event() {
    let (test, audit, db, rows) = tampered().await;
    let (position, aggregate) = rows[10].clone();
    rewrite_commit(&db, position, "\"recorded_at\":\"20", "\"recorded_at\":\"19").await;
    let report = check(&test.backend, &audit).await;
    let failure = report.failure.unwrap();
    assert_eq!((failure.kind.as_str(), failure.position, failure.aggregate), ("event-altered", Some(position as u64), Some(aggregate)));
}

#[tokio::test]
async fn a_deleted_event_is_detected_where_it_was() {
    let (test, audit, db, rows) = tampered().await;
    let (position, _) = rows[7].clone();
    sqlx::query("DELETE FROM commits WHERE position = ?").bind(position).execute(&db).await.unwrap();
    let failure = check(&test.backend, &audit).await.failure.unwrap();
    assert_eq!(failure.kind, "event-altered");
    assert_eq!(failure.position, Some(position as u64 + 1), "the first event out of place is the one after the gap");
    assert!(failure.detail.contains(&format!("positions {position}..{position} are missing")), "{}", failure.detail);
}

#[tokio::test]
async fn two_reordered_events_are_detected_at_the_first() {
    let (test, audit, db, rows) = tampered().await;
    let (a, b) = (rows[3].0, rows[5].0);
    sqlx::query(
        "UPDATE commits SET payload = (SELECT payload FROM commits c WHERE c.position = CASE commits.position WHEN ?1 THEN ?2 ELSE ?1 END),
                            aggregate_type = (SELECT aggregate_type FROM commits c WHERE c.position = CASE commits.position WHEN ?1 THEN ?2 ELSE ?1 END),
                            aggregate_id = (SELECT aggregate_id FROM commits c WHERE c.position = CASE commits.position WHEN ?1 THEN ?2 ELSE ?1 END)
         WHERE position IN (?1, ?2)",
    )
    .bind(a)
    .bind(b)
    .execute(&db)
    .await
    .unwrap();
    let failure = check(&test.backend, &audit).await.failure.unwrap();
    assert_eq!((failure.kind.as_str(), failure.position), ("event-altered", Some(a as u64)));
}

#[tokio::test]
async fn a_forged_tree_head_is_detected() {
    let (test, audit, _db, _) = tampered().await;
    let path = audit.dir.path().join("heads.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let last = lines.len() - 1;
    let mut forged: serde_json::Value = serde_json::from_str(&lines[last]).unwrap();
    forged["head"]["root"] = serde_json::json!("00".repeat(32));
    lines[last] = forged.to_string();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let failure = check(&test.backend, &audit).await.failure.unwrap();
    assert_eq!(failure.kind, "bad-signature", "{failure:?}");

    let mut broken: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    broken["head"]["size"] = serde_json::json!(1);
    lines[0] = broken.to_string();
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let failure = check(&test.backend, &audit).await.failure.unwrap();
    assert_eq!(failure.kind, "ledger-corrupt", "editing an earlier head breaks the chain: {failure:?}");
}

#[tokio::test]
async fn a_head_signed_by_another_key_is_not_trusted() {
    let test = backends::sqlite().await;
    history::write(&clinic(&test.backend), 1).await;
    let audit = anchored(&test.backend, 100).await;
    let stranger = Audit { trusted: vec!["ab".repeat(32)], ..audit };
    let failure = check(&test.backend, &stranger).await.failure.unwrap();
    assert_eq!(failure.kind, "untrusted-key");
    assert!(stranger.ledger.anchored().await.unwrap().len() == 1);
}

async fn every_event_has_a_receipt_that_verifies_offline(backend: Backend) {
    history::write(&clinic(&backend), 2).await;
    let audit = anchored(&backend, 3).await;
    let events = emr_eventstore::LogReader::new(backend.log.clone()).read(1, 10_000).await.unwrap();
    for event in &events {
        let receipt = emr_anchor::receipt(audit.ledger.as_ref(), audit.dir.path(), event).await.unwrap().expect("anchored");
        // What an auditor does offline: JSON in, canonical bytes and trusted key at hand.
        let receipt: emr_anchor::Receipt = serde_json::from_str(&serde_json::to_string(&receipt).unwrap()).unwrap();
        assert!(receipt.verify(&event.canonical_bytes(), &audit.trusted), "event at {}", event.metadata.position);
        let mut altered = event.clone();
        altered.metadata.context.actor.role = emr_domain::actor::Role::Admin;
        assert!(!receipt.verify(&altered.canonical_bytes(), &audit.trusted), "an altered event fails its receipt");
        assert!(!receipt.verify(&event.canonical_bytes(), &["cd".repeat(32)]), "an untrusted signer fails");
    }
}

/// JetStream refuses message deletes and purges (deny_delete, deny_purge), so the
/// tampering left to an administrator is rewriting the whole stream: copy every
/// message, delete the stream, recreate it, republish with the history changed.
async fn rewrite_jetstream_log(test: &backends::TestBackend, change: impl FnOnce(&mut Vec<(String, String)>)) {
    use async_nats::jetstream;
    let js = jetstream::new(async_nats::connect(test.nats.as_ref().unwrap().url()).await.unwrap());
    let config = emr_nats::event_stream_config(&emr_nats::NatsConfig::default());
    let stream = js.get_stream(&config.name).await.unwrap();
    let last = stream.get_info().await.unwrap().state.last_sequence;
    let mut messages = Vec::new();
    for sequence in 1..=last {
        let message = stream.get_raw_message(sequence).await.unwrap();
        messages.push((message.subject.to_string(), String::from_utf8(message.payload.to_vec()).unwrap()));
    }
    assert!(stream.delete_message(3).await.is_err(), "the stream refuses message deletes");
    change(&mut messages);
    js.delete_stream(&config.name).await.unwrap();
    js.create_stream(config).await.unwrap();
    for (subject, payload) in messages {
        js.publish(subject, payload.into()).await.unwrap().await.unwrap();
    }
}

async fn anchored_jetstream() -> (backends::TestBackend, Audit) {
    let test = backends::jetstream().await;
    history::write(&clinic(&test.backend), 2).await;
    let audit = anchored(&test.backend, 4).await;
    assert!(check(&test.backend, &audit).await.ok);
    (test, audit)
}

#[tokio::test]
async fn jetstream_an_event_rewritten_by_an_administrator_is_detected() {
    let (test, audit) = anchored_jetstream().await;
    rewrite_jetstream_log(&test, |messages| {
        let payload = &mut messages[5].1;
        let start = payload.find("\"role\":\"").unwrap() + 8;
        let end = start + payload[start..].find('"').unwrap();
        payload.replace_range(start..end, "auditor");
    })
    .await;
    let failure = check(&test.backend, &audit).await.failure.unwrap();
    assert_eq!((failure.kind.as_str(), failure.position), ("event-altered", Some(6)), "{failure:?}");
}

#[tokio::test]
async fn jetstream_an_event_deleted_by_an_administrator_is_detected() {
    let (test, audit) = anchored_jetstream().await;
    rewrite_jetstream_log(&test, |messages| {
        messages.remove(7);
    })
    .await;
    let failure = check(&test.backend, &audit).await.failure.unwrap();
    assert_eq!((failure.kind.as_str(), failure.position), ("event-altered", Some(8)), "{failure:?}");
}

#[tokio::test]
async fn jetstream_two_events_reordered_by_an_administrator_are_detected() {
    let (test, audit) = anchored_jetstream().await;
    rewrite_jetstream_log(&test, |messages| messages.swap(3, 5)).await;
    let failure = check(&test.backend, &audit).await.failure.unwrap();
    assert_eq!((failure.kind.as_str(), failure.position), ("event-altered", Some(4)), "{failure:?}");
}

async fn one_patients_history_is_proven_event_by_event(backend: Backend) {
    use emr_domain::actor::{Actor, Role};
    use emr_domain::ids::{PatientId, UserId};
    use emr_domain::metadata::CommandContext;
    let clinic = clinic(&backend);
    history::write(&clinic, 2).await;
    let patient = PatientId::new();
    let context = CommandContext::new(Actor::new(UserId::new(), Role::Nurse));
    clinic.patient(patient, emr_domain::fixtures::register(patient, "Tang Li"), &context).await.unwrap();
    history::write(&clinic, 1).await;
    let audit = anchored(&backend, 3).await;
    let report =
        emr_anchor::verify_patient(backend.log.clone(), audit.ledger.as_ref(), audit.dir.path(), &audit.trusted, &patient.to_string())
            .await
            .unwrap();
    assert!(report.ok && report.aggregates == 1 && report.proven == 1, "{report:?}");

    let someone = history_patient(&backend).await;
    let report =
        emr_anchor::verify_patient(backend.log.clone(), audit.ledger.as_ref(), audit.dir.path(), &audit.trusted, &someone).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert!(report.aggregates >= 4 && report.proven == report.events, "the patient, their records and grants: {report:?}");
}

/// The first patient the history generator registered.
async fn history_patient(backend: &Backend) -> String {
    let events = emr_eventstore::LogReader::new(backend.log.clone()).read(1, 1).await.unwrap();
    events[0].key.aggregate_id().to_owned()
}

emr_tests::on_backend!(patient_on_jetstream => jetstream: one_patients_history_is_proven_event_by_event);
emr_tests::on_backend!(patient_on_sqlite => sqlite: one_patients_history_is_proven_event_by_event);

#[tokio::test]
async fn a_patients_tampered_event_is_named_by_the_patient_verification() {
    let (test, audit, db, rows) = tampered().await;
    let (position, aggregate) = rows.iter().find(|(_, key)| key.starts_with("medical_record.")).cloned().unwrap();
    let patient: String = {
        let events = emr_eventstore::LogReader::new(test.backend.log.clone()).read(position as u64, 1).await.unwrap();
        events[0].payload["data"]["patient_id"].as_str().unwrap().to_owned()
    };
    rewrite_commit(&db, position, "\"recorded_at\":\"20", "\"recorded_at\":\"19").await;
    let report = emr_anchor::verify_patient(test.backend.log.clone(), audit.ledger.as_ref(), audit.dir.path(), &audit.trusted, &patient)
        .await
        .unwrap();
    let failure = report.failure.unwrap();
    assert_eq!((failure.kind.as_str(), failure.position, failure.aggregate), ("event-altered", Some(position as u64), Some(aggregate)));
}
