//! What the process-level tests share: `emr` run on a data directory, the API it
//! serves, and the checks that a data directory is consistent (audit verify
//! clean, read models equal to a clean fold of the log).
// Shared by several test binaries; each uses a different part.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use emr_tests::accounts::{self, PASSWORD};
use emr_tests::api_client::ApiClient;
use emr_tests::read_models::{Store, TestReadModels, assert_same_tables, fold_all};
use serde_json::{Value, json};

/// `emr` on a data directory, anchoring and folding in small batches.
pub fn emr(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_emr"));
    command
        .env("EMR__STORE__DATA_DIR", data_dir)
        .env("EMR__AUDIT__BATCH_COMMITS", "4")
        .env("EMR__AUDIT__MAX_DELAY_MS", "20")
        .env("EMR__READ_MODELS__BATCH_SIZE", "3")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(server_log());
    command
}

/// Where `emr`'s log goes: the file named by `EMR_TEST_SERVER_LOG` (appended to,
/// for debugging a failing test), else nowhere.
fn server_log() -> Stdio {
    match std::env::var_os("EMR_TEST_SERVER_LOG") {
        Some(path) => std::fs::OpenOptions::new().create(true).append(true).open(path).map_or(Stdio::null(), Stdio::from),
        None => Stdio::null(),
    }
}

/// SIGKILLs a process that must still be running.
pub fn kill(process: &mut Child, what: &str) {
    assert_eq!(process.try_wait().unwrap(), None, "{what} exited on its own");
    process.kill().unwrap(); // SIGKILL: no shutdown path runs
    process.wait().unwrap();
}

/// `emr audit verify` on the data directory: its JSON report (the test fails
/// when verification does).
pub fn verify(data_dir: &Path, when: &str) -> Value {
    verify_with(emr(data_dir), when)
}

/// `emr audit verify` run by `emr` (a command set up for some deployment).
pub fn verify_with(mut emr: Command, when: &str) -> Value {
    let output = emr.args(["audit", "verify"]).stdout(Stdio::piped()).stderr(Stdio::piped()).output().unwrap();
    assert!(output.status.success(), "audit verify failed {when}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Runs `emr audit verify` until every event is anchored.
pub async fn until_fully_anchored(data_dir: &Path) -> Value {
    until_fully_anchored_with(|| emr(data_dir)).await
}

/// [`until_fully_anchored`] with `emr` commands from `emr` (another deployment's settings).
pub async fn until_fully_anchored_with(emr: impl Fn() -> Command) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let report = verify_with(emr(), "while catching up");
        if report["events"].as_u64() > Some(0) && report["anchored_events"] == report["events"] {
            return report;
        }
        assert!(Instant::now() < deadline, "anchoring never caught up: {report}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `emr projections status` shows every read model at the log's head.
pub async fn until_projected(data_dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let output = emr(data_dir).args(["projections", "status"]).stdout(Stdio::piped()).output().unwrap();
        let lags: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        if output.status.success() && lags.as_array().is_some_and(|lags| lags.iter().all(|lag| lag["behind_commits"] == 0)) {
            return;
        }
        assert!(Instant::now() < deadline, "projections never caught up: {lags}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The read models of the data directory equal a clean fold of its log.
pub async fn assert_read_models_equal_a_rebuild(data_dir: &Path, when: &str) {
    let store = emr_sqlite::SqliteStore::open(data_dir).await.unwrap();
    let (log, _, _) = store.ports();
    let survived = TestReadModels::open_sqlite(&data_dir.join("read-models.db")).await;
    let clean = TestReadModels::fresh(Store::Sqlite).await;
    fold_all(&clean.db, &log, 1000).await;
    assert_same_tables(&survived.dump_all().await, &clean.dump_all().await, when);
    survived.db.close().await;
    clean.remove().await;
}

/// A running `emr serve` and a client of its HTTP API. Dropped (a test ended,
/// or failed), it kills the process if it still runs: no server outlives its test.
pub struct Served {
    pub process: Child,
    pub api: ApiClient,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.process.try_wait() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

/// Starts `emr serve` on the data directory (sessions in Redis under `sessions`,
/// so tokens outlive the process) and waits until it is ready.
pub async fn serve(data_dir: &Path, http: u16, grpc: u16, sessions: &str) -> Served {
    serve_with(data_dir, http, grpc, sessions, &[]).await
}

/// [`serve`] with more environment (settings) for the process.
pub async fn serve_with(data_dir: &Path, http: u16, grpc: u16, sessions: &str, env: &[(&str, &std::ffi::OsStr)]) -> Served {
    let mut command = serve_command(data_dir, http, grpc, sessions);
    command.envs(env.iter().copied());
    started(command, http).await
}

/// The `emr serve` command [`serve`] runs, to adjust before [`started`].
pub fn serve_command(data_dir: &Path, http: u16, grpc: u16, sessions: &str) -> Command {
    let mut command = emr(data_dir);
    command
        .arg("serve")
        .env("EMR__HTTP__LISTEN", format!("127.0.0.1:{http}"))
        .env("EMR__GRPC__LISTEN", format!("127.0.0.1:{grpc}"))
        .env("EMR__AUTH__REDIS_URL", std::env::var("EMR_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()))
        .env("EMR__AUTH__REDIS_NAMESPACE", sessions)
        // Fewer, larger tree heads than the anchor test: the load writes thousands of commits.
        .env("EMR__AUDIT__BATCH_COMMITS", "64");
    command
}

/// Spawns a serve command and waits until its API on `http` is ready.
pub async fn started(mut command: Command, http: u16) -> Served {
    let process = command.spawn().unwrap();
    let api = ApiClient::new(format!("http://127.0.0.1:{http}"));
    api.wait_ready().await;
    Served { process, api }
}

/// Opens the first administrator on a data directory, as an operator does.
pub fn create_admin(data_dir: &Path, username: &str) {
    let created =
        emr(data_dir).args(["accounts", "create-admin", "--username", username]).env("EMR_ADMIN_PASSWORD", PASSWORD).status().unwrap();
    assert!(created.success(), "emr accounts create-admin failed");
}

/// Signs the administrator `admin` in, opens the physician `username` through
/// the API and signs them in: the physician's user id and access token.
pub async fn physician(api: &ApiClient, admin: &str, username: &str) -> (String, String) {
    let admin = accounts::sign_in(&api.http, &api.base, admin).await;
    let physician = json!({"username": username, "password": PASSWORD, "role": "physician",
        "profile": {"full_name": "Sun Lei", "licence_number": "LIC-7788", "department": "Respiratory", "specialization": "Asthma"}});
    let (opened, _) = api.until_acknowledged(&admin, "/v1/accounts", uuid::Uuid::now_v7(), &physician).await;
    (opened["user_id"].as_str().unwrap().to_owned(), accounts::sign_in(&api.http, &api.base, username).await)
}
