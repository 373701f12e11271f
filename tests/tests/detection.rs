//! Threat detection end to end on real NATS JetStream, MariaDB and Redis.
//!
//! A generated hospital trace with planted attacks is written into JetStream as
//! the commits the product makes; the detection worker reads it back, and each
//! rule must fire on its attacks and stay quiet on the clean work. Then a
//! credential-stuffing attack through the identity service itself: the critical
//! detection alerts a webhook, ends the victim's sessions and locks the account,
//! which stays locked until an administrator unlocks it with a reason; officers
//! triage the security event through the HTTP API. And a worker killed again and
//! again through the attacks raises each detection exactly once.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use emr_detection::{DetectionWorker, LogSink, Responders, WebhookSink, WorkerConfig};
use emr_domain::DomainServices;
use emr_domain::account::Username;
use emr_domain::actor::Role;
use emr_domain::security::SecurityEvent;
use emr_eventstore::conformance::Backend;
use emr_projections::{Decoder, Payload, Projector, SecurityProjection};
use emr_tests::accounts::PASSWORD;
use emr_tests::api_server::ApiServer;
use emr_tests::backends::jetstream;
use emr_tests::detection_quality::{Found, score};
use emr_tests::hospital_trace::{TraceShape, generate};
use emr_tests::mariadb::TestDatabase;
use emr_tests::trace_log;
use serde_json::{Value, json};

/// Every security event raised in the log, in log order, as scored.
async fn raised(log: &Arc<dyn emr_eventstore::EventLog>) -> Vec<Found> {
    let decoder = Decoder::default();
    let reader = emr_eventstore::LogReader::new(log.clone());
    let head = log.head().await.unwrap();
    let mut found = Vec::new();
    let mut from = 1;
    while from <= head {
        let events = reader.read(from, 1000).await.unwrap();
        from += 1000;
        for event in events {
            if let Some(fact) = decoder.decode(&event).unwrap()
                && let Payload::Security(SecurityEvent::SecurityEventRaised { id, kind, severity, evidence, .. }) = fact.payload
            {
                found.push(Found { id, kind, severity, evidence: evidence.iter().map(|e| e.event_id).collect() });
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rule_fires_on_its_planted_attacks_and_stays_quiet_on_clean_work() {
    let backend = jetstream().await;
    let database = TestDatabase::fresh().await;
    let api = ApiServer::start_with(&backend.backend, emr_tests::sessions::redis("detection").await, None).await;
    let trace = generate(TraceShape::small());
    trace_log::write(&backend.backend, &trace).await;
    let log = backend.backend.log.clone();
    let worker = logging_worker(&backend.backend, &database, &api, WorkerConfig::default()).await;
    let head = log.head().await.unwrap();
    worker.catch_up(head).await.unwrap();

    let found = raised(&log).await;
    let quality = score(&trace, &found);
    for (kind, rule) in &quality.rules {
        assert!(rule.recall() >= 0.95, "{} caught {} of {} planted attacks", kind.name(), rule.caught, rule.attacks);
        assert!(rule.attacks > 0 || rule.detections == 0, "{} fired with nothing planted", kind.name());
    }
    assert!(
        quality.false_positives_per_10k_reads() <= 1.0,
        "{:.2} false positives per 10,000 clean reads ({} reads):\n{}",
        quality.false_positives_per_10k_reads(),
        quality.clean_reads,
        emr_tests::detection_quality::markdown(&quality)
    );

    // A restarted worker resumes from its saved state and raises nothing twice.
    let again = logging_worker(&backend.backend, &database, &api, WorkerConfig::default()).await;
    assert!(again.position().await >= head, "the state was saved with its position");
    let projector = Projector::new(SecurityProjection, database.db.clone(), log.clone());
    projector.catch_up(log.head().await.unwrap()).await.unwrap();
    let (rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM security_events").fetch_one(&database.pool).await.unwrap();
    assert_eq!(rows as usize, found.len(), "the read model holds each security event once");
}

/// A worker over `backend` saving its state in `database`, alerting to the log
/// and acting on accounts through `api`'s identity.
async fn logging_worker(backend: &Backend, database: &TestDatabase, api: &ApiServer, config: WorkerConfig) -> DetectionWorker {
    let responders = Responders { sinks: vec![Arc::new(LogSink)], guard: Arc::new(api.identity.clone()) };
    DetectionWorker::open(backend, database.db.clone(), responders, config, DomainServices::default()).await.unwrap()
}

/// A webhook receiver on loopback that keeps what it is sent.
async fn webhook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let kept = received.clone();
    let app = axum::Router::new().route(
        "/alerts",
        axum::routing::post(move |axum::Json(alert): axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(alert);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

async fn eventually<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(value) = probe().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_credential_stuffing_locks_the_account_until_an_administrator_unlocks_it_with_a_reason() {
    let backend = jetstream().await;
    let database = TestDatabase::fresh().await;
    let log = backend.backend.log.clone();
    let read_models =
        emr_http::ReadModelState { db: database.db.clone(), log: log.clone(), search_index: emr_tests::read_models::blind_index() };
    let api = ApiServer::start_with(&backend.backend, emr_tests::sessions::redis("stuffing").await, Some(read_models)).await;
    let projectors = emr_tests::read_models::RunningProjectors::start(database.db.clone(), log.clone(), backend.backend.phi_codec(), 100);
    let (url, alerts) = webhook().await;
    let sinks: Vec<Arc<dyn emr_detection::AlertSink>> =
        vec![Arc::new(LogSink), Arc::new(WebhookSink::new(&url, Duration::from_secs(5)).unwrap())];
    let responders = Responders { sinks, guard: Arc::new(api.identity.clone()) };
    let worker = Arc::new(
        DetectionWorker::open(&backend.backend, database.db.clone(), responders, WorkerConfig::default(), DomainServices::default())
            .await
            .unwrap(),
    );
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let running = {
        let worker = worker.clone();
        tokio::spawn(async move { worker.run(async move { drop(stopped.wait_for(|stop| *stop).await) }).await })
    };

    let (_, admin) = api.account("stuff_admin", Role::Admin).await;
    let (officer, auditor) = api.account("stuff_auditor", Role::Auditor).await;
    let (victim, victim_token) = api.account("stuff_nurse", Role::Nurse).await;
    for name in ["stuff_a", "stuff_b", "stuff_c"] {
        api.account(name, Role::Physician).await;
    }
    let attacker: IpAddr = "203.0.113.66".parse().unwrap();
    for name in ["stuff_a", "stuff_b", "stuff_c", "no_such_user", "stuff_admin"] {
        let username = Username::parse(name).unwrap();
        assert!(api.identity.login(&username, "Leaked-Password-1".into(), Some(attacker)).await.is_err());
    }
    let victim_name = Username::parse("stuff_nurse").unwrap();
    api.identity.login(&victim_name, PASSWORD.into(), Some(attacker)).await.expect("the leaked password works once");

    let locked = eventually("the suspension", async || {
        match api.identity.login(&victim_name, PASSWORD.into(), Some("10.0.0.5".parse().unwrap())).await {
            Err(emr_auth::AuthError::Locked { .. }) => Some(()),
            _ => None,
        }
    });
    locked.await;
    let (status, revoked) = api.get(&format!("/v1/accounts/{victim}"), &victim_token).await;
    assert_eq!(status, 401, "the victim's sessions were ended: {revoked}");
    let alert =
        eventually("the webhook alert", async || alerts.lock().unwrap().iter().find(|a| a["severity"] == "critical").cloned()).await;
    assert_eq!((alert["kind"].as_str(), alert["user_id"].as_str()), (Some("password_spraying"), Some(victim.to_string().as_str())));

    let critical = eventually("the security event in the read model", async || {
        let (_, events) = api.get("/v1/security/events?severity=critical", &auditor).await;
        events.as_array().and_then(|rows| rows.first().cloned()).filter(|row| row["responses"] == "alert,reauthenticate,lock_account")
    })
    .await;
    let id = critical["security_event_id"].as_str().unwrap();
    let (status, shown) = api.get(&format!("/v1/security/events/{id}"), &auditor).await;
    assert_eq!(status, 200, "{shown}");
    let evidence: Vec<&str> = shown["evidence_events"].as_array().unwrap().iter().filter_map(|e| e["event_type"].as_str()).collect();
    assert!(evidence.len() >= 6 && evidence.iter().all(|t| *t == "SignInAttempted"), "the attempts, replayed from the log: {evidence:?}");
    let (status, _) = api.get("/v1/security/events", &victim_token).await;
    assert_eq!(status, 401);
    let (_, doctor) = api.account("stuff_doctor", Role::Physician).await;
    let (status, refused) = api.get("/v1/security/events", &doctor).await;
    assert_eq!((status, refused["code"].as_str()), (403, Some("role-not-permitted")), "only security officers read them");

    let triage = format!("/v1/security/events/{id}");
    assert_eq!(api.post(&format!("{triage}/acknowledgement"), Some(&auditor), &json!({})).await.0, 200);
    assert_eq!(api.post(&format!("{triage}/assignment"), Some(&auditor), &json!({"assignee": officer})).await.0, 200);
    let (status, resolved) = api.post(&format!("{triage}/resolution"), Some(&auditor), &json!({"outcome": "true_positive"})).await;
    assert_eq!(status, 200, "{resolved}");
    let (status, conflict) = api.post(&format!("{triage}/resolution"), Some(&auditor), &json!({"outcome": "false_positive"})).await;
    assert_eq!((status, conflict["code"].as_str()), (409, Some("security-event-resolved")));
    let closed = eventually("the resolution in the read model", async || {
        let (_, shown) = api.get(&triage, &auditor).await;
        (shown["status"] == "resolved").then_some(shown)
    })
    .await;
    assert_eq!((closed["outcome"].as_str(), closed["assignee"].as_str()), (Some("true_positive"), Some(officer.to_string().as_str())));

    let (status, outcomes) = api.get("/v1/security/outcomes", &auditor).await;
    assert_eq!(status, 200, "{outcomes}");
    let spraying = outcomes.as_array().unwrap().iter().find(|o| o["kind"] == "password_spraying").cloned().unwrap_or_default();
    assert_eq!((spraying["true_positives"].as_i64(), spraying["precision"].as_f64()), (Some(1), Some(1.0)), "{outcomes}");

    let (status, account) = api.get(&format!("/v1/accounts/{victim}"), &admin).await;
    assert_eq!((status, account["suspended_by"].as_str()), (200, Some(id)), "{account}");

    let unlock = format!("/v1/accounts/{victim}/unlock");
    let (status, refused) = api.post(&unlock, Some(&admin), &json!({})).await;
    assert_eq!((status, refused["code"].as_str()), (422, Some("account-rule")), "a suspension needs a reason: {refused}");
    let (status, _) = api.post(&unlock, Some(&admin), &json!({"reason": "password reset with the user in person"})).await;
    assert_eq!(status, 204);
    api.identity.login(&victim_name, PASSWORD.into(), Some("10.0.0.5".parse().unwrap())).await.expect("unlocked");
    let (status, risk) = api.get("/v1/security/risk", &auditor).await;
    assert_eq!(status, 200);
    assert!(risk.as_array().unwrap().iter().any(|r| r["user_id"] == victim.to_string() && r["current"].as_f64().unwrap() > 50.0), "{risk}");

    // The administrator's reset of the victim's authenticator is raised for review.
    let (status, _) = api
        .post(&format!("/v1/accounts/{victim}/mfa-reset"), Some(&admin), &json!({"reason": "authenticator exposed in the incident"}))
        .await;
    assert_eq!(status, 204);
    let reviewed = eventually("the MFA reset's security event", async || {
        let (_, events) = api.get("/v1/security/events?kind=account_security_change", &auditor).await;
        events.as_array().and_then(|rows| rows.first().cloned())
    })
    .await;
    assert_eq!(
        (reviewed["severity"].as_str(), reviewed["user_id"].as_str()),
        (Some("medium"), Some(victim.to_string().as_str())),
        "{reviewed}"
    );

    // Whoever enrols the new authenticator does so from a network the account never used:
    // right after the reset, that is a likely takeover.
    let elsewhere: IpAddr = "198.51.100.20".parse().unwrap();
    let challenge = api.identity.login(&victim_name, PASSWORD.into(), Some(elsewhere)).await.expect("the password still works");
    let enrolment = api.identity.enrol(&challenge.mfa_token).await.expect("the reset asks for a new authenticator");
    let code = emr_tests::accounts::totp_code(&enrolment.secret, "stuff_nurse");
    api.identity.verify(&challenge.mfa_token, &code, Some(elsewhere)).await.expect("a session from the new network");
    let takeover = eventually("the likely takeover's security event", async || {
        let (_, events) = api.get("/v1/security/events?kind=account_security_change&severity=high", &auditor).await;
        events.as_array().and_then(|rows| rows.first().cloned())
    })
    .await;
    assert_eq!(takeover["user_id"].as_str(), Some(victim.to_string().as_str()), "{takeover}");
    assert!(takeover["summary"].as_str().is_some_and(|s| s.contains("198.51.100.20") && s.contains("MFA reset")), "{takeover}");

    stop.send(true).unwrap();
    running.await.unwrap();
    projectors.stop().await;
    assert!(worker.risk(victim).await > 50.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_at_any_point_raises_each_detection_exactly_once_after_restarts() {
    use emr_domain::detection::DetectionSettings;
    use emr_tests::detection_quality::detect;
    use std::collections::{BTreeMap, BTreeSet};

    let backend = jetstream().await;
    let database = TestDatabase::fresh().await;
    let api = ApiServer::start_with(&backend.backend, emr_tests::sessions::redis("detector-kills").await, None).await;
    let trace = generate(TraceShape { days: 33, departments: 2, ..TraceShape::small() });
    let positions = trace_log::write(&backend.backend, &trace).await;
    let log = backend.backend.log.clone();
    let head = log.head().await.unwrap();
    // What one uninterrupted fold finds, by id.
    let expected: BTreeSet<String> = detect(&trace, DetectionSettings::default()).iter().map(|found| found.id.to_string()).collect();
    assert!(expected.len() > 10, "the trace must give the worker something to raise");

    let config = WorkerConfig { batch_size: 200, save_every: Duration::from_millis(100), ..WorkerConfig::default() };
    let open = || logging_worker(&backend.backend, &database, &api, config.clone());
    // The clean weeks go by uninterrupted; the kills land where the attacks are.
    let first_attack = trace.events.iter().position(|event| event.attack.is_some()).unwrap();
    open().await.catch_up(positions[first_attack] - 1).await.unwrap();
    let mut kills = 0;
    for round in 0u64..40 {
        let worker = open().await;
        let running = tokio::spawn(async move { worker.catch_up(u64::MAX).await.map(drop) });
        tokio::time::sleep(Duration::from_millis(100 + (round * 131) % 500)).await;
        running.abort();
        match running.await {
            Err(join) if join.is_cancelled() => kills += 1,
            Err(join) => panic!("the worker panicked: {join}"),
            Ok(result) => result.unwrap(),
        }
    }
    assert!(kills > 0, "the test must actually kill the worker");
    open().await.catch_up(head).await.unwrap();

    let mut raised_ids: BTreeMap<String, usize> = BTreeMap::new();
    for found in raised(&log).await {
        *raised_ids.entry(found.id.to_string()).or_default() += 1;
    }
    assert!(raised_ids.values().all(|count| *count == 1), "a detection raised twice after {kills} kills");
    let found: BTreeSet<String> = raised_ids.into_keys().collect();
    assert_eq!(found, expected, "after {kills} kills the log holds exactly what one uninterrupted fold finds");
}
