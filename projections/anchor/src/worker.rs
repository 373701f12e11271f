//! The anchor worker: follows the log, appends leaves, signs and anchors heads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use emr_eventstore::{EventLog, LogFollower, LogReader, StoreError};

use crate::head::{NodeKey, TreeHead, hex};
use crate::ledger::{Anchored, LeafFile, Ledger, LedgerError};
use crate::merkle::{self, Hash, MerkleTree};

/// When to commit a tree head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnchorConfig {
    /// Commits per tree head at most (a full batch is anchored at once).
    pub batch_commits: usize,
    /// A partial batch is anchored once its oldest commit waited this long.
    pub max_delay: Duration,
}

impl Default for AnchorConfig {
    fn default() -> Self {
        Self { batch_commits: 1000, max_delay: Duration::from_secs(2) }
    }
}

/// Why anchoring failed.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The log failed or holds an undecodable commit.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node key cannot be used.
    #[error(transparent)]
    Key(#[from] crate::head::NodeKeyError),
    /// What the ledger anchored does not match the log: verification will say where.
    #[error("the anchored log does not match the event log: {0}; run `emr audit verify`")]
    Diverged(String),
    /// Another worker anchors from this directory: two would append the same
    /// leaves twice.
    #[error(
        "another anchor worker is using {}: one worker appends a log's leaves (stop the other, or give this one a directory of its own)",
        dir.display()
    )]
    Busy {
        /// The anchor directory.
        dir: PathBuf,
    },
}

struct State {
    tree: MerkleTree,
    last_position: u64,
    follower: LogFollower,
}

/// Anchors the event log to a ledger.
pub struct AnchorWorker {
    reader: LogReader,
    ledger: Arc<dyn Ledger>,
    leaf_file: LeafFile,
    key: NodeKey,
    config: AnchorConfig,
    state: tokio::sync::Mutex<State>,
    /// Locked for the worker's life (released when it is dropped or its process ends).
    _claim: std::fs::File,
}

impl AnchorWorker {
    /// Resumes from the last anchored head: leaves beyond it (a crash between
    /// writing leaves and anchoring) are dropped and recomputed from the log.
    /// Refused ([`AnchorError::Busy`]) while another worker, in this process or
    /// another, has `dir`.
    pub async fn open(log: Arc<dyn EventLog>, ledger: Arc<dyn Ledger>, dir: &Path, config: AnchorConfig) -> Result<Self, AnchorError> {
        let claim = Self::claim(dir)?;
        let key = NodeKey::load_or_create(&dir.join("node.key"))?;
        let leaf_file = LeafFile::open(dir)?;
        let reader = LogReader::new(log);
        let anchored = ledger.anchored().await?;
        let (size, last_position, root) = anchored
            .last()
            .map_or((0, 0, merkle::root(&[])), |a| (a.head.size, a.head.last_position, a.head.root_hash().unwrap_or_default()));
        let mut leaves = leaf_file.read()?;
        if (leaves.len() as u64) < size {
            leaves = reader
                .read(1, usize::try_from(last_position).unwrap_or(usize::MAX))
                .await?
                .iter()
                .map(|e| merkle::leaf_hash(&e.canonical_bytes()))
                .collect();
            leaf_file.truncate(0)?;
            leaf_file.append(&leaves)?;
        }
        let mut tree = MerkleTree::from_leaves(leaves);
        tree.truncate(size);
        leaf_file.truncate(size)?;
        if tree.root(size) != Some(root) {
            return Err(AnchorError::Diverged(format!("the leaves do not give the root anchored at size {size}")));
        }
        let follower = reader.follower();
        let state = tokio::sync::Mutex::new(State { tree, last_position, follower });
        Ok(Self { reader, ledger, leaf_file, key, config, state, _claim: claim })
    }

    /// An exclusive lock on `dir`'s `anchor.lock`.
    fn claim(dir: &Path) -> Result<std::fs::File, AnchorError> {
        let path = dir.join("anchor.lock");
        let io = |source| AnchorError::Ledger(LedgerError::Io { path: path.clone(), source });
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(AnchorError::Busy { dir: dir.to_owned() }),
            Err(std::fs::TryLockError::Error(source)) => Err(io(source)),
        }
    }

    /// The node's public key (hex): what verifiers trust.
    pub fn public_key(&self) -> String {
        self.key.public_key()
    }

    /// Anchors up to one batch of commits after the last head; `None` when none wait.
    pub async fn step(&self) -> Result<Option<Anchored>, AnchorError> {
        let mut state = self.state.lock().await;
        let after = state.last_position;
        let events = state.follower.events_after(after, self.config.batch_commits).await?;
        let (Some(first), Some(last)) = (events.first(), events.last()) else { return Ok(None) };
        let (first_position, last_position) = (first.metadata.position, last.metadata.position);
        let new_leaves: Vec<Hash> = events.iter().map(|e| merkle::leaf_hash(&e.canonical_bytes())).collect();
        self.leaf_file.append(&new_leaves)?;
        let anchored_size = state.tree.len();
        state.tree.extend(new_leaves);
        let size = state.tree.len();
        let mut head = TreeHead {
            size,
            root: hex(&state.tree.root(size).unwrap_or_default()),
            first_position,
            last_position,
            signed_at: Utc::now(),
            key: String::new(),
            signature: String::new(),
        };
        self.key.sign(&mut head);
        let submitted = Instant::now();
        let anchored = match self.ledger.anchor(&head).await {
            Ok(anchored) => anchored,
            Err(error) => {
                crate::metrics::failed(self.ledger.name());
                state.tree.truncate(anchored_size);
                self.leaf_file.truncate(anchored_size)?;
                return Err(error.into());
            }
        };
        crate::metrics::anchored(self.ledger.name(), anchored.head.size, submitted.elapsed());
        state.last_position = last_position;
        Ok(Some(anchored))
    }

    /// Anchors until the log has no unanchored commit.
    pub async fn catch_up(&self) -> Result<Vec<Anchored>, AnchorError> {
        let mut heads = Vec::new();
        while let Some(anchored) = self.step().await? {
            heads.push(anchored);
        }
        Ok(heads)
    }

    /// Follows the log until `shutdown`: a full batch is anchored at once, a
    /// partial one after `max_delay`. Failures are logged and retried.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut waiting_since: Option<Instant> = None;
        loop {
            let pending = match self.reader.head().await {
                Ok(head) => head.saturating_sub(self.state.lock().await.last_position),
                Err(error) => {
                    tracing::warn!(%error, "anchor worker cannot read the log head");
                    0
                }
            };
            let waited = match pending {
                0 => Duration::ZERO,
                _ => waiting_since.get_or_insert_with(Instant::now).elapsed(),
            };
            crate::metrics::backlog(self.ledger.name(), pending, waited);
            let due = pending >= self.config.batch_commits as u64 || (pending > 0 && waited >= self.config.max_delay);
            if due {
                match self.step().await {
                    Ok(Some(anchored)) => {
                        tracing::info!(
                            size = anchored.head.size,
                            block = anchored.block,
                            ledger = self.ledger.name(),
                            "tree head anchored"
                        );
                        waiting_since = None;
                    }
                    Ok(None) => waiting_since = None,
                    Err(error) => tracing::warn!(%error, "anchoring failed; retrying"),
                }
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }
}
