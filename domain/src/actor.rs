//! Who issues a command: a user in a role, or the system itself.

use serde::{Deserialize, Serialize};

use crate::ids::UserId;

/// Roles (seed 3.1; authorization rules live in the application layer).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A patient acting for themselves (or their delegate).
    Patient,
    /// A physician.
    Physician,
    /// A nurse.
    Nurse,
    /// An administrator: manages accounts, never reads PHI.
    Admin,
    /// An auditor: reads history and proofs, never PHI.
    Auditor,
    /// A researcher: federated learning only, never row-level PHI.
    Researcher,
    /// A hospital's federated-learning client (a service account whose username
    /// is the hospital's code): pulls global models and submits its hospital's
    /// updates; reads no patient data.
    Hospital,
    /// The system itself (workers, migrations).
    System,
}

impl Role {
    /// The snake-case name, as serialized (in envelopes, the API and summaries).
    pub fn name(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::Physician => "physician",
            Self::Nurse => "nurse",
            Self::Admin => "admin",
            Self::Auditor => "auditor",
            Self::Researcher => "researcher",
            Self::Hospital => "hospital",
            Self::System => "system",
        }
    }
}

/// The author of a command, recorded in every event's envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The user.
    pub user_id: UserId,
    /// The role they acted in.
    pub role: Role,
}

impl Actor {
    /// A user acting in a role.
    pub fn new(user_id: UserId, role: Role) -> Self {
        Self { user_id, role }
    }

    /// The system itself; its user id is the nil UUID.
    pub fn system() -> Self {
        Self { user_id: UserId::from(uuid::Uuid::nil()), role: Role::System }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_roles_name_is_its_serialized_form() {
        for role in
            [Role::Patient, Role::Physician, Role::Nurse, Role::Admin, Role::Auditor, Role::Researcher, Role::Hospital, Role::System]
        {
            assert_eq!(serde_json::to_value(role).ok(), Some(serde_json::Value::from(role.name())));
        }
    }
}
