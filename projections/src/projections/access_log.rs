//! The accounting of disclosures (every PHI read, by whom, when, on which basis,
//! and when a break-glass read was justified) and the refused accesses:
//! append-only facts keyed by their ids, so an upsert that re-applies a fact
//! changes nothing. Security events have their own read model
//! ([`super::SecurityProjection`]).

use emr_domain::access::Basis;
use emr_domain::denial::DenialEvent;
use emr_domain::disclosure::{DisclosureEvent, Resource};

use crate::db::Tx;
use crate::decode::{Fact, Payload};
use crate::error::ProjectionError;
use crate::projection::Projection;
use crate::projections::snake;
use crate::sql::{Upsert, values};

/// The access log.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessLogProjection;

impl AccessLogProjection {
    /// Its name.
    pub const NAME: &'static str = "access_log";
}

const ACCESS_LOG: Upsert = Upsert {
    table: "access_log",
    columns: &[
        "disclosure_id",
        "patient_id",
        "accessor_id",
        "accessor_role",
        "resource",
        "record_id",
        "basis",
        "grant_id",
        "accessed_at",
        "position",
    ],
    key: &["disclosure_id"],
    replace: &["position"],
    add: &[],
};

const ACCESS_DENIALS: Upsert = Upsert {
    table: "access_denials",
    columns: &["denial_id", "actor_id", "actor_role", "action", "patient_id", "reason", "denied_at", "position"],
    key: &["denial_id"],
    replace: &["position"],
    add: &[],
};

struct Refused {
    denial_id: String,
    actor_id: String,
    actor_role: String,
    action: String,
    patient_id: Option<String>,
    reason: String,
    fact: usize,
}

struct Disclosed {
    disclosure_id: String,
    patient_id: String,
    accessor_id: String,
    accessor_role: String,
    resource: &'static str,
    record_id: Option<String>,
    basis: String,
    grant_id: Option<String>,
    fact: usize,
}

impl Projection for AccessLogProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["access_log_checkpoint", "access_log", "access_denials"]
    }

    async fn apply(&self, tx: &mut Tx, facts: &[Fact]) -> Result<(), ProjectionError> {
        let mut disclosed = Vec::new();
        let mut refused = Vec::new();
        let mut justified = Vec::new();
        for (index, fact) in facts.iter().enumerate() {
            match &fact.payload {
                Payload::Disclosure(DisclosureEvent::PhiDisclosed { disclosure_id, patient_id, resource, accessor, basis }) => {
                    let (resource, record_id) = match resource {
                        Resource::Patient => ("patient", None),
                        Resource::Record { record_id } => ("record", Some(record_id.to_string())),
                        Resource::Attachment { record_id, .. } => ("attachment", Some(record_id.to_string())),
                    };
                    disclosed.push(Disclosed {
                        disclosure_id: disclosure_id.to_string(),
                        patient_id: patient_id.to_string(),
                        accessor_id: accessor.user_id.to_string(),
                        accessor_role: snake(&accessor.role),
                        resource,
                        record_id,
                        basis: snake(basis),
                        grant_id: match basis {
                            Basis::Grant { grant_id } => Some(grant_id.to_string()),
                            _ => None,
                        },
                        fact: index,
                    });
                }
                Payload::Disclosure(DisclosureEvent::BreakGlassJustified { disclosure_id, .. }) => {
                    justified.push((disclosure_id.to_string(), index));
                }
                Payload::Denial(DenialEvent::AccessDenied { denial_id, actor, action, patient_id, reason }) => refused.push(Refused {
                    denial_id: denial_id.to_string(),
                    actor_id: actor.user_id.to_string(),
                    actor_role: snake(&actor.role),
                    action: snake(action),
                    patient_id: patient_id.map(|id| id.to_string()),
                    reason: serde_json::to_value(reason)
                        .ok()
                        .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_owned))
                        .unwrap_or_default(),
                    fact: index,
                }),
                _ => {}
            }
        }
        ACCESS_LOG
            .run(tx, &disclosed, |d| {
                let fact = &facts[d.fact];
                values![
                    &d.disclosure_id,
                    &d.patient_id,
                    &d.accessor_id,
                    &d.accessor_role,
                    d.resource,
                    d.record_id.as_ref(),
                    &d.basis,
                    d.grant_id.as_ref(),
                    fact.metadata.recorded_at,
                    fact.metadata.position,
                ]
            })
            .await?;
        ACCESS_DENIALS
            .run(tx, &refused, |r| {
                let fact = &facts[r.fact];
                values![
                    &r.denial_id,
                    &r.actor_id,
                    &r.actor_role,
                    &r.action,
                    r.patient_id.as_ref(),
                    &r.reason,
                    fact.metadata.recorded_at,
                    fact.metadata.position
                ]
            })
            .await?;
        // Justifications are rare: one statement each, after the reads they justify.
        for (disclosure_id, index) in justified {
            let sql = "UPDATE access_log SET justified_at = ? WHERE disclosure_id = ?";
            tx.execute(sql, values![facts[index].metadata.recorded_at, disclosure_id]).await?;
        }
        Ok(())
    }
}
