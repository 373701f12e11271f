//! The gRPC transport of EMR Ledger (tonic), speaking `proto/emr/v1/ledger.proto`.
//!
//! Every call goes to the same application layer as REST ([`Clinic`],
//! [`Identity`], the federated-learning coordinator and its access checks):
//! authorization, disclosures and validation are not repeated here. Messages mirror the REST JSON bodies and turn into the domain's value
//! objects through serde, so a field is valid over gRPC exactly when it is valid
//! over REST. Errors carry the REST catalogue's stable code as a
//! `google.rpc.ErrorInfo` reason.

mod convert;
mod federated;
mod status;

use emr_auth::Identity;
use emr_commands::Clinic;
use emr_domain::access::Basis;
use emr_domain::actor::Actor;
use emr_domain::grant::GrantCommand;
use emr_domain::ids::{CommandId, GrantId, PatientId, RecordId};
use emr_domain::metadata::CommandContext;
use emr_domain::patient::PatientCommand;
use emr_domain::record::RecordCommand;
use emr_eventstore::Cutoff;
use tonic::{Request, Response, Status};

pub use status::status_of;

/// Generated messages, clients and servers.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod pb {
    tonic::include_proto!("emr.v1");
}

use convert::{field, id, id_or_command, receipt, record_view};

/// What both services share.
#[derive(Clone)]
pub struct GrpcState {
    /// The application layer.
    pub clinic: Clinic,
    /// Accounts, login and sessions.
    pub identity: Identity,
    /// The federated-learning coordinator, when this node keeps models.
    pub federated: Option<emr_federated::Coordinator>,
}

impl GrpcState {
    /// The verified claims of the request's bearer token.
    async fn claims<T>(&self, request: &Request<T>) -> Result<emr_auth::AccessClaims, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| status_of(emr_http::ApiError::Unauthenticated("send authorization: Bearer <access token>")))?;
        let token =
            header.strip_prefix("Bearer ").ok_or_else(|| status_of(emr_http::ApiError::Unauthenticated("the scheme must be Bearer")))?;
        self.identity.authenticate(token.trim()).await.map_err(fail)
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<Actor, Status> {
        Ok(self.claims(request).await?.actor())
    }

    async fn context<T>(&self, request: &Request<T>) -> Result<CommandContext, Status> {
        let actor = self.caller(request).await?;
        match request.metadata().get("idempotency-key") {
            None => Ok(CommandContext::new(actor)),
            Some(key) => {
                let id = key
                    .to_str()
                    .ok()
                    .and_then(|key| CommandId::parse(key).ok())
                    .ok_or_else(|| convert::invalid("idempotency-key", "must be a UUID"))?;
                Ok(CommandContext::with_id(id, actor))
            }
        }
    }
}

/// The most records one `CreateRecords` call creates (as `POST /v1/records/batch`).
const MAX_BATCH: usize = emr_commands::Clinic::MAX_BATCH;

/// The creation a request asks for: the record id given, or the command id.
fn creation(body: pb::CreateRecordRequest, context: &CommandContext) -> Result<(RecordId, RecordCommand), Status> {
    let record_id: RecordId = id_or_command("record_id", body.record_id, context)?;
    let command = RecordCommand::Create {
        record_id,
        patient_id: id("patient_id", &body.patient_id)?,
        doctor_id: id("doctor_id", &body.doctor_id)?,
        hospital_id: field("hospital_id", serde_json::Value::String(body.hospital_id))?,
        record_type: field("record_type", serde_json::Value::String(body.record_type))?,
        visit_date: field("visit_date", serde_json::Value::String(body.visit_date))?,
        content: convert::message("content", body.content)?,
    };
    Ok((record_id, command))
}

fn fail<E: Into<emr_http::ApiError>>(error: E) -> Status {
    status_of(error.into())
}

#[tonic::async_trait]
impl pb::auth_server::Auth for GrpcState {
    async fn login(&self, request: Request<pb::LoginRequest>) -> Result<Response<pb::Challenge>, Status> {
        let client = request.remote_addr().map(|address| address.ip().to_canonical());
        let body = request.into_inner();
        let username = field("username", serde_json::Value::String(body.username))?;
        let challenge = self.identity.login(&username, body.password, client).await.map_err(fail)?;
        Ok(Response::new(pb::Challenge { mfa_token: challenge.mfa_token, enrolment_required: challenge.enrolment_required }))
    }

    async fn enrol_mfa(&self, request: Request<pb::MfaToken>) -> Result<Response<pb::Enrolment>, Status> {
        let enrolment = self.identity.enrol(&request.into_inner().mfa_token).await.map_err(fail)?;
        Ok(Response::new(pb::Enrolment { otpauth_uri: enrolment.otpauth_uri, secret: enrolment.secret }))
    }

    async fn verify_mfa(&self, request: Request<pb::MfaCode>) -> Result<Response<pb::TokenPair>, Status> {
        let client = request.remote_addr().map(|address| address.ip().to_canonical());
        let body = request.into_inner();
        Ok(Response::new(convert::tokens(self.identity.verify(&body.mfa_token, &body.code, client).await.map_err(fail)?)))
    }

    async fn refresh(&self, request: Request<pb::RefreshRequest>) -> Result<Response<pb::TokenPair>, Status> {
        let client = request.remote_addr().map(|address| address.ip().to_canonical());
        Ok(Response::new(convert::tokens(self.identity.refresh(&request.into_inner().refresh_token, client).await.map_err(fail)?)))
    }

    async fn logout(&self, request: Request<pb::Empty>) -> Result<Response<pb::Empty>, Status> {
        let claims = self.claims(&request).await?;
        self.identity.logout(&claims).await.map_err(fail)?;
        Ok(Response::new(pb::Empty {}))
    }
}

#[tonic::async_trait]
impl pb::clinic_server::Clinic for GrpcState {
    async fn register_patient(&self, request: Request<pb::RegisterPatientRequest>) -> Result<Response<pb::Receipt>, Status> {
        let context = self.context(&request).await?;
        let body = request.into_inner();
        let patient_id: PatientId = id_or_command("patient_id", body.patient_id, &context)?;
        let command = PatientCommand::Register {
            patient_id,
            hospital_id: field("hospital_id", serde_json::Value::String(body.hospital_id))?,
            identifiers: convert::message("identifiers", body.identifiers)?,
            demographics: convert::message("demographics", body.demographics)?,
        };
        Ok(Response::new(receipt(self.clinic.patient(patient_id, command, &context).await.map_err(fail)?)))
    }

    async fn create_record(&self, request: Request<pb::CreateRecordRequest>) -> Result<Response<pb::Receipt>, Status> {
        let context = self.context(&request).await?;
        let (record_id, command) = creation(request.into_inner(), &context)?;
        Ok(Response::new(receipt(self.clinic.record(record_id, command, &context).await.map_err(fail)?)))
    }

    async fn create_records(&self, request: Request<pb::CreateRecordsRequest>) -> Result<Response<pb::CreateRecordsResponse>, Status> {
        let context = self.context(&request).await?;
        let records = request.into_inner().records;
        if records.is_empty() || records.len() > MAX_BATCH {
            return Err(Status::invalid_argument(format!("send 1 to {MAX_BATCH} records; this call has {}", records.len())));
        }
        let mut batch = Vec::with_capacity(records.len());
        for (index, record) in records.into_iter().enumerate() {
            let entry = context.batch_entry(index);
            let (record_id, command) = creation(record, &entry)?;
            batch.push((record_id, command, entry));
        }
        let answers = self.clinic.create_records(batch).await.into_iter().map(|answer| {
            let answer = match answer {
                Ok(done) => pb::record_answer::Answer::Receipt(receipt(done)),
                Err(refused) => {
                    let problem = emr_http::ApiError::from(refused).logged_problem();
                    let refusal = pb::Refusal {
                        http_status: u32::from(problem.status),
                        code: problem.code,
                        detail: problem.detail,
                        retryable: problem.retryable,
                    };
                    pb::record_answer::Answer::Refusal(refusal)
                }
            };
            pb::RecordAnswer { answer: Some(answer) }
        });
        Ok(Response::new(pb::CreateRecordsResponse { answers: answers.collect() }))
    }

    async fn amend_record(&self, request: Request<pb::AmendRecordRequest>) -> Result<Response<pb::Receipt>, Status> {
        let context = self.context(&request).await?;
        let body = request.into_inner();
        let record_id: RecordId = id("record_id", &body.record_id)?;
        let command = RecordCommand::Amend {
            content: convert::message("content", body.content)?,
            reason: field("reason", serde_json::Value::String(body.reason))?,
        };
        Ok(Response::new(receipt(self.clinic.record(record_id, command, &context).await.map_err(fail)?)))
    }

    async fn grant_access(&self, request: Request<pb::GrantAccessRequest>) -> Result<Response<pb::Receipt>, Status> {
        let context = self.context(&request).await?;
        let body = request.into_inner();
        let grant_id: GrantId = id_or_command("grant_id", body.grant_id, &context)?;
        let command = GrantCommand::Grant {
            grant_id,
            patient_id: id("patient_id", &body.patient_id)?,
            grantee: id("grantee", &body.grantee)?,
            scopes: field("scopes", serde_json::json!(body.scopes))?,
            expires_at: field("expires_at", serde_json::Value::String(body.expires_at))?,
            granted_by: context.actor.user_id,
            reason: field("reason", serde_json::Value::String(body.reason))?,
        };
        Ok(Response::new(receipt(self.clinic.grant(grant_id, command, &context).await.map_err(fail)?)))
    }

    async fn revoke_grant(&self, request: Request<pb::RevokeGrantRequest>) -> Result<Response<pb::Receipt>, Status> {
        let context = self.context(&request).await?;
        let body = request.into_inner();
        let grant_id: GrantId = id("grant_id", &body.grant_id)?;
        let command =
            GrantCommand::Revoke { revoked_by: context.actor.user_id, reason: field("reason", serde_json::Value::String(body.reason))? };
        Ok(Response::new(receipt(self.clinic.grant(grant_id, command, &context).await.map_err(fail)?)))
    }

    async fn read_record(&self, request: Request<pb::ReadRecordRequest>) -> Result<Response<pb::RecordView>, Status> {
        let actor = self.caller(&request).await?;
        let body = request.into_inner();
        let record_id: RecordId = id("record_id", &body.record_id)?;
        let cutoff = (body.at_position > 0).then_some(Cutoff::Position(body.at_position));
        let read = self.clinic.read_record(&actor, record_id, cutoff, None).await.map_err(fail)?;
        Ok(Response::new(record_view(record_id, &read, read.basis == Basis::Redacted)?))
    }

    async fn break_glass(&self, request: Request<pb::BreakGlassRequest>) -> Result<Response<pb::RecordView>, Status> {
        let actor = self.caller(&request).await?;
        let body = request.into_inner();
        let record_id: RecordId = id("record_id", &body.record_id)?;
        let reason = field("reason", serde_json::Value::String(body.reason))?;
        let read = self.clinic.read_record(&actor, record_id, None, Some(reason)).await.map_err(fail)?;
        Ok(Response::new(record_view(record_id, &read, false)?))
    }
}

/// The largest federated message accepted or sent: a 4M-parameter vector.
const MAX_FEDERATED_MESSAGE: usize = 40 << 20;

/// Every service, ready for `tonic::transport::Server::builder().add_routes(...)`.
pub fn routes(state: GrpcState) -> tonic::service::Routes {
    let federated = pb::federated_server::FederatedServer::new(state.clone())
        .max_decoding_message_size(MAX_FEDERATED_MESSAGE)
        .max_encoding_message_size(MAX_FEDERATED_MESSAGE);
    tonic::service::Routes::new(pb::auth_server::AuthServer::new(state.clone()))
        .add_service(pb::clinic_server::ClinicServer::new(state))
        .add_service(federated)
}
