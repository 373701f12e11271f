//! The same journey over gRPC on real TCP: JetStream (a throwaway NATS server)
//! and sessions in the real Redis. Statuses carry the REST catalogue's codes as
//! google.rpc.ErrorInfo reasons.

#![allow(clippy::unwrap_used)]

use emr_auth::{AuthPolicy, Identity, SigningKeys, Tokens};
use emr_domain::DomainServices;
use emr_domain::actor::Role;
use emr_grpc::pb::auth_client::AuthClient;
use emr_grpc::pb::clinic_client::ClinicClient;
use emr_grpc::pb::{self, RecordContent};
use emr_tests::accounts::{self, PASSWORD};
use emr_tests::backends::{clinic, jetstream};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

async fn open(identity: &Identity, username: &str, role: Role) -> String {
    accounts::open_account(identity, username, role).await.to_string()
}

async fn sign_in(auth: &mut AuthClient<Channel>, username: &str) -> String {
    let challenge = auth.login(pb::LoginRequest { username: username.into(), password: PASSWORD.into() }).await.unwrap().into_inner();
    let enrolment = auth.enrol_mfa(pb::MfaToken { mfa_token: challenge.mfa_token.clone() }).await.unwrap().into_inner();
    let code = accounts::totp_code(&enrolment.secret, username);
    auth.verify_mfa(pb::MfaCode { mfa_token: challenge.mfa_token, code }).await.unwrap().into_inner().access_token
}

/// Accounts and sessions over `ports`, sessions in the real Redis under `namespace`.
async fn identity(ports: &emr_eventstore::EventStorePorts, namespace: &str) -> Identity {
    let sessions = emr_tests::sessions::redis(namespace).await;
    let tokens = Tokens::new(SigningKeys::generate("g").unwrap());
    Identity::new(ports, sessions, tokens, AuthPolicy::default(), DomainServices::default())
}

/// Serves every gRPC service of `state` on a free port; a channel to it.
async fn serve(state: emr_grpc::GrpcState) -> Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder().add_routes(emr_grpc::routes(state)).serve_with_incoming(incoming).await.unwrap();
    });
    Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap()
}

fn with_token<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn reason(status: &Status) -> String {
    status.get_details_error_info().map(|info| info.reason).unwrap_or_default()
}

fn content(title: &str) -> RecordContent {
    RecordContent {
        title: title.into(),
        description: None,
        diagnosis: Some(pb::Diagnosis { code: "C34.1".into(), description: "Lung cancer, upper lobe".into() }),
        treatment: None,
        medications: vec![pb::Medication {
            name: "Cisplatin".into(),
            dose: Some(pb::Dose { amount: "75".into(), unit: "mg".into() }),
            route: "intravenous".into(),
            frequency: "every 3 weeks".into(),
        }],
    }
}

#[tokio::test]
async fn grpc_enforces_the_same_grants_break_glass_and_validation_as_rest() {
    let backend = jetstream().await;
    let identity = identity(&backend.backend, "grpc").await;
    let state = emr_grpc::GrpcState { clinic: clinic(&backend.backend), identity: identity.clone(), federated: None };
    let channel = serve(state).await;
    let (mut auth, mut clinic) = (AuthClient::new(channel.clone()), ClinicClient::new(channel));

    let author_id = open(&identity, "grpc_author", Role::Physician).await;
    let consultant_id = open(&identity, "grpc_consultant", Role::Physician).await;
    let patient_id = open(&identity, "grpc_patient", Role::Patient).await;
    let author = sign_in(&mut auth, "grpc_author").await;
    let consultant = sign_in(&mut auth, "grpc_consultant").await;
    let patient = sign_in(&mut auth, "grpc_patient").await;

    let register = pb::RegisterPatientRequest {
        patient_id: Some(patient_id.clone()),
        hospital_id: "HOSP-042".into(),
        identifiers: Some(pb::Identifiers { mrn: "MRN-42".into(), external: vec![] }),
        demographics: Some(pb::Demographics {
            full_name: "He Ping".into(),
            date_of_birth: "1961-07-08".into(),
            gender: "male".into(),
            phone_number: None,
            email: None,
            address: None,
        }),
    };
    clinic.register_patient(with_token(&author, register)).await.unwrap();
    let create = pb::CreateRecordRequest {
        record_id: None,
        patient_id: patient_id.clone(),
        doctor_id: author_id.clone(),
        hospital_id: "HOSP-042".into(),
        record_type: "diagnosis".into(),
        visit_date: "2026-11-23".into(),
        content: Some(content("Staging")),
    };
    let receipt = clinic.create_record(with_token(&author, create.clone())).await.unwrap().into_inner();
    assert_eq!(receipt.events[0].event_type, "RecordCreated");
    let record_id = receipt.aggregate_id;

    let mut bad = create.clone();
    bad.content.as_mut().unwrap().diagnosis.as_mut().unwrap().code = "lung".into();
    let refused = clinic.create_record(with_token(&author, bad)).await.unwrap_err();
    assert_eq!((refused.code(), reason(&refused)), (Code::InvalidArgument, "invalid-field".to_owned()));
    assert_eq!(refused.get_details_bad_request().unwrap().field_violations[0].field, "content");
    let anonymous = clinic.create_record(Request::new(create.clone())).await.unwrap_err();
    assert_eq!((anonymous.code(), reason(&anonymous)), (Code::Unauthenticated, "unauthenticated".to_owned()));

    // A batch answers each record on its own; the same call again creates nothing new.
    let on_behalf = pb::CreateRecordRequest { doctor_id: consultant_id.clone(), ..create.clone() };
    let batch = pb::CreateRecordsRequest { records: vec![create.clone(), on_behalf, create.clone()] };
    let batch_key = uuid::Uuid::now_v7().to_string();
    let send_batch = |batch: pb::CreateRecordsRequest| {
        let mut request = with_token(&author, batch);
        request.metadata_mut().insert("idempotency-key", batch_key.parse().unwrap());
        request
    };
    let first = clinic.create_records(send_batch(batch.clone())).await.unwrap().into_inner().answers;
    let again = clinic.create_records(send_batch(batch)).await.unwrap().into_inner().answers;
    use pb::record_answer::Answer;
    let summary = |answers: &[pb::RecordAnswer]| -> Vec<String> {
        answers
            .iter()
            .map(|a| match &a.answer {
                Some(Answer::Receipt(receipt)) => format!("{} replayed={}", receipt.aggregate_id, receipt.replayed),
                Some(Answer::Refusal(refusal)) => format!("{} {}", refusal.http_status, refusal.code),
                None => "none".into(),
            })
            .collect()
    };
    let (first, again) = (summary(&first), summary(&again));
    assert_eq!(first[1], "403 on-behalf-of-another", "{first:?}");
    assert!(first[0].ends_with("replayed=false") && first[2].ends_with("replayed=false") && first[0] != first[2], "{first:?}");
    assert_eq!(again, [first[0].replace("false", "true"), first[1].clone(), first[2].replace("false", "true")], "{again:?}");
    let empty = clinic.create_records(with_token(&author, pb::CreateRecordsRequest { records: vec![] })).await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);

    let read = || pb::ReadRecordRequest { record_id: record_id.clone(), at_position: 0 };
    let denied = clinic.read_record(with_token(&consultant, read())).await.unwrap_err();
    assert_eq!((denied.code(), reason(&denied)), (Code::PermissionDenied, "no-active-grant".to_owned()));
    let grant = pb::GrantAccessRequest {
        grant_id: None,
        patient_id: patient_id.clone(),
        grantee: consultant_id,
        scopes: vec!["read".into()],
        expires_at: (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339(),
        reason: "tumour board".into(),
    };
    let granted = clinic.grant_access(with_token(&patient, grant)).await.unwrap().into_inner();
    let shown = clinic.read_record(with_token(&consultant, read())).await.unwrap().into_inner();
    assert_eq!(shown.versions[0].content.as_ref().map(|c| c.title.as_str()), Some("Staging"));
    assert!(shown.disclosure_id.is_some(), "the read was recorded");
    let revoke = pb::RevokeGrantRequest { grant_id: granted.aggregate_id, reason: "board finished".into() };
    clinic.revoke_grant(with_token(&patient, revoke)).await.unwrap();
    let denied = clinic.read_record(with_token(&consultant, read())).await.unwrap_err();
    assert_eq!(reason(&denied), "no-active-grant");
    let opened = clinic
        .break_glass(with_token(&consultant, pb::BreakGlassRequest { record_id: record_id.clone(), reason: "airway emergency".into() }))
        .await
        .unwrap()
        .into_inner();
    assert!(opened.disclosure_id.is_some() && !opened.redacted);

    let events = emr_eventstore::LogReader::new(backend.backend.log.clone()).read(1, 10_000).await.unwrap();
    let count = |kind: &str| events.iter().filter(|e| e.event_type == kind).count();
    assert_eq!((count("BreakGlassInvoked"), count("PhiDisclosed")), (1, 2), "every read over gRPC is a disclosure event too");
}

mod federated {
    use std::sync::Arc;

    use emr_domain::federated::TaskSpec;
    use emr_domain::federated::secure::{Opaque, PublicKeys, SecureMessage, SecureRound, SecureStep};
    use emr_domain::ids::{HospitalId, TaskId};
    use emr_federated::{Coordinator, DirectoryModelStore, SecureMember};
    use emr_grpc::pb::federated_client::FederatedClient;
    use emr_grpc::pb::secure_message_request::Step;

    use super::*;

    const HOSPITALS: [&str; 3] = ["HOSP-A", "HOSP-B", "HOSP-C"];

    /// The gRPC view in the domain's terms, for the hospital's cryptography.
    fn domain_view(view: &pb::SecureRoundView, me: &HospitalId) -> SecureRound {
        let hospital = |code: &String| HospitalId::parse(code).unwrap();
        let mut round = SecureRound {
            step: serde_json::from_value(serde_json::json!(view.step)).unwrap(),
            threshold: view.threshold,
            keys: view
                .keys
                .iter()
                .map(|(h, k)| {
                    let keys =
                        PublicKeys { sealing_key: Opaque::new(k.sealing_key.clone()), masking_key: Opaque::new(k.masking_key.clone()) };
                    (hospital(h), keys)
                })
                .collect(),
            sharers: view.sharers.iter().map(hospital).collect(),
            survivors: view.survivors.iter().map(hospital).collect(),
            ..SecureRound::default()
        };
        for (from, sealed) in &view.shares_for_you {
            round.shares.entry(hospital(from)).or_default().insert(me.clone(), Opaque::new(sealed.clone()));
        }
        round
    }

    fn message(task: &str, round: u32, message: SecureMessage) -> pb::SecureMessageRequest {
        let step = match message {
            SecureMessage::Keys { sealing_key, masking_key } => {
                Step::Keys(pb::PublicKeys { sealing_key: sealing_key.as_bytes().to_vec(), masking_key: masking_key.as_bytes().to_vec() })
            }
            SecureMessage::Shares { shares } => Step::Shares(pb::SealedShares {
                shares: shares.into_iter().map(|(to, s)| (to.as_str().to_owned(), s.as_bytes().to_vec())).collect(),
            }),
            SecureMessage::Reveal { shares } => Step::Reveal(pb::RevealedShares {
                shares: shares
                    .into_iter()
                    .map(|r| pb::RevealedShare {
                        owner: r.owner.as_str().to_owned(),
                        secret: serde_json::to_value(r.secret).unwrap().as_str().unwrap().to_owned(),
                        share: r.share.as_bytes().to_vec(),
                    })
                    .collect(),
            }),
        };
        pb::SecureMessageRequest { task_id: task.to_owned(), round, step: Some(step) }
    }

    #[tokio::test]
    async fn hospitals_aggregate_securely_over_grpc_and_the_sum_equals_the_plain_fedavg() {
        let backend = jetstream().await;
        let identity = identity(&backend.backend, "grpc-fl").await;
        let models_dir = tempfile::tempdir().unwrap();
        let models = DirectoryModelStore::open(models_dir.path(), backend.backend.kek.as_ref()).await.unwrap();
        let coordinator = Coordinator::new(&backend.backend, Arc::new(models), DomainServices::default());
        let state = emr_grpc::GrpcState { clinic: clinic(&backend.backend), identity: identity.clone(), federated: Some(coordinator) };
        let channel = serve(state).await;
        let (mut auth, mut fl) = (AuthClient::new(channel.clone()), FederatedClient::new(channel));

        open(&identity, "grpc_fl_researcher", Role::Researcher).await;
        open(&identity, "HOSP-Z", Role::Hospital).await;
        let researcher = sign_in(&mut auth, "grpc_fl_researcher").await;
        let outsider = sign_in(&mut auth, "HOSP-Z").await;
        let mut hospitals = Vec::new();
        for code in HOSPITALS {
            open(&identity, code, Role::Hospital).await;
            hospitals.push((HospitalId::parse(code).unwrap(), sign_in(&mut auth, code).await));
        }

        let spec_json = serde_json::json!({
            "name": "grpc secure", "hospitals": HOSPITALS, "strategy": {"name": "fedavg"}, "rounds": 1, "local_steps": 1,
            "learning_rate": 0.5, "min_participants": 3, "round_deadline_secs": 600, "secure_aggregation": true,
            "model": {"kind": {"kind": "logistic_regression"}, "precision": "f64", "features": ["a", "b", "c"], "label": "y"}
        })
        .to_string();
        let spec: TaskSpec = serde_json::from_str(&spec_json).unwrap();
        // A spec the coordinator cannot run is refused with the REST catalogue's code.
        let robust = spec_json.replace("fedavg", "median");
        let refused =
            fl.create_task(with_token(&researcher, pb::CreateTaskRequest { spec_json: robust, ..Default::default() })).await.unwrap_err();
        assert_eq!((refused.code(), reason(&refused).as_str()), (Code::InvalidArgument, "invalid-task-spec"), "{refused:?}");
        let created = fl
            .create_task(with_token(&researcher, pb::CreateTaskRequest { spec_json: spec_json.clone(), ..Default::default() }))
            .await
            .unwrap()
            .into_inner();
        let task = created.task_id.clone();
        let task_ref = || pb::TaskRef { task_id: task.clone() };
        fl.start_task(with_token(&researcher, task_ref())).await.unwrap();
        let opened = fl.open_round(with_token(&researcher, task_ref())).await.unwrap().into_inner();
        assert_eq!(opened.round, 1);
        // A hospital outside the task sees no such task.
        let hidden = fl.get_task(with_token(&outsider, task_ref())).await.unwrap_err();
        assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");

        let round_ref = || pb::RoundRef { task_id: task.clone(), round: 1 };
        let task_id: TaskId = task.parse().unwrap();
        let mut members = Vec::new();
        for (hospital, token) in &hospitals {
            let (member, keys) = SecureMember::join(&spec, task_id, 1, hospital.clone()).unwrap();
            fl.send_secure_message(with_token(token, message(&task, 1, keys))).await.unwrap();
            members.push(member);
        }
        let sharing = fl.advance_secure_round(with_token(&researcher, round_ref())).await.unwrap().into_inner();
        assert_eq!((sharing.step.as_str(), sharing.threshold), ("sharing", Some(2)));
        for ((hospital, token), member) in hospitals.iter().zip(&members) {
            let view = fl.get_secure_round(with_token(token, round_ref())).await.unwrap().into_inner();
            let shares = member.share(&spec, &domain_view(&view, hospital)).unwrap();
            fl.send_secure_message(with_token(token, message(&task, 1, shares))).await.unwrap();
        }
        fl.advance_secure_round(with_token(&researcher, round_ref())).await.unwrap();
        // Each hospital's contribution n·w; the FedAvg of these models is known in advance.
        let contributions = [(vec![1.0, 2.0, 3.0, 4.0], 10u64), (vec![-1.0, 0.5, 0.0, 2.0], 30), (vec![0.25, 0.25, 0.25, 0.25], 60)];
        for (((hospital, token), member), (parameters, samples)) in hospitals.iter().zip(&mut members).zip(&contributions) {
            let view = fl.get_secure_round(with_token(token, round_ref())).await.unwrap().into_inner();
            assert_eq!(view.shares_for_you.len(), 3, "each hospital receives one sealed share from every sharer");
            let contribution: Vec<f64> = parameters.iter().map(|w| w * *samples as f64).collect();
            let masked = member.mask(&spec, &domain_view(&view, hospital), &contribution).unwrap();
            let update = pb::SubmitUpdateRequest { task_id: task.clone(), round: 1, masked, samples: *samples, ..Default::default() };
            fl.submit_update(with_token(token, update)).await.unwrap();
        }
        let early =
            fl.aggregate_round(with_token(&researcher, pb::AggregateRoundRequest { task_id: task.clone(), round: 1, metrics: None })).await;
        let early = early.unwrap_err();
        assert_eq!((early.code(), reason(&early).as_str()), (Code::Aborted, "secure-step"), "{early:?}");
        let unmasking = fl.advance_secure_round(with_token(&researcher, round_ref())).await.unwrap().into_inner();
        assert_eq!(unmasking.step, SecureStep::Unmasking.as_str());
        for ((hospital, token), member) in hospitals.iter().zip(&members) {
            let view = fl.get_secure_round(with_token(token, round_ref())).await.unwrap().into_inner();
            let reveal = member.reveal(&spec, &domain_view(&view, hospital)).unwrap();
            fl.send_secure_message(with_token(token, message(&task, 1, reveal))).await.unwrap();
        }
        let aggregated =
            fl.aggregate_round(with_token(&researcher, pb::AggregateRoundRequest { task_id: task.clone(), round: 1, metrics: None })).await;
        assert_eq!(aggregated.unwrap().into_inner().rounds_aggregated, 1);
        let model = fl.get_model(with_token(&hospitals[0].1, task_ref())).await.unwrap().into_inner();
        let total: u64 = contributions.iter().map(|(_, n)| n).sum();
        for (i, value) in model.parameters.iter().enumerate() {
            let expected: f64 = contributions.iter().map(|(w, n)| w[i] * *n as f64).sum::<f64>() / total as f64;
            assert!((value - expected).abs() < 1e-6, "parameter {i}: {value} vs {expected}");
        }
        // A researcher submits nothing; a hospital coordinates nothing.
        let update =
            pb::SubmitUpdateRequest { task_id: task.clone(), round: 1, parameters: vec![0.0; 4], samples: 1, ..Default::default() };
        let denied = fl.submit_update(with_token(&researcher, update)).await.unwrap_err();
        assert_eq!((denied.code(), reason(&denied).as_str()), (Code::PermissionDenied, "role-not-permitted"), "{denied:?}");
        let denied = fl.complete_task(with_token(&hospitals[0].1, task_ref())).await.unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
        let completed = fl.complete_task(with_token(&researcher, task_ref())).await.unwrap().into_inner();
        assert_eq!(completed.status, "completed");
    }
}
