//! Search results as a FHIR `searchset` Bundle.

use serde_json::{Value, json};

/// One page of search matches: `self_url` names this page, `next_url` the next one
/// (when there may be more), and each entry is (its absolute URL, the resource).
pub fn searchset(self_url: &str, next_url: Option<&str>, entries: Vec<(String, Value)>) -> Value {
    let mut links = vec![json!({"relation": "self", "url": self_url})];
    if let Some(next) = next_url {
        links.push(json!({"relation": "next", "url": next}));
    }
    let entries: Vec<Value> =
        entries.into_iter().map(|(url, resource)| json!({"fullUrl": url, "resource": resource, "search": {"mode": "match"}})).collect();
    json!({"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries})
}
