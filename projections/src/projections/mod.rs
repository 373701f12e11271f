//! The read models.

mod access;
mod access_log;
mod dashboard;
mod patient_directory;
mod record_index;

pub use access::AccessProjection;
pub use access_log::AccessLogProjection;
pub use dashboard::DashboardProjection;
pub use patient_directory::PatientDirectory;
pub use record_index::RecordIndex;

/// Names of every projection, in the order `emr` runs them.
pub fn all() -> [&'static str; 5] {
    [PatientDirectory::NAME, RecordIndex::NAME, AccessProjection::NAME, DashboardProjection::NAME, AccessLogProjection::NAME]
}

/// Distinct aggregate ids, in first-seen order.
pub(crate) fn distinct(ids: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    ids.filter(|id| seen.insert(id.clone())).collect()
}
