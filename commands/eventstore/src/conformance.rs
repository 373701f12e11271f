//! The conformance suite of event-log backends: one executable specification that
//! runs unchanged against JetStream and the embedded SQLite store.
//!
//! Each check takes a fresh, empty [`Backend`] and panics on a violation. The test
//! crate instantiates every check for every backend.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use emr_domain::DomainServices;
use emr_domain::actor::{Actor, Role};
use emr_domain::fixtures::{content, create_record, demographics, register, text};
use emr_domain::ids::{CommandId, EventId, PatientId, RecordId, UserId};
use emr_domain::metadata::{CommandContext, EventMetadata};
use emr_domain::patient::{Patient, PatientCommand, PatientStatus};
use emr_domain::phi::Phi;
use emr_domain::record::{MedicalRecord, RecordCommand, RecordStatus};
use emr_domain::values::RecordType;
use futures::StreamExt;
use serde_json::json;

use crate::{
    AggregateKey, CodecError, CommitRecord, CommitRequest, ENVELOPE_SCHEMA, EmrEventStore, EventLog, EventRecord, EventStorePorts,
    ExecuteError, KeyError, KeyState, KeyVault, LogError, LogReader, PhiCodec, PhiError, StoreConfig, StoreError,
};

/// A backend under test: its ports.
pub type Backend = EventStorePorts;

impl Backend {
    /// A PHI codec as a separate process would have one: its own vault, no key cache.
    pub fn phi(&self) -> Arc<PhiCodec> {
        Arc::new(PhiCodec::new(Arc::new(KeyVault::with_cache(self.kek.clone(), self.keys.clone(), Duration::ZERO, 1))))
    }

    /// A store as a separate process would have one.
    pub fn store<A: emr_domain::upcasting::EventSchema + Clone>(&self, config: StoreConfig) -> EmrEventStore<A> {
        EmrEventStore::new(self.log.clone(), self.phi(), Some(self.snapshots.clone()), config)
    }

    fn default_store<A: emr_domain::upcasting::EventSchema + Clone>(&self) -> EmrEventStore<A> {
        self.store(StoreConfig::default())
    }
}

fn services() -> DomainServices {
    DomainServices::default()
}

fn doctor() -> CommandContext {
    CommandContext::new(Actor::new(UserId::new(), Role::Physician))
}

fn amend(title: &str) -> RecordCommand {
    RecordCommand::Amend { content: content(title), reason: text("clinical update") }
}

fn raw_request(key: &AggregateKey, expected: u64, payload: &[u8]) -> CommitRequest {
    CommitRequest {
        key: key.clone(),
        expected_last_position: expected,
        commit_id: uuid::Uuid::new_v4().to_string(),
        payload: payload.to_vec(),
    }
}

async fn all_payload_bytes(log: &dyn EventLog) -> Vec<u8> {
    log.read_from(1, usize::MAX >> 1).await.unwrap().into_iter().flat_map(|c| c.payload).collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Commits get increasing positions; each aggregate reads back only its own, in
/// order; the global read sees all of them in order.
pub async fn log_appends_in_order(backend: Backend) {
    let log = backend.log;
    let a = AggregateKey::new("patient", "a").unwrap();
    let b = AggregateKey::new("patient", "b").unwrap();
    assert_eq!(log.head().await.unwrap(), 0, "a new log is empty");
    let p1 = log.append(raw_request(&a, 0, b"a1")).await.unwrap();
    let p2 = log.append(raw_request(&b, 0, b"b1")).await.unwrap();
    let p3 = log.append(raw_request(&a, p1.position, b"a2")).await.unwrap();
    assert!(p1.position < p2.position && p2.position < p3.position);
    assert!(!p1.duplicate && !p2.duplicate && !p3.duplicate);
    let own: Vec<_> = log.read_aggregate(&a, 0).await.unwrap().into_iter().map(|c| c.payload).collect();
    assert_eq!(own, [b"a1".to_vec(), b"a2".to_vec()]);
    assert_eq!(log.read_aggregate(&a, p1.position).await.unwrap().len(), 1, "reads after a position");
    assert!(log.read_aggregate(&a, p3.position).await.unwrap().is_empty(), "nothing new after the last commit");
    let all: Vec<_> = log.read_from(1, 10).await.unwrap().into_iter().map(|c| (c.position, c.key)).collect();
    assert_eq!(all, [(p1.position, a.clone()), (p2.position, b), (p3.position, a)]);
    assert_eq!(log.read_from(p2.position, 1).await.unwrap().len(), 1, "a limit is honoured");
    assert_eq!(log.head().await.unwrap(), p3.position);
}

/// Commits appended in order (a restore) land at consecutive positions in that
/// order, each checked against its own expectation: the first stale one is refused.
pub async fn log_appends_batches_in_order(backend: Backend) {
    let log = backend.log;
    let (a, b) = (AggregateKey::new("patient", "a").unwrap(), AggregateKey::new("patient", "b").unwrap());
    let start = log.head().await.unwrap() + 1;
    let batch =
        vec![raw_request(&a, 0, b"a1"), raw_request(&b, 0, b"b1"), raw_request(&a, start, b"a2"), raw_request(&a, start + 2, b"a3")];
    let appended = log.append_in_order(batch).await.unwrap();
    assert_eq!(appended.iter().map(|a| a.position).collect::<Vec<_>>(), [start, start + 1, start + 2, start + 3]);
    let all: Vec<_> = log.read_from(start, 10).await.unwrap().into_iter().map(|c| c.payload).collect();
    assert_eq!(all, [b"a1".to_vec(), b"b1".to_vec(), b"a2".to_vec(), b"a3".to_vec()]);
    let stale = log.append_in_order(vec![raw_request(&b, start + 1, b"b2"), raw_request(&b, start + 1, b"b2 again")]).await;
    assert!(matches!(stale, Err(LogError::Conflict { .. })), "the second expects a position the first moved: {stale:?}");
    assert_eq!(log.read_aggregate(&b, 0).await.unwrap().len(), 2, "the first was appended, the stale one not");
}

/// Independent commits appended each on its own: every one is checked against
/// its own expectation and answered in the order given; a refused one leaves
/// the others appended, and a repeated commit id answers its original position.
pub async fn log_appends_each_on_its_own(backend: Backend) {
    let log = backend.log;
    let (a, b, c) = (
        AggregateKey::new("patient", "a").unwrap(),
        AggregateKey::new("patient", "b").unwrap(),
        AggregateKey::new("patient", "c").unwrap(),
    );
    let taken = log.append(raw_request(&b, 0, b"b0")).await.unwrap();
    let repeated = raw_request(&c, 0, b"c1");
    let answers = log.append_each(vec![raw_request(&a, 0, b"a1"), raw_request(&b, 0, b"b1"), repeated.clone()]).await;
    let [first, refused, third] = answers.as_slice() else { panic!("one answer per commit: {answers:?}") };
    let (first, third) = (first.as_ref().unwrap(), third.as_ref().unwrap());
    assert!(matches!(refused, Err(LogError::Conflict { .. })), "b already has a commit: {refused:?}");
    assert!(taken.position < first.position && first.position < third.position, "{taken:?} {first:?} {third:?}");
    let all: Vec<_> = log.read_from(first.position, 10).await.unwrap().into_iter().map(|c| c.payload).collect();
    assert_eq!(all, [b"a1".to_vec(), b"c1".to_vec()], "the refused one left no trace");
    let again = log.append_each(vec![repeated]).await;
    assert!(matches!(again.as_slice(), [Ok(a)] if a.duplicate && a.position == third.position), "{again:?}");
    assert!(log.append_each(Vec::new()).await.is_empty());
}

/// A batch of creations answers each command as `execute_creation` would, in
/// order: new aggregates created, a taken id refused by the aggregate's own
/// rule, a retried command answered with its original result.
pub async fn batched_creations_answer_each_as_one_would(backend: Backend) {
    let patient = PatientId::new();
    let store = backend.store::<MedicalRecord>(StoreConfig::default());
    let (taken, fresh) = (RecordId::new(), [RecordId::new(), RecordId::new()]);
    let earlier = doctor();
    store.execute_creation(&taken.to_string(), create_record(taken, patient, "first"), &services(), &earlier).await.unwrap();
    let item = |record: RecordId, title: &str, context: &CommandContext| {
        (record.to_string(), create_record(record, patient, title), context.clone())
    };
    let batch = vec![
        item(fresh[0], "a", &doctor()),
        item(taken, "again", &doctor()),
        item(fresh[1], "b", &doctor()),
        item(taken, "first", &earlier),
        ("not a valid id".to_owned(), create_record(fresh[0], patient, "c"), doctor()),
    ];
    let other = backend.store::<MedicalRecord>(StoreConfig::default());
    let answers = other.execute_creations(batch, &services()).await;
    assert_eq!(answers.len(), 5, "one answer per command");
    let created: Vec<u64> = [&answers[0], &answers[2]].iter().map(|a| a.as_ref().unwrap().position.unwrap()).collect();
    assert!(created[0] < created[1], "created in order: {created:?}");
    assert!(matches!(answers[1], Err(ExecuteError::Rejected(_))), "a taken id: {:?}", answers[1]);
    assert!(answers[3].as_ref().is_ok_and(|retried| retried.replayed), "a retry: {:?}", answers[3]);
    assert!(matches!(answers[4], Err(ExecuteError::Store(_))), "an invalid id: {:?}", answers[4]);
    for (record, title) in fresh.iter().zip(["a", "b"]) {
        let loaded =
            backend.store::<MedicalRecord>(StoreConfig { cache_capacity: 0, ..StoreConfig::default() }).load(&record.to_string()).await;
        assert_eq!(loaded.unwrap().sequence(), 1, "{title} was created once");
    }
}

/// An append that expects a stale last position is refused, whatever it expected.
pub async fn log_refuses_stale_expectations(backend: Backend) {
    let log = backend.log;
    let key = AggregateKey::new("medical_record", "r").unwrap();
    let first = log.append(raw_request(&key, 0, b"1")).await.unwrap();
    for stale in [0, first.position + 1, first.position + 100] {
        let refused = log.append(raw_request(&key, stale, b"2")).await;
        assert!(matches!(refused, Err(LogError::Conflict { .. })), "expected {stale} must conflict: {refused:?}");
    }
    assert_eq!(log.read_aggregate(&key, 0).await.unwrap().len(), 1, "refused appends leave no trace");
}

/// Appending a commit id again appends nothing and answers the original position.
pub async fn log_drops_repeated_commit_ids(backend: Backend) {
    let log = backend.log;
    let key = AggregateKey::new("patient", "p").unwrap();
    let request = raw_request(&key, 0, b"once");
    let first = log.append(request.clone()).await.unwrap();
    let again = log.append(request).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.position, first.position);
    assert_eq!(log.head().await.unwrap(), first.position);
}

/// Commits appended together all land, the existing aggregate's first; a retry
/// of the same change appends nothing again.
pub async fn log_appends_changes_together(backend: Backend) {
    let log = backend.log;
    let (existing, created, also) = (
        AggregateKey::new("patient", "e").unwrap(),
        AggregateKey::new("medical_record", "c").unwrap(),
        AggregateKey::new("medical_record", "d").unwrap(),
    );
    let first = log.append(raw_request(&existing, 0, b"e1")).await.unwrap();
    let change = vec![raw_request(&existing, first.position, b"e2"), raw_request(&created, 0, b"c1"), raw_request(&also, 0, b"d1")];
    let appended = log.append_together(change.clone()).await.unwrap();
    assert_eq!(appended.len(), 3);
    assert!(appended.iter().all(|a| !a.duplicate));
    assert!(appended.windows(2).all(|w| w[0].position < w[1].position), "in the order given: {appended:?}");
    for (key, payload) in [(&existing, b"e2"), (&created, b"c1"), (&also, b"d1")] {
        let last = log.read_aggregate(key, 0).await.unwrap().pop().unwrap();
        assert_eq!(last.payload, payload.to_vec(), "{key:?}");
    }
    let head = log.head().await.unwrap();
    let again = log.append_together(change).await.unwrap();
    assert!(again.iter().all(|a| a.duplicate), "a retried change is recognised: {again:?}");
    assert_eq!(again.iter().map(|a| a.position).collect::<Vec<_>>(), appended.iter().map(|a| a.position).collect::<Vec<_>>());
    assert_eq!(log.head().await.unwrap(), head, "nothing appended twice");
}

/// A change whose deciding commit is stale is refused whole: none of its commits
/// lands. Changes the log cannot make one are refused before anything is written.
pub async fn log_refuses_changes_whole(backend: Backend) {
    let log = backend.log;
    let (existing, created) = (AggregateKey::new("patient", "e").unwrap(), AggregateKey::new("medical_record", "c").unwrap());
    let first = log.append(raw_request(&existing, 0, b"e1")).await.unwrap();
    log.append(raw_request(&existing, first.position, b"e2 by another writer")).await.unwrap();
    let head = log.head().await.unwrap();
    let stale = log.append_together(vec![raw_request(&existing, first.position, b"e2"), raw_request(&created, 0, b"c1")]).await;
    assert!(matches!(stale, Err(LogError::Conflict { .. })), "{stale:?}");
    assert!(log.read_aggregate(&created, 0).await.unwrap().is_empty(), "the created aggregate was not written");
    assert_eq!(log.head().await.unwrap(), head);
    let other = AggregateKey::new("patient", "f").unwrap();
    let existing_last = log.head().await.unwrap();
    let second_on_existing = vec![raw_request(&created, 0, b"c1"), raw_request(&existing, existing_last, b"e3")];
    let twice = vec![raw_request(&other, 0, b"f1"), raw_request(&other, 0, b"f1 again")];
    for refused in [second_on_existing, twice, Vec::new()] {
        let answer = log.append_together(refused).await;
        assert!(matches!(answer, Err(LogError::NotTogether(_))), "{answer:?}");
    }
    assert_eq!(log.head().await.unwrap(), head, "refused changes leave no trace");
}

/// A subscription from a position yields the commits from there, then new ones.
pub async fn subscription_follows_the_log(backend: Backend) {
    let log = backend.log;
    let key = AggregateKey::new("patient", "s").unwrap();
    let mut last = 0;
    for i in 0..3 {
        last = log.append(raw_request(&key, last, format!("c{i}").as_bytes())).await.unwrap().position;
    }
    let second = log.read_from(1, 10).await.unwrap()[1].position;
    let mut subscription = log.subscribe(second).await.unwrap();
    async fn next(s: &mut futures::stream::BoxStream<'static, Result<crate::StoredCommit, LogError>>) -> crate::StoredCommit {
        tokio::time::timeout(Duration::from_secs(10), s.next()).await.expect("subscription stalled").unwrap().unwrap()
    }
    assert_eq!(next(&mut subscription).await.payload, b"c1");
    assert_eq!(next(&mut subscription).await.payload, b"c2");
    log.append(raw_request(&key, last, b"live")).await.unwrap();
    assert_eq!(next(&mut subscription).await.payload, b"live", "commits appended after subscribing arrive");
}

/// A follower reads what [`LogReader::read`] reads for the same position and
/// limit: batch after batch, past commits appended between its calls, and again
/// from wherever it is asked.
pub async fn followers_read_as_reads_do(backend: Backend) {
    let patients = backend.default_store::<Patient>();
    let register_one = || async {
        let patient = PatientId::new();
        patients.execute(&patient.to_string(), register(patient, "Follower"), &services(), &doctor()).await.unwrap().position.unwrap()
    };
    for _ in 0..5 {
        register_one().await;
    }
    let reader = LogReader::new(backend.log.clone());
    let mut follower = reader.follower();
    let first = follower.events_after(0, 2).await.unwrap();
    assert_eq!(first, reader.read(1, 2).await.unwrap());
    let after_first = first.last().unwrap().metadata.position;
    let rest = follower.events_after(after_first, 10).await.unwrap();
    assert_eq!(rest, reader.read(after_first + 1, 10).await.unwrap(), "the next batch continues the first");
    let head = rest.last().unwrap().metadata.position;
    assert!(follower.events_after(head, 10).await.unwrap().is_empty(), "nothing follows the head");
    let live = register_one().await;
    let appended = follower.events_after(head, 10).await.unwrap();
    assert_eq!(appended.iter().map(|e| e.metadata.position).collect::<Vec<_>>(), [live], "a commit appended since");
    let again = follower.events_after(after_first, 1).await.unwrap();
    assert_eq!(again, reader.read(after_first + 1, 1).await.unwrap(), "asked again from an earlier position");
}

/// What a command appends loads back, with its full envelope.
pub async fn aggregates_round_trip(backend: Backend) {
    let store = backend.default_store::<Patient>();
    let patient = PatientId::new();
    let id = patient.to_string();
    let context = doctor();
    let registered = store.execute(&id, register(patient, "Chen Jing"), &services(), &context).await.unwrap();
    assert_eq!(registered.events.len(), 1);
    let position = registered.position.unwrap();
    let update = PatientCommand::UpdateDemographics { demographics: demographics("Chen Jing-Yi") };
    store.execute(&id, update, &services(), &doctor()).await.unwrap();

    let fresh = backend.store::<Patient>(StoreConfig { snapshot_every: 0, cache_capacity: 0, ..StoreConfig::default() });
    let loaded = fresh.load(&id).await.unwrap();
    assert_eq!(loaded.sequence(), 2);
    assert_eq!(loaded.state().status(), PatientStatus::Active);
    assert_eq!(loaded.state().demographics().and_then(Phi::value).map(|d| d.full_name.as_str()), Some("Chen Jing-Yi"));

    let events = fresh.events(&id).await.unwrap();
    assert_eq!(events.iter().map(|e| e.sequence).collect::<Vec<_>>(), [1, 2]);
    let first = EventMetadata::from_map(&events[0].metadata).unwrap();
    assert_eq!(first.context, context, "actor, command, correlation and causation are kept");
    assert_eq!(first.position, position);
    assert_eq!(first.aggregate_type, "patient");
    assert_eq!(first.schema_version, "1.0");
    assert_eq!(first.event_id.as_uuid().get_version_num(), 7, "event ids are UUIDv7");
}

/// Writers that loaded the same version race: exactly one commit wins.
pub async fn concurrent_writers_exactly_one_wins(backend: Backend) {
    let store = backend.default_store::<MedicalRecord>();
    let (record, patient) = (RecordId::new(), PatientId::new());
    let id = record.to_string();
    store.execute(&id, create_record(record, patient, "v1"), &services(), &doctor()).await.unwrap();
    let writers = 8;
    let mut loaded = Vec::new();
    for _ in 0..writers {
        let store = backend.store::<MedicalRecord>(StoreConfig::default());
        let context = store.load(&id).await.unwrap();
        loaded.push((store, context));
    }
    assert!(loaded.iter().all(|(_, context)| context.sequence() == 1), "every writer starts from the same version");
    let start = Arc::new(tokio::sync::Barrier::new(writers));
    let mut tasks = Vec::new();
    for (n, (store, mut context)) in loaded.into_iter().enumerate() {
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            let events = context.state().decide(amend(&format!("writer {n}")), chrono::Utc::now()).unwrap();
            for event in &events {
                cqrs_es::Aggregate::apply(cqrs_es::AggregateContext::aggregate(&mut context), event.clone());
            }
            start.wait().await;
            store.append(events, context, &doctor()).await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Log(LogError::Conflict { .. })) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(won, 1, "exactly one writer per sequence");
    let loaded = backend
        .store::<MedicalRecord>(StoreConfig { snapshot_every: 0, cache_capacity: 0, ..StoreConfig::default() })
        .load(&id)
        .await
        .unwrap();
    assert_eq!(loaded.sequence(), 2);
}

/// Writers that retry on conflict never lose an update: every amendment lands once.
pub async fn no_update_is_lost_under_contention(backend: Backend) {
    let (record, patient) = (RecordId::new(), PatientId::new());
    let id = record.to_string();
    backend.default_store::<MedicalRecord>().execute(&id, create_record(record, patient, "v1"), &services(), &doctor()).await.unwrap();
    let (writers, amendments) = (4, 5);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = backend.store::<MedicalRecord>(StoreConfig::default());
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for a in 0..amendments {
                let context = doctor();
                loop {
                    match store.execute(&id, amend(&format!("w{w}-a{a}")), &services(), &context).await {
                        Ok(_) => break,
                        Err(ExecuteError::Store(error)) if error.is_retryable() => conflicts += 1,
                        Err(other) => panic!("unexpected error: {other}"),
                    }
                }
            }
            conflicts
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let loaded = backend
        .store::<MedicalRecord>(StoreConfig { snapshot_every: 0, cache_capacity: 0, ..StoreConfig::default() })
        .load(&id)
        .await
        .unwrap();
    let titles: BTreeSet<String> =
        loaded.state().versions().iter().skip(1).map(|v| v.content.value().unwrap().title.as_str().to_owned()).collect();
    assert_eq!(titles.len(), writers * amendments, "every accepted amendment is in the final state");
    assert_eq!(loaded.state().current().unwrap().version as usize, 1 + writers * amendments);
}

/// A command retried with the same id is applied once and answers its original result,
/// whether the retry sees the first attempt (reload) or raced it (stale state).
pub async fn retried_commands_apply_once(backend: Backend) {
    let store = backend.default_store::<MedicalRecord>();
    let (record, patient) = (RecordId::new(), PatientId::new());
    let id = record.to_string();
    store.execute(&id, create_record(record, patient, "v1"), &services(), &doctor()).await.unwrap();
    let context = doctor();
    let stale = store.load(&id).await.unwrap();
    let first = store.execute(&id, amend("v2"), &services(), &context).await.unwrap();
    assert!(!first.replayed);

    let retried = store.execute(&id, amend("v2"), &services(), &context).await.unwrap();
    assert!(retried.replayed, "a retry after success is answered from the log");
    assert_eq!(retried.position, first.position);
    assert_eq!(retried.events[0].metadata, first.events[0].metadata, "the original events, not new ones");

    let events = stale.state().decide(amend("v2"), chrono::Utc::now()).unwrap();
    let raced = store.append(events, stale, &context).await.unwrap();
    assert!(raced.replayed, "a retry that raced the first attempt is deduplicated by the log");
    assert_eq!(raced.position, first.position);

    let loaded = backend
        .store::<MedicalRecord>(StoreConfig { snapshot_every: 0, cache_capacity: 0, ..StoreConfig::default() })
        .load(&id)
        .await
        .unwrap();
    assert_eq!(loaded.sequence(), 2, "applied exactly once");
}

/// A creation appended without reading the log first ends as a plain `execute`
/// would: a new id gets its first commit; a taken id is refused by the aggregate
/// with `execute`'s own error; a retried creation answers its original result;
/// and the log holds one commit whatever the order.
pub async fn creations_without_a_read_end_as_execute_does(backend: Backend) {
    let (record, patient) = (RecordId::new(), PatientId::new());
    let id = record.to_string();
    let context = doctor();
    let first = backend.store::<MedicalRecord>(StoreConfig::default());
    let created = first.execute_creation(&id, create_record(record, patient, "v1"), &services(), &context).await.unwrap();
    assert!(!created.replayed);
    assert_eq!(created.events.len(), 1);

    // Another process, which has never seen the record.
    let other = || backend.store::<MedicalRecord>(StoreConfig::default());
    let taken = other().execute_creation(&id, create_record(record, patient, "again"), &services(), &doctor()).await;
    let refused = other().execute(&id, create_record(record, patient, "again"), &services(), &doctor()).await;
    assert!(matches!(taken, Err(ExecuteError::Rejected(_))), "{taken:?}");
    assert_eq!(format!("{taken:?}"), format!("{refused:?}"), "the aggregate's own refusal, as execute gives it");

    let retried = other().execute_creation(&id, create_record(record, patient, "v1"), &services(), &context).await.unwrap();
    assert!(retried.replayed, "a retried creation is answered from the log");
    assert_eq!(retried.position, created.position);
    assert_eq!(retried.events[0].metadata, created.events[0].metadata);

    let conditional = other().execute_creation(&id, amend("v2"), &services(), &doctor().expecting(Some(1))).await.unwrap();
    assert!(!conditional.replayed, "a conditional command on an existing aggregate runs as execute");
    let loaded = backend
        .store::<MedicalRecord>(StoreConfig { snapshot_every: 0, cache_capacity: 0, ..StoreConfig::default() })
        .load(&id)
        .await
        .unwrap();
    assert_eq!(loaded.sequence(), 2, "one creation and one amendment");
}

/// Within `cache_trust`, a cached aggregate is used without asking the log, so a
/// change by another process may go unseen by a read; a command on it is still
/// refused by the log's expectation and decided again on the latest state, so
/// no update is lost; a conditional command always compares with the latest.
pub async fn trusted_cache_entries_lose_no_update(backend: Backend) {
    let (record, patient) = (RecordId::new(), PatientId::new());
    let id = record.to_string();
    let trusting = backend.store::<MedicalRecord>(StoreConfig { cache_trust: Duration::from_secs(600), ..StoreConfig::default() });
    trusting.execute(&id, create_record(record, patient, "v1"), &services(), &doctor()).await.unwrap();
    let elsewhere = backend.store::<MedicalRecord>(StoreConfig::default());
    elsewhere.execute(&id, amend("from another process"), &services(), &doctor()).await.unwrap();

    assert_eq!(trusting.load(&id).await.unwrap().sequence(), 1, "the trusted entry is not checked with the log");
    let amended = trusting.execute(&id, amend("from the trusting process"), &services(), &doctor()).await.unwrap();
    assert_eq!(amended.events[0].sequence, 3, "decided again on the latest state");
    let conditional = trusting.execute(&id, amend("conditional"), &services(), &doctor().expecting(Some(3))).await.unwrap();
    assert_eq!(conditional.events[0].sequence, 4);

    let loaded = backend
        .store::<MedicalRecord>(StoreConfig { snapshot_every: 0, cache_capacity: 0, ..StoreConfig::default() })
        .load(&id)
        .await
        .unwrap();
    let titles: Vec<String> = loaded.state().versions().iter().map(|v| v.content.value().unwrap().title.as_str().to_owned()).collect();
    assert_eq!(titles, ["v1", "from another process", "from the trusting process", "conditional"]);
}

/// A command conditional on the version its sender read (HTTP `If-Match`) runs
/// only while the aggregate is still at that version; a retry of one that ran is
/// still answered from the log.
pub async fn conditional_commands_refuse_a_moved_aggregate(backend: Backend) {
    let store = backend.default_store::<MedicalRecord>();
    let (record, patient) = (RecordId::new(), PatientId::new());
    let id = record.to_string();
    store.execute(&id, create_record(record, patient, "v1"), &services(), &doctor()).await.unwrap();
    let on_first = doctor().expecting(Some(1));
    let ran = store.execute(&id, amend("v2"), &services(), &on_first).await.unwrap();
    assert!(!ran.replayed);

    let stale = store.execute(&id, amend("v3"), &services(), &doctor().expecting(Some(1))).await;
    assert!(matches!(stale, Err(ExecuteError::Store(StoreError::Stale { expected: 1, actual: 2 }))), "{stale:?}");
    assert!(!stale.as_ref().is_err_and(|e| matches!(e, ExecuteError::Store(s) if s.is_retryable())), "resending cannot help");
    let retried = store.execute(&id, amend("v2"), &services(), &on_first).await.unwrap();
    assert!(retried.replayed, "the retry of a command that ran is its original result");
    assert_eq!(store.load(&id).await.unwrap().sequence(), 2, "the stale command appended nothing");
}

/// A command id reused on another aggregate is refused, not mistaken for a retry.
pub async fn command_ids_belong_to_one_aggregate(backend: Backend) {
    let store = backend.default_store::<Patient>();
    let context = doctor();
    let (first, second) = (PatientId::new(), PatientId::new());
    store.execute(&first.to_string(), register(first, "A"), &services(), &context).await.unwrap();
    let reused = store.execute(&second.to_string(), register(second, "B"), &services(), &context).await;
    assert!(matches!(reused, Err(ExecuteError::Store(StoreError::CommandIdReused { .. }))), "{reused:?}");
}

/// Loading through the cache, through a snapshot, or by a full replay gives one state.
pub async fn snapshots_and_cache_match_a_full_replay(backend: Backend) {
    let config = StoreConfig { snapshot_every: 3, cache_capacity: 100, ..StoreConfig::default() };
    let writer = backend.store::<MedicalRecord>(config);
    let (record, patient) = (RecordId::new(), PatientId::new());
    let id = record.to_string();
    writer.execute(&id, create_record(record, patient, "v1"), &services(), &doctor()).await.unwrap();
    for n in 2..=10 {
        writer.execute(&id, amend(&format!("v{n}")), &services(), &doctor()).await.unwrap();
    }
    let key = AggregateKey::new("medical_record", &id).unwrap();
    assert!(backend.snapshots.get(&key).await.unwrap().is_some(), "a snapshot was written");

    let cached = writer.load(&id).await.unwrap();
    let from_snapshot = backend
        .store::<MedicalRecord>(StoreConfig { snapshot_every: 3, cache_capacity: 0, ..StoreConfig::default() })
        .load(&id)
        .await
        .unwrap();
    let replayed = EmrEventStore::<MedicalRecord>::new(
        backend.log.clone(),
        backend.phi(),
        None,
        StoreConfig { snapshot_every: 0, cache_capacity: 0, ..StoreConfig::default() },
    )
    .load(&id)
    .await
    .unwrap();
    assert_eq!(replayed.sequence(), 10);
    for (how, context) in [("cache", &cached), ("snapshot", &from_snapshot)] {
        assert_eq!(context.state(), replayed.state(), "{how} state equals full replay");
        assert_eq!((context.sequence(), context.position()), (replayed.sequence(), replayed.position()), "{how} position");
    }
    let first_command =
        replayed.commit_of(EventMetadata::from_map(&writer.events(&id).await.unwrap()[0].metadata).unwrap().context.command_id);
    assert!(first_command.is_some(), "command history survives snapshots");
    assert_eq!(
        from_snapshot.commit_of(EventMetadata::from_map(&writer.events(&id).await.unwrap()[0].metadata).unwrap().context.command_id),
        first_command
    );
}

/// No PHI is ever written in clear; erasure destroys the key, after which the PHI
/// is unreadable everywhere while the log loads and counts the same events.
pub async fn erasure_shreds_phi_and_keeps_the_log(backend: Backend) {
    let patients = backend.default_store::<Patient>();
    let records = backend.default_store::<MedicalRecord>();
    let (patient, record) = (PatientId::new(), RecordId::new());
    let name = "Zhao Xiaoling";
    patients.execute(&patient.to_string(), register(patient, name), &services(), &doctor()).await.unwrap();
    records.execute(&record.to_string(), create_record(record, patient, "Chest pain"), &services(), &doctor()).await.unwrap();
    records.execute(&record.to_string(), amend("Chest pain, resolved"), &services(), &doctor()).await.unwrap();

    let bytes = all_payload_bytes(backend.log.as_ref()).await;
    for secret in [name, "MRN-0001", "Chest pain", "Amoxicillin", "J18.9"] {
        assert!(!contains(&bytes, secret), "`{secret}` must never be stored in clear");
    }
    let reader = LogReader::new(backend.log.clone());
    let before = reader.read(1, 1000).await.unwrap();

    patients.phi().vault().destroy(patient).await.unwrap();
    patients.forget_subject(patient);
    records.forget_subject(patient);

    for store_patients in [patients.clone(), backend.store::<Patient>(StoreConfig::default())] {
        let loaded = store_patients.load(&patient.to_string()).await.unwrap();
        assert!(loaded.state().demographics().unwrap().is_shredded());
        assert!(loaded.state().identifiers().unwrap().is_shredded());
    }
    let loaded = backend.store::<MedicalRecord>(StoreConfig::default()).load(&record.to_string()).await.unwrap();
    assert_eq!(loaded.sequence(), 2, "the record still loads all its events");
    assert_eq!(loaded.state().status(), RecordStatus::Active);
    assert!(loaded.state().versions().iter().all(|v| v.content.is_shredded()), "every version is shredded");
    let cached = records.load(&record.to_string()).await.unwrap();
    assert!(cached.state().versions().iter().all(|v| v.content.is_shredded()), "the writer's cache was not kept");

    let after = reader.read(1, 1000).await.unwrap();
    assert_eq!(after, before, "the log, its order and its bytes are unchanged");

    let refused = records.execute(&record.to_string(), amend("new PHI"), &services(), &doctor()).await;
    assert!(
        matches!(refused, Err(ExecuteError::Store(StoreError::Phi(PhiError::Key(KeyError::Destroyed(p)))))  if p == patient),
        "no new PHI for an erased patient: {refused:?}"
    );
}

/// KEK rotation's compare-and-swap: a re-wrap replaces only the live key it read,
/// so it can never resurrect an erased key or undo a concurrent re-wrap.
pub async fn key_store_rewraps_only_the_key_it_read(backend: Backend) {
    let vault = KeyVault::with_cache(backend.kek.clone(), backend.keys.clone(), Duration::ZERO, 1);
    let (patient, erased, never_seen) = (PatientId::new(), PatientId::new(), PatientId::new());
    let key = vault.key_for_sealing(patient).await.unwrap();
    vault.key_for_sealing(erased).await.unwrap();
    let KeyState::Active { wrapped: first } = backend.keys.get(patient).await.unwrap() else { panic!("the key was created") };

    let second = backend.kek.wrap(patient, &key).unwrap();
    assert_ne!(second, first, "a fresh wrap uses a fresh nonce");
    assert!(backend.keys.rewrap(patient, &first, second.clone()).await.unwrap());
    let stale = backend.kek.wrap(patient, &key).unwrap();
    assert!(!backend.keys.rewrap(patient, &first, stale).await.unwrap(), "a re-wrap of a replaced key is refused");
    assert_eq!(backend.keys.get(patient).await.unwrap(), KeyState::Active { wrapped: second });
    assert_eq!(vault.key_for_opening(patient).await.unwrap().unwrap().as_bytes(), key.as_bytes(), "the data key itself is unchanged");

    let KeyState::Active { wrapped: before_erasure } = backend.keys.get(erased).await.unwrap() else { panic!("the key was created") };
    vault.destroy(erased).await.unwrap();
    let resurrect = backend.kek.wrap(erased, &key).unwrap();
    assert!(!backend.keys.rewrap(erased, &before_erasure, resurrect).await.unwrap(), "an erased key stays erased");
    assert_eq!(backend.keys.get(erased).await.unwrap(), KeyState::Destroyed);
    assert!(!backend.keys.rewrap(never_seen, &before_erasure, backend.kek.wrap(never_seen, &key).unwrap()).await.unwrap());
    assert_eq!(backend.keys.get(never_seen).await.unwrap(), KeyState::Absent);

    let subjects: BTreeSet<PatientId> = backend.keys.subjects().await.unwrap().into_iter().collect();
    assert_eq!(subjects, BTreeSet::from([patient, erased]), "live and erased patients are listed, absent ones are not");
}

/// Bad input from the log or the caller is a typed error, never a panic.
pub async fn malformed_input_is_a_typed_error(backend: Backend) {
    let store = backend.default_store::<MedicalRecord>();
    let bad_id = store.load("not.a valid*id").await;
    assert!(matches!(bad_id, Err(StoreError::InvalidKey(_))), "{bad_id:?}");

    let garbage = RecordId::new().to_string();
    let key = AggregateKey::new("medical_record", &garbage).unwrap();
    backend.log.append(raw_request(&key, 0, b"\xff not json")).await.unwrap();
    let loaded = store.load(&garbage).await;
    assert!(matches!(loaded, Err(StoreError::Codec(CodecError::Malformed { .. }))), "{loaded:?}");

    let cases: [(&str, Box<dyn Fn(&mut CommitRecord)>, fn(&StoreError) -> bool); 5] = [
        ("future event version", Box::new(|c| c.events[0].event_version = "9.0".into()), |e| {
            matches!(e, StoreError::Codec(CodecError::UnsupportedEventVersion { .. }))
        }),
        ("unknown event type", Box::new(|c| c.events[0].event_type = "RecordTeleported".into()), |e| {
            matches!(e, StoreError::Codec(CodecError::UnsupportedEventVersion { .. } | CodecError::BadPayload { .. }))
        }),
        ("payload of the wrong shape", Box::new(|c| c.events[0].payload = json!({"type": "RecordDeleted", "data": 42})), |e| {
            matches!(e, StoreError::Codec(CodecError::BadPayload { .. }))
        }),
        ("unknown envelope schema", Box::new(|c| c.schema = ENVELOPE_SCHEMA + 1), |e| {
            matches!(e, StoreError::Codec(CodecError::UnsupportedEnvelope { .. }))
        }),
        ("sequence gap", Box::new(|c| c.events[0].sequence = 5), |e| matches!(e, StoreError::Codec(CodecError::OutOfSequence { .. }))),
    ];
    for (case, mutate, expected) in cases {
        let (record, patient) = (RecordId::new(), PatientId::new());
        let id = record.to_string();
        let mut phi_payload =
            serde_json::to_value(emr_domain::record::RecordEvent::RecordDeleted { reason: Phi::new(patient, text("x")) }).unwrap();
        backend.phi().seal(&mut phi_payload).await.unwrap();
        let mut commit = valid_commit("medical_record", &id, "RecordDeleted", "1.0", phi_payload);
        mutate(&mut commit);
        let key = AggregateKey::new("medical_record", &id).unwrap();
        backend.log.append(raw_request(&key, 0, &commit.encode().unwrap())).await.unwrap();
        let error = store.load(&id).await.expect_err(case);
        assert!(expected(&error), "{case}: {error:?}");
    }

    let (victim, other) = (RecordId::new().to_string(), RecordId::new().to_string());
    let commit = valid_commit("medical_record", &other, "RecordDeleted", "1.0", json!({}));
    let key = AggregateKey::new("medical_record", &victim).unwrap();
    backend.log.append(raw_request(&key, 0, &commit.encode().unwrap())).await.unwrap();
    assert!(
        matches!(store.load(&victim).await, Err(StoreError::Codec(CodecError::Malformed { .. }))),
        "a commit stored under another aggregate"
    );
}

fn valid_commit(aggregate_type: &str, aggregate_id: &str, event_type: &str, version: &str, payload: serde_json::Value) -> CommitRecord {
    let context = doctor();
    CommitRecord {
        schema: ENVELOPE_SCHEMA,
        aggregate_type: aggregate_type.into(),
        aggregate_id: aggregate_id.into(),
        command_id: CommandId::new(),
        correlation_id: context.correlation_id,
        causation_id: context.causation_id,
        actor: context.actor,
        recorded_at: chrono::Utc::now(),
        events: vec![EventRecord {
            event_id: EventId::new(),
            sequence: 1,
            event_type: event_type.into(),
            event_version: version.into(),
            payload,
        }],
    }
}

/// Events stored under an old schema version are upcast as they load.
pub async fn old_event_versions_are_upcast(backend: Backend) {
    let (record, patient) = (RecordId::new(), PatientId::new());
    let id = record.to_string();
    let mut payload = json!({"type": "RecordCreated", "data": {
        "recordId": record, "patientId": patient, "doctorId": UserId::new(), "hospitalId": "HOSP-9",
        "recordType": "imaging", "visitDate": "2019-03-04",
        "content": serde_json::to_value(Phi::new(patient, content("CT head"))).unwrap(),
    }});
    backend.phi().seal(&mut payload).await.unwrap();
    let commit = valid_commit("medical_record", &id, "RecordCreated", "1.0", payload);
    let key = AggregateKey::new("medical_record", &id).unwrap();
    backend.log.append(raw_request(&key, 0, &commit.encode().unwrap())).await.unwrap();

    let loaded = backend.default_store::<MedicalRecord>().load(&id).await.unwrap();
    assert_eq!(loaded.state().record_type(), Some(RecordType::Imaging));
    assert_eq!(loaded.state().patient_id(), Some(patient));
    assert_eq!(loaded.state().current().unwrap().content.value().unwrap().title.as_str(), "CT head");
}

/// A long history reads back whole, in order, from the start or from any position.
pub async fn long_histories_read_back_whole(backend: Backend) {
    let store = backend.store::<MedicalRecord>(StoreConfig { snapshot_every: 0, cache_capacity: 0, ..StoreConfig::default() });
    let (record, patient) = (RecordId::new(), PatientId::new());
    let id = record.to_string();
    let mut positions =
        vec![store.execute(&id, create_record(record, patient, "v1"), &services(), &doctor()).await.unwrap().position.unwrap()];
    for n in 2..=40 {
        positions.push(store.execute(&id, amend(&format!("v{n}")), &services(), &doctor()).await.unwrap().position.unwrap());
    }
    let loaded = backend
        .store::<MedicalRecord>(StoreConfig { snapshot_every: 0, cache_capacity: 0, ..StoreConfig::default() })
        .load(&id)
        .await
        .unwrap();
    assert_eq!(loaded.sequence(), 40);
    assert_eq!(loaded.state().versions().len(), 40);
    let key = AggregateKey::new("medical_record", &id).unwrap();
    for after in [0, positions[3], positions[15], positions[16], positions[38], positions[39]] {
        let read: Vec<u64> = backend.log.read_aggregate(&key, after).await.unwrap().iter().map(|c| c.position).collect();
        let expected: Vec<u64> = positions.iter().copied().filter(|p| *p > after).collect();
        assert_eq!(read, expected, "after position {after}");
    }
}
