//! Diagnosis jobs in the process's default Prometheus registry:
//! `emr_diagnosis_jobs_total{outcome}` counts requests (`requested`) and
//! finished jobs by how they ended; `emr_diagnosis_job_seconds` times them.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{HistogramVec, IntCounterVec};

// Fixed, valid names registered once: registration cannot fail.
#[allow(clippy::expect_used)]
static JOBS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "emr_diagnosis_jobs_total",
        "Diagnosis jobs requested, and finished by outcome (succeeded, failed, cancelled)",
        &["outcome"]
    )
    .expect("a valid, unique metric family")
});

#[allow(clippy::expect_used)]
static DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    prometheus::register_histogram_vec!(
        "emr_diagnosis_job_seconds",
        "Time from a worker taking a diagnosis job to its end, by outcome",
        &["outcome"],
        vec![0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0]
    )
    .expect("a valid, unique metric family")
});

pub(crate) fn requested() {
    JOBS.with_label_values(&["requested"]).inc();
}

pub(crate) fn finished(outcome: &str, took: Duration) {
    JOBS.with_label_values(&[outcome]).inc();
    DURATION.with_label_values(&[outcome]).observe(took.as_secs_f64());
}
