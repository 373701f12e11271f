//! Who may do what to whose data: the authorization policy, as pure rules.
//!
//! [`rule`] maps a role and an [`Action`] to a [`Rule`]; [`Rule::evaluate`] turns
//! that rule and the facts the application layer looked up (is the actor the
//! patient, the record's author, the holder of an active grant?) into a
//! [`Basis`] for the access or a [`Denied`] reason. The application layer looks
//! grants up only when the rule asks for one, and records every PHI read with
//! the basis it was given.

use serde::{Deserialize, Serialize};

use crate::actor::{Actor, Role};
use crate::grant::Scope;
use crate::ids::{GrantId, PatientId, UserId};

/// Everything the API lets a caller do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Register a patient (clinical registration).
    RegisterPatient,
    /// Read a patient's demographics and identifiers (PHI).
    ReadPatient,
    /// Replace a patient's demographics.
    UpdateDemographics,
    /// Erase a patient (GDPR Art. 17).
    ErasePatient,
    /// Create a medical record.
    CreateRecord,
    /// Read a medical record's content (PHI).
    ReadRecord,
    /// Amend a record or attach a file to it.
    AmendRecord,
    /// Soft-delete or restore a record.
    DeleteRecord,
    /// Accept, reject or correct an AI-assisted diagnosis suggestion.
    ReviewDiagnosis,
    /// Register, validate, activate or retire a diagnostic model.
    ManageModels,
    /// Grant access to one's own records.
    GrantAccess,
    /// Ask a patient for access.
    RequestAccess,
    /// Approve or deny a request for one's own records.
    DecideRequest,
    /// Revoke a grant on one's own records.
    RevokeGrant,
    /// See a grant or request.
    ReadGrant,
    /// Read a patient's entries of the record index (metadata, no content).
    ReadRecordIndex,
    /// Read the accounting of disclosures (who read whose PHI).
    ReadAccessLog,
    /// Read aggregate dashboards, projection status and anchors.
    ReadDashboard,
    /// Read event histories, the log, receipts and integrity proofs (PHI sealed).
    ReadAudit,
    /// Open, lock, unlock and close accounts.
    ManageAccounts,
    /// Restrict processing of a patient's data (GDPR Art. 18), or lift the restriction.
    RestrictProcessing,
    /// Place or release a legal hold on a patient.
    PlaceLegalHold,
    /// Export everything held about a patient (GDPR Art. 15 and 20).
    ExportData,
    /// Export the de-identified research dataset (no PHI, no row-level access).
    ExportDeidentified,
    /// Read security events and risk scores.
    ReadSecurityEvents,
    /// Acknowledge, assign and resolve security events.
    TriageSecurityEvents,
    /// Create, start and run federated-learning tasks (open rounds, aggregate).
    CoordinateFederatedTask,
    /// Submit a hospital's model update to a task it is enrolled in.
    SubmitModelUpdate,
    /// Read a federated task, its rounds and its global model.
    ReadFederatedTask,
}

impl Action {
    /// Every action, for tests and documentation that must cover them all.
    pub const ALL: [Action; 29] = [
        Self::RegisterPatient,
        Self::ReadPatient,
        Self::UpdateDemographics,
        Self::ErasePatient,
        Self::CreateRecord,
        Self::ReadRecord,
        Self::AmendRecord,
        Self::DeleteRecord,
        Self::ReviewDiagnosis,
        Self::ManageModels,
        Self::GrantAccess,
        Self::RequestAccess,
        Self::DecideRequest,
        Self::RevokeGrant,
        Self::ReadGrant,
        Self::ReadRecordIndex,
        Self::ReadAccessLog,
        Self::ReadDashboard,
        Self::ReadAudit,
        Self::ManageAccounts,
        Self::RestrictProcessing,
        Self::PlaceLegalHold,
        Self::ExportData,
        Self::ExportDeidentified,
        Self::ReadSecurityEvents,
        Self::TriageSecurityEvents,
        Self::CoordinateFederatedTask,
        Self::SubmitModelUpdate,
        Self::ReadFederatedTask,
    ];
}

/// What a role needs in order to perform an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The role alone suffices.
    Role,
    /// Only on the actor's own patient record (the actor *is* the patient).
    OwnPatient,
    /// The patient, or someone they made their delegate (a grant with the
    /// `delegate` scope).
    OwnOrDelegate,
    /// Only as the record's author or under an active grant with `scope`; when
    /// `break_glass` is true, an emergency reason also opens it.
    AuthorOrGrant {
        /// The grant scope required.
        scope: Scope,
        /// Whether break-glass may stand in for a grant.
        break_glass: bool,
    },
    /// Only under an active grant with `scope` (or break-glass, when allowed).
    Grant {
        /// The grant scope required.
        scope: Scope,
        /// Whether break-glass may stand in for a grant.
        break_glass: bool,
    },
    /// Only on grants naming the actor as grantee.
    Grantee,
    /// Allowed, but PHI is withheld from the answer (auditors replaying history).
    Redacted,
    /// Never.
    Never,
}

/// The policy: what `role` needs to perform `action`.
pub fn rule(role: Role, action: Action) -> Rule {
    use Action::*;
    let read = Scope::Read;
    let write = Scope::Write;
    match role {
        Role::Patient => match action {
            ReadPatient | ReadRecord | GrantAccess | DecideRequest | RevokeGrant | ReadGrant | ReadRecordIndex | ReadAccessLog => {
                Rule::OwnOrDelegate
            }
            UpdateDemographics | ErasePatient | RestrictProcessing | ExportData => Rule::OwnPatient,
            _ => Rule::Never,
        },
        Role::Physician | Role::Nurse => match action {
            RegisterPatient | RequestAccess | ReadDashboard => Rule::Role,
            // The author is stamped from the actor, so this creates records in one's own name.
            CreateRecord => Rule::Role,
            ReadPatient => Rule::Grant { scope: read, break_glass: true },
            UpdateDemographics => Rule::Grant { scope: write, break_glass: false },
            ReadRecord => Rule::AuthorOrGrant { scope: read, break_glass: true },
            AmendRecord => Rule::AuthorOrGrant { scope: write, break_glass: false },
            DeleteRecord if role == Role::Physician => Rule::AuthorOrGrant { scope: write, break_glass: false },
            // A diagnosis is a physician's to confirm; the verdict is signed in their own name.
            ReviewDiagnosis if role == Role::Physician => Rule::AuthorOrGrant { scope: write, break_glass: false },
            ReadRecordIndex => Rule::Grant { scope: read, break_glass: false },
            ReadGrant => Rule::Grantee,
            _ => Rule::Never,
        },
        Role::Admin => match action {
            // The privacy officer acts on patients' requests and on legal matters.
            ManageAccounts | ErasePatient | ReadDashboard | RestrictProcessing | PlaceLegalHold => Rule::Role,
            // Which model serves physicians is a governance decision, as accounts are.
            ManageModels => Rule::Role,
            // Security officers: administrators and auditors.
            ReadSecurityEvents | TriageSecurityEvents => Rule::Role,
            _ => Rule::Never,
        },
        Role::Auditor => match action {
            ReadAudit | ReadAccessLog | ReadDashboard | ReadGrant | ReadRecordIndex | ReadFederatedTask => Rule::Role,
            ReadSecurityEvents | TriageSecurityEvents => Rule::Role,
            ReadRecord | ReadPatient => Rule::Redacted,
            _ => Rule::Never,
        },
        Role::Researcher => match action {
            ExportDeidentified | CoordinateFederatedTask | ReadFederatedTask => Rule::Role,
            _ => Rule::Never,
        },
        // Enrolment in the task is the task's own rule, checked when it decides.
        Role::Hospital => match action {
            SubmitModelUpdate | ReadFederatedTask => Rule::Role,
            _ => Rule::Never,
        },
        // The system runs the model; it never confirms its own suggestion.
        Role::System if action == ReviewDiagnosis => Rule::Never,
        Role::System => Rule::Role,
    }
}

/// HIPAA's minimum necessary standard (45 CFR 164.502(b)), at the granularity
/// reads are recorded: whether `role` needs `resource` (`patient`, `record`,
/// `attachment`) for its work. A read it does not need is a finding for the
/// privacy officer, not a refusal: the grant or emergency allowed it.
pub fn minimum_necessary(role: Role, resource: &str) -> bool {
    match role {
        Role::Physician | Role::Patient | Role::System => true,
        // Nursing works from the chart; imaging studies and scans are for the physicians reading them.
        Role::Nurse => resource != "attachment",
        Role::Admin | Role::Auditor | Role::Researcher | Role::Hospital => false,
    }
}

/// Why an access was allowed (recorded with every disclosure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Basis {
    /// The role alone allows it.
    Role,
    /// The actor is the patient.
    OwnRecord,
    /// The actor wrote the record.
    Author,
    /// An active grant.
    Grant {
        /// Which one.
        grant_id: GrantId,
    },
    /// An emergency access without a grant.
    BreakGlass,
    /// Allowed with PHI withheld.
    Redacted,
}

/// Why an access was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Denied {
    /// The role may never do this.
    #[error("the {role:?} role may not {action:?}")]
    RoleNotPermitted {
        /// The actor's role.
        role: Role,
        /// What was attempted.
        action: Action,
    },
    /// Only the patient themselves may do this.
    #[error("only the patient may do this")]
    NotOwnRecord,
    /// No active, unexpired grant with the needed scope.
    #[error("no active grant with the {scope:?} scope from this patient")]
    NoActiveGrant {
        /// The scope that was needed.
        scope: Scope,
    },
    /// The grant names someone else.
    #[error("the grant names another grantee")]
    NotGrantee,
    /// A practitioner may only author records in their own name.
    #[error("records are authored in the acting practitioner's own name")]
    OnBehalfOfAnother,
    /// The patient restricted processing (GDPR Art. 18): grants and authorship
    /// do not open their data until the restriction is lifted.
    #[error("the patient restricted the processing of their data; only they, or a break-glass emergency, may read it")]
    ProcessingRestricted,
}

/// What the application layer found out about the actor and the data.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts {
    /// The patient whose data is touched, if any.
    pub patient: Option<PatientId>,
    /// The record's author, for record actions.
    pub author: Option<UserId>,
    /// The grantee, for grant actions.
    pub grantee: Option<UserId>,
    /// An active grant to the actor with the needed scope, if one was found.
    pub grant: Option<GrantId>,
    /// The actor gave an emergency reason.
    pub break_glass: bool,
}

impl Rule {
    /// The grant scope this rule may need looked up.
    pub fn scope(self) -> Option<Scope> {
        match self {
            Self::AuthorOrGrant { scope, .. } | Self::Grant { scope, .. } => Some(scope),
            Self::OwnOrDelegate => Some(Scope::Delegate),
            _ => None,
        }
    }

    /// Decides, from the facts, whether `actor` may go ahead and on what basis.
    pub fn evaluate(self, actor: &Actor, action: Action, facts: &Facts) -> Result<Basis, Denied> {
        let by_grant = |scope, break_glass: bool| match (facts.grant, break_glass && facts.break_glass) {
            (Some(grant_id), _) => Ok(Basis::Grant { grant_id }),
            (None, true) => Ok(Basis::BreakGlass),
            (None, false) => Err(Denied::NoActiveGrant { scope }),
        };
        match self {
            Self::Role => Ok(Basis::Role),
            Self::Redacted => Ok(Basis::Redacted),
            Self::Never => Err(Denied::RoleNotPermitted { role: actor.role, action }),
            Self::OwnPatient => match facts.patient {
                Some(patient) if patient.as_uuid() == actor.user_id.as_uuid() => Ok(Basis::OwnRecord),
                _ => Err(Denied::NotOwnRecord),
            },
            Self::OwnOrDelegate => match (facts.patient, facts.grant) {
                (Some(patient), _) if patient.as_uuid() == actor.user_id.as_uuid() => Ok(Basis::OwnRecord),
                (Some(_), Some(grant_id)) => Ok(Basis::Grant { grant_id }),
                _ => Err(Denied::NotOwnRecord),
            },
            Self::AuthorOrGrant { scope, break_glass } => {
                if facts.author == Some(actor.user_id) {
                    Ok(Basis::Author)
                } else {
                    by_grant(scope, break_glass)
                }
            }
            Self::Grant { scope, break_glass } => by_grant(scope, break_glass),
            Self::Grantee => {
                if facts.grantee == Some(actor.user_id) {
                    Ok(Basis::Role)
                } else {
                    Err(Denied::NotGrantee)
                }
            }
        }
    }
}

/// Whether a restriction of processing (GDPR Art. 18) applies to `action`: every
/// read of the patient's data.
pub fn restrictable(action: Action) -> bool {
    matches!(action, Action::ReadPatient | Action::ReadRecord | Action::ReadRecordIndex)
}

/// Decides a restrictable action on a patient who restricted processing: grants
/// and authorship count for nothing; the patient themselves, a break-glass
/// emergency (vital interests) and what the role alone allows without PHI
/// (an auditor's redacted replay, the metadata index) still pass.
pub fn under_restriction(rule: Rule, actor: &Actor, action: Action, facts: &Facts) -> Result<Basis, Denied> {
    let facts = Facts { grant: None, author: None, ..*facts };
    match rule.evaluate(actor, action, &facts) {
        Ok(basis @ (Basis::OwnRecord | Basis::BreakGlass | Basis::Redacted | Basis::Role)) => Ok(basis),
        _ => Err(Denied::ProcessingRestricted),
    }
}

/// Whether reading under `basis` discloses PHI (and so must be recorded).
pub fn discloses_phi(action: Action, basis: Basis) -> bool {
    matches!(action, Action::ReadPatient | Action::ReadRecord) && basis != Basis::Redacted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: Role) -> Actor {
        Actor::new(UserId::new(), role)
    }

    #[test]
    fn a_patient_reads_only_their_own_record() {
        let me = actor(Role::Patient);
        let own = Facts { patient: Some(PatientId::from(me.user_id.as_uuid())), ..Facts::default() };
        let other = Facts { patient: Some(PatientId::new()), ..Facts::default() };
        let rule = rule(Role::Patient, Action::ReadRecord);
        assert_eq!(rule.evaluate(&me, Action::ReadRecord, &own), Ok(Basis::OwnRecord));
        assert_eq!(rule.evaluate(&me, Action::ReadRecord, &other), Err(Denied::NotOwnRecord));
    }

    #[test]
    fn a_delegate_acts_for_the_patient_only_under_a_delegate_grant() {
        let guardian = actor(Role::Patient);
        let child = Some(PatientId::new());
        let rule = rule(Role::Patient, Action::GrantAccess);
        assert_eq!(rule.scope(), Some(Scope::Delegate));
        let without = Facts { patient: child, ..Facts::default() };
        assert_eq!(rule.evaluate(&guardian, Action::GrantAccess, &without), Err(Denied::NotOwnRecord));
        let grant_id = GrantId::new();
        let with = Facts { grant: Some(grant_id), ..without };
        assert_eq!(rule.evaluate(&guardian, Action::GrantAccess, &with), Ok(Basis::Grant { grant_id }));
        let erase = super::rule(Role::Patient, Action::ErasePatient);
        assert_eq!(erase.evaluate(&guardian, Action::ErasePatient, &with), Err(Denied::NotOwnRecord), "erasure stays the patient's own");
    }

    #[test]
    fn a_physician_reads_under_a_grant_as_author_or_by_breaking_the_glass() {
        let doctor = actor(Role::Physician);
        let rule = rule(Role::Physician, Action::ReadRecord);
        let patient = Some(PatientId::new());
        let grant_id = GrantId::new();
        let none = Facts { patient, ..Facts::default() };
        assert_eq!(rule.evaluate(&doctor, Action::ReadRecord, &none), Err(Denied::NoActiveGrant { scope: Scope::Read }));
        let granted = Facts { grant: Some(grant_id), ..none };
        assert_eq!(rule.evaluate(&doctor, Action::ReadRecord, &granted), Ok(Basis::Grant { grant_id }));
        let authored = Facts { author: Some(doctor.user_id), ..none };
        assert_eq!(rule.evaluate(&doctor, Action::ReadRecord, &authored), Ok(Basis::Author));
        let emergency = Facts { break_glass: true, ..none };
        assert_eq!(rule.evaluate(&doctor, Action::ReadRecord, &emergency), Ok(Basis::BreakGlass));
    }

    #[test]
    fn break_glass_never_opens_writes() {
        let doctor = actor(Role::Physician);
        let emergency = Facts { patient: Some(PatientId::new()), break_glass: true, ..Facts::default() };
        let rule = rule(Role::Physician, Action::AmendRecord);
        assert_eq!(rule.evaluate(&doctor, Action::AmendRecord, &emergency), Err(Denied::NoActiveGrant { scope: Scope::Write }));
    }

    #[test]
    fn administrators_manage_accounts_but_never_read_phi() {
        let admin = actor(Role::Admin);
        for action in [Action::ReadRecord, Action::ReadPatient, Action::ReadRecordIndex] {
            let facts = Facts { patient: Some(PatientId::new()), grant: Some(GrantId::new()), break_glass: true, ..Facts::default() };
            assert!(rule(Role::Admin, action).evaluate(&admin, action, &facts).is_err(), "{action:?}");
        }
        assert_eq!(rule(Role::Admin, Action::ManageAccounts).evaluate(&admin, Action::ManageAccounts, &Facts::default()), Ok(Basis::Role));
    }

    #[test]
    fn auditors_replay_records_with_phi_withheld() {
        let auditor = actor(Role::Auditor);
        let basis = rule(Role::Auditor, Action::ReadRecord).evaluate(&auditor, Action::ReadRecord, &Facts::default());
        assert_eq!(basis, Ok(Basis::Redacted));
        assert!(!discloses_phi(Action::ReadRecord, Basis::Redacted));
    }

    #[test]
    fn a_restriction_of_processing_leaves_only_the_patient_and_break_glass() {
        let patient = actor(Role::Patient);
        let doctor = actor(Role::Physician);
        let own = Some(PatientId::from(patient.user_id.as_uuid()));
        let granted = Facts { patient: own, grant: Some(GrantId::new()), author: Some(doctor.user_id), ..Facts::default() };
        let read = rule(Role::Physician, Action::ReadRecord);
        assert_eq!(
            under_restriction(read, &doctor, Action::ReadRecord, &granted),
            Err(Denied::ProcessingRestricted),
            "grant and authorship"
        );
        let emergency = Facts { break_glass: true, ..granted };
        assert_eq!(under_restriction(read, &doctor, Action::ReadRecord, &emergency), Ok(Basis::BreakGlass));
        let own_read = rule(Role::Patient, Action::ReadRecord);
        assert_eq!(
            under_restriction(own_read, &patient, Action::ReadRecord, &Facts { patient: own, ..Facts::default() }),
            Ok(Basis::OwnRecord)
        );
        let delegate = actor(Role::Patient);
        assert_eq!(
            under_restriction(own_read, &delegate, Action::ReadRecord, &granted),
            Err(Denied::ProcessingRestricted),
            "a delegate is not the patient"
        );
        assert!(restrictable(Action::ReadRecordIndex) && !restrictable(Action::AmendRecord));
    }

    #[test]
    fn researchers_have_no_row_level_access_at_all() {
        use Action::*;
        for action in Action::ALL {
            let expected =
                if matches!(action, ExportDeidentified | CoordinateFederatedTask | ReadFederatedTask) { Rule::Role } else { Rule::Never };
            assert_eq!(rule(Role::Researcher, action), expected, "{action:?}: only the de-identified dataset and federated tasks");
        }
    }

    #[test]
    fn a_hospital_client_only_submits_updates_and_reads_its_tasks() {
        for action in Action::ALL {
            let expected = if matches!(action, Action::SubmitModelUpdate | Action::ReadFederatedTask) { Rule::Role } else { Rule::Never };
            assert_eq!(rule(Role::Hospital, action), expected, "{action:?}");
        }
        assert!(!minimum_necessary(Role::Hospital, "record"));
    }

    #[test]
    fn only_a_physician_reviews_a_diagnosis_suggestion() {
        assert_eq!(rule(Role::Physician, Action::ReviewDiagnosis), Rule::AuthorOrGrant { scope: Scope::Write, break_glass: false });
        for role in [Role::Nurse, Role::Patient, Role::Auditor, Role::Admin, Role::Researcher, Role::Hospital, Role::System] {
            assert_eq!(rule(role, Action::ReviewDiagnosis), Rule::Never, "{role:?}");
        }
    }
}
