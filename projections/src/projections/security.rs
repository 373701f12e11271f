//! Security events (the seed's SecurityEvents table) as security officers work
//! them: each detection with its evidence and the user's risk score, the
//! responses carried out, and where it stands in triage; and each user's latest
//! risk score (the API decays it to the time of the query).
//!
//! Detections are rare beside reads and writes: raised events are written with
//! one multi-row upsert per batch, and the few triage and response events with
//! one statement each, in log order.

use emr_domain::security::{Evidence, SecurityEvent};

use crate::db::Tx;
use crate::decode::{Fact, Payload};
use crate::error::ProjectionError;
use crate::projection::Projection;
use crate::projections::snake;
use crate::sql::{Upsert, values};

/// Security events and risk scores.
#[derive(Debug, Clone, Copy, Default)]
pub struct SecurityProjection;

impl SecurityProjection {
    /// Its name.
    pub const NAME: &'static str = "security";
}

const SECURITY_EVENTS: Upsert = Upsert {
    table: "security_events",
    columns: &[
        "security_event_id",
        "kind",
        "severity",
        "user_id",
        "patient_id",
        "client",
        "risk_score",
        "summary",
        "evidence",
        "responses",
        "status",
        "raised_at",
        "updated_at",
        "position",
    ],
    key: &["security_event_id"],
    replace: &["position"],
    add: &[],
};

const SECURITY_RISK: Upsert = Upsert {
    table: "security_risk",
    columns: &["user_id", "score", "as_of", "detections", "position"],
    key: &["user_id"],
    replace: &["score", "as_of", "position"],
    add: &["detections"],
};

struct Raised<'a> {
    fact: &'a Fact,
    id: String,
    kind: &'static str,
    severity: &'static str,
    user_id: Option<String>,
    patient_id: Option<String>,
    client: Option<String>,
    risk_score: f64,
    summary: &'a str,
    evidence: &'a [Evidence],
}

#[derive(sqlx::FromRow)]
struct Responses {
    responses: String,
}

impl Projection for SecurityProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["security_checkpoint", "security_events", "security_risk"]
    }

    async fn apply(&self, tx: &mut Tx, facts: &[Fact]) -> Result<(), ProjectionError> {
        let mut raised = Vec::new();
        let mut later = Vec::new();
        for fact in facts {
            match &fact.payload {
                Payload::Security(SecurityEvent::SecurityEventRaised {
                    id,
                    kind,
                    severity,
                    user_id,
                    patient_id,
                    client,
                    risk_score,
                    evidence,
                    summary,
                }) => raised.push(Raised {
                    fact,
                    id: id.to_string(),
                    kind: kind.name(),
                    severity: severity.name(),
                    user_id: user_id.map(|id| id.to_string()),
                    patient_id: patient_id.map(|id| id.to_string()),
                    client: client.map(|address| address.to_string()),
                    risk_score: *risk_score,
                    summary,
                    evidence,
                }),
                Payload::Security(event) => later.push((fact, event)),
                _ => {}
            }
        }
        SECURITY_EVENTS
            .run(tx, &raised, |r| {
                let evidence = serde_json::to_string(r.evidence).unwrap_or_else(|_| "[]".to_owned());
                let summary: String = r.summary.chars().take(512).collect();
                values![
                    &r.id,
                    r.kind,
                    r.severity,
                    r.user_id.as_ref(),
                    r.patient_id.as_ref(),
                    r.client.as_ref(),
                    r.risk_score,
                    summary,
                    evidence,
                    "",
                    "open",
                    r.fact.metadata.recorded_at,
                    r.fact.metadata.recorded_at,
                    r.fact.metadata.position,
                ]
            })
            .await?;
        // The detector's scores; a kind raised at its source carries none.
        let scored: Vec<&Raised> = raised.iter().filter(|r| r.user_id.is_some() && r.risk_score > 0.0).collect();
        SECURITY_RISK
            .run(tx, &scored, |r| values![r.user_id.as_ref(), r.risk_score, r.fact.metadata.recorded_at, 1u64, r.fact.metadata.position])
            .await?;
        for (fact, event) in later {
            apply_triage(tx, fact, event).await?;
        }
        Ok(())
    }
}

async fn apply_triage(tx: &mut Tx, fact: &Fact, event: &SecurityEvent) -> Result<(), ProjectionError> {
    let at = fact.metadata.recorded_at;
    let position = fact.metadata.position;
    match event {
        SecurityEvent::SecurityEventRaised { .. } => Ok(()),
        SecurityEvent::SecurityResponseTaken { id, response, .. } => {
            let id = id.to_string();
            let current = tx
                .fetch_all::<Responses>("SELECT responses FROM security_events WHERE security_event_id = ?", values![&id])
                .await?
                .pop()
                .map(|row| row.responses)
                .unwrap_or_default();
            let response = snake(response);
            if current.split(',').any(|taken| taken == response) {
                return Ok(());
            }
            let responses = if current.is_empty() { response } else { format!("{current},{response}") };
            let sql = "UPDATE security_events SET responses = ?, updated_at = ?, position = ? WHERE security_event_id = ?";
            tx.execute(sql, values![responses, at, position, &id]).await.map(drop)
        }
        SecurityEvent::SecurityEventAcknowledged { id, .. } => {
            let sql = "UPDATE security_events SET status = 'acknowledged', updated_at = ?, position = ? WHERE security_event_id = ? AND status = 'open'";
            tx.execute(sql, values![at, position, id.to_string()]).await.map(drop)
        }
        SecurityEvent::SecurityEventAssigned { id, to, .. } => {
            let sql = "UPDATE security_events SET status = 'investigating', assignee = ?, updated_at = ?, position = ? WHERE security_event_id = ?";
            tx.execute(sql, values![to.to_string(), at, position, id.to_string()]).await.map(drop)
        }
        SecurityEvent::SecurityEventResolved { id, outcome, .. } => {
            let sql =
                "UPDATE security_events SET status = 'resolved', outcome = ?, updated_at = ?, position = ? WHERE security_event_id = ?";
            tx.execute(sql, values![snake(outcome), at, position, id.to_string()]).await.map(drop)
        }
    }
}
