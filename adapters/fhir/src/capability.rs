//! The `CapabilityStatement` at `/metadata`, built from the interactions the server
//! really serves: a resource or interaction is listed only when a route implements it.

use serde_json::{Value, json};

/// The FHIR version spoken.
pub const FHIR_VERSION: &str = "4.0.1";

/// A resource type's search parameters (`(name, type)`) and `_include` values.
#[derive(Debug, Clone)]
struct SearchDeclaration {
    resource: &'static str,
    params: Vec<(&'static str, &'static str)>,
    includes: Vec<&'static str>,
}

/// What the server implements, resource by resource.
#[derive(Debug, Clone, Default)]
pub struct CapabilityStatement {
    resources: Vec<(&'static str, Vec<&'static str>)>,
    operations: Vec<(&'static str, &'static str, &'static str)>,
    system: Vec<&'static str>,
    searches: Vec<SearchDeclaration>,
    oauth: Option<(String, String)>,
}

impl CapabilityStatement {
    /// Declares that `resource` supports `interactions` (FHIR's `TypeRestfulInteraction` codes).
    #[must_use]
    pub fn resource(mut self, resource: &'static str, interactions: &[&'static str]) -> Self {
        self.resources.push((resource, interactions.to_vec()));
        self
    }

    /// Declares the search parameters of `resource` (`(name, type)`, FHIR's
    /// `SearchParamType` codes) and the `_include` values it serves.
    #[must_use]
    pub fn search(mut self, resource: &'static str, params: &[(&'static str, &'static str)], includes: &[&'static str]) -> Self {
        self.searches.push(SearchDeclaration { resource, params: params.to_vec(), includes: includes.to_vec() });
        self
    }

    /// Declares the whole-system `interactions` (`transaction`, `batch`, ...).
    #[must_use]
    pub fn system(mut self, interactions: &[&'static str]) -> Self {
        self.system.extend_from_slice(interactions);
        self
    }

    /// Declares that `resource` serves the operation `name` (`$name`), defined at
    /// `definition`; an empty `resource` declares a whole-system operation.
    #[must_use]
    pub fn operation(mut self, resource: &'static str, name: &'static str, definition: &'static str) -> Self {
        self.operations.push((resource, name, definition));
        self
    }

    /// Names the SMART authorize and token endpoints (SMART's `oauth-uris` extension).
    #[must_use]
    pub fn with_oauth(mut self, authorize: String, token: String) -> Self {
        self.oauth = Some((authorize, token));
        self
    }

    /// The resource types served.
    pub fn resource_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.resources.iter().map(|(name, _)| *name)
    }

    /// The statement as FHIR JSON; `software_version` names this build and `date`
    /// (YYYY-MM-DD) when it was published.
    pub fn to_json(&self, software_version: &str, date: &str) -> Value {
        let resources: Vec<Value> = self
            .resources
            .iter()
            .map(|(name, interactions)| {
                let operations: Vec<Value> = self
                    .operations
                    .iter()
                    .filter(|(resource, _, _)| resource == name)
                    .map(|(_, operation, definition)| json!({"name": operation, "definition": definition}))
                    .collect();
                let mut resource = json!({
                    "type": name,
                    "versioning": "versioned",
                    "readHistory": interactions.contains(&"vread"),
                    "updateCreate": false,
                    "conditionalUpdate": false,
                    "conditionalDelete": "not-supported",
                });
                if !operations.is_empty() {
                    resource["operation"] = Value::Array(operations);
                }
                for search in self.searches.iter().filter(|search| search.resource == *name) {
                    resource["searchParam"] = search.params.iter().map(|(param, kind)| json!({"name": param, "type": kind})).collect();
                    if !search.includes.is_empty() {
                        resource["searchInclude"] = json!(search.includes);
                    }
                }
                // FHIR JSON has no empty arrays: a type served only by operations lists no interaction.
                if !interactions.is_empty() {
                    resource["interaction"] = interactions.iter().map(|code| json!({"code": code})).collect();
                }
                resource
            })
            .collect();
        let mut security = json!({
            "cors": false,
            "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}]}],
            "description": "Bearer access tokens from /v1/auth (password and TOTP multi-factor authentication), or from SMART App Launch (/.well-known/smart-configuration).",
        });
        if let Some((authorize, token)) = &self.oauth {
            security["extension"] = json!([{
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [{"url": "authorize", "valueUri": authorize}, {"url": "token", "valueUri": token}],
            }]);
        }
        let mut rest = json!({
            "mode": "server",
            "documentation": "Reads are authorized by the same grants, roles and break-glass rules as the EMR Ledger API, and every read is recorded in the patient's access log.",
            "security": security,
            "resource": resources,
        });
        if !self.system.is_empty() {
            rest["interaction"] = self.system.iter().map(|code| json!({"code": code})).collect();
        }
        let system_operations: Vec<Value> = self
            .operations
            .iter()
            .filter(|(resource, _, _)| resource.is_empty())
            .map(|(_, operation, definition)| json!({"name": operation, "definition": definition}))
            .collect();
        if !system_operations.is_empty() {
            rest["operation"] = Value::Array(system_operations);
        }
        json!({
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": date,
            "publisher": "EMR Ledger",
            "kind": "instance",
            "software": {"name": "EMR Ledger", "version": software_version},
            "fhirVersion": FHIR_VERSION,
            "format": ["json"],
            "rest": [rest],
        })
    }
}
