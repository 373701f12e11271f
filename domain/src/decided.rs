//! The one way every aggregate's cqrs-es `handle` turns what its pure `decide`
//! returned into applied events handed to the sink.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;

/// Applies each decided event to `aggregate` and writes it to `sink`, in order,
/// or passes the refusal on.
pub(crate) async fn write_decided<A: Aggregate>(
    aggregate: &mut A,
    decided: Result<Vec<A::Event>, A::Error>,
    sink: &EventSink<A>,
) -> Result<(), A::Error> {
    for event in decided? {
        sink.write(event, aggregate).await;
    }
    Ok(())
}
