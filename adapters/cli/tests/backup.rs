//! The backup and restore drill: back up under load, destroy the deployment,
//! restore into a new one; the restored log holds exactly the commands
//! acknowledged up to the backup, `emr audit verify` is clean, PHI opens with the
//! keyring kept apart, and the read models equal a rebuild. A damaged backup and
//! a non-empty target are refused.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use emr_tests::accounts::PASSWORD;
use emr_tests::api_client::{patient_registration, record_creation};
use emr_tests::nats_server::free_port;
use emr_tests::report;
use serde_json::{Value, json};
use support::{assert_read_models_equal_a_rebuild, emr, kill, physician, until_projected, verify};

fn run(data_dir: &Path, keyring: &Path, args: &[&str]) -> (bool, Value, String) {
    let output = emr(data_dir)
        .args(args)
        .env("EMR__KEYS__KEYRING_FILE", keyring)
        .env("EMR_ADMIN_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stdout = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (output.status.success(), stdout, String::from_utf8_lossy(&output.stderr).into_owned())
}

fn size_of(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .map(|entry| if entry.file_type().unwrap().is_dir() { size_of(&entry.path()) } else { entry.metadata().unwrap().len() })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_backed_up_under_load_and_destroyed_is_restored_whole() {
    let root = tempfile::tempdir().unwrap();
    let (original, restored, backup) = (root.path().join("original"), root.path().join("restored"), root.path().join("backup"));
    // The keyring lives in the operator's secret store, apart from data and backups.
    let keyring = root.path().join("secrets/keyring");
    let (http, grpc, sessions) = (free_port(), free_port(), format!("drill-{}", uuid::Uuid::new_v4().simple()));
    let (created, _, stderr) = run(&original, &keyring, &["accounts", "create-admin", "--username", "drill_admin"]);
    assert!(created, "{stderr}");
    let mut served = serve_with_keyring(&original, http, grpc, &sessions, &keyring).await;
    let api = served.api.clone();
    let (doctor, token) = physician(&api, "drill_admin", "drill_doctor").await;
    let token = Arc::new(token);
    let mut patients = Vec::new();
    for p in 0..4 {
        let (receipt, _) =
            api.until_acknowledged(&token, "/v1/patients", uuid::Uuid::now_v7(), &patient_registration(&format!("Drill {p}"))).await;
        patients.push(receipt["aggregate_id"].as_str().unwrap().to_owned());
    }

    // Clinicians keep working while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (api, token, stop, doctor) = (api.clone(), token.clone(), stop.clone(), doctor.clone());
        tokio::spawn(async move {
            let mut acknowledged = BTreeMap::new();
            for i in 0usize.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let body = record_creation(&patients[i % patients.len()], &doctor, &format!("Drill visit {i}"));
                let (receipt, _) = api.until_acknowledged(&token, "/v1/records", uuid::Uuid::now_v7(), &body).await;
                acknowledged.insert(receipt["aggregate_id"].as_str().unwrap().to_owned(), receipt["position"].as_u64().unwrap());
            }
            acknowledged
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let started = Instant::now();
    let (ok, manifest, stderr) = run(&original, &keyring, &["backup", "--to", backup.to_str().unwrap()]);
    let backup_seconds = started.elapsed().as_secs_f64();
    assert!(ok, "emr backup failed: {stderr}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let acknowledged = load.await.unwrap();
    let backed_up_head = manifest["log_head"].as_u64().unwrap();
    assert!(acknowledged.values().any(|p| *p > backed_up_head), "commands kept arriving after the backup's cut");
    kill(&mut served.process, "emr serve");

    // The deployment is lost; a new one is restored from the backup.
    std::fs::remove_dir_all(&original).unwrap();
    let started = Instant::now();
    let (ok, _, stderr) = run(&restored, &keyring, &["restore", "--from", backup.to_str().unwrap()]);
    let restore_seconds = started.elapsed().as_secs_f64();
    assert!(ok, "emr restore failed: {stderr}");

    let store = emr_sqlite::SqliteStore::open(&restored).await.unwrap();
    let log = store.ports().0;
    assert_eq!(log.head().await.unwrap(), backed_up_head, "the restored log ends where the backup cut it");
    let stored = report::commits_by_command(&log).await;
    assert!(stored.values().all(|positions| positions.len() == 1), "nothing restored twice");
    let verified = verify(&restored, "after restore");
    // A created record's id is its command's id (the Idempotency-Key).
    for (record, position) in &acknowledged {
        let in_log = stored.get(record).map(Vec::as_slice);
        if *position <= backed_up_head {
            assert_eq!(in_log, Some(&[*position][..]), "acknowledged record {record} at {position} is restored where it was");
        } else {
            assert_eq!(in_log, None, "record {record} at {position} came after the backup's cut at {backed_up_head}");
        }
    }
    for (record, _) in acknowledged.iter().filter(|(_, position)| **position <= backed_up_head).take(3) {
        let (ok, replay, stderr) = run(&restored, &keyring, &["replay", record]);
        assert!(
            ok && replay.to_string().contains("Drill visit"),
            "the PHI of {record} opens with the keyring kept apart: {replay} {stderr}"
        );
    }

    // Serving the restored deployment rebuilds its read models from the log.
    let mut served = serve_with_keyring(&restored, http, grpc, &sessions, &keyring).await;
    until_projected(&restored).await;
    kill(&mut served.process, "emr serve");
    assert_read_models_equal_a_rebuild(&restored, "after restore").await;

    // A damaged backup, and a deployment that is not empty, are refused.
    let commits = backup.join("commits.jsonl");
    let mut bytes = std::fs::read(&commits).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&commits, &bytes).unwrap();
    let (ok, _, stderr) = run(&root.path().join("another"), &keyring, &["restore", "--from", backup.to_str().unwrap()]);
    assert!(!ok && stderr.contains("does not match the manifest"), "{stderr}");
    bytes[middle] ^= 1;
    std::fs::write(&commits, &bytes).unwrap();
    let (ok, _, stderr) = run(&restored, &keyring, &["restore", "--from", backup.to_str().unwrap()]);
    assert!(!ok && stderr.contains("not empty"), "{stderr}");

    report::record(
        "backup-restore-drill",
        json!({"commits_backed_up": manifest["commits"], "key_states": manifest["key_states"], "backup_bytes": size_of(&backup),
               "backup_seconds": backup_seconds, "restore_seconds": restore_seconds, "acknowledged_during_load": acknowledged.len(),
               "events_verified_after_restore": verified["events"], "lost": 0, "restored_twice": 0}),
    );
}

/// `emr serve` on a data directory with the keyring at `keyring`.
async fn serve_with_keyring(data_dir: &Path, http: u16, grpc: u16, sessions: &str, keyring: &Path) -> support::Served {
    support::serve_with(data_dir, http, grpc, sessions, &[("EMR__KEYS__KEYRING_FILE", keyring.as_os_str())]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jetstream_deployment_is_restored_into_a_new_server_commit_for_commit() {
    let source = emr_tests::backends::jetstream().await;
    // Six patients: one of them erased, so a tombstone is restored too.
    emr_tests::history::write(&emr_tests::backends::clinic(&source.backend), 6).await;
    let target = emr_tests::backends::jetstream().await;
    let root = tempfile::tempdir().unwrap();
    let backup = root.path().join("backup");
    // The same inline keyring the test backends use.
    let on = |server: &emr_tests::backends::TestBackend, data_dir: &Path, args: &[&str]| {
        let output = emr(data_dir)
            .args(args)
            .env("EMR__STORE__BACKEND", "nats")
            .env("EMR__NATS__URL", server.nats.as_ref().unwrap().url())
            .env("EMR__KEYS__KEYRING", emr_tests::backends::TEST_KEYRING)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(output.status.success(), "emr {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    on(&source, &root.path().join("source"), &["backup", "--to", backup.to_str().unwrap()]);
    on(&target, &root.path().join("target"), &["restore", "--from", backup.to_str().unwrap()]);

    let read_all = |log: Arc<dyn emr_eventstore::EventLog>| async move { log.read_from(1, 100_000).await.unwrap() };
    let (original, restored) = (read_all(source.backend.log.clone()).await, read_all(target.backend.log.clone()).await);
    assert!(!original.is_empty());
    assert_eq!(original.len(), restored.len());
    for (a, b) in original.iter().zip(&restored) {
        assert_eq!((a.position, &a.key, &a.payload), (b.position, &b.key, &b.payload), "commit at {} restored byte for byte", a.position);
    }
    let (mut subjects, mut restored_subjects) =
        (source.backend.keys.subjects().await.unwrap(), target.backend.keys.subjects().await.unwrap());
    subjects.sort_unstable();
    restored_subjects.sort_unstable();
    assert_eq!(subjects, restored_subjects);
    let mut erased = 0;
    for patient in subjects {
        erased += usize::from(source.backend.keys.get(patient).await.unwrap() == emr_eventstore::KeyState::Destroyed);
        assert_eq!(
            source.backend.keys.get(patient).await.unwrap(),
            target.backend.keys.get(patient).await.unwrap(),
            "key state of {patient}"
        );
    }
    assert!(erased > 0, "an erasure tombstone was among the restored key states");
}
