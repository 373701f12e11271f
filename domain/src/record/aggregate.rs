use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};

use super::commands::{AttachmentDescriptor, RecordCommand};
use super::events::RecordEvent;
use crate::clock::DomainServices;
use crate::decided::write_decided;
use crate::diagnosis::{Finding, ModelRef, REVIEW_NOTICE, Review, ReviewOutcome, Suggestion};
use crate::ids::{AttachmentId, HospitalId, PatientId, RecordId, SuggestionId, UserId};
use crate::phi::Phi;
use crate::values::{ContentId, InvalidValue, MimeType, RecordContent, RecordType, Sha256Digest, ShortText};

/// Why a record command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Create on an existing record.
    #[error("the record already exists")]
    AlreadyExists,
    /// Any command but Create on a record that does not exist.
    #[error("the record does not exist")]
    NotFound,
    /// Amend or attach on a deleted record.
    #[error("the record is deleted")]
    Deleted,
    /// Restore on a record that is not deleted.
    #[error("the record is not deleted")]
    NotDeleted,
    /// An attachment id used twice.
    #[error("the record already has this attachment")]
    DuplicateAttachment,
    /// More attachments than a record may hold.
    #[error("the record has too many attachments")]
    TooManyAttachments,
    /// An amendment that changes nothing.
    #[error("the amendment does not change the content")]
    UnchangedContent,
    /// A visit date after today.
    #[error("the visit date lies in the future")]
    VisitDateInFuture,
    /// A suggestion for an attachment the record does not have.
    #[error("the record has no such attachment")]
    UnknownAttachment,
    /// A suggestion whose input is not the attachment's bytes.
    #[error("the suggestion read other bytes than the attachment's")]
    InputMismatch,
    /// A suggestion id used twice.
    #[error("the record already has this suggestion")]
    DuplicateSuggestion,
    /// More suggestions than a record may hold.
    #[error("the record has too many suggestions")]
    TooManySuggestions,
    /// A review of a suggestion the record does not have.
    #[error("the record has no such suggestion")]
    UnknownSuggestion,
    /// A second review of the same suggestion.
    #[error("the suggestion has already been reviewed")]
    AlreadyReviewed,
    /// Accepting a suggestion that named no class.
    #[error("an inconclusive suggestion cannot be accepted")]
    NothingToAccept,
    /// A correction without the right answer, or another verdict with one.
    #[error("a correction, and only a correction, carries the right answer")]
    CorrectionMismatch,
    /// A field failed its cross-field rules.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
}

/// Lifecycle of a record.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// Not created yet.
    #[default]
    Absent,
    /// Active.
    Active,
    /// Soft-deleted: readable by auditors, closed to changes until restored.
    Deleted,
}

/// One version of a record's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordVersion {
    /// 1 for the created content, then 2, 3, …
    pub version: u32,
    /// The content of that version.
    pub content: Phi<RecordContent>,
    /// Why it was amended (none for version 1).
    pub reason: Option<Phi<ShortText>>,
}

/// Attachment facts the record keeps to enforce its rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentSummary {
    /// The attachment.
    pub attachment_id: AttachmentId,
    /// Plaintext size.
    pub size_bytes: u64,
    /// Plaintext SHA-256.
    pub sha256: Sha256Digest,
    /// Content id of the sealed blob (absent in snapshots taken before it was kept).
    #[serde(default)]
    pub content_id: Option<ContentId>,
    /// MIME type of the plaintext.
    #[serde(default)]
    pub mime_type: Option<MimeType>,
}

/// A suggestion as the record holds it: what its rules need and what a
/// reader (the report, the API) shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuggestionSummary {
    /// The suggestion.
    pub suggestion_id: SuggestionId,
    /// Whether it named a class (an inconclusive one cannot be accepted).
    pub conclusive: bool,
    /// The attachment it read.
    pub attachment_id: AttachmentId,
    /// The exact model.
    pub model: ModelRef,
    /// What the model found (PHI).
    pub finding: Phi<Finding>,
    /// The explanation image, an attachment of the record.
    #[serde(default)]
    pub explanation: Option<AttachmentId>,
    /// The physician's review, once there is one.
    #[serde(default)]
    pub review: Option<ReviewSummary>,
}

/// A physician's verdict as the record holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewSummary {
    /// The physician.
    pub reviewer_id: UserId,
    /// Accepted, rejected or corrected.
    pub outcome: ReviewOutcome,
    /// The right answer, when corrected (PHI).
    pub correction: Option<Phi<ShortText>>,
    /// A remark (PHI).
    pub note: Option<Phi<ShortText>>,
}

/// A medical record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MedicalRecord {
    record_id: Option<RecordId>,
    patient_id: Option<PatientId>,
    doctor_id: Option<UserId>,
    hospital_id: Option<HospitalId>,
    record_type: Option<RecordType>,
    visit_date: Option<NaiveDate>,
    versions: Vec<RecordVersion>,
    attachments: Vec<AttachmentSummary>,
    /// Absent in snapshots taken before suggestions existed.
    #[serde(default)]
    suggestions: Vec<SuggestionSummary>,
    status: RecordStatus,
}

impl MedicalRecord {
    /// Most attachments one record may hold.
    pub const MAX_ATTACHMENTS: usize = 1000;

    /// Most AI-assisted suggestions one record may hold.
    pub const MAX_SUGGESTIONS: usize = 1000;

    /// The record's id, once created.
    pub fn id(&self) -> Option<RecordId> {
        self.record_id
    }

    /// The patient the record belongs to.
    pub fn patient_id(&self) -> Option<PatientId> {
        self.patient_id
    }

    /// Lifecycle status.
    pub fn status(&self) -> RecordStatus {
        self.status
    }

    /// The responsible doctor.
    pub fn doctor_id(&self) -> Option<UserId> {
        self.doctor_id
    }

    /// Hospital of the visit.
    pub fn hospital_id(&self) -> Option<&HospitalId> {
        self.hospital_id.as_ref()
    }

    /// Date of the visit.
    pub fn visit_date(&self) -> Option<NaiveDate> {
        self.visit_date
    }

    /// Kind of record.
    pub fn record_type(&self) -> Option<RecordType> {
        self.record_type
    }

    /// Every version, oldest first.
    pub fn versions(&self) -> &[RecordVersion] {
        &self.versions
    }

    /// The current version.
    pub fn current(&self) -> Option<&RecordVersion> {
        self.versions.last()
    }

    /// Attachments, in the order they were added.
    pub fn attachments(&self) -> &[AttachmentSummary] {
        &self.attachments
    }

    /// AI-assisted suggestions, in the order they were made.
    pub fn suggestions(&self) -> &[SuggestionSummary] {
        &self.suggestions
    }

    fn subject(&self) -> Result<PatientId, RecordError> {
        self.patient_id.ok_or(RecordError::NotFound)
    }

    fn ensure_open(&self) -> Result<PatientId, RecordError> {
        match self.status {
            RecordStatus::Absent => Err(RecordError::NotFound),
            RecordStatus::Deleted => Err(RecordError::Deleted),
            RecordStatus::Active => self.subject(),
        }
    }

    /// The business rules: which events `command` produces, or why it is refused.
    pub fn decide(&self, command: RecordCommand, now: DateTime<Utc>) -> Result<Vec<RecordEvent>, RecordError> {
        match command {
            RecordCommand::Create { record_id, patient_id, doctor_id, hospital_id, record_type, visit_date, content } => {
                if self.status != RecordStatus::Absent {
                    return Err(RecordError::AlreadyExists);
                }
                if visit_date > now.date_naive() {
                    return Err(RecordError::VisitDateInFuture);
                }
                content.validate()?;
                Ok(vec![RecordEvent::RecordCreated {
                    record_id,
                    patient_id,
                    doctor_id,
                    hospital_id,
                    record_type,
                    visit_date,
                    content: Phi::new(patient_id, content),
                }])
            }
            RecordCommand::Amend { content, reason } => {
                let subject = self.ensure_open()?;
                content.validate()?;
                if self.current().and_then(|v| v.content.value()) == Some(&content) {
                    return Err(RecordError::UnchangedContent);
                }
                Ok(vec![RecordEvent::RecordAmended {
                    version: self.next_version(),
                    content: Phi::new(subject, content),
                    reason: Phi::new(subject, reason),
                }])
            }
            RecordCommand::AddAttachment(AttachmentDescriptor {
                attachment_id,
                content_id,
                mime_type,
                size_bytes,
                sha256,
                filename,
                dicom,
            }) => {
                let subject = self.ensure_open()?;
                if self.attachments.iter().any(|a| a.attachment_id == attachment_id) {
                    return Err(RecordError::DuplicateAttachment);
                }
                if self.attachments.len() >= Self::MAX_ATTACHMENTS {
                    return Err(RecordError::TooManyAttachments);
                }
                Ok(vec![RecordEvent::AttachmentAdded {
                    attachment_id,
                    content_id,
                    mime_type,
                    size_bytes,
                    sha256,
                    filename: Phi::new(subject, filename),
                    dicom,
                }])
            }
            RecordCommand::Delete { reason } => {
                let subject = self.ensure_open()?;
                Ok(vec![RecordEvent::RecordDeleted { reason: Phi::new(subject, reason) }])
            }
            RecordCommand::Restore { reason } => match self.status {
                RecordStatus::Absent => Err(RecordError::NotFound),
                RecordStatus::Active => Err(RecordError::NotDeleted),
                RecordStatus::Deleted => Ok(vec![RecordEvent::RecordRestored { reason: Phi::new(self.subject()?, reason) }]),
            },
            RecordCommand::SuggestDiagnosis(suggestion) => self.decide_suggestion(suggestion),
            RecordCommand::ReviewDiagnosis(review) => self.decide_review(review),
        }
    }

    fn decide_suggestion(&self, suggestion: Suggestion) -> Result<Vec<RecordEvent>, RecordError> {
        let subject = self.ensure_open()?;
        let attachment =
            self.attachments.iter().find(|a| a.attachment_id == suggestion.attachment_id).ok_or(RecordError::UnknownAttachment)?;
        if attachment.sha256 != suggestion.input_sha256 {
            return Err(RecordError::InputMismatch);
        }
        if suggestion.explanation.is_some_and(|id| self.attachments.iter().all(|a| a.attachment_id != id)) {
            return Err(RecordError::UnknownAttachment);
        }
        if self.suggestions.iter().any(|s| s.suggestion_id == suggestion.suggestion_id) {
            return Err(RecordError::DuplicateSuggestion);
        }
        if self.suggestions.len() >= Self::MAX_SUGGESTIONS {
            return Err(RecordError::TooManySuggestions);
        }
        Ok(vec![RecordEvent::DiagnosisSuggested {
            suggestion_id: suggestion.suggestion_id,
            attachment_id: suggestion.attachment_id,
            input_sha256: suggestion.input_sha256,
            model: suggestion.model,
            preprocessing: suggestion.preprocessing,
            finding: Phi::new(subject, suggestion.finding),
            notice: REVIEW_NOTICE.to_owned(),
            explanation: suggestion.explanation,
        }])
    }

    fn decide_review(&self, review: Review) -> Result<Vec<RecordEvent>, RecordError> {
        let subject = self.ensure_open()?;
        let suggestion = self.suggestions.iter().find(|s| s.suggestion_id == review.suggestion_id).ok_or(RecordError::UnknownSuggestion)?;
        if suggestion.review.is_some() {
            return Err(RecordError::AlreadyReviewed);
        }
        match (review.outcome, &review.correction) {
            (ReviewOutcome::Accepted, _) if !suggestion.conclusive => return Err(RecordError::NothingToAccept),
            (ReviewOutcome::Corrected, None) | (ReviewOutcome::Accepted | ReviewOutcome::Rejected, Some(_)) => {
                return Err(RecordError::CorrectionMismatch);
            }
            _ => {}
        }
        Ok(vec![RecordEvent::DiagnosisReviewed {
            suggestion_id: review.suggestion_id,
            reviewer_id: review.reviewer_id,
            outcome: review.outcome,
            correction: review.correction.map(|c| Phi::new(subject, c)),
            note: review.note.map(|n| Phi::new(subject, n)),
        }])
    }

    fn next_version(&self) -> u32 {
        self.versions.last().map_or(1, |v| v.version + 1)
    }
}

impl Aggregate for MedicalRecord {
    const TYPE: &'static str = "medical_record";
    type Command = RecordCommand;
    type Event = RecordEvent;
    type Error = RecordError;
    type Services = DomainServices;

    async fn handle(&mut self, command: Self::Command, services: &Self::Services, sink: &EventSink<Self>) -> Result<(), Self::Error> {
        let decided = self.decide(command, services.now());
        write_decided(self, decided, sink).await
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            RecordEvent::RecordCreated { record_id, patient_id, doctor_id, hospital_id, record_type, visit_date, content } => {
                self.record_id = Some(record_id);
                self.patient_id = Some(patient_id);
                self.doctor_id = Some(doctor_id);
                self.hospital_id = Some(hospital_id);
                self.record_type = Some(record_type);
                self.visit_date = Some(visit_date);
                self.versions = vec![RecordVersion { version: 1, content, reason: None }];
                self.status = RecordStatus::Active;
            }
            RecordEvent::RecordAmended { version, content, reason } => {
                self.versions.push(RecordVersion { version, content, reason: Some(reason) });
            }
            RecordEvent::AttachmentAdded { attachment_id, size_bytes, sha256, content_id, mime_type, .. } => {
                self.attachments.push(AttachmentSummary {
                    attachment_id,
                    size_bytes,
                    sha256,
                    content_id: Some(content_id),
                    mime_type: Some(mime_type),
                });
            }
            RecordEvent::RecordDeleted { .. } => self.status = RecordStatus::Deleted,
            RecordEvent::RecordRestored { .. } => self.status = RecordStatus::Active,
            RecordEvent::DiagnosisSuggested { suggestion_id, attachment_id, model, finding, explanation, .. } => {
                // A finding that cannot be unsealed (the patient was erased) is
                // taken as conclusive: nothing is left to contradict a verdict.
                let conclusive = finding.value().is_none_or(|f| f.top.is_some());
                self.suggestions.push(SuggestionSummary {
                    suggestion_id,
                    conclusive,
                    attachment_id,
                    model,
                    finding,
                    explanation,
                    review: None,
                });
            }
            RecordEvent::DiagnosisReviewed { suggestion_id, reviewer_id, outcome, correction, note } => {
                if let Some(suggestion) = self.suggestions.iter_mut().find(|s| s.suggestion_id == suggestion_id) {
                    suggestion.review = Some(ReviewSummary { reviewer_id, outcome, correction, note });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{content, now, text};
    use crate::values::{ContentId, MimeType};
    use cqrs_es::test::TestFramework;

    type RecordTest = TestFramework<MedicalRecord>;

    fn services() -> DomainServices {
        DomainServices::fixed(now())
    }

    fn ids() -> (RecordId, PatientId) {
        (RecordId::new(), PatientId::new())
    }

    fn created(record_id: RecordId, patient_id: PatientId) -> RecordEvent {
        RecordEvent::RecordCreated {
            record_id,
            patient_id,
            doctor_id: UserId::from(uuid::Uuid::nil()),
            hospital_id: HospitalId::parse("HOSP-001").unwrap(),
            record_type: RecordType::Consultation,
            visit_date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
            content: Phi::new(patient_id, content("Visit")),
        }
    }

    fn create(record_id: RecordId, patient_id: PatientId, visit_date: NaiveDate) -> RecordCommand {
        RecordCommand::Create {
            record_id,
            patient_id,
            doctor_id: UserId::from(uuid::Uuid::nil()),
            hospital_id: HospitalId::parse("HOSP-001").unwrap(),
            record_type: RecordType::Consultation,
            visit_date,
            content: content("Visit"),
        }
    }

    fn attachment() -> AttachmentDescriptor {
        AttachmentDescriptor {
            attachment_id: AttachmentId::new(),
            content_id: ContentId::parse("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG").unwrap(),
            mime_type: MimeType::parse("application/dicom").unwrap(),
            size_bytes: 1024,
            sha256: Sha256Digest::from_bytes([7; 32]),
            filename: text("chest.dcm"),
            dicom: None,
        }
    }

    fn deleted(patient_id: PatientId) -> RecordEvent {
        RecordEvent::RecordDeleted { reason: Phi::new(patient_id, text("entered in error")) }
    }

    #[test]
    fn creating_a_record_binds_it_to_its_patient() {
        let (record, patient) = ids();
        RecordTest::with(services())
            .given_no_previous_events()
            .when(create(record, patient, NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()))
            .then_expect_events(vec![created(record, patient)]);
    }

    #[test]
    fn a_visit_in_the_future_is_refused() {
        let (record, patient) = ids();
        RecordTest::with(services())
            .given_no_previous_events()
            .when(create(record, patient, NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()))
            .then_expect_error(RecordError::VisitDateInFuture);
    }

    #[test]
    fn a_record_cannot_be_created_twice() {
        let (record, patient) = ids();
        RecordTest::with(services())
            .given(vec![created(record, patient)])
            .when(create(record, patient, NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()))
            .then_expect_error(RecordError::AlreadyExists);
    }

    #[test]
    fn an_amendment_creates_the_next_version_with_its_reason() {
        let (record, patient) = ids();
        RecordTest::with(services())
            .given(vec![created(record, patient)])
            .when(RecordCommand::Amend { content: content("Visit (corrected)"), reason: text("typo in title") })
            .then_expect_events(vec![RecordEvent::RecordAmended {
                version: 2,
                content: Phi::new(patient, content("Visit (corrected)")),
                reason: Phi::new(patient, text("typo in title")),
            }]);
    }

    #[test]
    fn an_amendment_that_changes_nothing_is_refused() {
        let (record, patient) = ids();
        RecordTest::with(services())
            .given(vec![created(record, patient)])
            .when(RecordCommand::Amend { content: content("Visit"), reason: text("no-op") })
            .then_expect_error(RecordError::UnchangedContent);
    }

    #[test]
    fn amendments_and_attachments_are_refused_on_a_deleted_record() {
        let (record, patient) = ids();
        RecordTest::with(services())
            .given(vec![created(record, patient), deleted(patient)])
            .when(RecordCommand::Amend { content: content("Changed"), reason: text("why") })
            .then_expect_error(RecordError::Deleted);
        RecordTest::with(services())
            .given(vec![created(record, patient), deleted(patient)])
            .when(RecordCommand::AddAttachment(attachment()))
            .then_expect_error(RecordError::Deleted);
    }

    #[test]
    fn the_same_attachment_cannot_be_added_twice() {
        let (record, patient) = ids();
        let file = attachment();
        let added = MedicalRecord::default().decide(RecordCommand::AddAttachment(file.clone()), now());
        assert_eq!(added, Err(RecordError::NotFound));
        let mut state = MedicalRecord::default();
        state.apply(created(record, patient));
        let events = state.decide(RecordCommand::AddAttachment(file.clone()), now()).unwrap();
        events.into_iter().for_each(|e| state.apply(e));
        assert_eq!(state.decide(RecordCommand::AddAttachment(file), now()), Err(RecordError::DuplicateAttachment));
    }

    #[test]
    fn only_a_deleted_record_can_be_restored() {
        let (record, patient) = ids();
        RecordTest::with(services())
            .given(vec![created(record, patient)])
            .when(RecordCommand::Restore { reason: text("why") })
            .then_expect_error(RecordError::NotDeleted);
        RecordTest::with(services())
            .given(vec![created(record, patient), deleted(patient)])
            .when(RecordCommand::Restore { reason: text("deleted by mistake") })
            .then_expect_events(vec![RecordEvent::RecordRestored { reason: Phi::new(patient, text("deleted by mistake")) }]);
    }

    #[test]
    fn previous_versions_are_kept_after_amendments() {
        let (record, patient) = ids();
        let mut state = MedicalRecord::default();
        state.apply(created(record, patient));
        for title in ["v2", "v3"] {
            let events = state.decide(RecordCommand::Amend { content: content(title), reason: text("update") }, now()).unwrap();
            events.into_iter().for_each(|e| state.apply(e));
        }
        let titles: Vec<_> = state.versions().iter().map(|v| v.content.value().unwrap().title.as_str().to_owned()).collect();
        assert_eq!(titles, ["Visit", "v2", "v3"]);
        assert_eq!(state.current().map(|v| v.version), Some(3));
    }

    fn suggestion(attachment: &AttachmentDescriptor, conclusive: bool) -> Suggestion {
        use crate::diagnosis::{ClassProbability, Finding, ModelRef};
        Suggestion {
            suggestion_id: SuggestionId::new(),
            attachment_id: attachment.attachment_id,
            input_sha256: attachment.sha256,
            model: ModelRef { name: "brain-tumour-vgg16".into(), version: "0.1.1".into(), sha256: Sha256Digest::from_bytes([3; 32]) },
            preprocessing: serde_json::json!({ "resize_filter": "catmull-rom" }),
            finding: Finding {
                probabilities: vec![
                    ClassProbability { label: "glioma".into(), probability: 0.55 },
                    ClassProbability { label: "notumor".into(), probability: 0.45 },
                ],
                top: conclusive.then(|| "glioma".into()),
                confidence: 0.55,
            },
            explanation: None,
        }
    }

    fn suggested(patient: PatientId, suggestion: &Suggestion) -> RecordEvent {
        RecordEvent::DiagnosisSuggested {
            suggestion_id: suggestion.suggestion_id,
            attachment_id: suggestion.attachment_id,
            input_sha256: suggestion.input_sha256,
            model: suggestion.model.clone(),
            preprocessing: suggestion.preprocessing.clone(),
            finding: Phi::new(patient, suggestion.finding.clone()),
            notice: REVIEW_NOTICE.to_owned(),
            explanation: suggestion.explanation,
        }
    }

    fn attached(patient: PatientId, a: &AttachmentDescriptor) -> RecordEvent {
        RecordEvent::AttachmentAdded {
            attachment_id: a.attachment_id,
            content_id: a.content_id.clone(),
            mime_type: a.mime_type.clone(),
            size_bytes: a.size_bytes,
            sha256: a.sha256,
            filename: Phi::new(patient, a.filename.clone()),
            dicom: None,
        }
    }

    fn review(suggestion: &Suggestion, outcome: ReviewOutcome, correction: Option<&str>) -> RecordCommand {
        RecordCommand::ReviewDiagnosis(Review {
            suggestion_id: suggestion.suggestion_id,
            reviewer_id: UserId::from(uuid::Uuid::nil()),
            outcome,
            correction: correction.map(text),
            note: None,
        })
    }

    #[test]
    fn a_suggestion_on_an_attachment_is_recorded_with_the_review_notice() {
        let (record, patient) = ids();
        let scan = attachment();
        let s = suggestion(&scan, true);
        RecordTest::with(services())
            .given(vec![created(record, patient), attached(patient, &scan)])
            .when(RecordCommand::SuggestDiagnosis(s.clone()))
            .then_expect_events(vec![suggested(patient, &s)]);
    }

    #[test]
    fn a_suggestion_must_read_an_attachment_of_the_record_byte_for_byte() {
        let (record, patient) = ids();
        let scan = attachment();
        RecordTest::with(services())
            .given(vec![created(record, patient)])
            .when(RecordCommand::SuggestDiagnosis(suggestion(&scan, true)))
            .then_expect_error(RecordError::UnknownAttachment);
        let mut other_bytes = suggestion(&scan, true);
        other_bytes.input_sha256 = Sha256Digest::from_bytes([8; 32]);
        RecordTest::with(services())
            .given(vec![created(record, patient), attached(patient, &scan)])
            .when(RecordCommand::SuggestDiagnosis(other_bytes))
            .then_expect_error(RecordError::InputMismatch);
    }

    #[test]
    fn a_suggestion_explained_by_an_image_must_name_an_attachment_of_the_record() {
        let (record, patient) = ids();
        let scan = attachment();
        let mut explained = suggestion(&scan, true);
        explained.explanation = Some(AttachmentId::new());
        RecordTest::with(services())
            .given(vec![created(record, patient), attached(patient, &scan)])
            .when(RecordCommand::SuggestDiagnosis(explained.clone()))
            .then_expect_error(RecordError::UnknownAttachment);
        let heat_map = AttachmentDescriptor { attachment_id: AttachmentId::new(), ..scan.clone() };
        explained.explanation = Some(heat_map.attachment_id);
        RecordTest::with(services())
            .given(vec![created(record, patient), attached(patient, &scan), attached(patient, &heat_map)])
            .when(RecordCommand::SuggestDiagnosis(explained.clone()))
            .then_expect_events(vec![suggested(patient, &explained)]);
    }

    #[test]
    fn a_physician_accepts_rejects_or_corrects_a_suggestion_once() {
        let (record, patient) = ids();
        let scan = attachment();
        let s = suggestion(&scan, true);
        let given = vec![created(record, patient), attached(patient, &scan), suggested(patient, &s)];
        RecordTest::with(services())
            .given(given.clone())
            .when(review(&s, ReviewOutcome::Corrected, Some("meningioma")))
            .then_expect_events(vec![RecordEvent::DiagnosisReviewed {
                suggestion_id: s.suggestion_id,
                reviewer_id: UserId::from(uuid::Uuid::nil()),
                outcome: ReviewOutcome::Corrected,
                correction: Some(Phi::new(patient, text("meningioma"))),
                note: None,
            }]);
        let mut reviewed = given.clone();
        reviewed.push(RecordEvent::DiagnosisReviewed {
            suggestion_id: s.suggestion_id,
            reviewer_id: UserId::new(),
            outcome: ReviewOutcome::Accepted,
            correction: None,
            note: None,
        });
        RecordTest::with(services())
            .given(reviewed)
            .when(review(&s, ReviewOutcome::Rejected, None))
            .then_expect_error(RecordError::AlreadyReviewed);
        RecordTest::with(services())
            .given(given.clone())
            .when(review(&s, ReviewOutcome::Corrected, None))
            .then_expect_error(RecordError::CorrectionMismatch);
        RecordTest::with(services())
            .given(given)
            .when(review(&s, ReviewOutcome::Accepted, Some("glioma")))
            .then_expect_error(RecordError::CorrectionMismatch);
    }

    #[test]
    fn an_inconclusive_suggestion_cannot_be_accepted_and_an_unknown_one_not_reviewed() {
        let (record, patient) = ids();
        let scan = attachment();
        let s = suggestion(&scan, false);
        let given = vec![created(record, patient), attached(patient, &scan), suggested(patient, &s)];
        RecordTest::with(services())
            .given(given.clone())
            .when(review(&s, ReviewOutcome::Accepted, None))
            .then_expect_error(RecordError::NothingToAccept);
        let stranger = suggestion(&scan, true);
        RecordTest::with(services())
            .given(given)
            .when(review(&stranger, ReviewOutcome::Rejected, None))
            .then_expect_error(RecordError::UnknownSuggestion);
    }
}
