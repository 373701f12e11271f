//! Many clients writing the same record, and the same patient, at once through
//! the HTTP API: a losing writer gets a clear, retryable 409; no accepted update
//! is lost; the final state is the fold of exactly the accepted commands.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use emr_domain::actor::Role;
use emr_eventstore::conformance::Backend;
use emr_tests::api_client::{Method, patient_registration, record_creation};
use emr_tests::api_server::ApiServer;
use emr_tests::{backends, report};
use serde_json::{Value, json};

const WRITERS: usize = 16;

/// Sends `bodies` to `path` at once, each once with its own key. Returns the
/// keys, the accepted (body index, position) and the refused indexes.
async fn all_at_once(api: &Arc<ApiServer>, token: &str, method: Method, path: &str, bodies: Vec<Value>) -> Contention {
    let start = Arc::new(tokio::sync::Barrier::new(bodies.len()));
    let mut tasks = Vec::new();
    for (index, body) in bodies.into_iter().enumerate() {
        let (api, token, path, method, start) = (api.clone(), token.to_owned(), path.to_owned(), method.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            let key = uuid::Uuid::now_v7();
            start.wait().await;
            let reply = api.try_send(method, &path, Some(&token), Some(key), Some(&body)).await.unwrap();
            (index, key, body, reply)
        }));
    }
    let mut contention = Contention::default();
    for task in tasks {
        let (index, key, body, (status, reply)) = task.await.unwrap();
        match status {
            200 | 201 => contention.accepted.push((reply["position"].as_u64().unwrap(), index)),
            409 => {
                assert_eq!(reply["code"], "concurrent-update", "{reply}");
                assert_eq!(reply["retryable"], true, "a conflict says it is retryable: {reply}");
                contention.refused.push((key, body));
            }
            other => panic!("a concurrent writer got {other}: {reply}"),
        }
    }
    contention.accepted.sort_unstable();
    contention
}

#[derive(Default)]
struct Contention {
    /// (position, body index), in log order.
    accepted: Vec<(u64, usize)>,
    refused: Vec<(uuid::Uuid, Value)>,
}

async fn writers_on_one_record_and_one_patient(backend: Backend, name: &str) {
    let api = Arc::new(ApiServer::start(&backend).await);
    let (doctor, token) = api.account("contended_doctor", Role::Physician).await;
    let (patient, patient_token) = api.account("contended_patient", Role::Patient).await;
    let patient = patient.to_string();
    let mut registration = patient_registration("Contended");
    registration["patient_id"] = json!(patient);
    api.until_acknowledged(&token, "/v1/patients", uuid::Uuid::now_v7(), &registration).await;
    let grant = json!({"patient_id": patient, "grantee": doctor, "scopes": ["read", "write"],
                       "expires_at": chrono::Utc::now() + chrono::Duration::days(1), "reason": "treating physician"});
    api.until_acknowledged(&patient_token, "/v1/grants", uuid::Uuid::now_v7(), &grant).await;
    let (record, _) = api
        .until_acknowledged(&token, "/v1/records", uuid::Uuid::now_v7(), &record_creation(&patient, &doctor.to_string(), "Original"))
        .await;
    let record = record["aggregate_id"].as_str().unwrap().to_owned();

    // One record, many amendments at once.
    let amendment = |n: usize| {
        json!({"content": {"title": format!("Amendment {n}"), "description": null, "diagnosis": null, "treatment": null, "medications": []},
               "reason": "concurrent correction"})
    };
    let path = format!("/v1/records/{record}/amendments");
    let first = all_at_once(&api, &token, Method::POST, &path, (0..WRITERS).map(amendment).collect()).await;
    assert!(!first.accepted.is_empty(), "at least one writer wins");
    let (_, shown) = api.get(&format!("/v1/records/{record}"), &token).await;
    let titles: Vec<String> =
        shown["versions"].as_array().unwrap().iter().map(|v| v["content"]["title"].as_str().unwrap().to_owned()).collect();
    let mut expected = vec!["Original".to_owned()];
    expected.extend(first.accepted.iter().map(|(_, n)| format!("Amendment {n}")));
    assert_eq!(titles, expected, "the record is the fold of exactly the accepted amendments, in log order");
    // The losers retry with their keys: every amendment lands exactly once.
    for (key, body) in &first.refused {
        api.until_acknowledged(&token, &path, *key, body).await;
    }
    let (_, shown) = api.get(&format!("/v1/records/{record}"), &token).await;
    let mut titles: Vec<String> =
        shown["versions"].as_array().unwrap().iter().map(|v| v["content"]["title"].as_str().unwrap().to_owned()).collect();
    titles.sort_unstable();
    let mut every: Vec<String> = (0..WRITERS).map(|n| format!("Amendment {n}")).chain(["Original".to_owned()]).collect();
    every.sort_unstable();
    assert_eq!(titles, every, "after retries, each amendment is a version exactly once");

    // One patient: demographics rewritten by many at once, records created beside them.
    let demographics = |n: usize| json!({"full_name": format!("Name {n}"), "date_of_birth": "1980-01-02", "gender": "female", "phone_number": null, "email": null, "address": null});
    let path = format!("/v1/patients/{patient}/demographics");
    let renames = all_at_once(&api, &token, Method::PUT, &path, (0..WRITERS).map(demographics).collect());
    let records = all_at_once(
        &api,
        &token,
        Method::POST,
        "/v1/records",
        (0..WRITERS).map(|n| record_creation(&patient, &doctor.to_string(), &format!("Visit {n}"))).collect(),
    );
    let (renames, records) = tokio::join!(renames, records);
    assert_eq!(records.accepted.len(), WRITERS, "new records of one patient never contend");
    let (_, shown) = api.get(&format!("/v1/patients/{patient}"), &token).await;
    let (_, last) = renames.accepted.last().unwrap();
    assert_eq!(shown["demographics"]["full_name"], format!("Name {last}"), "the last accepted rewrite is the state");
    let (_, auditor) = api.account("contended_auditor", Role::Auditor).await;
    let (_, history) = api.get(&format!("/v1/audit/patient/{patient}/history"), &auditor).await;
    let updates = history.as_array().map_or(0, |events| events.iter().filter(|e| e["event_type"] == "DemographicsUpdated").count());
    assert_eq!(updates, renames.accepted.len(), "one event per accepted rewrite: {history}");

    report::record(
        &format!("concurrency-{name}"),
        json!({"writers": WRITERS, "amendments_accepted_first_round": first.accepted.len(), "amendments_refused_409": first.refused.len(),
               "amendments_after_retry": WRITERS, "demographics_accepted": renames.accepted.len(), "demographics_refused_409": renames.refused.len(),
               "records_created_beside": records.accepted.len(), "lost_updates": 0}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_jetstream_lose_no_update() {
    let test = backends::jetstream().await;
    writers_on_one_record_and_one_patient(test.backend.clone(), "jetstream").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_on_the_embedded_store_lose_no_update() {
    let test = backends::sqlite().await;
    writers_on_one_record_and_one_patient(test.backend.clone(), "embedded").await;
}
