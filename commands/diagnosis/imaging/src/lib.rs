//! Medical images in: a DICOM object, a JPEG or a PNG becomes a [`Picture`] —
//! display pixels (8 bits per sample) plus what the file says about how it was
//! acquired — and a picture becomes the tensor a model's
//! [`InputContract`](emr_domain::diagnosis::InputContract) asks for.
//!
//! DICOM goes through dicom-rs: the modality LUT (rescale slope and intercept),
//! then the first VOI LUT or window in the object (min–max when there is none),
//! MONOCHROME1 inverted so that bright is dense, one chosen frame of a
//! multi-frame object. Transfer syntaxes: every uncompressed one (explicit and
//! implicit VR, little and big endian, deflated), RLE Lossless, JPEG baseline,
//! extended and lossless, JPEG 2000 (lossless and lossy). JPEG-LS is not
//! supported (its decoder is C++).
//!
//! Everything here reads untrusted bytes: sizes are bounded before decoding and
//! a decoder panic is caught and reported as [`ImagingError::Undecodable`].

mod dicom;
mod heat_map;
mod prepare;
mod preview;
mod raster;

use emr_domain::diagnosis::Acquisition;
use serde::{Deserialize, Serialize};

pub use dicom::{FrameValues, PixelStage, frame_values};
pub use heat_map::heat_map_png;
pub use prepare::{RESIZE_FILTER, prepare};
pub use preview::{MAX_PREVIEW_SIDE, Preview, preview_png};

/// The largest decoded pixel buffer accepted, in bytes: a 4096² 16-bit RGB frame
/// fits many times over; a header claiming more is hostile or a mistake.
pub const MAX_DECODED_BYTES: u64 = 512 * 1024 * 1024;

/// Why bytes could not become a picture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImagingError {
    /// Neither a DICOM Part 10 file nor a JPEG or PNG image.
    #[error("not a DICOM file, JPEG or PNG image")]
    NotAnImage,
    /// A DICOM object without pixel data (a report, a structured document).
    #[error("the DICOM object has no pixel data")]
    NoPixelData,
    /// A DICOM transfer syntax whose decoder is not built in.
    #[error("DICOM transfer syntax {uid} is not supported")]
    UnsupportedTransferSyntax {
        /// The transfer syntax UID.
        uid: String,
    },
    /// The requested frame does not exist.
    #[error("frame {frame} requested, the object has {frames}")]
    FrameOutOfRange {
        /// The requested (0-based) frame.
        frame: u32,
        /// How many frames the object has.
        frames: u32,
    },
    /// The header claims more pixels than [`MAX_DECODED_BYTES`].
    #[error("the image would decode to {bytes} bytes, more than the {MAX_DECODED_BYTES} allowed")]
    TooLarge {
        /// The size the header implies.
        bytes: u64,
    },
    /// The bytes claim to be an image but cannot be decoded.
    #[error("the image cannot be decoded: {0}")]
    Undecodable(String),
}

/// The container an input arrived in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "format")]
pub enum SourceFormat {
    /// A DICOM Part 10 file.
    Dicom {
        /// Its transfer syntax UID.
        transfer_syntax: String,
        /// How many frames it holds.
        frames: u32,
        /// The frame taken.
        frame: u32,
    },
    /// A JPEG image.
    Jpeg,
    /// A PNG image.
    Png,
}

/// The value-of-interest transform that made display values of a DICOM frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Voi {
    /// The object's first window.
    Window {
        /// Window centre, in modality units.
        center: f64,
        /// Window width.
        width: f64,
    },
    /// The object's first VOI LUT table.
    Lut,
    /// No window in the object: the frame's minimum to maximum.
    MinMax,
    /// Colour or plain images: values taken as they are.
    None,
}

/// An input decoded to display pixels.
#[derive(Debug, Clone)]
pub struct Picture {
    /// Where it came from.
    pub format: SourceFormat,
    /// What its tags say about the acquisition (empty for JPEG and PNG).
    pub acquisition: Acquisition,
    /// The value-of-interest transform applied.
    pub voi: Voi,
    /// Display pixels, 8 bits per sample, grey or RGB.
    pub image: image::DynamicImage,
}

impl Picture {
    /// Width and height in pixels.
    pub fn size(&self) -> (u32, u32) {
        (self.image.width(), self.image.height())
    }
}

/// Decodes `bytes` — DICOM (frame `frame`), JPEG or PNG — to display pixels.
pub fn decode(bytes: &[u8], frame: u32) -> Result<Picture, ImagingError> {
    if dicom::is_dicom(bytes) { dicom::decode(bytes, frame) } else { raster::decode(bytes) }
}

/// What a [`Picture`] holds: 8 bits per sample, grey or RGB (a 16-bit PNG or
/// frame is narrowed, an alpha channel dropped, as a viewer shows them).
pub(crate) fn display_pixels(image: image::DynamicImage) -> image::DynamicImage {
    if image.color().has_color() {
        image::DynamicImage::ImageRgb8(image.to_rgb8())
    } else {
        image::DynamicImage::ImageLuma8(image.to_luma8())
    }
}

/// Runs a third-party decoder on untrusted bytes; a panic inside it becomes an
/// error instead of taking the caller down.
pub(crate) fn guarded<T>(decoding: impl FnOnce() -> Result<T, ImagingError>) -> Result<T, ImagingError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decoding))
        .unwrap_or_else(|_| Err(ImagingError::Undecodable("the decoder failed on malformed data".to_owned())))
}
