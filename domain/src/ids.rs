//! Identifiers. Each aggregate and actor has its own id type so that a record id
//! can never be passed where a patient id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A string that is not a valid identifier of the named kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {kind}: {reason}")]
pub struct InvalidId {
    /// Which identifier was being parsed.
    pub kind: &'static str,
    /// The rejected input (identifiers are never PHI).
    pub value: String,
    /// Why it was rejected.
    pub reason: &'static str,
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new random (time-ordered, UUIDv7) identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Parses the canonical hyphenated UUID form.
            pub fn parse(value: &str) -> Result<Self, InvalidId> {
                Uuid::try_parse(value).map(Self).map_err(|_| InvalidId {
                    kind: $kind,
                    value: value.chars().take(64).collect(),
                    reason: "expected a UUID such as 0190f5c4-7d0e-7cc2-9a4e-3f1c2b6a9d10",
                })
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::parse(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A patient (the data subject whose key seals their PHI).
    PatientId,
    "patient id"
);
uuid_id!(
    /// A medical record.
    RecordId,
    "record id"
);
uuid_id!(
    /// An access grant or access request (the seed's Permissions).
    GrantId,
    "grant id"
);
uuid_id!(
    /// A user account: practitioner, patient login, administrator, auditor.
    UserId,
    "user id"
);
uuid_id!(
    /// An attachment of a medical record.
    AttachmentId,
    "attachment id"
);
uuid_id!(
    /// The id of a command; a retried command keeps its id, which makes it idempotent.
    CommandId,
    "command id"
);
uuid_id!(
    /// One disclosure of PHI: a read of a patient's data, recorded as a fact.
    DisclosureId,
    "disclosure id"
);
uuid_id!(
    /// One security event (a detection: brute force, token reuse, break-glass, …).
    SecurityEventId,
    "security event id"
);
uuid_id!(
    /// The id of one stored event.
    EventId,
    "event id"
);
uuid_id!(
    /// One sign-in attempt (the password step), successful or not.
    SignInId,
    "sign-in id"
);
uuid_id!(
    /// One session: a login and the refresh tokens rotated from it.
    SessionId,
    "session id"
);
uuid_id!(
    /// One refused access.
    DenialId,
    "denial id"
);
uuid_id!(
    /// A registered diagnostic model artifact (the model registry).
    ModelId,
    "model id"
);
impl ModelId {
    /// The id of the artifact with this SHA-256 (a name-based UUIDv5): an
    /// artifact is registered once, and a suggestion naming an artifact's hash
    /// finds its registration without an index.
    pub fn for_artifact(sha256: &crate::values::Sha256Digest) -> Self {
        /// The UUIDv5 namespace of model artifacts (fixed: ids must not change).
        const NAMESPACE: Uuid = Uuid::from_u128(0x6d0d_e15e_5e7a_4c1b_9a35_2f41_b0a1_7c3e);
        Self(Uuid::new_v5(&NAMESPACE, sha256.as_bytes()))
    }
}

uuid_id!(
    /// One AI-assisted diagnosis suggestion on a record.
    SuggestionId,
    "suggestion id"
);
uuid_id!(
    /// A diagnosis job: one request to run a model on an attachment.
    DiagnosisJobId,
    "diagnosis job id"
);
uuid_id!(
    /// A federated-learning task (the seed's FederatedTasks).
    TaskId,
    "federated task id"
);

/// A hospital or clinic, identified by a short code assigned by the network
/// (e.g. `HOSP-001`), not by a UUID, because integrators configure it by hand.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, pattern = r"^[A-Za-z0-9_-]{1,64}$", example = "HOSP-001"))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HospitalId(String);

impl HospitalId {
    /// Longest accepted hospital code.
    pub const MAX_LEN: usize = 64;

    /// Accepts 1–64 ASCII letters, digits, `-` and `_`.
    pub fn parse(value: &str) -> Result<Self, InvalidId> {
        let invalid = |reason| InvalidId { kind: "hospital id", value: value.chars().take(64).collect(), reason };
        if value.is_empty() || value.len() > Self::MAX_LEN {
            return Err(invalid("must be 1 to 64 characters"));
        }
        if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(invalid("only ASCII letters, digits, '-' and '_' are allowed"));
        }
        Ok(Self(value.to_owned()))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HospitalId {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<HospitalId> for String {
    fn from(value: HospitalId) -> Self {
        value.0
    }
}

impl fmt::Display for HospitalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_text_form() {
        let id = PatientId::new();
        assert_eq!(PatientId::parse(&id.to_string()), Ok(id));
    }

    #[test]
    fn a_malformed_uuid_is_a_typed_error_naming_the_kind() {
        let err = RecordId::parse("not-a-uuid").unwrap_err();
        assert_eq!(err.kind, "record id");
    }

    #[test]
    fn hospital_codes_refuse_subject_wildcards_and_spaces() {
        assert!(HospitalId::parse("HOSP-001").is_ok());
        for bad in ["", "a b", "a.b", "a*", ">", &"x".repeat(65)] {
            assert!(HospitalId::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
