//! What a clinician sees of an attachment before downloading it: the decoded
//! picture (DICOM after its window, or a JPEG/PNG), shrunk to fit a square and
//! encoded as PNG, so a browser shows it without knowing DICOM.

use std::io::Cursor;

use image::ImageFormat;
use image::imageops::FilterType;

use crate::{ImagingError, Picture, decode};

/// The largest side a preview may ask for: a screen, not a diagnostic display.
pub const MAX_PREVIEW_SIDE: u32 = 2048;

/// A preview: the PNG, its size and the picture it was drawn from.
#[derive(Debug, Clone)]
pub struct Preview {
    /// The PNG bytes.
    pub png: Vec<u8>,
    /// Width and height of the PNG.
    pub size: (u32, u32),
    /// The decoded picture's own width and height.
    pub source_size: (u32, u32),
}

/// Decodes `bytes` (frame `frame` of a DICOM object) and draws it as a PNG no
/// wider or taller than `max_side` (clamped to 1..=[`MAX_PREVIEW_SIDE`]),
/// keeping its aspect ratio; a smaller picture is not enlarged.
pub fn preview_png(bytes: &[u8], frame: u32, max_side: u32) -> Result<Preview, ImagingError> {
    let picture: Picture = decode(bytes, frame)?;
    let source_size = picture.size();
    let side = max_side.clamp(1, MAX_PREVIEW_SIDE);
    let image =
        if source_size.0 > side || source_size.1 > side { picture.image.resize(side, side, FilterType::Triangle) } else { picture.image };
    let mut png = Cursor::new(Vec::new());
    image.write_to(&mut png, ImageFormat::Png).map_err(|e| ImagingError::Undecodable(e.to_string()))?;
    Ok(Preview { png: png.into_inner(), size: (image.width(), image.height()), source_size })
}
