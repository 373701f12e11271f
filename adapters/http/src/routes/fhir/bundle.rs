//! `POST /fhir/r4` with a `batch` or `transaction` Bundle.
//!
//! A batch is its entries, each answered on its own as if sent alone (through the
//! same routes, in the caller's name). A transaction is all or nothing: every
//! change is read, resolved (a `urn:uuid:` reference names a resource the same
//! Bundle creates), authorized and decided before anything is written, and then
//! written as one change ([`emr_commands::Clinic::transaction`]); its reads run
//! afterwards. An entry the transaction cannot hold refuses it whole, with an
//! `OperationOutcome` naming the entry.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use emr_commands::{Receipt, Step};
use emr_domain::ids::{PatientId, RecordId};
use emr_domain::metadata::CommandContext;
use emr_domain::patient::PatientCommand;
use emr_domain::record::RecordCommand;
use emr_fhir::input;
use emr_fhir::scopes::Interaction;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::write::{amended_diagnosis, body, default_reason, invalid_resource, record_creation};
use super::{Fhir, invalid, permit};
use crate::AppState;
use crate::extract::CommandBy;
use crate::problem::{ApiError, Problem};

/// Most entries one Bundle may carry.
const MAX_ENTRIES: usize = 100;

/// `POST /fhir/r4`: a `batch` or `transaction` Bundle.
pub(crate) async fn submit(
    State(state): State<AppState>,
    command: Result<CommandBy, ApiError>,
    headers: HeaderMap,
    bundle: Result<Json<Value>, JsonRejection>,
) -> Result<Fhir, Fhir> {
    let CommandBy { context, caller } = command?;
    let bundle = body(bundle)?;
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(invalid("invalid-bundle", "Not a Bundle", "POST to the base URL takes a batch or transaction Bundle"));
    }
    let entries = match bundle.get("entry") {
        None => Vec::new(),
        Some(Value::Array(entries)) if entries.len() <= MAX_ENTRIES => entries.clone(),
        Some(Value::Array(_)) => {
            return Err(invalid("too-many-entries", "The Bundle is too large", format!("at most {MAX_ENTRIES} entries")));
        }
        Some(_) => return Err(invalid("invalid-bundle", "Bundle.entry is not valid", "Bundle.entry must be an array")),
    };
    match bundle.get("type").and_then(Value::as_str) {
        Some("batch") => Ok(Fhir::ok(batch(&state, &headers, &context, &entries).await)),
        Some("transaction") => transaction(&state, &headers, context, &caller, &entries).await,
        _ => Err(invalid("invalid-bundle", "Bundle.type is not valid", "Bundle.type must be batch or transaction")),
    }
}

/// An entry's request: its method and its URL relative to the base.
struct EntryRequest {
    method: Method,
    url: String,
    if_match: Option<String>,
}

fn entry_request(entry: &Value, index: usize) -> Result<EntryRequest, Fhir> {
    let at = |detail: &str| invalid("invalid-bundle", "A Bundle entry is not valid", format!("Bundle.entry[{index}].request: {detail}"));
    let request = entry.get("request").ok_or_else(|| at("is required"))?;
    let method = match request.get("method").and_then(Value::as_str) {
        Some("GET") => Method::GET,
        Some("POST") => Method::POST,
        Some("PUT") => Method::PUT,
        Some("DELETE") => Method::DELETE,
        _ => return Err(at("method must be GET, POST, PUT or DELETE")),
    };
    let url = request.get("url").and_then(Value::as_str).ok_or_else(|| at("url is required"))?;
    let url = url.split_once("/fhir/r4/").map_or(url, |(_, relative)| relative).trim_start_matches('/');
    if url.is_empty() || url.contains("://") {
        return Err(at("url must be relative to this server's base, such as Patient/<id>"));
    }
    let if_match = request.get("ifMatch").and_then(Value::as_str).map(str::to_owned);
    Ok(EntryRequest { method, url: url.to_owned(), if_match })
}

/// An entry's answer in a `batch-response` or `transaction-response`.
fn response_entry(
    status: StatusCode,
    location: Option<String>,
    version: Option<u64>,
    resource: Option<Value>,
    outcome: Option<Value>,
) -> Value {
    let mut response = json!({"status": format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or_default())});
    if let Some(location) = location {
        response["location"] = json!(location);
    }
    if let Some(version) = version {
        response["etag"] = json!(crate::extract::etag(version));
    }
    if let Some(outcome) = outcome {
        response["outcome"] = outcome;
    }
    let mut entry = json!({"response": response});
    if let Some(resource) = resource {
        entry["resource"] = resource;
    }
    entry
}

/// Sends one entry through this server's FHIR `routes`, in the caller's name.
async fn dispatch(
    routes: &axum::Router,
    headers: &HeaderMap,
    request: &EntryRequest,
    resource: Option<&Value>,
    idempotency_key: uuid::Uuid,
) -> Value {
    let mut builder = Request::builder().method(request.method.clone()).uri(format!("/{}", request.url));
    for name in ["authorization", "host", "x-forwarded-proto"] {
        if let Some(value) = headers.get(name) {
            builder = builder.header(name, value);
        }
    }
    if let Some(Ok(if_match)) = request.if_match.as_deref().map(HeaderValue::from_str) {
        builder = builder.header("if-match", if_match);
    }
    builder = builder.header("idempotency-key", idempotency_key.to_string());
    let body = match resource {
        Some(resource) => {
            builder = builder.header("content-type", emr_fhir::FHIR_JSON);
            Body::from(resource.to_string())
        }
        None => Body::empty(),
    };
    let answered = match builder.body(body) {
        Ok(request) => routes.clone().oneshot(request).await,
        Err(error) => return failed_entry(&invalid("invalid-bundle", "A Bundle entry is not valid", error.to_string())),
    };
    let Ok(response) = answered;
    let status = response.status();
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let version = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .and_then(|tag| tag.trim_start_matches("W/").trim_matches('"').parse().ok());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap_or_default();
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();
    if status.is_success() { response_entry(status, location, version, body, None) } else { response_entry(status, None, None, None, body) }
}

fn failed_entry(error: &Fhir) -> Value {
    response_entry(error.status, None, None, None, error.body.clone())
}

/// Each entry on its own; the answer lists them in the Bundle's order.
async fn batch(state: &AppState, headers: &HeaderMap, context: &CommandContext, entries: &[Value]) -> Value {
    let routes = super::routes().with_state(state.clone());
    let mut answers = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let answer = match entry_request(entry, index) {
            Ok(request) => dispatch(&routes, headers, &request, entry.get("resource"), entry_uuid(context, index)).await,
            Err(error) => failed_entry(&error),
        };
        answers.push(answer);
    }
    json!({"resourceType": "Bundle", "type": "batch-response", "entry": answers})
}

/// The id of what entry `index` creates (and its command id in a batch): derived
/// from the Bundle's command id, so a retried Bundle finds what it created.
fn entry_uuid(context: &CommandContext, index: usize) -> uuid::Uuid {
    uuid::Uuid::new_v5(&context.command_id.as_uuid(), format!("entry/{index}").as_bytes())
}

/// What a transaction entry changes, and how its answer names the result.
struct Change {
    entry: usize,
    step: Step,
    resource_type: &'static str,
    id: String,
    created: bool,
}

/// The order FHIR processes a transaction in: deletes, creates, updates, reads.
fn phase(method: &Method) -> u8 {
    match *method {
        Method::DELETE => 0,
        Method::POST => 1,
        Method::PUT => 2,
        _ => 3,
    }
}

async fn transaction(
    state: &AppState,
    headers: &HeaderMap,
    context: CommandContext,
    caller: &crate::extract::Caller,
    entries: &[Value],
) -> Result<Fhir, Fhir> {
    let at = |index: usize, fhir: Fhir| entry_error(index, fhir);
    let mut requests = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        requests.push(entry_request(entry, index)?);
    }
    // What each `urn:uuid:` names once created: patients first, as encounters refer to them.
    let mut created: HashMap<String, String> = HashMap::new();
    for (index, (entry, request)) in entries.iter().zip(&requests).enumerate() {
        if request.method == Method::POST {
            let Some(full_url) = entry.get("fullUrl").and_then(Value::as_str) else { continue };
            let id = entry_uuid(&context, index);
            created.insert(full_url.to_owned(), format!("{}/{id}", request.url));
        }
    }
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| (phase(&requests[i].method), u8::from(requests[i].url != "Patient")));
    let mut changes = Vec::new();
    let mut reads = Vec::new();
    for &index in &order {
        let request = &requests[index];
        if request.method == Method::GET {
            reads.push(index);
            continue;
        }
        let resource = entries[index].get("resource");
        let expected = if_match_version(request).map_err(|e| at(index, e))?;
        let change = plan(state, caller, &context, index, request, resource, expected, &created).await.map_err(|e| at(index, e))?;
        changes.push(change);
    }
    let steps = changes.iter().map(|change| change.step.clone()).collect();
    let receipts = state.clinic.transaction(steps, &context).await.map_err(|refused| {
        let entry = changes.get(refused.step).map_or(0, |change| change.entry);
        at(entry, Fhir::from(refused.error))
    })?;
    let mut answers: Vec<Value> = vec![Value::Null; entries.len()];
    for (change, receipt) in changes.iter().zip(&receipts) {
        answers[change.entry] = change_answer(headers, change, receipt);
    }
    let routes = super::routes().with_state(state.clone());
    for index in reads {
        answers[index] = dispatch(&routes, headers, &requests[index], None, entry_uuid(&context, index)).await;
    }
    Ok(Fhir::ok(json!({"resourceType": "Bundle", "type": "transaction-response", "entry": answers})))
}

fn change_answer(headers: &HeaderMap, change: &Change, receipt: &Receipt) -> Value {
    let version = receipt.events.last().map(|event| event.sequence);
    let base = super::base_url(headers);
    match (&change.step, change.created) {
        (_, true) => {
            let location = version.map(|v| format!("{base}/{}/{}/_history/{v}", change.resource_type, change.id));
            response_entry(StatusCode::CREATED, location, version, None, None)
        }
        (Step::Record { command: RecordCommand::Delete { .. }, .. }, false) => {
            response_entry(StatusCode::NO_CONTENT, None, version, None, None)
        }
        (_, false) => response_entry(StatusCode::OK, None, version, None, None),
    }
}

/// A refusal naming the entry at fault.
fn entry_error(index: usize, fhir: Fhir) -> Fhir {
    let Some(mut outcome) = fhir.body.clone() else { return fhir };
    if let Some(issue) = outcome.pointer_mut("/issue/0") {
        let said = issue.get("diagnostics").and_then(Value::as_str).unwrap_or_default().to_owned();
        issue["diagnostics"] = json!(format!("Bundle.entry[{index}]: {said}"));
        issue["expression"] = json!([format!("Bundle.entry[{index}]")]);
    }
    Fhir { body: Some(outcome), ..fhir }
}

fn if_match_version(request: &EntryRequest) -> Result<Option<u64>, Fhir> {
    let Some(tag) = request.if_match.as_deref().map(str::trim).filter(|tag| *tag != "*") else { return Ok(None) };
    let version = tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"').parse().map_err(|_| {
        invalid("invalid-header", "ifMatch is not valid", "request.ifMatch must be one ETag this server gave, such as W/\"3\"")
    })?;
    Ok(Some(version))
}

fn resource_of(resource: Option<&Value>) -> Result<&Value, Fhir> {
    resource.ok_or_else(|| invalid("invalid-bundle", "A Bundle entry is not valid", "a POST or PUT entry carries its resource"))
}

fn unsupported(request: &EntryRequest) -> Fhir {
    Fhir::from(Problem::new(
        StatusCode::BAD_REQUEST,
        "not-supported",
        "Not supported in a transaction",
        format!(
            "{} {} is not one of the changes a transaction holds: POST Patient, POST Encounter, PUT Patient/<id>, PUT Condition/<id>, DELETE Encounter/<id> (and GET)",
            request.method, request.url
        ),
    ))
}

fn id_in<T: std::str::FromStr>(url: &str, resource_type: &str) -> Option<T> {
    url.strip_prefix(resource_type)?.strip_prefix('/')?.parse().ok()
}

/// Reads one change of a transaction into a step of the clinic's.
#[allow(clippy::too_many_arguments)]
async fn plan(
    state: &AppState,
    caller: &crate::extract::Caller,
    context: &CommandContext,
    index: usize,
    request: &EntryRequest,
    resource: Option<&Value>,
    expected_version: Option<u64>,
    created: &HashMap<String, String>,
) -> Result<Change, Fhir> {
    let new_id = entry_uuid(context, index);
    let url = request.url.as_str();
    match (&request.method, url) {
        (&Method::POST, "Patient") => {
            permit(caller, "Patient", Interaction::Create, None)?;
            let registration = input::registration(resource_of(resource)?).map_err(|e| invalid_resource(&e))?;
            let patient_id = PatientId::from(new_id);
            let command = PatientCommand::Register {
                patient_id,
                hospital_id: registration.hospital_id,
                identifiers: registration.identifiers,
                demographics: registration.demographics,
            };
            let step = Step::Patient { patient_id, command, expected_version: None };
            Ok(Change { entry: index, step, resource_type: "Patient", id: patient_id.to_string(), created: true })
        }
        (&Method::POST, "Encounter") => {
            let new = input::encounter(resource_of(resource)?).map_err(|e| invalid_resource(&e))?;
            let subject = created.get(&new.subject).map_or(new.subject.as_str(), String::as_str);
            let patient_id = subject_patient(subject)?;
            permit(caller, "Encounter", Interaction::Create, Some(patient_id))?;
            let record_id = RecordId::from(new_id);
            let step =
                Step::Record { record_id, command: record_creation(record_id, patient_id, &context.actor, new), expected_version: None };
            Ok(Change { entry: index, step, resource_type: "Encounter", id: record_id.to_string(), created: true })
        }
        (&Method::PUT, _) if id_in::<PatientId>(url, "Patient").is_some() => {
            let patient_id = id_in::<PatientId>(url, "Patient").ok_or_else(|| unsupported(request))?;
            permit(caller, "Patient", Interaction::Update, Some(patient_id))?;
            let resource = resource_of(resource)?;
            super::write::ensure_id(resource, &patient_id.to_string())?;
            let demographics = input::demographics(resource).map_err(|e| invalid_resource(&e))?;
            let step = Step::Patient { patient_id, command: PatientCommand::UpdateDemographics { demographics }, expected_version };
            Ok(Change { entry: index, step, resource_type: "Patient", id: patient_id.to_string(), created: false })
        }
        (&Method::PUT, _) if id_in::<RecordId>(url, "Condition").is_some() => {
            let record_id = id_in::<RecordId>(url, "Condition").ok_or_else(|| unsupported(request))?;
            let resource = resource_of(resource)?;
            super::write::ensure_id(resource, &record_id.to_string())?;
            let loaded = state.clinic.load_record(record_id).await?;
            permit(caller, "Condition", Interaction::Update, loaded.state().patient_id())?;
            let diagnosis = input::diagnosis(resource).map_err(|e| invalid_resource(&e))?;
            let content = amended_diagnosis(resource, diagnosis, loaded.state())?;
            let reason = default_reason("diagnosis revised (FHIR transaction)")?;
            // It rewrites part of what it read, so it is conditional on that version.
            let expected_version = expected_version.or(Some(loaded.sequence()));
            let step = Step::Record { record_id, command: RecordCommand::Amend { content, reason }, expected_version };
            Ok(Change { entry: index, step, resource_type: "Condition", id: record_id.to_string(), created: false })
        }
        (&Method::DELETE, _) if id_in::<RecordId>(url, "Encounter").is_some() => {
            let record_id = id_in::<RecordId>(url, "Encounter").ok_or_else(|| unsupported(request))?;
            permit(caller, "Encounter", Interaction::Delete, state.clinic.load_record(record_id).await?.state().patient_id())?;
            let reason = default_reason("entered in error (FHIR transaction)")?;
            let step = Step::Record { record_id, command: RecordCommand::Delete { reason }, expected_version };
            Ok(Change { entry: index, step, resource_type: "Encounter", id: record_id.to_string(), created: false })
        }
        _ => Err(unsupported(request)),
    }
}

/// The patient a `subject.reference` names (`Patient/<id>`).
pub(super) fn subject_patient(reference: &str) -> Result<PatientId, Fhir> {
    id_in(reference, "Patient").ok_or_else(|| {
        let expected = "Patient/<id>, or in a transaction the fullUrl of a Patient it creates";
        invalid_resource(&input::InvalidElement { element: "Encounter.subject.reference".into(), expected: expected.into() })
    })
}
