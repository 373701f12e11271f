//! Fuzz targets for every decoder that reads untrusted bytes, run as proptest
//! campaigns of structure-aware mutations of real inputs (bit flips,
//! truncations, deletions, insertions of JSON and length tokens):
//!
//! - command JSON as clients send it,
//! - commits as the event stream delivers them (decoded, upcast, projected),
//! - inclusion receipts and Merkle proofs as auditors receive them,
//! - DICOM headers of uploads,
//! - content ids and the blocks they name,
//! - sealed attachment streams as a blob store returns them.
//!
//! No target may panic; memory is capped (`cap`) so an input that makes a
//! decoder allocate without bound fails the run. Cases per target:
//! `EMR_FUZZ_CASES` (default 300; `tests/reliability.sh --heavy` runs 20,000),
//! from the seed `EMR_FUZZ_SEED` (fixed by default).

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use emr_domain::ids::{AttachmentId, PatientId};
use emr_eventstore::{CommitRecord, LogReader, StoredCommit};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::json;

/// Memory the fuzz targets may hold at once beyond what the process held at start.
const MEMORY_BUDGET: usize = 512 << 20;

#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

fn cap_memory() {
    let _ = ALLOCATOR.set_limit(ALLOCATOR.allocated() + MEMORY_BUDGET);
}

/// The campaign's seed: `EMR_FUZZ_SEED` (tests/reliability.sh --heavy draws a
/// new one and prints it), else a fixed one, so the test command's run is the
/// same every time and a failure reproduces.
fn seed() -> [u8; 32] {
    let seed: u64 = std::env::var("EMR_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x454d_525f_4655_5a5a);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes
}

fn cases() -> u32 {
    std::env::var("EMR_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(300)
}

/// One edit of an input.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    Truncate(usize),
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Overwrite(usize, u8),
}

/// Tokens a structure-aware fuzzer splices in: JSON syntax, extreme numbers,
/// escapes, and varint/length bytes that claim enormous sizes.
const TOKENS: [&[u8]; 16] = [
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"-1",
    b"1e999",
    b"18446744073709551616",
    b"\\u0000",
    b"\\ud800",
    b"\xff\xff\xff\xff\x0f",
    b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",
    b"\xff\xff\xff\xff",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..64).prop_map(|(at, n)| Mutation::Delete(at, n)),
        (any::<usize>(), prop::sample::select(TOKENS.to_vec())).prop_map(|(at, token)| Mutation::Insert(at, token.to_vec())),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Overwrite(at, byte)),
    ]
}

/// Which of `seeds` to start from, and the edits to make to it.
fn mutated(seeds: usize) -> impl Strategy<Value = (usize, Vec<Mutation>)> {
    (0..seeds, prop::collection::vec(mutation(), 1..6))
}

fn apply(seed: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for mutation in mutations {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
        match mutation {
            Mutation::FlipBit(i, bit) if !bytes.is_empty() => {
                let i = at(*i, bytes.len());
                bytes[i] ^= 1 << bit;
            }
            Mutation::Truncate(i) => bytes.truncate(at(*i, bytes.len() + 1)),
            Mutation::Delete(i, n) if !bytes.is_empty() => {
                let start = at(*i, bytes.len());
                let end = (start + n).min(bytes.len());
                bytes.drain(start..end);
            }
            Mutation::Insert(i, token) => {
                let i = at(*i, bytes.len() + 1);
                bytes.splice(i..i, token.iter().copied());
            }
            Mutation::Overwrite(i, byte) if !bytes.is_empty() => {
                let i = at(*i, bytes.len());
                bytes[i] = *byte;
            }
            _ => {}
        }
    }
    bytes
}

/// Runs a campaign of [`cases`] inputs; returns how many it tried.
fn campaign<S: Strategy>(strategy: S, target: impl FnMut(S::Value)) -> u64 {
    campaign_of(cases(), strategy, target)
}

fn campaign_of<S: Strategy>(cases: u32, strategy: S, target: impl FnMut(S::Value)) -> u64 {
    cap_memory();
    // The runner takes `Fn`; targets count their outcomes.
    let target = std::cell::RefCell::new(target);
    let executions = AtomicU64::new(0);
    let config = Config { cases: cases.max(1), failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed()));
    runner
        .run(&strategy, |input| {
            executions.fetch_add(1, Ordering::Relaxed);
            (target.borrow_mut())(input);
            Ok(())
        })
        .unwrap();
    executions.into_inner()
}

fn report(target: &str, executions: u64, outcomes: serde_json::Value) {
    emr_tests::report::record(&format!("fuzz-{target}"), json!({"executions": executions, "outcomes": outcomes}));
}

#[test]
fn command_json_decodes_or_is_refused_without_panicking() {
    use emr_domain::account::AccountCommand;
    use emr_domain::grant::GrantCommand;
    use emr_domain::patient::PatientCommand;
    use emr_domain::record::RecordCommand;
    let (record, patient) = (emr_domain::ids::RecordId::new(), PatientId::new());
    let seeds: Vec<Vec<u8>> = vec![
        serde_json::to_vec(&emr_domain::fixtures::create_record(record, patient, "Consultation")).unwrap(),
        serde_json::to_vec(&emr_domain::fixtures::register(patient, "Fuzz")).unwrap(),
        serde_json::to_vec(&RecordCommand::Delete { reason: emr_domain::fixtures::text("mistaken entry") }).unwrap(),
    ];
    let (mut decoded, mut refused) = (0u64, 0u64);
    let executions = campaign(mutated(seeds.len()), |(seed, mutations)| {
        let bytes = apply(&seeds[seed], &mutations);
        let results = [
            serde_json::from_slice::<RecordCommand>(&bytes).is_ok(),
            serde_json::from_slice::<PatientCommand>(&bytes).is_ok(),
            serde_json::from_slice::<GrantCommand>(&bytes).is_ok(),
            serde_json::from_slice::<AccountCommand>(&bytes).is_ok(),
        ];
        if results.iter().any(|ok| *ok) { decoded += 1 } else { refused += 1 }
    });
    assert!(refused > 0, "mutations must reach the refusals");
    report("command-json", executions, json!({"decoded": decoded, "refused": refused}));
}

/// Real commits of a varied clinical history, as the stream stores them.
fn real_commits() -> Vec<StoredCommit> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let test = emr_tests::backends::sqlite().await;
        emr_tests::history::write(&emr_tests::backends::clinic(&test.backend), 2).await;
        test.backend.log.read_from(1, 10_000).await.unwrap()
    })
}

#[test]
fn stored_commits_decode_upcast_and_project_or_are_refused_without_panicking() {
    let commits = real_commits();
    let decoder = emr_projections::Decoder::default();
    let (mut refused, mut decoded, mut projected) = (0u64, 0u64, 0u64);
    let executions = campaign(mutated(commits.len()), |(seed, mutations)| {
        let original = &commits[seed];
        let commit = StoredCommit { payload: apply(&original.payload, &mutations), ..original.clone() };
        let Ok(events) = LogReader::flatten(vec![commit.clone()]) else {
            refused += 1;
            return;
        };
        let record = CommitRecord::decode(&commit).unwrap();
        assert_eq!(record.events.len(), events.len(), "every event of a decoded commit is delivered");
        decoded += 1;
        for event in &events {
            let _ = event.canonical_bytes();
            if let Ok(Some(_)) = decoder.decode(event) {
                projected += 1;
            }
        }
    });
    assert!(refused > 0 && decoded > 0, "mutations must reach both the refusals and the decoders: {refused} refused, {decoded} decoded");
    report("stored-commits", executions, json!({"refused": refused, "decoded": decoded, "events_projected": projected}));
}

#[test]
fn tampered_receipts_never_verify_and_never_panic() {
    let (receipt, canonical, trusted) = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let test = emr_tests::backends::sqlite().await;
        emr_tests::history::write(&emr_tests::backends::clinic(&test.backend), 1).await;
        let dir = tempfile::tempdir().unwrap();
        let ledger = std::sync::Arc::new(emr_anchor::FileLedger::open(dir.path()).unwrap());
        let config = emr_anchor::AnchorConfig { batch_commits: 3, ..emr_anchor::AnchorConfig::default() };
        let worker = emr_anchor::AnchorWorker::open(test.backend.log.clone(), ledger.clone(), dir.path(), config).await.unwrap();
        worker.catch_up().await.unwrap();
        let events = LogReader::new(test.backend.log.clone()).read(1, 1000).await.unwrap();
        let event = &events[events.len() / 2];
        let receipt = emr_anchor::receipt(ledger.as_ref(), dir.path(), event).await.unwrap().unwrap();
        (serde_json::to_vec(&receipt).unwrap(), event.canonical_bytes(), vec![worker.public_key()])
    });
    let original: emr_anchor::Receipt = serde_json::from_slice(&receipt).unwrap();
    assert!(original.verify(&canonical, &trusted), "the seed receipt verifies");
    let (mut unreadable, mut rejected, mut unchanged) = (0u64, 0u64, 0u64);
    let executions = campaign(mutated(1), |(_, mutations)| {
        let bytes = apply(&receipt, &mutations);
        let Ok(tampered) = serde_json::from_slice::<emr_anchor::Receipt>(&bytes) else {
            unreadable += 1;
            return;
        };
        // `anchors` point at ledger entries (step 5 of docs/receipts.md, checked
        // against the ledger, not offline): every other field is proven.
        let proven = |receipt: &emr_anchor::Receipt| {
            let mut value = serde_json::to_value(receipt).unwrap();
            value.as_object_mut().unwrap().remove("anchors");
            value
        };
        let same = proven(&tampered) == proven(&original);
        assert_eq!(
            tampered.verify(&canonical, &trusted),
            same,
            "a receipt verifies exactly when what it proves is unchanged:\n{}\n{}",
            proven(&tampered),
            proven(&original)
        );
        if same { unchanged += 1 } else { rejected += 1 }
    });
    // Proof arithmetic on sizes and indexes no honest receipt carries.
    let hashes = campaign((any::<u64>(), any::<u64>(), prop::collection::vec(any::<[u8; 32]>(), 0..70)), |(index, size, proof)| {
        let leaf = [0u8; 32];
        let _ = emr_anchor::merkle::verify_inclusion(index, size, &leaf, &proof, &leaf);
        let _ = emr_anchor::merkle::verify_consistency(index, size, &leaf, &leaf, &proof);
    });
    assert!(rejected > 0, "mutations must reach the verifier");
    report(
        "receipts",
        executions + hashes,
        json!({"unreadable": unreadable, "rejected": rejected, "semantically_unchanged": unchanged, "proof_arithmetic_cases": hashes}),
    );
}

#[test]
fn dicom_headers_of_mutated_files_summarize_or_are_refused_without_panicking() {
    let file = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/dicom/CT_small.dcm")).unwrap();
    // The header: everything before the pixel data element (7FE0,0010), which the
    // summary never reads.
    let pixel_data = file.windows(4).position(|w| w == [0xe0, 0x7f, 0x10, 0x00]).unwrap();
    let header = file[..pixel_data + 16].to_vec();
    assert!(emr_attachments::summarize_dicom(&header).is_ok(), "the seed is DICOM");
    // dicom-object spends seconds of CPU on some crafted headers (the upload path
    // gives it a deadline; see emr_attachments): a tenth of the cases keeps the
    // campaign's time bounded. The slowest parse is reported, never asserted.
    let (mut summarized, mut refused, mut slowest) = (0u64, 0u64, std::time::Duration::ZERO);
    let executions = campaign_of(cases() / 10, mutated(1), |(_, mutations)| {
        let started = std::time::Instant::now();
        match emr_attachments::summarize_dicom(&apply(&header, &mutations)) {
            Ok(_) => summarized += 1,
            Err(_) => refused += 1,
        }
        slowest = slowest.max(started.elapsed());
    });
    report("dicom", executions, json!({"summarized": summarized, "refused": refused, "slowest_parse_ms": slowest.as_millis()}));
}

#[test]
fn content_ids_parse_or_are_refused_and_no_edit_of_a_blob_keeps_its_cid() {
    use emr_ipfs::{Cid, Layout, cid_of};
    let blob = b"chest radiograph, 2 views, no acute findings\n".repeat(200);
    let seeds: Vec<(Layout, Cid)> = [Layout::V1RawLeaves, Layout::V0].into_iter().map(|layout| (layout, cid_of(layout, &blob))).collect();
    let texts: Vec<Vec<u8>> = seeds.iter().map(|(_, cid)| cid.to_string().into_bytes()).collect();
    let (mut parsed, mut refused, mut distinct) = (0u64, 0u64, 0u64);
    let executions = campaign((mutated(texts.len()), prop::collection::vec(mutation(), 1..4)), |((seed, mutations), edits)| {
        let text = apply(&texts[seed], &mutations);
        let as_text = String::from_utf8_lossy(&text);
        let by_domain = emr_domain::values::ContentId::parse(&as_text).is_ok();
        let by_ipfs = Cid::try_from(as_text.as_ref()).is_ok();
        let _ = Cid::try_from(text.as_slice());
        if by_domain || by_ipfs {
            parsed += 1
        } else {
            refused += 1
        }
        let edited = apply(&blob, &edits);
        let (layout, cid) = &seeds[seed];
        if edited != blob {
            assert_ne!(&cid_of(*layout, &edited), cid, "an edited blob must not keep its content id");
            distinct += 1;
        }
    });
    report("content-ids", executions, json!({"parsed": parsed, "refused": refused, "edited_blobs_with_new_cid": distinct}));
}

#[test]
fn tampered_sealed_attachments_never_open() {
    use emr_attachments::{BlobHeader, open, seal};
    let key = emr_eventstore::DataKey::generate();
    let header = BlobHeader { patient_id: PatientId::new(), attachment_id: AttachmentId::new() };
    let plaintext = b"DICM header and pixel data ".repeat(5000);
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let (sealed, summary) = runtime.block_on(async {
        let mut sealed = Vec::new();
        let summary = seal(&key, header, &mut plaintext.as_slice(), &mut sealed).await.unwrap();
        (sealed, summary)
    });
    let (mut refused, mut opened_unchanged) = (0u64, 0u64);
    let executions = campaign(mutated(1), |(_, mutations)| {
        let tampered = apply(&sealed, &mutations);
        let mut out = Vec::new();
        let result = runtime.block_on(open(&key, header, &summary.sha256, &mut tampered.as_slice(), &mut out));
        match result {
            Ok(_) => {
                assert_eq!(tampered, sealed, "only the untouched blob opens");
                assert_eq!(out, plaintext);
                opened_unchanged += 1;
            }
            Err(_) => refused += 1,
        }
    });
    assert!(refused > 0);
    report("sealed-attachments", executions, json!({"refused": refused, "opened_only_when_untouched": opened_unchanged}));
}

#[test]
fn mutated_images_decode_or_are_refused_without_panicking() {
    // Seeds: a CT slice (DICOM with its pixel data), a brain MRI JPEG of the
    // diagnosis assets, and a PNG. Decoding is what a diagnosis job does to an
    // attachment before the model sees it.
    let dicom = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/dicom/CT_small.dcm")).unwrap();
    let jpeg = std::fs::read(&emr_tests::ai_assets::labelled_mri_images()[0].0).unwrap();
    let png = emr_imaging::heat_map_png(&[120; 64], 8, 8, &[1.0, 0.0, 0.0, 0.5], 2).unwrap();
    let seeds = [dicom, jpeg, png];
    for seed in &seeds {
        assert!(emr_imaging::decode(seed, 0).is_ok(), "every seed decodes");
    }
    // As for DICOM headers, a crafted length can make dicom-object crawl (the
    // job gives decoding a time budget): a tenth of the cases bounds the run.
    let (mut decoded, mut refused, mut slowest) = (0u64, 0u64, std::time::Duration::ZERO);
    let executions = campaign_of(cases() / 10, mutated(seeds.len()), |(seed, mutations)| {
        let started = std::time::Instant::now();
        match emr_imaging::decode(&apply(&seeds[seed], &mutations), 0) {
            Ok(_) => decoded += 1,
            Err(_) => refused += 1,
        }
        slowest = slowest.max(started.elapsed());
    });
    report("images", executions, json!({"decoded": decoded, "refused": refused, "slowest_decode_ms": slowest.as_millis()}));
}
