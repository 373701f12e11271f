//! The client certificate's expiry, in the process's default Prometheus
//! registry, for the `CertificateExpiresSoon` alert: an expired certificate
//! stops anchoring on Fabric.

use std::sync::LazyLock;

use prometheus::IntGaugeVec;

// A fixed, valid name registered once: registration cannot fail.
#[allow(clippy::expect_used)]
static EXPIRY: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    prometheus::register_int_gauge_vec!(
        "emr_certificate_expiry_timestamp_seconds",
        "When a certificate this process uses stops being valid (Unix time)",
        &["certificate"]
    )
    .expect("a valid, unique metric family")
});

/// Exports when `identity`'s certificate expires, under `name`.
pub fn report_certificate_expiry(name: &str, identity: &crate::Identity) {
    match identity.expires_at() {
        Some(at) => EXPIRY.with_label_values(&[name]).set(at),
        None => tracing::warn!(certificate = name, "the certificate does not parse as X.509: its expiry is not monitored"),
    }
}
