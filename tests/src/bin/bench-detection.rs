//! Threat-detection throughput: events/s through the detection worker (read
//! from JetStream through its durable feed, decoded, observed, detections raised
//! back into the log, state saved in MariaDB), beside two drains of the same log
//! measured in the same run (an ordered consumer reading the raw messages; the
//! durable feed reading and decoding every commit, nothing else), and the pure
//! detector alone. Checks the run's detection quality against the targets too.
//!
//! Run with: `cargo run --release -p emr-tests --bin bench-detection -- [DAYS] [DEPARTMENTS] [small]`
//! (default 60 days, 6 departments of 14 staff: about 200,000 events; `small`:
//! departments of 5 staff and 30 patients, for the smoke run). Needs MariaDB at
//! EMR_TEST_MYSQL_URL (tests/run.sh starts one) and the nats-server binary.
//! Writes `bench-detection.json`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream::{self, consumer::pull::OrderedConfig};
use emr_detection::{DetectionWorker, LogSink, Responders, WorkerConfig};
use emr_domain::DomainServices;
use emr_domain::detection::DetectionSettings;
use emr_eventstore::{LogReader, PollingFeed};
use emr_tests::backends;
use emr_tests::detection_quality::{detect, score};
use emr_tests::hospital_trace::{TraceShape, generate};
use emr_tests::mariadb::TestDatabase;
use emr_tests::trace_log;
use futures::StreamExt;

emr_tests::shipped_allocator!();

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let days: i64 = args.next().map(|a| a.parse().expect("DAYS must be a number")).unwrap_or(60);
    let departments: usize = args.next().map(|a| a.parse().expect("DEPARTMENTS must be a number")).unwrap_or(6);
    let base = if args.next().as_deref() == Some("small") { TraceShape::small() } else { TraceShape::report() };
    let shape = TraceShape { days, departments, rounds: 2, ..base };
    let trace = generate(shape);
    let test = backends::jetstream().await;
    let backend = test.backend.clone();
    let started = Instant::now();
    trace_log::write(&backend, &trace).await;
    let write_seconds = started.elapsed().as_secs_f64();
    let head = backend.log.head().await.unwrap();

    // Baselines: the stream drained by an ordered consumer (messages, nothing
    // else), and the log drained through a durable feed and decoded into
    // events, as every consumer of the log (projectors, the detector) reads it.
    let js = jetstream::new(async_nats::connect(test.nats.as_ref().unwrap().url()).await.unwrap());
    let stream = js.get_stream("EMR_EVENTS").await.unwrap();
    let started = Instant::now();
    let mut messages = stream.create_consumer(OrderedConfig::default()).await.unwrap().messages().await.unwrap();
    for _ in 0..head {
        messages.next().await.unwrap().unwrap();
    }
    let raw_seconds = started.elapsed().as_secs_f64();
    let raw_rate = head as f64 / raw_seconds;
    let started = Instant::now();
    let mut feed = PollingFeed::or_durable(backend.log.clone(), "bench-drain").await.unwrap();
    let (mut position, mut drained) = (0, 0usize);
    while position < head {
        let commits = feed.next(position, 1000).await.unwrap();
        position = commits.last().map(|c| c.position).unwrap();
        drained += LogReader::flatten(commits).unwrap().len();
        feed.applied(position).await.unwrap();
    }
    let drain_seconds = started.elapsed().as_secs_f64();
    let drain_rate = drained as f64 / drain_seconds;

    let started = Instant::now();
    let found = detect(&trace, DetectionSettings::default());
    let pure_rate = trace.events.len() as f64 / started.elapsed().as_secs_f64();

    let db = TestDatabase::fresh().await;
    let identity = emr_auth::Identity::new(
        &backend,
        Arc::new(emr_auth::MemorySessionStore::new()),
        emr_auth::Tokens::new(emr_auth::SigningKeys::generate("bench").unwrap()),
        emr_auth::AuthPolicy::default(),
        DomainServices::default(),
    );
    let responders = Responders { sinks: vec![Arc::new(LogSink)], guard: Arc::new(identity) };
    let worker =
        DetectionWorker::open(&backend, db.db.clone(), responders, WorkerConfig::default(), DomainServices::default()).await.unwrap();
    let started = Instant::now();
    worker.catch_up(head).await.unwrap();
    let worker_seconds = started.elapsed().as_secs_f64();
    let worker_rate = drained as f64 / worker_seconds;
    let (state_bytes,): (i64,) =
        sqlx::query_as("SELECT CAST(LENGTH(state) AS SIGNED) FROM detection_state WHERE id = 1").fetch_one(&db.pool).await.unwrap();

    let quality = score(&trace, &found);
    let recall = quality.worst_recall();
    let false_positives = quality.false_positives_per_10k_reads();
    println!("## Threat detection benchmark ({days} days, {departments} departments: {drained} events in {head} commits)\n");
    println!("| what | seconds | events/s | ratio to the feed drain |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| raw JetStream drain, ordered consumer (messages = commits) | {raw_seconds:.2} | {raw_rate:.0} | {:.2} |",
        raw_rate / drain_rate
    );
    println!("| the log's durable feed, read and decoded (baseline) | {drain_seconds:.2} | {drain_rate:.0} | 1.00 |");
    println!(
        "| detection worker: drain, observe, raise, save state | {worker_seconds:.2} | {worker_rate:.0} | {:.2} |",
        worker_rate / drain_rate
    );
    println!("| pure detector (observe only, in memory) | | {pure_rate:.0} | {:.2} |", pure_rate / drain_rate);
    println!(
        "\nwriting the trace into JetStream took {write_seconds:.1} s; {} detections; worst recall {recall:.2}, \
         {false_positives:.2} false positives per 10,000 clean reads; the saved detector state is {:.1} MiB",
        found.len(),
        state_bytes as f64 / 1_048_576.0
    );
    let json = serde_json::json!({
        "events": drained, "commits": head, "days": days, "departments": departments,
        "raw_ordered_drain_per_s": raw_rate, "feed_drain_events_per_s": drain_rate, "worker_events_per_s": worker_rate, "worker_ratio": worker_rate / drain_rate,
        "pure_events_per_s": pure_rate, "detections": found.len(), "worst_recall": recall,
        "false_positives_per_10k_reads": false_positives, "state_bytes": state_bytes,
    });
    println!("\n{json}");
    std::fs::write("bench-detection.json", serde_json::to_string_pretty(&json).unwrap()).unwrap();
    assert!(recall >= 0.95, "recall {recall:.2} is below the 0.95 target");
    assert!(false_positives <= 1.0, "{false_positives:.2} false positives per 10,000 clean reads is above the target of 1");
}
