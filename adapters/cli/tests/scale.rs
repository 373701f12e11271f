//! Horizontal scale on one machine, the way deploy/k8s runs it: `emr serve`
//! processes split by role (`serve.roles`) against one NATS JetStream and one
//! MariaDB. Two API processes take commands for the same patients and records
//! (optimistic concurrency across processes), two projector processes share the
//! folding (the checkpoint lock and one durable consumer per projection), one
//! anchor process signs tree heads. What they build equals what one process
//! folding the same log builds.

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use emr_tests::accounts::PASSWORD;
use emr_tests::api_client::{ApiClient, Method, patient_registration, record_creation};
use emr_tests::mariadb::TestDatabase;
use emr_tests::nats_server::{NatsServer, free_port};
use emr_tests::read_models::{Store, TestReadModels, assert_same_tables, fold_all};
use emr_tests::report;
use serde_json::json;
use support::{Served, emr, physician, started, until_fully_anchored_with};

const KEYRING: &str = "scale-kek:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// One deployment's shared settings: the same NATS, database, keyring, token
/// keys and session namespace for every process, each with its own data dir.
struct Deployment {
    nats: NatsServer,
    database_url: String,
    root: tempfile::TempDir,
    sessions: String,
}

impl Deployment {
    fn command(&self, name: &str) -> Command {
        let mut command = emr(&self.root.path().join(name));
        command
            .env("EMR__STORE__BACKEND", "nats")
            .env("EMR__NATS__URL", self.nats.url())
            .env("EMR__KEYS__KEYRING", KEYRING)
            .env("EMR__AUTH__KEYS_DIR", self.root.path().join("auth-keys"))
            .env("EMR__AUTH__REDIS_URL", std::env::var("EMR_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()))
            .env("EMR__AUTH__REDIS_NAMESPACE", &self.sessions)
            .env("EMR__READ_MODELS__MYSQL_URL", &self.database_url)
            .env("EMR__AUDIT__BATCH_COMMITS", "64");
        command
    }

    /// `emr serve` running `roles` (comma separated), ready on its own port.
    async fn serve(&self, name: &str, roles: &str) -> Served {
        let http = free_port();
        let mut command = self.command(name);
        command
            .arg("serve")
            .env("EMR__SERVE__ROLES", roles)
            .env("EMR__HTTP__LISTEN", format!("127.0.0.1:{http}"))
            .env("EMR__GRPC__LISTEN", format!("127.0.0.1:{}", free_port()));
        started(command, http).await
    }
}

/// The sum of a family's samples in a process's `/metrics`.
async fn metric_sum(api: &ApiClient, family: &str) -> f64 {
    let text = api.http.get(format!("{}/metrics", api.base)).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|line| line.strip_prefix(family).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_and_two_projector_processes_share_the_work_and_build_what_one_process_builds() {
    let database = TestDatabase::fresh().await;
    let deployment = Deployment {
        nats: NatsServer::start(),
        database_url: database.url(),
        root: tempfile::tempdir().unwrap(),
        sessions: format!("scale-{}", uuid::Uuid::new_v4().simple()),
    };
    let first_api = deployment.serve("api-1", "api").await;
    let second_api = deployment.serve("api-2", "api").await;
    let projectors = [deployment.serve("projector-1", "projector").await, deployment.serve("projector-2", "projector").await];
    let anchor = deployment.serve("anchor", "anchor").await;
    let ready: serde_json::Value =
        projectors[0].api.http.get(format!("{}/ready", projectors[0].api.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["sessions"], "not served here", "a projector process answers its probes without the API: {ready}");
    let (status, _) = projectors[0].api.try_send(Method::GET, "/v1/read/dashboard", None, None, None).await.unwrap();
    assert_eq!(status, 404, "a projector process serves no API");

    let mut create_admin = deployment.command("admin");
    create_admin.args(["accounts", "create-admin", "--username", "scale_admin"]).env("EMR_ADMIN_PASSWORD", PASSWORD);
    assert!(create_admin.status().unwrap().success(), "emr accounts create-admin failed");
    let (doctor, token) = physician(&first_api.api, "scale_admin", "scale_doctor").await;
    let (apis, token) = (Arc::new([first_api.api.clone(), second_api.api.clone()]), Arc::new(token));

    // Six clients, alternating between the two API processes, on a handful of
    // patients and records; every third command amends one shared record, so
    // writers on different processes contend for it, and a 409 is retried with
    // the same Idempotency-Key.
    let mut patients = Vec::new();
    for p in 0..4 {
        let (receipt, _) = apis[p % 2]
            .until_acknowledged(&token, "/v1/patients", uuid::Uuid::now_v7(), &patient_registration(&format!("Scale {p}")))
            .await;
        patients.push(receipt["aggregate_id"].as_str().unwrap().to_owned());
    }
    let (shared, _) =
        apis[0].until_acknowledged(&token, "/v1/records", uuid::Uuid::now_v7(), &record_creation(&patients[0], &doctor, "Shared")).await;
    let shared = Arc::new(shared["aggregate_id"].as_str().unwrap().to_owned());
    let patients = Arc::new(patients);
    let mut clients = Vec::new();
    for client in 0..6usize {
        let (apis, token, patients, doctor, shared) = (apis.clone(), token.clone(), patients.clone(), doctor.clone(), shared.clone());
        clients.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut record = None::<String>;
            for i in 0..30usize {
                let api = &apis[(client + i) % 2];
                let key = uuid::Uuid::now_v7();
                let amended = match (&record, i % 3) {
                    (Some(own), 1) => Some(own.as_str()),
                    (_, 2) => Some(shared.as_str()),
                    _ => None,
                };
                let (path, body) = match amended {
                    Some(record) => (
                        format!("/v1/records/{record}/amendments"),
                        json!({"content": {"title": format!("Amended {client}-{i}"), "description": null, "diagnosis": null,
                                           "treatment": null, "medications": []}, "reason": "follow-up"}),
                    ),
                    _ => (
                        "/v1/records".to_owned(),
                        record_creation(&patients[(client + i) % patients.len()], &doctor, &format!("Visit {i}")),
                    ),
                };
                let (receipt, _) = api.until_acknowledged(&token, &path, key, &body).await;
                if path == "/v1/records" {
                    record = receipt["aggregate_id"].as_str().map(str::to_owned);
                }
                acknowledged.push((key.to_string(), receipt["position"].as_u64().unwrap()));
            }
            acknowledged
        }));
    }
    let mut acknowledged = Vec::new();
    for client in clients {
        acknowledged.extend(client.await.unwrap());
    }

    let backend = emr_nats::NatsBackend::connect(&emr_nats::NatsConfig { url: deployment.nats.url(), ..Default::default() }).await.unwrap();
    let log: Arc<dyn emr_eventstore::EventLog> = backend.log.clone();
    let stored = report::commits_by_command(&log).await;
    report::assert_each_stored_once(&stored, acknowledged.iter().map(|(key, position)| (key, *position)));
    let head = log.head().await.unwrap();

    // Both projector processes folded: the work was shared, not duplicated.
    let deadline = Instant::now() + Duration::from_secs(60);
    let models = TestReadModels::on_mariadb(database);
    loop {
        let lags = emr_projections::lags(&models.db, log.clone()).await.unwrap();
        if lags.iter().all(|lag| lag.position >= head) {
            break;
        }
        assert!(Instant::now() < deadline, "the projectors never caught up: {lags:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let shares = [
        metric_sum(&projectors[0].api, "emr_projection_commits_total").await,
        metric_sum(&projectors[1].api, "emr_projection_commits_total").await,
    ];
    let checkpoints = emr_projections::all().len() as f64;
    assert!(shares.iter().all(|share| *share > 0.0), "each projector process folded some commits: {shares:?}");
    assert_eq!(shares[0] + shares[1], head as f64 * checkpoints, "together they folded every commit once per projection: {shares:?}");
    let (first, second) = (metric_sum(&first_api.api, "emr_commands_total").await, metric_sum(&second_api.api, "emr_commands_total").await);
    assert!(first > 0.0 && second > 0.0, "both API processes executed commands: {first} and {second}");

    // The shared read models equal one process's fold of the same log.
    let clean = TestReadModels::fresh(Store::MariaDb).await;
    fold_all(&clean.db, &log, 1000).await;
    assert_same_tables(&models.dump_all().await, &clean.dump_all().await, "after two projector processes");

    // The anchor process anchored it all, verifiably.
    let report = until_fully_anchored_with(|| deployment.command("anchor")).await;
    assert_eq!(report["events"], report["anchored_events"]);
    report::record(
        "two-process-scale",
        json!({"commands": acknowledged.len(), "commits": head, "projector_shares": shares, "api_commands": [first, second]}),
    );
    for mut process in [first_api, second_api, anchor].into_iter().chain(projectors) {
        support::kill(&mut process.process, "an emr serve process");
    }
    clean.remove().await;
    models.remove().await;
}
