//! AI-assisted diagnosis, the pipeline: bytes in, a suggestion out.
//!
//! ```text
//! bytes ─decode→ Picture ─contract admits?→ prepare → tensor ─Classifier→ probabilities ─→ Classification
//! ```
//!
//! The network itself sits behind the [`Classifier`] port (implemented with
//! candle in `adapters/onnx`), so the pipeline is tested with the real model
//! and the rules stay in the domain ([`emr_domain::diagnosis`]).

mod explain;

pub use explain::Sensitivity;

/// The largest input read into memory to be decoded: an image cannot decode to
/// less than its file holds, and larger decoded images are refused anyway.
pub const MAX_INPUT_BYTES: u64 = emr_imaging::MAX_DECODED_BYTES;

use emr_domain::diagnosis::{Classification, Finding, InputContract, InputRefused, InvalidOutput, ModelCard, ModelRef, Suggestion};
use emr_domain::ids::{AttachmentId, SuggestionId};
use emr_domain::values::{InvalidValue, Sha256Digest};
use emr_imaging::{ImagingError, Picture, SourceFormat, Voi};
use serde::{Deserialize, Serialize};

/// A network that maps a batch of input tensors to one probability vector per
/// input. CPU-bound and blocking: async callers run it on a blocking thread.
pub trait Classifier: Send + Sync {
    /// Runs the network on `batch`, laid out as `shape` (`[n, …]`), and returns
    /// `n` output vectors.
    fn classify(&self, batch: &[f32], shape: [usize; 4]) -> Result<Vec<Vec<f32>>, ClassifierError>;
}

/// A borrowed network runs as the network itself (one loaded model serving a
/// diagnoser and direct callers, as the benchmark does).
impl<C: Classifier> Classifier for &C {
    fn classify(&self, batch: &[f32], shape: [usize; 4]) -> Result<Vec<Vec<f32>>, ClassifierError> {
        (**self).classify(batch, shape)
    }
}

/// Where the networks of registered models are kept: each is loaded by its
/// card, and only if its bytes are the artifact the card names.
pub trait ModelShelf: Send + Sync {
    /// The network of the model `card` describes.
    fn classifier(&self, card: &ModelCard) -> Result<std::sync::Arc<dyn Classifier>, DiagnosisError>;

    /// Installs `artifact` as the model `card` names, once it is checked to be it.
    fn install(&self, card: &ModelCard, artifact: &[u8]) -> Result<(), DiagnosisError>;

    /// Whether the artifact of `card` is installed.
    fn contains(&self, card: &ModelCard) -> bool;
}

impl Classifier for std::sync::Arc<dyn Classifier> {
    fn classify(&self, batch: &[f32], shape: [usize; 4]) -> Result<Vec<Vec<f32>>, ClassifierError> {
        (**self).classify(batch, shape)
    }
}

/// The network could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the model failed: {0}")]
pub struct ClassifierError(pub String);

/// Why an input got no suggestion.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DiagnosisError {
    /// The card is inconsistent.
    #[error("invalid model card: {0}")]
    Card(#[from] InvalidValue),
    /// The bytes are not a usable image.
    #[error(transparent)]
    Imaging(#[from] ImagingError),
    /// The input is outside the model's contract.
    #[error(transparent)]
    Refused(#[from] InputRefused),
    /// The network failed.
    #[error(transparent)]
    Classifier(#[from] ClassifierError),
    /// The network's output is not a distribution over the card's labels.
    #[error(transparent)]
    Output(#[from] InvalidOutput),
    /// The model's artifact is not on the shelf.
    #[error("the artifact of {name} {version} is not installed ({detail})")]
    NotInstalled {
        /// The model's name.
        name: String,
        /// Its version.
        version: String,
        /// What was looked for.
        detail: String,
    },
    /// The artifact is not the one the card names.
    #[error("the model artifact's SHA-256 is {found}; its card names {expected}")]
    ArtifactMismatch {
        /// The card's hash.
        expected: Sha256Digest,
        /// The artifact's.
        found: Sha256Digest,
    },
}

/// Checks that `artifact` is byte for byte the model `card` names.
pub fn verify_artifact(card: &ModelCard, artifact: &[u8]) -> Result<(), DiagnosisError> {
    let found = Sha256Digest::of(artifact);
    if found == card.sha256 { Ok(()) } else { Err(DiagnosisError::ArtifactMismatch { expected: card.sha256, found }) }
}

/// How an input was turned into the model's tensor: recorded with every
/// suggestion so that it can be reproduced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// The container and, for DICOM, the frame taken.
    pub source: SourceFormat,
    /// The value-of-interest transform applied to DICOM values.
    pub voi: Voi,
    /// The decoded size, width × height.
    pub decoded_size: (u32, u32),
    /// The resampling filter ([`emr_imaging::RESIZE_FILTER`]).
    pub resize_filter: String,
    /// The tensor the model read: size, channels, layout, normalisation.
    pub contract: InputContract,
}

/// An input decoded, admitted and prepared, waiting for the network.
#[derive(Debug, Clone)]
pub struct Examination {
    /// SHA-256 of the input's bytes.
    pub input_sha256: Sha256Digest,
    /// How it was prepared.
    pub preprocessing: Preprocessing,
    /// The tensor, [`InputContract::values_per_input`] values.
    pub tensor: Vec<f32>,
}

/// The model's suggestion for one input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The exact model.
    pub model: ModelRef,
    /// SHA-256 of the input's bytes.
    pub input_sha256: Sha256Digest,
    /// How the input was prepared.
    pub preprocessing: Preprocessing,
    /// Every class probability, and the top class or inconclusive.
    pub classification: Classification,
}

impl Prediction {
    /// The suggestion a record keeps of this prediction, for its attachment
    /// `attachment_id` (whose bytes the input must be: the record checks).
    pub fn into_suggestion(self, suggestion_id: SuggestionId, attachment_id: AttachmentId) -> Suggestion {
        Suggestion {
            suggestion_id,
            attachment_id,
            input_sha256: self.input_sha256,
            model: self.model,
            preprocessing: serde_json::to_value(&self.preprocessing).unwrap_or_default(),
            finding: Finding::from(self.classification),
            explanation: None,
        }
    }
}

/// A model (its card and its network) with the confidence a top class needs.
pub struct Diagnoser<C> {
    card: ModelCard,
    classifier: C,
    min_confidence: f32,
}

impl<C: Classifier> Diagnoser<C> {
    /// Puts a network behind its card. `min_confidence` (0–1) is clamped.
    pub fn new(card: ModelCard, classifier: C, min_confidence: f32) -> Result<Self, DiagnosisError> {
        card.validate()?;
        let min_confidence = if min_confidence.is_finite() { min_confidence.clamp(0.0, 1.0) } else { 1.0 };
        Ok(Self { card, classifier, min_confidence })
    }

    /// The model's card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// Decodes `bytes` (DICOM frame `frame`, JPEG or PNG), refuses it when it is
    /// outside the model's contract, and prepares its tensor.
    pub fn examine(&self, bytes: &[u8], frame: u32) -> Result<Examination, DiagnosisError> {
        let picture = emr_imaging::decode(bytes, frame)?;
        self.card.contract.admits(&picture.acquisition)?;
        Ok(self.prepared(&picture, Sha256Digest::of(bytes)))
    }

    fn prepared(&self, picture: &Picture, input_sha256: Sha256Digest) -> Examination {
        let contract = &self.card.contract;
        Examination {
            input_sha256,
            preprocessing: Preprocessing {
                source: picture.format.clone(),
                voi: picture.voi.clone(),
                decoded_size: picture.size(),
                resize_filter: emr_imaging::RESIZE_FILTER.to_owned(),
                contract: contract.clone(),
            },
            tensor: emr_imaging::prepare(picture, contract),
        }
    }

    /// Runs the network once over `examinations` (one batch) and reads each output.
    pub fn predict(&self, examinations: Vec<Examination>) -> Result<Vec<Prediction>, DiagnosisError> {
        if examinations.is_empty() {
            return Ok(Vec::new());
        }
        let contract = &self.card.contract;
        let batch: Vec<f32> = examinations.iter().flat_map(|e| e.tensor.iter().copied()).collect();
        let outputs = self.classifier.classify(&batch, contract.shape(examinations.len()))?;
        if outputs.len() != examinations.len() {
            return Err(ClassifierError(format!("{} outputs for a batch of {}", outputs.len(), examinations.len())).into());
        }
        examinations
            .into_iter()
            .zip(outputs)
            .map(|(examination, output)| {
                Ok(Prediction {
                    model: self.card.reference(),
                    input_sha256: examination.input_sha256,
                    preprocessing: examination.preprocessing,
                    classification: Classification::from_output(&self.card.labels, &output, self.min_confidence)?,
                })
            })
            .collect()
    }

    /// [`examine`](Self::examine) then [`predict`](Self::predict) for one input.
    pub fn diagnose(&self, bytes: &[u8], frame: u32) -> Result<Prediction, DiagnosisError> {
        let examination = self.examine(bytes, frame)?;
        let mut predictions = self.predict(vec![examination])?;
        predictions.pop().ok_or_else(|| ClassifierError("no output".to_owned()).into())
    }
}
