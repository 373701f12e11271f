//! Search results as a FHIR `searchset` Bundle.

use serde_json::{Value, json};

/// One page of search matches: `self_url` names this page, `next_url` the next one
/// (when there may be more), and each entry is (its absolute URL, the resource).
pub fn searchset(self_url: &str, next_url: Option<&str>, entries: Vec<(String, Value)>) -> Value {
    searchset_with(self_url, next_url, entries, Vec::new())
}

/// A page of matches and the resources `_include` brought with them (each
/// entry (its absolute URL, the resource); an `OperationOutcome` as an entry of
/// mode `outcome` says what could not be included).
pub fn searchset_with(self_url: &str, next_url: Option<&str>, matches: Vec<(String, Value)>, included: Vec<(String, Value)>) -> Value {
    let mut links = vec![json!({"relation": "self", "url": self_url})];
    if let Some(next) = next_url {
        links.push(json!({"relation": "next", "url": next}));
    }
    let entry = |(url, resource): (String, Value), mode: &str| {
        let mode = if resource["resourceType"] == "OperationOutcome" { "outcome" } else { mode };
        json!({"fullUrl": url, "resource": resource, "search": {"mode": mode}})
    };
    let entries: Vec<Value> =
        matches.into_iter().map(|m| entry(m, "match")).chain(included.into_iter().map(|i| entry(i, "include"))).collect();
    json!({"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries})
}

/// One version in a `history` Bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// The resource's absolute URL (without the version).
    pub full_url: String,
    /// The resource as it was at this version (none when it cannot be shown as one,
    /// such as a deletion).
    pub resource: Option<Value>,
    /// `POST` (created), `PUT` (changed) or `DELETE` (deleted).
    pub method: &'static str,
    /// The resource's relative URL (`Encounter/<id>`).
    pub url: String,
    /// The version.
    pub version: u64,
    /// When the version was recorded.
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

/// A resource's versions, newest first, as a FHIR `history` Bundle.
pub fn history(self_url: &str, entries: Vec<HistoryEntry>) -> Value {
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|entry| {
            let status = match entry.method {
                "POST" => "201 Created",
                "DELETE" => "204 No Content",
                _ => "200 OK",
            };
            let mut value = json!({
                "fullUrl": entry.full_url,
                "request": {"method": entry.method, "url": entry.url},
                "response": {
                    "status": status,
                    "etag": format!("W/\"{}\"", entry.version),
                    "lastModified": entry.last_modified.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                },
            });
            if let Some(resource) = entry.resource {
                value["resource"] = resource;
            }
            value
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": "history",
        "total": entries.len(),
        "link": [{"relation": "self", "url": self_url}],
        "entry": entries,
    })
}
