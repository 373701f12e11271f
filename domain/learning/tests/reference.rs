//! The federated-learning numerics against independent implementations: Flower's
//! aggregation functions, Google's dp-accounting and a numpy training loop, whose
//! outputs `tests/fl/reference.py` wrote into `tests/fl/*.json`.

use std::path::PathBuf;

use emr_domain::federated::privacy::SampledGaussian;
use emr_domain::federated::{ModelKind, ModelSpec, Precision, Strategy};
use emr_learning::data::{Dataset, Scaler};
use emr_learning::model::{LocalTraining, Model};
use emr_learning::strategy::{ClientModel, aggregate};
use serde_json::Value;

fn reference(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fl").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn floats(value: &Value) -> Vec<f64> {
    value.as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default()
}

fn strategy(key: &str) -> Strategy {
    let parts: Vec<&str> = key.split(':').collect();
    let number = |i: usize| parts[i].parse::<f64>().unwrap_or_else(|e| panic!("{key}: {e}"));
    match parts[0] {
        "fedavg" => Strategy::FedAvg,
        "median" => Strategy::Median,
        "trimmed-mean" => Strategy::TrimmedMean { beta: number(1) },
        "krum" => Strategy::Krum { byzantine: number(1) as u32 },
        "multi-krum" => Strategy::MultiKrum { byzantine: number(1) as u32, selected: number(2) as u32 },
        other => panic!("unknown strategy {other}"),
    }
}

#[test]
fn every_strategy_equals_flowers_own_aggregation_to_1e_9() {
    let reference = reference("flower_reference.json");
    let cases = reference["cases"].as_array().cloned().unwrap_or_default();
    assert_eq!(cases.len(), 5);
    let mut compared = 0;
    for (index, case) in cases.iter().enumerate() {
        let samples: Vec<u64> = case["samples"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
        let models: Vec<ClientModel> = case["models"]
            .as_array()
            .map(|a| a.iter().zip(&samples).map(|(m, &n)| ClientModel { parameters: floats(m), samples: n }).collect())
            .unwrap_or_default();
        let expected = case["expected"].as_object().cloned().unwrap_or_default();
        for (key, want) in &expected {
            let got = aggregate(&strategy(key), &models).unwrap_or_else(|e| panic!("case {index} {key}: {e}"));
            let want = floats(want);
            assert_eq!(got.len(), want.len(), "case {index} {key}");
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 1e-9, "case {index} {key}: {g} vs Flower's {w}");
            }
            compared += 1;
        }
    }
    assert!(compared > 60, "{compared} comparisons");
}

#[test]
fn the_accountant_equals_dp_accountings_epsilon_within_1e_3_on_the_committed_table() {
    let reference = reference("dp_accounting_reference.json");
    let rows = reference["rows"].as_array().cloned().unwrap_or_default();
    assert!(rows.len() >= 10);
    for row in rows {
        let mechanism = SampledGaussian {
            sample_rate: row["q"].as_f64().unwrap_or(f64::NAN),
            noise_multiplier: row["sigma"].as_f64().unwrap_or(f64::NAN),
            steps: row["steps"].as_u64().unwrap_or(0),
        };
        let delta = row["delta"].as_f64().unwrap_or(f64::NAN);
        let got = mechanism.epsilon(delta).unwrap_or_else(|e| panic!("{row}: {e}"));
        let want = row["epsilon"].as_f64().unwrap_or(f64::NAN);
        assert!((got.epsilon - want).abs() <= 1e-3, "{mechanism:?} δ={delta}: ε {} vs dp-accounting's {want}", got.epsilon);
        assert_eq!(got.order, row["order"].as_f64().unwrap_or(f64::NAN), "{mechanism:?}: best order");
    }
}

#[test]
fn centralised_logistic_regression_on_candle_equals_numpys_training_loop() {
    let reference = reference("centralized_reference.json");
    let data = Dataset::breast_cancer();
    let train: Vec<usize> = (0..data.len()).filter(|i| i % 5 != 0).collect();
    let mut train = data.select(&train);
    train.standardize(&Scaler::from_moments(&train.moments()));
    let spec = ModelSpec {
        kind: ModelKind::LogisticRegression,
        precision: Precision::F64,
        features: data.features.clone(),
        label: "benign".into(),
    };
    let model = Model::new(&spec);
    let start = model.initial_parameters(0);
    let training = LocalTraining { steps: 250, learning_rate: 0.5, proximal_mu: 0.0, dp_sgd: None };
    let trained = model.train(&start, &start, &train, &training).unwrap_or_else(|e| panic!("{e}"));
    let mut want = floats(&reference["weights"]);
    want.push(reference["bias"].as_f64().unwrap_or(f64::NAN));
    for (j, (g, w)) in trained.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-9, "parameter {j}: {g} vs numpy's {w}");
    }
}
