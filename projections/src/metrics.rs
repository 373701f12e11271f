//! What this process's projectors fold, in the process's default Prometheus
//! registry: with several projector processes, each one's share of the batches.

use std::sync::LazyLock;

use prometheus::IntCounterVec;

// Fixed, valid names registered once: registration cannot fail.
#[allow(clippy::expect_used)]
static BATCHES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!("emr_projection_batches_total", "Batches this process folded, per projection", &["projection"])
        .expect("a valid, unique metric family")
});

#[allow(clippy::expect_used)]
static COMMITS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!("emr_projection_commits_total", "Commits this process folded, per projection", &["projection"])
        .expect("a valid, unique metric family")
});

/// Counts one committed batch of `commits`.
pub(crate) fn folded(projection: &str, commits: usize) {
    BATCHES.with_label_values(&[projection]).inc();
    COMMITS.with_label_values(&[projection]).inc_by(commits as u64);
}
