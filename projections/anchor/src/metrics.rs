//! Anchoring as operators watch it, in the process's default Prometheus
//! registry: how far anchoring trails the log, and how each ledger's
//! transactions fare (the seed's "ledger transaction success rate").

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{GaugeVec, HistogramVec, IntCounterVec, IntGaugeVec};

// Fixed, valid names registered once: registration cannot fail.
#[allow(clippy::expect_used)]
static PENDING: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    prometheus::register_int_gauge_vec!("emr_anchor_pending_commits", "Commits in the log not yet under an anchored tree head", &["ledger"])
        .expect("a valid, unique metric family")
});

#[allow(clippy::expect_used)]
static LAG: LazyLock<GaugeVec> = LazyLock::new(|| {
    prometheus::register_gauge_vec!(
        "emr_anchor_lag_seconds",
        "How long the oldest unanchored commit has waited since the worker saw it (0: all anchored)",
        &["ledger"]
    )
    .expect("a valid, unique metric family")
});

#[allow(clippy::expect_used)]
static TREE_SIZE: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    prometheus::register_int_gauge_vec!("emr_anchor_tree_size", "Leaves under the latest anchored tree head", &["ledger"])
        .expect("a valid, unique metric family")
});

#[allow(clippy::expect_used)]
static TRANSACTIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "emr_ledger_transactions_total",
        "Ledger transactions by ledger and outcome (confirmed, failed)",
        &["ledger", "outcome"]
    )
    .expect("a valid, unique metric family")
});

#[allow(clippy::expect_used)]
static CONFIRMATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    let buckets = vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0];
    prometheus::register_histogram_vec!(
        "emr_ledger_confirmation_seconds",
        "From submitting a tree head (or its mirror) to the ledger confirming it",
        &["ledger"],
        buckets
    )
    .expect("a valid, unique metric family")
});

/// Where anchoring stands against the log.
pub(crate) fn backlog(ledger: &str, pending: u64, waited: Duration) {
    PENDING.with_label_values(&[ledger]).set(i64::try_from(pending).unwrap_or(i64::MAX));
    LAG.with_label_values(&[ledger]).set(waited.as_secs_f64());
}

/// A head anchored at `size` after `took`.
pub(crate) fn anchored(ledger: &str, size: u64, took: Duration) {
    TREE_SIZE.with_label_values(&[ledger]).set(i64::try_from(size).unwrap_or(i64::MAX));
    confirmed(ledger, took);
}

/// A ledger transaction confirmed after `took` (also the EVM relayer's mirrors).
pub fn confirmed(ledger: &str, took: Duration) {
    TRANSACTIONS.with_label_values(&[ledger, "confirmed"]).inc();
    CONFIRMATION.with_label_values(&[ledger]).observe(took.as_secs_f64());
}

/// A ledger transaction that failed (it is retried).
pub fn failed(ledger: &str) {
    TRANSACTIONS.with_label_values(&[ledger, "failed"]).inc();
}

#[allow(clippy::expect_used)]
static VERIFICATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!("emr_audit_verifications_total", "Full-log verifications by result (ok, failed)", &["result"])
        .expect("a valid, unique metric family")
});

#[allow(clippy::expect_used)]
static LAST_VERIFIED: LazyLock<prometheus::Gauge> = LazyLock::new(|| {
    prometheus::register_gauge!("emr_audit_last_verified_timestamp_seconds", "When the log last verified clean (Unix time)")
        .expect("a valid, unique metric family")
});

/// Counts a verification of the whole log; a clean one also stamps the time.
pub fn verified(clean: bool) {
    VERIFICATIONS.with_label_values(&[if clean { "ok" } else { "failed" }]).inc();
    if clean {
        LAST_VERIFIED.set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
    }
}
