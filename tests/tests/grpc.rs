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
    let sessions = emr_tests::sessions::redis("grpc").await;
    let identity = Identity::new(
        &backend.backend,
        sessions,
        Tokens::new(SigningKeys::generate("g").unwrap()),
        AuthPolicy::default(),
        DomainServices::default(),
    );
    let state = emr_grpc::GrpcState { clinic: clinic(&backend.backend), identity: identity.clone() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(async move {
        tonic::transport::Server::builder().add_routes(emr_grpc::routes(state)).serve_with_incoming(incoming).await.unwrap();
    });
    let channel = Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
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
    let anonymous = clinic.create_record(Request::new(create)).await.unwrap_err();
    assert_eq!((anonymous.code(), reason(&anonymous)), (Code::Unauthenticated, "unauthenticated".to_owned()));

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
