//! The core hot paths beside this machine's raw limits and a peer, in one run:
//! 1. raw JetStream publish with the expected-sequence header, sequential and pipelined,
//!    and as a command needs it (with a message id) by concurrent publishers;
//! 2. record creation through the application layer (JetStream), on many patients
//!    (one command per call, and in batches of up to 1000) and on one hot patient:
//!    commands/s, p50/p99;
//! 3. aggregate load with 10/100/1000 events: cold, snapshotted, cached;
//! 4. the peer: cqrs-es with its reference MySQL store (`mysql-es`), same aggregate,
//!    same MariaDB, same workload;
//! 5. on nats-server 2.12 or later only (`NATS_SERVER_BIN`): the concurrent publishes of
//!    baseline 3 group-committed as JetStream atomic batches, the one way the server
//!    takes several aggregates' commits in one write with each one's expectation.
//!
//! Run with: `cargo run --release -p emr-tests --bin bench-core -- [COMMANDS] [CONCURRENCY]`
//! (defaults 2000 and 32). Prints a Markdown table and JSON, and writes
//! `bench-core.json` to the working directory. Durability is production's: JetStream
//! file storage, MariaDB as configured, SQLite not involved.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use emr_commands::Clinic;
use emr_domain::DomainServices;
use emr_domain::actor::{Actor, Role};
use emr_domain::fixtures::{self, content, create_record, text};
use emr_domain::ids::{PatientId, RecordId, UserId};
use emr_domain::metadata::CommandContext;
use emr_domain::record::{MedicalRecord, RecordCommand};
use emr_eventstore::{EmrEventStore, StoreConfig};
use emr_tests::backends;
use emr_tests::bench::{Rate, drive, rate};
use emr_tests::mariadb::TestDatabase;
use serde_json::json;

emr_tests::shipped_allocator!();

/// One physician writes every record, in their own name (the policy's rule).
fn doctor_id() -> UserId {
    UserId::from(uuid::Uuid::from_u128(0x0190_f5c4_7d0e_7cc2_9a4e_3f1c_2b6a_9d10))
}

fn doctor() -> CommandContext {
    CommandContext::new(Actor::new(doctor_id(), Role::Physician))
}

fn create(record: RecordId, patient: PatientId) -> RecordCommand {
    let mut command = create_record(record, patient, "Consultation");
    if let RecordCommand::Create { doctor_id: author, .. } = &mut command {
        *author = doctor_id();
    }
    command
}

async fn register(clinic: &Clinic) -> PatientId {
    let patient = PatientId::new();
    clinic.patient(patient, fixtures::register(patient, "Bench"), &doctor()).await.unwrap();
    patient
}

/// Baseline 4: `count` publishes from `concurrency` callers, each with the
/// expected-sequence header, gathered by one committer into JetStream atomic
/// batches (whatever is waiting, up to 2 batches in flight); every caller waits
/// for its batch's acknowledgement. `None` on a server without atomic batches
/// (before 2.12).
async fn atomic_batches(client: async_nats::Client, count: usize, concurrency: usize) -> Option<Rate> {
    use async_nats::HeaderMap;
    use futures::StreamExt;
    use tokio::sync::{Semaphore, mpsc, oneshot};
    type Waiters = Vec<oneshot::Sender<bool>>;

    let create = json!({"name": "BENCH_ATOMIC", "subjects": ["bench_atomic.>"], "storage": "file", "allow_atomic": true});
    let created = client.request("$JS.API.STREAM.CREATE.BENCH_ATOMIC", create.to_string().into()).await.ok()?;
    let reply: serde_json::Value = serde_json::from_slice(&created.payload).ok()?;
    if reply.get("error").is_some() || reply["config"]["allow_atomic"] != json!(true) {
        return None;
    }
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(format!("{inbox}.*")).await.unwrap();
    let in_flight: Arc<std::sync::Mutex<HashMap<String, (tokio::sync::OwnedSemaphorePermit, Waiters)>>> = Arc::default();
    let answered = in_flight.clone();
    tokio::spawn(async move {
        while let Some(reply) = replies.next().await {
            let stored = serde_json::from_slice::<serde_json::Value>(&reply.payload).is_ok_and(|ack| ack.get("error").is_none());
            let batch = answered.lock().unwrap().remove(reply.subject.as_str());
            for waiter in batch.into_iter().flat_map(|(_slot, waiters)| waiters) {
                let _ = waiter.send(stored);
            }
        }
    });
    let (submit, mut waiting) = mpsc::channel::<(String, oneshot::Sender<bool>)>(concurrency);
    let slots = Arc::new(Semaphore::new(2));
    tokio::spawn(async move {
        for batch_number in 0_u64.. {
            let Some(first) = waiting.recv().await else { break };
            let mut batch = vec![first];
            while let Ok(next) = waiting.try_recv() {
                batch.push(next);
            }
            let slot = slots.clone().acquire_owned().await.unwrap();
            let (batch_id, last) = (format!("bench-{batch_number}"), batch.len());
            let reply = format!("{inbox}.{batch_number}");
            let mut waiters = Vec::with_capacity(last);
            for (n, (subject, waiter)) in batch.into_iter().enumerate() {
                let mut headers = HeaderMap::new();
                headers.insert("Nats-Batch-Id", batch_id.as_str());
                headers.insert("Nats-Batch-Sequence", (n + 1).to_string().as_str());
                headers.insert("Nats-Expected-Last-Subject-Sequence", "0");
                waiters.push(waiter);
                if n + 1 == last {
                    headers.insert("Nats-Batch-Commit", "1");
                    in_flight.lock().unwrap().insert(reply.clone(), (slot, std::mem::take(&mut waiters)));
                    client.publish_with_reply_and_headers(subject, reply.clone(), headers, vec![b'x'; 600].into()).await.unwrap();
                    break;
                }
                client.publish_with_headers(subject, headers, vec![b'x'; 600].into()).await.unwrap();
            }
        }
    });
    Some(
        drive(count, concurrency, move |i| {
            let submit = submit.clone();
            async move {
                let (done, stored) = oneshot::channel();
                submit.send((format!("bench_atomic.s{i}"), done)).await.unwrap();
                assert!(stored.await.unwrap(), "an atomic batch was refused");
            }
        })
        .await,
    )
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let commands: usize = args.next().map(|a| a.parse().unwrap()).unwrap_or(2000);
    let concurrency: usize = args.next().map(|a| a.parse().unwrap()).unwrap_or(32);
    let test = backends::jetstream().await;
    let backend = test.backend.clone();
    let js = jetstream::new(async_nats::connect(test.nats.as_ref().unwrap().url()).await.unwrap());

    // 1. Raw JetStream publish, one subject per message, expected last subject sequence 0.
    let started = Instant::now();
    let mut latencies = Vec::new();
    for i in 0..commands {
        let t = Instant::now();
        let publish = PublishMessage::build().payload(vec![b'x'; 600].into()).expected_last_subject_sequence(0);
        js.send_publish(format!("emr.events.raw_seq.s{i}"), publish).await.unwrap().await.unwrap();
        latencies.push(t.elapsed());
    }
    let raw_sequential = rate(commands, started.elapsed(), latencies);
    let started = Instant::now();
    let pipelined_count = commands * 5;
    // A window of 1000 acks in flight: the client bounds unacknowledged publishes.
    let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(1000);
    for i in 0..pipelined_count {
        let publish = PublishMessage::build().payload(vec![b'x'; 600].into()).expected_last_subject_sequence(0);
        acks.push(js.send_publish(format!("emr.events.raw_pipe.s{i}"), publish).await.unwrap());
        if acks.len() == 1000 {
            for ack in acks.drain(..) {
                ack.await.unwrap();
            }
        }
    }
    for ack in acks {
        ack.await.unwrap();
    }
    let raw_pipelined = rate(pipelined_count, started.elapsed(), Vec::new());
    // Baseline 3: what one command needs of the log, and nothing else — one publish
    // with a message id (deduplication) and the expected sequence, its
    // acknowledgement awaited, by as many publishers as commands run at once.
    let publisher = js.clone();
    let raw_concurrent = drive(commands, concurrency, move |i| {
        let js = publisher.clone();
        async move {
            let publish =
                PublishMessage::build().payload(vec![b'x'; 600].into()).message_id(format!("raw-{i}")).expected_last_subject_sequence(0);
            js.send_publish(format!("emr.events.raw_conc.s{i}"), publish).await.unwrap().await.unwrap();
        }
    })
    .await;
    let raw_atomic = atomic_batches(js.client().clone(), commands, concurrency).await;

    // 2. Record creation through the application layer, with the store as `serve`
    // configures it by default (a cached aggregate trusted for 250 ms), then with
    // every load asking the log (cache_trust 0).
    let serve_default = StoreConfig { cache_trust: std::time::Duration::from_millis(250), ..StoreConfig::default() };
    let clinic = Clinic::new(backend.clone(), serve_default, DomainServices::default());
    let mut patients = Vec::new();
    for _ in 0..200 {
        patients.push(register(&clinic).await);
    }
    let patients = Arc::new(patients);
    let (c, p) = (clinic.clone(), patients.clone());
    let many = drive(commands, concurrency, move |i| {
        let (clinic, patient) = (c.clone(), p[i % p.len()]);
        async move {
            let record = RecordId::new();
            clinic.record(record, create(record, patient), &doctor()).await.unwrap();
        }
    })
    .await;
    // The same creations sent as batches of up to 1000 (`POST /v1/records/batch`):
    // each decided on its own, the batch's commits pipelined to the log.
    let started = Instant::now();
    for start in (0..commands).step_by(Clinic::MAX_BATCH) {
        let batch = (start..commands.min(start + Clinic::MAX_BATCH))
            .map(|i| {
                let record = RecordId::new();
                (record, create(record, patients[i % patients.len()]), doctor())
            })
            .collect();
        for answer in clinic.create_records(batch).await {
            answer.unwrap();
        }
    }
    let batched = rate(commands, started.elapsed(), Vec::new());
    let checked = Clinic::new(backend.clone(), StoreConfig::default(), DomainServices::default());
    let (c, p) = (checked.clone(), patients.clone());
    let many_checked = drive(commands, concurrency, move |i| {
        let (clinic, patient) = (c.clone(), p[i % p.len()]);
        async move {
            let record = RecordId::new();
            clinic.record(record, create(record, patient), &doctor()).await.unwrap();
        }
    })
    .await;
    let hot_patient = register(&clinic).await;
    let c = clinic.clone();
    let hot = drive(commands, concurrency, move |_| {
        let clinic = c.clone();
        async move {
            let record = RecordId::new();
            clinic.record(record, create(record, hot_patient), &doctor()).await.unwrap();
        }
    })
    .await;

    // 3. Aggregate load.
    let mut loads = Vec::new();
    for events in [10usize, 100, 1000] {
        let writer = EmrEventStore::<MedicalRecord>::new(
            backend.log.clone(),
            backend.phi(),
            Some(backend.snapshots.clone()),
            StoreConfig::default(),
        );
        let record = RecordId::new();
        let id = record.to_string();
        writer.execute(&id, create(record, hot_patient), &DomainServices::default(), &doctor()).await.unwrap();
        for n in 1..events {
            let amend = RecordCommand::Amend { content: content(&format!("v{n}")), reason: text("bench") };
            writer.execute(&id, amend, &DomainServices::default(), &doctor()).await.unwrap();
        }
        let time = |store: EmrEventStore<MedicalRecord>, warm: bool| {
            let id = id.clone();
            async move {
                if warm {
                    store.load(&id).await.unwrap();
                }
                let t = Instant::now();
                let loaded = store.load(&id).await.unwrap();
                assert_eq!(loaded.sequence() as usize, events);
                t.elapsed().as_secs_f64() * 1000.0
            }
        };
        let cold = time(
            EmrEventStore::new(
                backend.log.clone(),
                backend.phi(),
                None,
                StoreConfig { snapshot_every: 0, cache_capacity: 0, ..StoreConfig::default() },
            ),
            false,
        )
        .await;
        let snapshot = time(backend.store(StoreConfig { snapshot_every: 100, cache_capacity: 0, ..StoreConfig::default() }), false).await;
        let cached = time(backend.store(StoreConfig::default()), true).await;
        loads.push((events, cold, snapshot, cached));
    }

    // 4. The peer: cqrs-es + mysql-es, same aggregate and workload, same MariaDB.
    let db = TestDatabase::fresh().await;
    for ddl in [
        "CREATE TABLE events (aggregate_type varchar(255) NOT NULL, aggregate_id varchar(255) NOT NULL, sequence bigint NOT NULL CHECK (sequence >= 0), \
         event_type text NOT NULL, event_version text NOT NULL, payload json NOT NULL, metadata json NOT NULL, \
         CONSTRAINT events_pk PRIMARY KEY (aggregate_type, aggregate_id, sequence))",
        "CREATE TABLE snapshots (aggregate_type varchar(255) NOT NULL, aggregate_id varchar(255) NOT NULL, last_sequence bigint NOT NULL, \
         current_snapshot bigint NOT NULL, payload json NOT NULL, CONSTRAINT snapshots_pk PRIMARY KEY (aggregate_type, aggregate_id))",
    ] {
        sqlx::query(ddl).execute(&db.pool).await.unwrap();
    }
    // mysql-es brings its own sqlx, so its own pool, on the same database.
    let peer_pool = mysql_es::default_mysql_pool(&db.url()).await;
    let peer = Arc::new(mysql_es::mysql_cqrs::<MedicalRecord>(peer_pool, Vec::new(), DomainServices::default()));
    let p = patients.clone();
    let peer_many = drive(commands, concurrency, move |i| {
        let (peer, patient) = (peer.clone(), p[i % p.len()]);
        async move {
            let record = RecordId::new();
            let metadata: HashMap<String, String> = doctor().to_map();
            peer.execute_with_metadata(&record.to_string(), create(record, patient), metadata).await.unwrap();
        }
    })
    .await;
    db.drop_database().await;

    let machine = format!("{} cores, {}", std::thread::available_parallelism().map_or(0, usize::from), std::env::consts::ARCH);
    println!(
        "## Core benchmark ({commands} commands, concurrency {concurrency}, {machine}; JetStream file storage, nats-server {})\n",
        js.client().server_info().version
    );
    println!("| what | per second | p50 ms | p99 ms | ratio |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let row = |name: &str, r: &Rate, base: f64| {
        println!("| {name} | {:.0} | {:.2} | {:.2} | {:.2} |", r.per_second, r.p50_ms, r.p99_ms, r.per_second / base)
    };
    row("raw JetStream publish, sequential (baseline 1)", &raw_sequential, raw_sequential.per_second);
    println!("| raw JetStream publish, pipelined (baseline 2) | {:.0} | | | 1.00 |", raw_pipelined.per_second);
    row(
        &format!("raw JetStream publish with message id, {concurrency} publishers each awaiting its ack (baseline 3, ratio to pipelined)"),
        &raw_concurrent,
        raw_pipelined.per_second,
    );
    match &raw_atomic {
        Some(atomic) => row(
            &format!("raw JetStream publish, {concurrency} publishers group-committed in atomic batches (baseline 4, ratio to pipelined)"),
            atomic,
            raw_pipelined.per_second,
        ),
        None => println!("| baseline 4 (atomic batches): this nats-server has none (2.12+) | | | | |"),
    }
    row("record creation, many patients (ratio to pipelined)", &many, raw_pipelined.per_second);
    println!(
        "| record creation, many patients, in batches of up to 1000 (ratio to pipelined) | {:.0} | | | {:.2} |",
        batched.per_second,
        batched.per_second / raw_pipelined.per_second
    );
    row("record creation, one hot patient (ratio to pipelined)", &hot, raw_pipelined.per_second);
    row("record creation, many patients, every load checked with the log (ratio to pipelined)", &many_checked, raw_pipelined.per_second);
    row("peer: cqrs-es + mysql-es, many patients (ratio to ours)", &peer_many, many.per_second);
    println!("\n| aggregate load | cold ms | snapshotted ms | cached ms |");
    println!("| --- | ---: | ---: | ---: |");
    for (events, cold, snapshot, cached) in &loads {
        println!("| {events} events | {cold:.2} | {snapshot:.2} | {cached:.2} |");
    }
    let r = |r: &Rate| json!({"per_second": r.per_second, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms});
    let report = json!({
        "machine": machine, "commands": commands, "concurrency": concurrency,
        "raw_publish_sequential": r(&raw_sequential), "raw_publish_pipelined": r(&raw_pipelined),
        "raw_publish_concurrent_with_message_id": r(&raw_concurrent),
        "raw_publish_atomic_batches": raw_atomic.as_ref().map(r),
        "record_creation_many_patients": r(&many), "record_creation_hot_patient": r(&hot),
        "record_creation_many_patients_batched": r(&batched),
        "record_creation_many_patients_cache_trust_0": r(&many_checked),
        "peer_cqrs_es_mysql_es": r(&peer_many),
        "ours_over_peer": many.per_second / peer_many.per_second,
        "aggregate_load_ms": loads.iter().map(|(e, c, s, k)| json!({"events": e, "cold": c, "snapshotted": s, "cached": k})).collect::<Vec<_>>(),
    });
    println!("\n{report}");
    std::fs::write("bench-core.json", serde_json::to_string_pretty(&report).unwrap()).unwrap();
}
