//! A scripted clinical day through the application layer: what an integrator
//! would send, ending with a GDPR erasure. Prints a JSON account of what the log
//! now holds and proves the erased patient's PHI unreadable.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use chrono::{Duration, NaiveDate, Utc};
use emr_commands::{Clinic, Receipt};
use emr_domain::actor::{Actor, Role};
use emr_domain::fixtures::{content, demographics, identifiers, text};
use emr_domain::grant::{GrantCommand, Scope};
use emr_domain::ids::{GrantId, HospitalId, PatientId, RecordId, UserId};
use emr_domain::metadata::CommandContext;
use emr_domain::patient::{ErasureReason, PatientCommand};
use emr_domain::record::RecordCommand;
use emr_domain::values::RecordType;
use serde_json::json;

fn as_user(user: UserId, role: Role) -> CommandContext {
    CommandContext::new(Actor::new(user, role))
}

pub(crate) async fn run(clinic: &Clinic) -> anyhow::Result<()> {
    let (doctor, colleague, nurse, registrar) = (UserId::new(), UserId::new(), UserId::new(), UserId::new());
    let hospitals = [HospitalId::parse("HOSP-001")?, HospitalId::parse("HOSP-002")?];
    let names = ["Wang Fang", "Li Wei", "Zhang Min"];
    let mut receipts: Vec<Receipt> = Vec::new();
    let mut patients = Vec::new();

    for (n, name) in names.iter().enumerate() {
        let patient = PatientId::new();
        let register = PatientCommand::Register {
            patient_id: patient,
            hospital_id: hospitals[n % 2].clone(),
            identifiers: identifiers(),
            demographics: demographics(name),
        };
        receipts.push(clinic.patient(patient, register, &as_user(registrar, Role::Nurse)).await.context("register")?);
        patients.push(patient);
    }

    let mut records = Vec::new();
    for (n, patient) in patients.iter().enumerate() {
        let record = RecordId::new();
        let create = RecordCommand::Create {
            record_id: record,
            patient_id: *patient,
            doctor_id: doctor,
            hospital_id: hospitals[n % 2].clone(),
            record_type: if n == 1 { RecordType::LabResult } else { RecordType::Consultation },
            visit_date: NaiveDate::from_ymd_opt(2026, 11, 2).context("date")?,
            content: content("Cough and fever"),
        };
        receipts.push(clinic.record(record, create, &as_user(doctor, Role::Physician)).await.context("create record")?);
        records.push(record);
    }
    let amend = RecordCommand::Amend { content: content("Community-acquired pneumonia"), reason: text("chest X-ray result") };
    let amending = as_user(doctor, Role::Physician);
    receipts.push(clinic.record(records[0], amend.clone(), &amending).await.context("amend")?);
    let retried = clinic.record(records[0], amend, &amending).await.context("retry")?;

    // A patient acts through their own account, whose id is their patient id.
    let first_patient = UserId::from(patients[0].as_uuid());
    let grant = GrantId::new();
    let give = GrantCommand::Grant {
        grant_id: grant,
        patient_id: patients[0],
        grantee: colleague,
        scopes: BTreeSet::from([Scope::Read, Scope::Write]),
        expires_at: Utc::now() + Duration::days(30),
        granted_by: first_patient,
        reason: text("second opinion"),
    };
    receipts.push(clinic.grant(grant, give, &as_user(first_patient, Role::Patient)).await.context("grant")?);
    let colleague_read = clinic.read_record(&Actor::new(colleague, Role::Physician), records[0], None, None).await.context("read")?;
    let emergency = Some(text("unconscious on arrival"));
    let glass = clinic.read_record(&Actor::new(nurse, Role::Nurse), records[1], None, emergency).await.context("break glass")?;
    let request = GrantId::new();
    let ask = GrantCommand::Request {
        grant_id: request,
        patient_id: patients[0],
        requester: nurse,
        scopes: BTreeSet::from([Scope::Read]),
        requested_until: Utc::now() + Duration::days(7),
        reason: text("home care visit"),
    };
    receipts.push(clinic.grant(request, ask, &as_user(nurse, Role::Nurse)).await.context("request")?);
    let deny = GrantCommand::Deny { denied_by: first_patient, reason: text("not needed") };
    receipts.push(clinic.grant(request, deny, &as_user(first_patient, Role::Patient)).await.context("deny")?);

    let erased = patients[2];
    let erase = PatientCommand::Erase { reason: ErasureReason::PatientRequest };
    receipts.push(clinic.patient(erased, erase, &as_user(registrar, Role::Admin)).await.context("erase")?);

    let head = clinic.log().head().await?;
    let events = clinic.log().read(1, usize::try_from(head).unwrap_or(usize::MAX)).await?;
    let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
    for event in &events {
        *by_type.entry(event.event_type.clone()).or_default() += 1;
    }
    let log_text = serde_json::to_string(&events)?;
    let erased_record = clinic.load_record(records[2]).await?;
    let kept_record = clinic.load_record(records[0]).await?;
    let report = json!({
        "log_head": head,
        "events": events.len(),
        "events_by_type": by_type,
        "retry_of_amendment": {"replayed": retried.replayed, "same_position": retried.position == receipts[6].position},
        "plaintext_names_in_log": names.iter().filter(|name| log_text.contains(*name)).count(),
        "amended_record_versions": kept_record.state().versions().len(),
        "reads": {
            "under_grant": {"basis": colleague_read.basis, "disclosure_id": colleague_read.disclosure},
            "break_glass": {"basis": glass.basis, "disclosure_id": glass.disclosure},
        },
        "erased_patient": {
            "patient_id": erased,
            "record_events_still_in_log": erased_record.sequence(),
            "record_content_shredded": erased_record.state().versions().iter().all(|v| v.content.is_shredded()),
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
