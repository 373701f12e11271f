//! The `Federated` service: the REST API's `/v1/federated/tasks`, behind the same
//! coordinator and the same access checks ([`FederatedAccess`]).

use std::collections::BTreeMap;

use emr_domain::federated::secure::{Opaque, PublicKeys, RevealedShare, SecretKind, SecureError, SecureMessage, SecureRound};
use emr_domain::federated::{FederatedTask, ModelMetrics, TaskError, TaskSpec};
use emr_domain::ids::{HospitalId, TaskId};
use emr_federated::{Coordinator, RoundOpening, Update, Vector};
use emr_http::ApiError;
use emr_http::federation::FederatedAccess;
use emr_learning::model::Model;
use tonic::{Request, Response, Status};

use crate::convert::{field, id, id_or_command, invalid};
use crate::{GrpcState, fail, pb};

impl GrpcState {
    fn federation(&self) -> FederatedAccess<'_> {
        FederatedAccess::new(&self.clinic, &self.identity, self.federated.as_ref())
    }
}

fn task_id(text: &str) -> Result<TaskId, Status> {
    id("task_id", text)
}

fn view(task_id: TaskId, task: &FederatedTask) -> Result<pb::FederatedTaskView, Status> {
    let spec = task.spec().ok_or_else(|| fail(ApiError::NotFound("federated task".into())))?;
    Ok(pb::FederatedTaskView {
        task_id: task_id.to_string(),
        status: task.status().as_str().to_owned(),
        name: spec.name.clone(),
        strategy: spec.strategy.name().to_owned(),
        hospitals: spec.hospitals.iter().map(|h| h.as_str().to_owned()).collect(),
        rounds: spec.rounds,
        rounds_aggregated: task.rounds_aggregated(),
        open_round: task.open_round(),
        updates_received: task.open_updates().map(|(h, _)| h.as_str().to_owned()).collect(),
        epsilon_spent: task.epsilon_spent(),
        model_sha256: task.model().map(|m| m.to_string()).unwrap_or_default(),
        secure_aggregation: spec.secure_aggregation,
        spec_json: serde_json::to_string(spec).map_err(|e| Status::internal(e.to_string()))?,
    })
}

/// The task as it stands after a coordinator's step.
async fn standing(coordinator: &Coordinator, task: TaskId) -> Result<Response<pb::FederatedTaskView>, Status> {
    Ok(Response::new(view(task, &coordinator.task(task).await.map_err(fail)?)?))
}

fn metrics(message: Option<pb::ModelMetrics>) -> Option<ModelMetrics> {
    message.map(|m| ModelMetrics { loss: m.loss, accuracy: m.accuracy, auc: m.auc })
}

fn hospital(name: &str, text: String) -> Result<HospitalId, Status> {
    field(name, serde_json::Value::String(text))
}

fn not_secure() -> Status {
    fail(ApiError::Federated(TaskError::Secure(SecureError::NotSecure).into()))
}

/// A hospital's message in the domain's terms.
fn secure_message(step: Option<pb::secure_message_request::Step>) -> Result<SecureMessage, Status> {
    use pb::secure_message_request::Step;
    match step.ok_or_else(|| invalid("step", "send keys, shares or reveal"))? {
        Step::Keys(keys) => {
            Ok(SecureMessage::Keys { sealing_key: Opaque::new(keys.sealing_key), masking_key: Opaque::new(keys.masking_key) })
        }
        Step::Shares(sealed) => {
            let shares = sealed
                .shares
                .into_iter()
                .map(|(to, share)| Ok((hospital("shares", to)?, Opaque::new(share))))
                .collect::<Result<_, Status>>()?;
            Ok(SecureMessage::Shares { shares })
        }
        Step::Reveal(revealed) => {
            let shares = revealed
                .shares
                .into_iter()
                .map(|r| {
                    let secret: SecretKind = field("reveal.shares.secret", serde_json::Value::String(r.secret))?;
                    Ok(RevealedShare { owner: hospital("reveal.shares.owner", r.owner)?, secret, share: Opaque::new(r.share) })
                })
                .collect::<Result<_, Status>>()?;
            Ok(SecureMessage::Reveal { shares })
        }
    }
}

/// The round as the caller may see it (sealed shares only for the hospital they are addressed to).
fn secure_view(round: &SecureRound, viewer: Option<&HospitalId>) -> pb::SecureRoundView {
    let names = |hospitals: &mut dyn Iterator<Item = &HospitalId>| hospitals.map(|h| h.as_str().to_owned()).collect::<Vec<_>>();
    let keys = |keys: &PublicKeys| pb::PublicKeys {
        sealing_key: keys.sealing_key.as_bytes().to_vec(),
        masking_key: keys.masking_key.as_bytes().to_vec(),
    };
    let shares_for_you: BTreeMap<String, Vec<u8>> = match viewer {
        Some(hospital) => {
            round.shares_for(hospital).into_iter().map(|(from, s)| (from.as_str().to_owned(), s.as_bytes().to_vec())).collect()
        }
        None => BTreeMap::new(),
    };
    pb::SecureRoundView {
        step: round.step.as_str().to_owned(),
        threshold: round.threshold,
        keys: round.keys.iter().map(|(h, k)| (h.as_str().to_owned(), keys(k))).collect(),
        shared: names(&mut round.shares.keys()),
        shares_for_you: shares_for_you.into_iter().collect(),
        sharers: names(&mut round.sharers.iter()),
        survivors: names(&mut round.survivors.iter()),
        revealed: names(&mut round.reveals.keys()),
    }
}

#[tonic::async_trait]
impl pb::federated_server::Federated for GrpcState {
    async fn create_task(&self, request: Request<pb::CreateTaskRequest>) -> Result<Response<pb::FederatedTaskView>, Status> {
        let context = self.context(&request).await?;
        let body = request.into_inner();
        let coordinator = self.federation().creator(&context.actor).await.map_err(fail)?;
        let spec: TaskSpec = serde_json::from_str(&body.spec_json).map_err(|e| invalid("spec_json", &e.to_string()))?;
        spec.validate().map_err(|e| fail(ApiError::Federated(TaskError::Spec(e).into())))?;
        let task: TaskId = id_or_command("task_id", body.task_id, &context)?;
        let initial =
            if body.initial_model.is_empty() { Model::new(&spec.model).initial_parameters(body.seed) } else { body.initial_model };
        coordinator.create(&context, task, spec, initial).await.map_err(fail)?;
        standing(coordinator, task).await
    }

    async fn start_task(&self, request: Request<pb::TaskRef>) -> Result<Response<pb::FederatedTaskView>, Status> {
        let context = self.context(&request).await?;
        let task = task_id(&request.into_inner().task_id)?;
        let coordinator = self.federation().task_coordinator(&context.actor, task).await.map_err(fail)?;
        coordinator.start(&context, task).await.map_err(fail)?;
        standing(coordinator, task).await
    }

    async fn open_round(&self, request: Request<pb::TaskRef>) -> Result<Response<pb::RoundOpened>, Status> {
        let context = self.context(&request).await?;
        let task = task_id(&request.into_inner().task_id)?;
        let coordinator = self.federation().task_coordinator(&context.actor, task).await.map_err(fail)?;
        match coordinator.open_round(&context, task).await.map_err(fail)? {
            RoundOpening::Opened { round, model, epsilon_after } => {
                Ok(Response::new(pb::RoundOpened { round, model_sha256: model.to_string(), epsilon_after }))
            }
            RoundOpening::Refused { round, epsilon_would_be, epsilon_budget } => {
                Err(fail(ApiError::Federated(TaskError::BudgetExhausted { round, epsilon_would_be, epsilon_budget }.into())))
            }
        }
    }

    async fn submit_update(&self, request: Request<pb::SubmitUpdateRequest>) -> Result<Response<pb::UpdateStored>, Status> {
        let context = self.context(&request).await?;
        let body = request.into_inner();
        let task = task_id(&body.task_id)?;
        let (coordinator, hospital) = self.federation().submitter(&context.actor, task).await.map_err(fail)?;
        let vector = match (body.parameters.is_empty(), body.masked.is_empty()) {
            (false, true) if body.parameters.iter().all(|p| p.is_finite()) => Vector::Plain(body.parameters),
            (false, true) => return Err(invalid("parameters", "every parameter must be a finite number")),
            (true, false) => Vector::Masked(body.masked),
            _ => return Err(invalid("parameters", "send either parameters or, under secure aggregation, masked")),
        };
        let update = Update { vector, samples: body.samples, metrics: metrics(body.metrics) };
        let sha256 = coordinator.submit(&context, task, body.round, hospital.clone(), update).await.map_err(fail)?;
        Ok(Response::new(pb::UpdateStored { round: body.round, hospital: hospital.as_str().to_owned(), sha256: sha256.to_string() }))
    }

    async fn send_secure_message(&self, request: Request<pb::SecureMessageRequest>) -> Result<Response<pb::Empty>, Status> {
        let context = self.context(&request).await?;
        let body = request.into_inner();
        let task = task_id(&body.task_id)?;
        let message = secure_message(body.step)?;
        let (coordinator, hospital) = self.federation().submitter(&context.actor, task).await.map_err(fail)?;
        coordinator.submit_secure(&context, task, body.round, hospital, message).await.map_err(fail)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn advance_secure_round(&self, request: Request<pb::RoundRef>) -> Result<Response<pb::SecureRoundView>, Status> {
        let context = self.context(&request).await?;
        let body = request.into_inner();
        let task = task_id(&body.task_id)?;
        let coordinator = self.federation().task_coordinator(&context.actor, task).await.map_err(fail)?;
        coordinator.advance_secure(&context, task, body.round).await.map_err(fail)?;
        let state = coordinator.task(task).await.map_err(fail)?;
        Ok(Response::new(secure_view(state.secure_round().ok_or_else(not_secure)?, None)))
    }

    async fn get_secure_round(&self, request: Request<pb::RoundRef>) -> Result<Response<pb::SecureRoundView>, Status> {
        let actor = self.caller(&request).await?;
        let body = request.into_inner();
        let (task, viewer) = self.federation().visible(&actor, task_id(&body.task_id)?).await.map_err(fail)?;
        if task.open_round() != Some(body.round) {
            return Err(fail(ApiError::NotFound("open round".into())));
        }
        Ok(Response::new(secure_view(task.secure_round().ok_or_else(not_secure)?, viewer.as_ref())))
    }

    async fn aggregate_round(&self, request: Request<pb::AggregateRoundRequest>) -> Result<Response<pb::FederatedTaskView>, Status> {
        let context = self.context(&request).await?;
        let body = request.into_inner();
        let task = task_id(&body.task_id)?;
        let coordinator = self.federation().task_coordinator(&context.actor, task).await.map_err(fail)?;
        let reported = metrics(body.metrics);
        coordinator.aggregate(&context, task, body.round, |_| reported).await.map_err(fail)?;
        standing(coordinator, task).await
    }

    async fn complete_task(&self, request: Request<pb::TaskRef>) -> Result<Response<pb::FederatedTaskView>, Status> {
        let context = self.context(&request).await?;
        let task = task_id(&request.into_inner().task_id)?;
        let coordinator = self.federation().task_coordinator(&context.actor, task).await.map_err(fail)?;
        coordinator.complete(&context, task).await.map_err(fail)?;
        standing(coordinator, task).await
    }

    async fn get_task(&self, request: Request<pb::TaskRef>) -> Result<Response<pb::FederatedTaskView>, Status> {
        let actor = self.caller(&request).await?;
        let task = task_id(&request.into_inner().task_id)?;
        let (state, _) = self.federation().visible(&actor, task).await.map_err(fail)?;
        Ok(Response::new(view(task, &state)?))
    }

    async fn get_model(&self, request: Request<pb::TaskRef>) -> Result<Response<pb::GlobalModel>, Status> {
        let actor = self.caller(&request).await?;
        let task = task_id(&request.into_inner().task_id)?;
        let federation = self.federation();
        let (state, _) = federation.visible(&actor, task).await.map_err(fail)?;
        let parameters = federation.coordinator().map_err(fail)?.global_model(task).await.map_err(fail)?;
        let sha256 = state.model().map(|m| m.to_string()).unwrap_or_default();
        Ok(Response::new(pb::GlobalModel { version: state.rounds_aggregated(), sha256, parameters }))
    }
}
