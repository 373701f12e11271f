//! DICOM Part 10 files through dicom-rs.

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::{ConvertOptions, DecodedPixelData, ModalityLutOption, PixelDecoder};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};
use emr_domain::diagnosis::Acquisition;

use crate::{ImagingError, MAX_DECODED_BYTES, Picture, SourceFormat, Voi, display_pixels, guarded};

const PREAMBLE: usize = 128;

pub(crate) fn is_dicom(bytes: &[u8]) -> bool {
    bytes.get(PREAMBLE..PREAMBLE + 4) == Some(b"DICM")
}

pub(crate) fn decode(bytes: &[u8], frame: u32) -> Result<Picture, ImagingError> {
    guarded(|| {
        let (object, frames) = open(bytes, frame)?;
        let pixels = object.decode_pixel_data_frame(frame).map_err(undecodable)?;
        let voi = voi_of(&pixels);
        let image = display_pixels(pixels.to_dynamic_image_with_options(0, &ConvertOptions::new().force_8bit()).map_err(undecodable)?);
        let text = |tag| object.element(tag).ok().and_then(|e| e.to_str().ok()).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        Ok(Picture {
            format: SourceFormat::Dicom { transfer_syntax: transfer_syntax(&object), frames, frame },
            acquisition: Acquisition { modality: text(tags::MODALITY), body_part: text(tags::BODY_PART_EXAMINED) },
            voi,
            image,
        })
    })
}

/// Which stage of the DICOM pixel pipeline [`frame_values`] stops at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelStage {
    /// The stored values, as decoded.
    Stored,
    /// After the modality LUT (rescale slope and intercept): Hounsfield units
    /// for CT, for instance.
    Modality,
}

/// One frame's samples as numbers, row by row, pixel by pixel, sample by sample.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameValues {
    /// Rows.
    pub rows: u32,
    /// Columns.
    pub columns: u32,
    /// Samples per pixel (1 for grey, 3 for colour).
    pub samples_per_pixel: u16,
    /// `rows × columns × samples_per_pixel` values.
    pub values: Vec<f64>,
}

/// The numeric samples of frame `frame` at `stage`, for checking a decoder
/// against another (pydicom's `pixel_array`) and for models that read modality
/// values rather than display pixels.
pub fn frame_values(bytes: &[u8], frame: u32, stage: PixelStage) -> Result<FrameValues, ImagingError> {
    if !is_dicom(bytes) {
        return Err(ImagingError::NotAnImage);
    }
    guarded(|| {
        let (object, _) = open(bytes, frame)?;
        let pixels = object.decode_pixel_data_frame(frame).map_err(undecodable)?;
        let lut = match stage {
            PixelStage::Stored => ModalityLutOption::None,
            PixelStage::Modality => ModalityLutOption::Default,
        };
        let values = pixels.to_vec_frame_with_options::<f64>(0, &ConvertOptions::new().with_modality_lut(lut)).map_err(undecodable)?;
        Ok(FrameValues { rows: pixels.rows(), columns: pixels.columns(), samples_per_pixel: pixels.samples_per_pixel(), values })
    })
}

/// Parses the object, checks that its pixel data can be decoded here, that
/// `frame` exists and that the decoded size is bounded. Returns the object and
/// its frame count.
fn open(bytes: &[u8], frame: u32) -> Result<(DefaultDicomObject, u32), ImagingError> {
    let object = OpenFileOptions::new().from_reader(&bytes[PREAMBLE..]).map_err(undecodable)?;
    let syntax = transfer_syntax(&object);
    let decodable = TransferSyntaxRegistry.get(&syntax).is_some_and(|ts| ts.can_decode_all());
    if !decodable {
        return Err(ImagingError::UnsupportedTransferSyntax { uid: syntax });
    }
    if object.element(tags::PIXEL_DATA).is_err() {
        return Err(ImagingError::NoPixelData);
    }
    let number = |tag, default: u64| object.element(tag).ok().and_then(|e| e.to_int::<u64>().ok()).unwrap_or(default);
    let frames = number(tags::NUMBER_OF_FRAMES, 1).max(1);
    let bytes_per_sample = number(tags::BITS_ALLOCATED, 16).div_ceil(8);
    let decoded = [number(tags::ROWS, 0), number(tags::COLUMNS, 0), number(tags::SAMPLES_PER_PIXEL, 1), bytes_per_sample, frames]
        .iter()
        .try_fold(1u64, |size, factor| size.checked_mul(*factor))
        .unwrap_or(u64::MAX);
    if decoded > MAX_DECODED_BYTES {
        return Err(ImagingError::TooLarge { bytes: decoded });
    }
    let frames = u32::try_from(frames).unwrap_or(u32::MAX);
    if frame >= frames {
        return Err(ImagingError::FrameOutOfRange { frame, frames });
    }
    Ok((object, frames))
}

fn transfer_syntax(object: &DefaultDicomObject) -> String {
    object.meta().transfer_syntax().trim_end_matches('\0').trim().to_owned()
}

/// The VOI transform `to_dynamic_image` applies by default: the first VOI LUT
/// table, else the first window, else min–max; colour is taken as it is.
fn voi_of(pixels: &DecodedPixelData<'_>) -> Voi {
    if pixels.samples_per_pixel() != 1 {
        return Voi::None;
    }
    if pixels.voi_lut_sequence().ok().flatten().is_some_and(|luts| !luts.is_empty()) {
        return Voi::Lut;
    }
    match pixels.window().ok().flatten().and_then(|w| w.first()) {
        Some(window) => Voi::Window { center: window.center, width: window.width },
        None => Voi::MinMax,
    }
}

fn undecodable(error: impl std::fmt::Display) -> ImagingError {
    ImagingError::Undecodable(error.to_string())
}
