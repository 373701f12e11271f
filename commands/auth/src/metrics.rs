//! Security events as operators watch them, in the process's default Prometheus
//! registry, for the `HighSeveritySecurityEvent` alert.

use std::sync::LazyLock;

use emr_domain::security::{SecurityEventKind, Severity};
use prometheus::IntCounterVec;

// A fixed, valid name registered once: registration cannot fail.
#[allow(clippy::expect_used)]
static RAISED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "emr_security_events_total",
        "Security events raised, by kind and severity",
        &["kind", "severity"]
    )
    .expect("a valid, unique metric family")
});

/// Counts one raised security event.
pub(crate) fn raised(kind: SecurityEventKind) {
    let kind_label = match kind {
        SecurityEventKind::RefreshTokenReused => "refresh_token_reused",
        SecurityEventKind::TotpCodeReplayed => "totp_code_replayed",
    };
    let severity = match kind.severity() {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
    };
    RAISED.with_label_values(&[kind_label, severity]).inc();
}
