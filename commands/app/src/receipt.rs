//! What a caller learns from an accepted command.

use cqrs_es::{Aggregate, DomainEvent};
use emr_domain::ids::EventId;
use emr_domain::metadata::keys as metadata_keys;
use emr_eventstore::Executed;
use serde::Serialize;

/// One stored event of a command.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventReceipt {
    /// Event id.
    pub event_id: EventId,
    /// Per-aggregate sequence.
    pub sequence: u64,
    /// Event type.
    pub event_type: String,
}

/// The outcome of an accepted command.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// Aggregate type.
    pub aggregate_type: String,
    /// Aggregate id.
    pub aggregate_id: String,
    /// Position of the commit in the log; read models have caught up with this
    /// command once they reach it. `None` when the command changed nothing.
    pub position: Option<u64>,
    /// The events, in order.
    pub events: Vec<EventReceipt>,
    /// True when this is the original result of an earlier attempt with the same command id.
    pub replayed: bool,
}

impl Receipt {
    pub(crate) fn of<A: Aggregate>(aggregate_id: &str, executed: Executed<A>) -> Self {
        let events = executed
            .events
            .iter()
            .map(|envelope| EventReceipt {
                // The id alone: parsing the whole envelope back cost a tenth of a command.
                event_id: envelope.metadata.get(metadata_keys::EVENT_ID).and_then(|id| id.parse().ok()).unwrap_or_default(),
                sequence: envelope.sequence as u64,
                event_type: envelope.payload.event_type(),
            })
            .collect();
        Self {
            aggregate_type: A::TYPE.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            position: executed.position,
            events,
            replayed: executed.replayed,
        }
    }
}
