//! How commands end, counted per command and outcome in the process's default
//! Prometheus registry (every `/metrics` of the process exports it): the seed's
//! "record upload success rate" is `emr_commands_total{command="create_record"}`
//! by outcome.

use std::sync::LazyLock;

use emr_eventstore::{LogError, StoreError};
use prometheus::IntCounterVec;

use crate::clinic::ClinicError;

// A fixed, valid name registered once: registration cannot fail.
#[allow(clippy::expect_used)]
static COMMANDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    prometheus::register_int_counter_vec!(
        "emr_commands_total",
        "Commands by name and outcome (accepted, conflict, rejected, failed)",
        &["command", "outcome"]
    )
    .expect("a valid, unique metric family")
});

/// The outcome label of a command's result.
pub(crate) fn outcome<T>(result: &Result<T, ClinicError>) -> &'static str {
    match result {
        Ok(_) => "accepted",
        Err(ClinicError::Store(StoreError::Log(LogError::Conflict { .. }))) => "conflict",
        Err(ClinicError::Store(_)) => "failed",
        Err(_) => "rejected",
    }
}

/// Counts one command's end.
pub(crate) fn observe<T>(command: &'static str, result: &Result<T, ClinicError>) {
    COMMANDS.with_label_values(&[command, outcome(result)]).inc();
}
