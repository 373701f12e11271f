//! The embedded read models survive the death of their process: `emr projections
//! run`, killed with SIGKILL at arbitrary points (mid-transaction included) and
//! restarted, ends with tables equal to a clean fold.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use emr_projections::{DashboardProjection, Projector, ReadModelDb};
use emr_tests::read_models::{Store, TestReadModels, assert_same_tables, fold_all};
use emr_tests::{backends, history};

/// Where every projection of the file stands: the least checkpoint.
async fn least_checkpoint(file: &std::path::Path) -> u64 {
    if !file.exists() {
        return 0;
    }
    let db = ReadModelDb::open_sqlite(file).await.unwrap();
    let mut least = u64::MAX;
    for (_, table) in emr_projections::checkpoints() {
        // The process may have died before its migration committed.
        let position = db.fetch_one::<(u64,)>(&format!("SELECT position FROM {table} WHERE id = 1"), vec![]).await.map_or(0, |(p,)| p);
        least = least.min(position);
    }
    db.close().await;
    least
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_projections_killed_by_sigkill_end_equal_to_a_clean_fold() {
    let test = backends::sqlite().await;
    let data_dir = test.storage_dir().to_owned();
    let clinic = backends::clinic(&test.backend);
    history::write(&clinic, 25).await;
    let head = test.backend.log.head().await.unwrap();
    let file = data_dir.join("read-models.db");

    // Kills that left the projections behind the log.
    let mut kills = 0;
    for round in 0u64.. {
        let mut process = Command::new(env!("CARGO_BIN_EXE_emr"))
            .args(["projections", "run"])
            .env("EMR__STORE__DATA_DIR", &data_dir)
            // The KEK the history was written under: the search index opens its PHI.
            .env("EMR__KEYS__KEYRING", backends::TEST_KEYRING)
            .env("EMR__READ_MODELS__BATCH_SIZE", "3")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Spread the kills over start-up, migration and folding.
        tokio::time::sleep(Duration::from_millis(40 + (round * 7919) % 260)).await;
        // `projections run` only ends when told to: ending by itself is a failure.
        assert_eq!(process.try_wait().unwrap(), None, "emr projections run exited on its own");
        process.kill().unwrap(); // SIGKILL: no shutdown path runs
        process.wait().unwrap();
        if least_checkpoint(&file).await >= head {
            break;
        }
        kills += 1;
        assert!(round < 300, "the projections never caught up");
    }
    assert!(kills > 0, "the test must actually kill the process before it caught up");

    let killed = TestReadModels::open_sqlite(&file).await;
    let clean = TestReadModels::fresh(Store::Sqlite).await;
    fold_all(&clean.db, &test.backend.log, 1000).await;
    let expected = clean.dump_all().await;
    assert_same_tables(&killed.dump_all().await, &expected, &format!("after {kills} kills"));

    // Nothing is left to apply: every commit is at or below the checkpoint.
    assert_eq!(Projector::new(DashboardProjection, killed.db.clone(), test.backend.log.clone()).step().await.unwrap(), 0);
    killed.db.close().await;
    clean.remove().await;
}
