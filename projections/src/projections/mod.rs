//! The read models.

mod access;
mod access_log;
mod account_directory;
mod dashboard;
mod diagnosis;
mod federated;
mod patient_directory;
mod record_index;
mod search_index;
mod security;

pub use access::AccessProjection;
pub use access_log::AccessLogProjection;
pub use account_directory::AccountDirectory;
pub use dashboard::DashboardProjection;
pub use diagnosis::DiagnosisProjection;
pub use federated::FederatedProjection;
pub use patient_directory::PatientDirectory;
pub use record_index::RecordIndex;
pub use search_index::{BlindIndex, SearchIndex};
pub use security::SecurityProjection;

/// Every projection's name and checkpoint table, in the order `emr` runs them.
pub fn checkpoints() -> [(&'static str, &'static str); 10] {
    use crate::projection::Projection;
    [
        (PatientDirectory::NAME, PatientDirectory.tables()[0]),
        (RecordIndex::NAME, RecordIndex.tables()[0]),
        (AccessProjection::NAME, AccessProjection.tables()[0]),
        (DashboardProjection::NAME, DashboardProjection.tables()[0]),
        (AccessLogProjection::NAME, AccessLogProjection.tables()[0]),
        (SecurityProjection::NAME, SecurityProjection.tables()[0]),
        (FederatedProjection::NAME, FederatedProjection.tables()[0]),
        (DiagnosisProjection::NAME, DiagnosisProjection.tables()[0]),
        (SearchIndex::NAME, SearchIndex::TABLES[0]),
        (AccountDirectory::NAME, AccountDirectory.tables()[0]),
    ]
}

/// Names of every projection, in the order `emr` runs them.
pub fn all() -> [&'static str; 10] {
    checkpoints().map(|(name, _)| name)
}

/// Distinct aggregate ids, in first-seen order.
pub(crate) fn distinct(ids: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    ids.filter(|id| seen.insert(id.clone())).collect()
}

/// The snake-case name a value serializes to: a unit variant's name, or the
/// `kind` tag of a tagged one (`Basis::Grant { .. }` → `grant`).
pub(crate) fn snake<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        Ok(serde_json::Value::Object(map)) => map.get("kind").and_then(|v| v.as_str()).unwrap_or_default().to_owned(),
        _ => String::new(),
    }
}
