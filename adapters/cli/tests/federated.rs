//! Federated learning end to end: `emr serve` on the embedded default, three
//! `emr fl client` processes (one per hospital, each with its own CSV of rows)
//! and a researcher driving the rounds, all through the HTTP API.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use emr_learning::data::{Dataset, Scaler};
use emr_learning::metrics::accuracy;
use emr_tests::accounts::{self, PASSWORD};
use emr_tests::api_client::ApiClient;
use emr_tests::nats_server::free_port;
use serde_json::{Value, json};
use support::{create_admin, serve};

const HOSPITALS: [&str; 3] = ["HOSP-A", "HOSP-B", "HOSP-C"];
const ROUNDS: u32 = 3;

/// The hospital's rows as CSV with named columns, the label last.
fn csv(data: &Dataset) -> String {
    let mut text = data.features.join(",") + ",benign\n";
    for (row, label) in data.rows.iter().zip(&data.labels) {
        let fields: Vec<String> = row.iter().map(f64::to_string).collect();
        text += &format!("{},{label}\n", fields.join(","));
    }
    text
}

async fn open(api: &ApiClient, admin: &str, username: &str, role: &str) -> String {
    let body = json!({"username": username, "password": PASSWORD, "role": role});
    api.until_acknowledged(admin, "/v1/accounts", uuid::Uuid::now_v7(), &body).await;
    accounts::sign_in(&api.http, &api.base, username).await
}

async fn until_updates(api: &ApiClient, token: &str, task: &str, round: u32) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, view) = api.get(&format!("/v1/federated/tasks/{task}"), token).await;
        assert_eq!(status, 200, "{view}");
        if view["open_round"] == json!(round) && view["updates_received"].as_array().map_or(0, Vec::len) == HOSPITALS.len() {
            return view;
        }
        assert!(Instant::now() < deadline, "round {round} never got every update: {view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hospital_clients_train_a_shared_model_through_the_api() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    create_admin(&data_dir, "fl_admin");
    let served = serve(&data_dir, free_port(), free_port(), &format!("fl-{}", uuid::Uuid::new_v4().simple())).await;
    let api = served.api.clone();
    let admin = accounts::sign_in(&api.http, &api.base, "fl_admin").await;
    let researcher = open(&api, &admin, "fl_researcher", "researcher").await;
    let other_researcher = open(&api, &admin, "fl_other", "researcher").await;
    let mut tokens = Vec::new();
    for code in HOSPITALS {
        tokens.push(open(&api, &admin, code, "hospital").await);
    }

    // Each hospital's rows: a third of the training rows each; every fifth row is held out.
    let data = Dataset::breast_cancer();
    let train: Vec<usize> = (0..data.len()).filter(|i| i % 5 != 0).collect();
    let mut files = Vec::new();
    for (h, chunk) in train.chunks(train.len().div_ceil(3)).enumerate() {
        let path = root.path().join(format!("hospital-{h}.csv"));
        std::fs::write(&path, csv(&data.select(chunk))).unwrap();
        files.push(path);
    }

    let spec = json!({
        "name": "breast cancer across three hospitals",
        "model": {"kind": {"kind": "logistic_regression"}, "precision": "f64", "features": data.features, "label": "benign"},
        "hospitals": HOSPITALS, "strategy": {"name": "fedavg"}, "rounds": ROUNDS, "local_steps": 5,
        "learning_rate": 0.5, "min_participants": 3, "round_deadline_secs": 600
    });
    let (status, created) = api.post("/v1/federated/tasks", Some(&researcher), &json!({"spec": spec})).await;
    assert_eq!(status, 201, "{created}");
    let task = created["task_id"].as_str().unwrap().to_owned();
    // A hospital's account coordinates nothing; a researcher submits nothing.
    let (status, refused) = api.post(&format!("/v1/federated/tasks/{task}/start"), Some(&tokens[0]), &json!({})).await;
    assert_eq!((status, refused["code"].as_str()), (403, Some("role-not-permitted")), "{refused}");
    // Each task has one coordinator: the researcher who created it.
    let (status, refused) = api.post(&format!("/v1/federated/tasks/{task}/start"), Some(&other_researcher), &json!({})).await;
    assert_eq!((status, refused["code"].as_str()), (403, Some("not-task-coordinator")), "{refused}");
    let (status, started) = api.post(&format!("/v1/federated/tasks/{task}/start"), Some(&researcher), &json!({})).await;
    assert_eq!(status, 200, "{started}");

    let clients: Vec<_> = HOSPITALS
        .iter()
        .zip(&files)
        .zip(&tokens)
        .map(|((code, file), token)| {
            Command::new(env!("CARGO_BIN_EXE_emr"))
                .args(["fl", "client", "--url", &api.base, "--task", &task, "--hospital", code, "--data"])
                .arg(file)
                .env("EMR_ACCESS_TOKEN", token)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();

    for round in 1..=ROUNDS {
        let (status, opened) = api.post(&format!("/v1/federated/tasks/{task}/rounds"), Some(&researcher), &json!({})).await;
        assert_eq!(status, 201, "{opened}");
        assert_eq!(opened["round"], json!(round));
        until_updates(&api, &researcher, &task, round).await;
        if round == 1 {
            let update = json!({"parameters": vec![0.0; 31], "samples": 10});
            let (status, twice) = api.post(&format!("/v1/federated/tasks/{task}/rounds/1/updates"), Some(&tokens[1]), &update).await;
            assert_eq!((status, twice["code"].as_str()), (409, Some("update-submitted")), "{twice}");
            let (status, not_hospital) =
                api.post(&format!("/v1/federated/tasks/{task}/rounds/1/updates"), Some(&researcher), &update).await;
            assert_eq!(status, 403, "{not_hospital}");
        }
        let path = format!("/v1/federated/tasks/{task}/rounds/{round}/aggregation");
        let (status, aggregated) = api.post(&path, Some(&researcher), &json!({})).await;
        assert_eq!(status, 201, "{aggregated}");
        assert_eq!(aggregated["rounds_aggregated"], json!(round));
    }
    let (status, completed) = api.post(&format!("/v1/federated/tasks/{task}/completion"), Some(&researcher), &json!({})).await;
    assert_eq!((status, completed["status"].as_str()), (200, Some("completed")), "{completed}");

    for (client, code) in clients.into_iter().zip(HOSPITALS) {
        let output = client.wait_with_output().unwrap();
        assert!(output.status.success(), "{code}'s client failed");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["status"], json!("completed"));
        assert_eq!(report["rounds_submitted"], json!([1, 2, 3]), "{code}");
    }

    // The shared model is a good one on the held-out rows (standardised as a whole here).
    let (status, model) = api.get(&format!("/v1/federated/tasks/{task}/model"), &researcher).await;
    assert_eq!((status, model["version"].as_u64()), (200, Some(u64::from(ROUNDS))), "{model}");
    let parameters: Vec<f64> = serde_json::from_value(model["parameters"].clone()).unwrap();
    let mut test = data.select(&(0..data.len()).filter(|i| i % 5 == 0).collect::<Vec<_>>());
    test.standardize(&Scaler::from_moments(&test.moments()));
    let probabilities: Vec<f64> = test
        .rows
        .iter()
        .map(|row| 1.0 / (1.0 + (-(row.iter().zip(&parameters).map(|(x, w)| x * w).sum::<f64>() + parameters[30])).exp()))
        .collect();
    assert!(accuracy(&probabilities, &test.labels) > 0.9);
}
