//! Queries on the read models: what dashboards and clinical systems ask.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::db::{ReadModelDb, Value};
use crate::error::ProjectionError;

/// Filters of the record index (the seed's indexes in 6.2.1 serve them).
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RecordFilter {
    /// Only this patient's records.
    pub patient_id: Option<uuid::Uuid>,
    /// Only this record type (snake_case, e.g. `lab_result`).
    pub record_type: Option<String>,
    /// `active` or `deleted`.
    pub status: Option<String>,
    /// Visits on or after.
    pub visit_from: Option<NaiveDate>,
    /// Visits on or before.
    pub visit_to: Option<NaiveDate>,
    /// Only this record.
    pub record_id: Option<uuid::Uuid>,
    /// Changed at or after.
    pub updated_from: Option<DateTime<Utc>>,
    /// Changed before (exclusive).
    pub updated_before: Option<DateTime<Utc>>,
    /// Only records whose latest content has one of these search-index terms
    /// (`emr_projections::BlindIndex::term` of a diagnosis code). `Some` and empty
    /// matches nothing.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", param(ignore))]
    pub terms: Option<Vec<String>>,
    /// Order of the page (default: most recent visit first).
    #[cfg_attr(feature = "openapi", param(inline))]
    pub sort: Option<RecordSort>,
    /// Page size (1–500, default 50).
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u32>,
}

/// How the record index is ordered; each order is served by an index of 6.2.1.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordSort {
    /// Most recent visit first.
    #[default]
    VisitDateDesc,
    /// Oldest visit first.
    VisitDateAsc,
    /// Most recently changed first.
    UpdatedDesc,
    /// Least recently changed first.
    UpdatedAsc,
}

impl RecordSort {
    fn order_by(self) -> &'static str {
        match self {
            Self::VisitDateDesc => " ORDER BY visit_date DESC, record_id",
            Self::VisitDateAsc => " ORDER BY visit_date ASC, record_id",
            Self::UpdatedDesc => " ORDER BY updated_at DESC, record_id",
            Self::UpdatedAsc => " ORDER BY updated_at ASC, record_id",
        }
    }
}

/// One record in the index.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RecordSummary {
    /// Record id.
    pub record_id: String,
    /// Patient id.
    pub patient_id: String,
    /// Responsible doctor.
    pub doctor_id: String,
    /// Hospital.
    pub hospital_id: String,
    /// Record type.
    pub record_type: String,
    /// Visit date.
    pub visit_date: NaiveDate,
    /// `active` or `deleted`.
    pub status: String,
    /// Current content version.
    pub content_version: u32,
    /// Attachments.
    pub attachment_count: u32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Log position of the last change.
    pub position: u64,
}

/// `WHERE` conditions with their parameters, built up one filter at a time.
#[derive(Default)]
struct Conditions {
    sql: String,
    params: Vec<Value>,
}

impl Conditions {
    fn and(&mut self, condition: &str, value: Option<impl Into<Value>>) {
        if let Some(value) = value {
            self.sql.push_str(" AND ");
            self.sql.push_str(condition);
            self.params.push(value.into());
        }
    }

    /// `AND <prefix>(?, ?, …)<suffix>` over `values`; an empty list matches nothing.
    fn and_in(&mut self, prefix: &str, suffix: &str, values: Option<&[String]>) {
        match values {
            None => {}
            Some([]) => self.sql.push_str(" AND 1 = 0"),
            Some(values) => {
                self.sql.push_str(&format!(" AND {prefix}({}){suffix}", vec!["?"; values.len()].join(", ")));
                self.params.extend(values.iter().map(Value::from));
            }
        }
    }

    /// The conditions, an order, and a page.
    fn page(mut self, order_by: &str, limit: Option<u32>, offset: Option<u32>) -> (String, Vec<Value>) {
        self.params.push(limit.unwrap_or(50).clamp(1, 500).into());
        self.params.push(offset.unwrap_or(0).into());
        (format!(" WHERE 1 = 1{}{order_by} LIMIT ? OFFSET ?", self.sql), self.params)
    }
}

/// Records matching `filter`, most recent visit first.
pub async fn records(db: &ReadModelDb, filter: &RecordFilter) -> Result<Vec<RecordSummary>, ProjectionError> {
    let mut conditions = Conditions::default();
    conditions.and("patient_id = ?", filter.patient_id.map(|id| id.hyphenated().to_string()));
    conditions.and("record_type = ?", filter.record_type.as_ref());
    conditions.and("status = ?", filter.status.as_ref());
    conditions.and("visit_date >= ?", filter.visit_from);
    conditions.and("visit_date <= ?", filter.visit_to);
    conditions.and("record_id = ?", filter.record_id.map(|id| id.hyphenated().to_string()));
    conditions.and("updated_at >= ?", filter.updated_from);
    conditions.and("updated_at < ?", filter.updated_before);
    conditions.and_in("record_id IN (SELECT record_id FROM record_search_terms WHERE term IN ", ")", filter.terms.as_deref());
    let (clauses, params) = conditions.page(filter.sort.unwrap_or_default().order_by(), filter.limit, filter.offset);
    let sql = format!(
        "SELECT record_id, patient_id, doctor_id, hospital_id, record_type, visit_date, status, content_version, attachment_count, \
         created_at, updated_at, position FROM medical_records{clauses}"
    );
    db.fetch_all(&sql, params).await
}

/// Dashboard figures.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dashboard {
    /// Records created per type per day: `(record_type, day, records)`.
    pub records_per_type_per_day: Vec<(String, NaiveDate, u64)>,
    /// Patients per hospital: `(hospital_id, active, erased)`.
    pub patients_per_hospital: Vec<(String, i64, i64)>,
    /// Grants active now (unrevoked, unexpired).
    pub active_grants: i64,
}

/// The dashboard figures, `days` days back.
pub async fn dashboard(db: &ReadModelDb, days: u32) -> Result<Dashboard, ProjectionError> {
    let now = Utc::now();
    let since = (now - chrono::Duration::days(i64::from(days))).date_naive();
    let records_per_type_per_day = db
        .fetch_all(
            "SELECT record_type, day, records FROM records_per_type_per_day WHERE day >= ? ORDER BY day, record_type",
            vec![since.into()],
        )
        .await?;
    let patients_per_hospital = db
        .fetch_all("SELECT hospital_id, active_patients, erased_patients FROM patients_per_hospital ORDER BY hospital_id", vec![])
        .await?;
    let (active_grants,) =
        db.fetch_one("SELECT COUNT(*) FROM access_grants WHERE status = 'active' AND expires_at > ?", vec![now.into()]).await?;
    Ok(Dashboard { records_per_type_per_day, patients_per_hospital, active_grants })
}

/// Filter of the accounting of disclosures.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct AccessLogFilter {
    /// Whose PHI (required for patients and practitioners).
    pub patient_id: Option<uuid::Uuid>,
    /// Who read it.
    pub accessor_id: Option<uuid::Uuid>,
    /// Only break-glass reads (`break_glass`), grant reads (`grant`), …
    pub basis: Option<String>,
    /// Disclosures at or after this instant (an accounting period's start).
    pub from: Option<DateTime<Utc>>,
    /// Disclosures before this instant (the period's end, exclusive).
    pub to: Option<DateTime<Utc>>,
    /// Page size (1–500, default 50).
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u32>,
}

/// One disclosure of PHI.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AccessLogEntry {
    /// The disclosure.
    pub disclosure_id: String,
    /// Whose PHI.
    pub patient_id: String,
    /// Who read it.
    pub accessor_id: String,
    /// In which role.
    pub accessor_role: String,
    /// `patient` or `record`.
    pub resource: String,
    /// The record, for record reads.
    pub record_id: Option<String>,
    /// `own_record`, `author`, `grant`, `break_glass`, `role`.
    pub basis: String,
    /// The grant, for grant reads.
    pub grant_id: Option<String>,
    /// When.
    pub accessed_at: DateTime<Utc>,
    /// Log position of the disclosure.
    pub position: u64,
}

/// Disclosures matching `filter`, most recent first.
pub async fn access_log(db: &ReadModelDb, filter: &AccessLogFilter) -> Result<Vec<AccessLogEntry>, ProjectionError> {
    let mut conditions = Conditions::default();
    conditions.and("patient_id = ?", filter.patient_id.map(|id| id.hyphenated().to_string()));
    conditions.and("accessor_id = ?", filter.accessor_id.map(|id| id.hyphenated().to_string()));
    conditions.and("basis = ?", filter.basis.as_ref());
    conditions.and("accessed_at >= ?", filter.from);
    conditions.and("accessed_at < ?", filter.to);
    let (clauses, params) = conditions.page(" ORDER BY accessed_at DESC, disclosure_id", filter.limit, filter.offset);
    let sql = format!(
        "SELECT disclosure_id, patient_id, accessor_id, accessor_role, resource, record_id, basis, grant_id, accessed_at, position \
         FROM access_log{clauses}"
    );
    db.fetch_all(&sql, params).await
}

/// Ids of active (registered, not erased) patients, in id order, a page at a time.
pub async fn active_patient_ids(db: &ReadModelDb, limit: u32, offset: u32) -> Result<Vec<String>, ProjectionError> {
    let sql = "SELECT patient_id FROM patients WHERE status = 'active' ORDER BY patient_id LIMIT ? OFFSET ?";
    let rows: Vec<(String,)> = db.fetch_all(sql, vec![Value::from(u64::from(limit.clamp(1, 500))), Value::from(u64::from(offset))]).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Whose data a bulk export covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportScope {
    /// Every active patient.
    Everyone,
    /// The patients who granted this user access that is active and unexpired.
    GrantedTo(uuid::Uuid),
    /// One patient (exporting their own data).
    Only(uuid::Uuid),
    /// Every active patient a hospital registered (a `Group` export).
    Hospital(String),
}

impl ExportScope {
    /// The condition on `patients p` that keeps the scope's patients, and its parameters.
    fn condition(&self, now: DateTime<Utc>) -> (&'static str, Vec<Value>) {
        match self {
            Self::Everyone => ("", Vec::new()),
            Self::GrantedTo(user) => (
                " AND EXISTS (SELECT 1 FROM access_grants g WHERE g.patient_id = p.patient_id AND g.grantee = ? AND g.status = 'active' AND g.expires_at > ?)",
                vec![Value::from(user.hyphenated().to_string()), Value::from(now)],
            ),
            Self::Hospital(hospital) => (" AND p.hospital_id = ?", vec![Value::from(hospital.clone())]),
            Self::Only(patient) => (" AND p.patient_id = ?", vec![Value::from(patient.hyphenated().to_string())]),
        }
    }
}

/// The next `limit` active patients of `scope`, in id order after `after`, with
/// when each last changed: the pages of a bulk export.
pub async fn export_candidates(
    db: &ReadModelDb,
    scope: ExportScope,
    now: DateTime<Utc>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<(String, DateTime<Utc>)>, ProjectionError> {
    let (condition, mut params) = scope.condition(now);
    let sql = format!(
        "SELECT p.patient_id, p.updated_at FROM patients p WHERE p.status = 'active'{condition} AND p.patient_id > ? ORDER BY p.patient_id LIMIT ?"
    );
    params.push(Value::from(after.unwrap_or_default().to_owned()));
    params.push(Value::from(u64::from(limit.clamp(1, 1000))));
    db.fetch_all(&sql, params).await
}

/// A search of the patient index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientQuery {
    /// Whose patients may be found at all.
    pub scope: ExportScope,
    /// Terms (`BlindIndex::term`): a patient matches when, for every group, they
    /// have at least one of its terms. An empty group matches nobody.
    pub groups: Vec<Vec<String>>,
    /// Only these patient ids (`_id`), when given.
    pub ids: Option<Vec<String>>,
    /// Changed at or after.
    pub updated_from: Option<DateTime<Utc>>,
    /// Changed before (exclusive).
    pub updated_before: Option<DateTime<Utc>>,
    /// `None`: id order; `Some(true)`: most recently changed first; `Some(false)`: least.
    pub newest_first: Option<bool>,
    /// Page size (1–500).
    pub limit: u32,
    /// Matches to skip.
    pub offset: u32,
}

/// Active patients matching `query`, in id order, a page at a time.
pub async fn search_patients(db: &ReadModelDb, query: &PatientQuery, now: DateTime<Utc>) -> Result<Vec<String>, ProjectionError> {
    let (scope, scope_params) = query.scope.condition(now);
    let mut conditions = Conditions::default();
    conditions.sql.push_str(" AND p.status = 'active'");
    conditions.sql.push_str(scope);
    conditions.params.extend(scope_params);
    conditions.and_in("p.patient_id IN ", "", query.ids.as_deref());
    for group in &query.groups {
        conditions.and_in("p.patient_id IN (SELECT t.patient_id FROM patient_search_terms t WHERE t.term IN ", ")", Some(group));
    }
    conditions.and("p.updated_at >= ?", query.updated_from);
    conditions.and("p.updated_at < ?", query.updated_before);
    let order = match query.newest_first {
        None => " ORDER BY p.patient_id",
        Some(true) => " ORDER BY p.updated_at DESC, p.patient_id",
        Some(false) => " ORDER BY p.updated_at ASC, p.patient_id",
    };
    let (clauses, params) = conditions.page(order, Some(query.limit), Some(query.offset));
    let rows: Vec<(String,)> = db.fetch_all(&format!("SELECT p.patient_id FROM patients p{clauses}"), params).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Ids of a patient's access grants and requests (a request keeps its id when it
/// is approved), newest first, a page at a time.
pub async fn grant_ids_of_patient(
    db: &ReadModelDb,
    patient_id: uuid::Uuid,
    limit: u32,
    offset: u32,
) -> Result<Vec<String>, ProjectionError> {
    grant_ids_where(db, ("patient_id", "patient_id"), patient_id, limit, offset).await
}

/// The ids of the grants made to a user and of the access requests they made
/// that are not yet approved (an approved one is a grant), newest first.
pub async fn grant_ids_of_grantee(db: &ReadModelDb, user_id: uuid::Uuid, limit: u32, offset: u32) -> Result<Vec<String>, ProjectionError> {
    grant_ids_where(db, ("grantee", "requester"), user_id, limit, offset).await
}

/// Grant and request ids whose `columns` (of `access_grants`, of
/// `access_requests`) equal `id`, newest first.
async fn grant_ids_where(
    db: &ReadModelDb,
    (grants_column, requests_column): (&'static str, &'static str),
    id: uuid::Uuid,
    limit: u32,
    offset: u32,
) -> Result<Vec<String>, ProjectionError> {
    let sql = format!(
        "SELECT grant_id FROM (\
           SELECT grant_id, granted_at AS opened_at FROM access_grants WHERE {grants_column} = ? \
           UNION SELECT grant_id, requested_at AS opened_at FROM access_requests WHERE {requests_column} = ? AND status <> 'approved'\
         ) AS opened ORDER BY opened_at DESC, grant_id LIMIT ? OFFSET ?"
    );
    let id = Value::from(id.hyphenated().to_string());
    let params = vec![id.clone(), id, Value::from(u64::from(limit.clamp(1, 500))), Value::from(u64::from(offset))];
    let rows: Vec<(String,)> = db.fetch_all(&sql, params).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Filter of the security events.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SecurityEventFilter {
    /// `open`, `acknowledged`, `investigating` or `resolved`.
    pub status: Option<String>,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: Option<String>,
    /// A kind (`brute_force`, `break_glass_use`, …).
    pub kind: Option<String>,
    /// The account concerned.
    pub user_id: Option<uuid::Uuid>,
    /// The patient concerned.
    pub patient_id: Option<uuid::Uuid>,
    /// Raised at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Raised before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Page size (1–500, default 50).
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u32>,
}

/// One security event as officers triage it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct SecurityEventRow {
    /// The security event.
    pub security_event_id: String,
    /// What was detected.
    pub kind: String,
    /// How urgent.
    pub severity: String,
    /// The account concerned.
    pub user_id: Option<String>,
    /// The patient concerned.
    pub patient_id: Option<String>,
    /// The client address concerned.
    pub client: Option<String>,
    /// The user's risk score when it was raised.
    pub risk_score: f64,
    /// What the rule saw (no PHI).
    pub summary: String,
    /// JSON array of `{position, event_id}`: the log events it rests on.
    pub evidence: String,
    /// Responses carried out, comma-separated.
    pub responses: String,
    /// Triage status.
    pub status: String,
    /// The investigator.
    pub assignee: Option<String>,
    /// `true_positive` or `false_positive`, once resolved.
    pub outcome: Option<String>,
    /// When it was raised.
    pub raised_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Log position of its last change.
    pub position: u64,
}

const SECURITY_COLUMNS: &str = "security_event_id, kind, severity, user_id, patient_id, client, risk_score, summary, evidence, \
     responses, status, assignee, outcome, raised_at, updated_at, position";

/// Security events matching `filter`, most recent first.
pub async fn security_events(db: &ReadModelDb, filter: &SecurityEventFilter) -> Result<Vec<SecurityEventRow>, ProjectionError> {
    let mut conditions = Conditions::default();
    conditions.and("status = ?", filter.status.as_ref());
    conditions.and("severity = ?", filter.severity.as_ref());
    conditions.and("kind = ?", filter.kind.as_ref());
    conditions.and("user_id = ?", filter.user_id.map(|id| id.hyphenated().to_string()));
    conditions.and("patient_id = ?", filter.patient_id.map(|id| id.hyphenated().to_string()));
    conditions.and("raised_at >= ?", filter.from);
    conditions.and("raised_at < ?", filter.to);
    let (clauses, params) = conditions.page(" ORDER BY raised_at DESC, security_event_id", filter.limit, filter.offset);
    db.fetch_all(&format!("SELECT {SECURITY_COLUMNS} FROM security_events{clauses}"), params).await
}

/// One security event.
pub async fn security_event(db: &ReadModelDb, id: &str) -> Result<Option<SecurityEventRow>, ProjectionError> {
    let sql = format!("SELECT {SECURITY_COLUMNS} FROM security_events WHERE security_event_id = ?");
    Ok(db.fetch_all(&sql, vec![Value::from(id)]).await?.pop())
}

/// A user's risk score as the detector last set it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RiskRow {
    /// The account.
    pub user_id: String,
    /// The score at `as_of`.
    pub score: f64,
    /// When it was last raised.
    pub as_of: DateTime<Utc>,
    /// Detections counted.
    pub detections: u64,
}

/// Every user with a risk score, highest last-set score first.
pub async fn risk_scores(db: &ReadModelDb, limit: u32) -> Result<Vec<RiskRow>, ProjectionError> {
    let sql = "SELECT user_id, score, as_of, detections FROM security_risk ORDER BY score DESC, user_id LIMIT ?";
    db.fetch_all(sql, vec![Value::from(u64::from(limit.clamp(1, 1000)))]).await
}

/// A record as retention sees it: whose, what type, where and when.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RetentionRow {
    /// The patient.
    pub patient_id: String,
    /// `consultation`, `imaging`, …
    pub record_type: String,
    /// The hospital of the visit.
    pub hospital_id: String,
    /// The visit date.
    pub visit_date: chrono::NaiveDate,
}

/// Every record of `patient_id`, deleted ones included (retention still applies to them).
pub async fn records_for_retention(db: &ReadModelDb, patient_id: &str) -> Result<Vec<RetentionRow>, ProjectionError> {
    let sql = "SELECT patient_id, record_type, hospital_id, visit_date FROM medical_records WHERE patient_id = ?";
    db.fetch_all(sql, vec![Value::from(patient_id)]).await
}

/// Every record of every active patient, by patient (for the retention review queue).
pub async fn active_patients_records(db: &ReadModelDb) -> Result<Vec<RetentionRow>, ProjectionError> {
    let sql = "SELECT m.patient_id, m.record_type, m.hospital_id, m.visit_date FROM medical_records m \
               JOIN patients p ON p.patient_id = m.patient_id WHERE p.status = 'active' ORDER BY m.patient_id";
    db.fetch_all(sql, vec![]).await
}

/// Disclosures in a period, per basis.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct BasisCount {
    /// The basis.
    pub basis: String,
    /// Disclosures on it.
    pub disclosures: i64,
}

/// Disclosures in `[from, to)`, per basis.
pub async fn disclosures_by_basis(db: &ReadModelDb, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<BasisCount>, ProjectionError> {
    let sql =
        "SELECT basis, COUNT(*) AS disclosures FROM access_log WHERE accessed_at >= ? AND accessed_at < ? GROUP BY basis ORDER BY basis";
    db.fetch_all(sql, vec![Value::from(from), Value::from(to)]).await
}

/// One refused access.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DenialRow {
    /// The denial.
    pub denial_id: String,
    /// Who was refused.
    pub actor_id: String,
    /// In which role.
    pub actor_role: String,
    /// What they tried.
    pub action: String,
    /// Whose data.
    pub patient_id: Option<String>,
    /// Why (`no_active_grant`, `role_not_permitted`, …).
    pub reason: String,
    /// When.
    pub denied_at: DateTime<Utc>,
}

/// Refused accesses in `[from, to)`, newest first, at most `limit`.
pub async fn denials(db: &ReadModelDb, from: DateTime<Utc>, to: DateTime<Utc>, limit: u32) -> Result<Vec<DenialRow>, ProjectionError> {
    let sql = "SELECT denial_id, actor_id, actor_role, action, patient_id, reason, denied_at FROM access_denials \
               WHERE denied_at >= ? AND denied_at < ? ORDER BY denied_at DESC, denial_id LIMIT ?";
    db.fetch_all(sql, vec![Value::from(from), Value::from(to), Value::from(u64::from(limit))]).await
}

/// Break-glass reads in `[from, to)` not justified by `justified_before`, oldest first.
pub async fn unjustified_break_glass(
    db: &ReadModelDb,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<AccessLogEntry>, ProjectionError> {
    let sql = "SELECT disclosure_id, patient_id, accessor_id, accessor_role, resource, record_id, basis, grant_id, accessed_at, position \
               FROM access_log WHERE basis = 'break_glass' AND justified_at IS NULL AND accessed_at >= ? AND accessed_at < ? \
               ORDER BY accessed_at, disclosure_id LIMIT ?";
    db.fetch_all(sql, vec![Value::from(from), Value::from(to), Value::from(u64::from(limit))]).await
}

/// Reads in `[from, to)` per role and resource (for the minimum-necessary review).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RoleResourceCount {
    /// The reader's role.
    pub accessor_role: String,
    /// `patient`, `record` or `attachment`.
    pub resource: String,
    /// How many reads.
    pub read_count: i64,
    /// How many readers.
    pub readers: i64,
}

/// Reads in `[from, to)` grouped by role and resource.
pub async fn reads_by_role_and_resource(
    db: &ReadModelDb,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<RoleResourceCount>, ProjectionError> {
    let sql = "SELECT accessor_role, resource, COUNT(*) AS read_count, COUNT(DISTINCT accessor_id) AS readers FROM access_log \
               WHERE accessed_at >= ? AND accessed_at < ? GROUP BY accessor_role, resource ORDER BY accessor_role, resource";
    db.fetch_all(sql, vec![Value::from(from), Value::from(to)]).await
}

/// How security officers resolved one kind of security event.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct OutcomeCount {
    /// The kind.
    pub kind: String,
    /// Raised.
    pub raised: i64,
    /// Resolved as true positives.
    pub true_positives: i64,
    /// Resolved as false positives.
    pub false_positives: i64,
}

/// Per kind: raised, and resolved as true or false positives, in `[from, to)`.
pub async fn outcomes(db: &ReadModelDb, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Vec<OutcomeCount>, ProjectionError> {
    let sql = "SELECT kind, COUNT(*) AS raised, \
               CAST(COALESCE(SUM(CASE WHEN outcome = 'true_positive' THEN 1 ELSE 0 END), 0) AS SIGNED) AS true_positives, \
               CAST(COALESCE(SUM(CASE WHEN outcome = 'false_positive' THEN 1 ELSE 0 END), 0) AS SIGNED) AS false_positives \
               FROM security_events WHERE raised_at >= ? AND raised_at < ? GROUP BY kind ORDER BY kind";
    let sql = match db.dialect() {
        crate::db::Dialect::MySql => sql.to_owned(),
        crate::db::Dialect::Sqlite => sql.replace("AS SIGNED", "AS INTEGER"),
    };
    db.fetch_all(&sql, vec![Value::from(from), Value::from(to)]).await
}

/// One federated task as dashboards list it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FederatedTaskRow {
    /// The task.
    pub task_id: String,
    /// Its name.
    pub name: String,
    /// The aggregation strategy.
    pub strategy: String,
    /// created, running, completed, budget_exhausted, cancelled or failed.
    pub status: String,
    /// Hospitals enrolled.
    pub hospitals: u64,
    /// Rounds planned.
    pub rounds: u64,
    /// Rounds aggregated.
    pub rounds_aggregated: u64,
    /// The round open for updates.
    pub open_round: Option<u64>,
    /// The ε budget, for a private task.
    pub epsilon_budget: Option<f64>,
    /// ε spent so far.
    pub epsilon_spent: Option<f64>,
    /// 1 under secure aggregation.
    pub secure_aggregation: i64,
    /// SHA-256 of the current global model.
    pub model_sha256: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Log position of its last change.
    pub position: u64,
}

/// One round of a federated task.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FederatedRoundRow {
    /// The round.
    pub round: u64,
    /// open, aggregated or refused (over the ε budget).
    pub status: String,
    /// SHA-256 of the model hospitals trained from.
    pub trained_from: Option<String>,
    /// Updates received.
    pub updates: u64,
    /// Under secure aggregation: advertising, sharing, masking or unmasking.
    pub secure_step: Option<String>,
    /// SHA-256 of the model it made.
    pub model_sha256: Option<String>,
    /// ε after it (for a refused round: what it would have reached).
    pub epsilon: Option<f64>,
    /// The coordinator's held-out loss.
    pub loss: Option<f64>,
    /// The coordinator's held-out accuracy.
    pub accuracy: Option<f64>,
    /// The coordinator's held-out AUC.
    pub auc: Option<f64>,
    /// When it opened.
    pub opened_at: DateTime<Utc>,
    /// When it was aggregated.
    pub aggregated_at: Option<DateTime<Utc>>,
}

/// One hospital's update, with the figures it reported on its own rows.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FederatedUpdateRow {
    /// The round.
    pub round: u64,
    /// The hospital.
    pub hospital: String,
    /// Rows it trained on.
    pub samples: u64,
    /// SHA-256 of the update.
    pub sha256: String,
    /// Its reported loss.
    pub loss: Option<f64>,
    /// Its reported accuracy.
    pub accuracy: Option<f64>,
    /// Its reported AUC.
    pub auc: Option<f64>,
    /// When it arrived.
    pub submitted_at: DateTime<Utc>,
}

/// Federated tasks, most recently changed first, optionally of one status.
pub async fn federated_tasks(db: &ReadModelDb, status: Option<&str>, limit: u32) -> Result<Vec<FederatedTaskRow>, ProjectionError> {
    let mut conditions = Conditions::default();
    conditions.and("status = ?", status);
    let (clauses, params) = conditions.page(" ORDER BY updated_at DESC, task_id", Some(limit), None);
    let sql = format!(
        "SELECT task_id, name, strategy, status, hospitals, rounds, rounds_aggregated, open_round, epsilon_budget, epsilon_spent, \
         secure_aggregation, model_sha256, created_at, updated_at, position FROM federated_tasks{clauses}"
    );
    db.fetch_all(&sql, params).await
}

/// A task's rounds and updates, in round order.
pub async fn federated_rounds(
    db: &ReadModelDb,
    task_id: &str,
) -> Result<(Vec<FederatedRoundRow>, Vec<FederatedUpdateRow>), ProjectionError> {
    let rounds = db
        .fetch_all(
            "SELECT round, status, trained_from, updates, secure_step, model_sha256, epsilon, loss, accuracy, auc, opened_at, aggregated_at \
             FROM federated_rounds WHERE task_id = ? ORDER BY round",
            vec![Value::from(task_id)],
        )
        .await?;
    let updates = db
        .fetch_all(
            "SELECT round, hospital, samples, sha256, loss, accuracy, auc, submitted_at FROM federated_updates \
             WHERE task_id = ? ORDER BY round, hospital",
            vec![Value::from(task_id)],
        )
        .await?;
    Ok((rounds, updates))
}

/// A diagnostic model's figures: the accuracy it was validated at and how
/// physicians' reviews have judged its suggestions since.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ModelAccuracyRow {
    /// The model's registry id.
    pub model_id: String,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// SHA-256 of its artifact.
    pub sha256: String,
    /// registered, active or retired.
    pub status: String,
    /// The accuracy of its latest validation.
    pub validated_accuracy: Option<f64>,
    /// Suggestions it made.
    pub suggestions: i64,
    /// Suggestions a physician reviewed.
    pub reviewed: i64,
    /// Reviewed suggestions accepted as they were.
    pub accepted: i64,
}

impl ModelAccuracyRow {
    /// Accepted among reviewed; none before any review.
    pub fn reviewed_accuracy(&self) -> Option<f64> {
        (self.reviewed > 0).then(|| self.accepted as f64 / self.reviewed as f64)
    }
}

/// Every registered model with its validated and reviewed figures.
pub async fn model_accuracy(db: &ReadModelDb) -> Result<Vec<ModelAccuracyRow>, ProjectionError> {
    let sql = "SELECT m.model_id, m.name, m.version, m.sha256, m.status, m.validated_accuracy, \
               COUNT(s.suggestion_id) AS suggestions, COUNT(s.outcome) AS reviewed, \
               COUNT(CASE WHEN s.outcome = 'accepted' THEN 1 END) AS accepted \
               FROM diagnosis_models m LEFT JOIN diagnosis_suggestions s ON s.model_sha256 = m.sha256 \
               GROUP BY m.model_id, m.name, m.version, m.sha256, m.status, m.validated_accuracy ORDER BY m.name, m.version";
    db.fetch_all(sql, Vec::new()).await
}

/// One suggestion as dashboards list it (no finding: that is PHI).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct SuggestionRow {
    /// The suggestion.
    pub suggestion_id: String,
    /// The record.
    pub record_id: String,
    /// The attachment the model read.
    pub attachment_id: String,
    /// The model's name.
    pub model_name: String,
    /// Its version.
    pub model_version: String,
    /// SHA-256 of its artifact.
    pub model_sha256: String,
    /// 1 when an explanation image was stored.
    pub explained: i64,
    /// Who asked for it.
    pub suggested_by: String,
    /// When.
    pub suggested_at: DateTime<Utc>,
    /// accepted, rejected or corrected; none until reviewed.
    pub outcome: Option<String>,
    /// The reviewing physician.
    pub reviewer_id: Option<String>,
    /// When it was reviewed.
    pub reviewed_at: Option<DateTime<Utc>>,
    /// Log position of its last change.
    pub position: u64,
}

/// Suggestions, newest first: of one record, or awaiting review (`pending`).
pub async fn suggestions(
    db: &ReadModelDb,
    record_id: Option<&str>,
    pending: bool,
    limit: u32,
) -> Result<Vec<SuggestionRow>, ProjectionError> {
    let mut conditions = Conditions::default();
    conditions.and("record_id = ?", record_id);
    if pending {
        conditions.sql.push_str(" AND outcome IS NULL");
    }
    let (clauses, params) = conditions.page(" ORDER BY suggested_at DESC, suggestion_id", Some(limit), None);
    let sql = format!(
        "SELECT suggestion_id, record_id, attachment_id, model_name, model_version, model_sha256, explained, suggested_by, suggested_at, \
         outcome, reviewer_id, reviewed_at, position FROM diagnosis_suggestions{clauses}"
    );
    db.fetch_all(&sql, params).await
}

/// The record an attachment belongs to, if the read model has seen it.
pub async fn record_of_attachment(db: &ReadModelDb, attachment_id: &str) -> Result<Option<String>, ProjectionError> {
    let rows: Vec<(String,)> =
        db.fetch_all("SELECT record_id FROM attachments WHERE attachment_id = ?", vec![Value::from(attachment_id)]).await?;
    Ok(rows.into_iter().next().map(|(record_id,)| record_id))
}

/// The record a suggestion is on.
pub async fn record_of_suggestion(db: &ReadModelDb, suggestion_id: &str) -> Result<Option<String>, ProjectionError> {
    let rows: Vec<(String,)> =
        db.fetch_all("SELECT record_id FROM diagnosis_suggestions WHERE suggestion_id = ?", vec![Value::from(suggestion_id)]).await?;
    Ok(rows.into_iter().next().map(|(record_id,)| record_id))
}

/// Filter of the account list.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct AccountFilter {
    /// physician, nurse, patient, admin, auditor, researcher or hospital.
    pub role: Option<String>,
    /// active or deactivated.
    pub status: Option<String>,
    /// The start of the username.
    pub username: Option<String>,
    /// Page size (1–500, default 50).
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u32>,
}

/// One account as administrators list it (no secrets, no profile).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountRow {
    /// The account.
    pub user_id: String,
    /// Its login name.
    pub username: String,
    /// Its role.
    pub role: String,
    /// active or deactivated.
    pub status: String,
    /// 1 once MFA is on.
    pub mfa_enabled: i64,
    /// End of a lockout after failed logins (it may lie in the past).
    pub locked_until: Option<DateTime<Utc>>,
    /// 1 while threat detection holds the account until an administrator lifts it.
    pub suspended: i64,
    /// When it was opened.
    pub registered_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Log position of its last change.
    pub position: u64,
}

/// Accounts matching `filter`, by username.
pub async fn accounts(db: &ReadModelDb, filter: &AccountFilter) -> Result<Vec<AccountRow>, ProjectionError> {
    let mut conditions = Conditions::default();
    conditions.and("role = ?", filter.role.as_ref());
    conditions.and("status = ?", filter.status.as_ref());
    // `!` escapes LIKE's wildcards (usernames hold `_`, never `!`) the same way in MySQL and SQLite.
    let prefix =
        filter.username.as_ref().map(|start| format!("{}%", start.to_lowercase().replace('!', "!!").replace('%', "!%").replace('_', "!_")));
    conditions.and("username LIKE ? ESCAPE '!'", prefix);
    let (clauses, params) = conditions.page(" ORDER BY username, user_id", filter.limit, filter.offset);
    let sql = format!(
        "SELECT user_id, username, role, status, mfa_enabled, locked_until, suspended, registered_at, updated_at, position FROM accounts{clauses}"
    );
    db.fetch_all(&sql, params).await
}
