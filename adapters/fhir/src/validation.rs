//! Validation against the official FHIR R4 JSON schema (`schema/fhir.schema.json`,
//! see its README for its origin), for the tests of every crate that emits FHIR.

use std::sync::OnceLock;

use serde_json::Value;

fn validator() -> Option<&'static jsonschema::Validator> {
    static VALIDATOR: OnceLock<Option<jsonschema::Validator>> = OnceLock::new();
    VALIDATOR
        .get_or_init(|| {
            let schema: Value = serde_json::from_str(include_str!("../schema/fhir.schema.json")).ok()?;
            jsonschema::draft6::new(&schema).ok()
        })
        .as_ref()
}

/// What makes `resource` invalid FHIR R4 (at most ten violations); empty when it is valid.
pub fn violations(resource: &Value) -> Vec<String> {
    match validator() {
        Some(validator) => validator.iter_errors(resource).take(10).map(|e| format!("{e} at {}", e.instance_path())).collect(),
        None => vec!["the committed FHIR schema does not compile".to_owned()],
    }
}
