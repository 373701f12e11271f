use std::collections::BTreeSet;

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;
use crate::ids::{HospitalId, TaskId, UserId};
use crate::values::Sha256Digest;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).single().unwrap_or_default()
}

fn hospital(code: &str) -> HospitalId {
    HospitalId::parse(code).unwrap_or_else(|error| panic!("{error}"))
}

fn digest(byte: u8) -> Sha256Digest {
    Sha256Digest::from_bytes([byte; 32])
}

fn spec(strategy: Strategy) -> TaskSpec {
    TaskSpec {
        name: "breast cancer, three hospitals".into(),
        model: ModelSpec {
            kind: ModelKind::LogisticRegression,
            precision: Precision::F64,
            features: (0..30).map(|i| format!("feature_{i}")).collect(),
            label: "benign".into(),
        },
        hospitals: ["HOSP-A", "HOSP-B", "HOSP-C"].into_iter().map(hospital).collect(),
        strategy,
        rounds: 3,
        local_steps: 5,
        learning_rate: 0.5,
        min_participants: 2,
        round_deadline_secs: 600,
        privacy: None,
        secure_aggregation: false,
    }
}

/// Runs `commands` in order from nothing, applying each decision; returns the state
/// and the first refusal.
fn run(commands: Vec<TaskCommand>, at: DateTime<Utc>) -> (FederatedTask, Vec<TaskEvent>, Option<TaskError>) {
    let mut task = FederatedTask::default();
    let mut all = Vec::new();
    for command in commands {
        match task.decide(command, at) {
            Ok(events) => {
                for event in events {
                    all.push(event.clone());
                    cqrs_es::Aggregate::apply(&mut task, event);
                }
            }
            Err(error) => return (task, all, Some(error)),
        }
    }
    (task, all, None)
}

fn create(spec: TaskSpec) -> TaskCommand {
    TaskCommand::Create { task_id: TaskId::new(), spec, initial_model: digest(0), created_by: UserId::new() }
}

fn started(spec: TaskSpec) -> Vec<TaskCommand> {
    vec![create(spec), TaskCommand::Start { started_by: UserId::new() }]
}

fn update(samples: u64) -> UpdateReceipt {
    UpdateReceipt { samples, sha256: digest(7), blob: None, metrics: Some(ModelMetrics { loss: 0.3, accuracy: 0.9, auc: 0.95 }) }
}

fn submit(round: u32, code: &str) -> TaskCommand {
    TaskCommand::SubmitUpdate { round, hospital: hospital(code), update: update(100) }
}

fn aggregate(round: u32) -> TaskCommand {
    TaskCommand::AggregateRound { round, model: digest(round as u8), metrics: None }
}

#[test]
fn a_task_runs_its_rounds_and_each_aggregate_becomes_the_next_global_model() {
    let mut commands = started(spec(Strategy::FedAvg));
    for round in 1..=3 {
        commands.extend([TaskCommand::OpenRound { round }, submit(round, "HOSP-A"), submit(round, "HOSP-C"), aggregate(round)]);
    }
    commands.push(TaskCommand::Complete);
    let (task, events, refusal) = run(commands, now());
    assert_eq!(refusal, None);
    assert_eq!(task.status(), TaskStatus::Completed);
    assert_eq!((task.rounds_aggregated(), task.model()), (3, Some(digest(3))));
    let opened_from: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            TaskEvent::RoundOpened { model_version, model, .. } => Some((*model_version, *model)),
            _ => None,
        })
        .collect();
    assert_eq!(opened_from, vec![(0, digest(0)), (1, digest(1)), (2, digest(2))]);
    let participants = events.iter().find_map(|e| match e {
        TaskEvent::RoundAggregated { participants, .. } => Some(participants.clone()),
        _ => None,
    });
    assert_eq!(participants, Some(vec![hospital("HOSP-A"), hospital("HOSP-C")]));
}

#[test]
fn only_enrolled_hospitals_submit_once_per_round_before_the_deadline() {
    let base = || {
        let mut commands = started(spec(Strategy::FedAvg));
        commands.push(TaskCommand::OpenRound { round: 1 });
        commands
    };
    let refusal = |extra: Vec<TaskCommand>, at| {
        let mut commands = base();
        commands.extend(extra);
        run(commands, at).2
    };
    assert_eq!(refusal(vec![submit(1, "HOSP-Z")], now()), Some(TaskError::NotEnrolled(hospital("HOSP-Z"))));
    assert_eq!(refusal(vec![submit(1, "HOSP-A"), submit(1, "HOSP-A")], now()), Some(TaskError::AlreadySubmitted(hospital("HOSP-A"))));
    assert_eq!(refusal(vec![submit(2, "HOSP-A")], now()), Some(TaskError::WrongRound { given: 2, expected: 1 }));
    let empty = TaskCommand::SubmitUpdate { round: 1, hospital: hospital("HOSP-A"), update: update(0) };
    assert_eq!(refusal(vec![empty], now()), Some(TaskError::InvalidUpdate));

    let (task, _, _) = run(base(), now());
    let late = now() + Duration::seconds(601);
    assert!(matches!(task.decide(submit(1, "HOSP-A"), late), Err(TaskError::DeadlinePassed(_))));
}

#[test]
fn a_round_is_aggregated_only_with_the_minimum_of_participants() {
    let mut commands = started(spec(Strategy::FedAvg));
    commands.extend([TaskCommand::OpenRound { round: 1 }, submit(1, "HOSP-B"), aggregate(1)]);
    assert_eq!(run(commands, now()).2, Some(TaskError::TooFewUpdates { got: 1, needed: 2 }));
}

#[test]
fn rounds_open_in_order_one_at_a_time_and_never_past_the_last() {
    let mut commands = started(spec(Strategy::FedAvg));
    commands.push(TaskCommand::OpenRound { round: 2 });
    assert_eq!(run(commands, now()).2, Some(TaskError::WrongRound { given: 2, expected: 1 }));
    let mut twice = started(spec(Strategy::FedAvg));
    twice.extend([TaskCommand::OpenRound { round: 1 }, TaskCommand::OpenRound { round: 2 }]);
    assert!(matches!(run(twice, now()).2, Some(TaskError::WrongState { .. })));
    let mut early = started(spec(Strategy::FedAvg));
    early.push(TaskCommand::Complete);
    assert!(matches!(run(early, now()).2, Some(TaskError::WrongState { .. })));
}

fn private(epsilon_budget: f64) -> TaskSpec {
    let mut spec = spec(Strategy::FedAvg);
    spec.rounds = 50;
    spec.privacy = Some(DifferentialPrivacy {
        mechanism: DpMechanism::DpSgd { clip_norm: 1.0, noise_multiplier: 1.1, sample_rate: 0.05 },
        delta: 1e-5,
        epsilon_budget,
    });
    spec
}

#[test]
fn a_round_that_would_pass_the_epsilon_budget_is_refused_with_an_event_saying_why() {
    let budget = 3.0;
    let privacy = private(budget).privacy.unwrap_or_else(|| panic!("private"));
    // The first round that passes the budget, by the accountant.
    let over = (1..=50).find(|&r| privacy.spent_after(r, 5).map(|g| g.epsilon).unwrap_or(0.0) > budget);
    let over = over.unwrap_or_else(|| panic!("a budget of 3.0 is passed within 50 rounds"));
    assert!(over > 1, "the first round fits the budget");

    let mut commands = started(private(budget));
    for round in 1..over {
        commands.extend([TaskCommand::OpenRound { round }, submit(round, "HOSP-A"), submit(round, "HOSP-B"), aggregate(round)]);
    }
    commands.push(TaskCommand::OpenRound { round: over });
    let (task, events, refusal) = run(commands, now());
    assert_eq!(refusal, None);
    let Some(TaskEvent::RoundRefused { round, epsilon_would_be, epsilon_budget }) = events.last().cloned() else {
        panic!("the last event is the refusal: {events:?}")
    };
    assert_eq!((round, epsilon_budget), (over, budget));
    assert!(epsilon_would_be > budget);
    assert!(task.epsilon_spent().is_some_and(|spent| spent <= budget));
    assert_eq!(task.status(), TaskStatus::BudgetExhausted);
    // Asking again is a clear error, not a second event.
    assert!(matches!(task.decide(TaskCommand::OpenRound { round: over }, now()), Err(TaskError::BudgetExhausted { .. })));
}

#[test]
fn the_specification_refuses_what_the_coordinator_cannot_run() {
    let refused = |spec: TaskSpec| run(vec![create(spec)], now()).2;
    let mut secure_median = spec(Strategy::Median);
    secure_median.secure_aggregation = true;
    assert_eq!(refused(secure_median), Some(TaskError::Spec(SpecError::RobustUnderSecureAggregation("median"))));
    let mut secure_krum = spec(Strategy::Krum { byzantine: 0 });
    secure_krum.min_participants = 3;
    secure_krum.secure_aggregation = true;
    assert_eq!(refused(secure_krum), Some(TaskError::Spec(SpecError::RobustUnderSecureAggregation("krum"))));
    let mut secure_fedavg = spec(Strategy::FedAvg);
    secure_fedavg.secure_aggregation = true;
    assert_eq!(refused(secure_fedavg), None);

    assert!(matches!(
        refused(spec(Strategy::Krum { byzantine: 1 })),
        Some(TaskError::Spec(SpecError::TooFewForStrategy { needed: 5, .. }))
    ));
    assert!(matches!(
        refused(spec(Strategy::TrimmedMean { beta: 0.5 })),
        Some(TaskError::Spec(SpecError::OutOfRange { field: "strategy.beta", .. }))
    ));
    let mut no_rate = spec(Strategy::FedAvg);
    no_rate.learning_rate = f64::NAN;
    assert!(matches!(refused(no_rate), Some(TaskError::Spec(SpecError::OutOfRange { field: "learning_rate", .. }))));
    let mut nobody = spec(Strategy::FedAvg);
    nobody.hospitals = BTreeSet::new();
    assert!(matches!(refused(nobody), Some(TaskError::Spec(SpecError::OutOfRange { field: "hospitals", .. }))));
    let mut client_dp_median = private(5.0);
    client_dp_median.strategy = Strategy::Median;
    client_dp_median.privacy = client_dp_median.privacy.map(|mut p| {
        p.mechanism = DpMechanism::ClientLevel { clip_norm: 1.0, noise_multiplier: 1.0, sample_rate: 1.0 };
        p
    });
    assert_eq!(refused(client_dp_median), Some(TaskError::Spec(SpecError::ClientDpWithoutAveraging("median"))));
}

#[test]
fn a_model_counts_the_weights_and_biases_of_every_layer() {
    let mut model = spec(Strategy::FedAvg).model;
    assert_eq!(model.parameter_count(), 31);
    model.kind = ModelKind::Mlp { hidden: vec![16, 8] };
    assert_eq!(model.parameter_count(), 30 * 16 + 16 + 16 * 8 + 8 + 8 + 1);
}

#[test]
fn a_stopped_task_takes_no_more_commands_and_a_stop_needs_a_reason() {
    let mut commands = started(spec(Strategy::FedAvg));
    commands.push(TaskCommand::Cancel { cancelled_by: UserId::new(), reason: " ".into() });
    assert_eq!(run(commands, now()).2, Some(TaskError::Reason));
    let mut commands = started(spec(Strategy::FedAvg));
    commands.extend([TaskCommand::Fail { reason: "round 1 missed its deadline".into() }, TaskCommand::OpenRound { round: 1 }]);
    let (task, _, refusal) = run(commands, now());
    assert_eq!(task.status(), TaskStatus::Failed);
    assert!(matches!(refusal, Some(TaskError::WrongState { status: "failed", .. })));
}

mod secure_aggregation {
    use std::collections::BTreeMap;

    use super::*;
    use crate::federated::secure::{
        Opaque, REVEALED_SHARE_LEN, RevealedShare, SEALED_SHARE_LEN, SecretKind, SecureError, SecureMessage, SecureStep,
    };

    const HOSPITALS: [&str; 3] = ["HOSP-A", "HOSP-B", "HOSP-C"];

    fn secure_spec() -> TaskSpec {
        TaskSpec { secure_aggregation: true, ..spec(Strategy::FedAvg) }
    }

    fn message(round: u32, code: &str, message: SecureMessage) -> TaskCommand {
        TaskCommand::SubmitSecureMessage { round, hospital: hospital(code), message }
    }

    fn keys(code: &str) -> TaskCommand {
        let seed = code.as_bytes()[code.len() - 1];
        message(1, code, SecureMessage::Keys { sealing_key: Opaque::new(vec![seed; 32]), masking_key: Opaque::new(vec![seed + 1; 32]) })
    }

    fn shares(code: &str, to: &[&str]) -> TaskCommand {
        let shares = to.iter().map(|&t| (hospital(t), Opaque::new(vec![1; SEALED_SHARE_LEN]))).collect();
        message(1, code, SecureMessage::Shares { shares })
    }

    fn reveal(code: &str, of: &[(&str, SecretKind)]) -> TaskCommand {
        let shares = of
            .iter()
            .map(|&(owner, secret)| RevealedShare { owner: hospital(owner), secret, share: Opaque::new(vec![2; REVEALED_SHARE_LEN]) })
            .collect();
        message(1, code, SecureMessage::Reveal { shares })
    }

    fn advance() -> TaskCommand {
        TaskCommand::AdvanceSecureRound { round: 1 }
    }

    /// Every hospital advertises and shares; A and B mask, C drops out.
    fn through_masking() -> Vec<TaskCommand> {
        let mut commands = started(secure_spec());
        commands.push(TaskCommand::OpenRound { round: 1 });
        commands.extend(HOSPITALS.map(keys));
        commands.push(advance());
        commands.extend(HOSPITALS.map(|h| shares(h, &HOSPITALS)));
        commands.push(advance());
        commands.extend([submit(1, "HOSP-A"), submit(1, "HOSP-B"), advance()]);
        commands
    }

    #[test]
    fn a_secure_round_steps_from_keys_to_shares_to_masked_updates_to_reveals_before_it_aggregates() {
        let mut commands = through_masking();
        let survivor_shares = [("HOSP-A", SecretKind::SelfMask), ("HOSP-B", SecretKind::SelfMask), ("HOSP-C", SecretKind::MaskKey)];
        commands.extend([reveal("HOSP-A", &survivor_shares), reveal("HOSP-B", &survivor_shares), aggregate(1)]);
        let (task, events, refused) = run(commands, now());
        assert_eq!(refused, None);
        assert_eq!(task.rounds_aggregated(), 1);
        let advanced: Vec<_> = events.iter().filter(|e| matches!(e, TaskEvent::SecureRoundAdvanced { .. })).collect();
        assert_eq!(advanced.len(), 3);
    }

    #[test]
    fn a_secure_round_is_not_aggregated_before_the_threshold_of_survivors_revealed() {
        let mut commands = through_masking();
        let survivor_shares = [("HOSP-A", SecretKind::SelfMask), ("HOSP-B", SecretKind::SelfMask), ("HOSP-C", SecretKind::MaskKey)];
        commands.extend([reveal("HOSP-A", &survivor_shares), aggregate(1)]);
        let (_, _, refused) = run(commands, now());
        assert_eq!(refused, Some(TaskError::Secure(SecureError::TooFew { step: "unmasking", got: 1, needed: 2 })));
    }

    #[test]
    fn a_survivor_may_not_reveal_both_secrets_of_one_hospital() {
        let mut commands = through_masking();
        // C dropped out, so only its mask key may be rebuilt; a self-mask share of C
        // together with its mask key would let the coordinator unmask a late update.
        commands.push(reveal(
            "HOSP-A",
            &[("HOSP-A", SecretKind::SelfMask), ("HOSP-B", SecretKind::SelfMask), ("HOSP-C", SecretKind::SelfMask)],
        ));
        let (_, _, refused) = run(commands, now());
        assert!(matches!(refused, Some(TaskError::Secure(SecureError::Malformed { step: "unmasking", .. }))), "{refused:?}");
    }

    #[test]
    fn only_sharers_mask_and_only_survivors_reveal() {
        let mut commands = started(secure_spec());
        commands.push(TaskCommand::OpenRound { round: 1 });
        commands.extend(HOSPITALS.map(keys));
        commands.push(advance());
        commands.extend([shares("HOSP-A", &HOSPITALS), shares("HOSP-B", &HOSPITALS), advance(), submit(1, "HOSP-C")]);
        let (_, _, refused) = run(commands, now());
        assert_eq!(refused, Some(TaskError::Secure(SecureError::NotAMember { hospital: hospital("HOSP-C"), step: "masking" })));

        let mut commands = through_masking();
        commands.push(reveal("HOSP-C", &[("HOSP-A", SecretKind::SelfMask)]));
        let (_, _, refused) = run(commands, now());
        assert_eq!(refused, Some(TaskError::Secure(SecureError::NotAMember { hospital: hospital("HOSP-C"), step: "unmasking" })));
    }

    #[test]
    fn messages_out_of_step_twice_or_malformed_are_refused() {
        let opened = || {
            let mut commands = started(secure_spec());
            commands.push(TaskCommand::OpenRound { round: 1 });
            commands
        };
        let refusal = |extra: Vec<TaskCommand>| {
            let mut commands = opened();
            commands.extend(extra);
            run(commands, now()).2
        };
        assert!(matches!(refusal(vec![shares("HOSP-A", &HOSPITALS)]), Some(TaskError::Secure(SecureError::WrongStep { .. }))));
        assert_eq!(refusal(vec![keys("HOSP-A"), keys("HOSP-A")]), Some(TaskError::Secure(SecureError::AlreadySent(hospital("HOSP-A")))));
        let short =
            message(1, "HOSP-A", SecureMessage::Keys { sealing_key: Opaque::new(vec![1; 31]), masking_key: Opaque::new(vec![2; 32]) });
        assert!(matches!(refusal(vec![short]), Some(TaskError::Secure(SecureError::Malformed { .. }))));
        assert_eq!(refusal(vec![keys("HOSP-Z")]), Some(TaskError::NotEnrolled(hospital("HOSP-Z"))));
        // Shares that leave out a roster member cannot be unmasked later.
        let partial = vec![keys("HOSP-A"), keys("HOSP-B"), keys("HOSP-C"), advance(), shares("HOSP-A", &["HOSP-A", "HOSP-B"])];
        assert!(matches!(refusal(partial), Some(TaskError::Secure(SecureError::Malformed { step: "sharing", .. }))));
        // A plain task takes no secure messages.
        let mut commands = started(spec(Strategy::FedAvg));
        commands.extend([TaskCommand::OpenRound { round: 1 }, keys("HOSP-A")]);
        assert_eq!(run(commands, now()).2, Some(TaskError::Secure(SecureError::NotSecure)));
    }

    #[test]
    fn the_roster_needs_the_threshold_and_the_minimum_of_participants() {
        let mut commands = started(secure_spec());
        commands.extend([TaskCommand::OpenRound { round: 1 }, keys("HOSP-A"), advance()]);
        let (_, _, refused) = run(commands, now());
        assert_eq!(refused, Some(TaskError::Secure(SecureError::TooFew { step: "advertising", got: 1, needed: 2 })));
    }

    #[test]
    fn a_hospital_sees_only_the_sealed_shares_addressed_to_it_and_the_coordinator_none() {
        let (task, _, refused) = run(through_masking(), now());
        assert_eq!(refused, None);
        let round = task.secure_round().unwrap_or_else(|| panic!("no secure round"));
        assert_eq!(round.step, SecureStep::Unmasking);
        let sent: usize = round.shares.values().map(BTreeMap::len).sum();
        assert_eq!(sent, 9);
        let for_a = round.view_for(Some(&hospital("HOSP-A")));
        let addressed: Vec<_> = for_a.shares.values().flat_map(|to| to.keys()).collect();
        assert_eq!(addressed, vec![&hospital("HOSP-A"); 3]);
        assert_eq!(for_a.sharers.len(), 3);
        let for_coordinator = round.view_for(None);
        assert!(for_coordinator.shares.values().all(BTreeMap::is_empty));
        assert_eq!(for_coordinator.shares.len(), 3);
    }
}
