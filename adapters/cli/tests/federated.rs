//! Federated learning end to end: `emr serve` on the embedded default, three
//! `emr fl client` processes (one per hospital, each with its own CSV of rows)
//! and a researcher driving the rounds, all through the HTTP API — in the clear,
//! and under secure aggregation with its key exchange relayed by the server.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use emr_federated::{DirectoryModelStore, ModelStore, Vector};
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

/// Polls `path` until `ready` holds for what it answers.
async fn until(api: &ApiClient, token: &str, path: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, view) = api.get(path, token).await;
        assert_eq!(status, 200, "{view}");
        if ready(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "{path} never got {what}: {view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn until_updates(api: &ApiClient, token: &str, task: &str, round: u32) -> Value {
    let every_update =
        |view: &Value| view["open_round"] == json!(round) && view["updates_received"].as_array().map_or(0, Vec::len) == HOSPITALS.len();
    until(api, token, &format!("/v1/federated/tasks/{task}"), "every update", every_update).await
}

/// Polls the task's secure round until `ready` holds for its view.
async fn until_secure(api: &ApiClient, token: &str, task: &str, round: u32, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    until(api, token, &format!("/v1/federated/tasks/{task}/rounds/{round}/secure"), what, ready).await
}

fn all_hospitals(field: &'static str) -> impl Fn(&Value) -> bool {
    move |view| view[field].as_object().map_or(0, |o| o.len()) == HOSPITALS.len()
}

/// A served node, a researcher, one service account and one CSV of rows per
/// hospital, and a started task; the clients not yet running.
struct Federation {
    root: tempfile::TempDir,
    served: support::Served,
    researcher: String,
    tokens: Vec<String>,
    files: Vec<std::path::PathBuf>,
    task: String,
    data: Dataset,
}

async fn federation(secure_aggregation: bool) -> Federation {
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
        "learning_rate": 0.5, "min_participants": 3, "round_deadline_secs": 600, "secure_aggregation": secure_aggregation
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
    Federation { root, served, researcher, tokens, files, task, data }
}

impl Federation {
    fn clients(&self) -> Vec<std::process::Child> {
        HOSPITALS
            .iter()
            .zip(&self.files)
            .zip(&self.tokens)
            .map(|((code, file), token)| {
                Command::new(env!("CARGO_BIN_EXE_emr"))
                    .args(["fl", "client", "--url", &self.served.api.base, "--task", &self.task, "--hospital", code, "--data"])
                    .arg(file)
                    .env("EMR_ACCESS_TOKEN", token)
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .unwrap()
            })
            .collect()
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let (status, answer) = self.served.api.post(&format!("/v1/federated/tasks/{}{path}", self.task), Some(token), body).await;
        (status, answer)
    }

    /// Completes the task, checks every client submitted every round, and checks the
    /// shared model on the held-out rows (standardised as a whole here).
    async fn finish(&self, clients: Vec<std::process::Child>) {
        let (status, completed) = self.post("/completion", &self.researcher, &json!({})).await;
        assert_eq!((status, completed["status"].as_str()), (200, Some("completed")), "{completed}");
        for (client, code) in clients.into_iter().zip(HOSPITALS) {
            let output = client.wait_with_output().unwrap();
            assert!(output.status.success(), "{code}'s client failed");
            let report: Value = serde_json::from_slice(&output.stdout).unwrap();
            assert_eq!(report["status"], json!("completed"));
            assert_eq!(report["rounds_submitted"], json!([1, 2, 3]), "{code}");
        }
        let (status, model) = self.served.api.get(&format!("/v1/federated/tasks/{}/model", self.task), &self.researcher).await;
        assert_eq!((status, model["version"].as_u64()), (200, Some(u64::from(ROUNDS))), "{model}");
        let parameters: Vec<f64> = serde_json::from_value(model["parameters"].clone()).unwrap();
        let data = &self.data;
        let mut test = data.select(&(0..data.len()).filter(|i| i % 5 == 0).collect::<Vec<_>>());
        test.standardize(&Scaler::from_moments(&test.moments()));
        let probabilities: Vec<f64> = test
            .rows
            .iter()
            .map(|row| 1.0 / (1.0 + (-(row.iter().zip(&parameters).map(|(x, w)| x * w).sum::<f64>() + parameters[30])).exp()))
            .collect();
        assert!(accuracy(&probabilities, &test.labels) > 0.9);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hospital_clients_train_a_shared_model_through_the_api() {
    let federation = federation(false).await;
    let (api, researcher, tokens, task) = (&federation.served.api, &federation.researcher, &federation.tokens, &federation.task);
    let clients = federation.clients();
    for round in 1..=ROUNDS {
        let (status, opened) = federation.post("/rounds", researcher, &json!({})).await;
        assert_eq!(status, 201, "{opened}");
        assert_eq!(opened["round"], json!(round));
        until_updates(api, researcher, task, round).await;
        if round == 1 {
            let update = json!({"parameters": vec![0.0; 31], "samples": 10});
            let (status, twice) = federation.post("/rounds/1/updates", &tokens[1], &update).await;
            assert_eq!((status, twice["code"].as_str()), (409, Some("update-submitted")), "{twice}");
            let (status, not_hospital) = federation.post("/rounds/1/updates", researcher, &update).await;
            assert_eq!(status, 403, "{not_hospital}");
        }
        let (status, aggregated) = federation.post(&format!("/rounds/{round}/aggregation"), researcher, &json!({})).await;
        assert_eq!(status, 201, "{aggregated}");
        assert_eq!(aggregated["rounds_aggregated"], json!(round));
    }
    federation.finish(clients).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hospital_clients_aggregate_securely_through_the_api_and_the_server_keeps_only_masked_updates() {
    let federation = federation(true).await;
    let (api, researcher, tokens, task) = (&federation.served.api, &federation.researcher, &federation.tokens, &federation.task);
    let clients = federation.clients();
    for round in 1..=ROUNDS {
        let (status, opened) = federation.post("/rounds", researcher, &json!({})).await;
        assert_eq!(status, 201, "{opened}");
        until_secure(api, researcher, task, round, "every hospital's keys", all_hospitals("keys")).await;
        let advance = format!("/rounds/{round}/secure/advance");
        let (status, sharing) = federation.post(&advance, researcher, &json!({})).await;
        assert_eq!((status, sharing["step"].as_str(), sharing["threshold"].as_u64()), (200, Some("sharing"), Some(2)), "{sharing}");
        let shared = until_secure(api, &tokens[0], task, round, "every hospital's shares", all_hospitals("shares")).await;
        // A hospital sees only the sealed shares addressed to it.
        for (from, to) in shared["shares"].as_object().unwrap() {
            assert_eq!(to.as_object().unwrap().keys().collect::<Vec<_>>(), vec!["HOSP-A"], "shares from {from}");
        }
        let (status, masking) = federation.post(&advance, researcher, &json!({})).await;
        assert_eq!((status, masking["step"].as_str()), (200, Some("masking")), "{masking}");
        until_updates(api, researcher, task, round).await;
        if round == 1 {
            // Plain parameters have no place in a secure round.
            let plain = json!({"parameters": vec![0.0; 31], "samples": 10});
            let (status, refused) = federation.post("/rounds/1/updates", &tokens[1], &plain).await;
            assert_eq!((status, refused["code"].as_str()), (422, Some("invalid-update")), "{refused}");
            // Nor is aggregation before the survivors reveal.
            let (status, early) = federation.post("/rounds/1/aggregation", researcher, &json!({})).await;
            assert_eq!((status, early["code"].as_str()), (409, Some("secure-step")), "{early}");
        }
        let (status, unmasking) = federation.post(&advance, researcher, &json!({})).await;
        assert_eq!((status, unmasking["step"].as_str()), (200, Some("unmasking")), "{unmasking}");
        until_secure(api, researcher, task, round, "every survivor's reveal", all_hospitals("reveals")).await;
        let (status, aggregated) = federation.post(&format!("/rounds/{round}/aggregation"), researcher, &json!({})).await;
        assert_eq!((status, aggregated["rounds_aggregated"].as_u64()), (201, Some(u64::from(round))), "{aggregated}");
    }
    federation.finish(clients).await;

    // The model store (sealed at rest under the node's keyring) holds the global
    // models and, of the updates, only masked vectors.
    let data_dir = federation.root.path().join("data");
    let kek = emr_keyring::Keyring::load_or_create(&data_dir.join("keyring")).unwrap();
    let models = DirectoryModelStore::open(data_dir.join("models"), &kek).await.unwrap();
    let (mut plain, mut masked) = (0, 0);
    for digest in models.digests().await.unwrap() {
        match models.get(&digest).await.unwrap() {
            Vector::Plain(_) => plain += 1,
            Vector::Masked(_) => masked += 1,
        }
    }
    assert_eq!((plain, masked), (ROUNDS + 1, ROUNDS * 3), "global models in the clear, updates masked");
}
