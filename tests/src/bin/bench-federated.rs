//! Federated-learning aggregation and rounds: the time each strategy takes to
//! combine one round of hospital models (10 and 100 hospitals at 1M parameters by
//! default), beside a plain sum of the same vectors measured in the same run (the
//! memory-bound floor of any aggregation); secure aggregation's masking and
//! unmasking at the smallest size; and the reference experiment's round latency
//! end to end (hospitals train, coordinator records every step in the log) on the
//! embedded store and on JetStream, in the clear and under secure aggregation
//! (every protocol message relayed through the task's events).
//!
//! Run with: `cargo run --release -p emr-tests --bin bench-federated -- [PARAMETERS] [CLIENTS,...] [ROUNDS]`
//! (default 1000000 10,100 20). Writes `bench-federated.json`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use emr_domain::DomainServices;
use emr_domain::federated::Strategy;
use emr_federated::simulate::{Simulation, run_federated};
use emr_federated::{Coordinator, DirectoryModelStore};
use emr_learning::secure::{InProcessRound, unmask};
use emr_learning::strategy::{ClientModel, aggregate};
use emr_tests::backends;
use rand::{Rng, SeedableRng};

emr_tests::shipped_allocator!();

fn seconds<T>(work: impl FnOnce() -> T) -> (T, f64) {
    let started = Instant::now();
    let out = work();
    (out, started.elapsed().as_secs_f64())
}

/// The best of up to three runs of `work` (fewer when one run takes over a second),
/// so a first run's cold caches do not count against it.
fn best<T>(mut work: impl FnMut() -> T) -> (T, f64) {
    let (mut out, mut fastest) = seconds(&mut work);
    for _ in 0..2 {
        if fastest > 1.0 {
            break;
        }
        let (again, took) = seconds(&mut work);
        (out, fastest) = (again, fastest.min(took));
    }
    (out, fastest)
}

fn models(clients: usize, parameters: usize) -> Vec<ClientModel> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    (0..clients)
        .map(|_| ClientModel {
            parameters: (0..parameters).map(|_| rng.random_range(-1.0..1.0)).collect(),
            samples: rng.random_range(100..1000),
        })
        .collect()
}

/// Masks every client's vector and unmasks their sum; returns (mask seconds per client, unmask seconds).
fn secure_round(vectors: &[ClientModel]) -> (f64, f64) {
    let round = InProcessRound::new(vectors.len(), b"bench").unwrap();
    let plain: Vec<Vec<f64>> = vectors.iter().map(|v| v.parameters.clone()).collect();
    let (masked, mask_seconds) = seconds(|| round.mask_all(&plain).unwrap());
    let revealed = round.reveal(&masked.keys().copied().collect()).unwrap();
    let (_, unmask_seconds) = seconds(|| unmask(round.roster(), &masked, &revealed).unwrap());
    (mask_seconds / vectors.len() as f64, unmask_seconds)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let parameters: usize = args.next().map(|a| a.parse().expect("PARAMETERS must be a number")).unwrap_or(1_000_000);
    let client_counts: Vec<usize> =
        args.next().map(|a| a.split(',').map(|c| c.parse().expect("CLIENTS must be numbers")).collect()).unwrap_or(vec![10, 100]);
    let rounds: u32 = args.next().map(|a| a.parse().expect("ROUNDS must be a number")).unwrap_or(20);

    println!("## Federated learning: aggregation per round ({parameters} parameters)\n");
    println!("| hospitals | strategy | seconds per round | ratio to a plain sum |");
    println!("| ---: | --- | ---: | ---: |");
    let mut json_rows = Vec::new();
    for &clients in &client_counts {
        let set = models(clients, parameters);
        let (_, sum_seconds) = best(|| {
            let mut sum = vec![0.0; parameters];
            for m in &set {
                sum.iter_mut().zip(&m.parameters).for_each(|(s, p)| *s += p);
            }
            sum
        });
        println!("| {clients} | plain sum (baseline) | {sum_seconds:.3} | 1.00 |");
        let byzantine = (clients.saturating_sub(3) / 2) as u32;
        let strategies = [
            Strategy::FedAvg,
            Strategy::Median,
            Strategy::TrimmedMean { beta: 0.1 },
            Strategy::Krum { byzantine },
            Strategy::MultiKrum { byzantine, selected: (clients / 2).max(1) as u32 },
        ];
        for strategy in strategies {
            let (result, took) = best(|| aggregate(&strategy, &set).unwrap());
            assert_eq!(result.len(), parameters);
            println!("| {clients} | {} | {took:.3} | {:.2} |", strategy.name(), took / sum_seconds);
            json_rows.push(
                serde_json::json!({"hospitals": clients, "strategy": strategy.name(), "seconds": took, "ratio_to_sum": took / sum_seconds}),
            );
        }
    }
    let smallest = client_counts.iter().copied().min().unwrap_or(3).max(3);
    let (mask_per_client, unmask_seconds) = secure_round(&models(smallest, parameters));
    println!(
        "\nSecure aggregation, {smallest} hospitals: masking {mask_per_client:.3} s per hospital, unmasking {unmask_seconds:.3} s at the coordinator.\n"
    );

    println!("## Federated learning: the reference experiment's round latency ({rounds} rounds, 3 hospitals, logistic regression)\n");
    println!(
        "| event log | aggregation | rounds | seconds per round (train, submit, aggregate, record) | ratio to plain on the same log |"
    );
    println!("| --- | --- | ---: | ---: | ---: |");
    let mut latency = Vec::new();
    let cases = [
        ("embedded (SQLite)", false, backends::sqlite().await),
        ("embedded (SQLite)", true, backends::sqlite().await),
        ("JetStream", false, backends::jetstream().await),
        ("JetStream", true, backends::jetstream().await),
    ];
    let mut plain_seconds = f64::NAN;
    for (name, secure_aggregation, backend) in cases {
        let dir = tempfile::tempdir().unwrap();
        let coordinator = Coordinator::new(
            &backend.backend,
            Arc::new(DirectoryModelStore::open(dir.path(), backend.backend.kek.as_ref()).await.unwrap()),
            DomainServices::default(),
        );
        let simulation = Simulation { rounds, secure_aggregation, ..Simulation::reference(3) };
        let started = Instant::now();
        let report = run_federated(&coordinator, &simulation).await.unwrap();
        let per_round = started.elapsed().as_secs_f64() / f64::from(rounds);
        assert_eq!(report.rounds.len(), rounds as usize);
        // Secure rounds follow the plain round on the same log, so the ratio is the protocol's cost.
        let (aggregation, ratio) = if secure_aggregation {
            ("secure (keys, shares, masks, reveals relayed as events)", per_round / plain_seconds)
        } else {
            plain_seconds = per_round;
            ("plain", 1.0)
        };
        println!("| {name} | {aggregation} | {rounds} | {per_round:.4} | {ratio:.2} |");
        latency.push(
            serde_json::json!({"log": name, "secure_aggregation": secure_aggregation, "rounds": rounds, "seconds_per_round": per_round}),
        );
    }
    let json = serde_json::json!({
        "parameters": parameters, "aggregation": json_rows,
        "secure": {"hospitals": smallest, "mask_seconds_per_hospital": mask_per_client, "unmask_seconds": unmask_seconds},
        "round_latency": latency,
    });
    std::fs::write("bench-federated.json", json.to_string()).unwrap();
}
