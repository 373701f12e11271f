//! `emr audit verify` and `emr anchor run`: the verifiable audit from the command line.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use emr_anchor::{AnchorConfig, AnchorWorker, FileLedger, NodeKey, VerifyReport};
use emr_eventstore::EventLog;

use crate::settings::Settings;

pub(crate) async fn worker(settings: &Settings, log: Arc<dyn EventLog>) -> anyhow::Result<AnchorWorker> {
    let dir = settings.audit_dir();
    let ledger = Arc::new(FileLedger::open(&dir)?);
    let config =
        AnchorConfig { batch_commits: settings.audit.batch_commits.max(1), max_delay: Duration::from_millis(settings.audit.max_delay_ms) };
    AnchorWorker::open(log, ledger, &dir, config).await.context("starting the anchor worker")
}

/// Verifies the whole log; prints a summary to stderr and the JSON report to stdout.
pub(crate) async fn verify(settings: &Settings, log: Arc<dyn EventLog>) -> anyhow::Result<VerifyReport> {
    let dir = settings.audit_dir();
    let ledger = FileLedger::open(&dir)?;
    let trusted = vec![NodeKey::load_or_create(&dir.join("node.key"))?.public_key()];
    let report = emr_anchor::verify(log, &ledger, &dir, &trusted).await?;
    let summary = match &report.failure {
        None => format!(
            "OK: {} events replayed, {} anchored under {} signed tree heads ({} consistency proofs); latest root {}",
            report.events,
            report.anchored_events,
            report.tree_heads,
            report.consistency_proofs,
            report.latest_root.as_deref().unwrap_or("-")
        ),
        Some(failure) => format!(
            "FAILED ({}): {}{}",
            failure.kind,
            failure.detail,
            match (&failure.aggregate, &failure.event_id) {
                (Some(aggregate), Some(event)) => format!(" [aggregate {aggregate}, event {event}]"),
                _ => String::new(),
            }
        ),
    };
    eprintln!("{summary}");
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(report)
}

/// Proves one patient's events against the anchored heads; prints a summary and JSON.
pub(crate) async fn verify_patient(
    settings: &Settings,
    log: Arc<dyn EventLog>,
    patient: &str,
) -> anyhow::Result<emr_anchor::PatientReport> {
    let dir = settings.audit_dir();
    let ledger = FileLedger::open(&dir)?;
    let trusted = vec![NodeKey::load_or_create(&dir.join("node.key"))?.public_key()];
    let report = emr_anchor::verify_patient(log, &ledger, &dir, &trusted, patient).await?;
    match &report.failure {
        None => eprintln!(
            "OK: patient {patient}: {} events in {} aggregates, {} proven included in signed heads, {} not anchored yet",
            report.events, report.aggregates, report.proven, report.unanchored
        ),
        Some(failure) => eprintln!("FAILED ({}): {}", failure.kind, failure.detail),
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(report)
}
