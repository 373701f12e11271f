//! JPEG and PNG through the `image` crate, with its allocation limits.

use std::io::Cursor;

use emr_domain::diagnosis::Acquisition;
use image::{ImageFormat, ImageReader, Limits};

use crate::{ImagingError, MAX_DECODED_BYTES, Picture, SourceFormat, Voi, display_pixels, guarded};

/// The widest or tallest raster image accepted.
const MAX_SIDE: u32 = 16_384;

pub(crate) fn decode(bytes: &[u8]) -> Result<Picture, ImagingError> {
    let format = match image::guess_format(bytes) {
        Ok(ImageFormat::Jpeg) => SourceFormat::Jpeg,
        Ok(ImageFormat::Png) => SourceFormat::Png,
        _ => return Err(ImagingError::NotAnImage),
    };
    let image = guarded(|| {
        let mut reader =
            ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| ImagingError::Undecodable(e.to_string()))?;
        let mut limits = Limits::default();
        limits.max_image_width = Some(MAX_SIDE);
        limits.max_image_height = Some(MAX_SIDE);
        limits.max_alloc = Some(MAX_DECODED_BYTES);
        reader.limits(limits);
        reader.decode().map_err(|e| match e {
            image::ImageError::Limits(_) => ImagingError::TooLarge { bytes: MAX_DECODED_BYTES + 1 },
            other => ImagingError::Undecodable(other.to_string()),
        })
    })?;
    Ok(Picture { format, acquisition: Acquisition::default(), voi: Voi::None, image: display_pixels(image) })
}
