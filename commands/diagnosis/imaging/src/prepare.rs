//! A picture resized and normalised into the tensor a model's contract names.

use emr_domain::diagnosis::{Channels, InputContract, Layout};
use image::imageops::FilterType;

use crate::Picture;

/// The resampling filter: bicubic with a = −0.5, widened when shrinking — what
/// PIL's default `Image.resize` does, which is how the models we import were
/// fed in training.
pub const RESIZE_FILTER: &str = "catmull-rom";

/// The picture as `contract` expects it: resized to the input size, converted
/// to the contract's channels (a grey picture is replicated into RGB), each
/// value normalised, laid out as NHWC or NCHW. The result has
/// [`InputContract::values_per_input`] values.
pub fn prepare(picture: &Picture, contract: &InputContract) -> Vec<f32> {
    let (width, height) = (contract.width, contract.height);
    let resize = |image: &image::DynamicImage| image.resize_exact(width, height, FilterType::CatmullRom);
    let samples: Vec<u8> = match contract.channels {
        Channels::Rgb => resize(&picture.image).to_rgb8().into_raw(),
        Channels::Gray => resize(&picture.image).to_luma8().into_raw(),
    };
    let channels = contract.channels.count();
    let plane = width as usize * height as usize;
    let mut tensor = vec![0.0f32; plane * channels];
    for (i, &sample) in samples.iter().enumerate() {
        let (pixel, channel) = (i / channels, i % channels);
        let at = match contract.layout {
            Layout::Nhwc => i,
            Layout::Nchw => channel * plane + pixel,
        };
        tensor[at] = contract.normalisation.apply(f32::from(sample), channel);
    }
    tensor
}
