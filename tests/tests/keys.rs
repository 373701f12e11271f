//! The key service on disk, on both backends: rotating the key-encryption key
//! re-wraps data keys without touching events or blobs, and erasing a patient
//! leaves no readable copy of their data key anywhere the backend writes.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use emr_attachments::{Attachments, BlobHeader};
use emr_commands::Clinic;
use emr_domain::actor::Actor;
use emr_domain::ids::{AttachmentId, PatientId, RecordId};
use emr_domain::patient::{ErasureReason, PatientCommand};
use emr_eventstore::conformance::Backend;
use emr_eventstore::{KeyCensus, KeyState, KeyVault, LogReader, Rotation};
use emr_ipfs::LocalBlobStore;
use emr_keyring::Keyring;
use emr_tests::backends::{self, TestBackend, clinic};
use emr_tests::charts::{record_with_scan, registered_patient, system};

const OLD_KEK: &str = "test-kek:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const NEW_KEK: &str = "kek-2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

fn scan() -> Vec<u8> {
    (0..300_000_u32).map(|i| (i % 251) as u8).collect()
}

/// A clinic with attachments kept in `blob_dir`.
struct Chart {
    clinic: Clinic,
    attachments: Attachments,
}

impl Chart {
    fn open(backend: &Backend, blob_dir: &Path) -> Self {
        let clinic = clinic(backend);
        let blobs = Arc::new(LocalBlobStore::open(blob_dir).unwrap());
        Self { attachments: Attachments::new(clinic.clone(), blobs), clinic }
    }

    async fn patient(&self, name: &str) -> PatientId {
        registered_patient(&self.clinic, name).await
    }

    /// A record of `patient` with one attachment; returns both ids.
    async fn scanned_record(&self, patient: PatientId) -> (RecordId, AttachmentId) {
        record_with_scan(&self.clinic, &self.attachments, patient, &scan()).await
    }

    async fn download(&self, record: RecordId, attachment: AttachmentId) -> Result<Vec<u8>, emr_attachments::AttachmentError> {
        let download = self.attachments.download(&Actor::system(), record, attachment).await?;
        let mut plaintext = Vec::new();
        download.stream_into(&mut plaintext).await?;
        Ok(plaintext)
    }

    async fn erase(&self, patient: PatientId) {
        self.clinic.patient(patient, PatientCommand::Erase { reason: ErasureReason::PatientRequest }, &system()).await.unwrap();
    }
}

fn with_kek(backend: &Backend, keyring: &str) -> Backend {
    Backend { kek: Arc::new(Keyring::parse(keyring).unwrap()), ..backend.clone() }
}

async fn rotating_the_kek_rewraps_every_live_key_and_touches_no_event_or_blob(test: TestBackend) {
    let blob_dir = tempfile::tempdir().unwrap();
    let chart = Chart::open(&test.backend, blob_dir.path());
    let (alice, bob, erased) = (chart.patient("Alice Wong").await, chart.patient("Bob Chen").await, chart.patient("Carol Li").await);
    let (record, attachment) = chart.scanned_record(alice).await;
    chart.erase(erased).await;
    let events_before = LogReader::new(test.backend.log.clone()).read(1, 10_000).await.unwrap();
    let blobs_before = files_under(blob_dir.path());

    let rotating = KeyVault::new(with_kek(&test.backend, &format!("{NEW_KEK}\n{OLD_KEK}")).kek, test.backend.keys.clone());
    let rotation = rotating.rotate().await.unwrap();
    assert_eq!(rotation, Rotation { active_kek: "kek-2".into(), rewrapped: 2, already_current: 0, destroyed: 1 });
    let again = rotating.rotate().await.unwrap();
    assert_eq!((again.rewrapped, again.already_current, again.destroyed), (0, 2, 1), "a second run finds nothing to do");
    let census = rotating.census().await.unwrap();
    assert_eq!(census, KeyCensus { wrapped_by: [("kek-2".to_owned(), 2)].into(), destroyed: 1 }, "the old KEK wraps nothing now");

    assert_eq!(LogReader::new(test.backend.log.clone()).read(1, 10_000).await.unwrap(), events_before, "no event was rewritten");
    assert_eq!(files_under(blob_dir.path()), blobs_before, "no blob was re-encrypted");

    let retired = Chart::open(&with_kek(&test.backend, NEW_KEK), blob_dir.path());
    for patient in [alice, bob] {
        let loaded = retired.clinic.load_patient(patient).await.unwrap();
        assert!(loaded.state().demographics().unwrap().value().is_some(), "PHI opens with the old KEK gone from the keyring");
    }
    assert_eq!(retired.download(record, attachment).await.unwrap(), scan(), "the blob opens with the same data key");
    let unrotated = Chart::open(&with_kek(&test.backend, OLD_KEK), blob_dir.path());
    assert!(unrotated.download(record, attachment).await.is_err(), "the retired KEK alone no longer unwraps anything");
}

async fn erasure_leaves_no_readable_copy_of_the_data_key_and_no_key_opens_the_blob(test: TestBackend) {
    let blob_dir = tempfile::tempdir().unwrap();
    let chart = Chart::open(&test.backend, blob_dir.path());
    let (patient, neighbour) = (chart.patient("Zhao Xiaoling").await, chart.patient("Qian Wei").await);
    let (record, attachment) = chart.scanned_record(patient).await;
    chart.scanned_record(neighbour).await;
    let summary = chart.clinic.attachment_metadata(&Actor::system(), record, attachment).await.unwrap();
    let KeyState::Active { wrapped } = test.backend.keys.get(patient).await.unwrap() else { panic!("the upload created a data key") };
    let wrapped_bytes = wrapped.ciphertext.as_bytes();
    assert!(
        eventually_on_disk(test.storage_dir(), wrapped_bytes).await,
        "control: the scan finds the wrapped key while it is live, so its absence later means something"
    );
    // A copy of the ciphertext that outlives erasure: a backup, or another IPFS node.
    let surviving_copy = std::fs::read(blob_dir.path().join("blobs").join(summary.content_id.as_ref().unwrap().as_str())).unwrap();

    chart.erase(patient).await;

    assert_eq!(test.backend.keys.get(patient).await.unwrap(), KeyState::Destroyed);
    assert!(!on_disk(test.storage_dir(), wrapped_bytes), "no file of the backend still holds the wrapped data key");
    let refused = chart.download(record, attachment).await;
    assert!(matches!(refused, Err(emr_attachments::AttachmentError::Erased)), "{refused:?}");
    let header = BlobHeader { patient_id: patient, attachment_id: attachment };
    let mut live_keys = 0;
    for subject in test.backend.keys.subjects().await.unwrap() {
        let Some(key) = chart.clinic.vault().key_for_opening(subject).await.unwrap() else { continue };
        live_keys += 1;
        let opened = emr_attachments::open(&key, header, &summary.sha256, &mut surviving_copy.as_slice(), &mut Vec::new()).await;
        assert!(opened.is_err(), "the key of {subject} opened an erased patient's blob");
    }
    assert_eq!(live_keys, 1, "the neighbour's key was tried");
}

/// Every file under `dir`, by path, with its bytes.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}

fn on_disk(dir: &Path, needle: &[u8]) -> bool {
    files_under(dir).iter().any(|(_, bytes)| bytes.windows(needle.len()).any(|window| window == needle))
}

/// JetStream writes its blocks a moment after acknowledging.
async fn eventually_on_disk(dir: &Path, needle: &[u8]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if on_disk(dir, needle) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

macro_rules! on_every_backend_with_storage {
    ($($check:ident),+ $(,)?) => {
        on_every_backend_with_storage!(@ jetstream: $($check),+);
        on_every_backend_with_storage!(@ sqlite: $($check),+);
    };
    (@ $backend:ident: $($check:ident),+) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::backends::$backend().await).await;
                }
            )+
        }
    };
}

on_every_backend_with_storage!(
    rotating_the_kek_rewraps_every_live_key_and_touches_no_event_or_blob,
    erasure_leaves_no_readable_copy_of_the_data_key_and_no_key_opens_the_blob,
);
