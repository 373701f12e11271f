//! Decoding inputs: what a DICOM file says about itself, the frame and size
//! bounds, and the tensor a contract asks for. (The pixel values themselves
//! are checked against pydicom in tests/tests/diagnosis.rs.)

#![allow(clippy::unwrap_used)]

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use emr_domain::diagnosis::{Channels, InputContract, Layout, Normalisation};
use emr_imaging::{ImagingError, Picture, SourceFormat, Voi, decode, prepare};
use proptest::prelude::*;

fn ct_small() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../tests/fixtures/dicom/CT_small.dcm")).unwrap()
}

fn contract(channels: Channels, layout: Layout) -> InputContract {
    InputContract { modalities: vec![], body_parts: vec![], width: 2, height: 1, channels, layout, normalisation: Normalisation::UnitRange }
}

#[test]
fn a_ct_slice_decodes_with_its_acquisition_and_the_min_max_of_a_windowless_frame() {
    let picture = decode(&ct_small(), 0).unwrap();
    assert_eq!(picture.format, SourceFormat::Dicom { transfer_syntax: "1.2.840.10008.1.2.1".into(), frames: 1, frame: 0 });
    assert_eq!(picture.acquisition.modality.as_deref(), Some("CT"));
    assert_eq!(picture.size(), (128, 128));
    assert_eq!(picture.voi, Voi::MinMax);
    assert!(!picture.image.color().has_color());
}

#[test]
fn a_frame_past_the_last_is_refused() {
    assert_eq!(decode(&ct_small(), 1).err(), Some(ImagingError::FrameOutOfRange { frame: 1, frames: 1 }));
}

#[test]
fn bytes_that_are_no_image_are_refused() {
    assert_eq!(decode(b"", 0).err(), Some(ImagingError::NotAnImage));
    assert_eq!(decode(b"%PDF-1.7 not an image", 0).err(), Some(ImagingError::NotAnImage));
}

#[test]
fn a_header_claiming_gigabytes_of_pixels_is_refused_before_decoding() {
    let mut object = OpenFileOptions::new().from_reader(&ct_small()[128..]).unwrap();
    object.put(DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(65535_u16)));
    object.put(DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(65535_u16)));
    let mut bytes = Vec::new();
    object.write_all(&mut bytes).unwrap();
    assert!(matches!(decode(&bytes, 0), Err(ImagingError::TooLarge { bytes }) if bytes == 65535 * 65535 * 2));
}

#[test]
fn a_truncated_dicom_file_is_an_error() {
    let bytes = ct_small();
    let truncated = &bytes[..bytes.len() - 1000];
    assert!(matches!(decode(truncated, 0), Err(ImagingError::Undecodable(_))), "{:?}", decode(truncated, 0).map(|p| p.size()));
}

fn picture(image: image::DynamicImage) -> Picture {
    Picture { format: SourceFormat::Png, acquisition: Default::default(), voi: Voi::None, image }
}

#[test]
fn the_tensor_follows_the_contracts_layout_and_normalisation() {
    let rgb = image::RgbImage::from_raw(2, 1, vec![255, 0, 51, 0, 102, 255]).unwrap();
    let input = picture(image::DynamicImage::ImageRgb8(rgb));
    assert_eq!(prepare(&input, &contract(Channels::Rgb, Layout::Nhwc)), [1.0, 0.0, 0.2, 0.0, 0.4, 1.0]);
    assert_eq!(prepare(&input, &contract(Channels::Rgb, Layout::Nchw)), [1.0, 0.0, 0.0, 0.4, 0.2, 1.0]);
}

#[test]
fn a_grey_picture_is_replicated_into_each_colour_channel() {
    let grey = image::GrayImage::from_raw(2, 1, vec![0, 255]).unwrap();
    let tensor = prepare(&picture(image::DynamicImage::ImageLuma8(grey)), &contract(Channels::Rgb, Layout::Nhwc));
    assert_eq!(tensor, [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
}

proptest! {
    // Few cases: a damaged length field can make dicom-object's parser spend
    // seconds before it gives up (the service runs decoding under a time budget).
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Hostile bytes: a real DICOM file cut short and with bytes overwritten
    /// anywhere (header, pixel data) decodes or is refused with an error; the
    /// process never goes down and a picture is never larger than its header allows.
    #[test]
    fn damaged_dicom_files_decode_or_fail_cleanly(cut in 132usize..40_000, damage in prop::collection::vec((0usize..40_000, any::<u8>()), 1..16)) {
        let mut bytes = ct_small();
        for (at, value) in damage {
            if let Some(b) = bytes.get_mut(at) { *b = value; }
        }
        bytes.truncate(cut);
        if let Ok(picture) = decode(&bytes, 0) {
            let (w, h) = picture.size();
            prop_assert!(u64::from(w) * u64::from(h) <= emr_imaging::MAX_DECODED_BYTES);
        }
    }
}

#[test]
fn a_preview_is_a_png_of_the_windowed_frame_shrunk_to_fit_and_never_enlarged() {
    let shrunk = emr_imaging::preview_png(&ct_small(), 0, 64).unwrap();
    assert_eq!((shrunk.size, shrunk.source_size), ((64, 64), (128, 128)));
    let decoded = image::load_from_memory_with_format(&shrunk.png, image::ImageFormat::Png).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (64, 64));
    // A windowed CT slice is not one flat grey.
    let grey = decoded.to_luma8();
    assert!(grey.pixels().any(|p| p.0[0] != grey.get_pixel(0, 0).0[0]));

    let whole = emr_imaging::preview_png(&ct_small(), 0, 4096).unwrap();
    assert_eq!(whole.size, (128, 128));
}

#[test]
fn a_preview_of_what_is_no_image_is_refused_like_a_decode() {
    assert_eq!(emr_imaging::preview_png(b"plain text", 0, 256).err(), Some(ImagingError::NotAnImage));
    assert!(matches!(emr_imaging::preview_png(&ct_small(), 3, 256), Err(ImagingError::FrameOutOfRange { .. })));
}
