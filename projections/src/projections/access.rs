//! `access_grants` and `access_requests`: who may read whose records until when,
//! and who asked. Reasons are PHI and stay sealed in the log.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use emr_domain::grant::{GrantEvent, Scope};

use super::distinct;
use crate::db::Tx;
use crate::decode::{Fact, Payload};
use crate::error::ProjectionError;
use crate::projection::Projection;
use crate::sql::{Upsert, load_by_key, values};

/// Access grants and requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessProjection;

impl AccessProjection {
    /// Its name.
    pub const NAME: &'static str = "access";
}

const GRANTS: Upsert = Upsert {
    table: "access_grants",
    columns: &[
        "grant_id",
        "patient_id",
        "grantee",
        "scopes",
        "status",
        "granted_by",
        "granted_at",
        "expires_at",
        "revoked_at",
        "version",
        "position",
    ],
    key: &["grant_id"],
    replace: &["status", "revoked_at", "version", "position"],
    add: &[],
};

const REQUESTS: Upsert = Upsert {
    table: "access_requests",
    columns: &[
        "grant_id",
        "patient_id",
        "requester",
        "scopes",
        "status",
        "requested_at",
        "requested_until",
        "decided_at",
        "decided_by",
        "version",
        "position",
    ],
    key: &["grant_id"],
    replace: &["status", "decided_at", "decided_by", "version", "position"],
    add: &[],
};

#[derive(Debug, Clone, sqlx::FromRow)]
struct GrantRow {
    grant_id: String,
    patient_id: String,
    grantee: String,
    scopes: String,
    status: String,
    granted_by: String,
    granted_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    version: u64,
    position: u64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct RequestRow {
    grant_id: String,
    patient_id: String,
    requester: String,
    scopes: String,
    status: String,
    requested_at: DateTime<Utc>,
    requested_until: DateTime<Utc>,
    decided_at: Option<DateTime<Utc>>,
    decided_by: Option<String>,
    version: u64,
    position: u64,
}

fn scope_list(scopes: &BTreeSet<Scope>) -> String {
    scopes
        .iter()
        .map(|s| match s {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Share => "share",
            Scope::Delegate => "delegate",
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl Projection for AccessProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["access_checkpoint", "access_grants", "access_requests"]
    }

    async fn apply(&self, tx: &mut Tx, facts: &[Fact]) -> Result<(), ProjectionError> {
        let events: Vec<(&Fact, &GrantEvent)> =
            facts.iter().filter_map(|f| if let Payload::Grant(e) = &f.payload { Some((f, e)) } else { None }).collect();
        if events.is_empty() {
            return Ok(());
        }
        let ids = distinct(events.iter().map(|(f, _)| f.aggregate_id.clone()));
        let mut grants: HashMap<String, GrantRow> = load_by_key(
            tx,
            "SELECT grant_id, patient_id, grantee, scopes, status, granted_by, granted_at, expires_at, revoked_at, version, position \
             FROM access_grants WHERE grant_id IN ",
            &ids,
            |row: &GrantRow| row.grant_id.clone(),
        )
        .await?;
        let mut requests: HashMap<String, RequestRow> = load_by_key(
            tx,
            "SELECT grant_id, patient_id, requester, scopes, status, requested_at, requested_until, decided_at, decided_by, version, position \
             FROM access_requests WHERE grant_id IN ",
            &ids,
            |row: &RequestRow| row.grant_id.clone(),
        )
        .await?;
        for (fact, event) in events {
            let (at, id, version, position) = (fact.metadata.recorded_at, &fact.aggregate_id, fact.sequence, fact.metadata.position);
            match event {
                GrantEvent::AccessRequested { patient_id, requester, scopes, requested_until, .. } => {
                    let row = RequestRow {
                        grant_id: id.clone(),
                        patient_id: patient_id.to_string(),
                        requester: requester.to_string(),
                        scopes: scope_list(scopes),
                        status: "pending".into(),
                        requested_at: at,
                        requested_until: *requested_until,
                        decided_at: None,
                        decided_by: None,
                        version,
                        position,
                    };
                    requests.insert(id.clone(), row);
                }
                GrantEvent::AccessGranted { patient_id, grantee, scopes, expires_at, granted_by, .. } => {
                    if let Some(request) = requests.get_mut(id) {
                        request.status = "approved".into();
                        request.decided_at = Some(at);
                        request.decided_by = Some(granted_by.to_string());
                        (request.version, request.position) = (version, position);
                    }
                    let row = GrantRow {
                        grant_id: id.clone(),
                        patient_id: patient_id.to_string(),
                        grantee: grantee.to_string(),
                        scopes: scope_list(scopes),
                        status: "active".into(),
                        granted_by: granted_by.to_string(),
                        granted_at: at,
                        expires_at: *expires_at,
                        revoked_at: None,
                        version,
                        position,
                    };
                    grants.insert(id.clone(), row);
                }
                GrantEvent::AccessDenied { denied_by, .. } => {
                    if let Some(request) = requests.get_mut(id) {
                        request.status = "denied".into();
                        request.decided_at = Some(at);
                        request.decided_by = Some(denied_by.to_string());
                        (request.version, request.position) = (version, position);
                    }
                }
                GrantEvent::AccessRevoked { .. } => {
                    if let Some(grant) = grants.get_mut(id) {
                        grant.status = "revoked".into();
                        grant.revoked_at = Some(at);
                        (grant.version, grant.position) = (version, position);
                    }
                }
            }
        }
        let grants: Vec<GrantRow> = ids.iter().filter_map(|id| grants.remove(id)).collect();
        let requests: Vec<RequestRow> = ids.iter().filter_map(|id| requests.remove(id)).collect();
        GRANTS
            .run(tx, &grants, |g| {
                values![
                    &g.grant_id,
                    &g.patient_id,
                    &g.grantee,
                    &g.scopes,
                    &g.status,
                    &g.granted_by,
                    g.granted_at,
                    g.expires_at,
                    g.revoked_at,
                    g.version,
                    g.position,
                ]
            })
            .await?;
        REQUESTS
            .run(tx, &requests, |r| {
                values![
                    &r.grant_id,
                    &r.patient_id,
                    &r.requester,
                    &r.scopes,
                    &r.status,
                    r.requested_at,
                    r.requested_until,
                    r.decided_at,
                    r.decided_by.as_ref(),
                    r.version,
                    r.position,
                ]
            })
            .await
    }
}
