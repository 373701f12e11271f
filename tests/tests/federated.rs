//! Federated learning through the event log, on JetStream and the embedded store:
//! a task's every step is an event, rows never reach the coordinator, secure
//! aggregation hides each update and survives a dropout, a Byzantine hospital
//! ruins FedAvg but not the median, and a round past the ε budget is refused.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use emr_domain::DomainServices;
use emr_domain::actor::{Actor, Role};
use emr_domain::federated::{DifferentialPrivacy, DpMechanism, ModelKind, ModelSpec, Precision, Strategy, TaskSpec};
use emr_domain::ids::{HospitalId, TaskId, UserId};
use emr_domain::metadata::CommandContext;
use emr_eventstore::EventStorePorts;
use emr_federated::simulate::{Report, Simulation, run_federated, run_secure_round};
use emr_federated::{Coordinator, DirectoryModelStore, Hospital, ModelStore, Update, Vector};
use emr_learning::data::{Dataset, Scaler};
use emr_learning::strategy::{ClientModel, aggregate};
use emr_tests::backends::{self, TestBackend};
use serde_json::Value;

struct Federation {
    backend: TestBackend,
    models_dir: tempfile::TempDir,
    coordinator: Coordinator,
}

impl Federation {
    /// The coordinator's model store, opened again to read what it keeps.
    async fn models(&self) -> DirectoryModelStore {
        DirectoryModelStore::open(self.models_dir.path(), self.backend.backend.kek.as_ref()).await.unwrap()
    }
}

async fn federation(backend: TestBackend) -> Federation {
    let models_dir = tempfile::tempdir().unwrap();
    let models = DirectoryModelStore::open(models_dir.path(), backend.backend.kek.as_ref()).await.unwrap();
    let coordinator = Coordinator::new(&backend.backend, Arc::new(models), DomainServices::default()).with_noise_seed(7);
    Federation { backend, models_dir, coordinator }
}

/// Every event in the log, as (type, payload JSON).
async fn events(ports: &EventStorePorts) -> Vec<(String, Value)> {
    let mut all = Vec::new();
    let mut from = 1;
    loop {
        let commits = ports.log.read_from(from, 1000).await.unwrap();
        let Some(last) = commits.last() else { return all };
        from = last.position + 1;
        for commit in commits {
            let record: Value = serde_json::from_slice(&commit.payload).unwrap();
            for event in record["events"].as_array().cloned().unwrap_or_default() {
                all.push((event["event_type"].as_str().unwrap_or_default().to_owned(), event));
            }
        }
    }
}

fn count(events: &[(String, Value)], kind: &str) -> usize {
    events.iter().filter(|(t, _)| t == kind).count()
}

fn short(rounds: u32) -> Simulation {
    Simulation { rounds, ..Simulation::reference(3) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_runs_every_step_as_an_event_and_gives_the_same_figures_on_either_log() {
    let mut reports: Vec<Report> = Vec::new();
    for backend in [backends::jetstream().await, backends::sqlite().await] {
        let federation = federation(backend).await;
        let report = run_federated(&federation.coordinator, &short(8)).await.unwrap();
        let log = events(&federation.backend.backend).await;
        assert_eq!(count(&log, "FederatedTaskCreated"), 1);
        assert_eq!(count(&log, "FederatedRoundOpened"), 8);
        assert_eq!(count(&log, "FederatedUpdateSubmitted"), 24);
        assert_eq!(count(&log, "FederatedRoundAggregated"), 8);
        assert_eq!(count(&log, "FederatedTaskCompleted"), 1);
        // Each round starts from the model the previous one recorded.
        let aggregated: Vec<&Value> = log.iter().filter(|(t, _)| t == "FederatedRoundAggregated").map(|(_, e)| e).collect();
        let opened: Vec<&Value> = log.iter().filter(|(t, _)| t == "FederatedRoundOpened").map(|(_, e)| e).collect();
        for (previous, next) in aggregated.iter().zip(opened.iter().skip(1)) {
            assert_eq!(previous["payload"]["data"]["model"], next["payload"]["data"]["model"]);
        }
        reports.push(report);
    }
    assert_eq!(reports[0], reports[1], "the figures do not depend on the log");
    assert!(reports[0].rounds.last().unwrap().test_accuracy > 0.93);
}

/// Every non-integer number in a JSON value.
fn fractions(value: &Value, into: &mut Vec<f64>) {
    match value {
        Value::Number(n) => {
            if let Some(x) = n.as_f64().filter(|x| x.fract() != 0.0) {
                into.push(x);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| fractions(v, into)),
        Value::Object(map) => map.values().for_each(|v| fractions(v, into)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_feature_value_of_any_row_reaches_what_the_coordinator_receives_or_stores() {
    let federation = federation(backends::sqlite().await).await;
    run_federated(&federation.coordinator, &short(5)).await.unwrap();

    // Every feature value, raw and as the hospitals standardised it.
    let data = Dataset::breast_cancer();
    let mut train = data.select(&(0..data.len()).filter(|i| i % 5 != 0).collect::<Vec<_>>());
    let mut secrets: HashSet<u64> = data.rows.iter().flatten().filter(|x| x.fract() != 0.0).map(|x| x.to_bits()).collect();
    train.standardize(&Scaler::from_moments(&train.moments()));
    secrets.extend(train.rows.iter().flatten().map(|x| x.to_bits()));
    assert!(secrets.len() > 20_000);

    let mut numbers = Vec::new();
    for (_, event) in events(&federation.backend.backend).await {
        fractions(&event, &mut numbers);
    }
    assert!(!numbers.is_empty());
    assert!(numbers.iter().all(|x| !secrets.contains(&x.to_bits())), "an event carries a feature value");

    let mut stored_words = 0;
    let stored = federation.models().await;
    for digest in stored.digests().await.unwrap() {
        let Vector::Plain(values) = stored.get(&digest).await.unwrap() else { panic!("plain task") };
        stored_words += values.len();
        assert!(values.iter().all(|x| !secrets.contains(&x.to_bits())), "a stored vector holds a feature value");
    }
    // The initial model, one model per hospital and round, and each round's aggregate.
    assert!(stored_words >= 31 * (1 + 3 * 5 + 5) - 31, "{stored_words}");
}

fn hospital(code: &str, rows: std::ops::Range<usize>, scaler: &Scaler) -> Hospital {
    let mut data = Dataset::breast_cancer().select(&rows.collect::<Vec<_>>());
    data.standardize(scaler);
    Hospital::new(HospitalId::parse(code).unwrap(), data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_aggregation_keeps_every_update_masked_and_sums_the_survivors_after_a_dropout() {
    let federation = federation(backends::jetstream().await).await;
    let all = Dataset::breast_cancer();
    let scaler = Scaler::from_moments(&all.moments());
    let hospitals: Vec<Hospital> = [(0..140), (140..280), (280..420), (420..569)]
        .into_iter()
        .enumerate()
        .map(|(i, rows)| hospital(&format!("HOSP-{}", i + 1), rows, &scaler))
        .collect();
    let spec = TaskSpec {
        name: "secure".into(),
        model: ModelSpec {
            kind: ModelKind::LogisticRegression,
            precision: Precision::F64,
            features: all.features.clone(),
            label: "benign".into(),
        },
        hospitals: hospitals.iter().map(|h| h.id().clone()).collect(),
        strategy: Strategy::FedAvg,
        rounds: 1,
        local_steps: 5,
        learning_rate: 0.5,
        min_participants: 3,
        round_deadline_secs: 600,
        privacy: None,
        secure_aggregation: true,
    };
    let actor = Actor::new(UserId::new(), Role::Researcher);
    let task = TaskId::new();
    let coordinator = &federation.coordinator;
    coordinator.create(&CommandContext::new(actor), task, spec.clone(), vec![0.0; 31]).await.unwrap();
    coordinator.start(&CommandContext::new(actor), task).await.unwrap();
    coordinator.open_round(&CommandContext::new(actor), task).await.unwrap();
    let global = coordinator.global_model(task).await.unwrap();

    // All four exchange keys and shares through the task (threshold 3); hospital 4
    // goes silent after the others masked against it.
    let mut trained = Vec::new();
    let mut contributions = Vec::new();
    for h in &hospitals {
        let t = h.train(&spec, &global, 0).unwrap();
        let contribution = Hospital::secure_contribution(&spec, &global, &t);
        contributions.push((h.id().clone(), Update { vector: Vector::Plain(contribution), samples: t.samples, metrics: None }));
        trained.push(t);
    }
    let vanished: BTreeSet<HospitalId> = [hospitals[3].id().clone()].into();
    run_secure_round(coordinator, actor, task, 1, contributions.clone(), &vanished).await.unwrap();

    // What the coordinator stored for each update is the masked vector, nothing like the contribution.
    let state = coordinator.task(task).await.unwrap();
    let stored = federation.models().await;
    let mut checked = 0;
    for (hospital, receipt) in state.open_updates() {
        let Vector::Masked(words) = stored.get(&receipt.sha256).await.unwrap() else { panic!("a secure update is stored masked") };
        let Some((_, Update { vector: Vector::Plain(contribution), .. })) = contributions.iter().find(|(h, _)| h == hospital) else {
            panic!("{hospital} contributed nothing")
        };
        let decoded: Vec<f64> = words.iter().map(|&w| w as i64 as f64 / (1u64 << 24) as f64).collect();
        let near = decoded.iter().zip(contribution).filter(|(d, c)| (*d - *c).abs() < 1e3).count();
        assert!(near <= 1, "{hospital}: {near} of 31 stored values are near its contribution");
        checked += 1;
    }
    assert_eq!(checked, 3);
    let next = coordinator.aggregate(&CommandContext::new(actor), task, 1, |_| None).await.unwrap();

    let plain = aggregate(
        &Strategy::FedAvg,
        &trained[..3].iter().map(|t| ClientModel { parameters: t.parameters.clone(), samples: t.samples }).collect::<Vec<_>>(),
    )
    .unwrap();
    for (s, p) in next.iter().zip(&plain) {
        assert!((s - p).abs() < 1e-6, "secure {s} vs plain {p}");
    }
    let log = events(&federation.backend.backend).await;
    let participants: Vec<&Value> =
        log.iter().filter(|(t, _)| t == "FederatedRoundAggregated").map(|(_, e)| &e["payload"]["data"]["participants"]).collect();
    assert_eq!(participants, vec![&serde_json::json!(["HOSP-1", "HOSP-2", "HOSP-3"])]);
    // Every step of the protocol is in the log: 4 keys, 4 sharings, 3 reveals, 3 step changes.
    assert_eq!(count(&log, "FederatedSecureMessageSubmitted"), 11);
    assert_eq!(count(&log, "FederatedSecureRoundAdvanced"), 3);
    // The log carries sealed and revealed shares, never a hospital's vector.
    let revealed: Vec<&Value> = log
        .iter()
        .filter(|(t, e)| t == "FederatedSecureMessageSubmitted" && e["payload"]["data"]["message"]["step"] == "reveal")
        .flat_map(|(_, e)| e["payload"]["data"]["message"]["shares"].as_array().unwrap())
        .collect();
    assert!(revealed.iter().all(|r| (r["owner"] == "HOSP-4") == (r["secret"] == "mask_key")), "{revealed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byzantine_hospital_ruins_fedavg_but_not_the_median() {
    let accuracy = |strategy: Strategy| async move {
        let federation = federation(backends::sqlite().await).await;
        let simulation = Simulation { strategy, byzantine: Some(5), rounds: 20, ..Simulation::reference(5) };
        run_federated(&federation.coordinator, &simulation).await.unwrap().rounds.last().unwrap().test_accuracy
    };
    let fedavg = accuracy(Strategy::FedAvg).await;
    let median = accuracy(Strategy::Median).await;
    assert!(fedavg < 0.5, "FedAvg under attack: {fedavg}");
    assert!(median > 0.93, "median under attack: {median}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_that_would_pass_the_epsilon_budget_is_refused_with_the_reason_in_the_log() {
    let federation = federation(backends::jetstream().await).await;
    let privacy = DifferentialPrivacy {
        mechanism: DpMechanism::DpSgd { clip_norm: 1.0, noise_multiplier: 1.0, sample_rate: 0.1 },
        delta: 1e-5,
        epsilon_budget: 4.0,
    };
    let simulation = Simulation { privacy: Some(privacy), rounds: 50, ..Simulation::reference(3) };
    let report = run_federated(&federation.coordinator, &simulation).await.unwrap();
    let stopped = report.stopped.clone().unwrap_or_else(|| panic!("the budget stops the task: {report:?}"));
    let spent: Vec<f64> = report.rounds.iter().map(|r| r.epsilon.unwrap()).collect();
    assert!(spent.windows(2).all(|w| w[0] < w[1]) && *spent.last().unwrap() <= 4.0, "{spent:?}");
    let log = events(&federation.backend.backend).await;
    let refused: Vec<&Value> = log.iter().filter(|(t, _)| t == "FederatedRoundRefused").map(|(_, e)| &e["payload"]["data"]).collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["round"], serde_json::json!(report.rounds.len() + 1));
    assert!(refused[0]["epsilon_would_be"].as_f64().unwrap() > 4.0, "{stopped}");
    assert_eq!(count(&log, "FederatedTaskCompleted"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_read_model_shows_each_round_its_epsilon_and_each_hospitals_figures_on_mariadb_and_sqlite() {
    use emr_projections::queries::{federated_rounds, federated_tasks};
    use emr_projections::{FederatedProjection, Projector};
    use emr_tests::read_models::{Store, TestReadModels};

    let federation = federation(backends::jetstream().await).await;
    let privacy = DifferentialPrivacy {
        mechanism: DpMechanism::DpSgd { clip_norm: 1.0, noise_multiplier: 1.0, sample_rate: 0.1 },
        delta: 1e-5,
        epsilon_budget: 5.0,
    };
    let report = run_federated(&federation.coordinator, &Simulation { privacy: Some(privacy), rounds: 50, ..Simulation::reference(3) })
        .await
        .unwrap();
    let aggregated = report.rounds.len();
    assert!(report.stopped.is_some() && aggregated > 1);
    let log = federation.backend.backend.log.clone();
    for store in [Store::MariaDb, Store::Sqlite] {
        let models = TestReadModels::fresh(store).await;
        Projector::new(FederatedProjection, models.db.clone(), log.clone())
            .with_batch_size(7)
            .catch_up(log.head().await.unwrap())
            .await
            .unwrap();
        let tasks = federated_tasks(&models.db, None, 10).await.unwrap();
        assert_eq!(tasks.len(), 1, "{store:?}");
        let task = &tasks[0];
        assert_eq!(
            (task.status.as_str(), task.rounds_aggregated, task.open_round),
            ("budget_exhausted", aggregated as u64, None),
            "{store:?}"
        );
        assert_eq!(task.epsilon_spent, report.rounds.last().unwrap().epsilon);
        assert_eq!(task.epsilon_budget, Some(5.0));
        let (rounds, updates) = federated_rounds(&models.db, &task.task_id).await.unwrap();
        assert_eq!(rounds.len(), aggregated + 1, "the refused round is listed too");
        for (row, figures) in rounds.iter().zip(&report.rounds) {
            assert_eq!((row.status.as_str(), row.updates), ("aggregated", 3));
            assert_eq!((row.epsilon, row.accuracy, row.auc), (figures.epsilon, Some(figures.test_accuracy), Some(figures.test_auc)));
            assert_eq!(row.loss, Some(figures.train_loss));
        }
        let refused = rounds.last().unwrap();
        assert_eq!(refused.status, "refused");
        assert!(refused.epsilon.unwrap() > 5.0);
        assert_eq!(updates.len(), 3 * aggregated);
        assert!(updates.iter().all(|u| u.samples > 100 && u.accuracy.is_some_and(|a| a > 0.5)), "{store:?}");
        models.remove().await;
    }
}
