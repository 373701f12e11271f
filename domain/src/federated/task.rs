//! The federated task aggregate: the life of one training task, round by round.
//!
//! Every step is an event, so the lineage of the global model (which updates, from
//! which hospitals, made which version) can be replayed and its hashes are anchored
//! with the rest of the log. Updates themselves are never events: an update names
//! its SHA-256 and the blob holding it (encrypted), and no row, feature value or
//! label of a hospital appears anywhere.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use super::secure::{SecureAdvance, SecureError, SecureMessage, SecureRound};
use super::spec::{SpecError, TaskSpec};
use crate::clock::DomainServices;
use crate::decided::write_decided;
use crate::ids::{HospitalId, TaskId, UserId};
use crate::values::{ContentId, Sha256Digest};

/// Quality figures of a model on a validation or test split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelMetrics {
    /// Mean binary cross-entropy.
    pub loss: f64,
    /// Share classified correctly at threshold 0.5, in [0, 1].
    pub accuracy: f64,
    /// Area under the ROC curve, in [0, 1].
    pub auc: f64,
}

impl ModelMetrics {
    fn valid(&self) -> bool {
        self.loss.is_finite() && self.loss >= 0.0 && (0.0..=1.0).contains(&self.accuracy) && (0.0..=1.0).contains(&self.auc)
    }
}

/// One hospital's update for a round, as the coordinator records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateReceipt {
    /// The training examples behind it (weights FedAvg).
    pub samples: u64,
    /// SHA-256 of the update as submitted (masked, under secure aggregation).
    pub sha256: Sha256Digest,
    /// The encrypted blob holding it, where one is kept.
    pub blob: Option<ContentId>,
    /// The hospital's own figures on its validation split, if it reported them.
    pub metrics: Option<ModelMetrics>,
}

/// What may be asked of a federated task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskCommand {
    /// A coordinator creates the task.
    Create {
        /// The task's id (also the aggregate id).
        task_id: TaskId,
        /// What to train, where and how.
        spec: TaskSpec,
        /// SHA-256 of the initial global model.
        initial_model: Sha256Digest,
        /// The coordinator.
        created_by: UserId,
    },
    /// The coordinator starts it.
    Start {
        /// Who starts it.
        started_by: UserId,
    },
    /// The coordinator opens the next round with the current global model.
    OpenRound {
        /// The round, one past the last.
        round: u32,
    },
    /// An enrolled hospital submits its update for the open round.
    SubmitUpdate {
        /// The round it trained for.
        round: u32,
        /// The hospital.
        hospital: HospitalId,
        /// The update.
        update: UpdateReceipt,
    },
    /// The coordinator records the round's aggregate: the next global model.
    AggregateRound {
        /// The round.
        round: u32,
        /// SHA-256 of the new global model.
        model: Sha256Digest,
        /// The coordinator's figures for it on a held-out split, if it has one.
        metrics: Option<ModelMetrics>,
    },
    /// An enrolled hospital sends its message for the current step of the open
    /// round's secure aggregation.
    SubmitSecureMessage {
        /// The round.
        round: u32,
        /// The hospital.
        hospital: HospitalId,
        /// The message.
        message: SecureMessage,
    },
    /// The coordinator moves the open round's secure aggregation to its next step.
    AdvanceSecureRound {
        /// The round.
        round: u32,
    },
    /// The coordinator ends a task that ran all its rounds.
    Complete,
    /// The coordinator gives the task up.
    Cancel {
        /// Who.
        cancelled_by: UserId,
        /// Why.
        reason: String,
    },
    /// The coordinator records that the task cannot go on (a round missed its
    /// deadline with too few updates, an aggregation failed).
    Fail {
        /// Why.
        reason: String,
    },
}

/// What happened to a federated task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum TaskEvent {
    /// The task was created.
    TaskCreated {
        /// The task.
        task_id: TaskId,
        /// Its specification.
        spec: TaskSpec,
        /// SHA-256 of the initial global model (version 0).
        initial_model: Sha256Digest,
        /// The coordinator.
        created_by: UserId,
    },
    /// The task was started.
    TaskStarted {
        /// Who started it.
        started_by: UserId,
    },
    /// A round was opened.
    RoundOpened {
        /// The round (1-based).
        round: u32,
        /// The global model version hospitals train from (the rounds aggregated so far).
        model_version: u32,
        /// Its SHA-256.
        model: Sha256Digest,
        /// Updates are refused after this instant.
        deadline: DateTime<Utc>,
        /// ε spent once this round is aggregated, where the task is private.
        epsilon_after: Option<f64>,
    },
    /// A round was not opened because it would spend more ε than the budget allows.
    /// The task stops here; its last global model stands.
    RoundRefused {
        /// The round that was not opened.
        round: u32,
        /// The ε it would have brought the task to.
        epsilon_would_be: f64,
        /// The budget.
        epsilon_budget: f64,
    },
    /// A hospital submitted its update.
    UpdateSubmitted {
        /// The round.
        round: u32,
        /// The hospital.
        hospital: HospitalId,
        /// The update's receipt.
        update: UpdateReceipt,
    },
    /// A round's updates were aggregated into a new global model.
    RoundAggregated {
        /// The round.
        round: u32,
        /// The new global model's version (equal to the round).
        model_version: u32,
        /// Its SHA-256.
        model: Sha256Digest,
        /// The hospitals whose updates it combines.
        participants: Vec<HospitalId>,
        /// ε spent so far, where the task is private.
        epsilon_spent: Option<f64>,
        /// The coordinator's figures on a held-out split.
        metrics: Option<ModelMetrics>,
    },
    /// A hospital sent its message for a step of the round's secure aggregation.
    SecureMessageSubmitted {
        /// The round.
        round: u32,
        /// The hospital.
        hospital: HospitalId,
        /// The message (public keys, sealed shares, revealed shares).
        message: SecureMessage,
    },
    /// The round's secure aggregation moved to its next step.
    SecureRoundAdvanced {
        /// The round.
        round: u32,
        /// What the step fixes.
        advance: SecureAdvance,
    },
    /// Every round ran.
    TaskCompleted {
        /// SHA-256 of the final global model.
        model: Sha256Digest,
    },
    /// The coordinator gave the task up.
    TaskCancelled {
        /// Who.
        cancelled_by: UserId,
        /// Why.
        reason: String,
    },
    /// The task cannot go on.
    TaskFailed {
        /// Why.
        reason: String,
    },
}

impl DomainEvent for TaskEvent {
    fn event_type(&self) -> String {
        match self {
            Self::TaskCreated { .. } => "FederatedTaskCreated",
            Self::TaskStarted { .. } => "FederatedTaskStarted",
            Self::RoundOpened { .. } => "FederatedRoundOpened",
            Self::RoundRefused { .. } => "FederatedRoundRefused",
            Self::UpdateSubmitted { .. } => "FederatedUpdateSubmitted",
            Self::RoundAggregated { .. } => "FederatedRoundAggregated",
            Self::SecureMessageSubmitted { .. } => "FederatedSecureMessageSubmitted",
            Self::SecureRoundAdvanced { .. } => "FederatedSecureRoundAdvanced",
            Self::TaskCompleted { .. } => "FederatedTaskCompleted",
            Self::TaskCancelled { .. } => "FederatedTaskCancelled",
            Self::TaskFailed { .. } => "FederatedTaskFailed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Why a task command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TaskError {
    /// Create on an existing id.
    #[error("a federated task with this id already exists")]
    AlreadyExists,
    /// Anything else on an unknown id.
    #[error("no federated task with this id")]
    NotFound,
    /// The specification is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The command does not fit the task's state.
    #[error("the task is {status}; {expected}")]
    WrongState {
        /// The task's state.
        status: &'static str,
        /// What the command needs.
        expected: &'static str,
    },
    /// A round number other than the one expected.
    #[error("round {given} is not the current round ({expected})")]
    WrongRound {
        /// The round named.
        given: u32,
        /// The round expected.
        expected: u32,
    },
    /// A hospital not enrolled in the task.
    #[error("hospital {0} is not enrolled in this task")]
    NotEnrolled(HospitalId),
    /// A second update from one hospital in one round.
    #[error("hospital {0} already submitted its update for this round")]
    AlreadySubmitted(HospitalId),
    /// An update after the round's deadline.
    #[error("the round closed for updates at {0}")]
    DeadlinePassed(DateTime<Utc>),
    /// An update with no examples, or metrics out of range.
    #[error("an update needs at least one sample and metrics within range (loss ≥ 0, accuracy and AUC in [0, 1])")]
    InvalidUpdate,
    /// Aggregation before enough updates came in.
    #[error("the round has {got} updates; the task needs at least {needed}")]
    TooFewUpdates {
        /// Updates received.
        got: usize,
        /// Updates needed.
        needed: u32,
    },
    /// The privacy budget was already exhausted.
    #[error("the task spent its ε budget: round {round} would bring ε to {epsilon_would_be:.4}, over the budget of {epsilon_budget}")]
    BudgetExhausted {
        /// The round refused.
        round: u32,
        /// ε it would have reached.
        epsilon_would_be: f64,
        /// The budget.
        epsilon_budget: f64,
    },
    /// The accountant could not bound the round's ε.
    #[error("the privacy accountant refused the configuration: {0}")]
    Accounting(String),
    /// An empty or oversized reason.
    #[error("a reason of 1 to 500 characters is required")]
    Reason,
    /// A secure-aggregation step out of turn or malformed.
    #[error(transparent)]
    Secure(#[from] SecureError),
}

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Nothing yet.
    #[default]
    Absent,
    /// Created, not started.
    Created,
    /// Started; between rounds, or with a round open.
    Running,
    /// Every round ran.
    Completed,
    /// Stopped before its rounds: the ε budget would have been exceeded.
    BudgetExhausted,
    /// Given up by the coordinator.
    Cancelled,
    /// Could not go on.
    Failed,
}

impl TaskStatus {
    /// The status as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Absent => "absent",
            Self::Created => "created",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::BudgetExhausted => "budget_exhausted",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }

    fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::BudgetExhausted | Self::Cancelled | Self::Failed)
    }
}

/// The round currently open for updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OpenRound {
    round: u32,
    deadline: DateTime<Utc>,
    epsilon_after: Option<f64>,
    updates: BTreeMap<HospitalId, UpdateReceipt>,
    /// The secure-aggregation protocol, on tasks that use it.
    secure: Option<SecureRound>,
}

/// A federated training task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FederatedTask {
    task_id: Option<TaskId>,
    coordinator: Option<UserId>,
    spec: Option<TaskSpec>,
    status: TaskStatus,
    model: Option<Sha256Digest>,
    rounds_aggregated: u32,
    open: Option<OpenRound>,
    epsilon_spent: Option<f64>,
}

impl FederatedTask {
    /// Where the task stands.
    pub fn status(&self) -> TaskStatus {
        self.status
    }

    /// The researcher who created it, and who alone runs it.
    pub fn coordinator(&self) -> Option<UserId> {
        self.coordinator
    }

    /// Its specification (once created).
    pub fn spec(&self) -> Option<&TaskSpec> {
        self.spec.as_ref()
    }

    /// SHA-256 of the current global model.
    pub fn model(&self) -> Option<Sha256Digest> {
        self.model
    }

    /// Rounds aggregated so far (the current model's version).
    pub fn rounds_aggregated(&self) -> u32 {
        self.rounds_aggregated
    }

    /// The round open for updates, if any.
    pub fn open_round(&self) -> Option<u32> {
        self.open.as_ref().map(|open| open.round)
    }

    /// The updates received for the open round, by hospital.
    pub fn open_updates(&self) -> impl Iterator<Item = (&HospitalId, &UpdateReceipt)> {
        self.open.iter().flat_map(|open| open.updates.iter())
    }

    /// The open round's secure aggregation, on tasks that use it.
    pub fn secure_round(&self) -> Option<&SecureRound> {
        self.open.as_ref().and_then(|open| open.secure.as_ref())
    }

    /// ε spent by the rounds aggregated so far.
    pub fn epsilon_spent(&self) -> Option<f64> {
        self.epsilon_spent
    }

    fn wrong_state(&self, expected: &'static str) -> TaskError {
        match self.status {
            TaskStatus::Absent => TaskError::NotFound,
            status => TaskError::WrongState { status: status.as_str(), expected },
        }
    }

    fn spec_or_missing(&self) -> Result<&TaskSpec, TaskError> {
        self.spec.as_ref().ok_or(TaskError::NotFound)
    }

    /// The events `command` produces at `now`, or why it is refused.
    pub fn decide(&self, command: TaskCommand, now: DateTime<Utc>) -> Result<Vec<TaskEvent>, TaskError> {
        match command {
            TaskCommand::Create { task_id, spec, initial_model, created_by } => {
                if self.status != TaskStatus::Absent {
                    return Err(TaskError::AlreadyExists);
                }
                spec.validate()?;
                Ok(vec![TaskEvent::TaskCreated { task_id, spec, initial_model, created_by }])
            }
            TaskCommand::Start { started_by } => match self.status {
                TaskStatus::Created => Ok(vec![TaskEvent::TaskStarted { started_by }]),
                _ => Err(self.wrong_state("only a created task can start")),
            },
            TaskCommand::OpenRound { round } => self.decide_open_round(round, now),
            TaskCommand::SubmitUpdate { round, hospital, update } => self.decide_submission(round, hospital, update, now),
            TaskCommand::AggregateRound { round, model, metrics } => {
                let open = self.current_round(round)?;
                let spec = self.spec_or_missing()?;
                if open.updates.len() < spec.min_participants as usize {
                    return Err(TaskError::TooFewUpdates { got: open.updates.len(), needed: spec.min_participants });
                }
                if metrics.is_some_and(|m| !m.valid()) {
                    return Err(TaskError::InvalidUpdate);
                }
                if let Some(secure) = &open.secure {
                    secure.check_unmaskable()?;
                }
                Ok(vec![TaskEvent::RoundAggregated {
                    round,
                    model_version: round,
                    model,
                    participants: open.updates.keys().cloned().collect(),
                    epsilon_spent: open.epsilon_after,
                    metrics,
                }])
            }
            TaskCommand::SubmitSecureMessage { round, hospital, message } => {
                let secure = self.enrolled_in_secure_round(round, &hospital, now)?;
                secure.check_message(&hospital, &message)?;
                Ok(vec![TaskEvent::SecureMessageSubmitted { round, hospital, message }])
            }
            TaskCommand::AdvanceSecureRound { round } => {
                let open = self.current_round(round)?;
                let secure = open.secure.as_ref().ok_or(SecureError::NotSecure)?;
                let masked = open.updates.keys().cloned().collect();
                let advance = secure.next(&masked, self.spec_or_missing()?.min_participants as usize)?;
                Ok(vec![TaskEvent::SecureRoundAdvanced { round, advance }])
            }
            TaskCommand::Complete => {
                let spec = self.spec_or_missing()?;
                if self.status != TaskStatus::Running || self.open.is_some() || self.rounds_aggregated < spec.rounds {
                    return Err(self.wrong_state("a task completes once every round is aggregated"));
                }
                Ok(vec![TaskEvent::TaskCompleted { model: self.model.ok_or(TaskError::NotFound)? }])
            }
            TaskCommand::Cancel { cancelled_by, reason } => {
                self.ensure_stoppable(&reason)?;
                Ok(vec![TaskEvent::TaskCancelled { cancelled_by, reason }])
            }
            TaskCommand::Fail { reason } => {
                self.ensure_stoppable(&reason)?;
                Ok(vec![TaskEvent::TaskFailed { reason }])
            }
        }
    }

    fn ensure_stoppable(&self, reason: &str) -> Result<(), TaskError> {
        if self.status == TaskStatus::Absent || self.status.is_final() {
            return Err(self.wrong_state("only a task that has not ended can be stopped"));
        }
        let length = reason.trim().chars().count();
        if length == 0 || reason.chars().count() > 500 { Err(TaskError::Reason) } else { Ok(()) }
    }

    fn decide_open_round(&self, round: u32, now: DateTime<Utc>) -> Result<Vec<TaskEvent>, TaskError> {
        if self.status == TaskStatus::BudgetExhausted {
            let spec = self.spec_or_missing()?;
            let budget = spec.privacy.map_or(f64::INFINITY, |p| p.epsilon_budget);
            let would_be = self.epsilon_after(spec, round)?.unwrap_or(f64::INFINITY);
            return Err(TaskError::BudgetExhausted { round, epsilon_would_be: would_be, epsilon_budget: budget });
        }
        if self.status != TaskStatus::Running || self.open.is_some() {
            return Err(self.wrong_state("a round opens on a running task with no round open"));
        }
        let spec = self.spec_or_missing()?;
        let expected = self.rounds_aggregated + 1;
        if round != expected || round > spec.rounds {
            return Err(TaskError::WrongRound { given: round, expected });
        }
        let epsilon_after = self.epsilon_after(spec, round)?;
        if let (Some(privacy), Some(epsilon)) = (spec.privacy, epsilon_after)
            && epsilon > privacy.epsilon_budget
        {
            return Ok(vec![TaskEvent::RoundRefused { round, epsilon_would_be: epsilon, epsilon_budget: privacy.epsilon_budget }]);
        }
        Ok(vec![TaskEvent::RoundOpened {
            round,
            model_version: self.rounds_aggregated,
            model: self.model.ok_or(TaskError::NotFound)?,
            deadline: now + Duration::seconds(i64::from(spec.round_deadline_secs)),
            epsilon_after,
        }])
    }

    fn epsilon_after(&self, spec: &TaskSpec, round: u32) -> Result<Option<f64>, TaskError> {
        spec.privacy
            .map(|privacy| privacy.spent_after(round, spec.local_steps).map(|g| g.epsilon))
            .transpose()
            .map_err(|error| TaskError::Accounting(error.to_string()))
    }

    fn current_round(&self, round: u32) -> Result<&OpenRound, TaskError> {
        let open = self.open.as_ref().ok_or_else(|| self.wrong_state("no round is open"))?;
        if open.round != round {
            return Err(TaskError::WrongRound { given: round, expected: open.round });
        }
        Ok(open)
    }

    fn decide_submission(
        &self,
        round: u32,
        hospital: HospitalId,
        update: UpdateReceipt,
        now: DateTime<Utc>,
    ) -> Result<Vec<TaskEvent>, TaskError> {
        let spec = self.spec_or_missing()?;
        if !spec.hospitals.contains(&hospital) {
            return Err(TaskError::NotEnrolled(hospital));
        }
        let open = self.current_round(round)?;
        if now > open.deadline {
            return Err(TaskError::DeadlinePassed(open.deadline));
        }
        if open.updates.contains_key(&hospital) {
            return Err(TaskError::AlreadySubmitted(hospital));
        }
        if let Some(secure) = &open.secure {
            secure.check_masked_update(&hospital)?;
        }
        if update.samples == 0 || update.metrics.is_some_and(|m| !m.valid()) {
            return Err(TaskError::InvalidUpdate);
        }
        Ok(vec![TaskEvent::UpdateSubmitted { round, hospital, update }])
    }

    /// The open round's secure aggregation, for a message from `hospital`.
    fn enrolled_in_secure_round(&self, round: u32, hospital: &HospitalId, now: DateTime<Utc>) -> Result<&SecureRound, TaskError> {
        if !self.spec_or_missing()?.hospitals.contains(hospital) {
            return Err(TaskError::NotEnrolled(hospital.clone()));
        }
        let open = self.current_round(round)?;
        if now > open.deadline {
            return Err(TaskError::DeadlinePassed(open.deadline));
        }
        Ok(open.secure.as_ref().ok_or(SecureError::NotSecure)?)
    }
}

impl Aggregate for FederatedTask {
    const TYPE: &'static str = "federated_task";
    type Command = TaskCommand;
    type Event = TaskEvent;
    type Error = TaskError;
    type Services = DomainServices;

    async fn handle(&mut self, command: Self::Command, services: &Self::Services, sink: &EventSink<Self>) -> Result<(), Self::Error> {
        let decided = self.decide(command, services.now());
        write_decided(self, decided, sink).await
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            TaskEvent::TaskCreated { task_id, spec, initial_model, created_by } => {
                self.task_id = Some(task_id);
                self.coordinator = Some(created_by);
                self.spec = Some(spec);
                self.model = Some(initial_model);
                self.status = TaskStatus::Created;
            }
            TaskEvent::TaskStarted { .. } => self.status = TaskStatus::Running,
            TaskEvent::RoundOpened { round, deadline, epsilon_after, .. } => {
                let secure = self.spec.as_ref().is_some_and(|spec| spec.secure_aggregation).then(SecureRound::default);
                self.open = Some(OpenRound { round, deadline, epsilon_after, updates: BTreeMap::new(), secure });
            }
            TaskEvent::RoundRefused { .. } => self.status = TaskStatus::BudgetExhausted,
            TaskEvent::UpdateSubmitted { hospital, update, .. } => {
                if let Some(open) = &mut self.open {
                    open.updates.insert(hospital, update);
                }
            }
            TaskEvent::RoundAggregated { round, model, epsilon_spent, .. } => {
                self.open = None;
                self.rounds_aggregated = round;
                self.model = Some(model);
                self.epsilon_spent = epsilon_spent;
            }
            TaskEvent::SecureMessageSubmitted { hospital, message, .. } => {
                if let Some(secure) = self.open.as_mut().and_then(|open| open.secure.as_mut()) {
                    secure.record_message(hospital, message);
                }
            }
            TaskEvent::SecureRoundAdvanced { advance, .. } => {
                if let Some(secure) = self.open.as_mut().and_then(|open| open.secure.as_mut()) {
                    secure.record_advance(advance);
                }
            }
            TaskEvent::TaskCompleted { .. } => self.status = TaskStatus::Completed,
            TaskEvent::TaskCancelled { .. } => {
                self.open = None;
                self.status = TaskStatus::Cancelled;
            }
            TaskEvent::TaskFailed { .. } => {
                self.open = None;
                self.status = TaskStatus::Failed;
            }
        }
    }
}
