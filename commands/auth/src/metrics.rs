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

/// Counts one raised security event (by the identity service or the detector).
pub fn security_event_raised(kind: SecurityEventKind, severity: Severity) {
    RAISED.with_label_values(&[kind.name(), severity.name()]).inc();
}
