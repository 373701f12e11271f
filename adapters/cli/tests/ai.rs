//! `emr ai predict`: an operator runs a model on their own files before
//! activating it, and gets one JSON line per input, in input order; `emr ai
//! install` puts a checked artifact where the workers load it.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use emr_tests::ai_assets::{brain_model, dicom_file, labelled_mri_images};

fn card() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/models/brain-tumour-vgg16.json")
}

fn predict(card: &Path, inputs: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emr"))
        .args(["ai", "predict", "--batch", "2", "--model"])
        .arg(brain_model())
        .arg("--card")
        .arg(card)
        .args(inputs)
        .output()
        .unwrap()
}

#[test]
fn predict_prints_a_line_per_input_in_order_and_fails_when_any_input_is_refused() {
    let images = labelled_mri_images();
    let (glioma, pituitary) = (&images[0], &images[16]);
    let chest = dicom_file("RG1_UNCR.dcm");
    let output = predict(&card(), &[&glioma.0, &chest, Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml").as_path(), &pituitary.0]);

    let lines: Vec<serde_json::Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["prediction"]["classification"]["top"], glioma.1);
    assert_eq!(lines[0]["prediction"]["classification"]["notice"], "AI-assisted, requires physician review");
    assert_eq!(lines[0]["prediction"]["model"]["sha256"], "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49");
    assert_eq!(lines[1]["error"], "the model reads MR images; this input is CR");
    assert_eq!(lines[2]["error"], "not a DICOM file, JPEG or PNG image");
    assert_eq!(lines[3]["prediction"]["classification"]["top"], pituitary.1);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("2 of 4 inputs got no prediction"));
}

#[test]
fn predict_refuses_a_model_that_is_not_the_one_its_card_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut card: serde_json::Value = serde_json::from_slice(&std::fs::read(card()).unwrap()).unwrap();
    card["sha256"] = serde_json::json!("00".repeat(32));
    let forged = dir.path().join("card.json");
    std::fs::write(&forged, card.to_string()).unwrap();

    let output = predict(&forged, &[&labelled_mri_images()[0].0]);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the model artifact's SHA-256 is 3be917fb"), "{stderr}");
}

#[test]
fn install_puts_the_cards_artifact_under_its_hash_in_the_models_dir_and_refuses_any_other_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let install = |model: &Path| {
        Command::new(env!("CARGO_BIN_EXE_emr"))
            .env("EMR__DIAGNOSIS__MODELS_DIR", dir.path().join("models"))
            .args(["ai", "install", "--card"])
            .arg(card())
            .arg("--model")
            .arg(model)
            .output()
            .unwrap()
    };
    let not_the_model = dir.path().join("other.onnx");
    std::fs::write(&not_the_model, b"some other bytes").unwrap();
    let refused = install(&not_the_model);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("SHA-256"), "{}", String::from_utf8_lossy(&refused.stderr));

    let installed = install(&brain_model());
    assert!(installed.status.success(), "{}", String::from_utf8_lossy(&installed.stderr));
    let path = String::from_utf8(installed.stdout).unwrap();
    let expected = dir.path().join("models/3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49.onnx");
    assert_eq!(Path::new(path.trim()), expected);
    assert_eq!(std::fs::read(&expected).unwrap(), std::fs::read(brain_model()).unwrap());
    assert_eq!(std::fs::read_dir(dir.path().join("models")).unwrap().count(), 1, "no partial file is left behind");
}
