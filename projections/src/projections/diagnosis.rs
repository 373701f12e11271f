//! AI-assisted diagnosis for dashboards: the model registry and every
//! suggestion with its review outcome. Reviewed accuracy per model version
//! (accepted among reviewed) is counted from these rows; the finding is PHI and
//! stays sealed in the log.

use emr_domain::diagnosis::{ModelEvent, ModelStatus};
use emr_domain::record::RecordEvent;

use crate::db::Tx;
use crate::decode::{Fact, Payload};
use crate::error::ProjectionError;
use crate::projection::Projection;
use crate::projections::snake;
use crate::sql::values;

/// Models and suggestions.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiagnosisProjection;

impl DiagnosisProjection {
    /// Its name.
    pub const NAME: &'static str = "diagnosis";
}

impl Projection for DiagnosisProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["diagnosis_checkpoint", "diagnosis_models", "diagnosis_suggestions"]
    }

    async fn apply(&self, tx: &mut Tx, facts: &[Fact]) -> Result<(), ProjectionError> {
        for fact in facts {
            match &fact.payload {
                Payload::Model(event) => model(tx, fact, event).await?,
                Payload::Record(event) => suggestion(tx, fact, event).await?,
                _ => {}
            }
        }
        Ok(())
    }
}

async fn set_status(tx: &mut Tx, fact: &Fact, status: ModelStatus) -> Result<(), ProjectionError> {
    let sql = "UPDATE diagnosis_models SET status = ?, updated_at = ?, position = ? WHERE model_id = ?";
    tx.execute(sql, values![snake(&status), fact.metadata.recorded_at, fact.metadata.position, &fact.aggregate_id]).await.map(drop)
}

async fn model(tx: &mut Tx, fact: &Fact, event: &ModelEvent) -> Result<(), ProjectionError> {
    let (at, position) = (fact.metadata.recorded_at, fact.metadata.position);
    match event {
        ModelEvent::ModelRegistered { card, .. } => {
            let sql = "INSERT INTO diagnosis_models (model_id, name, version, sha256, status, validated_accuracy, validation_set, \
                       updated_at, position) VALUES (?, ?, ?, ?, ?, NULL, NULL, ?, ?)";
            let params = values![
                &fact.aggregate_id,
                card.name.chars().take(200).collect::<String>(),
                card.version.chars().take(64).collect::<String>(),
                card.sha256.to_string(),
                snake(&ModelStatus::Registered),
                at,
                position,
            ];
            tx.execute(sql, params).await.map(drop)
        }
        ModelEvent::ModelValidated { validation, .. } => {
            // The latest validation is the figure the model is held to.
            let sql =
                "UPDATE diagnosis_models SET validated_accuracy = ?, validation_set = ?, updated_at = ?, position = ? WHERE model_id = ?";
            let params = values![
                validation.accuracy,
                validation.dataset.as_str().chars().take(200).collect::<String>(),
                at,
                position,
                &fact.aggregate_id,
            ];
            tx.execute(sql, params).await.map(drop)
        }
        ModelEvent::ModelActivated { .. } => set_status(tx, fact, ModelStatus::Active).await,
        ModelEvent::ModelRetired { .. } => set_status(tx, fact, ModelStatus::Retired).await,
    }
}

async fn suggestion(tx: &mut Tx, fact: &Fact, event: &RecordEvent) -> Result<(), ProjectionError> {
    let (at, position) = (fact.metadata.recorded_at, fact.metadata.position);
    match event {
        RecordEvent::DiagnosisSuggested { suggestion_id, attachment_id, model, explanation, .. } => {
            let sql = "INSERT INTO diagnosis_suggestions (suggestion_id, record_id, attachment_id, model_sha256, model_name, \
                       model_version, explained, suggested_by, suggested_at, outcome, reviewer_id, reviewed_at, position) \
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?)";
            let params = values![
                suggestion_id.to_string(),
                &fact.aggregate_id,
                attachment_id.to_string(),
                model.sha256.to_string(),
                model.name.chars().take(200).collect::<String>(),
                model.version.chars().take(64).collect::<String>(),
                i64::from(explanation.is_some()),
                fact.metadata.context.actor.user_id.to_string(),
                at,
                position,
            ];
            tx.execute(sql, params).await.map(drop)
        }
        RecordEvent::DiagnosisReviewed { suggestion_id, reviewer_id, outcome, .. } => {
            let sql =
                "UPDATE diagnosis_suggestions SET outcome = ?, reviewer_id = ?, reviewed_at = ?, position = ? WHERE suggestion_id = ?";
            tx.execute(sql, values![snake(outcome), reviewer_id.to_string(), at, position, suggestion_id.to_string()]).await.map(drop)
        }
        _ => Ok(()),
    }
}
