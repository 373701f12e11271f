//! Blob throughput, in the process's default Prometheus registry:
//! `rate(emr_blob_bytes_total[5m])` is the store's throughput each way.

use std::sync::LazyLock;

use prometheus::IntCounterVec;

// Fixed, valid names registered once: registration cannot fail.
#[allow(clippy::expect_used)]
static BYTES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "emr_blob_bytes_total",
        "Attachment plaintext bytes sealed into the blob store (stored) or opened from it (served)",
        &["direction"]
    )
    .expect("a valid, unique metric family")
});

#[allow(clippy::expect_used)]
static OPERATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "emr_blob_operations_total",
        "Blob stores and serves by outcome (ok, failed)",
        &["direction", "outcome"]
    )
    .expect("a valid, unique metric family")
});

/// Counts one store (`stored`) or serve (`served`) of `bytes`, or its failure.
pub(crate) fn observe<E>(direction: &'static str, result: &Result<u64, E>) {
    match result {
        Ok(bytes) => {
            BYTES.with_label_values(&[direction]).inc_by(*bytes);
            OPERATIONS.with_label_values(&[direction, "ok"]).inc();
        }
        Err(_) => OPERATIONS.with_label_values(&[direction, "failed"]).inc(),
    }
}
