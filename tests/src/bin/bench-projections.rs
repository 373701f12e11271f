//! Projection throughput, beside the raw multi-row upsert rate of the same MariaDB
//! measured in the same run, and a check that a rebuild equals the incremental
//! fold at that scale.
//!
//! Run with: `cargo run --release -p emr-tests --bin bench-projections -- [EVENTS] [jetstream|sqlite]`
//! (default 20000 events on the embedded SQLite log; 100000 for the figure the
//! read-model issue asks for). Needs MariaDB at EMR_TEST_MYSQL_URL (tests/run.sh
//! starts one) and, for jetstream, the nats-server binary. Writes `bench-projections.json`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::Instant;

use emr_projections::{AccessProjection, DashboardProjection, PatientDirectory, Projection, Projector, RecordIndex, rebuild};
use emr_tests::backends;
use emr_tests::history;
use emr_tests::mariadb::TestDatabase;
use emr_tests::read_models::{Store, TestReadModels};
use sqlx::{MySql, QueryBuilder};

emr_tests::shipped_allocator!();

const BATCH: usize = 1000;

async fn raw_upsert_rows_per_second(db: &TestDatabase, rows: usize) -> f64 {
    sqlx::query("CREATE TABLE raw_baseline LIKE medical_records").execute(&db.pool).await.unwrap();
    let started = Instant::now();
    for chunk_start in (0..rows).step_by(BATCH) {
        let mut tx = db.pool.begin().await.unwrap();
        let mut query = QueryBuilder::<MySql>::new(
            "INSERT INTO raw_baseline (record_id, patient_id, doctor_id, hospital_id, record_type, visit_date, status, content_version, \
             attachment_count, created_at, updated_at, deleted_at, version, position) ",
        );
        let now = chrono::Utc::now();
        query.push_values(chunk_start..(chunk_start + BATCH).min(rows), |mut values, n| {
            values
                .push_bind(format!("{n:036}"))
                .push_bind(format!("p{n:035}"))
                .push_bind(format!("d{n:035}"))
                .push_bind("HOSP-001")
                .push_bind("imaging")
                .push_bind(now.date_naive())
                .push_bind("active")
                .push_bind(1u32)
                .push_bind(0u32)
                .push_bind(now)
                .push_bind(now)
                .push_bind(None::<chrono::DateTime<chrono::Utc>>)
                .push_bind(1u64)
                .push_bind(n as u64);
        });
        query.push(" ON DUPLICATE KEY UPDATE status = VALUES(status), version = VALUES(version), position = VALUES(position)");
        query.build().execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let target_events: usize = args.next().map(|a| a.parse().expect("EVENTS must be a number")).unwrap_or(20_000);
    let backend_name = args.next().unwrap_or_else(|| "sqlite".into());
    let test = match backend_name.as_str() {
        "jetstream" => backends::jetstream().await,
        _ => backends::sqlite().await,
    };
    let backend = test.backend.clone();
    let clinic = backends::clinic(&backend);

    let started = Instant::now();
    let mut events = 0;
    while events < target_events {
        history::write(&clinic, 100).await;
        events = clinic.log().read(1, usize::MAX >> 1).await.unwrap().len();
    }
    let head = backend.log.head().await.unwrap();
    let write_seconds = started.elapsed().as_secs_f64();

    let db = TestDatabase::fresh().await;
    let baseline = raw_upsert_rows_per_second(&db, events).await;

    let mut rows = Vec::new();
    let mut total = 0.0;
    macro_rules! fold {
        ($projection:expr) => {{
            let started = Instant::now();
            Projector::new($projection, db.db.clone(), backend.log.clone()).with_batch_size(BATCH).catch_up(head).await.unwrap();
            let seconds = started.elapsed().as_secs_f64();
            total += seconds;
            rows.push(($projection.name(), seconds, events as f64 / seconds));
        }};
    }
    fold!(PatientDirectory);
    fold!(RecordIndex);
    fold!(AccessProjection);
    fold!(DashboardProjection);

    // The same projection through a durable consumer (what `serve` runs), into a
    // second database: on JetStream it fetches batches from one long-lived
    // consumer instead of opening a consumer per batch.
    let durable_db = TestDatabase::fresh().await;
    let started = Instant::now();
    Projector::new(RecordIndex, durable_db.db.clone(), backend.log.clone())
        .with_batch_size(BATCH)
        .with_durable_feed()
        .catch_up(head)
        .await
        .unwrap();
    let durable_seconds = started.elapsed().as_secs_f64();
    let mut durable_dumps = Vec::new();
    for table in RecordIndex.tables() {
        durable_dumps.push(durable_db.dump(table).await);
    }

    // The embedded default: the same projection into a SQLite file.
    let sqlite = TestReadModels::fresh(Store::Sqlite).await;
    let started = Instant::now();
    Projector::new(RecordIndex, sqlite.db.clone(), backend.log.clone()).with_batch_size(BATCH).catch_up(head).await.unwrap();
    let sqlite_seconds = started.elapsed().as_secs_f64();
    let sqlite_started = Instant::now();
    rebuild(RecordIndex, &sqlite.db, backend.log.clone(), BATCH).await.unwrap();
    let sqlite_rebuild_seconds = sqlite_started.elapsed().as_secs_f64();
    let sqlite_rows: usize = sqlite.dump("medical_records").await.len();

    let incremental: Vec<Vec<String>> = {
        let mut dumps = Vec::new();
        for table in RecordIndex.tables() {
            dumps.push(db.dump(table).await);
        }
        dumps
    };
    let started = Instant::now();
    rebuild(RecordIndex, &db.db, backend.log.clone(), BATCH).await.unwrap();
    let rebuild_seconds = started.elapsed().as_secs_f64();
    let mut rebuilt = Vec::new();
    for table in RecordIndex.tables() {
        rebuilt.push(db.dump(table).await);
    }
    let equal = rebuilt == incremental;
    let durable_equal = durable_dumps == incremental;

    let all_four = events as f64 / total;
    println!("## Projection benchmark ({backend_name} log, {events} events in {head} commits, batch {BATCH})\n");
    println!("| what | seconds | events/s | ratio to raw upsert |");
    println!("| --- | ---: | ---: | ---: |");
    println!("| raw multi-row upsert (baseline, rows/s) | | {baseline:.0} | 1.00 |");
    for (name, seconds, rate) in &rows {
        println!("| projection `{name}` | {seconds:.2} | {rate:.0} | {:.2} |", rate / baseline);
    }
    println!(
        "| all four projections kept up with the log (each event folded four times) | {total:.2} | {all_four:.0} | {:.2} |",
        all_four / baseline
    );
    println!(
        "| projection `record_index` through a durable feed | {durable_seconds:.2} | {:.0} | {:.2} |",
        events as f64 / durable_seconds,
        events as f64 / durable_seconds / baseline
    );
    println!(
        "| rebuild `record_index` (shadow + swap) | {rebuild_seconds:.2} | {:.0} | {:.2} |",
        events as f64 / rebuild_seconds,
        events as f64 / rebuild_seconds / baseline
    );
    println!(
        "| projection `record_index` into SQLite (embedded default) | {sqlite_seconds:.2} | {:.0} | {:.2} |",
        events as f64 / sqlite_seconds,
        events as f64 / sqlite_seconds / baseline
    );
    println!(
        "| rebuild `record_index` in SQLite (shadow file + copy swap) | {sqlite_rebuild_seconds:.2} | {:.0} | {:.2} |",
        events as f64 / sqlite_rebuild_seconds,
        events as f64 / sqlite_rebuild_seconds / baseline
    );
    println!("\nwriting the history through the application layer took {write_seconds:.1} s");
    println!("rebuild equals incremental, row for row: {equal}; durable feed equals it: {durable_equal}");
    let json = serde_json::json!({
        "backend": backend_name, "events": events, "commits": head, "batch": BATCH,
        "raw_upsert_rows_per_s": baseline,
        "projections": rows.iter().map(|(n, s, r)| serde_json::json!({"name": n, "seconds": s, "events_per_s": r, "ratio": r / baseline})).collect::<Vec<_>>(),
        "rebuild_record_index_seconds": rebuild_seconds, "rebuild_equals_incremental": equal,
        "durable_feed_record_index_seconds": durable_seconds, "durable_feed_events_per_s": events as f64 / durable_seconds,
        "sqlite_record_index_seconds": sqlite_seconds, "sqlite_rebuild_record_index_seconds": sqlite_rebuild_seconds,
    });
    println!("\n{json}");
    std::fs::write("bench-projections.json", serde_json::to_string_pretty(&json).unwrap()).unwrap();
    db.drop_database().await;
    durable_db.drop_database().await;
    sqlite.remove().await;
    assert_eq!(sqlite_rows, incremental[1].len(), "SQLite holds as many records as MariaDB");
    assert!(equal, "a rebuild must equal the incremental fold");
    assert!(durable_equal, "the durable feed must fold the same tables");
}
