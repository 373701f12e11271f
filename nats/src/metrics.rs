//! JetStream as the projectors see it, in the process's default Prometheus registry.

use std::sync::LazyLock;

use prometheus::IntGaugeVec;

// A fixed, valid name registered once: registration cannot fail.
#[allow(clippy::expect_used)]
static PENDING: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    prometheus::register_int_gauge_vec!(
        "emr_jetstream_consumer_pending",
        "Messages waiting for a durable consumer after its last fetch",
        &["consumer"]
    )
    .expect("a valid, unique metric family")
});

/// What a durable consumer's last fetch left waiting.
pub(crate) fn consumer_pending(consumer: &str, pending: u64) {
    PENDING.with_label_values(&[consumer]).set(i64::try_from(pending).unwrap_or(i64::MAX));
}
