//! A model's input contract: which acquisitions it was trained on and the exact
//! tensor it expects. Inputs outside the contract are refused, never classified:
//! a chest radiograph sent to a brain MRI model gives a confident, meaningless
//! answer.

use serde::{Deserialize, Serialize};

/// The colour channels the network reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channels {
    /// One grey channel.
    Gray,
    /// Red, green, blue (a grey image is replicated into the three).
    Rgb,
}

impl Channels {
    /// How many values a pixel has.
    pub const fn count(self) -> usize {
        match self {
            Self::Gray => 1,
            Self::Rgb => 3,
        }
    }
}

/// Where the channel axis sits in the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `[batch, height, width, channels]` (Keras, TensorFlow exports).
    Nhwc,
    /// `[batch, channels, height, width]` (PyTorch exports).
    Nchw,
}

/// How 8-bit display values become the network's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Normalisation {
    /// `v / 255`: values in 0–1.
    UnitRange,
    /// `(v / 255 - mean[c]) / std[c]` per channel (ImageNet-style).
    MeanStd {
        /// Per-channel mean, in 0–1 units.
        mean: [f32; 3],
        /// Per-channel standard deviation, in 0–1 units; each must be > 0.
        std: [f32; 3],
    },
}

impl Normalisation {
    /// The network's value for display value `value` (0–255) in channel `channel`.
    pub fn apply(self, value: f32, channel: usize) -> f32 {
        let unit = value / 255.0;
        match self {
            Self::UnitRange => unit,
            Self::MeanStd { mean, std } => (unit - mean[channel % 3]) / std[channel % 3],
        }
    }
}

/// What an input says about how it was acquired: the DICOM Modality (0008,0060)
/// and Body Part Examined (0018,0015). Plain JPEG or PNG images carry neither.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acquisition {
    /// DICOM modality code, e.g. `MR`, `CT`, `CR`.
    pub modality: Option<String>,
    /// DICOM body part, e.g. `BRAIN`, `HEAD`, `CHEST`.
    pub body_part: Option<String>,
}

/// Why an input does not fit a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputRefused {
    /// The modality is not one the model was trained on.
    #[error("the model reads {expected} images; this input is {found}")]
    Modality {
        /// The modalities the contract lists.
        expected: String,
        /// The input's modality.
        found: String,
    },
    /// The body part is not one the model was trained on.
    #[error("the model reads images of {expected}; this input shows {found}")]
    BodyPart {
        /// The body parts the contract lists.
        expected: String,
        /// The input's body part.
        found: String,
    },
}

/// The acquisitions a model accepts and the tensor it expects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputContract {
    /// DICOM modality codes the model was trained on; empty accepts any.
    pub modalities: Vec<String>,
    /// DICOM body parts the model was trained on; empty accepts any.
    pub body_parts: Vec<String>,
    /// Input width in pixels.
    pub width: u32,
    /// Input height in pixels.
    pub height: u32,
    /// Colour channels.
    pub channels: Channels,
    /// Channel axis position.
    pub layout: Layout,
    /// Value scaling.
    pub normalisation: Normalisation,
}

impl InputContract {
    /// Whether an input so acquired may be classified. A tag the input does not
    /// carry cannot contradict the contract (JPEG and PNG carry none, and Body
    /// Part Examined is optional in DICOM); a tag it does carry must match.
    pub fn admits(&self, acquisition: &Acquisition) -> Result<(), InputRefused> {
        let listed = |allowed: &[String], value: &str| allowed.is_empty() || allowed.iter().any(|a| a.eq_ignore_ascii_case(value.trim()));
        if let Some(modality) = acquisition.modality.as_deref().filter(|m| !m.trim().is_empty())
            && !listed(&self.modalities, modality)
        {
            return Err(InputRefused::Modality { expected: self.modalities.join(" or "), found: modality.trim().to_owned() });
        }
        if let Some(part) = acquisition.body_part.as_deref().filter(|p| !p.trim().is_empty())
            && !listed(&self.body_parts, part)
        {
            return Err(InputRefused::BodyPart { expected: self.body_parts.join(" or "), found: part.trim().to_owned() });
        }
        Ok(())
    }

    /// How many values one input occupies in the batch tensor.
    pub const fn values_per_input(&self) -> usize {
        self.width as usize * self.height as usize * self.channels.count()
    }

    /// The tensor shape for a batch of `batch` inputs.
    pub const fn shape(&self, batch: usize) -> [usize; 4] {
        let (h, w, c) = (self.height as usize, self.width as usize, self.channels.count());
        match self.layout {
            Layout::Nhwc => [batch, h, w, c],
            Layout::Nchw => [batch, c, h, w],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brain_mri() -> InputContract {
        InputContract {
            modalities: vec!["MR".into()],
            body_parts: vec!["BRAIN".into(), "HEAD".into()],
            width: 240,
            height: 240,
            channels: Channels::Rgb,
            layout: Layout::Nhwc,
            normalisation: Normalisation::UnitRange,
        }
    }

    fn acquired(modality: Option<&str>, body_part: Option<&str>) -> Acquisition {
        Acquisition { modality: modality.map(Into::into), body_part: body_part.map(Into::into) }
    }

    #[test]
    fn a_chest_radiograph_is_refused_by_a_brain_mri_model() {
        let refused = brain_mri().admits(&acquired(Some("CR"), Some("CHEST")));
        assert_eq!(refused, Err(InputRefused::Modality { expected: "MR".into(), found: "CR".into() }));
    }

    #[test]
    fn an_mri_of_another_body_part_is_refused() {
        let refused = brain_mri().admits(&acquired(Some("MR"), Some("KNEE")));
        assert!(matches!(refused, Err(InputRefused::BodyPart { found, .. }) if found == "KNEE"));
    }

    #[test]
    fn matching_tags_in_any_case_and_absent_tags_are_admitted() {
        assert_eq!(brain_mri().admits(&acquired(Some("mr"), Some("head "))), Ok(()));
        assert_eq!(brain_mri().admits(&acquired(Some("MR"), None)), Ok(()));
        assert_eq!(brain_mri().admits(&Acquisition::default()), Ok(()));
    }

    #[test]
    fn the_shape_follows_the_layout() {
        let mut contract = brain_mri();
        assert_eq!(contract.shape(8), [8, 240, 240, 3]);
        contract.layout = Layout::Nchw;
        assert_eq!(contract.shape(1), [1, 3, 240, 240]);
        assert_eq!(contract.values_per_input(), 240 * 240 * 3);
    }

    #[test]
    fn mean_std_normalisation_centres_each_channel() {
        let imagenet = Normalisation::MeanStd { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
        assert!((imagenet.apply(0.485 * 255.0, 0)).abs() < 1e-6);
        assert!((imagenet.apply(255.0, 2) - (1.0 - 0.406) / 0.225).abs() < 1e-5);
        assert_eq!(Normalisation::UnitRange.apply(51.0, 1), 0.2);
    }
}
