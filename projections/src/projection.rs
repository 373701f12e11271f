//! What a projection is: named tables folded from facts, one batch at a time.

use std::future::Future;

use crate::db::Tx;
use crate::decode::Fact;
use crate::error::ProjectionError;

/// Where a projection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Position of the last commit applied.
    pub position: u64,
    /// Events applied so far.
    pub events: u64,
}

/// A read model.
pub trait Projection: Send + Sync + 'static {
    /// Stable name (`emr projections rebuild <name>`).
    fn name(&self) -> &'static str;

    /// Its tables, the one-row checkpoint table first.
    fn tables(&self) -> &'static [&'static str];

    /// Folds one batch of facts (in log order, all after the checkpoint) into the
    /// tables, inside the caller's transaction. Must use multi-row statements: a
    /// batch is thousands of events.
    fn apply<'a>(&'a self, tx: &'a mut Tx, facts: &'a [Fact]) -> impl Future<Output = Result<(), ProjectionError>> + Send + 'a;
}
