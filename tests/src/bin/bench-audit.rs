//! Audit throughput on a real JetStream log: `emr audit verify`'s replay-and-check
//! rate beside the raw drain rate of the same stream measured in the same run,
//! and anchoring throughput (leaves/s) at two batch sizes.
//!
//! Run with: `cargo run --release -p emr-tests --bin bench-audit -- [EVENTS]` (default 20000).
//! Writes `bench-audit.json`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream::{self, consumer::pull::OrderedConfig};
use emr_anchor::{AnchorConfig, AnchorWorker, FileLedger, verify};
use emr_tests::{backends, history};
use futures::StreamExt;

emr_tests::shipped_allocator!();

#[tokio::main]
async fn main() {
    let target: u64 = std::env::args().nth(1).map(|a| a.parse().expect("EVENTS must be a number")).unwrap_or(20_000);
    let test = backends::jetstream().await;
    let backend = test.backend.clone();
    let clinic = backends::clinic(&backend);
    while backend.log.head().await.unwrap() < target {
        history::write(&clinic, 100).await;
    }
    let commits = backend.log.head().await.unwrap();

    let js = jetstream::new(async_nats::connect(test.nats.as_ref().unwrap().url()).await.unwrap());
    let stream = js.get_stream("EMR_EVENTS").await.unwrap();
    // The baseline is drained before and after verification and the faster drain
    // kept: a stream just written drains slower than one read before.
    let drain = || async {
        let started = Instant::now();
        let mut messages = stream.create_consumer(OrderedConfig::default()).await.unwrap().messages().await.unwrap();
        let mut drained = 0u64;
        while drained < commits {
            messages.next().await.unwrap().unwrap();
            drained += 1;
        }
        drained as f64 / started.elapsed().as_secs_f64()
    };
    let first_drain = drain().await;

    let mut anchoring = Vec::new();
    let mut last_dir = None;
    for batch in [100usize, 1000] {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Arc::new(FileLedger::open(dir.path()).unwrap());
        let worker = AnchorWorker::open(
            backend.log.clone(),
            ledger.clone(),
            dir.path(),
            AnchorConfig { batch_commits: batch, ..Default::default() },
        )
        .await
        .unwrap();
        let started = Instant::now();
        let heads = worker.catch_up().await.unwrap();
        let seconds = started.elapsed().as_secs_f64();
        anchoring.push((batch, heads.len(), seconds, commits as f64 / seconds));
        last_dir = Some((dir, ledger, worker.public_key()));
    }
    let (dir, ledger, key) = last_dir.unwrap();
    let started = Instant::now();
    let report = verify(backend.log.clone(), ledger.as_ref(), dir.path(), &[key]).await.unwrap();
    let verify_seconds = started.elapsed().as_secs_f64();
    assert!(report.ok, "{report:?}");
    let verify_rate = report.events as f64 / verify_seconds;
    let drain_rate = first_drain.max(drain().await);
    let drained = commits;

    println!("## Audit benchmark (JetStream, {} events in {commits} commits)\n", report.events);
    println!("| what | seconds | per second | ratio to raw drain |");
    println!("| --- | ---: | ---: | ---: |");
    println!("| raw JetStream drain (ordered consumer, msgs) | {:.2} | {drain_rate:.0} | 1.00 |", drained as f64 / drain_rate);
    println!(
        "| `emr audit verify` (events replayed and checked) | {verify_seconds:.2} | {verify_rate:.0} | {:.2} |",
        verify_rate / drain_rate
    );
    for (batch, heads, seconds, rate) in &anchoring {
        println!("| anchoring, batch {batch} commits ({heads} tree heads), leaves | {seconds:.2} | {rate:.0} | {:.2} |", rate / drain_rate);
    }
    let json = serde_json::json!({
        "events": report.events, "commits": commits, "raw_drain_per_s": drain_rate, "verify_events_per_s": verify_rate,
        "verify_ratio": verify_rate / drain_rate,
        "anchoring": anchoring.iter().map(|(b, h, s, r)| serde_json::json!({"batch_commits": b, "heads": h, "seconds": s, "leaves_per_s": r})).collect::<Vec<_>>(),
    });
    println!("\n{json}");
    std::fs::write("bench-audit.json", serde_json::to_string_pretty(&json).unwrap()).unwrap();
}
