//! Federated learning (`/v1/federated/tasks`): researchers coordinate tasks,
//! hospitals' service accounts pull global models and submit their updates.
//! Every step is a `FederatedTask` event; models and updates live in the model
//! store under the SHA-256 the events name.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use emr_commands::Subject;
use emr_domain::access::Action;
use emr_domain::actor::Role;
use emr_domain::federated::secure::{SecureError, SecureMessage, SecureRound};
use emr_domain::federated::{FederatedTask, ModelMetrics, TaskError, TaskSpec};
use emr_domain::ids::{HospitalId, TaskId};
use emr_domain::metadata::CommandContext;
use emr_federated::{Coordinator, CoordinatorError, RoundOpening, Update, Vector};
use emr_learning::model::Model;
use serde::{Deserialize, Serialize};

use super::path_id;
use crate::AppState;
use crate::extract::{Body, Caller, Command};
use crate::federation::FederatedAccess;
use crate::problem::{ApiError, Problem};

/// A new task.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTask {
    /// The task's id (defaults to the Idempotency-Key).
    task_id: Option<TaskId>,
    /// Model, hospitals, strategy, rounds, privacy (see the README's federated-learning section).
    #[schema(value_type = Object)]
    spec: TaskSpec,
    /// The initial global model, flattened; defaults to the model's seeded initialisation.
    initial_model: Option<Vec<f64>>,
    /// Seeds the default initialisation (a perceptron's hidden weights).
    #[serde(default)]
    seed: u64,
}

/// A task as the coordinator sees it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TaskView {
    task_id: TaskId,
    /// created, running, completed, budget_exhausted, cancelled or failed.
    status: &'static str,
    name: String,
    strategy: &'static str,
    #[schema(value_type = Vec<String>)]
    hospitals: Vec<HospitalId>,
    rounds: u32,
    rounds_aggregated: u32,
    /// The round open for updates, if any.
    open_round: Option<u32>,
    /// Hospitals whose update for the open round has arrived.
    #[schema(value_type = Vec<String>)]
    updates_received: Vec<HospitalId>,
    /// ε spent by the aggregated rounds, for a private task.
    epsilon_spent: Option<f64>,
    /// SHA-256 of the current global model.
    model: Option<String>,
    secure_aggregation: bool,
    /// The whole specification, for hospital clients.
    #[schema(value_type = Object)]
    spec: TaskSpec,
}

fn view(task_id: TaskId, task: &FederatedTask) -> Result<TaskView, ApiError> {
    let spec = task.spec().ok_or_else(|| ApiError::NotFound("federated task".into()))?;
    Ok(TaskView {
        task_id,
        status: task.status().as_str(),
        name: spec.name.clone(),
        strategy: spec.strategy.name(),
        hospitals: spec.hospitals.iter().cloned().collect(),
        rounds: spec.rounds,
        rounds_aggregated: task.rounds_aggregated(),
        open_round: task.open_round(),
        updates_received: task.open_updates().map(|(h, _)| h.clone()).collect(),
        epsilon_spent: task.epsilon_spent(),
        model: task.model().map(|m| m.to_string()),
        secure_aggregation: spec.secure_aggregation,
        spec: spec.clone(),
    })
}

fn task_path(id: &str) -> Result<TaskId, ApiError> {
    path_id(id, "federated task id")
}

fn access(state: &AppState) -> FederatedAccess<'_> {
    FederatedAccess::new(&state.clinic, &state.identity, state.federated.as_ref())
}

/// Runs the task coordinator's `step` on task `id` and answers the task as it then stands.
async fn coordinated(
    state: &AppState,
    context: &CommandContext,
    id: &str,
    step: impl AsyncFnOnce(&Coordinator, TaskId) -> Result<(), CoordinatorError>,
) -> Result<TaskView, ApiError> {
    let task_id = task_path(id)?;
    let coordinator = access(state).task_coordinator(&context.actor, task_id).await?;
    step(coordinator, task_id).await?;
    view(task_id, &coordinator.task(task_id).await?)
}

const ERRORS: &str = "problem+json: invalid input, unauthenticated, forbidden, not found, conflict";

#[utoipa::path(post, path = "/v1/federated/tasks", tag = "federated learning", summary = "Create a federated task (researchers)", request_body = CreateTask, params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader), responses((status = 201, body = TaskView), (status = "4XX", description = ERRORS, body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Command(context): Command,
    Body(body): Body<CreateTask>,
) -> Result<(StatusCode, Json<TaskView>), ApiError> {
    let coordinator = access(&state).creator(&context.actor).await?;
    body.spec.validate().map_err(|e| ApiError::Federated(TaskError::Spec(e).into()))?;
    let task_id = body.task_id.unwrap_or_else(|| TaskId::from(context.command_id.as_uuid()));
    let initial = body.initial_model.unwrap_or_else(|| Model::new(&body.spec.model).initial_parameters(body.seed));
    coordinator.create(&context, task_id, body.spec, initial).await?;
    Ok((StatusCode::CREATED, Json(view(task_id, &coordinator.task(task_id).await?)?)))
}

#[utoipa::path(post, path = "/v1/federated/tasks/{task_id}/start", tag = "federated learning", summary = "Start a created task (researchers)", params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("task_id" = String, Path)), responses((status = 200, body = TaskView), (status = "4XX", description = ERRORS, body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn start(
    State(state): State<AppState>,
    Command(context): Command,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, ApiError> {
    Ok(Json(coordinated(&state, &context, &id, async |coordinator, task| coordinator.start(&context, task).await).await?))
}

/// A round just opened.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RoundView {
    round: u32,
    /// SHA-256 of the global model hospitals train from.
    model: String,
    /// ε spent once this round is aggregated, for a private task.
    epsilon_after: Option<f64>,
}

#[utoipa::path(post, path = "/v1/federated/tasks/{task_id}/rounds", tag = "federated learning", summary = "Open the next round (researchers); 409 epsilon-budget-exhausted when it would pass the budget", params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("task_id" = String, Path)), responses((status = 201, body = RoundView), (status = "4XX", description = ERRORS, body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn open_round(
    State(state): State<AppState>,
    Command(context): Command,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<RoundView>), ApiError> {
    let task_id = task_path(&id)?;
    match access(&state).task_coordinator(&context.actor, task_id).await?.open_round(&context, task_id).await? {
        RoundOpening::Opened { round, model, epsilon_after } => {
            Ok((StatusCode::CREATED, Json(RoundView { round, model: model.to_string(), epsilon_after })))
        }
        RoundOpening::Refused { round, epsilon_would_be, epsilon_budget } => {
            Err(ApiError::Federated(TaskError::BudgetExhausted { round, epsilon_would_be, epsilon_budget }.into()))
        }
    }
}

/// A hospital's update: its parameters, or under secure aggregation its masked vector.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitUpdate {
    /// The trained parameters, flattened as the global model is.
    parameters: Option<Vec<f64>>,
    /// Under secure aggregation: the masked vector, fixed-point words modulo 2⁶⁴.
    masked: Option<Vec<u64>>,
    /// Training rows behind them.
    samples: u64,
    /// The hospital's own figures on its validation split.
    #[schema(value_type = Option<Object>)]
    metrics: Option<ModelMetrics>,
}

/// Where an update was stored.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UpdateStored {
    round: u32,
    #[schema(value_type = String)]
    hospital: HospitalId,
    /// SHA-256 of the stored update.
    sha256: String,
}

#[utoipa::path(post, path = "/v1/federated/tasks/{task_id}/rounds/{round}/updates", tag = "federated learning", summary = "Submit this hospital's update for the open round (hospital service accounts)", params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("task_id" = String, Path), ("round" = u32, Path)), request_body = SubmitUpdate, responses((status = 201, body = UpdateStored), (status = "4XX", description = ERRORS, body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn submit(
    State(state): State<AppState>,
    Command(context): Command,
    Path((id, round)): Path<(String, u32)>,
    Body(body): Body<SubmitUpdate>,
) -> Result<(StatusCode, Json<UpdateStored>), ApiError> {
    let task_id = task_path(&id)?;
    let (coordinator, hospital) = access(&state).submitter(&context.actor, task_id).await?;
    let invalid = |detail: &'static str| {
        ApiError::Problem(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-update", "The update is not valid", detail))
    };
    let vector = match (body.parameters, body.masked) {
        (Some(parameters), None) if parameters.iter().all(|p| p.is_finite()) => Vector::Plain(parameters),
        (Some(_), None) => return Err(invalid("every parameter must be a finite number")),
        (None, Some(masked)) => Vector::Masked(masked),
        _ => return Err(invalid("send either parameters or, under secure aggregation, masked")),
    };
    let update = Update { vector, samples: body.samples, metrics: body.metrics };
    let sha256 = coordinator.submit(&context, task_id, round, hospital.clone(), update).await?;
    Ok((StatusCode::CREATED, Json(UpdateStored { round, hospital, sha256: sha256.to_string() })))
}

/// The coordinator's aggregation request.
#[derive(Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct AggregateRound {
    /// The coordinator's figures for the new model on its held-out split, if it has one.
    #[schema(value_type = Option<Object>)]
    metrics: Option<ModelMetrics>,
}

#[utoipa::path(post, path = "/v1/federated/tasks/{task_id}/rounds/{round}/aggregation", tag = "federated learning", summary = "Aggregate the open round into the next global model (researchers)", params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("task_id" = String, Path), ("round" = u32, Path)), request_body = AggregateRound, responses((status = 201, body = TaskView), (status = "4XX", description = ERRORS, body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn aggregate(
    State(state): State<AppState>,
    Command(context): Command,
    Path((id, round)): Path<(String, u32)>,
    Body(body): Body<AggregateRound>,
) -> Result<(StatusCode, Json<TaskView>), ApiError> {
    let aggregate = async |coordinator: &Coordinator, task| coordinator.aggregate(&context, task, round, |_| body.metrics).await.map(drop);
    Ok((StatusCode::CREATED, Json(coordinated(&state, &context, &id, aggregate).await?)))
}

#[utoipa::path(get, path = "/v1/federated/tasks/{task_id}/rounds/{round}/secure", tag = "federated learning", summary = "The open round's secure aggregation: its step, the roster's public keys, and the sealed shares addressed to the calling hospital (enrolled hospitals, researchers)", params(("task_id" = String, Path), ("round" = u32, Path)), responses((status = 200, description = "the round's step, threshold, keys, sharers, survivors", body = Object), (status = "4XX", description = ERRORS, body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn secure_round(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, round)): Path<(String, u32)>,
) -> Result<Json<SecureRound>, ApiError> {
    let task_id = task_path(&id)?;
    let (task, viewer) = access(&state).visible(&caller.actor, task_id).await?;
    if task.open_round() != Some(round) {
        return Err(ApiError::NotFound("open round".into()));
    }
    let secure = task.secure_round().ok_or_else(|| ApiError::Federated(TaskError::Secure(SecureError::NotSecure).into()))?;
    Ok(Json(secure.view_for(viewer.as_ref())))
}

#[utoipa::path(post, path = "/v1/federated/tasks/{task_id}/rounds/{round}/secure/messages", tag = "federated learning", summary = "Send this hospital's message for the secure round's current step: keys, sealed shares or revealed shares (hospital service accounts)", params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("task_id" = String, Path), ("round" = u32, Path)), request_body(content = Object, description = "{\"step\": \"keys\", ...}, {\"step\": \"shares\", ...} or {\"step\": \"reveal\", ...}"), responses((status = 204, description = "recorded"), (status = "4XX", description = ERRORS, body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn secure_message(
    State(state): State<AppState>,
    Command(context): Command,
    Path((id, round)): Path<(String, u32)>,
    Body(message): Body<SecureMessage>,
) -> Result<StatusCode, ApiError> {
    let task_id = task_path(&id)?;
    let (coordinator, hospital) = access(&state).submitter(&context.actor, task_id).await?;
    coordinator.submit_secure(&context, task_id, round, hospital, message).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/federated/tasks/{task_id}/rounds/{round}/secure/advance", tag = "federated learning", summary = "Move the secure round to its next step: fix the roster, close sharing, close masking (researchers)", params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("task_id" = String, Path), ("round" = u32, Path)), responses((status = 200, description = "the round's step, threshold, keys, sharers, survivors", body = Object), (status = "4XX", description = ERRORS, body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn secure_advance(
    State(state): State<AppState>,
    Command(context): Command,
    Path((id, round)): Path<(String, u32)>,
) -> Result<Json<SecureRound>, ApiError> {
    let task_id = task_path(&id)?;
    let coordinator = access(&state).task_coordinator(&context.actor, task_id).await?;
    coordinator.advance_secure(&context, task_id, round).await?;
    let task = coordinator.task(task_id).await?;
    let secure = task.secure_round().ok_or_else(|| ApiError::Federated(TaskError::Secure(SecureError::NotSecure).into()))?;
    Ok(Json(secure.view_for(None)))
}

#[utoipa::path(post, path = "/v1/federated/tasks/{task_id}/completion", tag = "federated learning", summary = "Complete a task that ran all its rounds (researchers)", params(crate::extract::IdempotencyKeyHeader, crate::extract::IfMatchHeader, ("task_id" = String, Path)), responses((status = 200, body = TaskView), (status = "4XX", description = ERRORS, body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn complete(
    State(state): State<AppState>,
    Command(context): Command,
    Path(id): Path<String>,
) -> Result<Json<TaskView>, ApiError> {
    Ok(Json(coordinated(&state, &context, &id, async |coordinator, task| coordinator.complete(&context, task).await).await?))
}

#[utoipa::path(get, path = "/v1/federated/tasks/{task_id}", tag = "federated learning", summary = "A task, its round and its ε (researchers, auditors, enrolled hospitals)", params(("task_id" = String, Path)), responses((status = 200, body = TaskView), (status = "4XX", description = ERRORS, body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn show(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<TaskView>, ApiError> {
    let task_id = task_path(&id)?;
    Ok(Json(view(task_id, &access(&state).visible(&caller.actor, task_id).await?.0)?))
}

/// The current global model.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct GlobalModel {
    /// Rounds aggregated into it.
    version: u32,
    sha256: String,
    /// Its parameters, flattened.
    parameters: Vec<f64>,
}

#[utoipa::path(get, path = "/v1/federated/tasks/{task_id}/model", tag = "federated learning", summary = "The current global model (researchers, auditors, enrolled hospitals)", params(("task_id" = String, Path)), responses((status = 200, body = GlobalModel), (status = "4XX", description = ERRORS, body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn model(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<GlobalModel>, ApiError> {
    let task_id = task_path(&id)?;
    let access = access(&state);
    let (task, _) = access.visible(&caller.actor, task_id).await?;
    let sha256 = task.model().map(|m| m.to_string()).unwrap_or_default();
    let parameters = access.coordinator()?.global_model(task_id).await?;
    Ok(Json(GlobalModel { version: task.rounds_aggregated(), sha256, parameters }))
}

/// Filters of the task list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct TaskFilter {
    /// created, running, completed, budget_exhausted, cancelled or failed.
    status: Option<String>,
    /// At most this many (1–500, default 50).
    limit: Option<u32>,
}

/// The dashboards' reads are for coordinators and auditors; a hospital reads its own tasks
/// through `GET /v1/federated/tasks/{id}`.
async fn dashboard_reader(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    if caller.actor.role == Role::Hospital {
        let denied = emr_domain::access::Denied::RoleNotPermitted { role: Role::Hospital, action: Action::ReadDashboard };
        return Err(denied.into());
    }
    state.clinic.authorize(&caller.actor, Action::ReadFederatedTask, Subject::default()).await?;
    Ok(())
}

#[utoipa::path(get, path = "/v1/read/federated-tasks", tag = "read models", summary = "Federated tasks: status, rounds, ε (researchers, auditors)", params(TaskFilter), responses((status = 200, description = "tasks, most recently changed first", body = Vec<emr_projections::queries::FederatedTaskRow>), (status = "4XX", description = ERRORS, body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    filter: Result<axum::extract::Query<TaskFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<emr_projections::queries::FederatedTaskRow>>, ApiError> {
    let axum::extract::Query(filter) = filter?;
    dashboard_reader(&state, &caller).await?;
    let models = super::read::models(&state)?;
    Ok(Json(emr_projections::queries::federated_tasks(&models.db, filter.status.as_deref(), filter.limit.unwrap_or(50)).await?))
}

/// A task's rounds and the hospitals' updates.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RoundsView {
    rounds: Vec<emr_projections::queries::FederatedRoundRow>,
    updates: Vec<emr_projections::queries::FederatedUpdateRow>,
}

#[utoipa::path(get, path = "/v1/read/federated-tasks/{task_id}/rounds", tag = "read models", summary = "A federated task's rounds (ε, held-out figures) and each hospital's reported figures", params(("task_id" = String, Path)), responses((status = 200, body = RoundsView), (status = "4XX", description = ERRORS, body = crate::Problem, content_type = "application/problem+json"), (status = "5XX", description = "problem+json: a backing service is unavailable", body = crate::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub(crate) async fn rounds(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<RoundsView>, ApiError> {
    let task_id = task_path(&id)?;
    dashboard_reader(&state, &caller).await?;
    let models = super::read::models(&state)?;
    let (rounds, updates) = emr_projections::queries::federated_rounds(&models.db, &task_id.to_string()).await?;
    Ok(Json(RoundsView { rounds, updates }))
}
