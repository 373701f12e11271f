//! The embedded default on a disk that fills up, and on a data directory it
//! cannot write: clear errors, a server that keeps running, and nothing lost or
//! corrupted once space is freed.
//!
//! Each test runs itself again inside a new user and mount namespace
//! (`unshare`, util-linux), where it may mount a small tmpfs without being root
//! on the host; the mount disappears with the namespace.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use emr_tests::accounts::PASSWORD;
use emr_tests::api_client::{Method, patient_registration, record_creation};
use emr_tests::nats_server::free_port;
use emr_tests::report;
use serde_json::json;
use support::{assert_read_models_equal_a_rebuild, create_admin, emr, kill, physician, serve, until_fully_anchored, until_projected};

const IN_NAMESPACE: &str = "EMR_TEST_PRIVATE_MOUNTS";

/// Outside the namespace: runs `test` of this binary again inside one and returns
/// true (the caller stops). Inside: returns false (the caller runs the scenario).
fn rerun_in_private_mounts(test: &str) -> bool {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        return false;
    }
    let status = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(IN_NAMESPACE, "1")
        .status()
        .expect("unshare (util-linux) runs the test in its own mount namespace");
    assert!(status.success(), "{test} failed inside its mount namespace");
    true
}

fn mount_tmpfs(dir: &Path, options: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let output = Command::new("mount").args(["-t", "tmpfs", "-o", options, "tmpfs"]).arg(dir).output().unwrap();
    assert!(output.status.success(), "mount: {}", String::from_utf8_lossy(&output.stderr));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Fills the file system holding `file` to the last byte.
fn fill(file: &Path) -> u64 {
    let mut ballast = std::fs::File::create(file).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    let mut written = 0;
    loop {
        match ballast.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(error) if error.kind() == std::io::ErrorKind::StorageFull => break,
            Err(error) => panic!("filling the disk: {error}"),
        }
    }
    let _ = ballast.sync_all();
    written
}

#[test]
fn a_full_disk_refuses_commands_with_a_retryable_problem_and_loses_nothing_once_space_is_freed() {
    if rerun_in_private_mounts("a_full_disk_refuses_commands_with_a_retryable_problem_and_loses_nothing_once_space_is_freed") {
        return;
    }
    runtime().block_on(async {
        let root = tempfile::tempdir().unwrap();
        let data_dir = root.path().join("data");
        mount_tmpfs(&data_dir, "size=24m");
        let (http, grpc, sessions) = (free_port(), free_port(), format!("disk-{}", uuid::Uuid::new_v4().simple()));
        create_admin(&data_dir, "disk_admin");
        let mut served = serve(&data_dir, http, grpc, &sessions).await;
        let api = served.api.clone();
        let (doctor, token) = physician(&api, "disk_admin", "disk_doctor").await;
        let (patient, _) = api.until_acknowledged(&token, "/v1/patients", uuid::Uuid::now_v7(), &patient_registration("Full Disk")).await;
        let patient = patient["aggregate_id"].as_str().unwrap().to_owned();
        let body = |i: usize| {
            let mut body = record_creation(&patient, &doctor, &format!("Visit {i}"));
            body["content"]["description"] = json!(format!("Observation {i}: ").repeat(1000));
            body
        };

        // The disk fills up to the last byte, less 2 MiB the log, the read models
        // and the anchor worker then use up together while commands arrive.
        let ballast = data_dir.join("ballast");
        let ballast_bytes = fill(&ballast) - (2 << 20);
        std::fs::OpenOptions::new().write(true).open(&ballast).unwrap().set_len(ballast_bytes).unwrap();
        // Commands keep arriving until the disk has refused three of them (a
        // refusal rolls back, so room comes and goes near the limit).
        let mut acknowledged = Vec::new();
        let mut refused = Vec::new();
        for i in 0..2000 {
            if refused.len() == 3 {
                break;
            }
            let key = uuid::Uuid::now_v7();
            let (status, reply) = api.try_send(Method::POST, "/v1/records", Some(&token), Some(key), Some(&body(i))).await.unwrap();
            match status {
                201 => acknowledged.push((key.to_string(), reply["position"].as_u64().unwrap())),
                507 => {
                    assert_eq!(reply["retryable"].as_bool(), Some(true), "{reply}");
                    assert_eq!(reply["code"].as_str(), Some("storage-full"), "{reply}");
                    refused.push((key, i));
                }
                other => panic!("a full disk answered {other}: {reply}"),
            }
        }
        assert_eq!(refused.len(), 3, "the disk never filled up");
        let accepted_before_full = acknowledged.len();
        assert!(accepted_before_full > 10, "commands were accepted until the disk filled up: {accepted_before_full}");
        assert_eq!(served.process.try_wait().unwrap(), None, "the server survives a full disk");
        let (status, ready) = api.try_send(Method::GET, "/health", None, None, None).await.unwrap();
        assert_eq!(status, 200, "{ready}");

        // An operator frees space: the refused commands go through with their keys.
        std::fs::remove_file(&ballast).unwrap();
        for (key, i) in &refused {
            let (receipt, _) = api.until_acknowledged(&token, "/v1/records", *key, &body(*i)).await;
            acknowledged.push((key.to_string(), receipt["position"].as_u64().unwrap()));
        }
        for i in 0..5 {
            let key = uuid::Uuid::now_v7();
            let (receipt, _) = api.until_acknowledged(&token, "/v1/records", key, &body(10_000 + i)).await;
            acknowledged.push((key.to_string(), receipt["position"].as_u64().unwrap()));
        }
        until_projected(&data_dir).await;
        let verified = until_fully_anchored(&data_dir).await;

        // And after a crash, everything reopens consistent.
        kill(&mut served.process, "emr serve");
        served = serve(&data_dir, http, grpc, &sessions).await;
        kill(&mut served.process, "emr serve");
        let store = emr_sqlite::SqliteStore::open(&data_dir).await.unwrap();
        let stored = report::commits_by_command(&store.ports().0).await;
        report::assert_each_stored_once(&stored, acknowledged.iter().map(|(key, position)| (key, *position)));
        assert_read_models_equal_a_rebuild(&data_dir, "after the disk filled up and was freed").await;
        report::record(
            "disk-full",
            json!({"tmpfs_bytes": 24 << 20, "ballast_bytes": ballast_bytes, "commands_acknowledged_before_full": accepted_before_full,
                   "refusals_while_full": refused.len(), "refusal": "507 storage-full (retryable)",
                   "acknowledged_after_freeing": acknowledged.len() - accepted_before_full,
                   "events_verified": verified["events"], "lost": 0, "stored_twice": 0}),
        );
    });
}

#[test]
fn an_unwritable_data_directory_stops_start_up_with_an_error_naming_it() {
    if rerun_in_private_mounts("an_unwritable_data_directory_stops_start_up_with_an_error_naming_it") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let read_only = root.path().join("ro");
    mount_tmpfs(&read_only, "ro,size=1m");
    let mut cases = 0;
    for data_dir in [read_only.clone(), read_only.join("missing")] {
        for args in [&["serve"][..], &["accounts", "create-admin", "--username", "ro_admin"][..]] {
            let mut process = emr(&data_dir)
                .args(args)
                .env("EMR_ADMIN_PASSWORD", PASSWORD)
                .env("EMR__HTTP__LISTEN", format!("127.0.0.1:{}", free_port()))
                .env("EMR__GRPC__LISTEN", format!("127.0.0.1:{}", free_port()))
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while process.try_wait().unwrap().is_none() {
                assert!(std::time::Instant::now() < deadline, "emr {args:?} kept running on a read-only data directory");
                std::thread::sleep(Duration::from_millis(50));
            }
            let output = process.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "emr {args:?} must fail on a read-only data directory");
            assert!(stderr.contains(&read_only.display().to_string()), "emr {args:?}: the error names the directory: {stderr}");
            assert!(stderr.contains("Read-only file system"), "emr {args:?}: the error gives the cause: {stderr}");
            assert!(!stderr.contains("panicked"), "emr {args:?} panicked: {stderr}");
            cases += 1;
        }
    }
    report::record("unwritable-data-directory", json!({"cases": cases, "outcome": "exit non-zero naming the directory and the cause"}));
}
