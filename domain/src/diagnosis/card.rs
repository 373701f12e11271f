//! A model's identity card: the exact artifact (version and SHA-256), where it
//! came from, its labels and its input contract. Every suggestion names the card
//! it was made with, so an auditor can tell which bytes produced it.

use serde::{Deserialize, Serialize};

use super::contract::{InputContract, Normalisation};
use crate::ids::TaskId;
use crate::values::{InvalidValue, Sha256Digest};

/// Where a model's weights came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ModelSource {
    /// Imported from outside: a package, a vendor, a paper.
    Imported {
        /// Where the artifact was obtained (a package and version, a URL).
        origin: String,
        /// Its licence as far as it is known.
        licence: String,
    },
    /// Produced by a federated-learning task's round.
    Federated {
        /// The task.
        task: TaskId,
        /// The round whose aggregate the model is.
        round: u32,
    },
}

/// A versioned model artifact and what it promises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// A stable name, e.g. `brain-tumour-vgg16`.
    pub name: String,
    /// The version of this artifact under that name.
    pub version: String,
    /// SHA-256 of the artifact's bytes.
    pub sha256: Sha256Digest,
    /// Provenance.
    pub source: ModelSource,
    /// Class labels, in the order of the network's output.
    pub labels: Vec<String>,
    /// What inputs the model accepts.
    pub contract: InputContract,
}

/// The largest input side a card may declare: larger inputs are not a
/// classification model's but a mistake (and a memory hazard).
const MAX_SIDE: u32 = 4096;

impl ModelCard {
    /// Checks the card's own consistency: a name and version, at least two
    /// distinct labels, a sane input size, positive standard deviations.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        let short = |s: &str| !s.trim().is_empty() && s.len() <= 128;
        if !short(&self.name) {
            return Err(InvalidValue::new("model name", "1 to 128 characters"));
        }
        if !short(&self.version) {
            return Err(InvalidValue::new("model version", "1 to 128 characters"));
        }
        let mut labels: Vec<&str> = self.labels.iter().map(|l| l.trim()).collect();
        labels.sort_unstable();
        labels.dedup();
        if labels.len() < 2 || labels.len() != self.labels.len() || labels.iter().any(|l| l.is_empty()) {
            return Err(InvalidValue::new("model labels", "two or more distinct, non-empty labels"));
        }
        let side = 1..=MAX_SIDE;
        if !side.contains(&self.contract.width) || !side.contains(&self.contract.height) {
            return Err(InvalidValue::new("model input size", "a width and height of 1 to 4096 pixels"));
        }
        if let Normalisation::MeanStd { mean, std } = self.contract.normalisation
            && (std.iter().any(|s| !s.is_finite() || *s <= 0.0) || mean.iter().any(|m| !m.is_finite()))
        {
            return Err(InvalidValue::new("model normalisation", "finite means and positive standard deviations"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> ModelCard {
        crate::fixtures::model_card()
    }

    #[test]
    fn a_complete_card_is_valid_and_round_trips_through_json() {
        let card = card();
        assert_eq!(card.validate(), Ok(()));
        let json = serde_json::to_string(&card).unwrap_or_default();
        assert_eq!(serde_json::from_str::<ModelCard>(&json).ok(), Some(card));
    }

    #[test]
    fn duplicate_or_missing_labels_are_refused() {
        let mut duplicated = card();
        duplicated.labels[1] = "glioma".into();
        assert_eq!(duplicated.validate().map_err(|e| e.field), Err("model labels"));
        let mut single = card();
        single.labels.truncate(1);
        assert_eq!(single.validate().map_err(|e| e.field), Err("model labels"));
    }

    #[test]
    fn an_empty_input_size_or_a_zero_deviation_is_refused() {
        let mut empty = card();
        empty.contract.width = 0;
        assert_eq!(empty.validate().map_err(|e| e.field), Err("model input size"));
        let mut flat = card();
        flat.contract.normalisation = Normalisation::MeanStd { mean: [0.5; 3], std: [0.2, 0.0, 0.2] };
        assert_eq!(flat.validate().map_err(|e| e.field), Err("model normalisation"));
    }
}
