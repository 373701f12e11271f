//! Time, as a service the aggregates are given: rules such as "a grant's expiry
//! must lie in the future" need the current time, and tests need to fix it.

use std::sync::Arc;

use chrono::{DateTime, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock stopped at one instant, for tests and replays.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// What every aggregate's `handle` is given (cqrs-es `Services`).
#[derive(Clone)]
pub struct DomainServices {
    clock: Arc<dyn Clock>,
}

impl DomainServices {
    /// Services over the given clock.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock }
    }

    /// Services stopped at one instant.
    pub fn fixed(now: DateTime<Utc>) -> Self {
        Self::new(Arc::new(FixedClock(now)))
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

impl Default for DomainServices {
    fn default() -> Self {
        Self::new(Arc::new(SystemClock))
    }
}
