//! The authorization matrix: every role × every endpoint × every grant state,
//! each cell's expected answer written out below (`expected`), checked against
//! the real API over the embedded store.

#![allow(clippy::unwrap_used)]

mod support;

use axum::http::StatusCode;
use emr_domain::actor::Role;
use serde_json::json;
use support::{PASSWORD, TestApp, User, app, command, get, grant_body, in_days, patient_body, record_body, send, sign_in};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GrantState {
    /// The practitioners only asked (a pending request).
    None,
    Active,
    Expired,
    Revoked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    OwnPatient,
    OtherPatient,
    /// A physician who is not the record's author, holding the grant under test.
    Physician,
    /// A nurse holding the grant under test.
    Nurse,
    Admin,
    Auditor,
    Researcher,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    ReadPatient,
    ReadRecord,
    ReplayRecord,
    UpdateDemographics,
    AmendRecord,
    DeleteRecord,
    GrantAccess,
    ReadGrant,
    RegisterPatient,
    CreateRecord,
    RequestAccess,
    History,
    Log,
    OpenAccount,
    /// Last: it changes the grant the other cells depend on.
    RevokeGrant,
}

const ENDPOINTS: [Endpoint; 15] = [
    Endpoint::ReadPatient,
    Endpoint::ReadRecord,
    Endpoint::ReplayRecord,
    Endpoint::UpdateDemographics,
    Endpoint::AmendRecord,
    Endpoint::DeleteRecord,
    Endpoint::GrantAccess,
    Endpoint::ReadGrant,
    Endpoint::RegisterPatient,
    Endpoint::CreateRecord,
    Endpoint::RequestAccess,
    Endpoint::History,
    Endpoint::Log,
    Endpoint::OpenAccount,
    Endpoint::RevokeGrant,
];

const WHO: [Who; 7] = [Who::OwnPatient, Who::OtherPatient, Who::Physician, Who::Nurse, Who::Admin, Who::Auditor, Who::Researcher];

/// `Ok` = allowed (any answer but 403); `Err(code)` = 403 with that code.
fn expected(who: Who, endpoint: Endpoint, state: GrantState) -> Result<(), &'static str> {
    use Endpoint::*;
    const ROLE: Result<(), &str> = Err("role-not-permitted");
    let granted = if state == GrantState::Active { Ok(()) } else { Err("no-active-grant") };
    match who {
        Who::OwnPatient => match endpoint {
            ReadPatient | ReadRecord | ReplayRecord | UpdateDemographics | GrantAccess | ReadGrant | RevokeGrant => Ok(()),
            _ => ROLE,
        },
        Who::OtherPatient => match endpoint {
            ReadPatient | ReadRecord | ReplayRecord | UpdateDemographics | GrantAccess | ReadGrant | RevokeGrant => Err("not-own-record"),
            _ => ROLE,
        },
        Who::Physician => match endpoint {
            ReadPatient | ReadRecord | ReplayRecord | UpdateDemographics | AmendRecord | DeleteRecord => granted,
            ReadGrant | RegisterPatient | CreateRecord | RequestAccess => Ok(()),
            _ => ROLE,
        },
        Who::Nurse => match endpoint {
            ReadPatient | ReadRecord | ReplayRecord | UpdateDemographics | AmendRecord => granted,
            RegisterPatient | CreateRecord | RequestAccess => Ok(()),
            // The grant under ReadGrant is the physician's.
            ReadGrant => Err("not-grantee"),
            _ => ROLE,
        },
        Who::Admin => match endpoint {
            OpenAccount => Ok(()),
            _ => ROLE,
        },
        Who::Auditor => match endpoint {
            // Record and patient reads are allowed with PHI withheld.
            ReadPatient | ReadRecord | ReplayRecord | ReadGrant | History | Log => Ok(()),
            _ => ROLE,
        },
        Who::Researcher => ROLE,
    }
}

struct Scene {
    patient: User,
    other_patient: User,
    physician: User,
    nurse: User,
    admin: User,
    auditor: User,
    researcher: User,
    record: String,
    physician_grant: String,
    first_position: u64,
}

/// A patient with one record by another author, and grants to the physician
/// and the nurse in `state`.
async fn scene(app: &TestApp, state: GrantState) -> Scene {
    let support::Chart { patient, record, created_at: first_position, .. } = support::patient_with_a_record(app).await;
    let physician = sign_in(app, Role::Physician).await;
    let nurse = sign_in(app, Role::Nurse).await;
    let mut grants = Vec::new();
    for grantee in [&physician, &nurse] {
        let created = if state == GrantState::None {
            let request =
                json!({"patient_id": patient.id, "scopes": ["read", "write"], "requested_until": in_days(3), "reason": "referral"});
            send(app, command(grantee, "POST", "/v1/access-requests", &request)).await
        } else {
            let expiry = if state == GrantState::Expired { chrono::Utc::now() + chrono::Duration::milliseconds(1500) } else { in_days(3) };
            send(app, command(&patient, "POST", "/v1/grants", &grant_body(&patient.id, &grantee.id, expiry))).await
        };
        assert_eq!(created.0, StatusCode::CREATED, "{}", created.2);
        let grant = created.2["aggregate_id"].as_str().unwrap().to_owned();
        if state == GrantState::Revoked {
            let revoked = send(app, command(&patient, "POST", &format!("/v1/grants/{grant}/revocation"), &json!({"reason": "done"}))).await;
            assert_eq!(revoked.0, StatusCode::OK, "{}", revoked.2);
        }
        grants.push(grant);
    }
    if state == GrantState::Expired {
        tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    }
    Scene {
        other_patient: sign_in(app, Role::Patient).await,
        admin: sign_in(app, Role::Admin).await,
        auditor: sign_in(app, Role::Auditor).await,
        researcher: sign_in(app, Role::Researcher).await,
        patient,
        physician,
        nurse,
        record,
        physician_grant: grants.remove(0),
        first_position,
    }
}

fn caller(scene: &Scene, who: Who) -> &User {
    match who {
        Who::OwnPatient => &scene.patient,
        Who::OtherPatient => &scene.other_patient,
        Who::Physician => &scene.physician,
        Who::Nurse => &scene.nurse,
        Who::Admin => &scene.admin,
        Who::Auditor => &scene.auditor,
        Who::Researcher => &scene.researcher,
    }
}

async fn call(app: &TestApp, scene: &Scene, user: &User, endpoint: Endpoint) -> (StatusCode, Option<String>, serde_json::Value) {
    let (patient, record, grant) = (&scene.patient.id, &scene.record, &scene.physician_grant);
    let request = match endpoint {
        Endpoint::ReadPatient => get(user, &format!("/v1/patients/{patient}")),
        Endpoint::ReadRecord => get(user, &format!("/v1/records/{record}")),
        Endpoint::ReplayRecord => get(user, &format!("/v1/records/{record}?at_position={}", scene.first_position)),
        Endpoint::UpdateDemographics => {
            command(user, "PUT", &format!("/v1/patients/{patient}/demographics"), &patient_body()["demographics"])
        }
        Endpoint::AmendRecord => {
            let amend = json!({"content": record_body(patient, user)["content"], "reason": "typo"});
            command(user, "POST", &format!("/v1/records/{record}/amendments"), &amend)
        }
        Endpoint::DeleteRecord => command(user, "POST", &format!("/v1/records/{record}/deletion"), &json!({"reason": "entered in error"})),
        Endpoint::GrantAccess => {
            command(user, "POST", "/v1/grants", &grant_body(patient, "0190f5c4-7d0e-7cc2-9a4e-3f1c2b6a9d10", in_days(1)))
        }
        Endpoint::ReadGrant => get(user, &format!("/v1/grants/{grant}")),
        Endpoint::RegisterPatient => command(user, "POST", "/v1/patients", &patient_body()),
        Endpoint::CreateRecord => command(user, "POST", "/v1/records", &record_body(patient, user)),
        Endpoint::RequestAccess => {
            let request = json!({"patient_id": patient, "scopes": ["read"], "requested_until": in_days(2), "reason": "consult"});
            command(user, "POST", "/v1/access-requests", &request)
        }
        Endpoint::History => get(user, &format!("/v1/audit/medical_record/{record}/history")),
        Endpoint::Log => get(user, "/v1/log?limit=5"),
        Endpoint::OpenAccount => {
            let body = json!({"username": format!("n{}", uuid::Uuid::new_v4().simple()), "password": PASSWORD, "role": "auditor"});
            command(user, "POST", "/v1/accounts", &body)
        }
        Endpoint::RevokeGrant => command(user, "POST", &format!("/v1/grants/{grant}/revocation"), &json!({"reason": "no longer needed"})),
    };
    send(app, request).await
}

async fn check_matrix(state: GrantState) {
    let app = app().await;
    let scene = scene(&app, state).await;
    let mut wrong = Vec::new();
    for endpoint in ENDPOINTS {
        for who in WHO {
            let (status, _, body) = call(&app, &scene, caller(&scene, who), endpoint).await;
            let answer = if status == StatusCode::FORBIDDEN { Err(body["code"].as_str().unwrap_or("?").to_owned()) } else { Ok(()) };
            let expect = expected(who, endpoint, state).map_err(str::to_owned);
            if answer != expect || status.is_server_error() {
                wrong.push(format!("{who:?} × {endpoint:?} × {state:?}: expected {expect:?}, got {status} {body}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{} cells disagree:\n{}", wrong.len(), wrong.join("\n"));
}

#[tokio::test]
async fn without_a_grant_practitioners_read_and_write_nothing() {
    check_matrix(GrantState::None).await;
}

#[tokio::test]
async fn an_active_grant_opens_exactly_what_the_policy_says() {
    check_matrix(GrantState::Active).await;
}

#[tokio::test]
async fn an_expired_grant_authorizes_nothing() {
    check_matrix(GrantState::Expired).await;
}

#[tokio::test]
async fn a_revoked_grant_authorizes_nothing() {
    check_matrix(GrantState::Revoked).await;
}
