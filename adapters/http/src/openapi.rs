//! The OpenAPI 3 document, generated from the handlers' annotations and the
//! domain's value objects, served at `/openapi.json`.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    attachments, auth, diagnosis, export, federated, grants, log, patients, privacy, read, records, research, retention, security, smart,
};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT (EdDSA)").build();
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Operation ids from method and path (`get_v1_patients_patient_id`): handlers in
/// different modules share names (`show`, `register`, `break_glass`), and a client
/// generator keys operations by id, so ids must be unique.
struct UniqueOperationIds;

impl Modify for UniqueOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
            ];
            for (method, operation) in operations {
                if let Some(operation) = operation {
                    let words: Vec<&str> = path.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
                    operation.operation_id = Some(format!("{method}_{}", words.join("_")));
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "EMR Ledger",
        description = "Audit-grade electronic medical records: commands become events, reads are recorded disclosures. \
                       Errors are RFC 9457 problem+json with a stable `code`."
    ),
    paths(
        auth::login, auth::enrol, auth::verify, auth::refresh, auth::logout,
        auth::register, auth::register_self, auth::show, auth::unlock, auth::deactivate, auth::change_role, auth::reset_mfa, auth::list, smart::launch,
        patients::register, patients::search, patients::update_demographics, patients::erase, patients::show, patients::break_glass,
        patients::restrict, patients::lift_restriction, patients::place_legal_hold, patients::release_legal_hold, export::export,
        retention::review, retention::dispose, privacy::justify, privacy::report,
        records::create, records::create_batch, records::amend, records::add_attachment, records::delete, records::restore, records::show, records::break_glass,
        attachments::upload, attachments::download, attachments::preview, attachments::status,
        diagnosis::request, diagnosis::job, diagnosis::cancel, diagnosis::suggestions, diagnosis::report_of, diagnosis::review,
        diagnosis::register, diagnosis::model, diagnosis::install, diagnosis::validate, diagnosis::activate, diagnosis::retire,
        grants::grant, grants::request, grants::approve, grants::deny, grants::revoke, grants::show, grants::of_patient, grants::of_grantee,
        log::read, log::history, log::receipt,
        read::records, read::dashboard, read::diagnosis_models, read::diagnosis_suggestions, read::projections, read::anchors, read::access_log, research::export,
        security::list, security::show, security::acknowledge, security::assign, security::resolve, security::risk, security::outcomes,
        federated::create, federated::show, federated::start, federated::open_round, federated::submit, federated::aggregate,
        federated::complete, federated::model, federated::list, federated::rounds, federated::secure_round,
        federated::secure_message, federated::secure_advance,
    ),
    modifiers(&BearerAuth, &UniqueOperationIds),
    tags(
        (name = "auth", description = "Login with password and TOTP, refresh, logout"),
        (name = "accounts", description = "Accounts (administrators; patients register themselves)"),
        (name = "patients", description = "Patients and their demographics"),
        (name = "records", description = "Medical records, versions, attachments"),
        (name = "diagnosis", description = "AI-assisted diagnosis: jobs, suggestions, reports, physician review; the model registry"),
        (name = "grants", description = "A patient's consent: grants and access requests"),
        (name = "audit", description = "The event log, histories and integrity receipts (PHI sealed)"),
        (name = "read models", description = "Queries on the projections; `min_position` waits for a command's commit"),
        (name = "security", description = "Security events, their evidence and triage; risk scores (administrators and auditors)"),
        (name = "federated learning", description = "Federated tasks: researchers coordinate, hospitals' service accounts submit updates"),
    )
)]
pub(crate) struct ApiDoc;

pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
