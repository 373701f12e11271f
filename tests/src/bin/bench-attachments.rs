//! Attachment sealing throughput beside the raw AEAD, in one run, and the
//! memory a 1 GiB round trip costs.
//!
//! Run with: `cargo run --release -p emr-tests --bin bench-attachments -- [MiB]`
//! (default 1024). Measures:
//! 1. raw XChaCha20-Poly1305 over 64 KiB chunks in place (baseline);
//! 2. `emr_attachments::seal`: STREAM encryption + SHA-256 of the plaintext,
//!    from a generated stream into a sink (no blob store yet);
//! 3. `open` of the sealed bytes from a file, with the digest check;
//! 4. the whole upload through the application layer: authorization, sealing,
//!    hashing, CID computation, the embedded blob store, `AttachmentAdded`;
//! 5. the whole download: authorization, disclosure, decryption, verification;
//!
//! and peak resident memory growth (VmHWM) across 3–4 and across 4–5.
//! Writes `bench-attachments.json`.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::Instant;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use emr_attachments::{BlobHeader, CHUNK_SIZE};
use emr_domain::actor::{Actor, Role};
use emr_domain::fixtures;
use emr_domain::ids::{AttachmentId, PatientId, RecordId, UserId};
use emr_domain::metadata::CommandContext;
use emr_domain::record::RecordCommand;
use emr_domain::values::{MimeType, ShortText};
use emr_eventstore::DataKey;
use serde_json::json;
use tokio::io::AsyncRead;

emr_tests::shipped_allocator!();

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok()).unwrap_or(0)
}

/// A plaintext stream of `size` bytes generated on the fly.
struct Generated {
    left: u64,
    counter: u8,
}

impl AsyncRead for Generated {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.left) as usize;
        let fill = self.counter;
        buf.initialize_unfilled_to(n).fill(fill);
        buf.advance(n);
        self.left -= n as u64;
        self.counter = self.counter.wrapping_add(1);
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::main]
async fn main() {
    let mib: u64 = std::env::args().nth(1).map(|a| a.parse().unwrap()).unwrap_or(1024);
    let size = mib * 1024 * 1024;
    let key = DataKey::generate();
    let header = BlobHeader { patient_id: PatientId::new(), attachment_id: AttachmentId::new() };

    let cipher = XChaCha20Poly1305::new(key.as_bytes().into());
    let mut chunk = vec![0x5a_u8; CHUNK_SIZE];
    let started = Instant::now();
    for i in 0..size / CHUNK_SIZE as u64 {
        let mut nonce = [0_u8; 24];
        nonce[..8].copy_from_slice(&i.to_be_bytes());
        let _tag = cipher.encrypt_in_place_detached(XNonce::from_slice(&nonce), b"", &mut chunk).unwrap();
    }
    let raw = size as f64 / started.elapsed().as_secs_f64() / 1e6;

    let baseline_rss = peak_rss_kib();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob.sealed");
    let started = Instant::now();
    let mut file = tokio::fs::File::create(&path).await.unwrap();
    let sealed = emr_attachments::seal(&key, header, &mut Generated { left: size, counter: 0 }, &mut file).await.unwrap();
    drop(file);
    let seal_mbps = size as f64 / started.elapsed().as_secs_f64() / 1e6;
    let started = Instant::now();
    let mut file = tokio::fs::File::open(&path).await.unwrap();
    let opened = emr_attachments::open(&key, header, &sealed.sha256, &mut file, &mut tokio::io::sink()).await.unwrap();
    let open_mbps = size as f64 / started.elapsed().as_secs_f64() / 1e6;
    assert_eq!(opened.size, size);
    let rss_growth_mib = peak_rss_kib().saturating_sub(baseline_rss) as f64 / 1024.0;

    // The whole pipeline: authorize, seal while storing in the embedded blob
    // store (CID computed as the bytes pass), record AttachmentAdded; then
    // authorize, record the disclosure, open and verify.
    let backend = emr_tests::backends::sqlite().await;
    let clinic = emr_tests::backends::clinic(&backend.backend);
    let doctor = Actor::new(UserId::new(), Role::Physician);
    let patient = PatientId::new();
    clinic.patient(patient, fixtures::register(patient, "Bench"), &CommandContext::new(doctor)).await.unwrap();
    let record = RecordId::new();
    let mut create = fixtures::create_record(record, patient, "Imaging");
    if let RecordCommand::Create { doctor_id, .. } = &mut create {
        *doctor_id = doctor.user_id;
    }
    clinic.record(record, create, &CommandContext::new(doctor)).await.unwrap();
    let store = std::sync::Arc::new(emr_ipfs::LocalBlobStore::open(&dir.path().join("store")).unwrap());
    let attachments = emr_attachments::Attachments::new(clinic, store);
    let before_pipeline = peak_rss_kib();
    let context = CommandContext::new(doctor);
    let upload = emr_attachments::Upload {
        record_id: record,
        attachment_id: AttachmentId::from(context.command_id.as_uuid()),
        mime_type: MimeType::parse("application/octet-stream").unwrap(),
        filename: ShortText::parse("filename", "study.bin").unwrap(),
    };
    let started = Instant::now();
    attachments.upload(&context, upload.clone(), &mut Generated { left: size, counter: 0 }).await.unwrap();
    let store_mbps = size as f64 / started.elapsed().as_secs_f64() / 1e6;
    let started = Instant::now();
    let download = attachments.download(&doctor, record, upload.attachment_id).await.unwrap();
    let read = download.stream_into(&mut tokio::io::sink()).await.unwrap();
    let fetch_mbps = size as f64 / started.elapsed().as_secs_f64() / 1e6;
    assert_eq!(read, size);
    let pipeline_rss_mib = peak_rss_kib().saturating_sub(before_pipeline) as f64 / 1024.0;

    let machine = format!("{} cores, {}", std::thread::available_parallelism().map_or(0, usize::from), std::env::consts::ARCH);
    println!("## Attachment benchmark ({mib} MiB, {machine}; sealed blob on the local disk)\n");
    println!("| what | MB/s | ratio |");
    println!("| --- | ---: | ---: |");
    println!("| raw XChaCha20-Poly1305, 64 KiB chunks in place (baseline) | {raw:.0} | 1.00 |");
    println!("| seal: STREAM encryption + SHA-256, written to a file | {seal_mbps:.0} | {:.2} |", seal_mbps / raw);
    println!("| open: read, decrypt, SHA-256 check | {open_mbps:.0} | {:.2} |", open_mbps / raw);
    println!("| upload: authorize + seal + SHA-256 + CID + store + AttachmentAdded | {store_mbps:.0} | {:.2} |", store_mbps / raw);
    println!("| download: authorize + disclosure + read + decrypt + verify | {fetch_mbps:.0} | {:.2} |", fetch_mbps / raw);
    println!("\npeak resident memory growth: {rss_growth_mib:.1} MiB (seal and open), {pipeline_rss_mib:.1} MiB (upload and download)");
    let report = json!({
        "machine": machine, "mib": mib, "raw_aead_mbps": raw, "seal_mbps": seal_mbps, "open_mbps": open_mbps,
        "seal_over_raw": seal_mbps / raw, "open_over_raw": open_mbps / raw, "peak_rss_growth_mib": rss_growth_mib,
        "upload_mbps": store_mbps, "download_mbps": fetch_mbps, "upload_over_raw": store_mbps / raw,
        "pipeline_peak_rss_growth_mib": pipeline_rss_mib,
    });
    println!("\n{report}");
    std::fs::write("bench-attachments.json", serde_json::to_string_pretty(&report).unwrap()).unwrap();
}
