//! Verifiable audit: proof that the history an auditor replays is the history
//! that was written.
//!
//! The [`AnchorWorker`] follows the event log in order and appends each event's
//! leaf hash (of its [`emr_eventstore::RecordedEvent::canonical_bytes`]) to one
//! global append-only Merkle log (RFC 9162 hashing, [`merkle`]). When a batch is
//! full or old enough it signs a [`TreeHead`] (size, root, first/last position,
//! time) with the node's Ed25519 key and writes it to a [`Ledger`]: today the
//! embedded, hash-chained [`FileLedger`]; Fabric and EVM chains implement the same
//! port. [`verify`] replays the log and checks every leaf, head, signature, chain
//! link and consistency proof, naming the first bad event.

mod head;
mod ledger;
pub mod merkle;
pub mod metrics;
mod receipt;
mod verify;
mod worker;

pub use head::{NodeKey, TreeHead};
pub use ledger::{AnchorStatus, Anchored, FileLedger, Ledger, LedgerError};
pub use receipt::{Receipt, ReceiptAnchor};
pub use verify::{Failure, PatientReport, VerifyReport, receipt, verify, verify_patient};
pub use worker::{AnchorConfig, AnchorError, AnchorWorker};
