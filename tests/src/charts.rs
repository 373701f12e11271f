//! Patients, records and uploaded scans written as the system actor: the set-up
//! of tests about what happens to a chart downstream (keys, replication, rules
//! that span aggregates), where authorization is not the subject.

use emr_attachments::{Attachments, Upload};
use emr_commands::Clinic;
use emr_domain::actor::Actor;
use emr_domain::fixtures::{create_record, register, text};
use emr_domain::ids::{AttachmentId, PatientId, RecordId};
use emr_domain::metadata::CommandContext;
use emr_domain::values::MimeType;

/// The system actor's context.
pub fn system() -> CommandContext {
    CommandContext::new(Actor::system())
}

/// Registers a patient named `name`.
pub async fn registered_patient(clinic: &Clinic, name: &str) -> PatientId {
    let patient = PatientId::new();
    clinic.patient(patient, register(patient, name), &system()).await.expect("registering a patient");
    patient
}

/// Creates a record of `patient` and uploads `scan` to it as a PNG.
pub async fn record_with_scan(clinic: &Clinic, attachments: &Attachments, patient: PatientId, scan: &[u8]) -> (RecordId, AttachmentId) {
    let (record, attachment) = (RecordId::new(), AttachmentId::new());
    clinic.record(record, create_record(record, patient, "Imaging study"), &system()).await.expect("creating a record");
    let upload = Upload {
        record_id: record,
        attachment_id: attachment,
        mime_type: MimeType::parse("image/png").expect("a valid MIME type"),
        filename: text("scan.png"),
    };
    attachments.upload(&system(), upload, &mut &scan[..]).await.expect("uploading a scan");
    (record, attachment)
}
