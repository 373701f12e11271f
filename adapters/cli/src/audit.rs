//! `emr audit verify` and `emr anchor run`: the verifiable audit from the command line.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use emr_anchor::{AnchorConfig, AnchorWorker, FileLedger, Ledger, NodeKey, VerifyReport};
use emr_eventstore::EventLog;

use crate::settings::{FabricSettings, Settings};

async fn fabric(fabric: &FabricSettings) -> anyhow::Result<emr_fabric::FabricLedger> {
    let read = |path: &std::path::Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let identity =
        emr_fabric::Identity::new(fabric.msp_id.clone(), read(&fabric.certificate_file)?).context("audit.fabric.certificate_file")?;
    emr_fabric::metrics::report_certificate_expiry("fabric_client", &identity);
    let key = String::from_utf8(read(&fabric.private_key_file)?).context("audit.fabric.private_key_file is not PEM")?;
    let signer = emr_fabric::Signer::from_pkcs8_pem(&key).context("audit.fabric.private_key_file")?;
    let endpoint = emr_fabric::GatewayEndpoint {
        url: fabric.gateway_url.clone(),
        tls_ca_pem: fabric.tls_ca_file.as_deref().map(read).transpose()?,
        tls_server_name: fabric.tls_server_name.clone(),
        timeout: Duration::from_secs(fabric.timeout_secs),
    };
    let target = emr_fabric::Target { channel: fabric.channel.clone(), chaincode: fabric.chaincode.clone() };
    let gateway =
        emr_fabric::FabricGateway::connect(&endpoint, identity, signer, target).await.context("connecting to the Fabric Gateway")?;
    Ok(emr_fabric::FabricLedger::new(gateway))
}

/// The ledger of signed tree heads: Fabric when `audit.fabric` is set, else the
/// embedded file ledger.
pub(crate) async fn ledger(settings: &Settings) -> anyhow::Result<Arc<dyn Ledger>> {
    Ok(match &settings.audit.fabric {
        Some(settings) => Arc::new(fabric(settings).await?),
        None => Arc::new(FileLedger::open(&settings.audit_dir())?),
    })
}

/// The anchor worker, anchoring on `ledger` (see [`ledger`]).
pub(crate) async fn worker(settings: &Settings, log: Arc<dyn EventLog>, ledger: Arc<dyn Ledger>) -> anyhow::Result<AnchorWorker> {
    let dir = settings.audit_dir();
    let config =
        AnchorConfig { batch_commits: settings.audit.batch_commits.max(1), max_delay: Duration::from_millis(settings.audit.max_delay_ms) };
    AnchorWorker::open(log, ledger, &dir, config).await.context("starting the anchor worker")
}

/// Verifies the whole log every `audit.verify_every_secs` (from the start)
/// until `stop`, counting the results for the alert rules; what the anchor role
/// runs beside the worker.
pub(crate) async fn verify_periodically(
    settings: Settings,
    log: Arc<dyn EventLog>,
    ledger: Arc<dyn Ledger>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if settings.audit.verify_every_secs == 0 {
        return;
    }
    let every = Duration::from_secs(settings.audit.verify_every_secs);
    let dir = settings.audit_dir();
    loop {
        let verified = async {
            let trusted = vec![NodeKey::load_or_create(&dir.join("node.key"))?.public_key()];
            anyhow::Ok(emr_anchor::verify(log.clone(), ledger.as_ref(), &dir, &trusted).await?)
        };
        match verified.await {
            Ok(report) => {
                emr_anchor::metrics::verified(report.failure.is_none());
                match &report.failure {
                    None => tracing::info!(events = report.events, tree_heads = report.tree_heads, "the log verified clean"),
                    Some(failure) => tracing::error!(kind = %failure.kind, detail = %failure.detail, "the log FAILED verification"),
                }
            }
            // Not a verdict on the log: the next round retries.
            Err(error) => tracing::warn!(error = %format!("{error:#}"), "verification could not run"),
        }
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Verifies the whole log; prints a summary to stderr and the JSON report to stdout.
pub(crate) async fn verify(settings: &Settings, log: Arc<dyn EventLog>) -> anyhow::Result<VerifyReport> {
    let dir = settings.audit_dir();
    let ledger = ledger(settings).await?;
    let trusted = vec![NodeKey::load_or_create(&dir.join("node.key"))?.public_key()];
    let report = emr_anchor::verify(log, ledger.as_ref(), &dir, &trusted).await?;
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
    let ledger = ledger(settings).await?;
    let trusted = vec![NodeKey::load_or_create(&dir.join("node.key"))?.public_key()];
    let report = emr_anchor::verify_patient(log, ledger.as_ref(), &dir, &trusted, patient).await?;
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
