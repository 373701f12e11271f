//! Backup and restore of a JetStream deployment with `emr backup` / `emr restore`
//! (the real binary, built beside this one): seconds, commits/s and bytes, beside
//! the raw drain rate of the same stream and the stream's own size on disk,
//! measured in the same run. The restored log must equal the original.
//!
//! The log is seeded with real clinical histories through the application
//! layer, then with copies of their creation commits under new ids, appended
//! directly (seeding at the command path's speed would take hours at 1M).
//!
//! Run with: `cargo run --release -p emr-tests --bin bench-backup -- [EVENTS]`
//! (default 20000; the README reports 1,000,000). Writes `bench-backup.json`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use async_nats::jetstream::{self, consumer::pull::OrderedConfig};
use emr_domain::ids::{CommandId, EventId};
use emr_eventstore::{AggregateKey, CommitRecord, CommitRequest};
use emr_tests::{backends, history};
use futures::{StreamExt, TryStreamExt};

emr_tests::shipped_allocator!();

const KEYRING: &str = "test-kek:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn size_of(path: &Path) -> u64 {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::read_dir(path).unwrap().map(|entry| size_of(&entry.unwrap().path())).sum(),
        Ok(meta) => meta.len(),
        Err(_) => 0,
    }
}

/// `emr <args>` against the NATS server at `url`; returns the seconds it took.
fn emr(url: &str, data_dir: &Path, args: &[&str]) -> f64 {
    let binary = std::env::current_exe().unwrap().with_file_name("emr");
    assert!(binary.exists(), "{} missing: build emr-cli in the same profile (tests/bench.sh does)", binary.display());
    let started = Instant::now();
    let output = Command::new(binary)
        .args(args)
        .env("EMR__STORE__BACKEND", "nats")
        .env("EMR__NATS__URL", url)
        .env("EMR__KEYS__KEYRING", KEYRING)
        .env("EMR__STORE__DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(output.status.success(), "emr {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let target: u64 = std::env::args().nth(1).map(|a| a.parse().expect("EVENTS must be a number")).unwrap_or(20_000);
    let source = backends::jetstream().await;
    let clinic = backends::clinic(&source.backend);
    // Seeding is not what this measures. A few hundred patients' clinical
    // histories go through the application layer; then their creation commits
    // are copied under new aggregate ids (and new command and event ids),
    // appended 64 at a time, until the log holds EVENTS events.
    for _ in 0..2 {
        history::write(&clinic, 100).await;
    }
    let log = source.backend.log.clone();
    let templates: Vec<CommitRecord> = log
        .read_from(1, usize::MAX)
        .await
        .unwrap()
        .iter()
        .map(|commit| CommitRecord::decode(commit).unwrap())
        .filter(|record| record.events.first().is_some_and(|event| event.sequence == 1))
        .collect();
    let mut events = count_events(&log).await;
    let mut copied = 0usize;
    while events < target {
        let batch: Vec<CommitRequest> = (0..2000)
            .map(|i| {
                let mut record = templates[(copied + i) % templates.len()].clone();
                record.aggregate_id = uuid::Uuid::now_v7().to_string();
                record.command_id = CommandId::new();
                record.events.iter_mut().for_each(|event| event.event_id = EventId::new());
                CommitRequest {
                    key: AggregateKey::new(&record.aggregate_type, &record.aggregate_id).unwrap(),
                    expected_last_position: 0,
                    commit_id: record.command_id.to_string(),
                    payload: record.encode().unwrap(),
                }
            })
            .collect();
        copied += batch.len();
        events +=
            batch.iter().map(|request| serde_json::from_slice::<CommitRecord>(&request.payload).unwrap().events.len() as u64).sum::<u64>();
        let log = log.clone();
        futures::stream::iter(batch).map(|request| log.append(request)).buffer_unordered(64).try_collect::<Vec<_>>().await.unwrap();
    }
    let commits = source.backend.log.head().await.unwrap();
    let events = count_events(&source.backend.log).await;
    let nats = source.nats.as_ref().unwrap();
    let stream_bytes = size_of(nats.store_dir());

    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let stream = js.get_stream("EMR_EVENTS").await.unwrap();
    let started = Instant::now();
    let mut messages = stream.create_consumer(OrderedConfig::default()).await.unwrap().messages().await.unwrap();
    for _ in 0..commits {
        messages.next().await.unwrap().unwrap();
    }
    let drain_seconds = started.elapsed().as_secs_f64();

    let root = tempfile::tempdir().unwrap();
    let backup = root.path().join("backup");
    let backup_seconds = emr(&nats.url(), &root.path().join("source"), &["backup", "--to", backup.to_str().unwrap()]);
    let backup_bytes = size_of(&backup);

    let target_backend = backends::jetstream().await;
    let target_nats = target_backend.nats.as_ref().unwrap();
    let restore_seconds = emr(&target_nats.url(), &root.path().join("target"), &["restore", "--from", backup.to_str().unwrap()]);
    assert_eq!(target_backend.backend.log.head().await.unwrap(), commits, "the restored log ends where the original did");
    assert_eq!(count_events(&target_backend.backend.log).await, events, "every event restored");

    let rate = |seconds: f64| commits as f64 / seconds;
    println!("## Backup and restore (JetStream, {events} events in {commits} commits)\n");
    println!("| what | seconds | commits/s | ratio to raw drain | bytes |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    println!(
        "| raw JetStream drain (ordered consumer) | {drain_seconds:.1} | {:.0} | 1.00 | {stream_bytes} (stream on disk) |",
        rate(drain_seconds)
    );
    println!(
        "| `emr backup` | {backup_seconds:.1} | {:.0} | {:.2} | {backup_bytes} |",
        rate(backup_seconds),
        rate(backup_seconds) / rate(drain_seconds)
    );
    println!(
        "| `emr restore` into an empty server | {restore_seconds:.1} | {:.0} | {:.2} | — |",
        rate(restore_seconds),
        rate(restore_seconds) / rate(drain_seconds)
    );
    let json = serde_json::json!({
        "events": events, "commits": commits, "stream_bytes": stream_bytes, "raw_drain_seconds": drain_seconds,
        "backup_seconds": backup_seconds, "backup_bytes": backup_bytes, "restore_seconds": restore_seconds,
    });
    println!("\n{json}");
    std::fs::write("bench-backup.json", serde_json::to_string_pretty(&json).unwrap()).unwrap();
}

/// Events (not commits) in the log.
async fn count_events(log: &std::sync::Arc<dyn emr_eventstore::EventLog>) -> u64 {
    let mut events = 0u64;
    let mut from = 1;
    loop {
        let commits = log.read_from(from, 10_000).await.unwrap();
        let Some(last) = commits.last() else { return events };
        from = last.position + 1;
        for commit in &commits {
            events += emr_eventstore::CommitRecord::decode(commit).unwrap().events.len() as u64;
        }
    }
}
