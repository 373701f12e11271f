//! A varied clinical history, written through the application layer, for tests
//! and benchmarks of everything downstream of the log.

use std::collections::BTreeSet;

use chrono::{Duration, NaiveDate, Utc};
use emr_commands::Clinic;
use emr_domain::actor::{Actor, Role};
use emr_domain::fixtures::{content, demographics, identifiers, text};
use emr_domain::grant::{GrantCommand, Scope};
use emr_domain::ids::{AttachmentId, GrantId, HospitalId, PatientId, RecordId, UserId};
use emr_domain::metadata::CommandContext;
use emr_domain::patient::{ErasureReason, PatientCommand};
use emr_domain::record::{AttachmentDescriptor, RecordCommand};
use emr_domain::values::{ContentId, DicomSummary, MimeType, RecordType, Sha256Digest};

/// Names used for patients: none may ever appear in a read model or the log.
pub const NAMES: [&str; 4] = ["Wang Fang", "Li Wei", "Zhang Min", "Chen Jing"];

fn actor(role: Role) -> CommandContext {
    CommandContext::new(Actor::new(UserId::new(), role))
}

fn as_user(user: UserId, role: Role) -> CommandContext {
    CommandContext::new(Actor::new(user, role))
}

/// The emergency reason of the history's break-glass reads: never in a read model.
pub const BREAK_GLASS_REASON: &str = "unresponsive on arrival";

/// Writes `patients` patients, each with records, amendments, an attachment, grants
/// and requests, and reads: each patient reads their first record, and for every
/// third patient a nurse breaks the glass on the second; every fifth patient is
/// erased, every third record deleted.
/// Returns the position of the last commit.
pub async fn write(clinic: &Clinic, patients: usize) -> u64 {
    let mut last = 0;
    let mut track = |receipt: emr_commands::Receipt| last = last.max(receipt.position.unwrap_or(0));
    for p in 0..patients {
        let patient = PatientId::new();
        let hospital = HospitalId::parse(&format!("HOSP-{:03}", p % 3)).unwrap();
        let register = PatientCommand::Register {
            patient_id: patient,
            hospital_id: hospital.clone(),
            identifiers: identifiers(),
            demographics: demographics(NAMES[p % NAMES.len()]),
        };
        track(clinic.patient(patient, register, &actor(Role::Nurse)).await.unwrap());
        let self_service = UserId::from(patient.as_uuid());
        let mut records = Vec::new();
        for r in 0..2 {
            let record = RecordId::new();
            records.push(record);
            let doctor = UserId::new();
            let create = RecordCommand::Create {
                record_id: record,
                patient_id: patient,
                doctor_id: doctor,
                hospital_id: hospital.clone(),
                record_type: RecordType::ALL[(p + r) % RecordType::ALL.len()],
                visit_date: NaiveDate::from_ymd_opt(2025, 1 + (p % 12) as u32, 1 + (r as u32)).unwrap(),
                content: content("Consultation"),
            };
            track(clinic.record(record, create, &as_user(doctor, Role::Physician)).await.unwrap());
            if (p + r) % 2 == 0 {
                let amend = RecordCommand::Amend { content: content("Consultation, revised"), reason: text("lab results") };
                track(clinic.record(record, amend, &as_user(doctor, Role::Physician)).await.unwrap());
            }
            if r == 0 {
                let attach = RecordCommand::AddAttachment(AttachmentDescriptor {
                    attachment_id: AttachmentId::new(),
                    content_id: ContentId::parse("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG").unwrap(),
                    mime_type: MimeType::parse("application/dicom").unwrap(),
                    size_bytes: 1024 * (p as u64 + 1),
                    sha256: Sha256Digest::from_bytes([p as u8; 32]),
                    filename: text("chest.dcm"),
                    dicom: Some(DicomSummary {
                        modality: Some("CT".into()),
                        study_date: NaiveDate::from_ymd_opt(2025, 1, 2),
                        body_part: Some("CHEST".into()),
                        rows: Some(512),
                        columns: Some(512),
                    })
                    .filter(|_| p % 2 == 0),
                });
                track(clinic.record(record, attach, &as_user(doctor, Role::Physician)).await.unwrap());
            }
            if (p * 2 + r) % 3 == 0 {
                track(
                    clinic
                        .record(record, RecordCommand::Delete { reason: text("entered in error") }, &as_user(doctor, Role::Physician))
                        .await
                        .unwrap(),
                );
            }
        }
        let own = Actor::new(self_service, Role::Patient);
        clinic.read_record(&own, records[0], None, None).await.unwrap();
        if p % 3 == 0 {
            let nurse = Actor::new(UserId::new(), Role::Nurse);
            clinic.read_record(&nurse, records[1], None, Some(text(BREAK_GLASS_REASON))).await.unwrap();
        }
        let grant = GrantId::new();
        let give = GrantCommand::Grant {
            grant_id: grant,
            patient_id: patient,
            grantee: UserId::new(),
            scopes: BTreeSet::from([Scope::Read]),
            expires_at: Utc::now() + Duration::days(30),
            granted_by: self_service,
            reason: text("treating physician"),
        };
        track(clinic.grant(grant, give, &as_user(self_service, Role::Patient)).await.unwrap());
        if p % 2 == 1 {
            let revoke = GrantCommand::Revoke { revoked_by: self_service, reason: text("care ended") };
            track(clinic.grant(grant, revoke, &as_user(self_service, Role::Patient)).await.unwrap());
        }
        let request = GrantId::new();
        let ask = GrantCommand::Request {
            grant_id: request,
            patient_id: patient,
            requester: UserId::new(),
            scopes: BTreeSet::from([Scope::Read, Scope::Write]),
            requested_until: Utc::now() + Duration::days(7),
            reason: text("referral"),
        };
        track(clinic.grant(request, ask, &actor(Role::Nurse)).await.unwrap());
        let decide = if p % 2 == 0 {
            GrantCommand::Approve { approved_by: self_service, expires_at: Utc::now() + Duration::days(5) }
        } else {
            GrantCommand::Deny { denied_by: self_service, reason: text("no") }
        };
        track(clinic.grant(request, decide, &as_user(self_service, Role::Patient)).await.unwrap());
        if p % 5 == 4 {
            let erase = PatientCommand::Erase { reason: ErasureReason::PatientRequest };
            track(clinic.patient(patient, erase, &actor(Role::Admin)).await.unwrap());
        }
    }
    last
}
