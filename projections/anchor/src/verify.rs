//! `emr audit verify`: replay the log and prove it is the log that was anchored.

use std::path::Path;
use std::sync::Arc;

use emr_eventstore::{EventLog, LogReader, RecordedEvent, stored_canonical_bytes};
use futures::StreamExt;
use serde::Serialize;

use crate::head::hex;
use crate::ledger::{LeafFile, Ledger, LedgerError};
use crate::merkle::{self, MerkleTree};
use crate::worker::AnchorError;

/// The first thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// Stable kind: `ledger-corrupt`, `bad-signature`, `untrusted-key`, `not-append-only`,
    /// `inconsistent-heads`, `leaves-do-not-match-head`, `event-altered`, `event-missing`,
    /// `log-unreadable`.
    pub kind: String,
    /// Log position of the event concerned, when there is one.
    pub position: Option<u64>,
    /// `<type>.<id>` of its aggregate.
    pub aggregate: Option<String>,
    /// Its event id.
    pub event_id: Option<String>,
    /// What failed, in words.
    pub detail: String,
}

impl Failure {
    fn new(kind: &str, detail: impl Into<String>) -> Self {
        Self { kind: kind.into(), position: None, aggregate: None, event_id: None, detail: detail.into() }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    /// True when nothing failed.
    pub ok: bool,
    /// Events replayed from the log.
    pub events: u64,
    /// Events covered by the latest anchored head.
    pub anchored_events: u64,
    /// Tree heads checked.
    pub tree_heads: usize,
    /// Consistency proofs checked between successive heads.
    pub consistency_proofs: usize,
    /// The latest anchored root, hex.
    pub latest_root: Option<String>,
    /// The first failure, if any.
    pub failure: Option<Failure>,
}

/// Verifies the log against the ledger and the leaf file in `dir`; heads must be
/// signed by one of `trusted_keys` (hex Ed25519 public keys), when given.
pub async fn verify(log: Arc<dyn EventLog>, ledger: &dyn Ledger, dir: &Path, trusted_keys: &[String]) -> Result<VerifyReport, AnchorError> {
    let mut report =
        VerifyReport { ok: false, events: 0, anchored_events: 0, tree_heads: 0, consistency_proofs: 0, latest_root: None, failure: None };
    let fail = |mut report: VerifyReport, failure: Failure| {
        report.failure = Some(failure);
        Ok(report)
    };
    let heads = match ledger.anchored().await {
        Ok(heads) => heads,
        Err(error @ LedgerError::Corrupt { .. }) => return fail(report, Failure::new("ledger-corrupt", error.to_string())),
        Err(error) => return Err(error.into()),
    };
    report.tree_heads = heads.len();
    report.anchored_events = heads.last().map_or(0, |a| a.head.size);
    report.latest_root = heads.last().map(|a| a.head.root.clone());

    for (i, anchored) in heads.iter().enumerate() {
        let head = &anchored.head;
        if !head.signature_valid() {
            return fail(
                report,
                Failure::new("bad-signature", format!("tree head {} (block {}) has an invalid signature", i + 1, anchored.block)),
            );
        }
        if !trusted_keys.is_empty() && !trusted_keys.contains(&head.key) {
            return fail(report, Failure::new("untrusted-key", format!("tree head {} is signed by an untrusted key {}", i + 1, head.key)));
        }
        if i > 0 && head.size <= heads[i - 1].head.size {
            return fail(report, Failure::new("not-append-only", format!("tree head {} shrinks the log to {} leaves", i + 1, head.size)));
        }
    }

    let tree = MerkleTree::from_leaves(LeafFile::open(dir)?.read()?);
    let stored = tree.leaves();
    for (i, anchored) in heads.iter().enumerate() {
        let size = anchored.head.size;
        let root = tree.root(size);
        if root.is_none() || root != anchored.head.root_hash() {
            return fail(
                report,
                Failure::new("leaves-do-not-match-head", format!("the stored leaves do not give the root of tree head {}", i + 1)),
            );
        }
        if i > 0 {
            let previous = &heads[i - 1].head;
            let proof = tree.consistency_proof(previous.size, size).unwrap_or_default();
            let (Some(first_root), Some(second_root)) = (previous.root_hash(), anchored.head.root_hash()) else {
                return fail(report, Failure::new("inconsistent-heads", format!("tree head {} has a malformed root", i + 1)));
            };
            if !merkle::verify_consistency(previous.size, anchored.head.size, &first_root, &second_root, &proof) {
                return fail(
                    report,
                    Failure::new("inconsistent-heads", format!("tree head {} is not an extension of tree head {i}", i + 1)),
                );
            }
            report.consistency_proofs += 1;
        }
    }

    let anchored = usize::try_from(report.anchored_events).unwrap_or(usize::MAX);
    let mut index = 0usize;
    let mut previous_position = 0u64;
    let unreadable = |error: String, position: u64| {
        let mut failure = Failure::new("log-unreadable", error);
        failure.position = Some(position);
        failure
    };
    // One subscription up to the head read first: the client fetches the next
    // commits while these are hashed, and no read opens a consumer of its own
    // (a quarter of the pass at 1000 commits per read).
    let head = match log.head().await {
        Ok(head) => head,
        Err(error) => return fail(report, unreadable(error.to_string(), 1)),
    };
    let mut commits = match log.subscribe(1).await {
        Ok(commits) if head > 0 => commits,
        Ok(_) => futures::stream::empty().boxed(),
        Err(error) => return fail(report, unreadable(error.to_string(), 1)),
    };
    while let Some(commit) = commits.next().await {
        let commit = match commit {
            Ok(commit) => commit,
            Err(error) => return fail(report, unreadable(error.to_string(), previous_position + 1)),
        };
        let commit = &commit;
        let events = match stored_canonical_bytes(commit) {
            Ok(events) => events,
            Err(error) => return fail(report, unreadable(error.to_string(), commit.position)),
        };
        // Built only when a leaf computed from the stored bytes does not match:
        // the canonical form then decides (see `stored_canonical_bytes`).
        let mut canonical: Option<Vec<RecordedEvent>> = None;
        for (offset, (event_id, bytes)) in events.iter().enumerate() {
            if let Some(expected) = stored.get(index).filter(|_| index < anchored) {
                let mut leaf = merkle::leaf_hash(bytes);
                if leaf != *expected {
                    if canonical.is_none() {
                        match LogReader::flatten(vec![commit.clone()]) {
                            Ok(events) => canonical = Some(events),
                            Err(error) => return fail(report, unreadable(error.to_string(), commit.position)),
                        }
                    }
                    if let Some(event) = canonical.as_ref().and_then(|events| events.get(offset)) {
                        leaf = merkle::leaf_hash(&event.canonical_bytes());
                    }
                }
                if leaf != *expected {
                    let position = commit.position;
                    let gap = if position > previous_position + 1 && index > 0 {
                        format!("; positions {}..{} are missing from the log", previous_position + 1, position - 1)
                    } else {
                        String::new()
                    };
                    let failure = Failure {
                        kind: "event-altered".into(),
                        position: Some(position),
                        aggregate: Some(commit.key.dotted()),
                        event_id: Some(event_id.to_string()),
                        detail: format!("the event at position {position} does not match anchored leaf {index} ({}){gap}", hex(expected)),
                    };
                    report.events = index as u64;
                    return fail(report, failure);
                }
            }
            previous_position = commit.position;
            index += 1;
        }
        if commit.position >= head {
            break;
        }
    }
    report.events = index as u64;
    if (index as u64) < report.anchored_events {
        let failure = Failure::new(
            "event-missing",
            format!(
                "the log holds {index} events but {} were anchored; the events after position {previous_position} are gone",
                report.anchored_events
            ),
        );
        return fail(report, failure);
    }
    report.ok = true;
    Ok(report)
}

/// The receipt of one event (found by its canonical bytes' leaf hash), against the
/// first anchored head that covers it; `None` when it is not anchored (yet).
pub async fn receipt(
    ledger: &dyn Ledger,
    dir: &Path,
    event: &emr_eventstore::RecordedEvent,
) -> Result<Option<crate::Receipt>, AnchorError> {
    let tree = MerkleTree::from_leaves(LeafFile::open(dir)?.read()?);
    let leaf = merkle::leaf_hash(&event.canonical_bytes());
    let Some(index) = tree.leaves().iter().position(|l| *l == leaf) else { return Ok(None) };
    let heads = ledger.anchored().await?;
    Ok(crate::Receipt::build(&tree, index as u64, ledger.name(), &heads))
}

/// What the verification of one patient's history found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatientReport {
    /// True when every event of the patient is included in an anchored head (or
    /// waits for the next one), and their histories have no gaps.
    pub ok: bool,
    /// Aggregates checked (the patient, their records and grants).
    pub aggregates: usize,
    /// Events checked.
    pub events: usize,
    /// Events proven included in a signed, anchored head.
    pub proven: usize,
    /// Events newer than the latest head.
    pub unanchored: usize,
    /// The first failure, if any.
    pub failure: Option<Failure>,
}

/// Verifies one patient's history: every event of the patient's aggregates must
/// have an inclusion proof against a trusted, signed head, and each aggregate's
/// sequence must run 1..n without a gap. The aggregates are found by scanning the
/// log's envelopes for events naming the patient (PHI stays sealed).
pub async fn verify_patient(
    log: Arc<dyn EventLog>,
    ledger: &dyn Ledger,
    dir: &Path,
    trusted_keys: &[String],
    patient_id: &str,
) -> Result<PatientReport, AnchorError> {
    let mut report = PatientReport { ok: false, aggregates: 0, events: 0, proven: 0, unanchored: 0, failure: None };
    let heads = match ledger.anchored().await {
        Ok(heads) => heads,
        Err(error @ LedgerError::Corrupt { .. }) => {
            report.failure = Some(Failure::new("ledger-corrupt", error.to_string()));
            return Ok(report);
        }
        Err(error) => return Err(error.into()),
    };
    if let Some((i, _)) = heads.iter().enumerate().find(|(_, a)| !a.head.signature_valid() || !trusted_keys.contains(&a.head.key)) {
        report.failure = Some(Failure::new("bad-signature", format!("tree head {} is not validly signed by a trusted key", i + 1)));
        return Ok(report);
    }
    let tree = MerkleTree::from_leaves(LeafFile::open(dir)?.read()?);
    let index: std::collections::HashMap<merkle::Hash, u64> = tree.leaves().iter().enumerate().map(|(i, leaf)| (*leaf, i as u64)).collect();
    let reader = LogReader::new(log.clone());
    let mut keys = std::collections::BTreeSet::new();
    let mut from = 1;
    loop {
        let events = reader.read(from, 1000).await?;
        let Some(last) = events.last().map(|e| e.metadata.position) else { break };
        for event in &events {
            let names_patient = event.key.aggregate_id() == patient_id
                || event.payload.get("data").and_then(|d| d.get("patient_id")).and_then(|p| p.as_str()) == Some(patient_id);
            if names_patient {
                keys.insert(event.key.clone());
            }
        }
        from = last + 1;
    }
    report.aggregates = keys.len();
    for key in &keys {
        let history = reader.history(key).await?;
        for (expected, event) in (1u64..).zip(&history) {
            report.events += 1;
            let fail = |kind: &str, detail: String| Failure {
                kind: kind.into(),
                position: Some(event.metadata.position),
                aggregate: Some(key.dotted()),
                event_id: Some(event.metadata.event_id.to_string()),
                detail,
            };
            if event.sequence != expected {
                report.failure =
                    Some(fail("event-missing", format!("{} jumps from sequence {} to {}", key.dotted(), expected - 1, event.sequence)));
                return Ok(report);
            }
            let leaf = merkle::leaf_hash(&event.canonical_bytes());
            let Some(&leaf_index) = index.get(&leaf) else {
                if event.metadata.position > heads.last().map_or(0, |a| a.head.last_position) {
                    report.unanchored += 1;
                    continue;
                }
                report.failure =
                    Some(fail("event-altered", format!("the event at position {} matches no anchored leaf", event.metadata.position)));
                return Ok(report);
            };
            let Some(receipt) = crate::Receipt::build(&tree, leaf_index, ledger.name(), &heads) else {
                report.unanchored += 1;
                continue;
            };
            if !receipt.verify(&event.canonical_bytes(), trusted_keys) {
                report.failure =
                    Some(fail("event-altered", format!("the inclusion proof of the event at position {} fails", event.metadata.position)));
                return Ok(report);
            }
            report.proven += 1;
        }
    }
    report.ok = true;
    Ok(report)
}
