//! The ledger port, and the embedded ledger: an append-only file of signed tree
//! heads, each line carrying the hash of the line before it.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::head::{TreeHead, hex};
use crate::merkle::Hash;

/// A tree head as a ledger holds it, with where it landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchored {
    /// The head.
    pub head: TreeHead,
    /// The ledger's name for the transaction (for the file ledger: the line hash).
    pub transaction_id: String,
    /// Block (for the file ledger: the line number, from 1).
    pub block: u64,
}

/// Where one tree head stands on one ledger: a row of the BlockchainTransactions
/// read model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorStatus {
    /// `file`, or `evm:<chain id>`.
    pub ledger: String,
    /// Transaction id on that ledger.
    pub transaction_id: String,
    /// Block (line of the file ledger; block number on a chain).
    pub block: u64,
    /// Tree size anchored.
    pub tree_size: u64,
    /// Root anchored, hex.
    pub root: String,
    /// Last log position covered.
    pub last_position: u64,
    /// Final: mined with the required confirmations (always, for the file ledger).
    pub confirmed: bool,
}

impl Anchored {
    /// The status of a head in the embedded ledger (final once written).
    pub fn status(&self, ledger: &str) -> AnchorStatus {
        AnchorStatus {
            ledger: ledger.to_owned(),
            transaction_id: self.transaction_id.clone(),
            block: self.block,
            tree_size: self.head.size,
            root: self.head.root.clone(),
            last_position: self.head.last_position,
            confirmed: true,
        }
    }
}

/// Why a ledger failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// I/O failure.
    #[error("ledger {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The ledger's own integrity is broken (edited, truncated in the middle).
    #[error("ledger {path}, block {block}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The first bad block.
        block: u64,
        /// What is wrong.
        reason: String,
    },
    /// A head that does not extend the ledger (smaller or equal size).
    #[error("tree head of size {size} does not extend the ledger at size {latest}")]
    NotAppendOnly {
        /// The refused size.
        size: u64,
        /// The ledger's latest size.
        latest: u64,
    },
    /// A remote ledger (Fabric) could not be reached, refused the call, or
    /// committed it invalid.
    #[error("remote ledger: {0}")]
    Unavailable(String),
}

/// Where signed tree heads are anchored.
pub trait Ledger: Send + Sync + 'static {
    /// A short name (`file`, `fabric`, `evm:1`).
    fn name(&self) -> &str;
    /// Appends a head; refuses one that does not extend the latest.
    fn anchor<'a>(&'a self, head: &'a TreeHead) -> BoxFuture<'a, Result<Anchored, LedgerError>>;
    /// Every head anchored, in order (after checking the ledger's own integrity).
    fn anchored(&self) -> BoxFuture<'_, Result<Vec<Anchored>, LedgerError>>;
}

#[derive(Serialize, Deserialize)]
struct Line {
    previous: String,
    head: TreeHead,
}

fn line_hash(line: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, line.as_bytes()).as_ref())
}

/// The embedded ledger: `heads.jsonl`, one signed head per line, hash-chained.
pub struct FileLedger {
    path: PathBuf,
    tail: Mutex<Option<Tail>>,
}

/// The end of the chain as this ledger last read or wrote it, so an append costs
/// one line rather than a pass over every earlier one. `file_len` is the file's
/// length it describes: a file that has changed since (another writer, a
/// restore) is read and checked again before a line is chained to it.
struct Tail {
    file_len: u64,
    blocks: u64,
    size: u64,
    line_hash: String,
}

impl FileLedger {
    /// A ledger in `dir` (created if needed).
    pub fn open(dir: &Path) -> Result<Self, LedgerError> {
        std::fs::create_dir_all(dir).map_err(|source| LedgerError::Io { path: dir.to_owned(), source })?;
        Ok(Self { path: dir.join("heads.jsonl"), tail: Mutex::new(None) })
    }

    fn io(&self) -> impl Fn(std::io::Error) -> LedgerError + '_ {
        |source| LedgerError::Io { path: self.path.clone(), source }
    }

    fn read(&self) -> Result<Vec<Anchored>, LedgerError> {
        Ok(self.read_counting()?.0)
    }

    /// Every head, checked, and the number of bytes read.
    fn read_counting(&self) -> Result<(Vec<Anchored>, u64), LedgerError> {
        let file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            Err(e) => return Err(self.io()(e)),
        };
        let mut anchored = Vec::new();
        let mut previous = "genesis".to_owned();
        let mut bytes = 0;
        for (index, text) in std::io::BufReader::new(file).lines().enumerate() {
            let block = index as u64 + 1;
            let corrupt = |reason: String| LedgerError::Corrupt { path: self.path.clone(), block, reason };
            let text = text.map_err(self.io())?;
            bytes += text.len() as u64 + 1;
            let line: Line = serde_json::from_str(&text).map_err(|e| corrupt(format!("not a ledger line: {e}")))?;
            if line.previous != previous {
                return Err(corrupt("the chain is broken: the line does not name the hash of the line before it".into()));
            }
            previous = line_hash(&text);
            anchored.push(Anchored { head: line.head, transaction_id: previous.clone(), block });
        }
        Ok((anchored, bytes))
    }

    /// The tail, read again (and the whole chain checked) when the file is not
    /// the length this ledger left it at.
    fn current_tail(&self, cached: Option<Tail>, file_len: u64) -> Result<Tail, LedgerError> {
        if let Some(tail) = cached.filter(|tail| tail.file_len == file_len) {
            return Ok(tail);
        }
        let (anchored, file_len) = self.read_counting()?;
        Ok(match anchored.last() {
            Some(last) => Tail { file_len, blocks: last.block, size: last.head.size, line_hash: last.transaction_id.clone() },
            None => Tail { file_len, blocks: 0, size: 0, line_hash: "genesis".to_owned() },
        })
    }

    fn append(&self, head: &TreeHead) -> Result<Anchored, LedgerError> {
        let mut cached = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path).map_err(self.io())?;
        // Another process may anchor to the same file: holding its lock makes
        // reading the tail and writing the next line one step (released on drop).
        file.lock().map_err(self.io())?;
        let tail = self.current_tail(cached.take(), file.metadata().map_err(self.io())?.len())?;
        if head.size <= tail.size {
            let latest = tail.size;
            *cached = Some(tail);
            return Err(LedgerError::NotAppendOnly { size: head.size, latest });
        }
        let text = serde_json::to_string(&Line { previous: tail.line_hash, head: head.clone() }).map_err(|e| self.io()(e.into()))?;
        // A failed write leaves no tail cached: the next append reads the file again.
        file.write_all(format!("{text}\n").as_bytes()).and_then(|()| file.sync_all()).map_err(self.io())?;
        let anchored = Anchored { head: head.clone(), transaction_id: line_hash(&text), block: tail.blocks + 1 };
        *cached = Some(Tail {
            file_len: tail.file_len + text.len() as u64 + 1,
            blocks: anchored.block,
            size: head.size,
            line_hash: anchored.transaction_id.clone(),
        });
        Ok(anchored)
    }
}

impl Ledger for FileLedger {
    fn name(&self) -> &str {
        "file"
    }

    fn anchor<'a>(&'a self, head: &'a TreeHead) -> BoxFuture<'a, Result<Anchored, LedgerError>> {
        futures::future::ready(self.append(head)).boxed()
    }

    fn anchored(&self) -> BoxFuture<'_, Result<Vec<Anchored>, LedgerError>> {
        futures::future::ready(self.read()).boxed()
    }
}

/// The leaf hashes of the Merkle log, in order: 32 bytes each, append-only.
/// Anchored roots vouch for them; they let verification name the first bad event.
pub(crate) struct LeafFile {
    path: PathBuf,
}

impl LeafFile {
    pub(crate) fn open(dir: &Path) -> Result<Self, LedgerError> {
        std::fs::create_dir_all(dir).map_err(|source| LedgerError::Io { path: dir.to_owned(), source })?;
        Ok(Self { path: dir.join("leaves.bin") })
    }

    fn io(&self, source: std::io::Error) -> LedgerError {
        LedgerError::Io { path: self.path.clone(), source }
    }

    pub(crate) fn read(&self) -> Result<Vec<Hash>, LedgerError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(self.io(e)),
        };
        Ok(bytes.chunks_exact(32).map(|c| c.try_into().unwrap_or([0; 32])).collect())
    }

    /// Keeps the first `size` leaves: those a crash left beyond the last head are
    /// recomputed from the log.
    pub(crate) fn truncate(&self, size: u64) -> Result<(), LedgerError> {
        match std::fs::OpenOptions::new().write(true).open(&self.path) {
            Ok(file) => file.set_len(size * 32).and_then(|()| file.sync_all()).map_err(|e| self.io(e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io(e)),
        }
    }

    pub(crate) fn append(&self, leaves: &[Hash]) -> Result<(), LedgerError> {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path).map_err(|e| self.io(e))?;
        file.write_all(&leaves.concat()).and_then(|()| file.sync_all()).map_err(|e| self.io(e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn head(size: u64) -> TreeHead {
        TreeHead {
            size,
            root: hex(&[size as u8; 32]),
            first_position: size,
            last_position: size,
            signed_at: Utc::now(),
            key: String::new(),
            signature: String::new(),
        }
    }

    #[test]
    fn two_writers_on_one_file_extend_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (FileLedger::open(dir.path()).unwrap(), FileLedger::open(dir.path()).unwrap());
        for size in 1..=6 {
            let writer = if size % 2 == 0 { &second } else { &first };
            let anchored = writer.append(&head(size)).unwrap();
            assert_eq!(anchored.block, size, "each writer numbers its line after the other's");
        }
        let heads = FileLedger::open(dir.path()).unwrap().read().unwrap();
        assert_eq!(heads.iter().map(|a| a.head.size).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5, 6]);
        // The first writer last wrote size 5; the second has since written 6.
        assert!(matches!(first.append(&head(6)), Err(LedgerError::NotAppendOnly { size: 6, latest: 6 })));
    }

    #[test]
    fn writers_racing_on_one_file_never_fork_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let ledger = FileLedger::open(dir.path()).unwrap();
                std::thread::spawn(move || {
                    for size in 1..=400 {
                        match ledger.append(&head(size)) {
                            Ok(_) | Err(LedgerError::NotAppendOnly { .. }) => {}
                            Err(other) => panic!("append failed: {other}"),
                        }
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let heads = FileLedger::open(dir.path()).unwrap().read().expect("one unbroken chain");
        assert!(heads.windows(2).all(|pair| pair[0].head.size < pair[1].head.size), "sizes only grow");
        assert_eq!(heads.last().unwrap().head.size, 400);
    }

    #[test]
    fn an_append_to_a_file_edited_behind_the_ledger_is_refused_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = FileLedger::open(dir.path()).unwrap();
        for size in 1..=3 {
            ledger.append(&head(size)).unwrap();
        }
        let path = dir.path().join("heads.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Drop the middle line: the chain is broken and the file shorter.
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        assert!(matches!(ledger.append(&head(4)), Err(LedgerError::Corrupt { block: 2, .. })));
    }

    #[test]
    fn a_refused_head_leaves_the_ledger_appendable() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = FileLedger::open(dir.path()).unwrap();
        ledger.append(&head(2)).unwrap();
        assert!(matches!(ledger.append(&head(2)), Err(LedgerError::NotAppendOnly { size: 2, latest: 2 })));
        assert_eq!(ledger.append(&head(3)).unwrap().block, 2);
        assert_eq!(ledger.read().unwrap().len(), 2);
    }
}
