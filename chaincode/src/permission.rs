//! The access-permission contract (seed 4.2): who may access a patient's
//! records, in which scopes, until when, granted by whom. The granting identity
//! and the grant time come from the signed proposal, never from arguments; only
//! the identity that granted a permission may revoke it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::contract::{ContractError, Creator, Invocation, WorldState, from_stored, to_json};

/// Scopes a permission can carry (the domain's grant scopes).
pub const SCOPES: [&str; 4] = ["read", "write", "share", "delegate"];

/// One grantee's permission on one patient's records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Permission {
    /// Whose records.
    pub patient_id: String,
    /// Who may access them.
    pub grantee: String,
    /// What they may do.
    pub scopes: Vec<String>,
    /// Who granted it (the proposal's creator).
    pub granted_by: Creator,
    /// When (the proposal's timestamp).
    pub granted_at: DateTime<Utc>,
    /// Until when.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Permission {
    fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// A patient's permissions by grantee: one key per patient, so "active grants on
/// a patient" is one read.
type Permissions = BTreeMap<String, Permission>;

fn patient_key(patient_id: &str) -> String {
    format!("permission~{patient_id}")
}

/// Ids are opaque but bounded: no empty ids, no separators, no control characters.
fn identifier<'a>(value: &'a str, name: &str) -> Result<&'a str, ContractError> {
    let valid =
        !value.is_empty() && value.len() <= 128 && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if valid { Ok(value) } else { Err(ContractError::BadRequest(format!("`{name}` must be 1–128 of [A-Za-z0-9-_.:], got `{value}`"))) }
}

async fn load(state: &mut dyn WorldState, patient_id: &str) -> Result<Permissions, ContractError> {
    let key = patient_key(patient_id);
    match state.get(&key).await? {
        Some(bytes) => from_stored(&key, &bytes),
        None => Ok(Permissions::new()),
    }
}

/// `GrantPermission(patient_id, grantee, scopes "read,write", expires_at RFC 3339)`.
pub(crate) async fn grant(invocation: &Invocation, state: &mut dyn WorldState) -> Result<Vec<u8>, ContractError> {
    invocation.expect_args(4)?;
    let patient_id = identifier(invocation.text(0, "patient_id")?, "patient_id")?;
    let grantee = identifier(invocation.text(1, "grantee")?, "grantee")?;
    let mut scopes: Vec<String> = Vec::new();
    for scope in invocation.text(2, "scopes")?.split(',').map(str::trim) {
        if !SCOPES.contains(&scope) {
            return Err(ContractError::BadRequest(format!("unknown scope `{scope}`; known: {}", SCOPES.join(", "))));
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    let expires_at = DateTime::parse_from_rfc3339(invocation.text(3, "expires_at")?)
        .map_err(|e| ContractError::BadRequest(format!("expires_at is not an RFC 3339 time: {e}")))?
        .with_timezone(&Utc);
    if expires_at <= invocation.timestamp {
        return Err(ContractError::BadRequest(format!(
            "expires_at {expires_at} is not after the transaction's time {}",
            invocation.timestamp
        )));
    }
    let mut permissions = load(state, patient_id).await?;
    let permission = Permission {
        patient_id: patient_id.to_owned(),
        grantee: grantee.to_owned(),
        scopes,
        granted_by: invocation.creator.clone(),
        granted_at: invocation.timestamp,
        expires_at,
        revoked_at: None,
    };
    permissions.insert(grantee.to_owned(), permission.clone());
    state.put(&patient_key(patient_id), to_json(&permissions)?).await?;
    to_json(&permission)
}

/// `RevokePermission(patient_id, grantee)`: by the identity that granted it.
pub(crate) async fn revoke(invocation: &Invocation, state: &mut dyn WorldState) -> Result<Vec<u8>, ContractError> {
    invocation.expect_args(2)?;
    let patient_id = identifier(invocation.text(0, "patient_id")?, "patient_id")?;
    let grantee = identifier(invocation.text(1, "grantee")?, "grantee")?;
    let mut permissions = load(state, patient_id).await?;
    let Some(permission) = permissions.get_mut(grantee).filter(|p| p.active_at(invocation.timestamp)) else {
        return Err(ContractError::NotFound(format!("{grantee} holds no active permission on {patient_id}")));
    };
    if permission.granted_by != invocation.creator {
        return Err(ContractError::Forbidden(format!(
            "only the identity that granted it ({} {}) may revoke it",
            permission.granted_by.msp_id, permission.granted_by.certificate_sha256
        )));
    }
    permission.revoked_at = Some(invocation.timestamp);
    let revoked = permission.clone();
    state.put(&patient_key(patient_id), to_json(&permissions)?).await?;
    to_json(&revoked)
}

/// `ActivePermissions(patient_id)`: unrevoked, unexpired at the transaction's time.
pub(crate) async fn active(invocation: &Invocation, state: &mut dyn WorldState) -> Result<Vec<u8>, ContractError> {
    invocation.expect_args(1)?;
    let patient_id = identifier(invocation.text(0, "patient_id")?, "patient_id")?;
    let permissions = load(state, patient_id).await?;
    let active: Vec<&Permission> = permissions.values().filter(|p| p.active_at(invocation.timestamp)).collect();
    to_json(&active)
}
