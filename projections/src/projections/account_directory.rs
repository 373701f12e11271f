//! `accounts` (the seed's Users table, without secrets): who may sign in, in which
//! role, whether MFA is on and whether the account is locked — what administrators
//! list and filter. Password hashes and TOTP secrets stay sealed in the log; a
//! practitioner's profile stays in the account's own history.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use emr_domain::account::AccountEvent;

use super::{distinct, snake};
use crate::db::Tx;
use crate::decode::{Fact, Payload};
use crate::error::ProjectionError;
use crate::projection::Projection;
use crate::sql::{Upsert, load_by_key, values};

/// The account directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountDirectory;

impl AccountDirectory {
    /// Its name.
    pub const NAME: &'static str = "account_directory";
}

const ACCOUNTS: Upsert = Upsert {
    table: "accounts",
    columns: &[
        "user_id",
        "username",
        "role",
        "status",
        "mfa_enabled",
        "locked_until",
        "suspended",
        "registered_at",
        "updated_at",
        "version",
        "position",
    ],
    key: &["user_id"],
    replace: &[
        "username",
        "role",
        "status",
        "mfa_enabled",
        "locked_until",
        "suspended",
        "registered_at",
        "updated_at",
        "version",
        "position",
    ],
    add: &[],
};

#[derive(Debug, Clone, sqlx::FromRow)]
struct Row {
    user_id: String,
    username: String,
    role: String,
    status: String,
    /// 1 once MFA is on.
    mfa_enabled: i64,
    locked_until: Option<DateTime<Utc>>,
    /// 1 while threat detection holds the account.
    suspended: i64,
    registered_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: u64,
    position: u64,
}

impl Projection for AccountDirectory {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        &["account_directory_checkpoint", "accounts"]
    }

    async fn apply(&self, tx: &mut Tx, facts: &[Fact]) -> Result<(), ProjectionError> {
        let events: Vec<(&Fact, &AccountEvent)> =
            facts.iter().filter_map(|f| if let Payload::Account(e) = &f.payload { Some((f, e)) } else { None }).collect();
        if events.is_empty() {
            return Ok(());
        }
        let ids = distinct(events.iter().map(|(f, _)| f.aggregate_id.clone()));
        let mut rows: HashMap<String, Row> = load_by_key(
            tx,
            "SELECT user_id, username, role, status, mfa_enabled, locked_until, suspended, registered_at, updated_at, version, position \
             FROM accounts WHERE user_id IN ",
            &ids,
            |row: &Row| row.user_id.clone(),
        )
        .await?;
        for (fact, event) in events {
            let at = fact.metadata.recorded_at;
            if let AccountEvent::AccountRegistered { username, role, .. } = event {
                rows.insert(
                    fact.aggregate_id.clone(),
                    Row {
                        user_id: fact.aggregate_id.clone(),
                        username: username.as_str().to_owned(),
                        role: snake(role),
                        status: "active".into(),
                        mfa_enabled: 0,
                        locked_until: None,
                        suspended: 0,
                        registered_at: at,
                        updated_at: at,
                        version: 0,
                        position: 0,
                    },
                );
            }
            let Some(row) = rows.get_mut(&fact.aggregate_id) else {
                tracing::warn!(account = %fact.aggregate_id, "event for an account never registered; skipped");
                continue;
            };
            match event {
                AccountEvent::MfaEnabled => row.mfa_enabled = 1,
                AccountEvent::MfaReset { .. } => row.mfa_enabled = 0,
                AccountEvent::AccountLocked { until, .. } => row.locked_until = Some(*until),
                AccountEvent::AccountSuspended { .. } => row.suspended = 1,
                AccountEvent::AccountUnlocked { .. } => {
                    row.locked_until = None;
                    row.suspended = 0;
                }
                AccountEvent::RoleChanged { to, .. } => row.role = snake(to),
                AccountEvent::AccountDeactivated { .. } => row.status = "deactivated".into(),
                AccountEvent::AccountRegistered { .. } | AccountEvent::PasswordSet { .. } | AccountEvent::MfaEnrolmentStarted { .. } => {}
            }
            row.updated_at = at;
            row.version = fact.sequence;
            row.position = fact.metadata.position;
        }
        let rows: Vec<Row> = ids.iter().filter_map(|id| rows.remove(id)).collect();
        ACCOUNTS
            .run(tx, &rows, |row| {
                values![
                    &row.user_id,
                    &row.username,
                    &row.role,
                    &row.status,
                    row.mfa_enabled,
                    row.locked_until,
                    row.suspended,
                    row.registered_at,
                    row.updated_at,
                    row.version,
                    row.position
                ]
            })
            .await
    }
}
