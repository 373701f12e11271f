//! `emr backup` and `emr restore`: a consistent copy of what cannot be rebuilt —
//! the event log, the wrapped data keys, the anchoring state (node key, leaves,
//! embedded ledger) and the embedded blob store — with a manifest of hashes.
//!
//! Left out on purpose: the keyring (KEKs belong in a secret store apart from the
//! backup, or a stolen backup opens every record), read models and snapshots
//! (rebuilt from the log), token-signing keys and sessions (sign in again).
//!
//! Consistency under load: anchoring files are copied first (heads before
//! leaves, whole records only), then the log up to its head at that moment, so
//! everything anchored is in the copied log; then the keys of every patient in it.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use emr_commands::EventStorePorts;
use emr_domain::ids::PatientId;
use emr_domain::values::Sha256Digest;
use emr_eventstore::{AggregateKey, CommitRecord, CommitRequest, KeyState, StoredCommit};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::settings::Settings;

const FORMAT: &str = "emr-backup/1";
const MANIFEST: &str = "manifest.json";
const COMMITS: &str = "commits.jsonl";
const KEYS: &str = "keys.jsonl";
/// Commits appended per pipelined batch on restore.
const RESTORE_BATCH: usize = 1000;
/// Commits per read of the log.
const READ_BATCH: usize = 10_000;
/// Key lookups or writes in flight at once.
const KEYS_IN_FLIGHT: usize = 32;

/// What a backup holds, and the SHA-256 of every file in it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Manifest {
    format: String,
    created_at: chrono::DateTime<chrono::Utc>,
    /// The log's last position in the backup.
    log_head: u64,
    commits: u64,
    key_states: u64,
    /// Path inside the backup → its SHA-256.
    files: BTreeMap<String, Sha256Digest>,
}

#[derive(Serialize, Deserialize)]
struct CommitLine {
    position: u64,
    key: String,
    payload: String,
}

#[derive(Serialize, Deserialize)]
struct KeyLine {
    patient: PatientId,
    state: KeyState,
}

fn sha256_of(path: &Path) -> anyhow::Result<Sha256Digest> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Sha256Digest::of(&bytes))
}

/// Every file under `dir`, as paths relative to it.
fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let entries = match std::fs::read_dir(dir.join(&relative)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("listing {}", dir.join(&relative).display())),
        };
        for entry in entries {
            let entry = entry?;
            let path = relative.join(entry.file_name());
            if entry.file_type()?.is_dir() { pending.push(path) } else { found.push(path) }
        }
    }
    Ok(found)
}

/// Copies the first `keep(bytes)` bytes of `from` to `to`, if `from` exists.
fn copy_prefix(from: &Path, to: &Path, keep: impl Fn(&[u8]) -> usize) -> anyhow::Result<()> {
    let bytes = match std::fs::read(from) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", from.display())),
    };
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(to, &bytes[..keep(&bytes)]).with_context(|| format!("writing {}", to.display()))
}

/// Writes a backup of the deployment into `to`, which must not exist or be empty.
pub(crate) async fn backup(settings: &Settings, ports: &EventStorePorts, to: &Path) -> anyhow::Result<Manifest> {
    if to.exists() && std::fs::read_dir(to)?.next().is_some() {
        bail!("{} is not empty: a backup goes into a new directory", to.display());
    }
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;

    // Anchoring state first: heads before leaves, whole records only.
    let audit = settings.audit_dir();
    copy_prefix(&audit.join("heads.jsonl"), &to.join("audit/heads.jsonl"), |b| b.iter().rposition(|c| *c == b'\n').map_or(0, |i| i + 1))?;
    copy_prefix(&audit.join("leaves.bin"), &to.join("audit/leaves.bin"), |b| b.len() / 32 * 32)?;
    copy_prefix(&audit.join("node.key"), &to.join("audit/node.key"), <[u8]>::len)?;

    // The log up to its head now: it holds everything anchored above.
    let log_head = ports.log.head().await?;
    let mut commits = std::io::BufWriter::new(std::fs::File::create(to.join(COMMITS))?);
    let (mut count, mut from) = (0u64, 1u64);
    while from <= log_head {
        // Large reads: each one costs a consumer on JetStream.
        let page = ports.log.read_from(from, READ_BATCH).await?;
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        for commit in page.iter().filter(|c| c.position <= log_head) {
            let line = CommitLine { position: commit.position, key: commit.key.dotted(), payload: BASE64.encode(&commit.payload) };
            serde_json::to_writer(&mut commits, &line)?;
            commits.write_all(b"\n")?;
            count += 1;
        }
    }
    commits.into_inner().map_err(|e| e.into_error())?.sync_all()?;

    let mut keys = std::io::BufWriter::new(std::fs::File::create(to.join(KEYS))?);
    let mut key_states = 0;
    let subjects = ports.keys.subjects().await?;
    // A few lookups in flight at once, written in the order asked.
    let mut states =
        futures::stream::iter(subjects).map(|patient| async move { (patient, ports.keys.get(patient).await) }).buffered(KEYS_IN_FLIGHT);
    while let Some((patient, state)) = states.next().await {
        serde_json::to_writer(&mut keys, &KeyLine { patient, state: state? })?;
        keys.write_all(b"\n")?;
        key_states += 1;
    }
    keys.into_inner().map_err(|e| e.into_error())?.sync_all()?;

    if settings.blobs.ipfs_api.is_none() {
        let blobs = settings.blobs_dir();
        for file in files_under(&blobs)? {
            copy_prefix(&blobs.join(&file), &to.join("blobs").join(&file), <[u8]>::len)?;
        }
    }

    let mut files = BTreeMap::new();
    for file in files_under(to)? {
        files.insert(file.to_string_lossy().into_owned(), sha256_of(&to.join(&file))?);
    }
    let manifest = Manifest { format: FORMAT.into(), created_at: chrono::Utc::now(), log_head, commits: count, key_states, files };
    // Written last: a directory without it is not a finished backup.
    std::fs::write(to.join(MANIFEST), serde_json::to_vec_pretty(&manifest)?)?;
    Ok(manifest)
}

/// Restores the backup in `from` into this deployment, which must be empty.
pub(crate) async fn restore(settings: &Settings, ports: &EventStorePorts, from: &Path) -> anyhow::Result<Manifest> {
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(from.join(MANIFEST)).with_context(|| format!("{} holds no finished backup (no {MANIFEST})", from.display()))?,
    )
    .context("reading the manifest")?;
    ensure!(manifest.format == FORMAT, "backup format {} is not {FORMAT}", manifest.format);
    for (file, expected) in &manifest.files {
        let actual = sha256_of(&from.join(file))?;
        ensure!(&actual == expected, "{file} does not match the manifest (SHA-256 {actual}, expected {expected}): the backup is damaged");
    }
    ensure!(ports.log.head().await? == 0, "the event log is not empty: restore only into a new deployment");
    ensure!(ports.keys.subjects().await?.is_empty(), "the key store is not empty: restore only into a new deployment");
    let audit = settings.audit_dir();
    ensure!(!audit.join("leaves.bin").exists() && !audit.join("heads.jsonl").exists(), "{} already holds anchors", audit.display());

    // Keys before the commits whose PHI they open.
    let lines: Vec<KeyLine> = std::io::BufReader::new(std::fs::File::open(from.join(KEYS))?)
        .lines()
        .map(|line| Ok(serde_json::from_str(&line?)?))
        .collect::<anyhow::Result<_>>()?;
    let restore_key = |KeyLine { patient, state }: KeyLine| async move {
        match state {
            KeyState::Active { wrapped } => drop(ports.keys.create(patient, wrapped).await?),
            KeyState::Destroyed => ports.keys.destroy(patient).await?,
            KeyState::Absent => {}
        }
        anyhow::Ok(())
    };
    futures::stream::iter(lines).map(restore_key).buffer_unordered(KEYS_IN_FLIGHT).try_collect::<Vec<()>>().await?;
    let mut last_of: BTreeMap<String, u64> = BTreeMap::new();
    let mut batch: Vec<(u64, CommitRequest)> = Vec::with_capacity(RESTORE_BATCH);
    for line in std::io::BufReader::new(std::fs::File::open(from.join(COMMITS))?).lines() {
        let CommitLine { position, key, payload } = serde_json::from_str(&line?)?;
        let key = AggregateKey::from_dotted(&key)?;
        let payload = BASE64.decode(payload)?;
        let record = CommitRecord::decode(&StoredCommit { position, key: key.clone(), payload: payload.clone() })?;
        let expected_last_position = last_of.insert(key.dotted(), position).unwrap_or(0);
        batch.push((position, CommitRequest { key, expected_last_position, commit_id: record.command_id.to_string(), payload }));
        if batch.len() == RESTORE_BATCH {
            restore_commits(ports, std::mem::take(&mut batch)).await?;
        }
    }
    restore_commits(ports, batch).await?;
    for file in manifest.files.keys() {
        let source = from.join(file);
        if let Some(rest) = file.strip_prefix("audit/") {
            copy_prefix(&source, &audit.join(rest), <[u8]>::len)?;
        } else if let Some(rest) = file.strip_prefix("blobs/") {
            copy_prefix(&source, &settings.blobs_dir().join(rest), <[u8]>::len)?;
        }
    }
    Ok(manifest)
}

/// Appends a batch of backed-up commits in order; each must land at its
/// original position (receipts, anchors and read-model checkpoints name them).
async fn restore_commits(ports: &EventStorePorts, batch: Vec<(u64, CommitRequest)>) -> anyhow::Result<()> {
    let (positions, requests): (Vec<u64>, Vec<CommitRequest>) = batch.into_iter().unzip();
    let appended = ports.log.append_in_order(requests).await?;
    for (position, appended) in positions.into_iter().zip(appended) {
        ensure!(appended.position == position, "commit restored at position {} instead of {position}", appended.position);
    }
    Ok(())
}
