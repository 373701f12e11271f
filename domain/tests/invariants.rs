//! Property tests: for arbitrary command sequences, every aggregate keeps its
//! invariants, and its state is always the fold of the events it accepted.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use cqrs_es::Aggregate;
use emr_domain::diagnosis::{ClassProbability, Finding, ModelRef, Review, ReviewOutcome, Suggestion};
use emr_domain::fixtures::{content, demographics, identifiers, now, text};
use emr_domain::grant::{AccessGrant, GrantCommand, GrantEvent, GrantStatus, Scope};
use emr_domain::ids::{AttachmentId, GrantId, HospitalId, PatientId, RecordId, SuggestionId, UserId};
use emr_domain::patient::{ErasureReason, Patient, PatientCommand, PatientError, PatientEvent, PatientStatus};
use emr_domain::phi::Phi;
use emr_domain::record::{AttachmentDescriptor, MedicalRecord, RecordCommand, RecordEvent, RecordStatus};
use emr_domain::values::{ContentId, MimeType, RecordType, Sha256Digest};
use proptest::prelude::*;

/// Runs commands in order; returns the final state and the events accepted.
fn run<A: Aggregate + Clone>(
    commands: Vec<A::Command>,
    decide: impl Fn(&A, A::Command) -> Result<Vec<A::Event>, A::Error>,
) -> (A, Vec<A::Event>, Vec<Result<usize, A::Error>>) {
    let mut state = A::default();
    let mut accepted = Vec::new();
    let mut outcomes = Vec::new();
    for command in commands {
        match decide(&state, command) {
            Ok(events) => {
                outcomes.push(Ok(events.len()));
                for event in events {
                    state.apply(event.clone());
                    accepted.push(event);
                }
            }
            Err(error) => outcomes.push(Err(error)),
        }
    }
    (state, accepted, outcomes)
}

fn replay<A: Aggregate>(events: &[A::Event]) -> A {
    let mut state = A::default();
    events.iter().cloned().for_each(|event| state.apply(event));
    state
}

// ---- medical records ----

#[derive(Debug, Clone)]
enum RecordOp {
    Create(u8),
    Amend(u8),
    Attach(u8),
    Delete,
    Restore,
    /// Suggest on attachment `.0` with suggestion id `.1`; `.2`: conclusive; `.3`: read other bytes.
    Suggest(u8, u8, bool, bool),
    /// Review suggestion `.0`: accept, reject, correct (with or without the answer).
    Review(u8, u8, bool),
}

fn record_op() -> impl Strategy<Value = RecordOp> {
    prop_oneof![
        (0u8..2).prop_map(RecordOp::Create),
        (0u8..4).prop_map(RecordOp::Amend),
        (0u8..4).prop_map(RecordOp::Attach),
        Just(RecordOp::Delete),
        Just(RecordOp::Restore),
        (0u8..4, 0u8..4, any::<bool>(), prop::bool::weighted(0.2)).prop_map(|(a, s, c, m)| RecordOp::Suggest(a, s, c, m)),
        (0u8..4, 0u8..3, any::<bool>()).prop_map(|(s, o, c)| RecordOp::Review(s, o, c)),
    ]
}

fn record_command(
    op: &RecordOp,
    record: RecordId,
    patients: &[PatientId; 2],
    attachments: &[AttachmentId; 4],
    suggestions: &[SuggestionId; 4],
) -> RecordCommand {
    match op {
        RecordOp::Create(p) => RecordCommand::Create {
            record_id: record,
            patient_id: patients[*p as usize],
            doctor_id: UserId::new(),
            hospital_id: HospitalId::parse("HOSP-001").unwrap(),
            record_type: RecordType::Imaging,
            visit_date: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
            content: content("initial"),
        },
        RecordOp::Amend(n) => RecordCommand::Amend { content: content(&format!("title {n}")), reason: text("update") },
        RecordOp::Attach(n) => RecordCommand::AddAttachment(AttachmentDescriptor {
            attachment_id: attachments[*n as usize],
            content_id: ContentId::parse("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG").unwrap(),
            mime_type: MimeType::parse("image/png").unwrap(),
            size_bytes: u64::from(*n) * 1000,
            sha256: Sha256Digest::from_bytes([*n; 32]),
            filename: text("scan.png"),
            dicom: None,
        }),
        RecordOp::Delete => RecordCommand::Delete { reason: text("duplicate") },
        RecordOp::Restore => RecordCommand::Restore { reason: text("not a duplicate") },
        RecordOp::Suggest(a, n, conclusive, other_bytes) => RecordCommand::SuggestDiagnosis(Suggestion {
            suggestion_id: suggestions[*n as usize],
            attachment_id: attachments[*a as usize],
            input_sha256: Sha256Digest::from_bytes([if *other_bytes { 0xee } else { *a }; 32]),
            model: ModelRef { name: "m".into(), version: "1".into(), sha256: Sha256Digest::from_bytes([9; 32]) },
            preprocessing: serde_json::json!({}),
            finding: Finding {
                probabilities: vec![
                    ClassProbability { label: "a".into(), probability: 0.9 },
                    ClassProbability { label: "b".into(), probability: 0.1 },
                ],
                top: conclusive.then(|| "a".into()),
                confidence: 0.9,
            },
            explanation: None,
        }),
        RecordOp::Review(n, outcome, with_answer) => RecordCommand::ReviewDiagnosis(Review {
            suggestion_id: suggestions[*n as usize],
            reviewer_id: UserId::new(),
            outcome: [ReviewOutcome::Accepted, ReviewOutcome::Rejected, ReviewOutcome::Corrected][*outcome as usize],
            correction: with_answer.then(|| text("b")),
            note: None,
        }),
    }
}

proptest! {
    #[test]
    fn records_keep_their_invariants(ops in proptest::collection::vec(record_op(), 0..40)) {
        let record = RecordId::new();
        let patients = [PatientId::new(), PatientId::new()];
        let attachments = [AttachmentId::new(), AttachmentId::new(), AttachmentId::new(), AttachmentId::new()];
        let suggestions = [SuggestionId::new(), SuggestionId::new(), SuggestionId::new(), SuggestionId::new()];
        let commands = ops.iter().map(|op| record_command(op, record, &patients, &attachments, &suggestions)).collect();
        let (state, events, _) = run::<MedicalRecord>(commands, |s, c| s.decide(c, now()));

        prop_assert_eq!(&replay::<MedicalRecord>(&events), &state, "state is the fold of accepted events");

        let created: Vec<_> = events.iter().filter_map(|e| match e { RecordEvent::RecordCreated { patient_id, .. } => Some(*patient_id), _ => None }).collect();
        prop_assert!(created.len() <= 1, "created at most once");
        if let Some(owner) = created.first() {
            prop_assert_eq!(state.patient_id(), Some(*owner), "a record belongs to exactly one patient, for good");
            let versions: Vec<u32> = state.versions().iter().map(|v| v.version).collect();
            prop_assert_eq!(versions, (1..=state.versions().len() as u32).collect::<Vec<_>>(), "versions are 1..n, none lost");
            for event in &events {
                let subjects: Vec<PatientId> = match event {
                    RecordEvent::RecordCreated { content, .. } => vec![content.subject()],
                    RecordEvent::RecordAmended { content, reason, .. } => vec![content.subject(), reason.subject()],
                    RecordEvent::AttachmentAdded { filename, .. } => vec![filename.subject()],
                    RecordEvent::RecordDeleted { reason } | RecordEvent::RecordRestored { reason } => vec![reason.subject()],
                    RecordEvent::DiagnosisSuggested { finding, .. } => vec![finding.subject()],
                    RecordEvent::DiagnosisReviewed { correction, note, .. } => {
                        correction.iter().chain(note).map(Phi::subject).collect()
                    }
                };
                prop_assert!(subjects.iter().all(|s| s == owner), "every piece of PHI is sealed for the record's patient");
            }
        } else {
            prop_assert!(events.is_empty(), "nothing happens to a record that was never created");
        }

        let mut deleted = false;
        for event in &events {
            match event {
                RecordEvent::RecordDeleted { .. } => { prop_assert!(!deleted); deleted = true; }
                RecordEvent::RecordRestored { .. } => { prop_assert!(deleted); deleted = false; }
                RecordEvent::RecordAmended { .. }
                | RecordEvent::AttachmentAdded { .. }
                | RecordEvent::DiagnosisSuggested { .. }
                | RecordEvent::DiagnosisReviewed { .. } => prop_assert!(!deleted, "no change while deleted"),
                RecordEvent::RecordCreated { .. } => {}
            }
        }
        // Suggestions read the attachment's own bytes; each is reviewed at most
        // once, after it was made; an inconclusive one is never accepted, and
        // only a correction carries an answer.
        let mut made: Vec<(SuggestionId, bool)> = Vec::new();
        let mut reviewed = BTreeSet::new();
        let mut sha_of = std::collections::BTreeMap::new();
        for event in &events {
            match event {
                RecordEvent::AttachmentAdded { attachment_id, sha256, .. } => { sha_of.insert(*attachment_id, *sha256); }
                RecordEvent::DiagnosisSuggested { suggestion_id, attachment_id, input_sha256, finding, .. } => {
                    prop_assert_eq!(sha_of.get(attachment_id), Some(input_sha256), "a suggestion reads its attachment's bytes");
                    prop_assert!(made.iter().all(|(id, _)| id != suggestion_id), "suggestion ids are unique");
                    made.push((*suggestion_id, finding.value().is_some_and(|f| f.top.is_some())));
                }
                RecordEvent::DiagnosisReviewed { suggestion_id, outcome, correction, .. } => {
                    let conclusive = made.iter().find(|(id, _)| id == suggestion_id).map(|(_, c)| *c);
                    prop_assert!(conclusive.is_some(), "a review follows its suggestion");
                    prop_assert!(reviewed.insert(*suggestion_id), "reviewed at most once");
                    prop_assert!(*outcome != ReviewOutcome::Accepted || conclusive == Some(true), "inconclusive is never accepted");
                    prop_assert_eq!(*outcome == ReviewOutcome::Corrected, correction.is_some(), "only a correction carries an answer");
                }
                _ => {}
            }
        }
        prop_assert_eq!(state.suggestions().len(), made.len());
        prop_assert_eq!(state.status() == RecordStatus::Deleted, deleted);
        let ids: BTreeSet<_> = state.attachments().iter().map(|a| a.attachment_id).collect();
        prop_assert_eq!(ids.len(), state.attachments().len(), "attachment ids are unique");
    }
}

// ---- patients ----

#[derive(Debug, Clone)]
enum PatientOp {
    Register,
    Update(u8),
    Erase,
}

fn patient_op() -> impl Strategy<Value = PatientOp> {
    prop_oneof![Just(PatientOp::Register), (0u8..3).prop_map(PatientOp::Update), Just(PatientOp::Erase)]
}

proptest! {
    #[test]
    fn patients_keep_their_invariants(ops in proptest::collection::vec(patient_op(), 0..30)) {
        let patient = PatientId::new();
        let commands: Vec<PatientCommand> = ops
            .iter()
            .map(|op| match op {
                PatientOp::Register => PatientCommand::Register {
                    patient_id: patient,
                    hospital_id: HospitalId::parse("HOSP-001").unwrap(),
                    identifiers: identifiers(),
                    demographics: demographics("Sun Li"),
                },
                PatientOp::Update(n) => PatientCommand::UpdateDemographics { demographics: demographics(&format!("Sun Li {n}")) },
                PatientOp::Erase => PatientCommand::Erase { reason: ErasureReason::PatientRequest },
            })
            .collect();
        let (state, events, outcomes) = run::<Patient>(commands, |s, c| s.decide(c, now()));
        prop_assert_eq!(&replay::<Patient>(&events), &state);

        let registrations = events.iter().filter(|e| matches!(e, PatientEvent::PatientRegistered { .. })).count();
        let erasures = events.iter().position(|e| matches!(e, PatientEvent::PatientErased { .. }));
        prop_assert!(registrations <= 1);
        if let Some(at) = erasures {
            prop_assert_eq!(at, events.len() - 1, "nothing is accepted after erasure");
            prop_assert_eq!(state.status(), PatientStatus::Erased);
            prop_assert!(state.demographics().is_some_and(Phi::is_shredded));
            let accepted_erase = ops.iter().zip(&outcomes).position(|(op, outcome)| matches!(op, PatientOp::Erase) && outcome.is_ok()).unwrap();
            prop_assert!(
                outcomes[accepted_erase + 1..].iter().all(|o| matches!(o, Err(PatientError::Erased))),
                "every command after the erasure is refused as erased"
            );
        } else {
            prop_assert_eq!(state.status() == PatientStatus::Active, registrations == 1);
        }
    }
}

// ---- access grants ----

#[derive(Debug, Clone)]
enum GrantOp {
    Grant(u8, i64),
    Request(i64),
    Approve(i64),
    Deny,
    Revoke,
}

fn grant_op() -> impl Strategy<Value = GrantOp> {
    prop_oneof![
        (0u8..8, -5i64..400).prop_map(|(scopes, days)| GrantOp::Grant(scopes, days)),
        (-5i64..400).prop_map(GrantOp::Request),
        (-5i64..400).prop_map(GrantOp::Approve),
        Just(GrantOp::Deny),
        Just(GrantOp::Revoke),
    ]
}

fn scopes(bits: u8) -> BTreeSet<Scope> {
    [(1, Scope::Read), (2, Scope::Write), (4, Scope::Share)].into_iter().filter(|(b, _)| bits & b != 0).map(|(_, s)| s).collect()
}

proptest! {
    #[test]
    fn grants_authorize_only_while_active_and_unexpired(
        ops in proptest::collection::vec(grant_op(), 0..20),
        probe_days in -10i64..400,
    ) {
        let (grant_id, patient, doctor, patient_user) = (GrantId::new(), PatientId::new(), UserId::new(), UserId::new());
        let at = |days: i64| -> DateTime<Utc> { now() + Duration::days(days) };
        let commands: Vec<GrantCommand> = ops
            .iter()
            .map(|op| match op {
                GrantOp::Grant(bits, days) => GrantCommand::Grant {
                    grant_id, patient_id: patient, grantee: doctor, scopes: scopes(*bits), expires_at: at(*days), granted_by: patient_user, reason: text("care"),
                },
                GrantOp::Request(days) => GrantCommand::Request {
                    grant_id, patient_id: patient, requester: doctor, scopes: scopes(1), requested_until: at(*days), reason: text("referral"),
                },
                GrantOp::Approve(days) => GrantCommand::Approve { approved_by: patient_user, expires_at: at(*days) },
                GrantOp::Deny => GrantCommand::Deny { denied_by: patient_user, reason: text("no") },
                GrantOp::Revoke => GrantCommand::Revoke { revoked_by: patient_user, reason: text("done") },
            })
            .collect();
        let (state, events, _) = run::<AccessGrant>(commands, |s, c| s.decide(c, now()));
        prop_assert_eq!(&replay::<AccessGrant>(&events), &state);

        for event in &events {
            if let GrantEvent::AccessGranted { scopes, expires_at, .. } = event {
                prop_assert!(!scopes.is_empty(), "a grant always has scopes");
                prop_assert!(*expires_at > now() && *expires_at <= now() + Duration::days(AccessGrant::MAX_DURATION_DAYS), "expiry within policy");
            }
        }
        let probe = at(probe_days);
        for scope in [Scope::Read, Scope::Write, Scope::Share] {
            let authorized = state.authorizes(doctor, scope, probe);
            let expected = state.status() == GrantStatus::Active && state.expires_at().is_some_and(|e| probe < e)
                && events.iter().rev().find_map(|e| match e { GrantEvent::AccessGranted { scopes, .. } => Some(scopes.contains(&scope)), _ => None }).unwrap_or(false);
            prop_assert_eq!(authorized, expected, "scope {:?} at {}", scope, probe);
            prop_assert!(!state.authorizes(patient_user, scope, probe), "only the grantee is authorized");
        }
        if events.iter().any(|e| matches!(e, GrantEvent::AccessRevoked { .. })) {
            prop_assert!(!state.authorizes(doctor, Scope::Read, probe), "a revoked grant never authorizes again");
        }
    }
}
