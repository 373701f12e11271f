//! Writes a generated trace ([`crate::hospital_trace`]) into a real event log as
//! the commits the product would have made, each with the trace's own time as
//! its `recorded_at`, PHI sealed with the patients' keys.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;

use cqrs_es::DomainEvent;
use emr_domain::ids::CommandId;
use emr_eventstore::conformance::Backend;
use emr_eventstore::{AggregateKey, CommitRecord, CommitRequest, ENVELOPE_SCHEMA, EventRecord, KeyVault, PhiCodec};
use emr_projections::Payload;
use serde_json::Value;

use crate::hospital_trace::Trace;

fn encoded(payload: &Payload) -> (Value, String, String) {
    fn parts<E: DomainEvent>(event: &E) -> (Value, String, String) {
        (serde_json::to_value(event).unwrap(), event.event_type(), event.event_version())
    }
    match payload {
        Payload::Patient(event) => parts(event),
        Payload::Record(event) => parts(event),
        Payload::Grant(event) => parts(event),
        Payload::Disclosure(event) => parts(event),
        Payload::Account(event) => parts(event),
        Payload::Security(event) => parts(event),
        Payload::SignIn(event) => parts(event),
        Payload::Session(event) => parts(event),
        Payload::Denial(event) => parts(event),
        Payload::Federated(event) => parts(event),
        Payload::Model(event) => parts(event),
    }
}

/// Appends every event of `trace` to `backend`'s log, one commit each (a
/// break-glass and its disclosure share one), in order; answers the position
/// of each event's commit.
pub async fn write(backend: &Backend, trace: &Trace) -> Vec<u64> {
    let phi = PhiCodec::new(Arc::new(KeyVault::new(backend.kek.clone(), backend.keys.clone())));
    let mut head = backend.log.head().await.unwrap();
    let mut last: HashMap<String, (u64, u64)> = HashMap::new();
    let mut positions = Vec::with_capacity(trace.events.len());
    let mut index = 0;
    while index < trace.events.len() {
        let mut requests = Vec::new();
        while index < trace.events.len() && requests.len() < 500 {
            // Events of one aggregate at one instant are one commit (break-glass).
            let first = &trace.events[index];
            let mut end = index + 1;
            while end < trace.events.len() && trace.events[end].aggregate_id == first.aggregate_id && trace.events[end].at == first.at {
                end += 1;
            }
            let (expected, mut sequence) = last.get(&first.aggregate_id).copied().unwrap_or((0, 0));
            let mut records = Vec::new();
            for event in &trace.events[index..end] {
                let (mut payload, event_type, event_version) = encoded(&event.payload);
                phi.seal(&mut payload).await.unwrap();
                sequence += 1;
                records.push(EventRecord { event_id: event.event_id, sequence, event_type, event_version, payload });
            }
            let command_id = CommandId::new();
            let record = CommitRecord {
                schema: ENVELOPE_SCHEMA,
                aggregate_type: first.aggregate_type.to_owned(),
                aggregate_id: first.aggregate_id.clone(),
                command_id,
                correlation_id: command_id.as_uuid(),
                causation_id: command_id.as_uuid(),
                actor: first.actor,
                recorded_at: first.at,
                events: records,
            };
            // Nothing else writes meanwhile, so each commit takes the next position.
            head += 1;
            last.insert(first.aggregate_id.clone(), (head, sequence));
            positions.extend(std::iter::repeat_n(head, end - index));
            requests.push(CommitRequest {
                key: AggregateKey::new(first.aggregate_type, &first.aggregate_id).unwrap(),
                expected_last_position: expected,
                commit_id: command_id.to_string(),
                payload: record.encode().unwrap(),
            });
            index = end;
        }
        let appended = backend.log.append_in_order(requests).await.unwrap();
        assert_eq!(appended.last().map(|a| a.position), Some(head), "the trace is the log's only writer");
    }
    positions
}
