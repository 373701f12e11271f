//! Who may do what to a federated task, for every transport (REST here, gRPC in
//! `emr-grpc`): a researcher coordinates the tasks they created; a hospital's
//! service account, named by its hospital code, acts only for tasks that enrol it
//! and sees nothing else.

use axum::http::StatusCode;
use emr_auth::Identity;
use emr_commands::{Clinic, Subject};
use emr_domain::access::Action;
use emr_domain::actor::{Actor, Role};
use emr_domain::federated::{FederatedTask, TaskSpec};
use emr_domain::ids::{HospitalId, TaskId};
use emr_federated::Coordinator;

use crate::problem::{ApiError, Problem};

/// The coordinator and the checks in front of it.
#[derive(Clone, Copy)]
pub struct FederatedAccess<'a> {
    clinic: &'a Clinic,
    identity: &'a Identity,
    coordinator: Option<&'a Coordinator>,
}

impl<'a> FederatedAccess<'a> {
    /// The checks of a node whose coordinator is `coordinator` (none where the node
    /// keeps no models).
    pub fn new(clinic: &'a Clinic, identity: &'a Identity, coordinator: Option<&'a Coordinator>) -> Self {
        Self { clinic, identity, coordinator }
    }

    /// The coordinator, or why there is none.
    pub fn coordinator(&self) -> Result<&'a Coordinator, ApiError> {
        self.coordinator.ok_or_else(|| {
            ApiError::Problem(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "federated-learning-not-configured",
                "This server does not coordinate federated learning",
                "run the api role with a data directory for models",
            ))
        })
    }

    /// The coordinator, for a researcher who may create tasks.
    pub async fn creator(&self, actor: &Actor) -> Result<&'a Coordinator, ApiError> {
        self.clinic.authorize(actor, Action::CoordinateFederatedTask, Subject::default()).await?;
        self.coordinator()
    }

    /// The coordinator, for the researcher who created `task_id` (each task has one coordinator).
    pub async fn task_coordinator(&self, actor: &Actor, task_id: TaskId) -> Result<&'a Coordinator, ApiError> {
        let coordinator = self.creator(actor).await?;
        match coordinator.task(task_id).await?.coordinator() {
            Some(creator) if creator != actor.user_id => Err(ApiError::Problem(Problem::new(
                StatusCode::FORBIDDEN,
                "not-task-coordinator",
                "Not allowed",
                "only the researcher who created the task runs it",
            ))),
            _ => Ok(coordinator),
        }
    }

    /// The enrolled hospital a service account acts for: the one whose code is the
    /// account's username (usernames are folded to lower case, so codes match either case).
    pub async fn enrolled_hospital(&self, actor: &Actor, spec: &TaskSpec) -> Result<HospitalId, ApiError> {
        let account = self.identity.account(actor.user_id).await?;
        let username = account.username().map(|name| name.as_str().to_owned()).unwrap_or_default();
        spec.hospitals.iter().find(|code| code.as_str().eq_ignore_ascii_case(&username)).cloned().ok_or_else(|| {
            ApiError::Problem(Problem::new(
                StatusCode::FORBIDDEN,
                "not-enrolled",
                "Not allowed",
                "this account's hospital is not enrolled in the task (a hospital's service account is named by its hospital code)",
            ))
        })
    }

    /// The coordinator and the hospital a submitting service account acts for in `task_id`.
    pub async fn submitter(&self, actor: &Actor, task_id: TaskId) -> Result<(&'a Coordinator, HospitalId), ApiError> {
        self.clinic.authorize(actor, Action::SubmitModelUpdate, Subject::default()).await?;
        let coordinator = self.coordinator()?;
        let task = coordinator.task(task_id).await?;
        let spec = task.spec().ok_or_else(|| ApiError::NotFound("federated task".into()))?;
        Ok((coordinator, self.enrolled_hospital(actor, spec).await?))
    }

    /// A task the caller may see (hospitals see only the tasks they are enrolled
    /// in), and the hospital the caller acts for, if it is one.
    pub async fn visible(&self, actor: &Actor, task_id: TaskId) -> Result<(FederatedTask, Option<HospitalId>), ApiError> {
        self.clinic.authorize(actor, Action::ReadFederatedTask, Subject::default()).await?;
        let task = self.coordinator()?.task(task_id).await?;
        let spec = task.spec().ok_or_else(|| ApiError::NotFound("federated task".into()))?;
        if actor.role != Role::Hospital {
            return Ok((task, None));
        }
        match self.enrolled_hospital(actor, spec).await {
            Ok(hospital) => Ok((task, Some(hospital))),
            Err(_) => Err(ApiError::NotFound("federated task".into())),
        }
    }
}
