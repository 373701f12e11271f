//! Federated-learning tasks for dashboards (the seed's FederatedTasks table): each
//! task's state and ε, each round's participants, model and held-out figures, and
//! each hospital's update with the figures it reported on its own rows.
//!
//! A task writes a handful of events per round, so each is one statement, in log order.

use emr_domain::federated::TaskEvent;
use emr_domain::federated::secure::{SecureAdvance, SecureStep};

use crate::db::Tx;
use crate::decode::{Fact, Payload};
use crate::error::ProjectionError;
use crate::projection::Projection;
use crate::sql::values;

/// Federated tasks, rounds and updates.
#[derive(Debug, Clone, Copy, Default)]
pub struct FederatedProjection;

impl FederatedProjection {
    /// Its name.
    pub const NAME: &'static str = "federated";
}

impl Projection for FederatedProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["federated_checkpoint", "federated_tasks", "federated_rounds", "federated_updates"]
    }

    async fn apply(&self, tx: &mut Tx, facts: &[Fact]) -> Result<(), ProjectionError> {
        for fact in facts {
            if let Payload::Federated(event) = &fact.payload {
                apply(tx, fact, event).await?;
            }
        }
        Ok(())
    }
}

/// Sets the task's status (and closes its open round, if any).
async fn set_status(tx: &mut Tx, fact: &Fact, status: &str) -> Result<(), ProjectionError> {
    let sql = "UPDATE federated_tasks SET status = ?, open_round = NULL, updated_at = ?, position = ? WHERE task_id = ?";
    tx.execute(sql, values![status, fact.metadata.recorded_at, fact.metadata.position, &fact.aggregate_id]).await.map(drop)
}

async fn apply(tx: &mut Tx, fact: &Fact, event: &TaskEvent) -> Result<(), ProjectionError> {
    let (task, at, position) = (&fact.aggregate_id, fact.metadata.recorded_at, fact.metadata.position);
    match event {
        TaskEvent::TaskCreated { spec, initial_model, .. } => {
            let sql = "INSERT INTO federated_tasks (task_id, name, strategy, status, hospitals, rounds, rounds_aggregated, open_round, \
                       epsilon_budget, epsilon_spent, secure_aggregation, model_sha256, created_at, updated_at, position) \
                       VALUES (?, ?, ?, 'created', ?, ?, 0, NULL, ?, NULL, ?, ?, ?, ?, ?)";
            let params = values![
                task,
                spec.name.chars().take(200).collect::<String>(),
                spec.strategy.name(),
                spec.hospitals.len() as u64,
                spec.rounds,
                spec.privacy.map(|p| p.epsilon_budget),
                i64::from(spec.secure_aggregation),
                initial_model.to_string(),
                at,
                at,
                position,
            ];
            tx.execute(sql, params).await.map(drop)
        }
        TaskEvent::TaskStarted { .. } => set_status(tx, fact, "running").await,
        TaskEvent::RoundOpened { round, model, deadline, epsilon_after, .. } => {
            // A secure round starts advertising; a plain one has no step.
            let sql = "INSERT INTO federated_rounds (task_id, round, status, trained_from, deadline, updates, epsilon, opened_at, position, secure_step) \
                       SELECT ?, ?, 'open', ?, ?, 0, ?, ?, ?, CASE WHEN secure_aggregation = 1 THEN 'advertising' END \
                       FROM federated_tasks WHERE task_id = ?";
            tx.execute(sql, values![task, *round, model.to_string(), *deadline, *epsilon_after, at, position, task]).await?;
            let sql = "UPDATE federated_tasks SET open_round = ?, updated_at = ?, position = ? WHERE task_id = ?";
            tx.execute(sql, values![*round, at, position, task]).await.map(drop)
        }
        TaskEvent::RoundRefused { round, epsilon_would_be, .. } => {
            let sql = "INSERT INTO federated_rounds (task_id, round, status, updates, epsilon, opened_at, position) \
                       VALUES (?, ?, 'refused', 0, ?, ?, ?)";
            tx.execute(sql, values![task, *round, *epsilon_would_be, at, position]).await?;
            set_status(tx, fact, "budget_exhausted").await
        }
        TaskEvent::UpdateSubmitted { round, hospital, update } => {
            let metrics = update.metrics;
            let sql = "INSERT INTO federated_updates (task_id, round, hospital, samples, sha256, loss, accuracy, auc, submitted_at, position) \
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
            let params = values![
                task,
                *round,
                hospital.as_str(),
                update.samples,
                update.sha256.to_string(),
                metrics.map(|m| m.loss),
                metrics.map(|m| m.accuracy),
                metrics.map(|m| m.auc),
                at,
                position,
            ];
            tx.execute(sql, params).await?;
            let sql = "UPDATE federated_rounds SET updates = updates + 1, position = ? WHERE task_id = ? AND round = ?";
            tx.execute(sql, values![position, task, *round]).await.map(drop)
        }
        TaskEvent::RoundAggregated { round, model, epsilon_spent, metrics, .. } => {
            let sql = "UPDATE federated_rounds SET status = 'aggregated', model_sha256 = ?, epsilon = ?, loss = ?, accuracy = ?, auc = ?, \
                       aggregated_at = ?, position = ? WHERE task_id = ? AND round = ?";
            let params = values![
                model.to_string(),
                *epsilon_spent,
                metrics.map(|m| m.loss),
                metrics.map(|m| m.accuracy),
                metrics.map(|m| m.auc),
                at,
                position,
                task,
                *round,
            ];
            tx.execute(sql, params).await?;
            let sql = "UPDATE federated_tasks SET rounds_aggregated = ?, open_round = NULL, epsilon_spent = ?, model_sha256 = ?, \
                       updated_at = ?, position = ? WHERE task_id = ?";
            tx.execute(sql, values![*round, *epsilon_spent, model.to_string(), at, position, task]).await.map(drop)
        }
        TaskEvent::SecureRoundAdvanced { round, advance } => {
            let step = match advance {
                SecureAdvance::Sharing { .. } => SecureStep::Sharing,
                SecureAdvance::Masking { .. } => SecureStep::Masking,
                SecureAdvance::Unmasking { .. } => SecureStep::Unmasking,
            };
            let sql = "UPDATE federated_rounds SET secure_step = ?, position = ? WHERE task_id = ? AND round = ?";
            tx.execute(sql, values![step.as_str(), position, task, *round]).await.map(drop)
        }
        // Keys and shares are for the protocol; the dashboard follows its steps.
        TaskEvent::SecureMessageSubmitted { .. } => Ok(()),
        TaskEvent::TaskCompleted { .. } => set_status(tx, fact, "completed").await,
        TaskEvent::TaskCancelled { .. } => set_status(tx, fact, "cancelled").await,
        TaskEvent::TaskFailed { .. } => set_status(tx, fact, "failed").await,
    }
}
