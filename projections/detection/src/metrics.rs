//! The detection worker as operators watch it, in the process's default
//! Prometheus registry.

use std::sync::LazyLock;

use prometheus::{Gauge, IntCounter, IntGauge};

// Fixed, valid names registered once: registration cannot fail.
#[allow(clippy::expect_used)]
static OBSERVED: LazyLock<IntCounter> = LazyLock::new(|| {
    prometheus::register_int_counter!("emr_detection_observations_total", "Log events the detector learned from")
        .expect("a valid, unique metric family")
});

#[allow(clippy::expect_used)]
static POSITION: LazyLock<IntGauge> = LazyLock::new(|| {
    prometheus::register_int_gauge!("emr_detection_position", "The last log position the detector has seen")
        .expect("a valid, unique metric family")
});

#[allow(clippy::expect_used)]
static LAG: LazyLock<Gauge> = LazyLock::new(|| {
    prometheus::register_gauge!(
        "emr_detection_lag_seconds",
        "Age of the newest event the detector has seen, while it is behind; 0 when caught up"
    )
    .expect("a valid, unique metric family")
});

/// How far behind the log the detector is: the age of the newest event it has
/// seen after a step that found work, 0 after one that found none.
pub(crate) fn lag(seconds: f64) {
    LAG.set(seconds.max(0.0));
}

/// Counts a step's observations and where it ended.
pub(crate) fn observed(observations: u64, position: u64) {
    OBSERVED.inc_by(observations);
    POSITION.set(i64::try_from(position).unwrap_or(i64::MAX));
}
