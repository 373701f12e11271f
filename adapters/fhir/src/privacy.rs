//! Who may see a patient's records and who did, as FHIR: access grants and
//! requests as `Consent`, the access log as `AuditEvent` (after the IHE Basic Audit
//! Log Patterns: a patient-record read, its agent, the patient as entity, and a
//! break-glass read's emergency purpose), and a resource version's author and
//! ledger receipt as `Provenance`.

use chrono::{DateTime, SecondsFormat, Utc};
use emr_domain::grant::{AccessGrant, GrantStatus, Scope};
use emr_domain::ids::GrantId;
use serde_json::{Value, json};

use crate::resources::{meta, practitioner_reference};

const V3_ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const V3_ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
const CONSENT_ACTION: &str = "http://terminology.hl7.org/CodeSystem/consentaction";
const SCOPE_SYSTEM: &str = "urn:emr-ledger:scope";
/// The extension on a `Provenance` naming the event's anchoring receipt.
pub const ANCHORING_RECEIPT: &str = "urn:emr-ledger:fhir:anchoring-receipt";

fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn scope_action(scope: Scope) -> Value {
    let (fhir, ours) = match scope {
        Scope::Read => (Some("access"), "read"),
        Scope::Write => (Some("correct"), "write"),
        Scope::Share => (Some("disclose"), "share"),
        Scope::Delegate => (None, "delegate"),
    };
    let mut coding = vec![json!({"system": SCOPE_SYSTEM, "code": ours})];
    if let Some(code) = fhir {
        coding.insert(0, json!({"system": CONSENT_ACTION, "code": code}));
    }
    json!({"coding": coding})
}

/// An access grant (or request) as a FHIR `Consent`: the patient permits the
/// grantee the grant's scopes until it expires. `now` tells an expired grant
/// (`inactive`) from a live one.
pub fn consent(id: GrantId, grant: &AccessGrant, version: u64, now: DateTime<Utc>) -> Option<Value> {
    let status = match grant.status() {
        GrantStatus::Absent => return None,
        GrantStatus::Requested => "proposed",
        GrantStatus::Active if grant.expires_at().is_some_and(|end| end > now) => "active",
        GrantStatus::Active | GrantStatus::Revoked => "inactive",
        GrantStatus::Denied => "rejected",
    };
    let mut provision = json!({
        "type": "permit",
        "action": grant.scopes().iter().map(|scope| scope_action(*scope)).collect::<Vec<_>>(),
    });
    if let Some(grantee) = grant.grantee() {
        let role = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]});
        provision["actor"] = json!([{"role": role, "reference": practitioner_reference(grantee)}]);
    }
    if let Some(end) = grant.expires_at() {
        provision["period"] = json!({"end": instant(end)});
    }
    let mut resource = json!({
        "resourceType": "Consent",
        "id": id.to_string(),
        "meta": meta(version, false),
        "status": status,
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]}],
        "policyRule": {"coding": [{"system": V3_ACT_CODE, "code": "OPTIN"}]},
        "provision": provision,
    });
    if let Some(patient) = grant.patient_id() {
        resource["patient"] = json!({"reference": format!("Patient/{patient}")});
    }
    Some(resource)
}

/// One read of a patient's data, as the access log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disclosure<'a> {
    /// The disclosure's id.
    pub id: &'a str,
    /// Whose data.
    pub patient_id: &'a str,
    /// Who read it, and in which role.
    pub accessor_id: &'a str,
    /// The accessor's role (`physician`, `auditor`, …).
    pub accessor_role: &'a str,
    /// `patient`, `record` or `attachment`.
    pub resource: &'a str,
    /// The record read, if a record or its attachment was.
    pub record_id: Option<&'a str>,
    /// Why it was allowed: `own_record`, `author`, `grant`, `break_glass`, `role`.
    pub basis: &'a str,
    /// The grant relied on, for `grant`.
    pub grant_id: Option<&'a str>,
    /// When.
    pub accessed_at: DateTime<Utc>,
}

/// A disclosure as a FHIR `AuditEvent` (IHE BALP "patient read"): a break-glass
/// read carries the emergency purpose `ETREAT`, a read under a grant names the
/// `Consent` it relied on.
pub fn audit_event(disclosure: &Disclosure<'_>) -> Value {
    let purpose = match disclosure.basis {
        "break_glass" => ("ETREAT", "emergency treatment"),
        "own_record" => ("PATRQT", "patient requested"),
        "role" => ("HOPERAT", "healthcare operations"),
        _ => ("TREAT", "treatment"),
    };
    let mut entities = vec![json!({
        "what": {"reference": format!("Patient/{}", disclosure.patient_id)},
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
        "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"},
    })];
    if let Some(record) = disclosure.record_id {
        entities.push(json!({
            "what": {"reference": format!("Encounter/{record}")},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
            "description": disclosure.resource,
        }));
    }
    if let Some(grant) = disclosure.grant_id {
        entities.push(json!({
            "what": {"reference": format!("Consent/{grant}")},
            "type": {"system": "http://hl7.org/fhir/resource-types", "code": "Consent"},
        }));
    }
    json!({
        "resourceType": "AuditEvent",
        "id": disclosure.id,
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110", "display": "Patient Record"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": "read"}],
        "action": "R",
        "recorded": instant(disclosure.accessed_at),
        "outcome": "0",
        "purposeOfEvent": [{"coding": [{"system": V3_ACT_REASON, "code": purpose.0, "display": purpose.1}]}],
        "agent": [{
            "type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110153", "display": "Source Role ID"}]},
            "role": [{"text": disclosure.accessor_role}],
            "who": {"identifier": {"system": "urn:emr-ledger:user", "value": disclosure.accessor_id}},
            "requestor": true,
        }],
        "source": {"observer": {"display": "EMR Ledger"}, "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}]},
        "entity": entities,
    })
}

/// A resource version's origin: who recorded it, when, the command's event, and
/// where the ledger holds its proof.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    /// The versioned resource (`Encounter/<id>/_history/3`).
    pub target: String,
    /// The author's user id and role.
    pub author: (String, String),
    /// When it was recorded.
    pub recorded: DateTime<Utc>,
    /// `create`, `update` or `delete`.
    pub activity: &'static str,
    /// The event's id and log position (the anchoring receipt names them).
    pub event_id: String,
    /// The log position of the commit.
    pub position: u64,
    /// The URL of the event's anchoring receipt (inclusion proof and ledger transactions).
    pub receipt_url: String,
}

/// A version's origin as a FHIR `Provenance`; `id` is `<aggregate>-<version>`.
pub fn provenance(id: &str, origin: &Origin) -> Value {
    json!({
        "resourceType": "Provenance",
        "id": id,
        "extension": [{"url": ANCHORING_RECEIPT, "valueUri": origin.receipt_url}],
        "target": [{"reference": origin.target}],
        "recorded": instant(origin.recorded),
        "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": origin.activity.to_ascii_uppercase()}]},
        "agent": [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "author"}]},
            "role": [{"text": origin.author.1}],
            "who": {"identifier": {"system": "urn:emr-ledger:user", "value": origin.author.0}},
        }],
        "entity": [{
            "role": "source",
            "what": {
                "identifier": {"system": "urn:emr-ledger:event", "value": origin.event_id},
                "display": format!("event at log position {}; anchoring receipt: {}", origin.position, origin.receipt_url),
            },
        }],
    })
}
